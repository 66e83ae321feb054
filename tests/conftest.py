"""Fixtures for the integration tests (see tests/README.md).

- `upstream` / `tls_upstream`: the recording mock providers (session-wide, reset per test).
- `bedrock` / `sts`: the SigV4-verifying mock Bedrock runtime and the mock STS (session-wide,
  reset per test; `bedrock` then accepts exactly the static keys in `aws_keys`).
- `keys`: the gateway key and each provider's upstream key.
- `gateway`: one Envoy + filter + sidecar for the session, every standard provider pointing
  at the mocks. Tests that break or reconfigure a gateway start their own with `make_gateway`.
- `postgres_server` / `redis_server`: one PostgreSQL and one Redis server for the session
  (our children, on free ports); tests take a database each with `new_database(name)`.
- Every test runs under a time limit: `@pytest.mark.timeout(seconds)`, default 30 s.
- On a failure the captured stderr of every running gateway process is added to the report.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass

import pytest

from harness import GATEWAY_KEY_SECRET, Gateway, live_gateways, new_gateway_key, new_upstream_key, provider
from harness.aws import isolate_aws_environment
from harness.idp import live_idps
from harness.procs import stop_all
from harness.services import PostgresServer, RedisServer, ServiceUnavailable, live_services, stop_all_services
from mocks.bedrock import MockBedrock
from mocks.sigv4 import AwsCreds
from mocks.sts import MockSTS
from mocks.upstream import MockUpstream, make_tls_files

DEFAULT_TIMEOUT = 30.0

# The SDKs must talk to the gateway only: no proxies, no keys or base URLs from the environment.
for _k in list(os.environ):
    _u = _k.upper()
    if _u in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") or _u.startswith(
        ("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_")
    ):
        del os.environ[_k]
os.environ["NO_PROXY"] = "*"
# boto3 too: no AWS keys, config or credentials files, instance metadata or CA bundle.
isolate_aws_environment()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"timeout(seconds): time limit for one test (default {DEFAULT_TIMEOUT:g} s)")


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_all_services()
    stop_all()


# --------------------------------------------------------------------------- time limits


class TestTimeout(Exception):
    """The test ran past its time limit."""


@pytest.fixture(autouse=True)
def _time_limit(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("timeout")
    seconds = float(marker.args[0]) if marker and marker.args else DEFAULT_TIMEOUT

    def expire(signum, frame):
        raise TestTimeout(f"{request.node.nodeid} exceeded its {seconds:g} s time limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- logs on failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for gw in live_gateways():
            rep.sections.append((f"gateway logs: {gw.name}", gw.logs()))
        for idp in live_idps():
            rep.sections.append((f"IdP logs: {idp.name}", idp.logs()))
        for svc in live_services():  # the session servers only for the tests that use them
            if getattr(svc, "fixture", None) in (None, *item.fixturenames):
                rep.sections.append((f"server logs: {svc.name}", svc.logs()))


# --------------------------------------------------------------------------- mocks and keys


@dataclass(frozen=True)
class Keys:
    gateway: str  # the gateway API key clients send (secret AIGW_TEST_API_KEY, plain text)
    hashed_gateway: str  # a second gateway key, stored as sha256:<hex> (secret AIGW_HASHED_KEY)
    openai: str
    anthropic: str
    google: str
    local: str  # for the keyed openai-compatible provider

    def secrets(self) -> dict[str, str]:
        return {
            GATEWAY_KEY_SECRET: self.gateway,
            "AIGW_HASHED_KEY": "sha256:" + hashlib.sha256(self.hashed_gateway.encode()).hexdigest(),
            "OPENAI_API_KEY": self.openai,
            "ANTHROPIC_API_KEY": self.anthropic,
            "GEMINI_API_KEY": self.google,
            "LOCAL_API_KEY": self.local,
        }


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        gateway=new_gateway_key(),
        hashed_gateway=new_gateway_key(),
        openai=new_upstream_key("sk-openai"),
        anthropic=new_upstream_key("sk-ant"),
        google=new_upstream_key("AIza"),
        local=new_upstream_key("local"),
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def _upstream_server():
    m = MockUpstream().start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def _tls_upstream_server(tls_files):
    m = MockUpstream(tls=tls_files).start()
    yield m
    m.stop()


@pytest.fixture
def upstream(_upstream_server: MockUpstream) -> MockUpstream:
    """The plain-HTTP mock provider, with no recorded requests and default behaviour."""
    _upstream_server.reset()
    return _upstream_server


@pytest.fixture
def tls_upstream(_tls_upstream_server: MockUpstream) -> MockUpstream:
    """The TLS mock provider at https://localhost:<port>."""
    _tls_upstream_server.reset()
    return _tls_upstream_server


