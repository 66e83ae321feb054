"""Independent SigV4 verification for the AWS mocks, built on botocore's own signer.

The request is rebuilt from what arrived on the wire: method, `http://<Host header><raw path
as received>`, only the headers named in `SignedHeaders`, the raw body. botocore's
`SigV4Auth` then computes canonical request → string to sign → signature with the
credentials the test configured, and the result is compared with the received `Signature`.
Nothing of the gateway's own signing code is used.

    creds = CredentialStore(); creds.accept("AKIA...", "secret")
    v = verify(method, raw_path, headers, body, creds, service="bedrock", region="us-east-1")
    v.ok, v.error_type, v.message
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import threading
import time
from dataclasses import dataclass, field

from urllib.parse import unquote_plus

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"

# How far X-Amz-Date may be from the mock's clock (AWS: 5 minutes for most services).
MAX_SKEW = 300.0

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<sh>[^,\s]+)\s*,\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass
class AwsCreds:
    access_key: str
    secret_key: str
    token: str | None = None
    expires_at: float | None = None  # time.time(); None: long-term

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class CredentialStore:
    """The keys a mock AWS service currently accepts (thread-safe; tests rotate them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, AwsCreds] = {}

    def accept(self, access_key: str, secret_key: str, token: str | None = None,
               expires_at: float | None = None) -> AwsCreds:
        c = AwsCreds(access_key, secret_key, token, expires_at)
        with self._lock:
            self._by_key[access_key] = c
        return c

    def add(self, c: AwsCreds) -> None:
        with self._lock:
            self._by_key[c.access_key] = c

    def revoke(self, access_key: str) -> None:
        with self._lock:
            self._by_key.pop(access_key, None)

    def replace(self, *creds: AwsCreds) -> None:
        """Accept exactly these (a rotation that revokes the old key at once)."""
        with self._lock:
            self._by_key = {c.access_key: c for c in creds}

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()

    def get(self, access_key: str) -> AwsCreds | None:
        with self._lock:
            return self._by_key.get(access_key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._by_key)


@dataclass
class Verification:
    ok: bool
    status: int = 200
    error_type: str | None = None  # x-amzn-ErrorType / STS error Code
    message: str | None = None
    access_key: str | None = None
    scope_date: str | None = None
    region: str | None = None
    service: str | None = None
    signed_headers: list[str] = field(default_factory=list)
    signature: str | None = None
    expected_signature: str | None = None
    canonical_request: str | None = None
    string_to_sign: str | None = None
    amz_date: str | None = None
    security_token: str | None = None
    content_sha256: str | None = None  # header as received
    body_sha256: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"verified ({self.access_key}, {';'.join(self.signed_headers)})"
        return f"{self.status} {self.error_type}: {self.message}"


def _headers_get_all(headers: list[tuple[str, str]], name: str) -> list[str]:
    n = name.lower()
    return [v for k, v in headers if k.lower() == n]


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    vals = _headers_get_all(headers, name)
    return vals[0] if vals else None


