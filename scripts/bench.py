#!/usr/bin/env python3
"""keyrelay's benchmark suite (issue 7). Run through scripts/bench.sh, which builds and
installs what this needs; stdlib only.

Starts, on loopback ports only: three instances of the project's mock upstream (no delay,
10 ms and 500 ms between stream chunks), nginx as a plain reverse proxy to them (one worker,
upstream keep-alive), and keyrelay (release build) several times over with different key
sets. Scenario 8 (long streams) has its own mock (100 ms between chunks), keyrelay and
nginx, run one proxy after the other. Drives them with oha, every run bounded in time or
count, and prints one table whose ratios all come from this run. Every process started here
is stopped on exit.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"

DURATION = float(os.environ.get("BENCH_DURATION", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MILLION = os.environ.get("BENCH_MILLION") == "1"
SOAK_REQUESTS = 1_000_000 if MILLION else int(os.environ.get("BENCH_REQUESTS", "200000"))
WRITE = os.environ.get("BENCH_NO_WRITE") != "1"
STREAMS = 1000
# BENCH_ONLY=long runs scenario 8 alone (and leaves BENCHMARKS.md alone).
ONLY = os.environ.get("BENCH_ONLY", "")


def long_streams_default() -> int:
    """As many streams as the hard open-file limit allows: a proxy holds two descriptors per
    stream (client and upstream connection), and 1,000 stay in reserve for everything else."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 9000
    return max(1, min(9000, (hard - 1000) // 2))


# Scenario 8 (issue 15): many concurrent slow streams, one chunk every 100 ms. They open at
# BENCH_LONG_RATE a second (0: all at once): a burst of thousands of connects overflows the
# listen backlogs (4,096 for keyrelay, the mock and, as configured here, nginx) and then
# measures SYN retries and connect timeouts instead of streams. By default a stream outlasts
# the ramp by 5 s (at least 100 chunks, 10 s), so that every stream is open at once.
LONG_STREAMS = int(os.environ.get("BENCH_LONG_STREAMS") or long_streams_default())
LONG_RATE = int(os.environ.get("BENCH_LONG_RATE") or 1000)
LONG_RAMP = LONG_STREAMS / LONG_RATE if LONG_RATE > 0 else 0.0
LONG_DELAY_MS = 100
LONG_CHUNKS = int(os.environ.get("BENCH_LONG_CHUNKS")
                  or max(100, round((LONG_RAMP + 5) * 1000 / LONG_DELAY_MS)))

# Bodies. The streamed prompt has six words, so the mock answers "You said: " and the six
# words: 8 content chunks (plus the role chunk, the finish chunk and [DONE]).
PROMPT = "one two three four five six"


def chat_body(model: str, stream: bool) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


def anthropic_body(stream: bool) -> str:
    body = {
        "model": "c",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body)


def long_body(model: str, chunks: int) -> str:
    """A streamed chat body whose answer is `chunks` SSE frames: the mock sends the role
    frame, "You ", "said: ", one frame per prompt word, the finish frame and [DONE]
    (src/mock/openai.rs), so the prompt has chunks − 5 words. keyrelay also asks the mock
    for usage, one more frame upstream that it keeps from the client."""
    words = " ".join(f"w{i}" for i in range(chunks - 5))
    body = {"model": model, "messages": [{"role": "user", "content": words}], "stream": True}
    return json.dumps(body)


OPENAI_HEADERS = ["authorization: Bearer k1"]
ANTHROPIC_HEADERS = ["x-api-key: a1", "anthropic-version: 2023-06-01"]


# ---------------------------------------------------------------------------------------
# Processes


class Procs:
    """Every process started by the suite; all are stopped by `stop_all`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.out", "wb")
        err = open(self.tmp / f"{name}.err", "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env
        )
        out.close()
        err.close()
        self.procs.append((name, p))
        return p

    def wait_for_line(self, name: str, p: subprocess.Popen, pattern: str) -> re.Match:
        path = self.tmp / f"{name}.out"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(pattern, path.read_text(errors="replace"))
            if m:
                return m
            if p.poll() is not None:
                break
            time.sleep(0.05)
        err = (self.tmp / f"{name}.err").read_text(errors="replace")
        raise RuntimeError(f"{name} did not start: {err[-2000:]}")

    def stop(self, p: subprocess.Popen) -> None:
        """Stops one process early (`stop_all` then skips it)."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its direct children (nginx: master + worker)."""
    total = rss_kib(pid)
    for child in children(pid):
        total += rss_kib(child)
    return total


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(x) for x in path.read_text().split()]
    except OSError:
        return []


def mib(kib: float) -> float:
    return kib / 1024.0


class Mock:
    def __init__(self, procs: Procs, name: str, delay_ms: int) -> None:
        argv = [str(BIN / "keyrelay-mock"), "--port", "0"]
        if delay_ms:
            argv += ["--chunk-delay-ms", str(delay_ms)]
        p = self.proc = procs.start(name, argv)
        m = procs.wait_for_line(name, p, r"listening on http://127\.0\.0\.1:(\d+)/v1")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"


class Keyrelay:
    def __init__(
        self,
        procs: Procs,
        name: str,
        keys: list[dict],
        extra_args: list[str] | None = None,
        env: dict | None = None,
    ) -> None:
        env = dict(env or {})
        env["LLM_KEYS"] = json.dumps(keys)
        env.setdefault("RUST_LOG", "keyrelay=info")
        self.name = name
        self.proc = procs.start(
            name, [str(BIN / "keyrelay"), "--port", "0", *(extra_args or [])], env
        )
        m = procs.wait_for_line(
            name, self.proc, r"listening on http://127\.0\.0\.1:(\d+)"
        )
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = procs.tmp / f"{name}.err"

    def rss(self) -> int:
        return rss_kib(self.proc.pid)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


def metric_sum(metrics: dict[str, float], prefix: str, contains: str = "") -> float:
    return sum(
        v for k, v in metrics.items() if k.startswith(prefix) and contains in k
    )


NGINX_CONF = """\
{user}
worker_processes 1;
worker_rlimit_nofile {rlimit};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    # Like keyrelay and the mock, never close a busy client connection.
    keepalive_requests 1000000;
{servers}
}}
"""

NGINX_SERVER = """\
    upstream {name} {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        # keyrelay's backlog (nginx's default is 511), so a burst of connects meets the same
        # queue in both.
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"""


class Nginx:
    def __init__(self, procs: Procs, upstreams: dict[str, int], name: str = "nginx",
                 connections: int = 8192, rlimit: int = 65536) -> None:
        self.ports = {up: free_port() for up in upstreams}
        servers = "".join(
            NGINX_SERVER.format(name=up, upstream=port, port=self.ports[up])
            for up, port in upstreams.items()
        )
        user = "user root;" if os.geteuid() == 0 else ""
        # A directory of its own, so that a second instance keeps its own pid file and logs.
        base = procs.tmp / name
        base.mkdir()
        conf = base / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=base, servers=servers,
                                          connections=connections, rlimit=rlimit))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.version = subprocess.run(
            [nginx, "-v"], capture_output=True, text=True
        ).stderr.strip()
        self.proc = procs.start(
            name, [nginx, "-p", str(base), "-c", str(conf), "-e", str(base / "nginx-error.log")]
        )
        for port in self.ports.values():
            wait_port(port, self.proc)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def rss(self) -> int:
        return tree_rss_kib(self.proc.pid)


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("nginx exited at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


# ---------------------------------------------------------------------------------------
# Load generation


def cpu_ns(pids: list[int]) -> int:
    """CPU time used so far by these processes, every thread, in nanoseconds."""
    total = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            pass
    return total


class Run:
    """The parts of one oha run the table uses."""

    def __init__(self, raw: dict, cpu: int = 0) -> None:
        s = raw["summary"]
        self.rps = float(s.get("requestsPerSec") or 0.0)
        lat = raw.get("latencyPercentiles") or {}
        fb = raw.get("firstBytePercentiles") or {}
        self.p50 = lat.get("p50")
        self.p99 = lat.get("p99")
        self.p999 = lat.get("p99.9")
        self.ttfb50 = fb.get("p50")
        self.ttfb99 = fb.get("p99")
        codes = {int(k): v for k, v in (raw.get("statusCodeDistribution") or {}).items()}
        self.ok = sum(v for k, v in codes.items() if 200 <= k < 300)
        self.bad_status = sum(v for k, v in codes.items() if not 200 <= k < 300)
        errors = raw.get("errorDistribution") or {}
        self.transport_errors = sum(v for k, v in errors.items() if "deadline" not in k)
        self.total = self.ok + self.bad_status + self.transport_errors
        self.failed = self.bad_status + self.transport_errors
        self.codes = codes
        self.errors = errors
        # CPU time of the process under test per request, in seconds (0 when not watched).
        self.cpu = cpu / 1e9 / max(self.total, 1)


class Runs:
    """Several rounds of the same measurement; each figure is the median over the rounds."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs

    def __getattr__(self, name: str):
        values = [getattr(r, name) for r in self.runs]
        if name in ("ok", "failed", "total", "bad_status", "transport_errors"):
            return sum(values)
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None


class Target:
    """Where one column's requests go, and which processes' CPU time to count for it."""

    def __init__(self, name: str, url: str, body: str, headers: list[str],
                 pids: list[int] | None = None) -> None:
        self.name = name
        self.url = url
        self.body = body
        self.headers = headers
        self.pids = pids or []


def oha(
    target: Target,
    *,
    c: int,
    duration: float | None = None,
    n: int | None = None,
    qps: int | None = None,
    expect_errors: bool = False,
    request_timeout: float | None = None,
) -> Run:
    argv = [
        "oha", "--no-tui", "--output-format", "json", "-m", "POST",
        "-T", "application/json", "-d", target.body, "-c", str(c),
        "-t", f"{request_timeout or 60:g}s",
    ]
    for h in target.headers:
        argv += ["-H", h]
    if duration is not None:
        argv += ["-z", f"{duration}s", "-w"]
        limit = duration + 90
    else:
        assert n is not None
        argv += ["-n", str(n)]
        # With a worker per request (-c N -n N), the run ends within one request's timeout
        # after the last one starts.
        if request_timeout and c >= n:
            limit = request_timeout + 120 + (n / qps if qps else 0)
        else:
            limit = 1800
    if qps is not None:
        argv += ["-q", str(qps), "--latency-correction"]
    argv.append(target.url)
    pids = [p for pid in target.pids for p in (pid, *children(pid))]
    before = cpu_ns(pids)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    used = cpu_ns(pids) - before
    if res.returncode != 0:
        raise RuntimeError(f"oha failed: {res.stderr[-2000:]}")
    run = Run(json.loads(res.stdout), used)
    if run.failed and not expect_errors:
        log(f"    note: {target.name}: {run.failed} failed requests: {run.codes} {run.errors}")
    return run


def measure(targets: list[Target], rounds: int | None = None, **kw) -> dict[str, Runs]:
    """Each target `rounds` times, interleaved and rotated so that drift in the machine's
    speed falls on every target alike."""
    rounds = rounds or ROUNDS
    runs: dict[str, list[Run]] = {t.name: [] for t in targets}
    for r in range(rounds):
        k = r % len(targets)
        for t in targets[k:] + targets[:k]:
            runs[t.name].append(oha(t, **kw))
    return {name: Runs(rs) for name, rs in runs.items()}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# The table


class Row:
    def __init__(
        self,
        section: str,
        metric: str,
        unit: str,
        direct=None,
        nginx=None,
        kr=None,
        target: str = "",
        met: bool | None = None,
        ratio_nginx: bool = True,
        ratio_direct: bool = True,
    ) -> None:
        self.section = section
        self.metric = metric
        self.unit = unit
        self.direct = direct
        self.nginx = nginx
        self.kr = kr
        self.target = target
        self.met = met
        self.ratio_nginx = ratio_nginx
        self.ratio_direct = ratio_direct


def fmt(value, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "rps":
        return f"{value:,.0f} req/s"
    if unit == "s":  # a latency in seconds
        us = value * 1e6
        if abs(us) < 1000:
            return f"{us:,.0f} µs"
        return f"{us / 1000:,.2f} ms"
    if unit == "cpu":  # CPU seconds per request
        return f"{value * 1e6:,.1f} µs"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "KiB":
        return f"{value:,.1f} KiB"
    if unit == "%":
        return f"{value:.3f} %"
    if unit == "x":
        return f"{value:.2f}×"
    if unit == "n":
        return f"{value:,.0f}"
    if unit == "n2":
        return f"{value:,.2f}"
    return f"{value}"


def ratio(a, b) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.2f}"
    return ""


def render(rows: list[Row]) -> str:
    head = (
        "| scenario | metric | direct | nginx | keyrelay | keyrelay / nginx "
        "| keyrelay / direct | target | |"
    )
    lines = [head, "|---|---|--:|--:|--:|--:|--:|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("met" if r.met else "**MISSED**")
        lines.append(
            "| "
            + " | ".join(
                [
                    r.section,
                    r.metric,
                    fmt(r.direct, r.unit),
                    fmt(r.nginx, r.unit),
                    fmt(r.kr, r.unit),
                    ratio(r.kr, r.nginx) if r.ratio_nginx else "",
                    ratio(r.kr, r.direct) if r.ratio_direct else "",
                    r.target,
                    met,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The suite


def keys_main(fast: Mock, d10: Mock) -> list[dict]:
    def openai(name, key, model, mock):
        return {"name": name, "api_key": key, "model": model, "provider": "openai",
                "base_url": mock.url + "/v1"}

    def anthropic(name, key, model, mock):
        return {"name": name, "api_key": key, "model": model, "provider": "anthropic",
                "base_url": mock.url}

    return [
        openai("m-1", "k1", "m", fast),
        anthropic("c-1", "a1", "c", fast),
        openai("d-1", "k1", "d", d10),
        anthropic("dc-1", "a1", "dc", d10),
        # Half of this pool answers 429 (the mock reads `status-429` in the key).
        openai("f-ok-1", "f-good-1", "f", fast),
        openai("f-429-1", "f-status-429-1", "f", fast),
        openai("f-ok-2", "f-good-2", "f", fast),
        openai("f-429-2", "f-status-429-2", "f", fast),
    ]


def machine_note() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}"


def tool_version(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (res.stdout or res.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def sample_peak(fn_rss, stop: threading.Event, extra=None) -> dict:
    """Samples RSS (and `extra()`) every 100 ms until `stop`; keeps the peaks."""
    peak = {"rss": 0, "extra": 0.0}

    def loop():
        while not stop.is_set():
            try:
                peak["rss"] = max(peak["rss"], fn_rss())
                if extra is not None:
                    peak["extra"] = max(peak["extra"], extra())
            except (OSError, ValueError):
                pass
            stop.wait(0.1)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    peak["thread"] = t
    return peak


class Peaks:
    """Samples each of `fns` every 100 ms until `stop`, keeping the peaks; each on a thread
    of its own, so that a slow one (an HTTP request to a busy proxy) does not thin out the
    others' samples."""

    def __init__(self, fns: dict) -> None:
        self.peak = {name: 0.0 for name in fns}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(name, fn), daemon=True)
                         for name, fn in fns.items()]
        for t in self._threads:
            t.start()

    def _loop(self, name: str, fn) -> None:
        while not self._stop.is_set():
            try:
                self.peak[name] = max(self.peak[name], fn())
            except Exception:  # a sample that fails (process gone, request refused) is skipped
                pass
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        return self.peak


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def listen_overflows() -> int:
    """The kernel's count of connections a full accept queue turned away (whole machine).
    Such a client waits for its SYN to be sent again, 1 s later: in a burst of connects, a
    listen backlog smaller than the burst shows in the TTFB percentiles."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
        for head, values in zip(lines[::2], lines[1::2]):
            if head.startswith("TcpExt:"):
                return int(dict(zip(head.split(), values.split()))["ListenOverflows"])
    except (OSError, KeyError, ValueError):
        pass
    return 0


def raise_nofile(need: int) -> None:
    """oha holds a descriptor per stream and a proxy two; both inherit this process's soft
    limit, so raise it as far as the hard limit allows (bench.sh does too, for the others)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    new = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < need:
        log(f"    note: open-file limit {new:,} is below the {need:,} this run needs")


