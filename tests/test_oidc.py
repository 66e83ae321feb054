"""OIDC access tokens: a real OpenID provider (examples/idp, `oidc-provider`) issues JWTs by
the client-credentials grant over HTTP, and the gateway (real Envoy + filter + sidecar)
validates them, applies the access rules, and calls the providers with their own keys.

IdPs (module-wide, child processes stopped by PID):
  - A  RS256, audience `aigw` (resource `urn:other` gives audience `other-api`), leeway 1 s
  - B  ES256, audience `aigw-b` (resource `urn:aigw` gives `aigw`: wrong for B), default leeway
  - C  configured nowhere: its tokens are from an untrusted issuer
Tests that stop an IdP, rotate its keys or start the gateway while it is down use their own.

Skips only when examples/idp/node_modules is missing (`make deps` installs it).
"""

from __future__ import annotations

import base64
import json
import secrets as _secrets
import sys
import time
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from harness import GATEWAY_KEY_SECRET, Gateway, SilentListener, free_port, provider, wait_for
from harness.idp import (IdP, b64url, b64url_decode, client, decode, encode_part, flip_payload_byte,
                         flip_signature_byte, hs256, idp_missing, key_for, rsa_public_pem, unsigned,
                         wait_token, with_payload)
from harness.idp import TokenError, discover

REPO = Path(__file__).resolve().parents[1]

if idp_missing():
    pytest.skip(f"OIDC tests need the example IdP: {idp_missing()}", allow_module_level=True)

MESSAGES = [{"role": "user", "content": "Say hello"}]
CHAT_BODY = {"model": "gpt-mock", "messages": MESSAGES}
ANTHROPIC_BODY = {"model": "claude-mock", "max_tokens": 16, "messages": MESSAGES}

# Client secrets of the test IdPs (random per run; they never leave this process and the IdP).
S = {name: "cs-" + _secrets.token_hex(10) for name in (
    "app-llm", "app-plain", "agent-x", "azp-only", "contractor", "short", "later", "multi-aud",
    "refresher", "no-kid", "b-app", "b-short", "c-app", "imp-plain", "imp-kid", "imp-nokid", "imp-jwk",
    "imp-jku")}


def cl(name: str, **kw) -> dict:
    return client(name, S[name], **kw)


def a_clients() -> list[dict]:
    return [
        cl("app-llm", scope="llm admin llmx", claims={"groups": ["eng", "ml"]}),
        cl("app-plain", claims={"groups": ["sales"]}),
        # A service account whose subject is a user id, not the client id (Keycloak-style).
        cl("agent-x", claims={"sub": "user-alice", "groups": []}),
        # Only `azp` names the client (Entra/Keycloak-style tokens).
        cl("azp-only", claims={"client_id": None, "azp": "azp-only"}),
        cl("contractor", claims={"groups": ["eng-contractors"]}),
        cl("short", ttl=1),
        cl("later", claims={}, ttl=300) | {"nbf_offset": 3600},
        cl("multi-aud", claims={"aud": ["other-api", "aigw"]}),
        cl("refresher", scope="llm", ttl=3),
        cl("no-kid", header={"kid": None}),  # no key id in the JWS header
    ]


A_RESOURCES = [{"resource": "urn:aigw", "audience": "aigw"}, {"resource": "urn:other", "audience": "other-api"}]
B_RESOURCES = [{"resource": "urn:aigw-b", "audience": "aigw-b"}, {"resource": "urn:aigw", "audience": "aigw"}]


def oidc_entry(idp: IdP, audiences=("aigw",), **kw) -> dict:
    e = {"issuer": idp.issuer, "audiences": list(audiences)}
    e.update(kw)
    return e


def with_access(p: dict, access: list[dict] | None = None, **extra) -> dict:
    p = dict(p)
    if access is not None:
        p["access"] = access
    p.update(extra)
    return p


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def idp_a(tmp_path_factory):
    idp = IdP(tmp_path_factory.mktemp("idp-a"), a_clients(), alg="RS256", resource_servers=A_RESOURCES,
              name="idp-a").start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def idp_b(tmp_path_factory):
    idp = IdP(tmp_path_factory.mktemp("idp-b"), [cl("b-app"), cl("b-short", ttl=1)], alg="ES256",
              resource_servers=B_RESOURCES, name="idp-b").start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def idp_c(tmp_path_factory):
    """Configured in no gateway; same client names as A."""
    idp = IdP(tmp_path_factory.mktemp("idp-c"), [cl("c-app"), cl("app-llm", scope="llm")], alg="RS256",
              name="idp-c").start()
    yield idp
    idp.stop()


def policy_providers(mock) -> list[dict]:
    base = f"{mock.url}/v1"
    return [
        with_access(provider("by-subject", "openai-compatible", base), [{"subject": "user-alice"}]),
        with_access(provider("by-client", "openai-compatible", base),
                    [{"client_id": "app-llm"}, {"client_id": "azp-only"}]),
        with_access(provider("by-group", "openai-compatible", base), [{"group": "eng"}]),
        with_access(provider("by-scope", "openai-compatible", base), [{"scope": "llm"}]),
        with_access(provider("by-key", "openai-compatible", base), [{"api_key": "tests-hashed"}]),
        with_access(provider("anthropic-anon", "anthropic", mock.url, authorization_passthrough=True),
                    gateway_token_required=False),
    ]


def oidc_gateway(workdir, mock, keys, oidc: list[dict], *, providers=None, default_access=None,
                 name="oidc", **kw) -> Gateway:
    """A gateway (not started) with the standard providers plus the policy ones, and `oidc`."""
    from conftest import standard_api_keys, standard_providers

    gw = Gateway(workdir, providers if providers is not None else standard_providers(mock) + policy_providers(mock),
                 keys.secrets(), standard_api_keys(), name=name, **kw)
    gw.plugin["oidc"] = oidc
    if default_access is not None:
        gw.plugin["default_access"] = default_access
    return gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory, _upstream_server, keys, idp_a, idp_b):
    """The module's gateway: issuers A and B, no default_access (any authenticated caller)."""
    g = oidc_gateway(tmp_path_factory.mktemp("oidc-gw"), _upstream_server, keys, [
        oidc_entry(idp_a, ["aigw"], algorithms=["RS256", "ES256"], leeway_secs=1),
        oidc_entry(idp_b, ["aigw-b"], algorithms=["ES256"]),
    ], name="oidc-shared")
    g.start()
    yield g
    g.stop()


