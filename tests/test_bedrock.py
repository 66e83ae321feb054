"""AWS Bedrock through the gateway: boto3 `bedrock-runtime` in bearer mode (the gateway key as
`AWS_BEARER_TOKEN_BEDROCK`, over the gateway's TLS listener) or raw requests; the sidecar
signs with SigV4; the mock Bedrock verifies every signature independently (botocore's
signer, the credentials the test configured) and answers 403 like AWS when it does not match.

Credential sources: static keys in secret files (with and without session token, rotation),
assume-role via the mock STS, the AWS default chain from the sidecar's environment (keys,
web identity token file). Plus the gateway's own refusals and start-up checks.
"""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError, EventStreamError

from harness import Gateway, GATEWAY_KEY_SECRET, dump_yaml, free_port, provider, render_envoy_config
from harness import sidecar_available, start_sidecar, wait_for
from harness import aws
from harness import http as rawhttp
from mocks import eventstream as es
from mocks.bedrock import pieces
from test_errors import assert_gateway_error

REGION = "us-east-1"
MODEL_COLON = "anthropic.claude-3-5-sonnet-20241022-v2:0"
PROFILE = "us.anthropic.claude-sonnet-4-6"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
ROLE_ARN = "arn:aws:iam::123456789012:role/bedrock"
PREFIX = "/llm/v1/providers"

SIGNED = ["host", "x-amz-content-sha256", "x-amz-date"]
SIGNED_WITH_TOKEN = SIGNED + ["x-amz-security-token"]

MESSAGES = [{"role": "user", "content": [{"text": "hello there bedrock"}]}]
INVOKE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32,
               "messages": [{"role": "user", "content": "hello there bedrock"}]}

STATIC_AWS = {"access_key_id_secret": "BEDROCK_AWS_ACCESS_KEY_ID",
              "secret_access_key_secret": "BEDROCK_AWS_SECRET_ACCESS_KEY"}
SESSION_AWS = {"access_key_id_secret": "BEDROCK_SESSION_ACCESS_KEY_ID",
               "secret_access_key_secret": "BEDROCK_SESSION_SECRET_ACCESS_KEY",
               "session_token_secret": "BEDROCK_SESSION_TOKEN"}


def botocore_path(model_id: str, op: str) -> str:
    """What botocore puts on the wire (`quote(v, safe='-._~')`, serialize.py)."""
    return f"/model/{quote(model_id, safe='-._~')}/{op}"


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def bedrock_providers(mock) -> list[dict]:
    return [
        provider("bedrock", "bedrock", mock.url, region=REGION, aws=STATIC_AWS),
        provider("bedrock-session", "bedrock", mock.url, region=REGION, aws=SESSION_AWS),
        provider("bedrock-eu", "bedrock", mock.url, region="eu-central-1", aws=STATIC_AWS),
    ]


def bedrock_secrets(keys, aws_keys) -> dict[str, str]:
    return {GATEWAY_KEY_SECRET: keys.gateway, **aws_keys.secrets()}


@pytest.fixture(scope="module")
def bgw(tmp_path_factory, _bedrock_server, tls_files, keys, aws_keys) -> Gateway:
    """A gateway with three Bedrock providers and a TLS listener, shared by this module."""
    gw = Gateway(tmp_path_factory.mktemp("bedrock-gw"), bedrock_providers(_bedrock_server),
                 bedrock_secrets(keys, aws_keys), tls_listener=tls_files, name="bedrock")
    gw.start()
    yield gw
    gw.stop()


class SentLog:
    """What botocore actually sent to the gateway (a `before-send` hook)."""

    def __init__(self) -> None:
        self.requests: list = []

    def __call__(self, request, **kw):
        self.requests.append(request)

    @property
    def last(self):
        assert self.requests, "botocore sent nothing"
        return self.requests[-1]


@pytest.fixture
def brt(monkeypatch, keys, tls_files):
    """`brt(gateway, provider="bedrock")`: a boto3 bedrock-runtime client in bearer mode on the
    gateway's TLS listener (`AWS_BEARER_TOKEN_BEDROCK` set for the whole test, as botocore
    checks it per request). `client.sent` logs what botocore sent."""
    monkeypatch.setenv(aws.BEARER_ENV, keys.gateway)

    def make(gw: Gateway, name: str = "bedrock", read_timeout: float = 30.0):
        c = aws.bedrock_runtime(gw.https_url(name), verify=str(tls_files.ca_cert), read_timeout=read_timeout)
        log = SentLog()
        c.meta.events.register("before-send.bedrock-runtime", log)
        c.sent = log
        return c

    return make


def bearer(keys):
    return [("Authorization", f"Bearer {keys.gateway}")]


def assert_signed_upstream(rec, creds, *, region=REGION, token=None, signed=None, keys=None):
    """The request the mock received was signed by the gateway with `creds` and verified."""
    v = rec.verification
    assert rec.verified, f"{rec}\ncanonical request (mock):\n{v.canonical_request}"
    assert v.access_key == creds.access_key
    assert v.region == region and v.service == "bedrock"
    assert v.signed_headers == (signed or (SIGNED_WITH_TOKEN if token else SIGNED)), v.signed_headers
    assert rec.header_all("x-amz-content-sha256") == [sha256(rec.body)]
    assert len(rec.header_all("authorization")) == 1
    assert rec.header_all("x-amz-security-token") == ([token] if token else [])
    internal = [k for k in rec.header_names() if k.startswith(("x-aigw", "x-envoy", "x-gateway"))]
    assert not internal, f"gateway-internal headers reached Bedrock: {internal}"
    if keys is not None:
        assert not rec.contains(keys.gateway), "the gateway key reached Bedrock"
        assert not rec.contains(keys.hashed_gateway)