@dataclass(frozen=True)
class AwsKeys:
    """Static AWS keys of the Bedrock providers (secret files BEDROCK_AWS_*)."""

    static: AwsCreds  # access key + secret
    session: AwsCreds  # access key + secret + session token

    def secrets(self) -> dict[str, str]:
        return {
            "BEDROCK_AWS_ACCESS_KEY_ID": self.static.access_key,
            "BEDROCK_AWS_SECRET_ACCESS_KEY": self.static.secret_key,
            "BEDROCK_SESSION_ACCESS_KEY_ID": self.session.access_key,
            "BEDROCK_SESSION_SECRET_ACCESS_KEY": self.session.secret_key,
            "BEDROCK_SESSION_TOKEN": self.session.token or "",
        }


def new_aws_creds(prefix: str = "AKIA", token: bool = False) -> AwsCreds:
    import secrets as _s

    return AwsCreds(prefix + _s.token_hex(8).upper(), _s.token_urlsafe(30),
                    ("IQoJb3JpZ2luX2Vj" + _s.token_urlsafe(60)) if token else None)


@pytest.fixture(scope="session")
def aws_keys() -> AwsKeys:
    return AwsKeys(static=new_aws_creds(), session=new_aws_creds("ASIA", token=True))


@pytest.fixture(scope="session")
def _bedrock_server():
    m = MockBedrock().start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def _sts_server(_bedrock_server):
    m = MockSTS(grant_to=[_bedrock_server.creds]).start()
    yield m
    m.stop()


@pytest.fixture
def bedrock(_bedrock_server: MockBedrock, aws_keys: AwsKeys) -> MockBedrock:
    """The mock Bedrock runtime, reset, accepting exactly the static keys of `aws_keys`."""
    _bedrock_server.reset()
    _bedrock_server.creds.replace(aws_keys.static, aws_keys.session)
    return _bedrock_server


@pytest.fixture
def sts(_sts_server: MockSTS) -> MockSTS:
    """The mock STS, reset: no base credentials, no web identity tokens, any role."""
    _sts_server.reset()
    return _sts_server


# --------------------------------------------------------------------------- shared state


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> PostgresServer:
    """A PostgreSQL server for the session (trust auth, user `aigw`); each test takes its own
    database: `postgres_server.new_database(name)` → `postgres://aigw@127.0.0.1:<port>/<name>`.
    Tests that stop the server start their own `PostgresServer`."""
    try:
        pg = PostgresServer(tmp_path_factory.mktemp("postgres"))
    except ServiceUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    pg.fixture = "postgres_server"
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    """A Redis server for the session (`redis_server.url`); tests flush it as they need."""
    try:
        r = RedisServer(tmp_path_factory.mktemp("redis"))
    except ServiceUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    r.fixture = "redis_server"
    try:
        r.start()
        yield r
    finally:
        r.cleanup()


# --------------------------------------------------------------------------- gateways


def standard_providers(mock: MockUpstream, tls_mock: MockUpstream | None = None) -> list[dict]:
    """Every provider kind, all pointing at the mock(s)."""
    ps = [
        provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        provider("anthropic", "anthropic", mock.url, "ANTHROPIC_API_KEY"),
        provider("anthropic-own", "anthropic", mock.url, authorization_passthrough=True),
        provider("google", "google", mock.url, "GEMINI_API_KEY"),
        provider("local", "openai-compatible", f"{mock.url}/v1"),
        provider("local-keyed", "openai-compatible", f"{mock.url}/v1", "LOCAL_API_KEY"),
        provider("disabled", "openai", f"{mock.url}/v1", "OPENAI_API_KEY", enabled=False),
        # Nothing listens there: the gateway's upstream_unavailable error.
        provider("unreachable", "openai-compatible", f"http://127.0.0.1:{_closed_port()}/v1"),
    ]
    if tls_mock is not None:
        ps.append(provider("openai-tls", "openai", f"{tls_mock.url}/v1", "OPENAI_API_KEY"))
    return ps


def standard_api_keys() -> list[dict]:
    return [
        {"name": "tests", "secret": GATEWAY_KEY_SECRET},
        {"name": "tests-hashed", "secret": "AIGW_HASHED_KEY"},
    ]


def _closed_port() -> int:
    from harness import free_port

    return free_port()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, _upstream_server, _tls_upstream_server, tls_files, keys) -> Gateway:
    """The shared gateway. Tests must not reconfigure or break it."""
    gw = Gateway(
        tmp_path_factory.mktemp("gateway"),
        standard_providers(_upstream_server, _tls_upstream_server),
        keys.secrets(),
        standard_api_keys(),
        tls_ca=tls_files.ca_cert,
        name="shared",
    )
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(tmp_path, keys, _upstream_server):
    """Starts a private gateway (stopped after the test): `make_gateway(**Gateway kwargs)`.
    Defaults: the standard providers and secrets."""
    started: list[Gateway] = []

    def make(providers=None, secrets=None, api_keys=None, name="private", **kw) -> Gateway:
        gw = Gateway(
            tmp_path / f"{name}{len(started)}",
            providers if providers is not None else standard_providers(_upstream_server),
            secrets if secrets is not None else keys.secrets(),
            api_keys if api_keys is not None else standard_api_keys(),
            name=name,
            **kw,
        )
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
