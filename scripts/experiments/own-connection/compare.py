"""Experiments of BENCHMARKS.md, with the suite's helpers, beside nginx on the same mock.

    cargo build --release --bins
    cargo build --release --manifest-path scripts/experiments/own-connection/Cargo.toml
    python3 scripts/experiments/own-connection/compare.py            # section 3 (R=3 rounds)
    python3 scripts/experiments/own-connection/compare.py keyrelay   # section 9 (R=5 rounds)

Without an argument: a minimal passthrough proxy with hyper-util's pooled client against one
that polls its upstream connection inside the request's own task ("legacy" and "own"), at 16
connections and one. With `keyrelay`: that bare proxy ("own") against keyrelay at its default
log level and at RUST_LOG=warn, at 16 connections and one.
"""
import sys, os, tempfile
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
import bench as b
AGAINST_KEYRELAY = sys.argv[1:] == ["keyrelay"]
tmp = Path(tempfile.mkdtemp()); procs = b.Procs(tmp)
R = int(os.environ.get("R", "5" if AGAINST_KEYRELAY else "3"))
try:
    fast = b.Mock(procs, "mock", 0)
    ng = b.Nginx(procs, {"fast": fast.port})
    chat = "/v1/chat/completions"
    urls = {"nginx": (ng.url("fast") + chat, ng.proc.pid)}
    for mode in ["own"] if AGAINST_KEYRELAY else ["legacy", "own"]:
        port = b.free_port()
        p = procs.start(mode, [str(HERE / "target/release/exp"), mode, str(port), f"127.0.0.1:{fast.port}"])
        b.wait_port(port, p)
        urls[mode] = (f"http://127.0.0.1:{port}{chat}", p.pid)
    if AGAINST_KEYRELAY:
        keys = [{"name": "m-1", "api_key": "k1", "model": "m", "provider": "openai",
                 "base_url": fast.url + "/v1"}]
        for name, env in (("keyrelay", None), ("keyrelay-warn", {"RUST_LOG": "warn"})):
            k = b.Keyrelay(procs, name, keys, env=env)
            urls[name] = (k.url + chat, k.proc.pid)
        runs_of = (("plain16", False, 16), ("stream16", True, 16), ("seq", False, 1))
    else:
        runs_of = (("plain16", False, 16), ("stream16", True, 16), ("seq", False, 1), ("seqstream", True, 1))
    for label, stream, c in runs_of:
        body = b.chat_body("m", stream)
        ts = [b.Target(name, url, body, b.OPENAI_HEADERS, [pid]) for name, (url, pid) in urls.items()]
        for t in ts: b.oha(t, c=c, duration=1)
        runs = b.measure(ts, rounds=R, c=c, duration=3)
        for t in ts:
            r = runs[t.name]
            print(f"{label:10} {t.name:13} {r.rps:9.0f} rps ({r.rps / runs['nginx'].rps:4.2f}x nginx) "
                  f"cpu/req {r.cpu*1e6:6.1f} us p50 {r.p50*1e6:6.0f} us failed {r.failed}", flush=True)
finally:
    procs.stop_all()