@pytest.fixture
def private_gw(tmp_path, _upstream_server, keys):
    """`private_gw(oidc=[...], **kw)`: a started gateway of the test's own, stopped after it."""
    started: list[Gateway] = []

    def make(oidc: list[dict], name="oidc-private", **kw) -> Gateway:
        g = oidc_gateway(tmp_path / f"{name}{len(started)}", _upstream_server, keys, oidc, name=name, **kw)
        started.append(g)
        return g.start()

    yield make
    for g in started:
        g.stop()


@pytest.fixture
def private_idp(tmp_path):
    started: list[IdP] = []

    def make(clients=None, name="idp-p", **kw) -> IdP:
        idp = IdP(tmp_path / f"{name}{len(started)}", clients if clients is not None else a_clients(),
                  resource_servers=kw.pop("resource_servers", A_RESOURCES), name=name, **kw)
        started.append(idp)
        return idp.start()

    yield make
    for idp in started:
        idp.stop()


def wait_keys_loaded(g: Gateway, idp: IdP, timeout: float = 5.0) -> None:
    """Until the sidecar says it has the issuer's keys (its start-up fetch is asynchronous), so
    a test's first token does not spend the on-demand refetch. Goes on after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f"issuer={idp.issuer}" in g.sidecar.stderr() and "keys loaded" in g.sidecar.stderr():
            return
        time.sleep(0.05)


def tok(idp: IdP, name: str, **kw) -> str:
    """A token for client `name`, fetched over HTTP by the client-credentials grant."""
    return idp.access_token(name, S[name], **kw)


# --------------------------------------------------------------------------- checks


def chat(g: Gateway, prov: str, headers) -> "object":
    return g.request("POST", f"/llm/v1/providers/{prov}/chat/completions", headers, CHAT_BODY)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def assert_gateway_error(r, status: int, code: str | tuple[str, ...]) -> dict:
    codes = code if isinstance(code, tuple) else (code,)
    assert r.status == status, f"expected {status} {codes}, got {r}"
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    body = r.json()
    assert body.get("type") == "error" and body.get("source") == "gateway", body
    assert body["error"].get("code") in codes, body
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    return body


def assert_rejected(r, upstream, code=("invalid_credential",), *secrets: str) -> dict:
    """401 in the gateway's shape with an RFC 6750 challenge; nothing forwarded; no secret echoed."""
    body = assert_gateway_error(r, 401, code)
    assert body["error"]["type"] == "authentication_error", body
    challenge = r.header("www-authenticate") or ""
    assert challenge.lower().startswith("bearer"), f"WWW-Authenticate: {challenge!r} ({r})"
    if "missing_credential" not in (body["error"]["code"],):
        assert 'error="invalid_token"' in challenge, f"WWW-Authenticate: {challenge!r}"
    assert upstream.requests == [], f"forwarded: {[x.path for x in upstream.requests]}"
    for s in secrets:
        assert s not in r.body.decode("utf-8", "replace"), "the reply echoes the token"
    return body


def assert_denied(r, upstream, prov: str, *private: str) -> dict:
    body = assert_gateway_error(r, 403, "access_denied")
    assert body["error"]["type"] == "permission_error", body
    assert prov in body["error"]["message"], body
    text = r.body.decode()
    for p in private:
        assert p not in text, f"the 403 reveals {p!r}: {body}"
    assert upstream.requests == [], f"forwarded: {[x.path for x in upstream.requests]}"
    return body


def assert_clean(rec, token: str, upstream_key: str | None, header: str = "authorization", *private: str):
    """What the provider gets: its own key, never the token, no principal."""
    if upstream_key is not None:
        want = [f"Bearer {upstream_key}"] if header == "authorization" else [upstream_key]
        assert rec.header_all(header) == want, rec.headers
    for part in [token, *token.split(".")]:
        assert not rec.contains(part), f"the token (or a part of it) went upstream: {rec.headers}"
    assert token.encode() not in rec.body
    names = rec.header_names()
    assert "x-gateway-token" not in names and not any(n.startswith("x-aigw") for n in names), names
    for p in private:
        assert not any(p == v or p in v.split() for _, v in rec.headers), f"principal {p!r} sent upstream"


# =========================================================================== the IdP alone


