"""deploy/: the Istio manifests (Kustomize base and example overlay), checked offline.

- Rendering: `kubectl kustomize` (kustomize v5 built into kubectl) renders the base and the
  overlay; the expected objects must be there.
- Kubernetes objects: validated with `kubernetes-validate` against the Kubernetes 1.30 schemas
  in strict mode (unknown fields are errors, as `kubectl apply` does by default).
- Istio objects: validated by deploy/validate/istio.mjs with the npm package
  @kubernetes-models/istio (generated from Istio's CRDs): its models' validate() (types, enums,
  required fields) and a TypeScript check against its interfaces, which rejects unknown fields
  at any depth, `metadata` included (as the API server's strict field validation does); the
  "only one of" CEL rules by hand.
- The gateway configuration: the WasmPlugin's `pluginConfig` must equal the ConfigMap's file,
  and the sidecar binary must start with it (and with the secrets the overlay provides).
- The Envoy side: the WasmPlugin and the EnvoyFilter are rendered the way istiod renders them
  into a gateway's listener (a subset of EnvoyFilter semantics; a patch that matches nothing,
  or an operation this renderer does not know, fails), and the real Envoy checks the result
  (`--mode validate`: every type URL and field name, the wasm filter loading its configuration).
  Every extension the patches use must be one Istio's proxy is built with (a hand-written list).
- Finally that rendered gateway serves: Envoy + filter + sidecar on loopback, with the test's
  providers pointing at the mock upstream: the fast path, the sidecar path, the unified endpoint,
  and another application's route on the same gateway, which must never reach the sidecar.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml

from harness import REPO, SIDECAR, WASM, envoy_binary, free_port, new_gateway_key, new_upstream_key, provider
from harness import http as rawhttp
from harness import sidecar_environment, start_sidecar, wait_for, wait_sidecar_ready
from harness.gateway import dump_yaml, unique_base_id
from harness.procs import Managed, StartupError

DEPLOY = REPO / "deploy"
BASE = DEPLOY / "kustomize" / "base"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "example"
ISTIO_VALIDATOR = DEPLOY / "validate" / "istio.mjs"
K8S_VERSION = "1.30.0"
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
# The listener and route names istiod gives a Gateway server on port 80 of the default
# ingress gateway (Service port 80 -> container port 8080).
GATEWAY_LISTENER = "0.0.0.0_8080"
GATEWAY_ROUTES = "http.8080"


# --------------------------------------------------------------------------- rendering


def kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is needed to render deploy/kustomize; "
                    "it ships with this machine image (see the deploy section of README.md)")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[dict]:
    return kustomize(OVERLAY)


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def key(o: dict) -> tuple[str, str, str]:
    return o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]


BASE_OBJECTS = {
    ("Namespace", "", "aigw"),
    ("ServiceAccount", "aigw", "aigw-ext-proc"),
    ("ConfigMap", "aigw", "aigw-config"),
    ("Deployment", "aigw", "aigw-ext-proc"),
    ("Service", "aigw", "aigw-ext-proc"),
    ("NetworkPolicy", "aigw", "aigw-ext-proc"),
    ("Gateway", "istio-system", "aigw"),
    ("VirtualService", "istio-system", "aigw"),
    ("WasmPlugin", "istio-system", "aigw"),
    ("EnvoyFilter", "istio-system", "aigw"),
}


def test_kustomize_renders_base_and_overlay(base, overlay):
    assert {key(o) for o in base} == BASE_OBJECTS
    assert {key(o) for o in overlay} == BASE_OBJECTS | {
        ("Secret", "aigw", "aigw-secrets"),
        ("PersistentVolumeClaim", "aigw", "aigw-usage"),
    }
    dep = one(overlay, "Deployment")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    store = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "store")
    assert store == {"name": "store", "persistentVolumeClaim": {"claimName": "aigw-usage"}}


# --------------------------------------------------------------------------- schemas


# The "only one of" CEL rules (`x-kubernetes-validations`) of the two Istio kinds that select
# workloads, written out by hand: neither check in deploy/validate/istio.mjs evaluates CEL. A fact
# from Istio's API reference (WasmPlugin, EnvoyFilter: a policy attaches either by selector or by
# targetRefs), not a copied file.
ONLY_ONE_OF = {
    "WasmPlugin": ("selector", "targetRef", "targetRefs"),
    "EnvoyFilter": ("workloadSelector", "targetRefs"),
}


def validate_istio_objects(objs: list[dict]) -> list[list[str]]:
    """Schema errors of Istio objects, one list per object: deploy/validate/istio.mjs, which
    checks them with @kubernetes-models/istio (its models' validate(), and TypeScript against
    its interfaces for unknown fields), plus the "only one of" rules above."""
    node = shutil.which("node")
    if node is None or not (ISTIO_VALIDATOR.parent / "node_modules" / ".stamp").is_file():
        pytest.fail("deploy/validate needs node and its npm packages (make deps)")
    out = subprocess.run([node, str(ISTIO_VALIDATOR)], input=json.dumps(objs), capture_output=True,
                         text=True, timeout=120, cwd=ISTIO_VALIDATOR.parent)
    assert out.returncode in (0, 1) and out.stdout.strip(), f"{ISTIO_VALIDATOR} failed:\n{out.stderr[-4000:]}"
    results = json.loads(out.stdout)
    assert len(results) == len(objs) and (out.returncode == 1) == any(results), out.stdout
    for obj, errors in zip(objs, results):
        fields = [f for f in ONLY_ONE_OF.get(obj["kind"], ()) if f in obj.get("spec", {})]
        if len(fields) > 1:
            errors.append(f".spec: only one of {' or '.join(ONLY_ONE_OF[obj['kind']])} can be set, not {fields}")
    return results


def is_istio(obj: dict) -> bool:
    return obj["apiVersion"].split("/")[0].endswith(".istio.io")


def validate_object(obj: dict) -> list[str]:
    """Schema errors of one rendered object (empty when valid)."""
    if is_istio(obj):
        return validate_istio_objects([obj])[0]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '.'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [e.message]
    return []


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_object_matches_its_schema(which, request):
    objs = request.getfixturevalue(which)
    istio = [o for o in objs if is_istio(o)]
    assert {o["kind"] for o in istio} == {"WasmPlugin", "EnvoyFilter", "Gateway", "VirtualService"}
    problems = {"/".join(key(o)): errs for o, errs in zip(istio, validate_istio_objects(istio)) if errs}
    problems |= {"/".join(key(o)): errs for o in objs if not is_istio(o) and (errs := validate_object(o))}
    assert not problems, json.dumps(problems, indent=2)


def _mutated(objs: list[dict], kind: str, change) -> dict:
    o = copy.deepcopy(one(objs, kind))
    change(o)
    return o


@pytest.mark.parametrize("kind,change,expect", [
    ("WasmPlugin", lambda o: o["spec"].__setitem__("failStrategy", "FAIL_CLOSED"), "must be equal to one of the allowed values"),
    ("WasmPlugin", lambda o: o["spec"].__setitem__("pluginConfg", {}), "pluginConfg"),
    ("WasmPlugin", lambda o: o["spec"].__setitem__("targetRefs", [{"kind": "Gateway", "name": "x"}]), "only one of"),
    ("WasmPlugin", lambda o: o["metadata"].__setitem__("labelz", {}), "labelz"),
    ("EnvoyFilter", lambda o: o["spec"]["configPatches"][0]["patch"].__setitem__("operation", "INSERT_BEFOR"), "must be equal to one of the allowed values"),
    ("EnvoyFilter", lambda o: o["spec"]["configPatches"][0].__setitem__("applyto", "HTTP_FILTER"), "applyto"),
    ("Gateway", lambda o: o["spec"]["servers"][0]["port"].__setitem__("number", "80"), "must be integer"),
    ("Gateway", lambda o: o["spec"]["servers"][0]["port"].__setitem__("nmber", 80), "'\"nmber\"' does not exist"),
    ("VirtualService", lambda o: o["spec"]["http"][0]["directResponse"].pop("status"), "must have required property status"),
    ("VirtualService", lambda o: o["spec"]["http"][0]["match"][0].__setitem__("prefix", "/llm"), "'\"prefix\"' does not exist"),
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("readinesProbe", {}), "readinesProbe"),
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["securityContext"].__setitem__("runAsNonRoot", "yes"), "is not of type"),
    ("Service", lambda o: o["spec"]["ports"][0].__setitem__("port", "grpc"), "is not of type"),
    ("NetworkPolicy", lambda o: o["spec"].__setitem__("policyType", ["Ingress"]), "policyType"),
])
def test_schema_checks_catch_mistakes(base, kind, change, expect):
    errors = validate_object(_mutated(base, kind, change))
    assert any(expect in e for e in errors), f"{kind}: expected an error mentioning {expect!r}, got {errors}"


# --------------------------------------------------------------------------- the gateway configuration


def configmap_config(objs: list[dict]) -> dict:
    return yaml.safe_load(one(objs, "ConfigMap", "aigw-config")["data"]["config.yaml"])


def secret_references(cfg: Any) -> set[str]:
    """Every secret name the gateway configuration refers to (`*_secret` fields, api_keys[].secret)."""
    out: set[str] = set()
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if (k == "secret" or k.endswith("_secret")) and isinstance(v, str):
                out.add(v)
            else:
                out |= secret_references(v)
    elif isinstance(cfg, list):
        for v in cfg:
            out |= secret_references(v)
    return out


def test_plugin_config_is_the_configmap_config(base):
    plugin = one(base, "WasmPlugin")["spec"]["pluginConfig"]
    assert plugin == configmap_config(base), "wasmplugin.yaml pluginConfig and configmap.yaml config.yaml differ"
    assert plugin["providers"], "no providers"


def _container(objs: list[dict]) -> dict:
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _args(objs: list[dict]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in _container(objs)["args"])


def _mounts(objs: list[dict]) -> dict[str, dict]:
    """mountPath -> the volume mounted there."""
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in _container(objs)["volumeMounts"]}


def test_sidecar_reads_what_the_manifests_provide(overlay):
    args, mounts = _args(overlay), _mounts(overlay)
    config_dir, config_file = os.path.split(args["config"])
    assert mounts[config_dir]["configMap"]["name"] == "aigw-config"
    assert config_file in one(overlay, "ConfigMap", "aigw-config")["data"]
    secret = one(overlay, "Secret", "aigw-secrets")
    assert mounts[args["secrets-dir"]]["secret"]["secretName"] == secret["metadata"]["name"]
    wanted = secret_references(configmap_config(overlay)) | {"AIGW_ADMIN_TOKEN"}
    assert wanted <= set(secret["data"]), f"the Secret lacks {sorted(wanted - set(secret['data']))}"
    store_dir = os.path.dirname(args["store"])
    assert store_dir in mounts and "configMap" not in mounts[store_dir] and "secret" not in mounts[store_dir]
    assert _container(overlay)["securityContext"]["readOnlyRootFilesystem"] is True
    # The listeners the Service and the probes use.
    assert args["listen"].endswith(":9002") and args["admin-listen"].endswith(":9003")
    ports = {p["name"]: p["port"] for p in one(overlay, "Service")["spec"]["ports"]}
    assert ports == {"grpc": 9002, "http-admin": 9003}
    # The sidecar calls back into the gateway's plain-HTTP server (gateway.yaml).
    servers = one(overlay, "Gateway")["spec"]["servers"]
    assert any(s["port"]["protocol"] == "HTTP" and args["envoy-url"].endswith(f":{s['port']['number']}")
               for s in servers)
    # The EnvoyFilter's sidecar cluster points at the Service.
    svc = one(overlay, "Service")["metadata"]
    ep = _clusters(one(overlay, "EnvoyFilter"))["aigw_sidecar"]["load_assignment"]["endpoints"][0]
    addr = ep["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert addr == {"address": f"{svc['name']}.{svc['namespace']}.svc.cluster.local", "port_value": ports["grpc"]}


def _start_sidecar(tmp: Path, config: dict, secrets: dict[str, str], *, envoy_url: str | None = None,
                   name: str = "sidecar") -> tuple[Managed, int]:
    cfg_file = tmp / f"{name}-config.yaml"
    cfg_file.write_text(yaml.safe_dump(config, sort_keys=False))
    secrets_dir = tmp / f"{name}-secrets"
    secrets_dir.mkdir(exist_ok=True)
    for k, v in secrets.items():
        (secrets_dir / k).write_text(v + "\n")
    port = free_port()
    extra = ["--envoy-url", envoy_url] if envoy_url else []
    p = start_sidecar(cfg_file, port, secrets_dir, tmp / name, name=name, extra_args=extra,
                      env=sidecar_environment())
    return p, port


def _overlay_secrets(overlay: list[dict]) -> dict[str, str]:
    data = one(overlay, "Secret", "aigw-secrets")["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.mark.timeout(40)
def test_sidecar_starts_with_the_deployed_config(overlay, tmp_path):
    assert SIDECAR.is_file(), f"{SIDECAR} not built (make build)"
    p, port = _start_sidecar(tmp_path, configmap_config(overlay), _overlay_secrets(overlay))
    try:
        wait_sidecar_ready(p, port, 20)
    finally:
        p.stop()


@pytest.mark.timeout(40)
def test_sidecar_refuses_a_broken_config(overlay, tmp_path):
    """The check above can fail: a misspelt field, and a secret the Secret does not hold."""
    assert SIDECAR.is_file(), f"{SIDECAR} not built (make build)"
    bad = configmap_config(overlay)
    bad["providers"][0]["api_key_secrte"] = bad["providers"][0].pop("api_key_secret")
    missing = configmap_config(overlay)
    missing["providers"][0]["api_key_secret"] = "NOT_IN_THE_SECRET"
    for name, cfg, expect in (("typo", bad, "api_key_secrte"), ("missing", missing, "NOT_IN_THE_SECRET")):
        p, port = _start_sidecar(tmp_path, cfg, _overlay_secrets(overlay), name=name)
        try:
            with pytest.raises(StartupError):
                wait_sidecar_ready(p, port, 20)
            assert expect in p.stderr(), p.output()
        finally:
            p.stop()


# --------------------------------------------------------------------------- the Envoy side


class PatchError(AssertionError):
    """An EnvoyFilter patch that matched nothing, or that this renderer cannot apply."""


def _patches(ef: dict, apply_to: str) -> Iterator[dict]:
    return (p for p in ef["spec"]["configPatches"] if p["applyTo"] == apply_to)


def _clusters(ef: dict) -> dict[str, dict]:
    return {p["patch"]["value"]["name"]: p["patch"]["value"] for p in _patches(ef, "CLUSTER")}


def wasm_filter(wp: dict, wasm_file: Path) -> dict:
    """The HTTP filter istiod makes of a WasmPlugin (pilot/pkg/model/extensions.go): named
    `<namespace>.<name>`, root_id = pluginName, pluginConfig as JSON in a StringValue. The OCI
    module is replaced by the local build."""
    spec = wp["spec"]
    assert spec.get("type", "HTTP") == "HTTP"
    name = f"{wp['metadata']['namespace']}.{wp['metadata']['name']}"
    policy = {"FAIL_CLOSE": "FAIL_CLOSED", "FAIL_OPEN": "FAIL_OPEN", "FAIL_RELOAD": "FAIL_RELOAD"}[
        spec.get("failStrategy", "FAIL_CLOSE")]
    env = {e["name"]: e.get("value", "") for e in spec.get("vmConfig", {}).get("env", [])
           if e.get("valueFrom", "INLINE") == "INLINE"}
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": spec.get("pluginName", ""),
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(spec.get("pluginConfig", {}))},
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_file)}},
                    "environment_variables": {"key_values": env},
                },
                "failure_policy": policy,
            },
        },
    }


def virtual_service_routes(vs: dict) -> list[dict]:
    """The Envoy routes of the VirtualService's HTTP rules (only what deploy/ uses)."""
    routes = []
    for rule in vs["spec"]["http"]:
        unknown = set(rule) - {"name", "match", "directResponse", "headers"}
        if unknown:
            raise PatchError(f"VirtualService rule fields not rendered here: {unknown}")
        for m in rule.get("match", [{"uri": {"prefix": "/"}}]):
            (kind, value), = m["uri"].items()
            r: dict[str, Any] = {"name": rule.get("name", ""), "match": {kind if kind != "regex" else "safe_regex": value}}
            dr = rule["directResponse"]
            r["direct_response"] = {"status": dr["status"], "body": {"inline_string": dr["body"]["string"]}}
            r["response_headers_to_add"] = [
                {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                for k, v in rule.get("headers", {}).get("response", {}).get("set", {}).items()]
            routes.append(r)
    return routes


OTHER_APP_ROUTE = {
    # Another application's VirtualService route on the same gateway.
    "name": "other-app",
    "match": {"prefix": "/"},
    "direct_response": {"status": 200, "body": {"inline_string": "other app"}},
}


def _hcms(bootstrap: dict) -> Iterator[dict]:
    for lst in bootstrap["static_resources"]["listeners"]:
        for chain in lst["filter_chains"]:
            for f in chain["filters"]:
                if f["name"] == HCM:
                    yield f["typed_config"]


def apply_envoyfilter(bootstrap: dict, ef: dict) -> None:
    """Applies the EnvoyFilter's patches the way istiod does for a gateway, for the operations
    deploy/ uses; anything else, or a patch that matches nothing, raises PatchError."""
    for i, cp in enumerate(ef["spec"]["configPatches"]):
        where = f"configPatches[{i}] ({cp['applyTo']} {cp['patch']['operation']})"
        match, op = cp.get("match", {}), cp["patch"]["operation"]
        value = copy.deepcopy(cp["patch"].get("value"))
        if match.get("context", "ANY") not in ("GATEWAY", "ANY"):
            raise PatchError(f"{where}: context {match['context']} does not apply to a gateway")
        if match.get("proxy"):
            raise PatchError(f"{where}: proxy matches are not rendered here")
        applied = 0
        if cp["applyTo"] == "HTTP_FILTER":
            flt = match.get("listener", {}).get("filterChain", {}).get("filter", {})
            if set(match.get("listener", {})) - {"filterChain"} or set(match["listener"]["filterChain"]) - {"filter"}:
                raise PatchError(f"{where}: only listener.filterChain.filter matches are rendered here")
            if flt.get("name") != HCM:
                raise PatchError(f"{where}: the filter match must name {HCM}")
            sub = flt.get("subFilter", {}).get("name")
            for hcm in _hcms(bootstrap):
                filters = hcm["http_filters"]
                at = [j for j, f in enumerate(filters) if f["name"] == sub]
                if op in ("INSERT_BEFORE", "INSERT_AFTER") and at:
                    filters.insert(at[0] + (op == "INSERT_AFTER"), value)
                elif op == "INSERT_FIRST":
                    filters.insert(0, value)
                elif op == "ADD":
                    filters.append(value)
                elif op not in ("INSERT_BEFORE", "INSERT_AFTER"):
                    raise PatchError(f"{where}: operation not rendered here")
                else:
                    continue
                applied += 1
        elif cp["applyTo"] == "CLUSTER":
            if op != "ADD" or set(match) - {"context"}:
                raise PatchError(f"{where}: only unmatched ADD is rendered here")
            clusters = bootstrap["static_resources"]["clusters"]
            if any(c["name"] == value["name"] for c in clusters):
                raise PatchError(f"{where}: cluster {value['name']} exists already")
            clusters.append(value)
            applied = 1
        elif cp["applyTo"] == "HTTP_ROUTE":
            rc = match.get("routeConfiguration", {})
            if set(rc) - {"vhost", "name"} or set(rc.get("vhost", {})) - {"name"}:
                raise PatchError(f"{where}: only routeConfiguration name / vhost name matches are rendered here")
            if op not in ("INSERT_FIRST", "INSERT_BEFORE", "ADD"):
                raise PatchError(f"{where}: operation not rendered here")
            for hcm in _hcms(bootstrap):
                cfg = hcm["route_config"]
                if rc.get("name") not in (None, cfg["name"]):
                    continue
                for vh in cfg["virtual_hosts"]:
                    if rc.get("vhost", {}).get("name") not in (None, vh["name"]):
                        continue
                    if op == "ADD":
                        vh["routes"].append(copy.deepcopy(value))
                    else:  # INSERT_FIRST, or INSERT_BEFORE without a route match: at the top
                        vh["routes"].insert(0, copy.deepcopy(value))
                    applied += 1
        else:
            raise PatchError(f"{where}: applyTo {cp['applyTo']} is not rendered here")
        if not applied:
            raise PatchError(f"{where}: matched nothing")


def istio_gateway_bootstrap(objs: list[dict], *, wasm_file: Path = WASM, listener_port: int = 0) -> dict:
    """An Envoy bootstrap standing for the ingress gateway after istiod has applied the
    Gateway, the VirtualServices, the WasmPlugin (phase AUTHN: first in the chain) and the
    EnvoyFilter, plus another application's route."""
    gw, vs = one(objs, "Gateway"), one(objs, "VirtualService")
    server = gw["spec"]["servers"][0]
    assert server["port"]["protocol"] == "HTTP" and server["hosts"] == ["*"] == vs["spec"]["hosts"]
    assert f"{gw['metadata']['namespace']}/{gw['metadata']['name']}" in vs["spec"]["gateways"]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": f"outbound_{GATEWAY_LISTENER}",
        "route_config": {
            "name": GATEWAY_ROUTES,
            "virtual_hosts": [{
                "name": f"*:{server['port']['number']}",
                "domains": ["*"],
                "routes": virtual_service_routes(vs) + [copy.deepcopy(OTHER_APP_ROUTE)],
            }],
        },
        "http_filters": [
            wasm_filter(one(objs, "WasmPlugin"), wasm_file),
            {"name": ROUTER, "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": GATEWAY_LISTENER,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
                "filter_chains": [{"filters": [{"name": HCM, "typed_config": hcm}]}],
            }],
            "clusters": [],
        },
    }
    apply_envoyfilter(bootstrap, one(objs, "EnvoyFilter"))
    return bootstrap


