#!/usr/bin/env node
// A real OpenID provider (the OpenID Certified `oidc-provider` package) for the gateway's
// OIDC tests and the offline demo: OAuth 2.0 client-credentials grant issuing JWT access
// tokens (RFC 9068, `typ: at+jwt`), RS256 or ES256, with test-friendly key rotation.
// See README.md beside this file.
//
//   node server.mjs [--port 9200] [--config clients.json] [--client ID:SECRET]...
//                   [--alg RS256|ES256] [--keys keys.json] [--ttl SECONDS]
//                   [--audience aigw] [--issuer URL] [--admin] [--quiet]

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const SUPPORTED_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);
// Claims a client's `claims` may not replace: the provider owns them.
const RESERVED_CLAIMS = new Set(['iss', 'exp', 'iat', 'nbf', 'jti']);

// ------------------------------------------------------------------------------ options

function usage(code) {
  const out = code ? process.stderr : process.stdout;
  out.write(`usage: node server.mjs [options]
  --port N            listen port on 127.0.0.1 (default 9200; 0 picks a free one, printed)
  --host H            listen address (default 127.0.0.1)
  --issuer URL        issuer (default http://<host>:<port>)
  --config FILE       JSON: clients, resource servers, defaults (see README.md); re-read on SIGHUP
  --client ID:SECRET  a client (repeatable), in addition to the config file's
  --alg ALG           signing algorithm of the active key (default RS256; ES256, PS256, EdDSA...)
  --keys FILE         private JWKS; created if missing, re-read on SIGHUP, written on rotation
  --ttl SECONDS       access token lifetime (default 300; per client: access_token_ttl)
  --audience AUD      audience of the default resource server (default aigw)
  --admin             enable /admin/* (key rotation, see README.md)
  --quiet             no per-request log lines
`);
  process.exit(code);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '9200' },
      host: { type: 'string', default: '127.0.0.1' },
      issuer: { type: 'string' },
      config: { type: 'string' },
      client: { type: 'string', multiple: true, default: [] },
      alg: { type: 'string' },
      keys: { type: 'string' },
      ttl: { type: 'string' },
      audience: { type: 'string' },
      admin: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  usage(2);
}
if (args.help) usage(0);