def test_idp_discovery_and_client_credentials(idp_a):
    doc = discover(idp_a.issuer)
    assert doc["issuer"] == idp_a.issuer
    assert doc["token_endpoint"].startswith(idp_a.issuer)
    assert doc["jwks_uri"].startswith(idp_a.issuer)
    assert "client_credentials" in doc["grant_types_supported"]
    resp = idp_a.token("app-llm", S["app-llm"], scope="llm")
    assert resp["token_type"] == "Bearer" and resp["expires_in"] == 300 and resp["scope"] == "llm"
    header, claims = decode(resp["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    assert header["kid"] in {k["kid"] for k in idp_a.jwks()["keys"]}
    assert claims["iss"] == idp_a.issuer and claims["aud"] == "aigw"
    assert claims["sub"] == claims["client_id"] == "app-llm"
    assert claims["groups"] == ["eng", "ml"] and claims["scope"] == "llm"
    assert claims["exp"] - claims["iat"] == 300
    # client_secret_post works too; wrong secrets and disallowed scopes do not.
    assert idp_a.token("app-llm", S["app-llm"], auth="post")["access_token"]
    with pytest.raises(TokenError) as ei:
        idp_a.token("app-llm", "wrong")
    assert ei.value.status == 401 and "invalid_client" in ei.value.body
    with pytest.raises(TokenError) as ei:
        idp_a.token("refresher", S["refresher"], scope="admin")
    assert ei.value.status == 400 and "invalid_scope" in ei.value.body
    # Another resource indicator: another audience.
    assert decode(tok(idp_a, "app-plain", resource="urn:other"))[1]["aud"] == "other-api"


def test_idp_es256_and_claim_overrides(idp_a, idp_b):
    h, c = decode(tok(idp_b, "b-app"))
    assert h["alg"] == "ES256" and c["aud"] == "aigw-b"
    assert {k["kty"] for k in idp_b.jwks()["keys"]} == {"EC"}
    c = decode(tok(idp_a, "agent-x"))[1]
    assert c["sub"] == "user-alice" and c["client_id"] == "agent-x"
    c = decode(tok(idp_a, "azp-only"))[1]
    assert "client_id" not in c and c["azp"] == "azp-only"
    c = decode(tok(idp_a, "later"))[1]
    assert c["nbf"] == c["iat"] + 3600
    assert decode(tok(idp_a, "short"))[1]["exp"] - decode(tok(idp_a, "short"))[1]["iat"] == 1


def test_idp_key_rotation(private_idp):
    idp = private_idp(name="idp-rot-alone")
    k1 = decode(tok(idp, "app-plain"))[0]["kid"]
    info = idp.rotate()
    k2 = info["active"]
    assert k2 != k1 and [k["kid"] for k in info["keys"]] == [k2, k1]
    assert decode(tok(idp, "app-plain"))[0]["kid"] == k2
    assert {k["kid"] for k in idp.jwks()["keys"]} == {k1, k2}
    info = idp.rotate(alg="ES256")
    h = decode(tok(idp, "app-plain"))[0]
    assert h["alg"] == "ES256" and h["kid"] == info["active"]
    # A restart keeps the key set (--keys file).
    idp.stop()
    idp.start()
    assert decode(tok(idp, "app-plain"))[0]["kid"] == info["active"]
    info = idp.rotate(retire=True)
    assert [k["kid"] for k in idp.jwks()["keys"]] == [info["active"]]


# =========================================================================== valid tokens


def test_openai_sdk_with_token(gw, upstream, keys, idp_a):
    token = tok(idp_a, "app-llm", scope="llm")
    c = openai.OpenAI(api_key=token, base_url=gw.url("openai"), max_retries=0, timeout=15)
    r = c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert r.choices[0].message.content == upstream.answer
    rec = upstream.only()
    assert rec.path == "/v1/chat/completions"
    assert_clean(rec, token, keys.openai, "authorization", "app-llm")


def test_openai_sdk_streaming_with_token(gw, upstream, keys, idp_a):
    token = tok(idp_a, "app-plain")
    c = openai.OpenAI(api_key=token, base_url=gw.url("openai"), max_retries=0, timeout=15)
    chunks = list(c.chat.completions.create(model="gpt-mock-chunks3", messages=MESSAGES, stream=True))
    assert len([x for x in chunks if x.choices and x.choices[0].delta.content]) == 3
    assert_clean(upstream.only(), token, keys.openai)


def test_anthropic_sdk_with_token(gw, upstream, keys, idp_a):
    token = tok(idp_a, "app-llm", scope="llm")
    for c in (anthropic.Anthropic(api_key=token, base_url=gw.url("anthropic"), max_retries=0, timeout=15),
              anthropic.Anthropic(auth_token=token, base_url=gw.url("anthropic"), max_retries=0, timeout=15)):
        upstream.reset()
        m = c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
        assert m.content[0].text == upstream.answer
        rec = upstream.only()
        assert rec.header("authorization") is None
        assert_clean(rec, token, keys.anthropic, "x-api-key", "app-llm")


def test_google_sdk_with_token(gw, upstream, keys, idp_b):
    token = tok(idp_b, "b-app", resource="urn:aigw-b")
    c = genai.Client(api_key=token, http_options=genai_types.HttpOptions(base_url=gw.url("google"), timeout=15_000))
    r = c.models.generate_content(model="gemini-mock", contents="Say hello")
    assert r.text == upstream.answer
    rec = upstream.only()
    assert rec.header("authorization") is None
    assert_clean(rec, token, keys.google, "x-goog-api-key", "b-app")


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "x-goog-api-key", "x-gateway-token"])
def test_raw_token_in_each_sdk_location(gw, upstream, keys, idp_a, header):
    token = tok(idp_a, "app-plain")
    value = f"Bearer {token}" if header == "Authorization" else token
    r = chat(gw, "openai", [(header, value)])
    assert r.status == 200, r
    assert_clean(upstream.only(), token, keys.openai, "authorization", "app-plain")