def main() -> int:
    if ONLY not in ("", "long"):
        log(f"bench: BENCH_ONLY={ONLY!r}: the only scenario that runs alone is 'long'")
        return 2
    if LONG_CHUNKS < 6:
        log("bench: BENCH_LONG_CHUNKS must be 6 or more (role, 'You ', 'said: ', a word, "
            "finish, [DONE])")
        return 2
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the `finally` below stops every process.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="keyrelay-bench-"))
    procs = Procs(tmp)
    try:
        rows = suite(procs)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    table = render(rows)
    print(table)
    log(f"suite finished in {elapsed:.0f} s")
    if WRITE and ONLY:
        log("bench: BENCHMARKS.md holds the whole suite's table; BENCH_ONLY leaves it alone")
    elif WRITE:
        write_benchmarks(table, elapsed)
    return 0


def suite(procs: Procs) -> list[Row]:
    if ONLY == "long":
        return long_streams(procs)
    D = DURATION
    log(f"bench: temp dir {procs.tmp}; {ROUNDS} rounds of {D:g} s per measurement")
    fast = Mock(procs, "mock-fast", 0)
    d10 = Mock(procs, "mock-d10", 10)
    slow = Mock(procs, "mock-slow", 500)
    nginx = Nginx(procs, {"fast": fast.port, "d10": d10.port, "slow": slow.port})
    keys = keys_main(fast, d10)
    kr = Keyrelay(procs, "keyrelay", keys)
    kr_warn = Keyrelay(procs, "keyrelay-warn", keys, env={"RUST_LOG": "warn"})
    fail_keys = [k for k in keys if k["model"] == "f"]
    kr_fail = Keyrelay(
        procs, "keyrelay-fail", fail_keys,
        ["--default-cooldown", "0.001", "--max-cooldown", "0.001"],
    )
    mem_keys = [
        {"name": "m-1", "api_key": "k1", "model": "m", "provider": "openai",
         "base_url": fast.url + "/v1"},
        {"name": "s-1", "api_key": "k1", "model": "s", "provider": "openai",
         "base_url": slow.url + "/v1"},
    ]
    kr_mem = Keyrelay(procs, "keyrelay-mem", mem_keys)
    time.sleep(1.0)
    idle_kr = kr_mem.rss()
    idle_nginx = nginx.rss()

    chat = "/v1/chat/completions"
    kp, kwp, np_ = [kr.proc.pid], [kr_warn.proc.pid], [nginx.proc.pid]

    def openai_targets(model: str, stream: bool, mock: Mock, ng: str) -> list[Target]:
        """direct, nginx, keyrelay (and keyrelay at RUST_LOG=warn) for one OpenAI body."""
        direct_body = chat_body("m", stream)
        return [
            Target("direct", mock.url + chat, direct_body, OPENAI_HEADERS),
            Target("nginx", nginx.url(ng) + chat, direct_body, OPENAI_HEADERS, np_),
            Target("keyrelay", kr.url + chat, chat_body(model, stream), OPENAI_HEADERS, kp),
            Target("warn", kr_warn.url + chat, chat_body(model, stream), OPENAI_HEADERS,
                   kwp),
        ]

    plain = openai_targets("m", False, fast, "fast")
    stream = openai_targets("m", True, fast, "fast")
    anth_url = fast.url + "/v1/messages"
    anth_plain = Target("direct", anth_url, anthropic_body(False), ANTHROPIC_HEADERS)
    anth_stream = Target("direct", anth_url, anthropic_body(True), ANTHROPIC_HEADERS)
    tr_plain = Target("keyrelay", kr.url + chat, chat_body("c", False), OPENAI_HEADERS, kp)
    tr_stream = Target("keyrelay", kr.url + chat, chat_body("c", True), OPENAI_HEADERS, kp)
    rows: list[Row] = []

    log("warm-up")
    for t in plain + stream + [tr_plain, tr_stream]:
        oha(t, c=16, duration=1)

    # 1. Throughput, non-streaming passthrough.
    tput: dict[int, dict[str, Runs]] = {}
    for c in (16, 256):
        log(f"1. throughput, {c} connections")
        t = tput[c] = measure(plain, c=c, duration=D)
        sec = "1 throughput"
        rows.append(Row(sec, f"non-streaming, {c} conns", "rps",
                        t["direct"].rps, t["nginx"].rps, t["keyrelay"].rps,
                        "≥ nginx", t["keyrelay"].rps >= t["nginx"].rps))
        rows.append(Row(sec, "… proxy CPU per request", "cpu", None, t["nginx"].cpu,
                        t["keyrelay"].cpu, ratio_direct=False))
        rows.append(Row(sec, "… keyrelay at RUST_LOG=warn", "rps",
                        t["direct"].rps, t["nginx"].rps, t["warn"].rps,
                        "≥ nginx", t["warn"].rps >= t["nginx"].rps))
        rows.append(Row(sec, "… … CPU per request at RUST_LOG=warn", "cpu", None,
                        t["nginx"].cpu, t["warn"].cpu, ratio_direct=False))

    # 2. Latency at a fixed open-loop rate.
    for q in (1000, 5000):
        log(f"2. latency at {q} req/s")
        before = kr.metrics()
        targets = plain if q == 1000 else plain[:3]
        runs = measure(targets, c=64, duration=D + 1, qps=q)
        after = kr.metrics()
        d, n, k = runs["direct"], runs["nginx"], runs["keyrelay"]
        sec = f"2 latency {q // 1000}k rps"
        rows.append(Row(sec, "achieved rate", "rps", d.rps, n.rps, k.rps))
        for label, attr in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")):
            rows.append(Row(sec, label, "s", getattr(d, attr), getattr(n, attr),
                            getattr(k, attr)))
        goals = {"p50": (100e-6, "≤ 100 µs"), "p99": (1e-3, "≤ 1 ms")} if q == 1000 else {}
        for label, attr in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")):
            added = getattr(k, attr) - getattr(d, attr)
            added_n = getattr(n, attr) - getattr(d, attr)
            goal = goals.get(label)
            rows.append(Row(sec, f"added over direct, {label}", "s", None, added_n, added,
                            goal[1] if goal else "", (added <= goal[0]) if goal else None,
                            ratio_direct=False))
        overhead_n = (metric_sum(after, "keyrelay_overhead_seconds_count")
                      - metric_sum(before, "keyrelay_overhead_seconds_count"))
        overhead_s = (metric_sum(after, "keyrelay_overhead_seconds_sum")
                      - metric_sum(before, "keyrelay_overhead_seconds_sum"))
        if overhead_n:
            rows.append(Row(sec, "keyrelay's own overhead, mean (its /metrics)", "s",
                            kr=overhead_s / overhead_n))
        if q == 1000:
            w = runs["warn"]
            rows.append(Row(sec, "… keyrelay at RUST_LOG=warn: added p50", "s",
                            kr=w.p50 - d.p50, target="≤ 100 µs", met=w.p50 - d.p50 <= 100e-6))
            rows.append(Row(sec, "… keyrelay at RUST_LOG=warn: added p99", "s",
                            kr=w.p99 - d.p99, target="≤ 1 ms", met=w.p99 - d.p99 <= 1e-3))
        failed = sum(r.failed for r in runs.values())
        if failed:
            rows.append(Row(sec, "failed requests (all targets)", "n", kr=failed))

    # 3. Streaming: time to first byte and total time of an 8-chunk stream.
    log("3. streaming latency")
    sec = "3 stream, 1 conn, 0 delay"
    s3 = measure(stream[:3], c=1, duration=D)
    s3t = measure([anth_stream, tr_stream], c=1, duration=D)
    metrics3 = (("TTFB p50", "ttfb50"), ("TTFB p99", "ttfb99"),
                ("total p50", "p50"), ("total p99", "p99"))
    for label, attr in metrics3:
        rows.append(Row(sec, f"passthrough {label}", "s", getattr(s3["direct"], attr),
                        getattr(s3["nginx"], attr), getattr(s3["keyrelay"], attr)))
    for label, attr in metrics3:
        rows.append(Row(sec, f"translated {label} (direct = mock's Anthropic stream)", "s",
                        getattr(s3t["direct"], attr), None, getattr(s3t["keyrelay"], attr)))
    # 10 ms between chunks: the first byte must not wait for the rest of the stream.
    sec = "3 stream, 10 ms/chunk"
    d_pass = openai_targets("d", True, d10, "d10")[:3]
    d_tr = [Target("direct", d10.url + "/v1/messages", anthropic_body(True),
                   ANTHROPIC_HEADERS),
            Target("keyrelay", kr.url + chat, chat_body("dc", True), OPENAI_HEADERS, kp)]
    s3d = measure(d_pass, rounds=1, c=4, n=60)
    s3dt = measure(d_tr, rounds=1, c=4, n=60)
    for label, attr in (("TTFB p50", "ttfb50"), ("total p50", "p50")):
        rows.append(Row(sec, f"passthrough {label}", "s", getattr(s3d["direct"], attr),
                        getattr(s3d["nginx"], attr), getattr(s3d["keyrelay"], attr)))
        rows.append(Row(sec, f"translated {label}", "s", getattr(s3dt["direct"], attr),
                        None, getattr(s3dt["keyrelay"], attr)))

    # 4. Streaming and translation throughput.
    log("4. streaming and translation throughput")
    sec = "4 stream/translate, 16 conns"
    s4 = measure(stream[:3], c=16, duration=D)
    s4t = measure([anth_plain, tr_plain], c=16, duration=D)
    s4ts = measure([anth_stream, tr_stream], c=16, duration=D)
    rows.append(Row(sec, "streaming passthrough", "rps", s4["direct"].rps, s4["nginx"].rps,
                    s4["keyrelay"].rps, "≥ nginx", s4["keyrelay"].rps >= s4["nginx"].rps))
    rows.append(Row(sec, "… proxy CPU per stream", "cpu", None, s4["nginx"].cpu,
                    s4["keyrelay"].cpu, ratio_direct=False))
    rows.append(Row(sec, "non-streaming translated (direct = mock's Anthropic API)", "rps",
                    s4t["direct"].rps, None, s4t["keyrelay"].rps))
    rows.append(Row(sec, "… CPU per request", "cpu", kr=s4t["keyrelay"].cpu))
    rows.append(Row(sec, "… translated / passthrough CPU per request (scenario 1)", "x",
                    kr=s4t["keyrelay"].cpu / tput[16]["keyrelay"].cpu))
    rows.append(Row(sec, "streaming translated (direct = mock's Anthropic stream)", "rps",
                    s4ts["direct"].rps, None, s4ts["keyrelay"].rps))
    rows.append(Row(sec, "… CPU per stream", "cpu", kr=s4ts["keyrelay"].cpu))
    rows.append(Row(sec, "… translated / passthrough CPU per stream", "x",
                    kr=s4ts["keyrelay"].cpu / s4["keyrelay"].cpu))
    tr_ratio = s4ts["keyrelay"].rps / s4["keyrelay"].rps
    rows.append(Row(sec, "translated / passthrough streaming (keyrelay)", "x", kr=tr_ratio,
                    target="≥ 0.70×", met=tr_ratio >= 0.7))
    # Paced like a real model: proxy CPU per stream when every frame is a write of its own.
    sec = "4 stream, 10 ms/chunk, 64 conns"
    s4d = measure(d_pass, c=64, duration=D)
    rows.append(Row(sec, "streams per second", "rps", s4d["direct"].rps, s4d["nginx"].rps,
                    s4d["keyrelay"].rps))
    rows.append(Row(sec, "… proxy CPU per stream", "cpu", None, s4d["nginx"].cpu,
                    s4d["keyrelay"].cpu, ratio_direct=False))

    # 5. Memory.
    log("5. memory")
    sec = "5 memory (RSS)"
    rows.append(Row(sec, "idle, just started", "MiB", None, mib(idle_nginx), mib(idle_kr),
                    "≤ 20 MB", mib(idle_kr) <= 20))

    def open_streams() -> float:
        return kr_mem.metrics().get("keyrelay_open_streams", 0.0)

    slow_kr = Target("keyrelay", kr_mem.url + chat, chat_body("s", True), OPENAI_HEADERS)
    slow_ng = Target("nginx", nginx.url("slow") + chat, chat_body("m", True), OPENAI_HEADERS)
    stop = threading.Event()
    peak = sample_peak(kr_mem.rss, stop, open_streams)
    slow_run = oha(slow_kr, c=STREAMS, n=STREAMS)
    stop.set()
    peak["thread"].join()
    stop_n = threading.Event()
    peak_n = sample_peak(nginx.rss, stop_n)
    slow_nginx = oha(slow_ng, c=STREAMS, n=STREAMS)
    stop_n.set()
    peak_n["thread"].join()
    rows.append(Row(sec, f"peak during {STREAMS:,} concurrent 500 ms/chunk streams", "MiB",
                    None, mib(peak_n["rss"]), mib(peak["rss"]), "≤ 100 MB",
                    mib(peak["rss"]) <= 100))
    rows.append(Row(sec, "… streams open at once (keyrelay_open_streams peak)", "n",
                    kr=peak["extra"]))
    rows.append(Row(sec, f"… streams completed (of {STREAMS:,})", "n", None, slow_nginx.ok,
                    slow_run.ok, ratio_nginx=False, ratio_direct=False))
    time.sleep(1.0)
    rows.append(Row(sec, "1 s after the streams ended", "MiB", None, mib(nginx.rss()),
                    mib(kr_mem.rss())))

    warm = 20_000
    half = SOAK_REQUESTS // 2
    log(f"   soak: {warm:,} + 2 × {half:,} requests")
    soak = Target("keyrelay", kr_mem.url + chat, chat_body("m", False), OPENAI_HEADERS)
    oha(soak, c=16, n=warm)
    rss_warm = kr_mem.rss()
    r1 = oha(soak, c=16, n=half)
    rss_mid = kr_mem.rss()
    r2 = oha(soak, c=16, n=half)
    rss_end = kr_mem.rss()
    growth = mib(rss_end - rss_mid)
    rows.append(Row(sec, f"after {warm:,} warm-up requests", "MiB", kr=mib(rss_warm)))
    rows.append(Row(sec, f"after {warm + half:,} requests", "MiB", kr=mib(rss_mid)))
    rows.append(Row(sec, f"after {warm + 2 * half:,} requests", "MiB", kr=mib(rss_end)))
    rows.append(Row(sec, f"growth over the last {half:,} requests", "MiB", kr=growth,
                    target="flat (≤ 1 MiB)", met=growth <= 1.0))
    rows.append(Row(sec, "… failed requests in the soak", "n", kr=r1.failed + r2.failed))

    # 6. Failover under fire.
    log("6. failover")
    sec = "6 failover, 16 conns"
    fbody = chat_body("f", False)
    healthy = Target("healthy", kr.url + chat, chat_body("m", False), OPENAI_HEADERS, kp)
    f_default = Target("default", kr.url + chat, fbody, OPENAI_HEADERS, kp)
    f_every = Target("every", kr_fail.url + chat, fbody, OPENAI_HEADERS,
                     [kr_fail.proc.pid])
    m0, g0 = kr.metrics(), kr_fail.metrics()
    f6 = measure([healthy, f_default, f_every], c=16, duration=D, expect_errors=True)
    m1, g1 = kr.metrics(), kr_fail.metrics()

    def limited(a, b):
        key = "keyrelay_upstream_attempts_total"
        return metric_sum(b, key, 'outcome="rate_limited"') - metric_sum(
            a, key, 'outcome="rate_limited"')

    rows.append(Row(sec, "healthy pool (reference, same rounds)", "rps", kr=f6["healthy"].rps))
    for label, name, a, b in (
        ("2 of 4 keys 429, default cooldown", "default", m0, m1),
        ("2 of 4 keys 429, 1 ms cooldown (failover on every rotation)", "every", g0, g1),
    ):
        run = f6[name]
        frac = 100.0 * run.failed / max(run.total, 1)
        rows.append(Row(sec, f"{label}: throughput", "rps", kr=run.rps))
        rows.append(Row(sec, "… / healthy pool", "x", kr=run.rps / f6["healthy"].rps))
        rows.append(Row(sec, "… upstream 429s absorbed", "n", kr=limited(a, b)))
        rows.append(Row(sec, f"… client-visible errors ({run.failed:,} of {run.total:,})",
                        "%", kr=frac, target="0", met=run.failed == 0))

    # 7. System calls: counts do not drift with the machine's load, so they show where a
    # proxy's kernel time goes (every write to loopback also wakes the reader).
    if shutil.which("strace"):
        log("7. system calls per request (strace -f -c)")
        sec = "7 system calls per request, 16 conns"
        ng_pids = [nginx.proc.pid, *children(nginx.proc.pid)]
        for label, targets in (("non-streaming", plain), ("8-chunk stream", stream)):
            counts = {t.name: syscall_counts(procs, t, pids, n=3000)
                      for t, pids in ((targets[1], ng_pids), (targets[2], kp))}
            n, k = counts["nginx"], counts["keyrelay"]
            rows.append(Row(sec, f"{label}: all", "n2", None, n["all"], k["all"]))
            rows.append(Row(sec, f"… writes (write, writev, send*)", "n2", None, n["write"],
                            k["write"]))
            rows.append(Row(sec, f"… reads (read, recv*)", "n2", None, n["read"], k["read"]))
            rows.append(Row(sec, f"… wake-ups and waits (futex, epoll_wait)", "n2", None,
                            n["wait"], k["wait"]))

    # 8. Long streams, with processes of their own.
    rows += long_streams(procs)
    return rows