# --------------------------------------------------------------------------- boto3, bearer mode


@pytest.mark.parametrize("model_id", [MODEL_COLON, PROFILE, ARN], ids=["colon", "inference-profile", "arn"])
def test_converse(bgw, brt, bedrock, keys, aws_keys, model_id):
    client = brt(bgw)
    out = client.converse(modelId=model_id, messages=MESSAGES, inferenceConfig={"maxTokens": 32})
    assert out["output"]["message"]["content"][0]["text"] == bedrock.answer
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}

    sent = client.sent.last
    auth = sent.headers["Authorization"]
    assert (auth.decode() if isinstance(auth, bytes) else auth) == f"Bearer {keys.gateway}"
    assert "X-Amz-Date" not in sent.headers  # bearer mode: botocore does not sign
    rec = bedrock.only()
    assert rec.method == "POST"
    # The path as botocore encoded it (%3A, %2F), minus the gateway prefix, unchanged.
    assert rec.path == botocore_path(model_id, "converse")
    assert sent.url == bgw.https_url("bedrock") + rec.path
    assert rec.model_id_decoded == model_id
    assert rec.header("host") == bedrock.authority
    assert rec.body == sent.body
    assert rec.json()["messages"] == MESSAGES
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_converse_stream_events_arrive_separately(bgw, brt, bedrock, keys, aws_keys):
    bedrock.stream_chunks, bedrock.frame_delay = 4, 0.3
    client = brt(bgw)
    out = client.converse_stream(modelId=MODEL_COLON, messages=MESSAGES)
    events = []
    for ev in out["stream"]:
        events.append((time.monotonic(), ev))
    kinds = [next(iter(e)) for _, e in events]
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * 4 + ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for _, e in events if "contentBlockDelta" in e)
    assert text == "".join(pieces(4))
    meta = events[-1][1]["metadata"]
    assert meta["usage"] == {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    assert meta["metrics"] == {"latencyMs": 42}

    rec = bedrock.only()
    assert rec.path == botocore_path(MODEL_COLON, "converse-stream")
    assert_signed_upstream(rec, aws_keys.static, keys=keys)
    # Each event reached botocore soon after the mock sent its frame, not all at the end.
    arrivals = [t for t, _ in events]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(g > 0.15 for g in gaps), f"events were batched: gaps {gaps}"
    lags = [a - s for a, s in zip(arrivals, rec.chunk_times)]
    assert all(0 <= lag < 0.2 for lag in lags), f"events arrived late after being sent: {lags}"


def test_invoke_model(bgw, brt, bedrock, keys, aws_keys):
    client = brt(bgw)
    body = json.dumps(INVOKE_BODY).encode()
    out = client.invoke_model(modelId=MODEL_COLON, body=body, contentType="application/json",
                              accept="application/json")
    answer = json.loads(out["body"].read())
    assert answer["content"][0]["text"] == bedrock.answer
    assert answer["usage"] == {"input_tokens": 3, "output_tokens": 5}
    hdrs = out["ResponseMetadata"]["HTTPHeaders"]
    assert hdrs["x-amzn-bedrock-input-token-count"] == "3"
    assert hdrs["x-amzn-bedrock-output-token-count"] == "5"
    assert hdrs["x-amzn-bedrock-invocation-latency"] == "42"
    rec = bedrock.only()
    assert rec.path == botocore_path(MODEL_COLON, "invoke")
    assert rec.body == body
    assert rec.header("content-type") == "application/json" and rec.header("accept") == "application/json"
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_invoke_model_with_response_stream(bgw, brt, bedrock, keys, aws_keys):
    bedrock.stream_chunks, bedrock.frame_delay = 3, 0.25
    client = brt(bgw)
    out = client.invoke_model_with_response_stream(modelId=ARN, body=json.dumps(INVOKE_BODY))
    assert out["contentType"] == "application/json"
    got = [(time.monotonic(), json.loads(e["chunk"]["bytes"])) for e in out["body"]]
    inner = [g for _, g in got]
    assert [i["type"] for i in inner] == ["message_start", "content_block_start"] + ["content_block_delta"] * 3 + \
        ["content_block_stop", "message_delta", "message_stop"]
    assert inner[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 3, "outputTokenCount": 3, "invocationLatency": 42, "firstByteLatency": 7}
    rec = bedrock.only()
    assert rec.path == botocore_path(ARN, "invoke-with-response-stream")
    assert_signed_upstream(rec, aws_keys.static, keys=keys)
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(g > 0.1 for g in gaps), f"chunks were batched: gaps {gaps}"


def test_count_tokens(bgw, brt, bedrock, keys, aws_keys):
    client = brt(bgw)
    assert client.count_tokens(modelId=PROFILE, input={"converse": {"messages": MESSAGES}})["inputTokens"] == 3
    body = json.dumps(INVOKE_BODY).encode()
    assert client.count_tokens(modelId=PROFILE, input={"invokeModel": {"body": body}})["inputTokens"] == 3
    for rec in bedrock.requests:
        assert rec.path == botocore_path(PROFILE, "count-tokens")
        assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_apply_guardrail_and_async_invoke_query(bgw, brt, bedrock, keys, aws_keys):
    client = brt(bgw)
    out = client.apply_guardrail(guardrailIdentifier="gr-123", guardrailVersion="1", source="INPUT",
                                 content=[{"text": {"text": "hello"}}])
    assert out["action"] == "NONE"
    out = client.list_async_invokes(maxResults=5, sortOrder="Ascending")
    arn = out["asyncInvokeSummaries"][0]["invocationArn"]
    assert client.get_async_invoke(invocationArn=arn)["invocationArn"] == arn
    guard, listing, get = bedrock.requests
    assert guard.path == "/guardrail/gr-123/version/1/apply"
    # The query string is forwarded and signed.
    assert listing.method == "GET" and listing.path == "/async-invoke?" + client.sent.requests[1].url.split("?", 1)[1]
    assert get.path == "/async-invoke/" + quote(arn, safe="-._~")
    for rec in (guard, listing, get):
        assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_session_token_is_sent_and_signed(bgw, brt, bedrock, keys, aws_keys):
    brt(bgw, "bedrock-session").converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert_signed_upstream(bedrock.only(), aws_keys.session, token=aws_keys.session.token, keys=keys)


def test_signed_for_the_providers_region(bgw, brt, bedrock, keys, aws_keys):
    bedrock.region = "eu-central-1"
    brt(bgw, "bedrock-eu").converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert_signed_upstream(bedrock.only(), aws_keys.static, region="eu-central-1", keys=keys)


def test_upstream_errors_reach_boto3(bgw, brt, bedrock):
    client = brt(bgw)
    bedrock.fail_with(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    with pytest.raises(ClientError) as e:
        client.converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    bedrock.stream_exception = ("throttlingException", "slow down", 3)
    seen = []
    with pytest.raises(EventStreamError) as e:
        for ev in client.converse_stream(modelId=MODEL_COLON, messages=MESSAGES)["stream"]:
            seen.append(ev)
    assert len(seen) == 3 and "throttlingException" in str(e.value)


@pytest.mark.timeout(90)
def test_ten_mib_body_is_signed_and_arrives_intact(bgw, brt, bedrock, keys, aws_keys):
    filler = "lorem ipsum " * (10 * 1024 * 1024 // 12 + 1)
    body = json.dumps({**INVOKE_BODY, "messages": [{"role": "user", "content": filler}]}).encode()
    assert len(body) >= 10 * 1024 * 1024
    out = brt(bgw, read_timeout=60).invoke_model(modelId=MODEL_COLON, body=body)
    assert json.loads(out["body"].read())["content"][0]["text"] == bedrock.answer
    rec = bedrock.only()
    assert len(rec.body) == len(body) and rec.body == body
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


# --------------------------------------------------------------------------- raw requests


def test_stream_bytes_pass_through_untouched_frame_by_frame(bgw, bedrock, keys):
    bedrock.stream_chunks, bedrock.frame_delay = 3, 0.25
    import http.client

    c = http.client.HTTPConnection(bgw.host, bgw.port, timeout=10)
    body = json.dumps({"messages": MESSAGES}).encode()
    c.request("POST", f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, 'converse-stream')}", body=body,
              headers={"Authorization": f"Bearer {keys.gateway}", "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("content-type") == "application/vnd.amazon.eventstream"
    data, reader, arrivals = b"", es.FrameReader(), []
    while chunk := r.read1(65536):
        data += chunk
        arrivals += [time.monotonic() for _ in reader.feed(chunk)]
    c.close()
    rec = bedrock.only()
    assert rec.verified, rec
    assert data == b"".join(rec.sent_frames), "the event stream was altered"
    assert len(arrivals) == len(rec.sent_frames)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(g > 0.15 for g in gaps), gaps


@pytest.mark.parametrize("path", [
    "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",  # the Anthropic SDK's Bedrock client: raw ':'
    "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke",
    "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1:0"
    "/invoke",
    "/model/a%2fb%3a0/invoke",  # lower-case hex
    "/model/a+b!c*d'e(f)g,h;i=j@k$l&m/invoke",  # sub-delims, unencoded
    "/model/a%20b%25c~d/invoke",
    "/model/x/invoke?flag",
    "/model/x/invoke?a=2&a=1&B=0",
    "/model/x/invoke?q=a:b/c&r=%7e%41&s=a+b&e=",
    "/async-invoke?x=%E2%82%AC",
], ids=["raw-colon", "encoded-colon", "anthropic-sdk-arn", "lower-hex", "sub-delims", "space-percent-tilde",
        "query-flag", "query-repeated", "query-unencoded", "query-utf8"])
def test_path_encoding_is_kept_and_signed(bgw, bedrock, keys, aws_keys, path):
    r = bgw.request("POST", f"{PREFIX}/bedrock{path}", bearer(keys), INVOKE_BODY)
    assert r.status == 200, r
    rec = bedrock.only()
    assert rec.path == path
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_client_amz_headers_are_replaced(bgw, bedrock, keys, aws_keys):
    client_hdrs = [("X-Amz-Date", "20200101T000000Z"), ("x-amz-date", "20200102T000000Z"),
                   ("X-Amz-Security-Token", "client-token"), ("X-AMZ-SECURITY-TOKEN", "client-token-2"),
                   ("X-Amz-Content-SHA256", "0" * 64), ("x-gateway-token", keys.gateway)]
    for name, creds, token in (("bedrock", aws_keys.static, None),
                               ("bedrock-session", aws_keys.session, aws_keys.session.token)):
        bedrock.reset()
        bedrock.creds.replace(aws_keys.static, aws_keys.session)
        r = bgw.request("POST", f"{PREFIX}/{name}{botocore_path(PROFILE, 'converse')}",
                        bearer(keys) + client_hdrs, {"messages": MESSAGES})
        assert r.status == 200, r
        rec = bedrock.only()
        assert len(rec.header_all("x-amz-date")) == 1
        assert not {"20200101T000000Z", "20200102T000000Z"} & set(rec.header_all("x-amz-date"))
        assert not {"client-token", "client-token-2"} & set(rec.header_all("x-amz-security-token"))
        assert rec.header_all("x-amz-content-sha256") == [sha256(rec.body)]
        assert "x-gateway-token" not in rec.header_names()
        assert_signed_upstream(rec, creds, token=token, keys=keys)


def test_chunked_request_body_is_signed(bgw, bedrock, keys, aws_keys):
    import http.client

    body = json.dumps({"messages": MESSAGES}).encode()
    c = http.client.HTTPConnection(bgw.host, bgw.port, timeout=10)
    c.request("POST", f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, 'converse')}",
              body=iter([body[:10], body[10:]]), encode_chunked=True,
              headers={"Authorization": f"Bearer {keys.gateway}", "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 200, data
    rec = bedrock.only()
    assert rec.body == body
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_query_string_is_forwarded_and_signed(bgw, bedrock, keys, aws_keys):
    path = botocore_path(PROFILE, "converse") + "?b=2&a=x%2Fy&empty="
    r = bgw.request("POST", f"{PREFIX}/bedrock{path}", bearer(keys), {"messages": MESSAGES})
    assert r.status == 200, r
    rec = bedrock.only()
    assert rec.path == path
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


@pytest.mark.timeout(60)
def test_concurrent_requests_are_each_signed(bgw, bedrock, keys, aws_keys):
    from concurrent.futures import ThreadPoolExecutor

    bedrock.stream_chunks, bedrock.frame_delay = 3, 0.05
    names = ["bedrock", "bedrock-session"] * 12

    def one(i: int):
        op = "converse-stream" if i % 3 == 0 else "converse"
        body = {"messages": [{"role": "user", "content": [{"text": f"request number {i}"}]}]}
        return bgw.request("POST", f"{PREFIX}/{names[i]}{botocore_path(MODEL_COLON, op)}", bearer(keys), body,
                           timeout=30)

    with ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(len(names))))
    assert [r.status for r in results] == [200] * len(names), [str(r) for r in results if r.status != 200]
    recs = bedrock.requests
    assert len(recs) == len(names)
    for rec in recs:
        session = rec.verification.access_key == aws_keys.session.access_key
        creds = aws_keys.session if session else aws_keys.static
        assert_signed_upstream(rec, creds, token=creds.token, keys=keys)
    assert sorted(r.json()["messages"][0]["content"][0]["text"] for r in recs) == \
        sorted(f"request number {i}" for i in range(len(names)))


def test_base_url_path_prefix_is_signed(make_gateway, bedrock, keys, aws_keys):
    """A base URL with a path (a proxy or private endpoint in front of Bedrock): the signed
    canonical URI is the whole forwarded path."""
    gw = make_gateway(api_keys=API_KEYS, secrets=bedrock_secrets(keys, aws_keys), name="bedrock-prefix",
                      providers=[provider("bedrock", "bedrock", f"{bedrock.url}/proxy/bedrock-runtime",
                                          region=REGION, aws=STATIC_AWS)])
    r = gw.request("POST", f"{PREFIX}/bedrock{botocore_path(ARN, 'converse')}", bearer(keys), {"messages": MESSAGES})
    assert r.status == 200, r
    rec = bedrock.only()
    assert rec.path == "/proxy/bedrock-runtime" + botocore_path(ARN, "converse")
    assert rec.verification.canonical_request.split("\n")[1] == \
        "/proxy/bedrock-runtime" + botocore_path(ARN, "converse").replace("%", "%25")
    assert_signed_upstream(rec, aws_keys.static, keys=keys)


def test_https_upstream_is_signed_for_its_host(make_gateway, tls_files, aws_keys, keys):
    from mocks.bedrock import MockBedrock

    with MockBedrock(tls=tls_files) as tls_mock:
        tls_mock.creds.replace(aws_keys.static)
        gw = make_gateway(api_keys=API_KEYS, secrets=bedrock_secrets(keys, aws_keys), name="bedrock-https",
                          tls_ca=tls_files.ca_cert,
                          providers=[provider("bedrock", "bedrock", tls_mock.url, region=REGION, aws=STATIC_AWS)])
        tls_mock.stream_chunks = 2
        for op in ("converse", "converse-stream"):
            r = gw.request("POST", f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, op)}", bearer(keys),
                           {"messages": MESSAGES})
            assert r.status == 200, r
        for rec in tls_mock.requests:
            assert rec.header("host") == tls_mock.authority and rec.header("host").startswith("localhost:")
            assert_signed_upstream(rec, aws_keys.static, keys=keys)
        assert [f.event_type for f in es.decode_all(r.body)][-1] == "metadata"