def test_token_in_google_query_key(gw, upstream, keys, idp_a):
    """Google clients that put the key in `?key=`: a token there works and is taken out."""
    t = tok(idp_a, "app-plain")
    r = gw.request("POST", f"/llm/v1/providers/google/v1/models/gemini-mock:generateContent?key={t}",
                   [], {"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status == 200, r
    rec = upstream.only()
    assert "key=" not in (rec.query or "")
    assert_clean(rec, t, keys.google, "x-goog-api-key")


def test_same_token_twice_is_not_ambiguous(gw, upstream, keys, idp_a):
    token = tok(idp_a, "app-plain")
    r = chat(gw, "openai", [("Authorization", f"Bearer {token}"), ("x-api-key", token)])
    assert r.status == 200, r
    other = tok(idp_a, "app-llm")
    upstream.reset()
    r = chat(gw, "openai", [("Authorization", f"Bearer {token}"), ("x-api-key", other)])
    assert_gateway_error(r, 400, "ambiguous_credentials")
    assert upstream.requests == []


def test_example_client_refreshes_token_before_expiry(gw, upstream, keys, idp_a):
    """examples/oidc_client_credentials.py against this gateway: one cached token for calls
    within its life, a new one before it expires (3 s tokens, 1 s margin)."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import oidc_client_credentials as ex
    finally:
        sys.path.remove(str(REPO / "examples"))
    tokens = ex.ClientCredentialsTokens(idp_a.issuer, "refresher", S["refresher"], scope="llm", margin=1.0)
    c = ex.openai_client(gw.base, "openai", tokens)
    seen = []
    for _ in range(2):
        c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
        seen.append(upstream.last().header("authorization"))
    assert tokens.fetched == 1
    time.sleep(2.2)  # past lifetime - margin
    c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert tokens.fetched == 2
    assert len(upstream.requests) == 3
    assert set(seen) == {f"Bearer {keys.openai}"}
    assert upstream.last().header("authorization") == f"Bearer {keys.openai}"


def test_principal_and_token_never_upstream(gw, upstream, keys, idp_a):
    token = tok(idp_a, "agent-x")
    assert chat(gw, "local", bearer(token)).status == 200
    rec = upstream.only()
    assert rec.header("authorization") is None  # keyless provider: nothing at all
    assert_clean(rec, token, None, "authorization", "user-alice", "agent-x")


# =========================================================================== rejected tokens


def test_missing_token(gw, upstream):
    r = chat(gw, "openai", [])
    assert_rejected(r, upstream, ("missing_credential",))


@pytest.mark.timeout(20)
def test_expired_token_and_leeway(gw, upstream, keys, idp_a, idp_b):
    """A: leeway 1 s, so its 1 s token fails ~2 s after it expired. B: default leeway (30 s)
    still accepts its expired 1 s token."""
    ta = tok(idp_a, "short")
    tb = tok(idp_b, "b-short", resource="urn:aigw-b")
    assert chat(gw, "openai", bearer(ta)).status == 200
    exp = max(decode(ta)[1]["exp"], decode(tb)[1]["exp"])
    while time.time() < exp + 2.5:
        time.sleep(0.1)
    upstream.reset()
    r = chat(gw, "openai", bearer(ta))
    body = assert_rejected(r, upstream, ("invalid_credential",), ta)
    assert "expired" in body["error"]["message"]
    r = chat(gw, "openai", bearer(tb))
    assert r.status == 200, f"B's token expired {time.time() - exp:.1f} s ago is within the 30 s leeway: {r}"
    # How the SDK surfaces it.
    upstream.reset()
    c = openai.OpenAI(api_key=ta, base_url=gw.url("openai"), max_retries=0, timeout=15)
    with pytest.raises(openai.AuthenticationError) as ei:
        c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert ei.value.status_code == 401 and ei.value.code == "invalid_credential"
    assert upstream.requests == []


def test_not_yet_valid_token(gw, upstream, idp_a):
    t = tok(idp_a, "later")
    assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)


def test_wrong_audience(gw, upstream, keys, idp_a, idp_b):
    t = tok(idp_a, "app-plain", resource="urn:other")
    assert decode(t)[1]["aud"] == "other-api"
    body = assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)
    assert "audience" in body["error"]["message"]
    # Audiences are per issuer: `aigw` is A's, not B's.
    t = tok(idp_b, "b-app", resource="urn:aigw")
    assert decode(t)[1]["aud"] == "aigw"
    assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)
    # A token for several audiences, one of them ours.
    t = tok(idp_a, "multi-aud")
    assert decode(t)[1]["aud"] == ["other-api", "aigw"]
    assert chat(gw, "openai", bearer(t)).status == 200
    assert_clean(upstream.only(), t, keys.openai)


def test_wrong_issuer(gw, upstream, idp_a, idp_c):
    """C is a real IdP, trusted nowhere; it even has a client named like one of A's."""
    tokens = (tok(idp_c, "c-app"), tok(idp_c, "app-llm", scope="llm"))
    jwks_before = idp_c.logs().count("/jwks")
    disc_before = idp_c.logs().count("openid-configuration")
    for t in tokens:
        body = assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)
        assert "issuer" in body["error"]["message"]
    # The gateway never fetches keys from an issuer it does not trust (no SSRF by `iss`).
    assert idp_c.logs().count("/jwks") == jwks_before
    assert idp_c.logs().count("openid-configuration") == disc_before
    # C's token claiming to be A's: A has no such key (nor would the signature fit).
    t = with_payload(tok(idp_c, "c-app"), iss=idp_a.issuer)
    assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)
    # A's token with `iss` changed to C's or to a look-alike of A's.
    for iss in (idp_c.issuer, idp_a.issuer + "/", idp_a.issuer.replace("127.0.0.1", "localhost")):
        t = with_payload(tok(idp_a, "app-plain"), iss=iss)
        assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)


@pytest.mark.parametrize("how", ["sig-first-byte", "sig-middle-byte", "sig-last-byte", "sig-truncated",
                                 "sig-empty", "payload-sub", "payload-exp", "payload-aud", "payload-scope",
                                 "header-kid-of-b"])
def test_tampered_token(gw, upstream, idp_a, idp_b, how):
    t = tok(idp_a, "app-plain")
    h, p, s = t.split(".")
    sig = b64url_decode(s)
    if how == "sig-first-byte":
        bad = flip_signature_byte(t, 0)
    elif how == "sig-middle-byte":
        bad = flip_signature_byte(t, len(sig) // 2)
    elif how == "sig-last-byte":
        bad = flip_signature_byte(t, len(sig) - 1)
    elif how == "sig-truncated":
        bad = f"{h}.{p}.{b64url(sig[:-8])}"
    elif how == "sig-empty":
        bad = f"{h}.{p}."
    elif how == "payload-sub":
        bad = flip_payload_byte(t)
    elif how == "payload-exp":
        bad = with_payload(t, exp=decode(t)[1]["exp"] + 86400)
    elif how == "payload-aud":
        bad = with_payload(tok(idp_a, "app-plain", resource="urn:other"), aud="aigw")
    elif how == "payload-scope":
        bad = with_payload(t, scope="llm")
    else:  # A's claims and signature under B's key id
        header = decode(t)[0] | {"kid": decode(tok(idp_b, "b-app"))[0]["kid"]}
        bad = f"{encode_part(header)}.{p}.{s}"
    assert bad != t
    assert_rejected(chat(gw, "by-scope" if how == "payload-scope" else "openai", bearer(bad)), upstream,
                    ("invalid_credential",), bad)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("keep_signature", [False, True], ids=["no-sig", "old-sig"])
def test_alg_none(gw, upstream, idp_a, alg, keep_signature):
    t = unsigned(tok(idp_a, "app-plain"), alg, keep_signature=keep_signature)
    assert decode(t)[0]["alg"] == alg
    assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)


def _public_key_secrets(idp: IdP, kid: str) -> dict[str, bytes]:
    """Every form of the issuer's public key an HS256 key-confusion attacker would try."""
    raw = idp.jwks_bytes()
    jwk = key_for(json.loads(raw), kid)
    pem = rsa_public_pem(jwk)
    return {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pem-pkcs1": rsa_public_pem(jwk, pkcs1=True),
        "der": base64.b64decode(b"".join(pem.splitlines()[1:-1])),
        "jwk-json": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwks-document": raw,
        "n": b64url_decode(jwk["n"]),
    }


@pytest.mark.parametrize("form", ["pem", "pem-no-newline", "pem-pkcs1", "der", "jwk-json", "jwks-document", "n"])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_hmac_with_the_rsa_public_key(gw, upstream, idp_a, form, alg):
    t = tok(idp_a, "app-plain")
    secret = _public_key_secrets(idp_a, decode(t)[0]["kid"])[form]
    bad = hs256(t, secret, alg)
    assert decode(bad)[0] == decode(t)[0] | {"alg": alg}
    assert_rejected(chat(gw, "openai", bearer(bad)), upstream, ("invalid_credential",), bad)