def _fail(v: Verification, error_type: str, message: str, status: int = 403) -> Verification:
    v.ok, v.status, v.error_type, v.message = False, status, error_type, message
    return v


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def verify(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    creds: CredentialStore,
    *,
    service: str,
    region: str | None,
    now: float | None = None,
    require_content_sha256: bool = True,
) -> Verification:
    """Verifies a SigV4 `Authorization` header as AWS would. `region=None` accepts any region
    in the credential scope (STS is called with whichever region the client chose)."""
    v = Verification(ok=False, body_sha256=hashlib.sha256(body).hexdigest())
    v.amz_date = _first(headers, "x-amz-date")
    v.security_token = _first(headers, "x-amz-security-token")
    v.content_sha256 = _first(headers, "x-amz-content-sha256")
    auths = _headers_get_all(headers, "authorization")
    if not auths:
        return _fail(v, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if len(auths) > 1:
        return _fail(v, "IncompleteSignatureException", "more than one Authorization header")
    m = _AUTH_RE.match(auths[0].strip())
    if not m:
        return _fail(v, "IncompleteSignatureException",
                     f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                     f"(AWS4-HMAC-SHA256); got scheme {auths[0].split(' ', 1)[0]!r}")
    parts = m.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return _fail(v, "IncompleteSignatureException", f"malformed Credential {m.group('cred')!r}")
    v.access_key, v.scope_date, v.region, v.service = parts[0], parts[1], parts[2], parts[3]
    v.signed_headers = m.group("sh").split(";")
    v.signature = m.group("sig")

    if v.service != service:
        return _fail(v, "InvalidSignatureException",
                     f"Credential should be scoped to correct service: '{service}'. ")
    if region is not None and v.region != region:
        return _fail(v, "InvalidSignatureException",
                     f"Credential should be scoped to a valid region, not '{v.region}'. ")
    if v.signed_headers != sorted(v.signed_headers) or any(h != h.lower() for h in v.signed_headers):
        return _fail(v, "InvalidSignatureException", "SignedHeaders must be lower-case and sorted")
    for required in ("host", "x-amz-date"):
        if required not in v.signed_headers:
            return _fail(v, "IncompleteSignatureException",
                         f"'{required}' must be a signed header; SignedHeaders={m.group('sh')}")
    for h in v.signed_headers:
        if not _headers_get_all(headers, h):
            return _fail(v, "IncompleteSignatureException", f"signed header '{h}' is not in the request")
    if not v.amz_date or not re.fullmatch(r"\d{8}T\d{6}Z", v.amz_date):
        return _fail(v, "IncompleteSignatureException", f"bad or missing X-Amz-Date {v.amz_date!r}")
    if v.amz_date[:8] != v.scope_date:
        return _fail(v, "InvalidSignatureException",
                     f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                     f"'{v.scope_date}' != '{v.amz_date[:8]}'")
    ts = _dt.datetime.strptime(v.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()
    clock = now if now is not None else time.time()
    if abs(clock - ts) > MAX_SKEW:
        return _fail(v, "InvalidSignatureException",
                     f"Signature expired: {v.amz_date} is now earlier than the allowed window (skew {clock - ts:.0f}s)")
    if require_content_sha256 and v.content_sha256 is not None and v.content_sha256 != v.body_sha256:
        return _fail(v, "InvalidSignatureException",
                     f"x-amz-content-sha256 {v.content_sha256} does not match the body's SHA-256 {v.body_sha256}",
                     status=400)

    c = creds.get(v.access_key)
    if c is None:
        return _fail(v, "UnrecognizedClientException", INVALID_TOKEN_MESSAGE)
    if c.token is not None and v.security_token != c.token:
        return _fail(v, "UnrecognizedClientException", INVALID_TOKEN_MESSAGE)
    if c.token is None and v.security_token is not None:
        return _fail(v, "UnrecognizedClientException", INVALID_TOKEN_MESSAGE)
    if c.expired(clock):
        return _fail(v, "ExpiredTokenException", EXPIRED_TOKEN_MESSAGE)

    host = _first(headers, "host") or ""
    # The canonical query string as AWS builds it: the query decoded as a form
    # (application/x-www-form-urlencoded, so a raw '+' is a space, as in aws-sigv4 and S3),
    # every name and value re-encoded with quote(safe='-_.~'), sorted. (botocore's URL
    # variant would skip the re-encoding; it never sends an unencoded query.)
    path, _, query = raw_path.partition("?")
    params = [(unquote_plus(k), unquote_plus(val))
              for k, _, val in (p.partition("=") for p in query.split("&") if p)]
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body, params=params)
    for k, val in headers:
        if k.lower() in v.signed_headers:
            req.headers[k.lower()] = val  # HTTPHeaders: assignment appends (duplicates kept)
    req.context["timestamp"] = v.amz_date
    signer = SigV4Auth(Credentials(c.access_key, c.secret_key, c.token), v.service, v.region)
    v.canonical_request = signer.canonical_request(req)
    v.string_to_sign = signer.string_to_sign(req, v.canonical_request)
    v.expected_signature = signer.signature(v.string_to_sign, req)
    if not hmac.compare_digest(v.expected_signature, v.signature):
        return _fail(v, "InvalidSignatureException", MISMATCH_MESSAGE)
    v.ok, v.status = True, 200
    return v