def test_clients_own_sigv4_is_refused(bgw, bedrock, keys, tls_files, monkeypatch):
    path = f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, 'converse')}"
    body = json.dumps({"messages": MESSAGES}).encode()
    signed = aws.sign_request("POST", f"{bgw.base}{path}", {"Content-Type": "application/json"}, body,
                              "AKIACLIENTOWNKEY0001", "client-secret")
    assert signed["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    r = bgw.request("POST", path, list(signed.items()), body)
    assert_gateway_error(r, 401, None)
    # boto3 signing itself (explicit keys: no bearer mode), on the TLS listener.
    monkeypatch.delenv(aws.BEARER_ENV, raising=False)
    client = aws.bedrock_runtime(bgw.https_url("bedrock"), verify=str(tls_files.ca_cert),
                                 access_key="AKIACLIENTOWNKEY0001", secret_key="client-secret")
    with pytest.raises(ClientError) as e:
        client.converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert bedrock.requests == []


def test_boto3_surfaces_gateway_errors(bgw, bedrock, tls_files, monkeypatch):
    monkeypatch.setenv(aws.BEARER_ENV, "gw-wrong-key")
    client = aws.bedrock_runtime(bgw.https_url("bedrock"), verify=str(tls_files.ca_cert))
    with pytest.raises(ClientError) as e:
        client.converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    # botocore reads the code from x-amzn-ErrorType (else `__type`/`code`, else the status)
    # and the message from a top-level `message`: with the gateway's JSON shape it shows
    # Code "401" and an empty message (see the report).
    unknown = aws.bedrock_runtime(bgw.https_url("nope"), verify=str(tls_files.ca_cert))
    monkeypatch.setenv(aws.BEARER_ENV, "gw-wrong-key")
    with pytest.raises(ClientError) as e:
        unknown.converse(modelId=MODEL_COLON, messages=MESSAGES)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 404)
    assert bedrock.requests == []