def test_hmac_with_the_ec_public_key(gw, upstream, idp_b):
    t = tok(idp_b, "b-app", resource="urn:aigw-b")
    jwk = key_for(idp_b.jwks(), decode(t)[0]["kid"])
    for secret in (json.dumps(jwk, separators=(",", ":")).encode(), b64url_decode(jwk["x"]) + b64url_decode(jwk["y"])):
        bad = hs256(t, secret)
        assert_rejected(chat(gw, "openai", bearer(bad)), upstream, ("invalid_credential",), bad)


def test_token_without_kid(gw, upstream, keys, idp_a):
    """No `kid`: A has a single RSA key, so the key is unambiguous."""
    t = tok(idp_a, "no-kid")
    assert "kid" not in decode(t)[0]
    r = chat(gw, "openai", bearer(t))
    assert r.status == 200, r
    assert_clean(upstream.only(), t, keys.openai)


def test_signed_by_an_impostor(gw, upstream, idp_a, private_idp):
    """Another IdP issues tokens naming A as issuer, signed with its own keys: with its own
    kid, with A's kid, with no kid, with its public key embedded (`jwk`) or linked (`jku`).
    All refused, and the gateway fetches nothing from the impostor."""
    imp = private_idp([cl("imp-plain")], name="impostor", issuer=idp_a.issuer)
    a_kid = decode(tok(idp_a, "app-plain"))[0]["kid"]
    imp_jwk = imp.jwks()["keys"][0]
    imp.write_config(clients=[
        cl("imp-plain"),
        cl("imp-kid", header={"kid": a_kid}),
        cl("imp-nokid", header={"kid": None}),
        cl("imp-jwk", header={"jwk": imp_jwk, "kid": imp_jwk["kid"]}),
        cl("imp-jku", header={"jku": imp.discovery()["jwks_uri"], "kid": imp_jwk["kid"]}),
    ])
    forged = {name: tok(imp, name) for name in ("imp-plain", "imp-kid", "imp-nokid", "imp-jwk", "imp-jku")}
    assert decode(forged["imp-kid"])[0]["kid"] == a_kid and "kid" not in decode(forged["imp-nokid"])[0]
    assert decode(forged["imp-jwk"])[0]["jwk"] == imp_jwk
    fetched_before = imp.logs().count("GET /jwks") + imp.logs().count("openid-configuration")
    for name, t in forged.items():
        assert decode(t)[1]["iss"] == idp_a.issuer
        upstream.reset()
        assert_rejected(chat(gw, "openai", bearer(t)), upstream, ("invalid_credential",), t)
    assert imp.logs().count("GET /jwks") + imp.logs().count("openid-configuration") == fetched_before


@pytest.mark.parametrize("value", [
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",  # JWT-shaped, no iss
    "eyJhbGciOiJSUzI1NiJ9.%%%.c2ln",  # bad base64
    "eyJub3QganNvbg.eyJub3QganNvbg.c2ln",  # not JSON
    "a.b.c",
])
def test_garbage_jwt_shapes(gw, upstream, value):
    assert_rejected(chat(gw, "openai", bearer(value)), upstream, ("invalid_credential",), value)


@pytest.mark.timeout(30)
def test_unknown_kid_flood_is_rate_limited(gw, upstream, idp_a):
    """Tokens with made-up key ids make the gateway refetch A's JWKS at most once in a burst,
    and no request waits long for it."""
    t = tok(idp_a, "app-plain")
    h = decode(t)[0]
    before = idp_a.logs().count("GET /jwks")
    for i in range(25):
        bad = f"{encode_part(h | {'kid': f'made-up-{i}-{_secrets.token_hex(4)}'})}.{t.split('.', 1)[1]}"
        r = chat(gw, "openai", bearer(bad))
        assert_rejected(r, upstream, ("invalid_credential",), bad)
        assert r.elapsed < 1.5, f"request {i} took {r.elapsed:.2f} s"
    time.sleep(0.3)
    fetched = idp_a.logs().count("GET /jwks") - before
    assert fetched <= 2, f"{fetched} JWKS fetches for 25 unknown kids"
    assert chat(gw, "openai", bearer(t)).status == 200


# =========================================================================== issuers


def test_two_issuers_at_once(gw, upstream, keys, idp_a, idp_b):
    ta = tok(idp_a, "app-plain")
    tb = tok(idp_b, "b-app", resource="urn:aigw-b")
    for t in (ta, tb, ta, tb):
        upstream.reset()
        r = chat(gw, "openai", bearer(t))
        assert r.status == 200, r
        assert_clean(upstream.only(), t, keys.openai)


def test_algorithm_allowlist_per_issuer(private_gw, private_idp, upstream, keys):
    """B-like issuer allowing only ES256: its RS256 and PS256 tokens are refused even though
    the keys are in its JWKS."""
    idp = private_idp(name="idp-es-only", alg="ES256")
    g = private_gw([oidc_entry(idp, ["aigw"], algorithms=["ES256"])], name="es-only")
    assert chat(g, "openai", bearer(tok(idp, "app-plain"))).status == 200
    for alg in ("RS256", "PS256", "EdDSA"):
        idp.rotate(alg=alg)
        t = tok(idp, "app-plain")
        assert decode(t)[0]["alg"] == alg
        upstream.reset()
        body = assert_rejected(chat(g, "openai", bearer(t)), upstream, ("invalid_credential",), t)
        assert "algorithm" in body["error"]["message"]


# =========================================================================== key rotation


