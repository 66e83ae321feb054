#!/usr/bin/env python3
"""`make run`: the gateway on http://127.0.0.1:8080 with an offline demo provider.

Starts, and stays the parent of (Envoy stops when its launcher exits):
  - examples/mock_llm.py  an OpenAI-compatible mock LLM on 127.0.0.1:9100 (provider "demo")
  - examples/idp          an OpenID provider on 127.0.0.1:9200 (client demo-app / demo-secret;
                          needs `npm ci --prefix examples/idp`, else the demo runs without it)
  - the sidecar            target/release/aigw-ext-proc on 127.0.0.1:9002
  - Envoy 1.40.0           with the wasm filter, from envoy/envoy.yaml

The public providers (openai, anthropic, google) are enabled when their key is in the
environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY); otherwise they answer 403
provider_disabled. The demo gateway API key is printed below. Ctrl-C stops everything.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
ENVOY = ROOT / ".venv/lib/python3.11/site-packages/envoy/_bin/envoy"
SIDECAR = ROOT / "target/release/aigw-ext-proc"
GATEWAY = "http://127.0.0.1:8080"
DEMO_KEY = "aigw-demo-key"
ADMIN_TOKEN = "aigw-demo-admin"
ADMIN = "http://127.0.0.1:9003"
IDP_DIR = ROOT / "examples/idp"
ISSUER = "http://127.0.0.1:9200"


def plugin_filter(envoy_cfg: dict) -> dict:
    """The wasm filter entry holding the gateway configuration (root_id "aigw")."""
    hcm = envoy_cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    for f in hcm["typed_config"]["http_filters"]:
        if f["typed_config"].get("config", {}).get("root_id") == "aigw":
            return f["typed_config"]["config"]
    raise SystemExit("envoy/envoy.yaml has no aigw wasm filter")


def idp_available() -> bool:
    return (IDP_DIR / "node_modules/oidc-provider").is_dir() and shutil.which("node") is not None


def demo_config(with_idp: bool) -> Path:
    """envoy/envoy.yaml, with the public providers whose key is not set disabled, and the demo
    issuer trusted (when it runs and the config names no issuer of its own)."""
    envoy_cfg = yaml.safe_load((ROOT / "envoy/envoy.yaml").read_text())
    plugin = plugin_filter(envoy_cfg)
    cfg = json.loads(plugin["configuration"]["value"])
    for p in cfg["providers"]:
        ref = p.get("api_key_secret")
        if ref and not os.environ.get(ref):
            p["enabled"] = False
    if with_idp and not cfg.get("oidc"):
        cfg["oidc"] = [{"issuer": ISSUER, "audiences": ["aigw"]}]
    elif not with_idp:
        cfg["oidc"] = [o for o in cfg.get("oidc", []) if o.get("issuer") != ISSUER]
    plugin["configuration"]["value"] = json.dumps(cfg, indent=2)
    out = RUN / "envoy.yaml"
    out.write_text(yaml.safe_dump(envoy_cfg, sort_keys=False))
    return out


def wait_port(port: int, what: str, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with status {proc.returncode}; see {RUN}/*.log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} did not come up on port {port}")


def wait_ready(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"envoy exited with status {proc.returncode}; see {RUN}/envoy.log")
        try:
            with urllib.request.urlopen("http://127.0.0.1:9901/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("envoy did not become ready")


def streamed_round_trip() -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{GATEWAY}/llm/v1/providers/demo", api_key=DEMO_KEY)
    print("\nA streamed round trip with the OpenAI SDK through the gateway:\n  ", end="")
    stream = client.chat.completions.create(
        model="demo-llm",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print("\n")
    unified = OpenAI(base_url=f"{GATEWAY}/llm/v1", api_key=DEMO_KEY)
    raw = unified.chat.completions.with_raw_response.create(
        model="demo-chat", messages=[{"role": "user", "content": "Say hello"}])
    print("The unified endpoint, virtual model demo-chat (anthropic first, demo as fallback):")
    print(f"   served by {raw.headers['x-aigw-target']}: {raw.parse().choices[0].message.content}\n")


def main() -> None:
    (RUN / "secrets").mkdir(parents=True, exist_ok=True)
    (RUN / "secrets/AIGW_DEMO_API_KEY").write_text(DEMO_KEY)
    (RUN / "secrets/AIGW_ADMIN_TOKEN").write_text(ADMIN_TOKEN)
    with_idp = idp_available()
    config = demo_config(with_idp)
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list) -> subprocess.Popen:
        log = open(RUN / f"{name}.log", "wb")
        p = subprocess.Popen([str(a) for a in argv], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    def stop(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    mock = start("mock_llm", [sys.executable, ROOT / "examples/mock_llm.py", "--port", "9100"])
    wait_port(9100, "mock LLM", mock)
    if with_idp:
        idp = start("idp", ["node", IDP_DIR / "server.mjs", "--port", "9200", "--config", IDP_DIR / "demo.json",
                            "--quiet"])
        wait_port(9200, "demo IdP", idp)
    sidecar = start(
        "sidecar",
        [SIDECAR, "--config", config, "--listen", "127.0.0.1:9002",
         "--secrets-dir", RUN / "secrets", "--secrets-env",
         "--store", RUN / "usage.db", "--admin-listen", "127.0.0.1:9003"],
    )
    wait_port(9002, "sidecar", sidecar)
    envoy = start("envoy", [ENVOY, "-c", config, "--concurrency", "2", "--log-level", os.environ.get("AIGW_ENVOY_LOG_LEVEL", "warn")])
    wait_ready(envoy)

    print(f"Gateway:   {GATEWAY}/llm/v1/providers/<name>   (Envoy admin http://127.0.0.1:9901)")
    print(f"Unified:   {GATEWAY}/llm/v1/chat/completions   (model <provider>/<model> or demo-chat)")
    print(f"API key:   {DEMO_KEY}")
    print(f"Dashboard: {ADMIN}/   admin token: {ADMIN_TOKEN}   (usage API {ADMIN}/api/v1/...)")
    if with_idp:
        print(f"OIDC:      issuer {ISSUER}, client demo-app / demo-secret (client-credentials grant)")
    else:
        print("OIDC:      off (run `npm ci --prefix examples/idp` for the demo issuer)")
    print(f"Logs:      {RUN}/{{envoy,sidecar,mock_llm{',idp' if with_idp else ''}}}.log")
    streamed_round_trip()
    print("Try it:")
    print(f"  curl -N {GATEWAY}/llm/v1/providers/demo/chat/completions \\")
    print(f"    -H 'Authorization: Bearer {DEMO_KEY}' -H 'content-type: application/json' \\")
    print("    -d '{\"model\":\"demo-llm\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
    if with_idp:
        print("With an OIDC access token instead of the API key:")
        print("  .venv/bin/python examples/oidc_client_credentials.py")
        print("  TOKEN=$(curl -s -u demo-app:demo-secret -d grant_type=client_credentials -d scope=llm \\")
        print(f"          {ISSUER}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
        print(f"  curl {GATEWAY}/llm/v1/providers/demo/models -H \"Authorization: Bearer $TOKEN\"")
    print("\nCtrl-C stops the gateway.")
    while True:
        for p in procs:
            if p.poll() is not None:
                print(f"{p.args[0]} exited with status {p.returncode}; stopping", file=sys.stderr)
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
