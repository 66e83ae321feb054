"""The AWS mocks themselves, without a gateway: event-stream framing against the published
vectors, the mock Bedrock's SigV4 verification against botocore as a client, the mock STS
against botocore's STS client."""

from __future__ import annotations

import base64
import http.client
import json
import time
import uuid

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from harness import aws
from mocks import eventstream as es
from mocks.bedrock import MockBedrock, pieces
from mocks.sigv4 import CredentialStore, verify
from mocks.sts import MockSTS

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
AK, SK = "AKIAMOCKTESTKEY00001", "mock/secret+key/0000000000000000000000"

# providers.md §7: the message_stop chunk (135 bytes) and aws-c-event-stream's {'foo':'bar'}.
MESSAGE_STOP_HEX = (
    "00000087" "0000004b" "87ea2bf3"
    "0b" "3a6576656e742d74797065" "07" "0005" "6368756e6b"
    "0d" "3a636f6e74656e742d74797065" "07" "0010" "6170706c69636174696f6e2f6a736f6e"
    "0d" "3a6d6573736167652d74797065" "07" "0005" "6576656e74"
    "7b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227d"
    "ba48ab22"
)
FOO_BAR_HEX = "0000001d" "00000000" "fd528c5a" "7b27666f6f273a27626172277d" "c3653936"


@pytest.fixture
def mock():
    with MockBedrock() as m:
        m.creds.accept(AK, SK)
        yield m


@pytest.fixture
def sts(mock):
    with MockSTS(grant_to=[mock.creds]) as s:
        s.base_creds.accept(AK, SK)
        yield s


def sigv4_client(m: MockBedrock, ak=AK, sk=SK, token=None, region="us-east-1"):
    return aws.bedrock_runtime(m.url, access_key=ak, secret_key=sk, token=token, region=region)


MESSAGES = [{"role": "user", "content": [{"text": "hello there mock"}]}]
INVOKE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
               "messages": [{"role": "user", "content": "hello there mock"}]}


# --------------------------------------------------------------------------- event stream


def test_frame_encoder_matches_the_worked_vector():
    inner = b'{"type":"message_stop"}'
    payload = json.dumps({"bytes": base64.b64encode(inner).decode()}, separators=(",", ":")).encode()
    frame = es.event_frame("chunk", payload)
    assert len(frame) == 135
    assert frame.hex() == MESSAGE_STOP_HEX
    f = es.decode_frame(frame)
    assert f.headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    assert json.loads(f.payload) == {"bytes": "eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0="}


def test_frame_encoder_matches_the_published_vector():
    assert es.encode_frame([], b"{'foo':'bar'}").hex() == FOO_BAR_HEX
    f = es.decode_frame(bytes.fromhex(FOO_BAR_HEX))
    assert f.headers == {} and f.payload == b"{'foo':'bar'}"


def test_botocore_decodes_our_frames_fed_in_pieces():
    frame = bytes.fromhex(MESSAGE_STOP_HEX)
    buf = EventStreamBuffer()
    buf.add_data(frame[:50])
    assert list(buf) == []
    buf.add_data(frame[50:])
    (msg,) = list(buf)
    assert msg.headers[":event-type"] == "chunk"
    assert msg.payload == frame[12 + 75:-4]


def test_all_header_types_round_trip_through_botocore():
    u = uuid.UUID("0123456789abcdef0123456789abcdef")
    hdrs = [("t", True), ("f", False), ("b", 7, es.BYTE), ("s16", -2, es.INT16), ("i32", 70000),
            ("i64", 2 ** 40, es.INT64), ("ts", 1700000000000, es.TIMESTAMP), ("u", u),
            ("raw", b"\x00\x01"), ("str", "héllo")]
    frame = es.encode_frame(hdrs, b"x")
    ours = es.decode_frame(frame).headers
    assert ours == {"t": True, "f": False, "b": 7, "s16": -2, "i32": 70000, "i64": 2 ** 40,
                    "ts": 1700000000000, "u": u, "raw": b"\x00\x01", "str": "héllo"}
    buf = EventStreamBuffer()
    buf.add_data(frame)
    (msg,) = list(buf)
    assert msg.headers["i32"] == 70000 and msg.headers["str"] == "héllo" and msg.headers["t"] is True


@pytest.mark.parametrize("pos", [2, 9, 20, -1])
def test_corrupted_frames_are_rejected(pos):
    frame = bytearray.fromhex(MESSAGE_STOP_HEX)
    frame[pos] ^= 0x01
    with pytest.raises(es.FrameError):
        es.decode_all(bytes(frame))


