#!/usr/bin/env bash
# Instructions and allocations per request of keyrelay's own process, under callgrind:
# times drift on a shared machine, instruction counts do not (BENCHMARKS.md, section 6).
#
#   bash scripts/callgrind.sh                 # non-streaming passthrough, 2,000 requests
#   bash scripts/callgrind.sh stream          # 8-chunk streams
#   bash scripts/callgrind.sh translated      # 8-chunk streams from an Anthropic key
#   LOG_FORMAT=json bash scripts/callgrind.sh # with JSON log lines
#   PROXY=nginx bash scripts/callgrind.sh     # nginx (one worker, as in bench.sh) instead
#   PROXY=bare bash scripts/callgrind.sh      # the bare hyper proxy of scripts/experiments
#   CG_OUT=/tmp/cg.out bash scripts/callgrind.sh   # keep the profile for callgrind_annotate
#
# The same load goes to each proxy, so the counts compare (BENCHMARKS.md, section 9).
# Installs valgrind (apt-get) and oha (cargo) when missing. User-space work only.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-plain}
N=${2:-2000}
STREAM=false; MODEL=m
case "$MODE" in
  plain) ;;
  stream) STREAM=true ;;
  translated) STREAM=true; MODEL=c ;;
  *) echo "usage: [PROXY=keyrelay|nginx|bare] $0 [plain|stream|translated] [N]" >&2; exit 2 ;;
esac
WHICH=${PROXY:-keyrelay}
case "$WHICH:$MODE" in
  keyrelay:*|nginx:plain|nginx:stream|bare:plain|bare:stream) ;;
  *) echo "$WHICH proxies the same format only: plain or stream" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v oha >/dev/null || cargo install --locked oha
cargo build --release --bins -q
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK=$(free_port); PROXY=$(free_port)
target/release/keyrelay-mock --port "$MOCK" >"$DIR/mock.log" 2>&1 &
CG=(valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out")
case "$WHICH" in
  keyrelay)
    LLM_KEYS='[{"api_key":"k1","model":"m","provider":"openai","base_url":"http://127.0.0.1:'$MOCK'/v1"},
      {"api_key":"a1","model":"c","provider":"anthropic","base_url":"http://127.0.0.1:'$MOCK'"}]' \
      RUST_LOG=keyrelay=info KEYRELAY_LOG_FORMAT=${LOG_FORMAT:-text} \
      "${CG[@]}" target/release/keyrelay --port "$PROXY" >"$DIR/proxy.log" 2>"$DIR/proxy.err" &
    ;;
  nginx)
    command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
    # bench.sh's configuration, in one process (no master) so that callgrind follows it.
    cat >"$DIR/nginx.conf" <<EOF
master_process off; daemon off; worker_processes 1; $([ "$(id -u)" = 0 ] && echo "user root;")
error_log $DIR/nginx-error.log; pid $DIR/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path $DIR; proxy_temp_path $DIR;
  upstream up { server 127.0.0.1:$MOCK; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$PROXY; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
    "${CG[@]}" nginx -p "$DIR" -c "$DIR/nginx.conf" >"$DIR/proxy.log" 2>"$DIR/proxy.err" &
    ;;
  bare)
    EXP=scripts/experiments/own-connection
    cargo build --release -q --manifest-path "$EXP/Cargo.toml"
    "${CG[@]}" "$EXP/target/release/exp" own "$PROXY" "127.0.0.1:$MOCK" >"$DIR/proxy.log" 2>"$DIR/proxy.err" &
    ;;
  *) echo "PROXY is keyrelay, nginx or bare" >&2; exit 2 ;;
esac
VG=$!
# Up when it answers anything (nginx and the bare proxy have no /health).
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PROXY/health" && break; sleep 0.2; done
BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"one two three four five six"}],"stream":'$STREAM'}'
load() { oha --no-tui -n "$1" -c 4 -m POST -T application/json -d "$BODY" "http://127.0.0.1:$PROXY/v1/chat/completions"; }
load 200 >/dev/null                      # warm up: connections, caches
callgrind_control -z "$VG" >/dev/null 2>&1    # count from here
load "$N" | grep -E "Success rate"
callgrind_control -d "$VG" >/dev/null 2>&1
sleep 0.5
[ -n "${CG_OUT:-}" ] && cp "$DIR/cg.out.1" "$CG_OUT"
python3 - "$DIR/cg.out.1" "$N" <<'PY'
import collections, re, sys
names, own, calls = {}, collections.Counter(), collections.Counter()
fn = cfn = None; after_calls = False
def name(v):
    m = re.match(r'\((\d+)\)(?: (.*))?', v)
    if not m: return v
    if m[2]: names[m[1]] = m[2]
    return names.get(m[1], m[1])
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if line.startswith('fn='): fn = name(line[3:]); continue
    if line.startswith(('cfn=', 'cfi=', 'cfl=')):
        v = name(line[4:])
        if line.startswith('cfn='): cfn = v
        continue
    if line.startswith('calls='):
        after_calls = True
        if cfn in ('malloc', 'realloc', 'calloc'): calls[cfn] += int(line[6:].split()[0])
        continue
    if line and (line[0].isdigit() or line[0] in '+-*'):
        if after_calls: after_calls = False; continue
        parts = line.split()
        if len(parts) >= 2: own[fn] += int(parts[1])
n = int(sys.argv[2]); total = sum(own.values())
print(f"instructions per request: {total / n:,.0f}")
print(f"allocations per request:  {sum(calls.values()) / n:.1f} ({', '.join(f'{k} {v / n:.1f}' for k, v in calls.items())})")
print("functions by their own instructions per request:")
for f, c in own.most_common(25):
    print(f"  {c / n:8,.0f} {100 * c / total:5.1f} %  {f[:110]}")
PY