@pytest.mark.parametrize("rest", [
    "/model/x/delete",
    "/model/x",
    "/model//converse",
    "/model/x/converse/extra",
    "/model/x/invoke-with-bidirectional-stream",
    "/guardrail/g/apply",
    "/v1/chat/completions",
    "/",
])
def test_non_bedrock_paths_are_400(bgw, bedrock, keys, rest):
    r = bgw.request("POST", f"{PREFIX}/bedrock{rest}", bearer(keys), {"messages": MESSAGES})
    assert_gateway_error(r, 400, "invalid_path")
    assert bedrock.requests == []


def test_missing_or_wrong_gateway_key_forwards_nothing(bgw, bedrock, keys):
    path = f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, 'converse')}"
    assert_gateway_error(bgw.request("POST", path, [], {"messages": MESSAGES}), 401, None)
    assert_gateway_error(bgw.request("POST", path, [("Authorization", "Bearer gw-wrong")],
                                     {"messages": MESSAGES}), 401, "invalid_credential")
    assert bedrock.requests == []


@pytest.mark.timeout(60)
def test_body_over_the_limit_is_413(bgw, bedrock, keys):
    body = b'{"messages":[{"role":"user","content":"' + b"x" * (24 * 1024 * 1024) + b'"}]}'
    r = rawhttp.request_large(bgw.host, bgw.port, "POST", f"{PREFIX}/bedrock{botocore_path(MODEL_COLON, 'invoke')}",
                              bearer(keys) + [("Content-Type", "application/json")], body, timeout=30)
    assert_gateway_error(r, 413, "request_too_large")
    assert bedrock.requests == []