def test_frame_reader_splits_a_byte_stream():
    frames = [es.event_frame("chunk", b'{"bytes":"e30="}') for _ in range(3)] + [es.encode_frame([], b"{}")]
    data = b"".join(frames)
    got = list(es.iter_frames(data[i:i + 7] for i in range(0, len(data), 7)))
    assert [g.raw for g in got] == frames
    with pytest.raises(es.FrameError):
        list(es.iter_frames([data[:-3]]))


# --------------------------------------------------------------------------- mock Bedrock + botocore SigV4


def test_converse_signed_by_botocore_verifies(mock):
    out = sigv4_client(mock).converse(modelId=MODEL, messages=MESSAGES)
    assert out["output"]["message"]["content"][0]["text"] == mock.answer
    assert out["usage"] == {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}
    rec = mock.only()
    assert rec.verified, rec.verification
    assert rec.path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    assert rec.model_id_decoded == MODEL
    # The canonical URI is the received path encoded once more (%3A -> %253A).
    assert rec.verification.canonical_request.split("\n")[1] == \
        "/model/anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse"


def test_arn_model_id_path_and_signature(mock):
    sigv4_client(mock).converse(modelId=ARN, messages=MESSAGES)
    rec = mock.only()
    assert rec.verified, rec.verification
    assert rec.path == ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
                        "%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse")
    assert rec.model_id_decoded == ARN