function fail(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

function log(msg) {
  process.stderr.write(`idp: ${msg}\n`);
}

// ------------------------------------------------------------------------------ config

// Everything the provider is built from; rebuilt on SIGHUP and on key rotation.
function loadSettings() {
  let file = {};
  if (args.config) {
    try {
      file = JSON.parse(fs.readFileSync(args.config, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read --config ${args.config}: ${e.message}`);
    }
  }
  const ttl = Number(args.ttl ?? file.access_token_ttl ?? 300);
  if (!Number.isInteger(ttl) || ttl < 1) throw new Error(`bad access token ttl ${ttl}`);
  const alg = args.alg ?? file.alg ?? 'RS256';
  if (!SUPPORTED_ALGS.has(alg)) throw new Error(`unsupported --alg ${alg}`);

  const clients = [...(file.clients ?? [])];
  for (const spec of args.client) {
    const i = spec.indexOf(':');
    if (i < 1) throw new Error(`--client wants ID:SECRET, got ${JSON.stringify(spec)}`);
    clients.push({ client_id: spec.slice(0, i), client_secret: spec.slice(i + 1) });
  }
  const seen = new Set();
  for (const c of clients) {
    if (!c.client_id || !c.client_secret) throw new Error(`client without client_id/client_secret: ${JSON.stringify(c.client_id)}`);
    if (seen.has(c.client_id)) throw new Error(`client ${c.client_id} defined twice`);
    seen.add(c.client_id);
  }

  // Resource servers (RFC 8707 resource indicators): which audience a token is for. The
  // first is the default, used when the token request names no `resource`.
  let resources = file.resource_servers ?? [{ resource: 'urn:aigw', audience: args.audience ?? 'aigw' }];
  if (args.audience && file.resource_servers) {
    resources = [{ ...resources[0], audience: args.audience }, ...resources.slice(1)];
  }
  for (const r of resources) {
    if (!r.resource || !r.audience) throw new Error('resource_servers entries need resource and audience');
    try { new URL(r.resource); } catch { throw new Error(`resource ${r.resource} is not an absolute URI`); }
  }

  // Every scope a client may hold is a static scope, so the clients' allowlists are enforced.
  const scopes = new Set(['openid']);
  for (const c of clients) for (const s of (c.scope ?? '').split(' ').filter(Boolean)) scopes.add(s);
  for (const r of resources) for (const s of (r.scope ?? '').split(' ').filter(Boolean)) scopes.add(s);

  return { ttl, alg, clients, resources, scopes, file };
}

// ------------------------------------------------------------------------------ keys

function newKey(alg) {
  let pair;
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg.startsWith('ES')) {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] });
  } else {
    pair = crypto.generateKeyPairSync('ed25519');
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  const pub = pair.publicKey.export({ format: 'jwk' });
  // kid: the RFC 7638 thumbprint, truncated; unique per key.
  const members = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] }[pub.kty];
  const canon = JSON.stringify(Object.fromEntries(members.map((m) => [m, pub[m]])));
  const kid = crypto.createHash('sha256').update(canon).digest('base64url').slice(0, 16);
  return { ...jwk, kid, alg, use: 'sig' };
}

function readKeys(file) {
  const jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error(`${file}: no keys`);
  for (const k of jwks.keys) {
    if (!k.kid || !k.alg || !k.d) throw new Error(`${file}: every key needs kid, alg and the private part`);
  }
  return jwks.keys;
}

function writeKeys(file, keys) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

// The key set: the first key is the active signing key; the others stay published in JWKS
// (tokens they signed remain verifiable) until retired.
let keys = [];

function initKeys(alg) {
  // An existing --keys file is authoritative (a restart keeps the rotation state); --alg
  // picks the algorithm of a key set made from scratch.
  if (args.keys && fs.existsSync(args.keys)) {
    keys = readKeys(args.keys);
    if (args.alg && keys[0].alg !== args.alg) {
      log(`warning: ${args.keys} has active key ${keys[0].kid} ${keys[0].alg}; --alg ${args.alg} ignored (rotate to change it)`);
    }
    return;
  }
  keys = [newKey(alg)];
  if (args.keys) writeKeys(args.keys, keys);
}

// ------------------------------------------------------------------------------ provider

const cookieKey = crypto.randomBytes(32).toString('base64url');
let settings;
let current; // { provider, callback }

function buildProvider(issuer) {
  const { ttl, clients, resources, scopes } = settings;
  const active = keys[0];
  const byId = new Map(clients.map((c) => [c.client_id, c]));
  const byResource = new Map(resources.map((r) => [r.resource, r]));

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
      ...(c.scope ? { scope: c.scope } : {}),
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    cookies: { keys: [cookieKey] }, // no browser flows here; set so the provider does not warn
    jwks: { keys },
    scopes: [...scopes],
    claims: { openid: ['sub'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resources[0].resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator, client) => {
          const r = byResource.get(resourceIndicator);
          if (!r) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          const c = byId.get(client.clientId);
          const allowed = c?.resources ?? null; // optional per-client allowlist of resources
          if (allowed && !allowed.includes(resourceIndicator)) {
            throw new errors.InvalidTarget(`client may not request ${resourceIndicator}`);
          }
          return {
            audience: r.audience,
            scope: r.scope ?? [...scopes].join(' '),
            accessTokenTTL: c?.access_token_ttl ?? r.access_token_ttl ?? ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: active.alg, kid: active.kid } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token, client) => token.resourceServer?.accessTokenTTL ?? byId.get(client.clientId)?.access_token_ttl ?? ttl,
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl,
    },
    formats: {
      customizers: {
        // A client's `claims` go into its tokens: extra ones (groups, email...) are added,
        // standard ones (sub, azp, client_id, scope, aud) replaced; null removes a claim.
        jwt: async (ctx, token, jwt) => {
          const c = byId.get(token.clientId);
          for (const [k, v] of Object.entries(c?.claims ?? {})) {
            if (RESERVED_CLAIMS.has(k)) continue;
            if (v === null) delete jwt.payload[k];
            else jwt.payload[k] = v;
          }
          if (Number.isInteger(c?.nbf_offset)) jwt.payload.nbf = jwt.payload.iat + c.nbf_offset;
          // Extra or replaced JWS header parameters (kid, typ, jku, jwk, x5u...); null removes
          // one. Never `alg`: the key decides it.
          if (c?.header) {
            jwt.header = { ...(jwt.header ?? {}) };
            for (const [k, v] of Object.entries(c.header)) {
              if (k !== 'alg') jwt.header[k] = v === null ? undefined : v;
            }
          }
        },
      },
    },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: active.alg,
    },
    enabledJWA: {
      idTokenSigningAlgValues: [...new Set(['RS256', ...keys.map((k) => k.alg)])],
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
  provider.on('grant.error', (ctx, err) => { if (!args.quiet) log(`token error: ${err.message} (${err.error_description ?? ''})`); });
  provider.on('grant.success', (ctx) => {
    if (!args.quiet) log(`token issued to ${ctx.oidc.client?.clientId} (kid ${active.kid})`);
  });
  return { provider, callback: provider.callback() };
}

// ------------------------------------------------------------------------------ admin API

function json(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' });
  res.end(data);
}

function keyInfo() {
  return { active: keys[0].kid, alg: keys[0].alg, keys: keys.map((k) => ({ kid: k.kid, alg: k.alg })) };
}

let issuerUrl;

function rebuild() {
  current = buildProvider(issuerUrl);
}

function admin(req, res, url) {
  if (!args.admin) return json(res, 404, { error: 'not_found', error_description: 'start with --admin' });
  const p = url.pathname;
  if (req.method === 'GET' && p === '/admin/keys') return json(res, 200, keyInfo());
  if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
  if (p === '/admin/rotate') {
    // A new key becomes the active one; the old ones stay in JWKS unless ?retire=1.
    const alg = url.searchParams.get('alg') ?? keys[0].alg;
    if (!SUPPORTED_ALGS.has(alg)) return json(res, 400, { error: 'invalid_request', error_description: `unsupported alg ${alg}` });
    const k = newKey(alg);
    keys = url.searchParams.get('retire') === '1' ? [k] : [k, ...keys];
    if (args.keys) writeKeys(args.keys, keys);
    rebuild();
    log(`rotated: active key ${k.kid} (${alg}), ${keys.length} in JWKS`);
    return json(res, 200, keyInfo());
  }
  if (p === '/admin/retire') {
    // Drop every key but the active one from JWKS.
    keys = [keys[0]];
    if (args.keys) writeKeys(args.keys, keys);
    rebuild();
    log(`retired old keys: ${keys[0].kid} alone in JWKS`);
    return json(res, 200, keyInfo());
  }
  if (p === '/admin/reload') {
    reload();
    return json(res, 200, keyInfo());
  }
  return json(res, 404, { error: 'not_found' });
}

function reload() {
  try {
    settings = loadSettings();
    if (args.keys) {
      keys = readKeys(args.keys);
    }
    rebuild();
    log(`reloaded: ${settings.clients.length} clients, active key ${keys[0].kid}`);
  } catch (e) {
    log(`reload failed, keeping the previous configuration: ${e.message}`);
  }
}

// ------------------------------------------------------------------------------ main

try {
  settings = loadSettings();
  initKeys(settings.alg);
} catch (e) {
  fail(e.message);
}
if (!settings.clients.length) log('warning: no clients configured (--config or --client)');

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (!args.quiet) {
    res.on('finish', () => log(`${req.method} ${url.pathname} ${res.statusCode}`));
  }
  if (url.pathname.startsWith('/admin/')) return admin(req, res, url);
  if (req.method === 'GET' && url.pathname === '/healthz') return json(res, 200, { ok: true });
  return current.callback(req, res);
});
server.keepAliveTimeout = 5000;

server.on('error', (e) => fail(`cannot listen on ${args.host}:${args.port}: ${e.message}`));
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  issuerUrl = args.issuer ?? `http://${args.host}:${port}`;
  try {
    rebuild();
  } catch (e) {
    fail(e.message);
  }
  process.on('SIGHUP', reload);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Readiness line (the tests and the demo launcher wait for it).
  process.stdout.write(`idp listening on ${issuerUrl} (issuer ${issuerUrl}, port ${port}, ${settings.clients.length} clients, `
    + `active key ${keys[0].kid} ${keys[0].alg}${args.admin ? ', admin on' : ''})\n`);
});

// Keys in a file given by --keys must not be world-readable; say so once.
if (args.keys) {
  try {
    const mode = fs.statSync(args.keys).mode & 0o077;
    if (mode) log(`warning: ${path.resolve(args.keys)} is readable by others`);
  } catch { /* created above */ }
}