def envoy_validate(bootstrap: dict, tmp: Path) -> subprocess.CompletedProcess:
    path = tmp / "gateway-bootstrap.yaml"
    path.write_text(dump_yaml(bootstrap))
    return subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path), "--log-level", "warn",
                           "--base-id", str(unique_base_id())],
                          capture_output=True, text=True, timeout=60, cwd=tmp)


def _envoy_yaml() -> tuple[dict, dict]:
    """envoy/envoy.yaml: (its HTTP connection manager, its clusters by name)."""
    ref = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    hcm = ref["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm, {c["name"]: c for c in ref["static_resources"]["clusters"]}


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def test_rendered_gateway_matches_envoy_yaml(base):
    """The same filters, clusters and routes as envoy/envoy.yaml, in its order, except for
    the documented differences (envoyfilter.yaml's header)."""
    b = istio_gateway_bootstrap(base)
    hcm = next(_hcms(b))
    ref_hcm, ref_clusters = _envoy_yaml()
    assert [f["name"] for f in hcm["http_filters"]] == [
        "istio-system.aigw", "envoy.filters.http.ext_proc", "envoy.filters.http.dynamic_forward_proxy", ROUTER]
    filters = {f["name"]: f for f in hcm["http_filters"]}
    ref_filters = {f["name"]: f for f in ref_hcm["http_filters"]}
    ext = filters["envoy.filters.http.ext_proc"]
    assert ext["typed_config"] == ref_filters["envoy.filters.http.ext_proc"]["typed_config"]
    assert ext["disabled"] is True
    ref_dns = _without(ref_filters["envoy.filters.http.dynamic_forward_proxy"]["typed_config"]["dns_cache_config"],
                       "typed_dns_resolver_config")
    assert filters["envoy.filters.http.dynamic_forward_proxy"]["typed_config"]["dns_cache_config"] == ref_dns

    clusters = {c["name"]: c for c in b["static_resources"]["clusters"]}
    assert sorted(clusters) == sorted(ref_clusters) == ["aigw_sidecar", "aigw_upstream_http", "aigw_upstream_https"]
    for name in ("aigw_upstream_http", "aigw_upstream_https"):
        ref = copy.deepcopy(ref_clusters[name])
        del ref["cluster_type"]["typed_config"]["dns_cache_config"]["typed_dns_resolver_config"]
        assert clusters[name] == ref, name
    side = clusters["aigw_sidecar"]
    assert (side["type"], side["dns_lookup_family"]) == ("STRICT_DNS", "V4_PREFERRED")
    assert _without(side, "type", "dns_lookup_family", "load_assignment") == _without(
        ref_clusters["aigw_sidecar"], "type", "load_assignment")

    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert [r.get("name") for r in routes] == [
        "aigw-upstream-https-fast", "aigw-upstream-http-fast", "aigw-upstream-https", "aigw-upstream-http",
        "aigw-unified", "aigw-mcp", "aigw-providers-entry", "aigw-not-found", "other-app"]
    ref_routes = ref_hcm["route_config"]["virtual_hosts"][0]["routes"]
    for r, ref in zip(routes[:6], ref_routes[:6]):
        assert _without(r, "name", "typed_per_filter_config") == _without(ref, "typed_per_filter_config"), r["name"]
        ref_off = ref.get("typed_per_filter_config", {}).get("envoy.filters.http.ext_proc")
        off = r["typed_per_filter_config"]["envoy.filters.http.ext_proc"]
        if ref_off is None:  # the sidecar path: enabled
            assert off == {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}, r["name"]
        else:
            assert off == ref_off, r["name"]
    # The entry route covers every path the filter takes (core/src/path.rs) and is a backstop
    # like envoy.yaml's catch-all: its answer, ext_proc off.
    prefix = re.search(r'PROXY_PREFIX: &str = "([^"]+)"', (REPO / "core" / "src" / "path.rs").read_text()).group(1)
    entry, ref_catch_all = routes[6], ref_routes[-1]
    assert entry["match"] == {"prefix": prefix}
    assert _without(entry, "name", "match") == _without(ref_catch_all, "match")


@pytest.mark.timeout(60)
def test_envoy_accepts_the_rendered_gateway(base, tmp_path):
    assert WASM.is_file(), f"{WASM} not built (make build)"
    out = envoy_validate(istio_gateway_bootstrap(base), tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "OK" in out.stdout


def _ef_change(path: list, value) -> Any:
    def change(objs: list[dict]) -> None:
        node = one(objs, "EnvoyFilter")["spec"]["configPatches"]
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return change


def _wp_config(objs: list[dict]) -> None:
    one(objs, "WasmPlugin")["spec"]["pluginConfig"]["providers"][0]["type"] = "openai-ish"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("what,change,expect", [
    ("a misspelt ext_proc field", _ef_change([0, "patch", "value", "typed_config", "failure_mode_alow"], False),
     "failure_mode_alow"),
    ("a wrong type URL", _ef_change([1, "patch", "value", "typed_config", "@type"],
                                    "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.Config"),
     "dynamic_forward_proxy.v3.Config"),
    ("a route to an unknown cluster", _ef_change([6, "patch", "value", "route", "cluster"], "aigw_sidecr"),
     "aigw_sidecr"),
    ("an invalid plugin configuration", _wp_config, "openai-ish"),
])
def test_envoy_check_catches_mistakes(base, tmp_path, what, change, expect):
    assert WASM.is_file(), f"{WASM} not built (make build)"
    objs = copy.deepcopy(base)
    change(objs)
    out = envoy_validate(istio_gateway_bootstrap(objs), tmp_path)
    assert out.returncode != 0, f"Envoy accepted {what}"
    assert expect in out.stderr, out.stderr[-4000:]


def test_patches_that_match_nothing_fail(base):
    objs = copy.deepcopy(base)
    _ef_change([0, "match", "listener", "filterChain", "filter", "subFilter", "name"], "envoy.filters.http.routr")(objs)
    with pytest.raises(PatchError, match="matched nothing"):
        istio_gateway_bootstrap(objs)


def extensions_used(node: Any) -> set[str]:
    """Names of the Envoy extensions a config uses: every `name` beside a `typed_config`
    (filters, cluster types, transport sockets, DNS resolvers) and every `runtime`."""
    out: set[str] = set()
    if isinstance(node, dict):
        if "typed_config" in node and isinstance(node.get("name"), str):
            out.add(node["name"])
        if isinstance(node.get("runtime"), str):
            out.add(node["runtime"])
        for v in node.values():
            out |= extensions_used(v)
    elif isinstance(node, list):
        for v in node:
            out |= extensions_used(v)
    return out


# Envoy extensions that Istio's proxy (1.30.3) is built with, of those this project's configs
# use: a hand-written list of facts, checked against Istio's proxy build (istio/proxy's
# extension configuration at that tag), not a copied file. Upstream Envoy has more; a name not
# listed here must be checked there before it is added.
ISTIO_PROXY_EXTENSIONS = {
    "envoy.clusters.dynamic_forward_proxy",
    "envoy.filters.http.dynamic_forward_proxy",
    "envoy.filters.http.ext_proc",
    "envoy.filters.http.router",
    "envoy.filters.http.wasm",
    "envoy.filters.network.http_connection_manager",
    "envoy.network.dns_resolver.cares",
    "envoy.transport_sockets.tls",
    "envoy.wasm.runtime.v8",
    "envoy.access_loggers.extension_filters.cel",
}
# ... and ones it is known to lack (upstream Envoy has them).
NOT_IN_ISTIO_PROXY = {"envoy.network.dns_resolver.getaddrinfo"}


def test_extensions_are_in_istios_proxy(base):
    used = extensions_used(istio_gateway_bootstrap(base))
    # The HTTP filters are named after their extensions, except the WasmPlugin's (istiod's name).
    used = {u for u in used if u != "istio-system.aigw"} | {"envoy.filters.http.wasm"}
    assert {"envoy.filters.http.ext_proc", "envoy.clusters.dynamic_forward_proxy", "envoy.wasm.runtime.v8"} <= used
    missing = used - ISTIO_PROXY_EXTENSIONS
    assert not missing, f"not known to be compiled into Istio's proxy: {sorted(missing)}"
    # envoy/envoy.yaml's DNS resolver is one that Istio's proxy lacks: the check sees it.
    ref = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    assert "envoy.network.dns_resolver.getaddrinfo" in extensions_used(ref) - ISTIO_PROXY_EXTENSIONS
    assert not ISTIO_PROXY_EXTENSIONS & NOT_IN_ISTIO_PROXY


# --------------------------------------------------------------------------- the rendered gateway, serving


def _envoy_stat(admin_port: int, name: str) -> int:
    r = rawhttp.request("127.0.0.1", admin_port, "GET", f"/stats?filter=^{re.escape(name)}$")
    for line in r.body.decode().splitlines():
        k, _, v = line.partition(": ")
        if k == name:
            return int(v)
    return 0


@pytest.mark.timeout(90)
def test_rendered_gateway_serves(base, tmp_path, upstream):
    """The EnvoyFilter's pieces at work, with the test's providers in the WasmPlugin: the fast
    path, the sidecar path (ext_proc enabled only where the gateway needs it), the unified
    endpoint calling back into the gateway, and another application's route untouched."""
    assert WASM.is_file() and SIDECAR.is_file(), "make build first"
    gw_key, up_key = new_gateway_key(), new_upstream_key("sk-mock")
    config = {
        "providers": [
            provider("mock", "openai-compatible", f"{upstream.url}/v1", "MOCK_API_KEY"),
            # A model list keeps a provider on the sidecar path.
            {**provider("listed", "openai-compatible", f"{upstream.url}/v1", "MOCK_API_KEY"), "models": ["mock-model"]},
        ],
        "api_keys": [{"name": "tests", "secret": "AIGW_TEST_API_KEY"}],
    }
    objs = copy.deepcopy(base)
    one(objs, "WasmPlugin")["spec"]["pluginConfig"] = config
    listener_port = free_port()
    sidecar, sidecar_port = _start_sidecar(
        tmp_path, config, {"MOCK_API_KEY": up_key, "AIGW_TEST_API_KEY": gw_key},
        envoy_url=f"http://127.0.0.1:{listener_port}")
    envoy = None
    try:
        wait_sidecar_ready(sidecar, sidecar_port, 20)
        bootstrap = istio_gateway_bootstrap(objs, listener_port=listener_port)
        side = next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "aigw_sidecar")
        side["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] = {
            "address": "127.0.0.1", "port_value": sidecar_port}
        path = tmp_path / "gateway.yaml"
        path.write_text(dump_yaml(bootstrap))
        addr_file = tmp_path / "admin.address"
        envoy = Managed("envoy", [envoy_binary(), "-c", path, "--concurrency", "1", "--base-id",
                                  str(unique_base_id()), "--log-level", "warn", "--admin-address-path", addr_file],
                        tmp_path, cwd=REPO)
        envoy.wait_until("writing its admin address", lambda: ":" in (addr_file.read_text() if addr_file.exists() else ""), 20)
        admin = int(addr_file.read_text().strip().rsplit(":", 1)[1])
        envoy.wait_until("ready", lambda: rawhttp.request("127.0.0.1", admin, "GET", "/ready", timeout=1).status == 200, 20)
        # Every wasm VM (2 on the main thread, 1 worker) has its first fast-path snapshot.
        wait_for(lambda: _envoy_stat(admin, "cluster.aigw_sidecar.upstream_rq_2xx") >= 3, 10, what="fast-path snapshots")
        streams = f"http.outbound_{GATEWAY_LISTENER}.ext_proc.streams_started"

        def call(method: str, target: str, body: dict | None = None, auth: bool = True) -> rawhttp.Response:
            hdrs = [("Authorization", f"Bearer {gw_key}")] if auth else []
            if body is not None:
                hdrs.append(("content-type", "application/json"))
            return rawhttp.request("127.0.0.1", listener_port, method, target, hdrs, body, timeout=10)

        chat = {"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}
        # Fast path: the filter alone.
        r = call("POST", "/llm/v1/providers/mock/chat/completions", chat)
        assert r.status == 200, r.body
        assert _envoy_stat(admin, streams) == 0
        assert upstream.requests[-1].header("authorization") == f"Bearer {up_key}"
        # Sidecar path: ext_proc runs (it is disabled by default in the chain).
        r = call("POST", "/llm/v1/providers/listed/chat/completions", chat)
        assert r.status == 200, r.body
        assert _envoy_stat(admin, streams) == 1
        assert upstream.requests[-1].header("authorization") == f"Bearer {up_key}"
        r = call("POST", "/llm/v1/providers/listed/chat/completions", chat, auth=False)
        assert r.status == 401 and r.json()["error"]["code"] == "missing_credential", r.body
        # The unified endpoint: to the sidecar over aigw_sidecar (HTTP/2), which calls the
        # provider back through the gateway.
        r = call("GET", "/llm/v1/models")
        assert r.status == 200 and r.json()["object"] == "list", r.body
        before = len(upstream.requests)
        r = call("POST", "/llm/v1/chat/completions", {**chat, "model": "mock/mock-model"})
        assert r.status == 200 and r.json()["choices"], r.body
        assert r.header("x-aigw-target") == "mock/mock-model"
        assert len(upstream.requests) == before + 1
        # Not a gateway path under /llm/v1/: the VirtualService's JSON 404.
        r = call("GET", "/llm/v1/nothing")
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", r.body
        # Another application on the same gateway: never sent to the sidecar.
        n = _envoy_stat(admin, streams)
        r = call("GET", "/other/app", auth=False)
        assert (r.status, r.body) == (200, b"other app")
        r = call("POST", "/v1/chat/completions", chat)
        assert (r.status, r.body) == (200, b"other app")
        assert _envoy_stat(admin, streams) == n
        # Clients cannot pick the upstream route themselves.
        r = rawhttp.request("127.0.0.1", listener_port, "GET", "/", [("x-aigw-upstream", "https")], timeout=10)
        assert r.status == 400 and r.json()["error"]["code"] == "internal_header", r.body
    finally:
        if envoy is not None:
            envoy.stop()
        sidecar.stop()
