"""Self-checks of the mocks and the config rendering (no gateway), so a gateway test
failure is not a harness bug."""

from __future__ import annotations

import http.client
import json
import ssl
import time

import yaml

from harness import ENVOY_YAML, cluster, dump_yaml, http_filter, plugin_config, render_envoy_config
from harness.http import iter_sse, request
from mocks.upstream import joined_pieces


def test_rendered_config_substitutes_ports_providers_and_paths(tmp_path, tls_files):
    plugin = {"providers": [{"name": "x", "type": "openai-compatible", "base_url": "http://127.0.0.1:1/v1"}],
              "api_keys": []}
    cfg = yaml.safe_load(dump_yaml(render_envoy_config(plugin, 4242, tls_ca=tls_files.ca_cert)))
    assert plugin_config(cfg) == plugin
    assert cfg["admin"]["address"]["socket_address"]["port_value"] == 0
    assert cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 0
    ep = cluster(cfg, "aigw_sidecar")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert ep["address"]["socket_address"]["port_value"] == 4242
    wasm = http_filter(cfg, "aigw")["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
    assert wasm.startswith("/") and wasm.endswith("aigw_filter.wasm")
    tls = cluster(cfg, "aigw_upstream_https")["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["validation_context"]["trusted_ca"]["filename"] == str(tls_files.ca_cert)
    # Same listener/filter layout as the repo file, where the brief says the config lives.
    repo = yaml.safe_load(ENVOY_YAML.read_text())
    hcm = repo["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["http_filters"][0]["name"] == "aigw"


def test_mock_streams_openai_chunks_in_time(upstream):
    c = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    c.request("POST", "/v1/chat/completions", json.dumps({
        "model": "m-chunks4-delay100", "stream": True, "messages": [{"role": "user", "content": "x"}],
        "stream_options": {"include_usage": True}}), {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("transfer-encoding") == "chunked"
    events = list(iter_sse(r))
    assert all(e.event is None for e in events)
    assert events[-1].data == "[DONE]"
    assert events[-2].json()["choices"] == [] and events[-2].json()["usage"]["completion_tokens"] == 4
    content = [e for e in events[:-1] if e.json()["choices"] and e.json()["choices"][0]["delta"].get("content")]
    assert "".join(e.json()["choices"][0]["delta"]["content"] for e in content) == joined_pieces(4)
    assert content[-1].received_at - content[0].received_at >= 0.25
    c.close()


def test_mock_anthropic_and_gemini_framing(upstream):
    c = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    c.request("POST", "/v1/messages", json.dumps({"model": "c-chunks2", "stream": True, "max_tokens": 5,
                                                  "messages": [{"role": "user", "content": "x"}]}))
    names = [e.event for e in iter_sse(c.getresponse())]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    c.request("POST", "/v1beta/models/g-chunks3:streamGenerateContent?alt=sse", json.dumps({"contents": []}))
    events = list(iter_sse(c.getresponse()))
    assert len(events) == 3 and all(e.event is None for e in events)
    assert events[-1].json()["candidates"][0]["finishReason"] == "STOP"
    c.close()
    rec = upstream.requests
    assert [r.path for r in rec] == ["/v1/messages", "/v1beta/models/g-chunks3:streamGenerateContent?alt=sse"]


def test_mock_records_duplicate_headers_and_errors(upstream):
    upstream.fail_with(503, {"error": "x"}, count=1)
    r = request("127.0.0.1", upstream.port, "GET", "/v1/models?a=1", [("X-Dup", "1"), ("x-dup", "2")])
    assert r.status == 503
    assert request("127.0.0.1", upstream.port, "GET", "/v1/models").status == 200
    first = upstream.requests[0]
    assert first.header_all("x-dup") == ["1", "2"] and first.query == "a=1"


def test_tls_mock_serves_with_the_test_ca(tls_upstream, tls_files):
    ctx = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    c = http.client.HTTPSConnection("localhost", tls_upstream.port, context=ctx, timeout=10)
    c.request("GET", "/v1/models")
    assert c.getresponse().status == 200
    c.close()
    assert tls_upstream.only().path == "/v1/models"


def test_demo_mock_llm(tmp_path):
    from mocks.upstream import mock_llm

    srv = mock_llm.serve("127.0.0.1", 0)
    try:
        port = srv.server_address[1]
        assert request("127.0.0.1", port, "GET", "/v1/models").json()["data"][0]["id"] == mock_llm.DEFAULT_MODEL
        r = request("127.0.0.1", port, "POST", "/v1/chat/completions",
                    body={"messages": [{"role": "user", "content": "hi"}]})
        assert r.json()["choices"][0]["message"]["content"] == mock_llm.CANNED_ANSWER
        mock_llm.DemoHandler.word_delay = 0.001
        t0 = time.monotonic()
        r = request("127.0.0.1", port, "POST", "/v1/chat/completions",
                    body={"stream": True, "stream_options": {"include_usage": True},
                          "messages": [{"role": "user", "content": "hi"}]})
        assert time.monotonic() - t0 < 5
        lines = [ln for ln in r.body.decode().split("\n\n") if ln]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["usage"]["prompt_tokens"] == 1
    finally:
        mock_llm.DemoHandler.word_delay = 0.05
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- shared-state servers


def test_postgres_server_databases_queries_and_restart(postgres_server, tmp_path):
    """The session server: a database per name, rows back as text (NULL as None, separators
    and newlines kept); a private server keeps its port and data across stop/start, runs
    as a child we track by PID, and refuses connections while stopped."""
    import os
    import subprocess

    from harness.procs import port_open
    from harness.services import PostgresServer, db_name

    a, b = postgres_server.new_database("Harness Check"), postgres_server.new_database("Harness Check")
    assert a == f"postgres://aigw@127.0.0.1:{postgres_server.port}/harness_check" and b.endswith("/harness_check_2")
    postgres_server.psql(a, "CREATE TABLE t (n int, s text); INSERT INTO t VALUES (1, 'a,b|c'), (2, NULL), "
                            "(3, E'two\\nlines')")
    assert postgres_server.query(a, "SELECT n, s FROM t ORDER BY n") == [("1", "a,b|c"), ("2", None),
                                                                         ("3", "two\nlines")]
    assert postgres_server.query(db_name(b), "SELECT count(*) FROM pg_tables WHERE tablename = 't'") == [("0",)]

    pg = PostgresServer(tmp_path / "own", name="pg-own").start()
    try:
        port, pid = pg.port, pg.proc.pid
        user = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        assert user == ("postgres" if os.geteuid() == 0 else os.environ.get("USER", user)), user
        url = pg.new_database("keep")
        pg.psql(url, "CREATE TABLE k (v text); INSERT INTO k VALUES ('kept')")
        t0 = time.monotonic()
        pg.stop()
        assert time.monotonic() - t0 < 5, "fast shutdown took long"
        assert not pg.alive() and not port_open("127.0.0.1", port)
        pg.start()
        assert pg.port == port and pg.url("keep") == url
        assert pg.query(url, "SELECT v FROM k") == [("kept",)]
    finally:
        pg.cleanup()
    assert not pg.base.exists()


def test_redis_server_commands_and_restart(redis_server):
    from harness.procs import port_open

    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("INCR", "harness-check") == 1
    redis_server.flushall()
    assert redis_server.command("DBSIZE") == 0
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.alive() and not port_open("127.0.0.1", port)
    redis_server.start()
    assert redis_server.port == port and redis_server.command("PING") == "PONG"


def test_gateway_store_and_redis_flags(tmp_path, monkeypatch):
    """`store=` replaces the default `--store <workdir>/usage.db` (one `--store` only);
    `redis=` adds `--redis`; both lead `sidecar_args`, which `restart_sidecar` reuses."""
    import harness.gateway as hg
    from harness import Gateway

    url = "postgres://aigw@127.0.0.1:1/x"
    gw = Gateway(tmp_path, [], {}, store=url, redis="redis://127.0.0.1:2", sidecar_args=["--hold-expiry-ms", "3000"])
    assert gw.sidecar_args == ["--store", url, "--redis", "redis://127.0.0.1:2", "--hold-expiry-ms", "3000"]
    assert Gateway(tmp_path, [], {}).sidecar_args == []

    argvs = []
    monkeypatch.setattr(hg, "Managed", lambda name, argv, *a, **kw: argvs.append([str(x) for x in argv]))
    hg.start_sidecar(tmp_path / "e.yaml", 1, tmp_path, tmp_path, extra_args=gw.sidecar_args)
    hg.start_sidecar(tmp_path / "e.yaml", 1, tmp_path, tmp_path, extra_args=["--hold-expiry-ms", "1"])
    hg.start_sidecar(tmp_path / "e.yaml", 1, tmp_path, tmp_path, store=url)
    own, default, explicit = argvs
    assert own.count("--store") == 1 and own[own.index("--store") + 1] == url and "--redis" in own
    assert default[default.index("--store") + 1] == str(tmp_path / "usage.db")
    assert explicit.count("--store") == 1 and explicit[explicit.index("--store") + 1] == url


def test_gateway_kill_is_a_crash(make_gateway):
    """`kill()` SIGKILLs Envoy and the sidecar (no drain) and reaps them; `stop()` after it is fine."""
    import signal

    gw = make_gateway(name="crash")
    envoy, sidecar = gw.envoy, gw.sidecar
    gw.kill()
    assert envoy.returncode == -signal.SIGKILL and sidecar.returncode == -signal.SIGKILL
    gw.stop()