def long_streams(procs: Procs) -> list[Row]:
    """Scenario 8 (issue 15): LONG_STREAMS streams at once, LONG_CHUNKS chunks each, one
    every 100 ms, through keyrelay and then through nginx (never both at once) to a mock of
    their own. A proxy holding thousands of slow streams spends its memory on per-stream
    state, so RSS per open stream is the figure this scenario is for."""
    n, chunks = LONG_STREAMS, LONG_CHUNKS
    log(f"8. long streams: {n:,} at once, {chunks} chunks each, one every {LONG_DELAY_MS} ms; "
        + (f"{LONG_RATE:,} opened a second" if LONG_RATE else "all opened at once"))
    raise_nofile(2 * n + 1000)
    mock = Mock(procs, "mock-long", LONG_DELAY_MS)
    chat = "/v1/chat/completions"
    body = long_body("l", chunks)

    keys = [{"name": "l-1", "api_key": "k1", "model": "l", "provider": "openai",
             "base_url": mock.url + "/v1"}]
    # Its in-flight limit must not be what caps the run (given explicitly: older versions
    # default to 4,096, newer ones derive it from the open-file limit). Its connect timeout
    # is nginx's (proxy_connect_timeout, 60 s): when the machine cannot keep up, the mock's
    # accept queue overflows and a connect waits for SYN retries (1, 3, 7, 15 s); keyrelay's
    # default 10 s then fails them, and three in a row take the only upstream out of service
    # for a while (a key's cooldown, or since 8049b33 the host's breaker).
    kr = Keyrelay(procs, "keyrelay-long", keys, ["--max-concurrency", str(n + 500),
                                                 "--connect-timeout", "60"])

    def open_streams() -> float:
        return kr.metrics()["keyrelay_open_streams"]

    k = long_run(Target("keyrelay", kr.url + chat, body, OPENAI_HEADERS, [kr.proc.pid]),
                 kr.rss, mock, kr.log, {"gauge": open_streams})
    # Stopped, so that its idle upstream connections do not stay on the mock during nginx's run.
    procs.stop(kr.proc)
    time.sleep(1.0)

    # Every stream holds a client and an upstream connection in nginx's one worker, and
    # nginx starts closing connections that wait for a request ("worker_connections are not
    # enough, reusing connections") once fewer than 1/16 of its connections are free.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    connections = 2 * n * 16 // 15 + 500
    if hard != resource.RLIM_INFINITY:
        connections = min(connections, hard - 100)
    ng = Nginx(procs, {"long": mock.port}, name="nginx-long", connections=connections,
               rlimit=connections + 100)
    g = long_run(Target("nginx", ng.url("long") + chat, body, OPENAI_HEADERS, [ng.proc.pid]),
                 ng.rss, mock, procs.tmp / "nginx-long" / "nginx-error.log")
    procs.stop(ng.proc)

    sec = "8 long streams"
    opening = f"opened at {LONG_RATE:,}/s" if LONG_RATE else "opened at once"
    label = f"{n:,} streams × {chunks} chunks, {LONG_DELAY_MS} ms apart, {opening}"
    k_open, g_open = k["peak"]["gauge"], g["peak"]["upstream"]
    per_k = (k["peak"]["rss"] - k["idle"]) / max(k_open, 1)
    per_g = (g["peak"]["rss"] - g["idle"]) / max(g_open, 1)
    kw = {"ratio_direct": False}
    return [
        Row(sec, f"{label}: RSS idle, before the run", "MiB", None, mib(g["idle"]),
            mib(k["idle"]), **kw),
        Row(sec, "… RSS peak (nginx: master + worker)", "MiB", None,
            mib(g["peak"]["rss"]), mib(k["peak"]["rss"]), **kw),
        Row(sec, "… streams open at peak (nginx: mock's connections; keyrelay: "
            "keyrelay_open_streams)", "n", None, g_open, k_open,
            target=f"= {n:,}", met=min(g_open, k_open) >= n, ratio_nginx=False, **kw),
        Row(sec, "… … mock's connections at peak (both)", "n", None, g_open,
            k["peak"]["upstream"], ratio_nginx=False, **kw),
        Row(sec, "… RSS per open stream, (peak − idle) / open", "KiB", None, per_g, per_k,
            target="≤ nginx", met=per_k <= per_g, **kw),
        Row(sec, "… proxy CPU per chunk delivered", "cpu", None, g["cpu"], k["cpu"], **kw),
        Row(sec, "… TTFB p50", "s", None, g["run"].ttfb50, k["run"].ttfb50, **kw),
        Row(sec, "… TTFB p99", "s", None, g["run"].ttfb99, k["run"].ttfb99, **kw),
        Row(sec, "… … connects turned away by a full accept queue, the proxy's or the "
            "mock's (kernel ListenOverflows)", "n", None, g["overflows"], k["overflows"],
            ratio_nginx=False, **kw),
        Row(sec, f"… total p50 (nominal {(chunks - 1) * LONG_DELAY_MS / 1000:g} s: longer when "
            "the machine cannot keep up)", "s", None, g["run"].p50, k["run"].p50, **kw),
        Row(sec, f"… streams completed (of {n:,})", "n", None, g["run"].ok, k["run"].ok,
            ratio_nginx=False, **kw),
        Row(sec, "… streams failed", "n", None, g["run"].failed, k["run"].failed,
            ratio_nginx=False, **kw),
    ]


