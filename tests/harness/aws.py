"""boto3 clients for the Bedrock tests, isolated from the machine's AWS setup.

- No shared config or credentials files, no instance metadata: `isolate_aws_environment()`
  (called from conftest at import) removes every `AWS_*` variable of the test process and
  points `AWS_CONFIG_FILE`/`AWS_SHARED_CREDENTIALS_FILE` at `/dev/null`.
- Bearer mode (`AWS_BEARER_TOKEN_BEDROCK`, botocore ≥ 1.39): botocore reads the variable when
  the client is created (the token) **and on every request** (`handlers._should_prefer_bearer_auth`
  decides per request whether to use bearer auth), so it must stay set while the client is
  used: `with bearer_token(key): ...` or the `bedrock_client` fixture (monkeypatch).
- Every client is made from a fresh botocore session, retries off (a test sees the first
  answer), short timeouts.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import boto3
import botocore.session
from botocore.config import Config

BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"


def isolate_aws_environment() -> None:
    for k in list(os.environ):
        if k.upper().startswith("AWS_"):
            del os.environ[k]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@contextlib.contextmanager
def bearer_token(token: str) -> Iterator[None]:
    """`AWS_BEARER_TOKEN_BEDROCK=token` for the duration of the block."""
    old = os.environ.get(BEARER_ENV)
    os.environ[BEARER_ENV] = token
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(BEARER_ENV, None)
        else:
            os.environ[BEARER_ENV] = old


def client_config(read_timeout: float = 30.0) -> Config:
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                  read_timeout=read_timeout, tcp_keepalive=False)


_loader = None


def session() -> boto3.Session:
    """A boto3 session on a fresh botocore session (no cached credentials or tokens). Only the
    data loader (the parsed service models) is shared, which makes client creation cheap."""
    global _loader
    s = botocore.session.Session()
    if _loader is None:
        _loader = s.get_component("data_loader")
    else:
        s.register_component("data_loader", _loader)
    return boto3.Session(botocore_session=s)


def bedrock_runtime(endpoint_url: str, *, verify: str | bool | None = None, region: str = "us-east-1",
                    access_key: str | None = None, secret_key: str | None = None, token: str | None = None,
                    read_timeout: float = 30.0):
    """A `bedrock-runtime` client. Without `access_key` it authenticates the way the
    environment says (bearer mode when `AWS_BEARER_TOKEN_BEDROCK` is set); with it, SigV4."""
    kw = {}
    if access_key is not None:
        kw = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key, "aws_session_token": token}
    return session().client("bedrock-runtime", region_name=region, endpoint_url=endpoint_url, verify=verify,
                            config=client_config(read_timeout), **kw)


def sts_client(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1"):
    return session().client("sts", region_name=region, endpoint_url=endpoint_url, aws_access_key_id=access_key,
                            aws_secret_access_key=secret_key, config=client_config())


def sign_request(method: str, url: str, headers: dict[str, str], body: bytes, access_key: str, secret_key: str,
                 token: str | None = None, region: str = "us-east-1", service: str = "bedrock") -> dict[str, str]:
    """The headers botocore's SigV4 signer adds for this request (a client signing itself)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    SigV4Auth(Credentials(access_key, secret_key, token), service, region).add_auth(req)
    return dict(req.headers.items())
