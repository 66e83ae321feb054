"""A real OpenID provider for the OIDC tests: examples/idp/server.mjs (the `oidc-provider`
package) as a child process, plus the client side an application has (discovery, the
client-credentials grant) and the JWT surgery the negative tests need.

    idp = IdP(tmp_path, clients=[client("app", "s3cret", scope="llm")]).start()
    tok = idp.token("app", "s3cret", scope="llm")["access_token"]
    idp.rotate()          # a new signing key (new kid) becomes active; the old one stays in JWKS
    idp.stop(); idp.start()   # same port, same keys file: the same issuer comes back
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .procs import Managed, StartupError, free_port

REPO = Path(__file__).resolve().parents[2]
IDP_DIR = REPO / "examples" / "idp"
SERVER = IDP_DIR / "server.mjs"

_live: list["IdP"] = []


def idp_missing() -> str | None:
    """Why the IdP is not installed here (None: it is). The tests skip for this reason only;
    a missing `node` with the packages installed is a failure, not a skip."""
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"{IDP_DIR}/node_modules is missing: run `make deps` (npm ci --prefix examples/idp)"
    return None


def live_idps() -> list["IdP"]:
    return list(_live)


def client(client_id: str, secret: str, *, scope: str | None = None, claims: dict | None = None,
           ttl: int | None = None, resources: list[str] | None = None, header: dict | None = None) -> dict:
    """One client entry of the IdP config (see examples/idp/README.md)."""
    c: dict[str, Any] = {"client_id": client_id, "client_secret": secret}
    if scope is not None:
        c["scope"] = scope
    if claims is not None:
        c["claims"] = claims
    if ttl is not None:
        c["access_token_ttl"] = ttl
    if resources is not None:
        c["resources"] = resources
    if header is not None:
        c["header"] = header
    return c


class IdP:
    """examples/idp/server.mjs on 127.0.0.1, admin API on, keys in `<workdir>/keys.json`.

    The first start binds port 0 and reads the port from the `listening` line; later starts
    reuse that port (so the issuer, which includes it, stays the same)."""

    def __init__(self, workdir: Path, clients: list[dict], *, alg: str = "RS256", ttl: int = 300,
                 audience: str = "aigw", resource_servers: list[dict] | None = None, port: int = 0,
                 name: str = "idp", start_timeout: float = 20.0, issuer: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.alg = alg
        self.port = port
        self.start_timeout = start_timeout
        self.issuer_override = issuer  # another issuer's URL: forged tokens, signed with this IdP's keys
        self.config_path = self.workdir / f"{name}-config.json"
        self.keys_path = self.workdir / f"{name}-keys.json"
        cfg: dict[str, Any] = {"clients": clients, "access_token_ttl": ttl}
        cfg["resource_servers"] = resource_servers or [{"resource": "urn:aigw", "audience": audience}]
        self.config_path.write_text(json.dumps(cfg, indent=2))
        self.proc: Managed | None = None
        self._starts = 0
        self._discovery: dict | None = None

    # -- lifecycle

    def start(self) -> "IdP":
        if self.proc is not None and self.proc.alive():
            return self
        missing = idp_missing() or (None if shutil.which("node") else "node is not on PATH")
        if missing:
            raise StartupError(missing)
        argv = ["node", SERVER, "--port", str(self.port), "--config", self.config_path,
                "--keys", self.keys_path, "--alg", self.alg, "--admin"]
        if self.issuer_override:
            argv += ["--issuer", self.issuer_override]
        self.proc = Managed(f"{self.name}{self._starts or ''}", argv, self.workdir, cwd=IDP_DIR)
        self._starts += 1
        if self not in _live:
            _live.append(self)
        try:
            self.proc.wait_until("listening", lambda: "listening" in self.proc.stdout(), self.start_timeout)
        except StartupError as e:
            self.proc.stop()
            if self.port and "in use" in str(e).lower():
                raise StartupError(f"IdP port {self.port} taken meanwhile\n{e}") from None
            raise
        m = re.search(r"port (\d+)", self.proc.stdout())
        assert m, self.proc.output()
        self.port = int(m.group(1))
        self._discovery = None
        return self

    def stop(self) -> None:
        """Stops exactly the process this IdP started."""
        if self.proc is not None:
            self.proc.stop()
        if self in _live:
            _live.remove(self)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def __enter__(self) -> "IdP":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base(self) -> str:
        """Where this IdP listens."""
        assert self.port, "IdP never started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.issuer_override or self.base

    def write_config(self, **changes: Any) -> None:
        """Changes the config file and makes the running IdP re-read it (/admin/reload)."""
        cfg = json.loads(self.config_path.read_text())
        cfg.update(changes)
        self.config_path.write_text(json.dumps(cfg, indent=2))
        if self.proc is not None and self.proc.alive():
            _post_json(f"{self.base}/admin/reload")

    def logs(self) -> str:
        return self.proc.output() if self.proc else f"{self.name}: not started"

    # -- what an application does

    def discovery(self) -> dict:
        if self._discovery is None:
            doc = discover(self.base, expect=self.issuer)
            if self.issuer_override:  # endpoints name the other issuer's host: use ours
                doc = {k: (self.base + v[len(self.issuer):] if isinstance(v, str) and v.startswith(self.issuer)
                           else v) for k, v in doc.items()}
            self._discovery = doc
        return self._discovery

    def token(self, client_id: str, secret: str, *, scope: str | None = None, resource: str | None = None,
              auth: str = "basic") -> dict:
        """The client-credentials grant at the discovered token endpoint; the token response."""
        return client_credentials(self.discovery()["token_endpoint"], client_id, secret, scope=scope,
                                  resource=resource, auth=auth)

    def access_token(self, client_id: str, secret: str, **kw) -> str:
        return self.token(client_id, secret, **kw)["access_token"]

    def jwks(self) -> dict:
        return _get_json(self.discovery()["jwks_uri"])

    def jwks_bytes(self) -> bytes:
        """The JWKS document exactly as served."""
        with _opener.open(self.discovery()["jwks_uri"], timeout=5.0) as r:
            return r.read()

    # -- test controls (examples/idp/README.md, "Admin API")

    def rotate(self, alg: str | None = None, retire: bool = False) -> dict:
        q = {}
        if alg:
            q["alg"] = alg
        if retire:
            q["retire"] = "1"
        return _post_json(f"{self.base}/admin/rotate" + ("?" + urllib.parse.urlencode(q) if q else ""))

    def key_info(self) -> dict:
        return _get_json(f"{self.base}/admin/keys")


# --------------------------------------------------------------------------- OAuth client side


def discover(issuer: str, timeout: float = 5.0, expect: str | None = None) -> dict:
    doc = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout)
    if doc.get("issuer") != (expect or issuer):
        raise AssertionError(f"discovery issuer {doc.get('issuer')!r} != {expect or issuer!r}")
    return doc


def client_credentials(token_endpoint: str, client_id: str, secret: str, *, scope: str | None = None,
                       resource: str | None = None, auth: str = "basic", timeout: float = 5.0) -> dict:
    """POST grant_type=client_credentials (RFC 6749 4.4), client_secret_basic or _post."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    if resource:
        form["resource"] = resource
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if auth == "basic":
        cred = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    else:
        form.update(client_id=client_id, client_secret=secret)
    req = urllib.request.Request(token_endpoint, data=urllib.parse.urlencode(form).encode(), headers=headers,
                                 method="POST")
    try:
        with _opener.open(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise TokenError(e.code, e.read().decode("utf-8", "replace")) from None


class TokenError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"token endpoint answered {status}: {body}")
        self.status = status
        self.body = body


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with _opener.open(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=timeout) as r:
        return json.loads(r.read())