def long_run(target: Target, rss, mock: Mock, proxy_log: Path,
             extra: dict | None = None) -> dict:
    """One `-c N -n N` run of scenario 8 through one proxy: its RSS before and at peak, the
    peak of the mock's open connections (one per stream the proxy has open upstream, for
    nginx as for keyrelay), and the proxy's CPU time per chunk delivered."""
    n, chunks = LONG_STREAMS, LONG_CHUNKS
    time.sleep(1.0)  # settled after its start
    idle = rss()
    mock_pid = mock.proc.pid
    base_fds = fd_count(mock_pid)
    peaks = Peaks({"rss": rss, "upstream": lambda: fd_count(mock_pid) - base_fds,
                   **(extra or {})})
    # A stream lasts (chunks − 1) delays, here up to 2.5 times that when the machine cannot
    # keep up (every process's timers fire late): three times and a minute more.
    timeout = 3 * chunks * LONG_DELAY_MS / 1000 + 60
    overflows = listen_overflows()
    try:
        run = oha(target, c=n, n=n, qps=LONG_RATE or None, request_timeout=timeout)
    finally:
        peak = peaks.stop()
    overflows = listen_overflows() - overflows
    # oha's CPU figure is per request; a chunk is what a slow stream costs over its life.
    cpu = run.cpu * run.total / max(run.ok * chunks, 1)
    opened = ", ".join(f"{k} {v:,.0f}" for k, v in peak.items() if k != "rss")
    log(f"   {target.name}: {run.ok:,} ok, {run.failed:,} failed; RSS {mib(idle):.1f} MiB idle, "
        f"{mib(peak['rss']):.1f} MiB peak; open at peak: {opened}")
    if run.failed:
        # The temp dir goes on exit: show why, from the proxy's own log.
        for line in failure_lines(proxy_log)[-3:]:
            log(f"     {line[:300]}")
    return {"run": run, "idle": idle, "peak": peak, "cpu": cpu, "overflows": overflows}


