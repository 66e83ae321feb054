"""A mock AWS STS: AssumeRole and AssumeRoleWithWebIdentity (Query API), issuing temporary
credentials that a `MockBedrock` then accepts.

- Query protocol: `POST /` with a form-encoded body (`Action=AssumeRole&Version=2011-06-15
  &RoleArn=…&RoleSessionName=…[&ExternalId=…][&DurationSeconds=…]`), XML answers in STS's shape
  (`<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>…`). GET with the same
  parameters in the query string works too.
- AssumeRole must be SigV4-signed (service `sts`, any region) with one of `base_creds`; the
  signature is verified like the mock Bedrock does. AssumeRoleWithWebIdentity is unsigned; its
  `WebIdentityToken` must be one of `web_identity_tokens`.
- `expiration_seconds`: how far ahead the issued `Expiration` lies (AWS: DurationSeconds,
  900..43200; the mock issues whatever it is told, so a test can force a refresh). The mock
  Bedrock refuses issued credentials after their expiration (`ExpiredTokenException`).
- Every call is recorded in `calls`; `count(action)` counts them.
- `GET /v1/credentials` is a container credentials endpoint (ECS, EKS Pod Identity:
  `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`): JSON
  `{AccessKeyId, SecretAccessKey, Token, Expiration}`, recorded as action `ContainerCredentials`;
  the `Authorization` header must be one of `container_tokens`.
- `hang_seconds`: answer only after that long (a hung STS).
- Errors come back as `<ErrorResponse><Error><Type>Sender</Type><Code>…`.
"""

from __future__ import annotations

import datetime as _dt
import secrets as _secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from .sigv4 import AwsCreds, CredentialStore, Verification, verify
from .upstream import mock_llm

NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class STSCall:
    action: str | None
    params: dict[str, str]
    headers: list[tuple[str, str]]
    body: bytes
    at: float  # time.time()
    verification: Verification | None = None  # AssumeRole only
    status: int | None = None  # None while unanswered
    error: str | None = None
    issued: AwsCreds | None = None


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(mock_llm.JSONHandler):
    server: "_Server"
    server_version = "mock-sts/1"

    def _handle(self) -> None:
        mock = self.server.mock
        body = self.read_body()
        headers = [(k, v) for k, v in self.headers.raw_items()]
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        if self.command == "POST":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if self.command == "GET" and self.path.split("?", 1)[0] == "/v1/credentials":
            params = {"Action": "ContainerCredentials"}
        call = STSCall(params.get("Action"), params, headers, body, time.time())
        with mock._lock:
            mock.calls.append(call)
        try:
            self._answer(mock, call)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = _handle

    def _xml(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, call: STSCall, status: int, code: str, message: str) -> None:
        call.status, call.error = status, f"{code}: {message}"
        self._xml(status, (
            f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ))

    def _container(self, mock: "MockSTS", call: STSCall) -> None:
        auth = self.headers.get("Authorization")
        if auth not in mock.container_tokens:
            call.status, call.error = 403, f"bad container authorization {auth!r}"
            self.send_json(403, {"code": "AccessDenied", "message": "invalid authorization token"})
            return
        c = mock.issue()
        call.issued, call.status = c, 200
        self.send_json(200, {"AccessKeyId": c.access_key, "SecretAccessKey": c.secret_key, "Token": c.token,
                             "Expiration": _iso(c.expires_at or 0),
                             "RoleArn": "arn:aws:iam::123456789012:role/aigw-pod-identity"})

    def _answer(self, mock: "MockSTS", call: STSCall) -> None:
        p = call.params
        if mock.hang_seconds:
            time.sleep(mock.hang_seconds)
        if call.action == "ContainerCredentials":
            self._container(mock, call)
            return
        if p.get("Version") != "2011-06-15":
            self._error(call, 400, "InvalidAction", f"unsupported Version {p.get('Version')!r}")
            return
        if call.action not in ("AssumeRole", "AssumeRoleWithWebIdentity"):
            self._error(call, 400, "InvalidAction", f"Could not find operation {call.action!r} for version 2011-06-15")
            return
        if mock._fail_next:
            code, message = mock._fail_next.pop(0)
            self._error(call, 403, code, message)
            return
        for required in ("RoleArn", "RoleSessionName"):
            if not p.get(required):
                self._error(call, 400, "ValidationError", f"1 validation error detected: Value null at '{required}'")
                return
        if mock.roles is not None and p["RoleArn"] not in mock.roles:
            self._error(call, 403, "AccessDenied", f"Not authorized to perform sts:{call.action} on {p['RoleArn']}")
            return
        if call.action == "AssumeRole":
            v = verify(self.command, self.path, call.headers, call.body, mock.base_creds, service="sts", region=None)
            call.verification = v
            if not v.ok:
                code = {"InvalidSignatureException": "SignatureDoesNotMatch",
                        "UnrecognizedClientException": "InvalidClientTokenId",
                        "ExpiredTokenException": "ExpiredToken"}.get(v.error_type or "", v.error_type or "")
                self._error(call, 403, code, v.message or "")
                return
            if mock.external_id is not None and p.get("ExternalId") != mock.external_id:
                self._error(call, 403, "AccessDenied", "ExternalId does not match")
                return
        else:
            if p.get("WebIdentityToken") not in mock.web_identity_tokens:
                self._error(call, 400, "InvalidIdentityToken", "The web identity token that was passed is invalid")
                return
        creds = mock.issue()
        call.issued, call.status = creds, 200
        role_name = p["RoleArn"].rsplit("/", 1)[-1]
        session = p["RoleSessionName"]
        account = p["RoleArn"].split(":")[4] if p["RoleArn"].count(":") >= 5 else "123456789012"
        user = (f"<AssumedRoleUser><AssumedRoleId>AROA{uuid.uuid4().hex[:17].upper()}:{escape(session)}"
                f"</AssumedRoleId><Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(session)}"
                f"</Arn></AssumedRoleUser>")
        cred_xml = (f"<Credentials><AccessKeyId>{creds.access_key}</AccessKeyId>"
                    f"<SecretAccessKey>{creds.secret_key}</SecretAccessKey>"
                    f"<SessionToken>{creds.token}</SessionToken>"
                    f"<Expiration>{_iso(creds.expires_at or 0)}</Expiration></Credentials>")
        meta = f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        if call.action == "AssumeRole":
            self._xml(200, f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult>{user}{cred_xml}'
                           f"<PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>{meta}</AssumeRoleResponse>")
        else:
            self._xml(200, f'<AssumeRoleWithWebIdentityResponse xmlns="{NS}"><AssumeRoleWithWebIdentityResult>'
                           f"<SubjectFromWebIdentityToken>system:serviceaccount:aigw:gateway"
                           f"</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>{user}{cred_xml}"
                           f"<Provider>oidc.eks.us-east-1.amazonaws.com/id/MOCK</Provider>"
                           f"</AssumeRoleWithWebIdentityResult>{meta}</AssumeRoleWithWebIdentityResponse>")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    mock: "MockSTS"


