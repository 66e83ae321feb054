#!/usr/bin/env python3
"""Call the gateway with an OIDC access token from the client-credentials grant.

An application (a service, an agent) authenticates to its identity provider with its own
client id and secret, gets a short-lived JWT access token, and sends it where the SDK sends
its API key. The gateway validates the token (issuer, audience, signature, expiry) and calls
the provider with the provider's real key; the token never leaves the gateway.

    make run     # the demo gateway on :8080 and the demo IdP on :9200 (demo-app / demo-secret)
    .venv/bin/python examples/oidc_client_credentials.py

Settings (environment): GW (http://127.0.0.1:8080), PROVIDER (demo), MODEL (demo-llm),
ISSUER (http://127.0.0.1:9200), CLIENT_ID (demo-app), CLIENT_SECRET (demo-secret),
SCOPE (llm; empty for none), RESOURCE (optional RFC 8707 resource indicator).

Only the standard library and the OpenAI SDK: discovery gives the token endpoint, the token
is cached and fetched again `REFRESH_MARGIN` seconds before it expires. The OpenAI SDK takes
a callable as `api_key` and calls it before every request, so a long-lived client always
sends a valid token. (With other SDKs, recreate the client or set its key from
`tokens()` before each call; see `anthropic_example` below.)
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

REFRESH_MARGIN = 30.0  # seconds before expiry at which a new token is fetched

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the IdP is local here


class ClientCredentialsTokens:
    """A cached access token from `issuer` for one client; call it for a valid token.

    Thread-safe; fetches a new token when none is cached or the cached one expires within
    `margin` seconds (but never sooner than half its lifetime, for very short-lived tokens)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, *, scope: str | None = None,
                 resource: str | None = None, margin: float = REFRESH_MARGIN, timeout: float = 10.0):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.resource = resource
        self.margin = margin
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._token_endpoint: str | None = None
        self.fetched = 0  # how many tokens were fetched (for the demo output)

    def token_endpoint(self) -> str:
        if self._token_endpoint is None:
            url = self.issuer + "/.well-known/openid-configuration"
            with _http.open(url, timeout=self.timeout) as r:
                doc = json.loads(r.read())
            if doc.get("issuer") != self.issuer:
                raise RuntimeError(f"discovery at {url} names issuer {doc.get('issuer')!r}")
            if "client_credentials" not in doc.get("grant_types_supported", ["client_credentials"]):
                raise RuntimeError(f"{self.issuer} does not offer the client_credentials grant")
            self._token_endpoint = doc["token_endpoint"]
        return self._token_endpoint

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.resource:
            form["resource"] = self.resource
        basic = base64.b64encode(
            f"{urllib.parse.quote(self.client_id, safe='')}:{urllib.parse.quote(self.client_secret, safe='')}".encode()
        ).decode()
        req = urllib.request.Request(
            self.token_endpoint(), data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json",
                     "Content-Type": "application/x-www-form-urlencoded"})
        now = time.monotonic()
        try:
            with _http.open(req, timeout=self.timeout) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"token request failed: {e.code} {e.read()[:300]!r}") from None
        token = body["access_token"]
        lifetime = float(body.get("expires_in") or _jwt_lifetime(token) or 300)
        self._token = token
        self._expires_at = now + lifetime
        self._refresh_at = now + max(lifetime - self.margin, lifetime / 2)
        self.fetched += 1

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def expires_in(self) -> float:
        return max(0.0, self._expires_at - time.monotonic())


def _jwt_lifetime(token: str) -> float | None:
    """Seconds until the JWT's `exp` (read unverified: only to schedule the refresh)."""
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        return max(0.0, float(exp) - time.time())
    except (IndexError, KeyError, ValueError):
        return None


def openai_client(gateway: str, provider: str, tokens: ClientCredentialsTokens):
    from openai import OpenAI

    # api_key as a callable: the SDK asks it for the key before each request.
    return OpenAI(base_url=f"{gateway}/llm/v1/providers/{provider}", api_key=tokens)


def anthropic_example(gateway: str, tokens: ClientCredentialsTokens):  # pragma: no cover - reference
    """For SDKs that take a plain string: a fresh client per unit of work is cheap."""
    from anthropic import Anthropic

    return Anthropic(base_url=f"{gateway}/llm/v1/providers/anthropic", api_key=tokens())


def main() -> int:
    gateway = os.environ.get("GW", "http://127.0.0.1:8080").rstrip("/")
    provider = os.environ.get("PROVIDER", "demo")
    model = os.environ.get("MODEL", "demo-llm")
    tokens = ClientCredentialsTokens(
        os.environ.get("ISSUER", "http://127.0.0.1:9200"),
        os.environ.get("CLIENT_ID", "demo-app"),
        os.environ.get("CLIENT_SECRET", "demo-secret"),
        scope=os.environ.get("SCOPE", "llm") or None,
        resource=os.environ.get("RESOURCE") or None,
    )
    try:
        tokens()
    except (OSError, RuntimeError) as e:
        print(f"cannot get a token from {tokens.issuer}: {e}", file=sys.stderr)
        return 1
    print(f"token from {tokens.issuer} for {tokens.client_id}, valid for {tokens.expires_in():.0f} s "
          f"(refreshed {REFRESH_MARGIN:.0f} s before expiry)")

    client = openai_client(gateway, provider, tokens)
    print(f"chat via {gateway}/llm/v1/providers/{provider}:\n  ", end="")
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    # A second call reuses the cached token (no new token request).
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "again"}])
    print(f"2 calls, {tokens.fetched} token request(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