def test_converse_stream_events(mock):
    mock.stream_chunks = 4
    out = sigv4_client(mock).converse_stream(modelId=MODEL, messages=MESSAGES)
    events = list(out["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * 4 + ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "".join(pieces(4))
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    assert mock.only().verified


def test_invoke_model_and_usage_headers(mock):
    out = sigv4_client(mock).invoke_model(modelId=MODEL, body=json.dumps(INVOKE_BODY))
    body = json.loads(out["body"].read())
    assert body["content"][0]["text"] == mock.answer
    hdrs = out["ResponseMetadata"]["HTTPHeaders"]
    assert hdrs["x-amzn-bedrock-input-token-count"] == "3"
    assert hdrs["x-amzn-bedrock-output-token-count"] == "5"
    assert mock.only().verified


def test_invoke_model_with_response_stream(mock):
    out = sigv4_client(mock).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(INVOKE_BODY))
    inner = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    assert [i["type"] for i in inner] == ["message_start", "content_block_start"] + ["content_block_delta"] * 3 + \
        ["content_block_stop", "message_delta", "message_stop"]
    assert inner[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 3


def test_count_tokens(mock):
    client = sigv4_client(mock)
    out = client.count_tokens(modelId=MODEL, input={"converse": {"messages": MESSAGES}})
    assert out["inputTokens"] == 3
    out = client.count_tokens(modelId=MODEL, input={"invokeModel": {"body": json.dumps(INVOKE_BODY).encode()}})
    assert out["inputTokens"] == 3
    assert all(r.verified for r in mock.requests)


def test_session_token_must_match(mock):
    mock.creds.accept("ASIAMOCKSESSION00001", "sess-secret", token="tok-1")
    sigv4_client(mock, "ASIAMOCKSESSION00001", "sess-secret", "tok-1").converse(modelId=MODEL, messages=MESSAGES)
    assert mock.last().verified and "x-amz-security-token" in mock.last().verification.signed_headers
    with pytest.raises(ClientError) as e:
        sigv4_client(mock, "ASIAMOCKSESSION00001", "sess-secret", "tok-2").converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as e:
        sigv4_client(mock, "ASIAMOCKSESSION00001", "sess-secret").converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


@pytest.mark.parametrize("ak,sk,region,code", [
    (AK, "wrong-secret", "us-east-1", "InvalidSignatureException"),
    ("AKIAUNKNOWN000000000", SK, "us-east-1", "UnrecognizedClientException"),
    (AK, SK, "eu-west-1", "InvalidSignatureException"),
])
def test_bad_signatures_are_refused_like_aws(mock, ak, sk, region, code):
    with pytest.raises(ClientError) as e:
        sigv4_client(mock, ak, sk, region=region).converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == code
    assert not mock.only().verified and mock.only().status == 403


def test_mismatch_message_is_aws_wording(mock):
    with pytest.raises(ClientError) as e:
        sigv4_client(mock, AK, "nope").converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["Error"]["Message"].startswith("The request signature we calculated does not match")


def _raw(mock, method, path, headers, body):
    c = http.client.HTTPConnection(mock.host, mock.port, timeout=5)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_tampered_body_or_path_is_refused(mock):
    path = "/model/m%3A0/converse"
    body = b'{"messages":[]}'
    signed = aws.sign_request("POST", f"{mock.url}{path}", {"Content-Type": "application/json",
                                                             "X-Amz-Content-SHA256": _sha(body)}, body, AK, SK)
    r, _ = _raw(mock, "POST", path, signed, body)
    assert r.status == 200, mock.last().verification
    r, data = _raw(mock, "POST", path, signed, b'{"messages":[1]}')  # body changed: sha header mismatch
    assert r.status in (400, 403) and not mock.last().verified, data
    unsha = {k: v for k, v in signed.items() if k.lower() != "x-amz-content-sha256"}
    r, data = _raw(mock, "POST", path, unsha, body)  # header removed but signed
    assert r.status == 403 and not mock.last().verified
    r, data = _raw(mock, "POST", "/model/m:0/converse", signed, body)  # path decoded: different canonical URI
    assert r.status == 403 and r.getheader("x-amzn-ErrorType").startswith("InvalidSignatureException"), data
    assert json.loads(data)["message"].startswith("The request signature we calculated does not match")


def test_missing_or_bearer_authorization_is_refused(mock):
    r, data = _raw(mock, "POST", "/model/m/converse", {"Content-Type": "application/json"}, b"{}")
    assert r.status == 403 and r.getheader("x-amzn-ErrorType").startswith("MissingAuthenticationToken")
    r, data = _raw(mock, "POST", "/model/m/converse", {"Authorization": "Bearer gw-x"}, b"{}")
    assert r.status == 403 and not mock.last().verified


def test_stale_date_is_refused():
    creds = CredentialStore()
    creds.accept(AK, SK)
    body = b"{}"
    h = aws.sign_request("POST", "http://127.0.0.1:1/model/m/converse", {"X-Amz-Content-SHA256": _sha(body)},
                         body, AK, SK)
    hdrs = list(h.items()) + [("Host", "127.0.0.1:1")]
    assert verify("POST", "/model/m/converse", hdrs, body, creds, service="bedrock", region="us-east-1").ok
    v = verify("POST", "/model/m/converse", hdrs, body, creds, service="bedrock", region="us-east-1",
               now=time.time() + 3600)
    assert not v.ok and v.message.startswith("Signature expired")


def test_rotation_of_accepted_keys(mock):
    client = sigv4_client(mock)
    client.converse(modelId=MODEL, messages=MESSAGES)
    new = mock.creds.accept("AKIAMOCKROTATED00002", "rotated-secret")
    mock.creds.replace(new)
    with pytest.raises(ClientError):
        client.converse(modelId=MODEL, messages=MESSAGES)
    sigv4_client(mock, "AKIAMOCKROTATED00002", "rotated-secret").converse(modelId=MODEL, messages=MESSAGES)
    assert [r.verified for r in mock.requests] == [True, False, True]


def test_frames_are_sent_separately_in_time(mock):
    mock.stream_chunks, mock.frame_delay = 3, 0.15
    path = "/model/m/converse-stream"
    body = json.dumps({"messages": MESSAGES}).encode()
    signed = aws.sign_request("POST", f"{mock.url}{path}", {"X-Amz-Content-SHA256": _sha(body)}, body, AK, SK)
    c = http.client.HTTPConnection(mock.host, mock.port, timeout=5)
    c.request("POST", path, body=body, headers=signed)
    r = c.getresponse()
    assert r.getheader("Content-Type") == "application/vnd.amazon.eventstream"
    reader, arrivals = es.FrameReader(), []
    while chunk := r.read1(65536):
        for f in reader.feed(chunk):
            arrivals.append((time.monotonic(), f))
    c.close()
    assert [f.event_type for _, f in arrivals] == \
        ["messageStart"] + ["contentBlockDelta"] * 3 + ["contentBlockStop", "messageStop", "metadata"]
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    assert all(g > 0.1 for g in gaps), gaps
    assert [f.raw for _, f in arrivals] == mock.only().sent_frames


def test_errors_and_in_stream_exceptions(mock):
    client = sigv4_client(mock)
    mock.fail_with(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    with pytest.raises(ClientError) as e:
        client.converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    mock.stream_exception = ("throttlingException", "slow down", 2)
    out = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    got = []
    with pytest.raises(EventStreamError) as e:
        for ev in out["stream"]:
            got.append(ev)
    assert len(got) == 2 and "throttlingException" in str(e.value)


# --------------------------------------------------------------------------- mock STS


def test_assume_role_with_botocore(mock, sts):
    client = aws.sts_client(sts.url, AK, SK)
    out = client.assume_role(RoleArn="arn:aws:iam::123456789012:role/bedrock", RoleSessionName="aigw",
                             ExternalId="ext")
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and c["SessionToken"] and c["SecretAccessKey"]
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/bedrock/aigw"
    assert sts.count("AssumeRole") == 1
    call = sts.calls[0]
    assert call.verification.ok and call.params["ExternalId"] == "ext"
    # The temporary credentials work at the mock Bedrock.
    sigv4_client(mock, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).converse(
        modelId=MODEL, messages=MESSAGES)
    assert mock.only().verified


def test_assume_role_signature_is_verified(sts):
    with pytest.raises(ClientError) as e:
        aws.sts_client(sts.url, AK, "wrong").assume_role(RoleArn="arn:aws:iam::1:role/r", RoleSessionName="s1")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    sts.external_id = "needed"
    with pytest.raises(ClientError) as e:
        aws.sts_client(sts.url, AK, SK).assume_role(RoleArn="arn:aws:iam::1:role/r", RoleSessionName="s1")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert sts.count("AssumeRole") == 0


def test_assume_role_with_web_identity(mock, sts):
    sts.web_identity_tokens = {"eyJ.web.identity"}
    from botocore import UNSIGNED
    from botocore.config import Config
    client = aws.session().client("sts", region_name="us-east-1", endpoint_url=sts.url,
                                  config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
    out = client.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/irsa",
                                               RoleSessionName="pod", WebIdentityToken="eyJ.web.identity")
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as e:
        client.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/irsa",
                                             RoleSessionName="pod", WebIdentityToken="forged")
    assert e.value.response["Error"]["Code"] == "InvalidIdentityToken"
    assert sts.count("AssumeRoleWithWebIdentity") == 1


def test_expired_temporary_credentials_are_refused(mock, sts):
    sts.expiration_seconds = 1.5  # the Expiration is whole seconds: 0.5 to 1.5 s from now
    c = aws.sts_client(sts.url, AK, SK).assume_role(RoleArn="arn:aws:iam::1:role/r",
                                                    RoleSessionName="s1")["Credentials"]
    client = sigv4_client(mock, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    client.converse(modelId=MODEL, messages=MESSAGES)
    time.sleep(1.6)
    with pytest.raises(ClientError) as e:
        client.converse(modelId=MODEL, messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "ExpiredTokenException"


def _sha(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()


def test_async_invoke_routes_and_query_signing(mock):
    client = sigv4_client(mock)
    out = client.list_async_invokes(maxResults=5, sortOrder="Ascending")
    assert out["asyncInvokeSummaries"][0]["status"] == "Completed"
    arn = out["asyncInvokeSummaries"][0]["invocationArn"]
    assert client.get_async_invoke(invocationArn=arn)["invocationArn"] == arn
    list_req, get_req = mock.requests
    assert list_req.path.startswith("/async-invoke?") and "maxResults=5" in list_req.path
    assert get_req.path == "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aasync-invoke%2Fmock0001"
    assert list_req.verified and get_req.verified


def test_query_is_canonicalized_like_aws(mock):
    # Signed over the normalised query (sorted, re-encoded); sent with another spelling.
    body = b""
    signed = aws.sign_request("GET", f"{mock.url}/async-invoke?a=x%2Fy&b=1", {"X-Amz-Content-SHA256": _sha(body)},
                              body, AK, SK)
    r, _ = _raw(mock, "GET", "/async-invoke?b=1&a=x/y", signed, None)
    assert r.status == 200, mock.last().verification
    r, _ = _raw(mock, "GET", "/async-invoke?b=2&a=x/y", signed, None)
    assert r.status == 403
    signed = aws.sign_request("GET", f"{mock.url}/async-invoke?q=a%20b", {"X-Amz-Content-SHA256": _sha(body)},
                              body, AK, SK)
    r, _ = _raw(mock, "GET", "/async-invoke?q=a+b", signed, None)  # '+' is a space in a query
    assert r.status == 200, mock.last().verification


def test_container_credentials_endpoint(mock, sts):
    import urllib.error
    import urllib.request

    sts.container_tokens = {"pod-identity-token"}
    req = urllib.request.Request(f"{sts.url}/v1/credentials", headers={"Authorization": "pod-identity-token"})
    with urllib.request.urlopen(req, timeout=5) as r:
        c = json.loads(r.read())
    assert c["AccessKeyId"].startswith("ASIA") and c["Token"] and c["Expiration"].endswith("Z")
    assert mock.creds.get(c["AccessKeyId"]) is not None
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(f"{sts.url}/v1/credentials"), timeout=5)
    assert e.value.code == 403
    assert sts.count("ContainerCredentials") == 1
