#!/usr/bin/env bash
# Instructions and allocations per request of keyrelay's own process, under callgrind:
# times drift on a shared machine, instruction counts do not (BENCHMARKS.md, section 6).
#
#   bash scripts/callgrind.sh                 # non-streaming passthrough, 2,000 requests
#   bash scripts/callgrind.sh stream          # 8-chunk streams
#   bash scripts/callgrind.sh translated      # 8-chunk streams from an Anthropic key
#   LOG_FORMAT=json bash scripts/callgrind.sh # with JSON log lines
#
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
  *) echo "usage: $0 [plain|stream|translated] [N]" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v oha >/dev/null || cargo install --locked oha
cargo build --release --bins -q
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK=$(free_port); PROXY=$(free_port)
target/release/keyrelay-mock --port "$MOCK" >"$DIR/mock.log" 2>&1 &
LLM_KEYS='[{"api_key":"k1","model":"m","provider":"openai","base_url":"http://127.0.0.1:'$MOCK'/v1"},
  {"api_key":"a1","model":"c","provider":"anthropic","base_url":"http://127.0.0.1:'$MOCK'"}]' \
  RUST_LOG=keyrelay=info KEYRELAY_LOG_FORMAT=${LOG_FORMAT:-text} \
  valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out" \
  target/release/keyrelay --port "$PROXY" >"$DIR/proxy.log" 2>"$DIR/proxy.err" &
VG=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PROXY/health" && break; sleep 0.2; done
BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"one two three four five six"}],"stream":'$STREAM'}'
load() { oha --no-tui -n "$1" -c 4 -m POST -T application/json -d "$BODY" "http://127.0.0.1:$PROXY/v1/chat/completions"; }
load 200 >/dev/null                      # warm up: connections, caches
callgrind_control -z "$VG" >/dev/null 2>&1    # count from here
load "$N" | grep -E "Success rate"
callgrind_control -d "$VG" >/dev/null 2>&1
sleep 0.5
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