@pytest.mark.timeout(40)
def test_key_rotation_without_restart(private_gw, private_idp, upstream, keys):
    idp = private_idp(name="idp-rot")
    g = private_gw([oidc_entry(idp, ["aigw"], algorithms=["RS256", "ES256"])], name="rotation")
    sidecar_pid = g.sidecar.pid
    wait_keys_loaded(g, idp)
    t1 = tok(idp, "app-plain")
    assert chat(g, "openai", bearer(t1)).status == 200

    k2 = idp.rotate()["active"]
    t2 = tok(idp, "app-plain")
    assert decode(t2)[0]["kid"] == k2
    upstream.reset()
    r = chat(g, "openai", bearer(t2))  # the first try: the unknown kid makes the gateway refetch
    assert r.status == 200, f"token with the new kid {k2} refused right after rotation: {r}"
    assert_clean(upstream.only(), t2, keys.openai)
    assert r.elapsed < 1.5, r.elapsed
    assert chat(g, "openai", bearer(t1)).status == 200, "the old key is still published"

    # Another rotation, to ES256, right away: within the gateway's on-demand refetch interval
    # (a flood of unknown kids must not hammer the IdP), so the new key may be refused for a
    # few seconds, but is accepted once the gateway may refetch; no restart.
    k3 = idp.rotate(alg="ES256")["active"]
    t3 = tok(idp, "app-plain")
    assert decode(t3)[0] == {"alg": "ES256", "typ": "at+jwt", "kid": k3}
    t0 = time.monotonic()
    while True:
        upstream.reset()
        r = chat(g, "openai", bearer(t3))
        if r.status == 200:
            break
        assert_rejected(r, upstream, ("invalid_credential",), t3)
        assert time.monotonic() - t0 < 8.0, f"the ES256 key {k3} is still refused 8 s after the rotation"
        time.sleep(0.25)
    for t in (t1, t2, t3):
        assert chat(g, "openai", bearer(t)).status == 200
    assert g.sidecar.alive() and g.sidecar.pid == sidecar_pid


@pytest.mark.timeout(30)
def test_retired_key_is_refused_after_refresh(private_gw, private_idp, upstream):
    idp = private_idp(name="idp-retire")
    g = private_gw([oidc_entry(idp, ["aigw"], jwks_refresh_secs=1)], name="retire")
    old = tok(idp, "app-plain")
    assert chat(g, "openai", bearer(old)).status == 200
    idp.rotate(retire=True)
    new = tok(idp, "app-plain")
    assert chat(g, "openai", bearer(new)).status == 200
    t0 = time.monotonic()
    while chat(g, "openai", bearer(old)).status == 200:
        assert time.monotonic() - t0 < 5.0, "a key no longer in JWKS is still accepted 5 s later"
        time.sleep(0.2)
    upstream.reset()
    assert_rejected(chat(g, "openai", bearer(old)), upstream, ("invalid_credential",), old)
    assert chat(g, "openai", bearer(new)).status == 200


# =========================================================================== IdP outages


@pytest.mark.timeout(30)
def test_idp_down_with_keys_cached(private_gw, private_idp, upstream, keys):
    idp = private_idp(name="idp-down")
    g = private_gw([oidc_entry(idp, ["aigw"])], name="idp-down")
    t1, t2 = tok(idp, "app-plain"), tok(idp, "app-llm", scope="llm")
    assert chat(g, "openai", bearer(t1)).status == 200
    idp.stop()
    for t in (t1, t2, t1):
        upstream.reset()
        r = chat(g, "openai", bearer(t))
        assert r.status == 200, f"cached keys must keep working while the IdP is down: {r}"
        assert_clean(upstream.only(), t, keys.openai)
    # An unknown kid now cannot be looked up: refused as invalid, quickly.
    h = decode(t1)[0] | {"kid": "not-there"}
    bad = f"{encode_part(h)}.{t1.split('.', 1)[1]}"
    upstream.reset()
    r = chat(g, "openai", bearer(bad))
    assert_rejected(r, upstream, ("invalid_credential",), bad)
    assert r.elapsed < 2.0, r.elapsed
    idp.start()
    assert chat(g, "openai", bearer(wait_token(idp, "app-plain", S["app-plain"]))).status == 200


@pytest.mark.timeout(40)
def test_idp_down_at_start_then_back(tmp_path, private_gw, private_idp, upstream, keys):
    """The gateway starts while its issuer is down: tokens get 503 identity_provider_unavailable
    (API keys still work); when the IdP comes back the same token works, no restart."""
    idp = private_idp(name="idp-late", port=free_port())
    token = tok(idp, "app-plain")
    idp.stop()
    g = private_gw([oidc_entry(idp, ["aigw"])], name="idp-late")
    sidecar_pid = g.sidecar.pid
    r = chat(g, "openai", bearer(token))
    body = assert_gateway_error(r, 503, "identity_provider_unavailable")
    assert body["error"]["type"] == "api_error" and body["error"]["status"] == "UNAVAILABLE", body
    assert token not in r.body.decode()
    assert upstream.requests == []
    assert r.elapsed < 2.0, r.elapsed
    # The SDKs see it as a server error (and could retry).
    c = openai.OpenAI(api_key=token, base_url=g.url("openai"), max_retries=0, timeout=15)
    with pytest.raises(openai.InternalServerError) as ei:
        c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert ei.value.status_code == 503 and ei.value.code == "identity_provider_unavailable"
    # Other credentials are unaffected.
    assert chat(g, "openai", bearer(keys.gateway)).status == 200
    upstream.reset()
    assert_rejected(chat(g, "openai", bearer("gw-not-a-key")), upstream, ("invalid_credential",))
    upstream.reset()
    assert_rejected(chat(g, "openai", []), upstream, ("missing_credential",))

    idp.start()
    t0 = time.monotonic()
    while True:
        upstream.reset()
        r = chat(g, "openai", bearer(token))
        if r.status == 200:
            break
        assert r.status == 503, r
        assert time.monotonic() - t0 < 12.0, f"still {r} 12 s after the IdP came back"
        time.sleep(0.25)
    assert_clean(upstream.only(), token, keys.openai)
    assert g.sidecar.pid == sidecar_pid and g.sidecar.alive()


@pytest.mark.timeout(20)
def test_idp_hung_at_start_answers_503_quickly(private_gw, private_idp, upstream):
    """An issuer that accepts connections and never answers: the request is not held for
    the gateway's HTTP timeout."""
    hung = SilentListener()
    try:
        fake_issuer = f"http://127.0.0.1:{hung.port}"
        idp = private_idp(name="idp-forge")
        g = private_gw([{"issuer": fake_issuer, "audiences": ["aigw"]}], name="idp-hung")
        token = with_payload(tok(idp, "app-plain"), iss=fake_issuer)
        r = chat(g, "openai", bearer(token))
        assert_gateway_error(r, 503, "identity_provider_unavailable")
        assert r.elapsed < 2.0, f"held {r.elapsed:.1f} s"
        assert upstream.requests == []
    finally:
        hung.close()


# =========================================================================== API keys next to OIDC