# --------------------------------------------------------------------------- credential sources


API_KEYS = [{"name": "tests", "secret": GATEWAY_KEY_SECRET}]


def _converse_raw(gw, keys, name="bedrock"):
    return gw.request("POST", f"{PREFIX}/{name}{botocore_path(MODEL_COLON, 'converse')}", bearer(keys),
                      {"messages": MESSAGES})


@pytest.mark.timeout(30)
def test_static_key_rotation_without_restart(make_gateway, bedrock, keys, aws_keys):
    from conftest import new_aws_creds

    gw = make_gateway(api_keys=API_KEYS, providers=bedrock_providers(bedrock), secrets=bedrock_secrets(keys, aws_keys),
                      name="bedrock-rotation")
    pid = gw.sidecar.pid
    assert _converse_raw(gw, keys).status == 200
    assert bedrock.only().verification.access_key == aws_keys.static.access_key
    new = new_aws_creds()
    bedrock.creds.replace(new, aws_keys.session)  # AWS: the old key is deactivated
    gw.set_secret("BEDROCK_AWS_SECRET_ACCESS_KEY", new.secret_key)
    gw.set_secret("BEDROCK_AWS_ACCESS_KEY_ID", new.access_key)
    t0 = time.monotonic()
    while True:
        bedrock.reset()
        bedrock.creds.replace(new, aws_keys.session)
        r = _converse_raw(gw, keys)
        if r.status == 200:
            break
        assert r.status == 403, r  # the old key, refused by the mock, until the sidecar re-reads
        assert time.monotonic() - t0 < 3.0, f"still {r} 3 s after the rotation"
        time.sleep(0.1)
    took = time.monotonic() - t0
    for _ in range(3):
        bedrock.reset()
        bedrock.creds.replace(new, aws_keys.session)
        assert _converse_raw(gw, keys).status == 200
        assert_signed_upstream(bedrock.only(), new, keys=keys)
    assert gw.sidecar.alive() and gw.sidecar.pid == pid, "the sidecar restarted"
    assert took <= 3.0


def _assume_role_gateway(make_gateway, bedrock, sts, keys, aws_keys, name="bedrock-role", **role):
    sts.base_creds.add(aws_keys.static)
    sts.roles = {ROLE_ARN}
    sts.external_id = "ext"
    bedrock.creds.clear()  # only the temporary credentials STS issues are accepted
    aws_cfg = {**STATIC_AWS, "assume_role": {"role_arn": ROLE_ARN, "external_id": "ext", "session_name": "aigw",
                                             **role}}
    return make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION, aws=aws_cfg)],
                        secrets=bedrock_secrets(keys, aws_keys), name=name,
                        sidecar_env={"AWS_ENDPOINT_URL_STS": sts.url})


