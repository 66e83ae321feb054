"""Requests the gateway must refuse itself, with its JSON error, forwarding nothing.

Raw http.client requests, so the exact bytes (paths, duplicate headers) reach Envoy.
"""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

OPENAI = "/llm/v1/providers/openai"


def assert_gateway_error(resp, status: int | tuple[int, ...], code: str | None):
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status in statuses, f"expected {statuses}, got {resp}"
    assert (resp.header("content-type") or "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body.get("type") == "error", body
    assert body.get("source") == "gateway", body
    err = body.get("error")
    assert isinstance(err, dict), body
    if code is not None:
        assert err.get("code") == code, body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("type"), str), body
    assert isinstance(err.get("status"), str), body
    return body


@pytest.fixture
def bearer(keys):
    return [("Authorization", f"Bearer {keys.gateway}")]


# --------------------------------------------------------------------------- routing


def test_unknown_provider_is_404(gateway, upstream, bearer):
    r = gateway.request("GET", "/llm/v1/providers/nope/v1/models", bearer)
    body = assert_gateway_error(r, 404, "unknown_provider")
    assert body["error"]["type"] == "not_found_error"
    assert body["error"]["status"] == "NOT_FOUND"
    assert upstream.requests == []


def test_disabled_provider_is_403(gateway, upstream, bearer):
    r = gateway.request("POST", "/llm/v1/providers/disabled/chat/completions", bearer,
                        {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    body = assert_gateway_error(r, 403, "provider_disabled")
    assert body["error"]["type"] == "permission_error"
    assert upstream.requests == []


@pytest.mark.parametrize("target", [
    f"{OPENAI}/v1/../models",
    f"{OPENAI}/..",
    f"{OPENAI}/v1/./models",
    f"{OPENAI}/v1/%2e%2e/models",
    f"{OPENAI}/v1/%2E%2E/models",
    f"{OPENAI}/v1/.%2e/models",
    f"{OPENAI}/v1/%2e/models",
    f"{OPENAI}//models",
    f"{OPENAI}/v1//models",
    f"{OPENAI}/v1/models//",
    "/llm/v1/providers/../openai/v1/models",
    "/llm/v1/providers/%2e%2e/openai/v1/models",
])
def test_dot_and_empty_segments_are_400(gateway, upstream, bearer, target):
    r = gateway.request("GET", target, bearer)
    assert_gateway_error(r, 400, "invalid_path")
    assert upstream.requests == []


@pytest.mark.parametrize("target", [
    "/llm/v1/providers//v1/models",
    "/llm/v1/providers/",
    "/llm/v1/providers",
    "/llm/v1/providers?x=1",
])
def test_empty_provider_name_is_400(gateway, upstream, bearer, target):
    r = gateway.request("GET", target, bearer)
    assert_gateway_error(r, 400, "invalid_path")
    assert upstream.requests == []


@pytest.mark.parametrize("name", ["OpenAI", "OPENAI", "openAI", "1openai", "open_ai", "open%41i"])
def test_malformed_provider_name_is_400(gateway, upstream, bearer, name):
    r = gateway.request("GET", f"/llm/v1/providers/{name}/v1/models", bearer)
    assert_gateway_error(r, 400, "invalid_path")
    assert upstream.requests == []


@pytest.mark.parametrize("where", ["path", "query"])
def test_16_kib_path_is_refused(gateway, upstream, bearer, where):
    long = "a" * (16 * 1024)
    target = f"{OPENAI}/v1/models/{long}" if where == "path" else f"{OPENAI}/v1/models?q={long}"
    r = gateway.request("GET", target, bearer)
    # The filter answers 414 path_too_long; Envoy itself could refuse earlier with a JSON 4xx.
    body = assert_gateway_error(r, (414, 431, 400), None)
    if r.status == 414:
        assert body["error"]["code"] == "path_too_long"
    assert upstream.requests == []


def test_path_just_under_the_limit_is_forwarded(gateway, upstream, bearer):
    prefix = f"{OPENAI}/v1/models?q="
    target = prefix + "a" * (8 * 1024 - len(prefix))
    assert len(target) == 8 * 1024
    r = gateway.request("GET", target, bearer)
    assert r.status == 200, r
    assert upstream.only().path == "/v1/models?q=" + "a" * (8 * 1024 - len(prefix))


def test_non_gateway_path_is_404_json(gateway, upstream, bearer):
    for target in ("/", "/foo", "/v1/chat/completions", "/llm/v1/providersfoo/x", "/llm/v2/providers/openai/x"):
        r = gateway.request("GET", target, bearer)
        assert_gateway_error(r, 404, "not_found")
    assert upstream.requests == []


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("header", ["x-aigw-upstream", "X-AIGW-Upstream", "x-aigw-anything"])
def test_client_sent_internal_header_is_400(gateway, upstream, bearer, header):
    r = gateway.request("GET", f"{OPENAI}/v1/models", bearer + [(header, "http")])
    assert_gateway_error(r, 400, "internal_header")
    assert upstream.requests == []


def test_missing_credential_is_401_with_www_authenticate(gateway, upstream):
    r = gateway.request("GET", f"{OPENAI}/v1/models")
    body = assert_gateway_error(r, 401, "missing_credential")
    assert body["error"]["type"] == "authentication_error"
    assert r.header("www-authenticate"), r.headers
    assert r.header("www-authenticate").lower().startswith("bearer")
    assert upstream.requests == []


@pytest.mark.parametrize("headers", [
    [("Authorization", "Bearer")],
    [("Authorization", "Bearer ")],
    [("x-api-key", "")],
], ids=["bearer-no-token", "bearer-blank", "empty-x-api-key"])
def test_empty_credential_is_missing(gateway, upstream, headers):
    r = gateway.request("GET", f"{OPENAI}/v1/models", headers)
    assert_gateway_error(r, 401, "missing_credential")
    assert upstream.requests == []


def test_non_bearer_authorization_is_401(gateway, upstream):
    r = gateway.request("GET", f"{OPENAI}/v1/models", [("Authorization", "Basic dXNlcjpwYXNz")])
    assert_gateway_error(r, 401, "invalid_credential")
    assert r.header("www-authenticate")
    assert upstream.requests == []


@pytest.mark.parametrize("headers", [
    [("Authorization", "Bearer gw-wrong-key")],
    [("x-api-key", "gw-wrong-key")],
    [("x-gateway-token", "gw-wrong-key")],
], ids=["authorization", "x-api-key", "x-gateway-token"])
def test_wrong_gateway_key_is_401(gateway, upstream, headers):
    r = gateway.request("GET", f"{OPENAI}/v1/models", headers)
    body = assert_gateway_error(r, 401, "invalid_credential")
    assert body["error"]["type"] == "authentication_error"
    assert r.header("www-authenticate"), r.headers
    assert upstream.requests == []


def test_upstream_key_is_not_a_gateway_key(gateway, upstream, keys):
    # Knowing the provider's key must not let a client through the gateway.
    r = gateway.request("GET", f"{OPENAI}/v1/models", [("Authorization", f"Bearer {keys.openai}")])
    assert_gateway_error(r, 401, "invalid_credential")
    assert upstream.requests == []


def test_wrong_key_in_query_for_google_is_401(gateway, upstream):
    r = gateway.request("POST", "/llm/v1/providers/google/v1/models/gemini-mock:generateContent?key=gw-wrong",
                        body={"contents": [{"parts": [{"text": "hi"}]}]})
    assert_gateway_error(r, 401, "invalid_credential")
    assert upstream.requests == []


def test_two_differing_credentials_are_400(gateway, upstream, keys):
    r = gateway.request("GET", f"{OPENAI}/v1/models",
                        [("Authorization", f"Bearer {keys.gateway}"), ("x-api-key", "gw-other")])
    assert_gateway_error(r, 400, "ambiguous_credentials")
    assert upstream.requests == []


def test_duplicated_authorization_with_different_values_is_400(gateway, upstream, keys):
    r = gateway.request("GET", f"{OPENAI}/v1/models",
                        [("Authorization", f"Bearer {keys.gateway}"), ("Authorization", "Bearer gw-other")])
    assert_gateway_error(r, 400, "ambiguous_credentials")
    assert upstream.requests == []


def test_duplicated_authorization_with_the_same_value_is_accepted(gateway, upstream, keys):
    # "The same value in several places is accepted" (filter/src/credential.rs).
    r = gateway.request("GET", f"{OPENAI}/v1/models",
                        [("Authorization", f"Bearer {keys.gateway}"), ("Authorization", f"Bearer {keys.gateway}")])
    assert r.status == 200, r
    assert upstream.only().header_all("authorization") == [f"Bearer {keys.openai}"]


def test_duplicated_x_api_key_with_different_values_is_400(gateway, upstream, keys):
    r = gateway.request("GET", f"{OPENAI}/v1/models", [("x-api-key", keys.gateway), ("x-api-key", "gw-other")])
    assert_gateway_error(r, 400, "ambiguous_credentials")
    assert upstream.requests == []


def test_google_query_key_differing_from_header_is_400(gateway, upstream, keys):
    r = gateway.request("POST", "/llm/v1/providers/google/v1/models/gemini-mock:generateContent?key=gw-other",
                        [("x-goog-api-key", keys.gateway)], {"contents": [{"parts": [{"text": "hi"}]}]})
    assert_gateway_error(r, 400, "ambiguous_credentials")
    assert upstream.requests == []


def test_same_credential_twice_is_accepted(gateway, upstream, keys):
    r = gateway.request("GET", f"{OPENAI}/v1/models",
                        [("Authorization", f"Bearer {keys.gateway}"), ("x-api-key", keys.gateway)])
    assert r.status == 200, r
    rec = upstream.only()
    assert rec.header_all("authorization") == [f"Bearer {keys.openai}"]
    assert rec.header("x-api-key") is None


# --------------------------------------------------------------------------- upstream side


def test_unreachable_upstream_is_json_5xx(gateway, upstream, bearer):
    r = gateway.request("GET", "/llm/v1/providers/unreachable/models", bearer, timeout=15)
    assert_gateway_error(r, (502, 503), "upstream_unavailable")


def test_provider_error_passes_through_unchanged(gateway, upstream, keys):
    err = {"error": {"message": "Rate limit reached", "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    upstream.fail_with(429, err, {"retry-after": "7"})
    r = gateway.request("POST", f"{OPENAI}/chat/completions", [("Authorization", f"Bearer {keys.gateway}")],
                        {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 429, r
    assert r.json() == err  # no gateway wrapping, no "source"
    assert r.header("retry-after") == "7"


# --------------------------------------------------------------------------- what each SDK makes of it


def test_openai_sdk_surfaces_gateway_errors(gateway, upstream, keys):
    bad = openai.OpenAI(api_key="gw-wrong-key", base_url=gateway.url("openai"), max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    e = ei.value
    assert e.status_code == 401
    assert e.code == "invalid_credential"
    assert e.type == "authentication_error"
    assert e.body["code"] == "invalid_credential"  # openai puts body["error"] in e.body

    nowhere = openai.OpenAI(api_key=keys.gateway, base_url=gateway.url("nope"), max_retries=0, timeout=10)
    with pytest.raises(openai.NotFoundError) as ei:
        nowhere.models.list()
    assert ei.value.code == "unknown_provider"

    off = openai.OpenAI(api_key=keys.gateway, base_url=gateway.url("disabled"), max_retries=0, timeout=10)
    with pytest.raises(openai.PermissionDeniedError) as ei:
        off.models.list()
    assert ei.value.code == "provider_disabled"
    assert upstream.requests == []


def test_anthropic_sdk_surfaces_gateway_errors(gateway, upstream):
    bad = anthropic.Anthropic(api_key="gw-wrong-key", base_url=gateway.url("anthropic"), max_retries=0, timeout=10)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        bad.messages.create(model="claude-mock", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    e = ei.value
    assert e.status_code == 401
    assert e.type == "authentication_error"
    assert e.body["error"]["code"] == "invalid_credential"
    assert e.body["source"] == "gateway"
    assert upstream.requests == []


def test_google_sdk_surfaces_gateway_errors(gateway, upstream):
    bad = genai.Client(api_key="gw-wrong-key", http_options={"base_url": gateway.url("google"), "timeout": 10_000})
    with pytest.raises(genai_errors.ClientError) as ei:
        bad.models.generate_content(model="gemini-mock", contents="hi")
    e = ei.value
    assert e.code == 401
    assert e.status == "UNAUTHENTICATED"
    assert e.details["error"]["code"] == "invalid_credential"
    assert upstream.requests == []
