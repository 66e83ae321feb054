// Validates Istio objects for tests/test_deploy.py. Reads a JSON array of objects on stdin and
// prints a JSON array with one list of error messages per object; exits 1 if any has errors.
//
// Two checks, both from @kubernetes-models/istio (generated from Istio's CRDs):
// - the package's model `validate()` (ajv, from the CRDs' openAPIV3Schema): types, enums,
//   required fields, patterns. Its schemas do not reject unknown fields.
// - so each object is also type-checked by TypeScript against the package's interface for its
//   kind (`const o: IWasmPlugin = {...}`): an object literal's excess-property check rejects a
//   field the CRD does not define, at any depth (`metadata` included, via ObjectMeta), as the
//   API server's strict field validation does. Free-form fields (`pluginConfig`, an
//   EnvoyFilter's `patch.value`) are `{}` and take anything, as in the CRD.
// CEL rules (`x-kubernetes-validations`) are in neither.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const KINDS = {
  "extensions.istio.io/v1alpha1/WasmPlugin": true,
  "networking.istio.io/v1alpha3/EnvoyFilter": true,
  "networking.istio.io/v1/Gateway": true,
  "networking.istio.io/v1/VirtualService": true,
  "networking.istio.io/v1beta1/Gateway": true,
  "networking.istio.io/v1beta1/VirtualService": true,
  "networking.istio.io/v1alpha3/Gateway": true,
  "networking.istio.io/v1alpha3/VirtualService": true,
};

const objs = JSON.parse(readFileSync(0, "utf8"));
const results = objs.map(() => []);

// 1. The models' validate().
for (const [i, o] of objs.entries()) {
  const id = `${o.apiVersion}/${o.kind}`;
  if (!KINDS[id]) {
    results[i].push(`no @kubernetes-models/istio model for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  const mod = await import(`@kubernetes-models/istio/${id}`);
  try {
    new mod[o.kind](o).validate();
  } catch (e) {
    for (const err of e.errors ?? [{ instancePath: "", message: String(e) }]) {
      const extra = err.params?.allowedValues ? ` ${JSON.stringify(err.params.allowedValues)}` : "";
      results[i].push(`${err.instancePath || "."}: ${err.message}${extra}`);
    }
  }
}

// 2. TypeScript against the interfaces: one virtual file, one constant per object.
const file = path.join(here, "__check__.ts");
const lines = [];
const owner = []; // line number (0-based) -> object index
objs.forEach((o, i) => {
  const id = `${o.apiVersion}/${o.kind}`;
  if (!KINDS[id]) return;
  lines.push(`import type { I${o.kind} as T${i} } from "@kubernetes-models/istio/${id}";`);
  owner.push(-1);
});
objs.forEach((o, i) => {
  if (!KINDS[`${o.apiVersion}/${o.kind}`]) return;
  const body = `export const o${i}: T${i} = ${JSON.stringify(o, null, 2)};`.split("\n");
  for (const l of body) { lines.push(l); owner.push(i); }
});
const source = lines.join("\n");
const options = {
  strict: true, noEmit: true, skipLibCheck: true, types: [],
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
};
const host = ts.createCompilerHost(options);
const getSourceFile = host.getSourceFile;
host.getSourceFile = (name, lang, ...rest) =>
  path.resolve(name) === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
const fileExists = host.fileExists;
host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
const readFile = host.readFile;
host.readFile = (name) => (path.resolve(name) === file ? source : readFile(name));
const program = ts.createProgram([file], options, host);
for (const d of ts.getPreEmitDiagnostics(program)) {
  const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
  if (d.file && path.resolve(d.file.fileName) === file && d.start !== undefined) {
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const i = owner[line];
    const text = lines[line].trim();
    if (i >= 0) { results[i].push(`${text}: ${msg}`); continue; }
  }
  // A diagnostic outside an object (e.g. a model that cannot be imported): every object fails.
  results.forEach((r) => r.push(`typescript: ${msg}`));
}

process.stdout.write(JSON.stringify(results) + "\n");
process.exit(results.some((r) => r.length) ? 1 : 0);
