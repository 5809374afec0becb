#!/usr/bin/env python3
"""Memory per open stream: keyrelay builds (and nginx) side by side, in one run.

Starts one keyrelay-mock (--chunk-delay-ms), then for each N and each proxy: starts the
proxy fresh, samples its idle RSS, opens N concurrent streaming chat requests through it
(each streams `--words` word chunks, `--delay` ms apart), samples VmRSS until every stream
ended, and reports (peak - idle) / N. Proxies run one after another, in the order given,
for each N.

  python3 measure.py --n 2000 4000 --kr base=target/release/keyrelay \
      --kr arena1=target/release/keyrelay:MALLOC_ARENA_MAX=1 --nginx
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree_rss_kib(pid: int) -> int:
    return rss_kib(pid) + sum(rss_kib(c) for c in children(pid))


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            time.sleep(self.every)


def read_line_matching(proc: subprocess.Popen, pattern: str, timeout: float = 20) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited: {proc.args}")
            continue
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"no line matching {pattern!r}")


def start_mock(delay: int, kind: str = "mock", words: int = 20) -> tuple[subprocess.Popen, str]:
    if kind == "realistic":
        cmd = [sys.executable, str(Path(__file__).with_name("upstream.py")), "--port", "0",
               "--chunks", str(words), "--delay-ms", str(delay)]
    else:
        cmd = [str(ROOT / "target/release/keyrelay-mock"), "--port", "0",
               "--chunk-delay-ms", str(delay)]
    mock = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    m = read_line_matching(mock, r"listening on (http://\S+/v1)")
    return mock, m.group(1)


def start_keyrelay(binary: str, env_extra: dict, base_url: str) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    env["LLM_KEYS"] = json.dumps(
        [{"api_key": "k1", "model": "m", "provider": "openai", "base_url": base_url}])
    env.setdefault("RUST_LOG", "warn")
    env.update(env_extra)
    proc = subprocess.Popen([binary, "--port", "0", "--max-concurrency", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    m = read_line_matching(proc, r"listening on http://[\d.]+:(\d+)")
    return proc, int(m.group(1))


NGINX_CONF = """\
user root;
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    keepalive_requests 1000000;
    upstream mock {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(base_url: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    upstream = int(re.search(r":(\d+)/", base_url).group(1))
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    return proc, port


# ---------------------------------------------------------------------------------------
# Load


class Load:
    def __init__(self):
        self.open = 0
        self.peak_open = 0
        self.ok = 0
        self.failed = 0
        self.events = 0
        self.reads = 0
        self.errors: dict[str, int] = {}


async def one_stream(port: int, request: bytes, load: Load, all_open: asyncio.Event):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        load.failed += 1
        load.errors[type(e).__name__] = load.errors.get(type(e).__name__, 0) + 1
        return
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        load.open += 1
        load.peak_open = max(load.peak_open, load.open)
        buf = bytearray()
        while not buf.endswith(b"\r\n0\r\n\r\n") and not (len(buf) == 5 and buf == b"0\r\n\r\n"):
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("eof before the end of the body")
            load.reads += 1
            buf += data
        load.open -= 1
        load.events += buf.count(b"data: ")
        load.ok += 1
    except Exception as e:  # noqa: BLE001
        load.failed += 1
        key = str(e)[:60] or type(e).__name__
        load.errors[key] = load.errors.get(key, 0) + 1
    finally:
        writer.close()


EXTRA_HEADERS: list[str] = []
BODY_EXTRA: dict = {}


async def run_load(port: int, n: int, words: int) -> Load:
    prompt = " ".join(f"w{i}" for i in range(words))
    body = json.dumps({"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": prompt}], **BODY_EXTRA}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nAuthorization: Bearer x\r\n"
               + b"".join(h.encode() + b"\r\n" for h in EXTRA_HEADERS) +
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    load = Load()
    ev = asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one_stream(port, request, load, ev)))
        if i % 100 == 99:
            await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)
    return load


H2_CONNECTIONS = 0