@pytest.mark.timeout(40)
def test_assume_role_uses_cached_temporary_credentials(make_gateway, bedrock, sts, keys, aws_keys):
    gw = _assume_role_gateway(make_gateway, bedrock, sts, keys, aws_keys)
    for i in range(6):
        r = _converse_raw(gw, keys)
        assert r.status == 200, f"request {i}: {r}\nSTS calls: {[c.error for c in sts.calls]}"
    assert sts.count("AssumeRole") == 1, f"STS called {sts.count('AssumeRole')} times for 6 requests"
    (call,) = [c for c in sts.calls if c.action == "AssumeRole"]
    assert call.verification.ok and call.verification.access_key == aws_keys.static.access_key
    assert call.params["RoleArn"] == ROLE_ARN
    assert call.params["RoleSessionName"] == "aigw"
    assert call.params["ExternalId"] == "ext"
    temp = call.issued
    for rec in bedrock.requests:
        assert_signed_upstream(rec, temp, token=temp.token, keys=keys)


@pytest.mark.timeout(40)
def test_assume_role_refreshes_before_expiry(make_gateway, bedrock, sts, keys, aws_keys):
    """Credentials issued with an Expiration 3 s ahead, requests from 4 threads for 6.5 s: once
    credentials expire the mock Bedrock refuses them (ExpiredTokenException), so every request
    succeeding shows they were refreshed in time; few STS calls show it is not per request."""
    from concurrent.futures import ThreadPoolExecutor

    sts.expiration_seconds = 3.0
    gw = _assume_role_gateway(make_gateway, bedrock, sts, keys, aws_keys, name="bedrock-refresh")
    t0 = time.monotonic()

    def worker(_):
        out = []
        while time.monotonic() - t0 < 6.5:
            out.append(_converse_raw(gw, keys).status)
            time.sleep(0.1)
        return out

    with ThreadPoolExecutor(4) as ex:
        statuses = [s for part in ex.map(worker, range(4)) for s in part]
    calls = sts.count("AssumeRole")
    assert statuses == [200] * len(statuses), \
        f"{statuses}; STS calls {calls}; mock answers {[str(r) for r in bedrock.requests if not r.verified]}"
    # Refreshed ahead of expiry (a quarter of the lifetime, at least the 1 s expiry margin,
    # before it): about every 2 s (the mock issues whole-second expirations).
    assert 3 <= calls <= 6, f"STS was called {calls} times in 6.5 s with 3 s credentials ({len(statuses)} requests)"
    used = {r.verification.access_key for r in bedrock.requests}
    assert len(used) >= 3, "requests did not move on to the refreshed credentials"


@pytest.mark.timeout(40)
def test_assume_role_on_default_chain_credentials(make_gateway, bedrock, sts, keys):
    """`aws: {assume_role: …}` without static keys: the base credentials come from the default
    chain (here the sidecar's environment) and sign the AssumeRole call."""
    from conftest import new_aws_creds

    base = new_aws_creds()
    sts.base_creds.add(base)
    sts.roles = {ROLE_ARN}
    bedrock.creds.clear()
    gw = make_gateway(api_keys=API_KEYS,
                      providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION,
                                          aws={"assume_role": {"role_arn": ROLE_ARN}})],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-role-chain",
                      sidecar_env={"AWS_ACCESS_KEY_ID": base.access_key, "AWS_SECRET_ACCESS_KEY": base.secret_key,
                                   "AWS_ENDPOINT_URL_STS": sts.url})
    for _ in range(3):
        r = _converse_raw(gw, keys)
        assert r.status == 200, f"{r}\nSTS calls: {[(c.action, c.error) for c in sts.calls]}"
    (call,) = sts.calls
    assert call.action == "AssumeRole" and call.verification.access_key == base.access_key
    assert call.params["RoleSessionName"] == "aigw"  # the default session name
    assert "ExternalId" not in call.params
    for rec in bedrock.requests:
        assert_signed_upstream(rec, call.issued, token=call.issued.token, keys=keys)


def test_assume_role_refused_at_startup(tmp_path, bedrock, sts, keys, aws_keys):
    sts.base_creds.add(aws_keys.static)
    sts.fail_next("AccessDenied", "User is not authorized to perform: sts:AssumeRole", count=20)
    plugin = _plugin(provider("bedrock-role", "bedrock", bedrock.url, region=REGION,
                              aws={**STATIC_AWS, "assume_role": {"role_arn": ROLE_ARN}}))
    rc, err = _run_sidecar(tmp_path, plugin, bedrock_secrets(keys, aws_keys), env={"AWS_ENDPOINT_URL_STS": sts.url})
    assert rc != 0
    assert "bedrock-role" in err and "AccessDenied" in err, err
    assert aws_keys.static.secret_key not in err


@pytest.mark.timeout(40)
def test_sts_outage_after_start(make_gateway, bedrock, sts, keys, aws_keys):
    """STS fails after start-up: the cached credentials are used until they expire, then the
    gateway answers JSON 503 (nothing unsigned or expired goes out), and recovers without a
    restart once STS answers again."""
    sts.expiration_seconds = 4.0
    gw = _assume_role_gateway(make_gateway, bedrock, sts, keys, aws_keys, name="bedrock-sts-outage")
    assert _converse_raw(gw, keys).status == 200
    sts.fail_next("ServiceUnavailable", "STS is down", count=10_000)
    expires = max(c.expires_at for c in sts.issued())
    # Until the credentials expire requests still succeed (with them).
    while time.time() < expires - 1.7:  # the gateway stops using them 1 s early
        assert _converse_raw(gw, keys).status == 200
        time.sleep(0.3)
    wait_for(lambda: _converse_raw(gw, keys).status == 503, 4.0, 0.2, "503 after the credentials expired")
    assert all(r.verified for r in bedrock.requests), [str(r) for r in bedrock.requests if not r.verified]
    bedrock.reset()
    r = _converse_raw(gw, keys)
    assert_gateway_error(r, 503, "upstream_credential_unavailable")
    assert "bedrock" in r.json()["error"]["message"]
    assert bedrock.requests == [], "a request went out without valid credentials"
    with sts._lock:
        sts._fail_next.clear()
    wait_for(lambda: _converse_raw(gw, keys).status == 200, 8.0, 0.3, "recovery after STS came back")
    assert gw.sidecar.alive()


