"""The experiment of BENCHMARKS.md ("the fix that remains"): a minimal passthrough proxy with
hyper-util's pooled client against one that polls its upstream connection inside the
request's own task, beside nginx, with the suite's helpers. From the repository root:

    cargo build --release --bins
    cargo build --release --manifest-path scripts/experiments/own-connection/Cargo.toml
    python3 scripts/experiments/own-connection/compare.py
"""
import sys, os, tempfile, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
import bench as b
tmp = Path(tempfile.mkdtemp()); procs = b.Procs(tmp)
R = int(os.environ.get("R", "3"))
try:
    fast = b.Mock(procs, "mock", 0)
    ng = b.Nginx(procs, {"fast": fast.port})
    ex = {}
    for i, mode in enumerate(["legacy", "own"]):
        port = b.free_port()
        p = procs.start(mode, [str(HERE / "target/release/exp"), mode, str(port), f"127.0.0.1:{fast.port}"])
        b.wait_port(port, p)
        ex[mode] = (port, p)
    chat = "/v1/chat/completions"
    for label, stream, c in (("plain16", False, 16), ("stream16", True, 16), ("seq", False, 1), ("seqstream", True, 1)):
        body = b.chat_body("m", stream)
        ts = [b.Target("nginx", ng.url("fast") + chat, body, b.OPENAI_HEADERS, [ng.proc.pid])]
        ts += [b.Target(m, f"http://127.0.0.1:{port}{chat}", body, b.OPENAI_HEADERS, [p.pid]) for m, (port, p) in ex.items()]
        for t in ts: b.oha(t, c=c, duration=1)
        runs = b.measure(ts, rounds=R, c=c, duration=3)
        for t in ts:
            r = runs[t.name]
            print(f"{label:10} {t.name:7} {r.rps:9.0f} rps cpu/req {r.cpu*1e6:6.1f} us p50 {r.p50*1e6:6.0f} us failed {r.failed}", flush=True)
finally:
    procs.stop_all()