@pytest.mark.timeout(30)
def test_api_keys_valid_and_revoked(private_gw, private_idp, upstream, keys):
    idp = private_idp(name="idp-keys")
    g = private_gw([oidc_entry(idp, ["aigw"])], name="apikeys")
    token = tok(idp, "app-plain")
    assert chat(g, "openai", bearer(keys.gateway)).status == 200
    assert chat(g, "openai", bearer(keys.hashed_gateway)).status == 200
    assert chat(g, "openai", bearer(token)).status == 200

    # Changed: the old key stops working within 2 s.
    g.set_secret(GATEWAY_KEY_SECRET, "gw-test-" + _secrets.token_hex(12))
    t0 = time.monotonic()
    while chat(g, "openai", bearer(keys.gateway)).status == 200:
        assert time.monotonic() - t0 < 2.5, "a replaced gateway key still works after 2.5 s"
        time.sleep(0.1)
    upstream.reset()
    assert_rejected(chat(g, "openai", bearer(keys.gateway)), upstream, ("invalid_credential",), keys.gateway)

    # Removed: the same.
    (g.secrets_dir / "AIGW_HASHED_KEY").unlink()
    t0 = time.monotonic()
    while chat(g, "openai", bearer(keys.hashed_gateway)).status == 200:
        assert time.monotonic() - t0 < 2.5, "a gateway key whose secret file is gone still works after 2.5 s"
        time.sleep(0.1)
    upstream.reset()
    r = chat(g, "openai", bearer(keys.hashed_gateway))
    assert_rejected(r, upstream, ("invalid_credential",), keys.hashed_gateway)
    # OIDC is unaffected.
    assert chat(g, "openai", bearer(token)).status == 200


# =========================================================================== access rules


POLICY = [
    # provider, caller (IdP A client name | "key:<name>"), scope, allowed
    ("by-subject", "agent-x", None, True),
    ("by-subject", "app-llm", None, False),
    ("by-subject", "key:tests", None, False),
    ("by-client", "app-llm", None, True),
    ("by-client", "azp-only", None, True),
    ("by-client", "app-plain", None, False),
    ("by-client", "agent-x", None, False),
    ("by-group", "app-llm", None, True),
    ("by-group", "app-plain", None, False),
    ("by-group", "contractor", None, False),
    ("by-group", "agent-x", None, False),
    ("by-scope", "app-llm", "llm", True),
    ("by-scope", "app-llm", "admin llm", True),
    ("by-scope", "app-llm", "admin", False),
    ("by-scope", "app-llm", "llmx", False),
    ("by-scope", "app-llm", None, False),
    ("by-scope", "app-plain", "llm", True),
    ("by-key", "key:tests-hashed", None, True),
    ("by-key", "key:tests", None, False),
    ("by-key", "app-llm", "llm", False),
    # No access list and no default_access: every authenticated caller.
    ("openai", "app-plain", None, True),
    ("openai", "agent-x", None, True),
    ("openai", "key:tests", None, True),
]


def _credential(caller: str, scope, idp_a, keys) -> tuple[str, list[str]]:
    if caller.startswith("key:"):
        name = caller[4:]
        return {"tests": keys.gateway, "tests-hashed": keys.hashed_gateway}[name], []
    t = tok(idp_a, caller, scope=scope) if scope else tok(idp_a, caller)
    c = decode(t)[1]
    return t, [v for v in (c.get("sub"), c.get("client_id"), c.get("azp")) if v]


@pytest.mark.parametrize("prov,caller,scope,allowed", POLICY,
                         ids=[f"{p}-{c}-{s or 'noscope'}-{'allow' if a else 'deny'}" for p, c, s, a in POLICY])
def test_access_rules(gw, upstream, keys, idp_a, prov, caller, scope, allowed):
    cred, private = _credential(caller, scope, idp_a, keys)
    r = chat(gw, prov, bearer(cred))
    if allowed:
        assert r.status == 200, r
        rec = upstream.only()
        assert_clean(rec, cred, keys.openai if prov == "openai" else None, "authorization", *private)
    else:
        assert_denied(r, upstream, prov, cred, *private, "user-alice")


def test_access_denied_with_each_sdk(gw, upstream, idp_a):
    t = tok(idp_a, "app-plain")
    c = openai.OpenAI(api_key=t, base_url=gw.url("by-group"), max_retries=0, timeout=15)
    with pytest.raises(openai.PermissionDeniedError) as ei:
        c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert ei.value.status_code == 403 and ei.value.code == "access_denied"
    assert "by-group" in ei.value.message
    assert upstream.requests == []


def test_default_access_and_provider_override(private_gw, private_idp, upstream, keys):
    """default_access applies to providers without their own list; a provider's list replaces it."""
    idp = private_idp(name="idp-default")
    mock = upstream
    providers = [
        provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        with_access(provider("override", "openai-compatible", f"{mock.url}/v1"),
                    [{"client_id": "app-plain"}, {"api_key": "tests"}]),
        provider("google", "google", mock.url, "GEMINI_API_KEY"),
    ]
    g = private_gw([oidc_entry(idp, ["aigw"])], name="default-access", providers=providers,
                   default_access=[{"group": "eng"}, {"api_key": "tests-hashed"}])
    eng, sales = tok(idp, "app-llm"), tok(idp, "app-plain")
    cases = [
        ("openai", eng, True), ("openai", sales, False), ("openai", keys.hashed_gateway, True),
        ("openai", keys.gateway, False),
        ("override", sales, True), ("override", eng, False), ("override", keys.gateway, True),
        ("override", keys.hashed_gateway, False),
    ]
    for prov, cred, allowed in cases:
        upstream.reset()
        r = chat(g, prov, bearer(cred))
        if allowed:
            assert r.status == 200, (prov, r)
        else:
            assert_denied(r, upstream, prov, cred)
    # google-genai: default_access too.
    upstream.reset()
    c = genai.Client(api_key=sales, http_options=genai_types.HttpOptions(base_url=g.url("google"), timeout=15_000))
    with pytest.raises(genai_errors.ClientError) as ei:
        c.models.generate_content(model="gemini-mock", contents="hi")
    assert ei.value.code == 403
    assert upstream.requests == []
    upstream.reset()
    c = genai.Client(api_key=eng, http_options=genai_types.HttpOptions(base_url=g.url("google"), timeout=15_000))
    assert c.models.generate_content(model="gemini-mock", contents="hi").text == upstream.answer