@pytest.mark.timeout(60)
def test_hung_sts_does_not_block_refresh_for_good(make_gateway, bedrock, sts, keys, aws_keys):
    """STS accepts connections but does not answer (40 s): the cached credentials serve until
    they expire, then requests fail closed quickly (JSON 5xx, nothing forwarded). Once STS
    answers again the gateway must recover within seconds, i.e. the hung refresh call has a
    timeout; without one it would wait for the 40 s answer (or forever on a black hole)."""
    sts.expiration_seconds = 6.0
    gw = _assume_role_gateway(make_gateway, bedrock, sts, keys, aws_keys, name="bedrock-sts-hung")
    assert _converse_raw(gw, keys).status == 200
    expires = max(c.expires_at for c in sts.issued())
    sts.hang_seconds = 40.0
    while time.time() < expires - 1.7:  # the gateway stops using them 1 s early
        r = _converse_raw(gw, keys)
        assert r.status == 200, r
        time.sleep(0.3)
    wait_for(lambda: _converse_raw(gw, keys).status != 200, 4.0, 0.2, "a refusal after the credentials expired")
    bedrock.reset()
    r = _converse_raw(gw, keys)
    assert_gateway_error(r, (503, 504), None)
    assert r.elapsed < 2.0, r.elapsed
    assert bedrock.requests == [], "a request went out with expired credentials"
    sts.hang_seconds = 0.0  # STS answers new calls again
    t0 = time.monotonic()
    try:
        wait_for(lambda: _converse_raw(gw, keys).status == 200, 15.0, 0.5, "recovery once STS answers again")
    finally:
        print(f"STS calls (s after expiry): {[(round(c.at - expires, 1), c.status) for c in sts.calls]}; "
              f"waited {time.monotonic() - t0:.1f} s")


def test_no_aws_secret_in_logs(make_gateway, bedrock, sts, keys, aws_keys):
    gw = make_gateway(api_keys=API_KEYS, providers=bedrock_providers(bedrock), secrets=bedrock_secrets(keys, aws_keys),
                      name="bedrock-logs", envoy_log_level="info")
    for name in ("bedrock", "bedrock-session"):
        assert _converse_raw(gw, keys, name).status == 200
    bedrock.creds.clear()  # the mock now refuses: the sidecar may log the upstream 403
    _converse_raw(gw, keys)
    gw.stop()
    logs = gw.logs()
    assert "listening" in logs
    for secret in (keys.gateway, aws_keys.static.secret_key, aws_keys.session.secret_key, aws_keys.session.token):
        assert secret not in logs, f"a secret appears in the logs:\n{logs}"


def test_default_chain_shared_credentials_file(make_gateway, bedrock, keys, tmp_path):
    from conftest import new_aws_creds

    other, chosen = new_aws_creds(), new_aws_creds()
    bedrock.creds.replace(chosen)
    creds_file = tmp_path / "credentials"
    creds_file.write_text(f"[default]\naws_access_key_id = {other.access_key}\naws_secret_access_key = {other.secret_key}\n"
                          f"[aigw]\naws_access_key_id = {chosen.access_key}\naws_secret_access_key = {chosen.secret_key}\n")
    gw = make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION)],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-files",
                      sidecar_env={"AWS_SHARED_CREDENTIALS_FILE": str(creds_file), "AWS_PROFILE": "aigw"})
    r = _converse_raw(gw, keys)
    assert r.status == 200, r
    assert_signed_upstream(bedrock.only(), chosen, keys=keys)


@pytest.mark.timeout(30)
def test_default_chain_container_credentials(make_gateway, bedrock, sts, keys, tmp_path):
    """EKS Pod Identity / ECS: AWS_CONTAINER_CREDENTIALS_FULL_URI + authorization token file."""
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-identity-token-1")
    sts.container_tokens = {"pod-identity-token-1"}
    bedrock.creds.clear()
    gw = make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION)],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-pod-identity",
                      sidecar_env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{sts.url}/v1/credentials",
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)})
    for _ in range(3):
        r = _converse_raw(gw, keys)
        assert r.status == 200, f"{r}\ncalls: {[(c.action, c.error) for c in sts.calls]}"
    assert sts.count("ContainerCredentials") == 1
    issued = sts.issued()[0]
    for rec in bedrock.requests:
        assert_signed_upstream(rec, issued, token=issued.token, keys=keys)


def test_default_chain_from_environment(make_gateway, bedrock, keys):
    from conftest import new_aws_creds

    env_creds = new_aws_creds("ASIA", token=True)
    bedrock.creds.replace(env_creds)
    gw = make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION)],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-envchain",
                      sidecar_env={"AWS_ACCESS_KEY_ID": env_creds.access_key,
                                   "AWS_SECRET_ACCESS_KEY": env_creds.secret_key,
                                   "AWS_SESSION_TOKEN": env_creds.token,
                                   # The provider's region is what is signed for, not the environment's.
                                   "AWS_REGION": "ap-southeast-2", "AWS_DEFAULT_REGION": "ap-southeast-2"})
    for _ in range(2):
        r = _converse_raw(gw, keys)
        assert r.status == 200, r
    for rec in bedrock.requests:
        assert_signed_upstream(rec, env_creds, token=env_creds.token, keys=keys)


