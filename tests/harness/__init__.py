"""Integration-test harness: a real Envoy with the aigw wasm filter and the ext_proc sidecar,
configured per test module against in-process mock upstreams. See tests/README.md."""

from .gateway import (  # noqa: F401
    ENVOY_YAML,
    GATEWAY_KEY_SECRET,
    REPO,
    SIDECAR,
    WASM,
    Gateway,
    SilentListener,
    cluster,
    dump_yaml,
    envoy_binary,
    http_filter,
    live_gateways,
    new_gateway_key,
    new_upstream_key,
    plugin_config,
    provider,
    render_envoy_config,
    sidecar_environment,
    sidecar_available,
    start_sidecar,
    wait_for,
    wait_sidecar_ready,
)
from .procs import Managed, StartupError, free_port, port_open, stop_all  # noqa: F401
from .services import (  # noqa: F401
    PostgresServer,
    RedisServer,
    ServiceUnavailable,
    live_services,
    postgres_bin_dir,
    redis_binary,
    stop_all_services,
)