def test_configured_claim_names(private_gw, private_idp, upstream):
    """`claims.groups` names the claim the group rules read (here `roles`, not `groups`)."""
    idp = private_idp([cl("app-plain", claims={"groups": ["eng"], "roles": ["sales"]}),
                       cl("app-llm", claims={"groups": ["sales"], "roles": ["eng"]})], name="idp-claims")
    g = private_gw([oidc_entry(idp, ["aigw"], claims={"user": "sub", "agent": "client_id", "groups": "roles"})],
                   name="claims")
    assert chat(g, "by-group", bearer(tok(idp, "app-llm"))).status == 200
    upstream.reset()
    assert_denied(chat(g, "by-group", bearer(tok(idp, "app-plain"))), upstream, "by-group")


# =========================================================================== Anthropic passthrough


def test_passthrough_with_oidc_gateway_token(gw, upstream, idp_a):
    own = "sk-ant-client-own-" + _secrets.token_hex(6)
    t = tok(idp_a, "app-plain")
    c = anthropic.Anthropic(api_key=own, base_url=gw.url("anthropic-own"), max_retries=0, timeout=15,
                            default_headers={"x-gateway-token": t})
    m = c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert m.content[0].text == upstream.answer
    rec = upstream.only()
    own_headers = rec.header_all("authorization") + rec.header_all("x-api-key")
    assert own_headers and all(own in v for v in own_headers), rec.headers  # the client's own key, unchanged
    assert_clean(rec, t, None)


def test_passthrough_bearer_unchanged(gw, upstream, idp_a):
    own = "sk-ant-oat-" + _secrets.token_hex(8)
    t = tok(idp_a, "app-plain")
    r = gw.request("POST", "/llm/v1/providers/anthropic-own/v1/messages",
                   [("Authorization", f"Bearer {own}"), ("x-gateway-token", t), ("anthropic-version", "2023-06-01")],
                   ANTHROPIC_BODY)
    assert r.status == 200, r
    rec = upstream.only()
    assert rec.header_all("authorization") == [f"Bearer {own}"]
    assert_clean(rec, t, None)


def test_passthrough_token_required(gw, upstream, idp_a):
    own = "sk-ant-client-own-" + _secrets.token_hex(6)
    base = [("Authorization", f"Bearer {own}"), ("anthropic-version", "2023-06-01")]
    path = "/llm/v1/providers/anthropic-own/v1/messages"
    assert_rejected(gw.request("POST", path, base, ANTHROPIC_BODY), upstream, ("missing_credential",))
    for bad in ("gw-wrong", with_payload(tok(idp_a, "app-plain"), sub="someone-else"),
                tok(idp_a, "app-plain", resource="urn:other")):
        upstream.reset()
        r = gw.request("POST", path, base + [("x-gateway-token", bad)], ANTHROPIC_BODY)
        assert_rejected(r, upstream, ("invalid_credential",), bad, own)
    # The client's own Anthropic key is not a gateway credential for this provider.
    upstream.reset()
    c = anthropic.Anthropic(api_key=tok(idp_a, "app-plain"), base_url=gw.url("anthropic-own"), max_retries=0,
                            timeout=15)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert ei.value.body["error"]["code"] == "missing_credential"
    assert upstream.requests == []


def test_passthrough_token_optional(gw, upstream, keys, idp_a):
    own = "sk-ant-client-own-" + _secrets.token_hex(6)
    # Anonymous: no gateway token at all.
    c = anthropic.Anthropic(api_key=own, base_url=gw.url("anthropic-anon"), max_retries=0, timeout=15)
    m = c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert m.content[0].text == upstream.answer
    rec = upstream.only()
    own_headers = rec.header_all("authorization") + rec.header_all("x-api-key")
    assert own_headers and all(own in v for v in own_headers), rec.headers
    assert not rec.contains(keys.anthropic), "the gateway's Anthropic key must not be used for passthrough"
    # With a valid token: identified, same forwarding.
    t = tok(idp_a, "app-plain")
    upstream.reset()
    c = anthropic.Anthropic(api_key=own, base_url=gw.url("anthropic-anon"), max_retries=0, timeout=15,
                            default_headers={"x-gateway-token": t})
    c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert_clean(upstream.only(), t, None)
    # A token that is sent but invalid is refused, not treated as anonymous.
    for bad in (flip_signature_byte(t), "gw-wrong"):
        upstream.reset()
        r = gw.request("POST", "/llm/v1/providers/anthropic-anon/v1/messages",
                       [("x-api-key", own), ("x-gateway-token", bad), ("anthropic-version", "2023-06-01")],
                       ANTHROPIC_BODY)
        assert_rejected(r, upstream, ("invalid_credential",), bad, own)


# =========================================================================== logs


@pytest.mark.timeout(40)
def test_no_token_in_logs(private_gw, private_idp, upstream, keys):
    idp = private_idp(name="idp-logs")
    g = private_gw([oidc_entry(idp, ["aigw"])], name="oidc-logs", envoy_log_level="info",
                   sidecar_env={"AIGW_LOG": "debug"})
    good = tok(idp, "app-plain")
    wrong_aud = tok(idp, "app-plain", resource="urn:other")
    tokens = [good, wrong_aud, flip_signature_byte(good), with_payload(good, sub="x"), unsigned(good),
              hs256(good, rsa_public_pem(key_for(idp.jwks(), decode(good)[0]["kid"])))]
    for t in tokens:
        chat(g, "openai", bearer(t))
        chat(g, "openai", [("x-api-key", t)])
        g.request("POST", "/llm/v1/providers/anthropic-own/v1/messages",
                  [("Authorization", "Bearer sk-ant-own-logcheck"), ("x-gateway-token", t),
                   ("anthropic-version", "2023-06-01")], ANTHROPIC_BODY)
    idp.stop()
    chat(g, "openai", bearer(good))
    g.stop()
    logs = "\n".join(p.stderr() + p.stdout() for p in (g.sidecar, g.envoy))  # whole files, not tails
    assert "listening" in logs and "OIDC signing keys loaded" in logs
    for t in tokens:
        for part in [t] + [p for p in t.split(".")[1:] if len(p) >= 16]:
            assert part not in logs, f"a token (or its payload/signature) appears in the logs:\n{logs[-5000:]}"
    for secret in (keys.gateway, keys.openai, keys.anthropic) + tuple(S.values()):
        assert secret not in logs, "a secret appears in the logs"