def failure_lines(path: Path) -> list[str]:
    """The lines of a proxy's log that say why requests failed: every line of nginx's error
    log; keyrelay's warnings and its request lines with a status other than 2xx."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    if path.name == "nginx-error.log":
        return lines
    return [line for line in lines
            if " WARN " in line or " ERROR " in line or re.search(r"\bstatus=[013-9]", line)]


def syscall_counts(procs: Procs, target: Target, pids: list[int], n: int) -> dict[str, float]:
    """System calls per request of the processes `pids` while oha sends `n` requests."""
    out = procs.tmp / f"strace-{target.name}.txt"
    argv = ["strace", "-f", "-c", "-o", str(out)]
    for pid in pids:
        argv += ["-p", str(pid)]
    tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    try:
        oha(target, c=16, n=n)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    group = {
        "write": ("write", "writev", "sendto", "sendmsg", "sendfile"),
        "read": ("read", "readv", "recvfrom", "recvmsg"),
        "wait": ("futex", "epoll_wait", "epoll_pwait", "sched_yield"),
    }
    per = {name: sum(calls.get(c, 0) for c in cs) / n for name, cs in group.items()}
    per["all"] = sum(v for k, v in calls.items() if k != "total") / n
    return per


MARK_BEGIN = "<!-- bench:begin (written by scripts/bench.sh) -->"
MARK_END = "<!-- bench:end -->"


def write_benchmarks(table: str, elapsed: float) -> None:
    path = ROOT / "BENCHMARKS.md"
    commit = tool_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    soak = "1,000,000" if MILLION else f"{SOAK_REQUESTS:,} (BENCH_MILLION=1 for 1,000,000)"
    block = "\n".join([
        MARK_BEGIN,
        f"Command: `bash scripts/bench.sh`"
        + (" with `BENCH_MILLION=1`" if MILLION else ""),
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"commit {commit}{' (src/ modified)' if dirty else ''}; suite ran {elapsed:.0f} s.",
        f"- Machine: {machine_note()}; load generator, mock, nginx and keyrelay share it.",
        f"- Tools: {tool_version(['oha', '--version'])}, "
        f"{tool_version(['nginx', '-v'])}, {tool_version(['rustc', '--version'])}.",
        f"- Each figure: median of {ROUNDS} interleaved rounds of {DURATION:g} s "
        f"({DURATION + 1:g} s at a fixed rate); memory soak: {soak} requests.",
        "",
        table,
        MARK_END,
    ])
    if path.exists():
        text = path.read_text()
        if MARK_BEGIN in text and MARK_END in text:
            pre, rest = text.split(MARK_BEGIN, 1)
            _, post = rest.split(MARK_END, 1)
            path.write_text(pre + block + post)
            log(f"bench: table written to {path}")
            return
    path.write_text("# Benchmarks\n\n" + block + "\n")
    log(f"bench: table written to {path}")


if __name__ == "__main__":
    sys.exit(main())