def run_h2load(port: int, n: int, words: int) -> Load:
    """n streams over H2_CONNECTIONS HTTP/2 (prior knowledge) connections, all open at once."""
    prompt = " ".join(f"w{i}" for i in range(words))
    body = json.dumps({"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": prompt}], **BODY_EXTRA})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(body)
    c = H2_CONNECTIONS
    out = subprocess.run(
        ["h2load", "-n", str(n), "-c", str(c), "-m", str(-(-n // c)), "-d", f.name,
         "-H", "content-type: application/json", "-H", "authorization: Bearer x",
         f"http://127.0.0.1:{port}/v1/chat/completions"],
        capture_output=True, text=True)
    os.unlink(f.name)
    load = Load()
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out.stdout)
    if m:
        load.ok, load.failed = int(m.group(2)), int(m.group(3))
    else:
        load.errors[out.stdout[-200:] + out.stderr[-200:]] = 1
    load.peak_open = -1
    return load


def measure(name: str, start, n: int, words: int) -> dict:
    proc, port = start()
    try:
        time.sleep(0.5)
        idle = tree_rss_kib(proc.pid)
        # A few requests first, so that one-off startup allocations are not counted per stream.
        asyncio.run(run_load(port, 4, 1))
        time.sleep(0.3)
        warm = tree_rss_kib(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.monotonic()
        if H2_CONNECTIONS:
            load = run_h2load(port, n, words)
        else:
            load = asyncio.run(run_load(port, n, words))
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        time.sleep(1.0)
        after = tree_rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    r = {
        "name": name, "n": n, "idle_kib": idle, "warm_kib": warm, "peak_kib": sampler.peak,
        "after_kib": after, "per_stream_kib": (sampler.peak - warm) / n,
        "ok": load.ok, "failed": load.failed, "peak_open": load.peak_open,
        "events_per_stream": load.events / max(load.ok, 1),
        "reads_per_stream": load.reads / max(load.ok, 1), "seconds": elapsed,
        "errors": load.errors,
    }
    print(f"{name:>14} N={n:5d}  idle {idle/1024:6.1f} MiB  warm {warm/1024:6.1f}  "
          f"peak {sampler.peak/1024:6.1f}  after {after/1024:6.1f}  "
          f"per stream {r['per_stream_kib']:5.1f} KiB  ok {load.ok} fail {load.failed} "
          f"open@once {load.peak_open}  events/stream {r['events_per_stream']:.1f} "
          f"reads/stream {r['reads_per_stream']:.1f}  {elapsed:.1f}s"
          + (f"  errors {load.errors}" if load.errors else ""), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--words", type=int, default=20)
    ap.add_argument("--delay", type=int, default=500)
    ap.add_argument("--kr", action="append", default=[],
                    help="LABEL=BINARY[:ENV=VAL[,ENV=VAL]]")
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--upstream", choices=["mock", "realistic"], default="mock",
                    help="keyrelay-mock, or upstream.py (OpenAI-sized response head)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--header", action="append", default=[],
                    help="extra request header, e.g. 'x-request-id: client-id-1'")
    ap.add_argument("--h2", type=int, default=0, metavar="CONNECTIONS",
                    help="load with h2load: HTTP/2 streams spread over this many connections")
    ap.add_argument("--include-usage", action="store_true",
                    help="ask for usage (keyrelay's UsageTap path instead of UsageStrip)")
    args = ap.parse_args()
    EXTRA_HEADERS.extend(args.header)
    global H2_CONNECTIONS
    H2_CONNECTIONS = args.h2
    if args.include_usage:
        BODY_EXTRA["stream_options"] = {"include_usage": True}

    mock, base_url = start_mock(args.delay, args.upstream, args.words)
    tmp = Path(tempfile.mkdtemp(prefix="stream-memory-"))
    results = []
    try:
        targets = []
        for spec in args.kr:
            label, rest = spec.split("=", 1)
            binary, _, envs = rest.partition(":")
            env = dict(e.split("=", 1) for e in envs.split(",") if e)
            binary = str((ROOT / binary) if not binary.startswith("/") else binary)
            targets.append((label, lambda b=binary, e=env: start_keyrelay(b, e, base_url)))
        if args.nginx:
            targets.append(("nginx", lambda: start_nginx(base_url, tmp)))
        for n in args.n:
            for label, start in targets:
                results.append(measure(label, start, n, args.words))
        if len(args.n) > 1:
            print("\nslope between N values (KiB per stream):")
            for label, _ in targets:
                rs = [r for r in results if r["name"] == label]
                a, b = rs[0], rs[-1]
                slope = (b["peak_kib"] - a["peak_kib"]) / (b["n"] - a["n"])
                print(f"{label:>14}  {slope:5.1f}")
    finally:
        mock.send_signal(signal.SIGINT)
        mock.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