class MockSTS:
    """`start()`, point `AWS_ENDPOINT_URL_STS` at `.url`. Issued credentials are added to
    each store in `grant_to` (e.g. a MockBedrock's `creds`)."""

    def __init__(self, grant_to: list[CredentialStore] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.grant_to = list(grant_to or [])
        self.base_creds = CredentialStore()  # who may call AssumeRole
        self.web_identity_tokens: set[str] = set()
        self.container_tokens: set[str] = set()
        self.roles: set[str] | None = None  # None: any role ARN
        self.external_id: str | None = None  # required ExternalId, if set
        self.expiration_seconds = 3600.0
        self.hang_seconds = 0.0  # answer only after this long (a hung STS)
        self.calls: list[STSCall] = []
        self._fail_next: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "MockSTS":
        self._srv = _Server((self.host, 0), _Handler)
        self._srv.mock = self
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"mock-sts-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MockSTS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._srv is not None, "mock not started"
        return self._srv.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._fail_next.clear()
        self.base_creds.clear()
        self.web_identity_tokens = set()
        self.container_tokens = set()
        self.roles = None
        self.external_id = None
        self.expiration_seconds = 3600.0
        self.hang_seconds = 0.0

    def fail_next(self, code: str = "AccessDenied", message: str = "denied", count: int = 1) -> None:
        with self._lock:
            self._fail_next.extend([(code, message)] * count)

    def issue(self) -> AwsCreds:
        c = AwsCreds(
            access_key="ASIA" + _secrets.token_hex(8).upper(),
            secret_key=_secrets.token_urlsafe(30),
            token="IQoJb3JpZ2luX2VjE" + _secrets.token_urlsafe(90),
            # Whole seconds: what the ISO 8601 Expiration on the wire says is what the mock enforces.
            expires_at=float(int(time.time() + self.expiration_seconds)),
        )
        for store in self.grant_to:
            store.add(c)
        return c

    def count(self, action: str | None = None, ok_only: bool = True) -> int:
        with self._lock:
            return sum(1 for c in self.calls
                       if (action is None or c.action == action) and (not ok_only or c.status == 200))

    def issued(self) -> list[AwsCreds]:
        with self._lock:
            return [c.issued for c in self.calls if c.issued is not None]