def _post_json(url: str, timeout: float = 10.0) -> Any:
    with _opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=timeout) as r:
        return json.loads(r.read())


def wait_token(idp: IdP, client_id: str, secret: str, timeout: float = 10.0, **kw) -> str:
    """A token once the IdP answers (after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return idp.access_token(client_id, secret, **kw)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --------------------------------------------------------------------------- JWT surgery


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode(token: str) -> tuple[dict, dict]:
    """Header and payload, unverified."""
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def encode_part(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def flip_signature_byte(token: str, index: int = 10) -> str:
    """The same token with one byte of the signature changed."""
    h, p, s = token.split(".")
    sig = bytearray(b64url_decode(s))
    sig[index % len(sig)] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(sig))}"


def with_payload(token: str, **changes: Any) -> str:
    """The token's header and signature around a changed payload (the signature no longer fits)."""
    h, _, s = token.split(".")
    payload = decode(token)[1]
    payload.update(changes)
    return f"{h}.{encode_part(payload)}.{s}"


def flip_payload_byte(token: str) -> str:
    """One character of the encoded payload changed, still valid base64url and JSON: the
    `sub` value's last letter swapped."""
    h, _, s = token.split(".")
    payload = decode(token)[1]
    sub = str(payload.get("sub", "x"))
    payload["sub"] = sub[:-1] + ("a" if sub[-1:] != "a" else "b")
    return f"{h}.{encode_part(payload)}.{s}"


def unsigned(token: str, alg: str = "none", *, keep_signature: bool = False, **changes: Any) -> str:
    """`alg: none`: the token's claims (plus changes) with an empty signature."""
    h, p, s = token.split(".")
    header = decode(token)[0]
    header["alg"] = alg
    payload = decode(token)[1]
    payload.update(changes)
    return f"{encode_part(header)}.{encode_part(payload)}.{s if keep_signature else ''}"


def hs256(token: str, secret: bytes, alg: str = "HS256", **changes: Any) -> str:
    """The token's claims re-signed with HMAC over `secret` (the key-confusion attack when
    `secret` is the issuer's public key)."""
    header = decode(token)[0]
    header["alg"] = alg
    payload = decode(token)[1]
    payload.update(changes)
    signing_input = f"{encode_part(header)}.{encode_part(payload)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


# RSA public key (JWK n, e) to PEM, with a minimal DER encoder (no crypto package needed).


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 8) // 8, "big")  # a leading 0 keeps it positive
    return _der(0x02, b)


def rsa_public_pem(jwk: dict, *, pkcs1: bool = False) -> bytes:
    """SubjectPublicKeyInfo PEM ("PUBLIC KEY"), or PKCS#1 ("RSA PUBLIC KEY")."""
    n = int.from_bytes(b64url_decode(jwk["n"]), "big")
    e = int.from_bytes(b64url_decode(jwk["e"]), "big")
    rsa_key = _der(0x30, _der_int(n) + _der_int(e))
    if pkcs1:
        der, label = rsa_key, "RSA PUBLIC KEY"
    else:
        alg_id = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
        der, label = _der(0x30, alg_id + _der(0x03, b"\x00" + rsa_key)), "PUBLIC KEY"
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def key_for(jwks: dict, kid: str) -> dict:
    for k in jwks["keys"]:
        if k.get("kid") == kid:
            return k
    raise KeyError(f"no key {kid!r} in {jwks}")
