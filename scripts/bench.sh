#!/usr/bin/env bash
# The benchmark suite of issue 7: keyrelay against the project's mock upstream, directly and
# through nginx, on loopback only. Builds the release binaries, installs what is missing
# (oha from crates.io, nginx from the system's packages), runs every scenario, prints one
# table and writes it into BENCHMARKS.md.
#
#   bash scripts/bench.sh                      # the whole suite, about 8 minutes
#   BENCH_MILLION=1 bash scripts/bench.sh      # memory scenario over 1,000,000 requests
#   BENCH_DURATION=8 bash scripts/bench.sh     # seconds per measurement (default 5)
#   BENCH_NO_WRITE=1 bash scripts/bench.sh     # print the table, leave BENCHMARKS.md alone
#   BENCH_ONLY=long bash scripts/bench.sh      # only scenario 8, long streams (about 90 s);
#                                              # prints the table, leaves BENCHMARKS.md alone
#   BENCH_LONG_STREAMS=500 bash scripts/bench.sh   # its concurrent streams (default: from the
#                                              # hard open-file limit, at most 9,000)
#   BENCH_LONG_RATE=0 bash scripts/bench.sh    # streams opened per second (default 1,000; 0:
#                                              # all at once)
#   BENCH_LONG_CHUNKS=50 bash scripts/bench.sh # chunks per stream, 100 ms apart (default: the
#                                              # opening ramp plus 5 s, at least 100)
#
# Not part of scripts/test.sh or CI: it takes minutes and needs an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bins

if ! command -v oha >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/oha" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "bench: installing oha (cargo install --locked oha)" >&2
    cargo install --locked oha
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bench: installing nginx (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  else
    echo "bench: nginx is missing: install it (apt-get install nginx) and run again" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"

# strace counts the system calls per request (scenario 7); that scenario is skipped without it.
if [ -z "${BENCH_ONLY:-}" ] && ! command -v strace >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "bench: installing strace (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null || true
fi

# 1,000 client connections plus 1,000 upstream ones per proxy; the long streams of scenario 8
# take as many as the hard limit allows (oha one descriptor per stream, a proxy two).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

exec python3 scripts/bench.py "$@"
