"""How soon a config change serves requests: the Envoy YAML rewritten with a new provider,
then (1) the sidecar has applied it (`/api/v1/config`), (2) the first request to the new
provider through Envoy answers 200 (the filter followed the sidecar). Five changes.

    .venv/bin/python bench/reload_latency.py
"""
import copy, pathlib, statistics, sys, tempfile, time
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from harness import Gateway, provider
from mocks.upstream import MockUpstream


mock = MockUpstream().start()
d = pathlib.Path(tempfile.mkdtemp())
gw = Gateway(d, [provider("a", "openai-compatible", f"{mock.url}/v1")], {"AIGW_TEST_API_KEY": "gw-lat-" + "1"*25}, name="lat").start()
sidecar, filt = [], []
try:
    for i in range(5):
        new = copy.deepcopy(gw.plugin)
        new["providers"].append(provider(f"p{i}", "openai-compatible", f"{mock.url}/v1"))
        before = gw.config_status()["reloads"]
        t0 = time.monotonic()
        gw.write_plugin(new)
        while gw.config_status()["reloads"] == before:
            time.sleep(0.005)
        t1 = time.monotonic()
        while True:
            r = gw.request("POST", f"/llm/v1/providers/p{i}/chat/completions",
                           [("authorization", "Bearer gw-lat-" + "1"*25), ("content-type", "application/json")],
                           b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
            if r.status == 200:
                break
            time.sleep(0.005)
        t2 = time.monotonic()
        sidecar.append(t1 - t0); filt.append(t2 - t0)
    print(f"sidecar applied after: median {statistics.median(sidecar)*1000:.0f} ms, max {max(sidecar)*1000:.0f} ms")
    print(f"first 200 from the new provider after: median {statistics.median(filt)*1000:.0f} ms, max {max(filt)*1000:.0f} ms")
finally:
    gw.stop(); mock.stop()