@pytest.mark.timeout(40)
def test_default_chain_web_identity(make_gateway, bedrock, sts, keys, tmp_path):
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWlndzpnYXRld2F5In0.sig"
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(token)
    sts.web_identity_tokens = {token}
    irsa_role = "arn:aws:iam::123456789012:role/aigw-irsa"
    sts.roles = {irsa_role}
    bedrock.creds.clear()
    gw = make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION)],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-irsa",
                      sidecar_env={"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ROLE_ARN": irsa_role,
                                   "AWS_ROLE_SESSION_NAME": "aigw-pod", "AWS_ENDPOINT_URL_STS": sts.url})
    for i in range(4):
        r = _converse_raw(gw, keys)
        assert r.status == 200, f"request {i}: {r}\nSTS calls: {[(c.action, c.error) for c in sts.calls]}"
    assert sts.count("AssumeRoleWithWebIdentity") == 1
    (call,) = [c for c in sts.calls if c.action == "AssumeRoleWithWebIdentity"]
    assert call.params["RoleArn"] == irsa_role and call.params["RoleSessionName"] == "aigw-pod"
    assert call.params["WebIdentityToken"] == token
    for rec in bedrock.requests:
        assert_signed_upstream(rec, call.issued, token=call.issued.token, keys=keys)


@pytest.mark.timeout(40)
def test_web_identity_token_file_is_reread_on_refresh(make_gateway, bedrock, sts, keys, tmp_path):
    """The kubelet rotates the projected token; STS accepts only the current one."""
    token_file = tmp_path / "token"
    token_file.write_text("web-identity-token-1")
    sts.web_identity_tokens = {"web-identity-token-1"}
    sts.expiration_seconds = 3.0
    bedrock.creds.clear()
    gw = make_gateway(api_keys=API_KEYS, providers=[provider("bedrock", "bedrock", bedrock.url, region=REGION)],
                      secrets={GATEWAY_KEY_SECRET: keys.gateway}, name="bedrock-irsa-rotation",
                      sidecar_env={"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
                                   "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/aigw-irsa",
                                   "AWS_ENDPOINT_URL_STS": sts.url})
    assert _converse_raw(gw, keys).status == 200
    tmp = tmp_path / "token.new"
    tmp.write_text("web-identity-token-2")
    tmp.replace(token_file)
    sts.web_identity_tokens = {"web-identity-token-2"}
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5.0:
        r = _converse_raw(gw, keys)
        assert r.status == 200, f"{r}\nSTS: {[(c.action, c.params.get('WebIdentityToken'), c.error) for c in sts.calls]}"
        time.sleep(0.25)
    ok = [c for c in sts.calls if c.status == 200]
    assert ok[-1].params["WebIdentityToken"] == "web-identity-token-2"


# --------------------------------------------------------------------------- start-up refusals


def _run_sidecar(tmp_path, plugin, secrets, env=None):
    """Starts a sidecar that should refuse to start; returns (exit code, stderr)."""
    if not sidecar_available():
        pytest.fail("sidecar binary not built (make build)")
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    for k, v in secrets.items():
        (sdir / k).write_text(v + "\n")
    port = free_port()
    cfg = tmp_path / "envoy.yaml"
    cfg.write_text(dump_yaml(render_envoy_config(plugin, port)))
    from harness import sidecar_environment

    p = start_sidecar(cfg, port, sdir, tmp_path, env=sidecar_environment(env))
    rc = p.wait_exit(15)
    try:
        assert rc is not None, f"the sidecar kept running\n{p.output()}"
    finally:
        p.stop()
    return rc, p.stderr()


def _plugin(*providers):
    return {"providers": list(providers), "api_keys": [{"name": "tests", "secret": GATEWAY_KEY_SECRET}]}


def test_bedrock_without_region_is_refused(tmp_path, bedrock, keys):
    plugin = _plugin(provider("bedrock", "bedrock", bedrock.url, aws=STATIC_AWS))
    rc, err = _run_sidecar(tmp_path, plugin, {GATEWAY_KEY_SECRET: keys.gateway,
                                              "BEDROCK_AWS_ACCESS_KEY_ID": "AKIAX", "BEDROCK_AWS_SECRET_ACCESS_KEY": "s"})
    assert rc != 0
    assert "providers[0].region" in err, err
    # Envoy's filter refuses the same configuration.
    gw = Gateway(tmp_path / "envoy-only", plugin["providers"], {GATEWAY_KEY_SECRET: keys.gateway},
                 sidecar=False, start_timeout=15, name="no-region")
    with pytest.raises(Exception) as e:
        gw.start()
    assert "providers[0].region" in str(e.value), str(e.value)


def test_missing_static_aws_secrets_are_refused(tmp_path, bedrock, keys):
    plugin = _plugin(provider("bedrock", "bedrock", bedrock.url, region=REGION, aws=SESSION_AWS))
    rc, err = _run_sidecar(tmp_path, plugin, {GATEWAY_KEY_SECRET: keys.gateway,
                                              "BEDROCK_SESSION_SECRET_ACCESS_KEY": "present-secret-value"})
    assert rc != 0
    assert "BEDROCK_SESSION_ACCESS_KEY_ID" in err, err
    assert "BEDROCK_SESSION_TOKEN" in err, err
    assert "present-secret-value" not in err, "a secret value was printed"


def test_default_chain_without_credentials_is_refused(tmp_path, bedrock, keys):
    plugin = _plugin(provider("bedrock-default", "bedrock", bedrock.url, region=REGION))
    rc, err = _run_sidecar(tmp_path, plugin, {GATEWAY_KEY_SECRET: keys.gateway})
    assert rc != 0
    assert "bedrock-default" in err, err
    assert "credential" in err.lower(), err
