#!/usr/bin/env bash
# Issue 15's outage, reproduced: keyrelay under an open-file limit of 1,024 (soft and hard),
# 800 concurrent streaming clients for 12 s against a 2-key model, then 20 requests one by
# one. Prints the status counts, the keys' state and the local-exhaustion counts.
#
#   bash scripts/experiments/local-exhaustion/run.sh [KEYRELAY_BIN_DIR] [keyrelay options]
#
# Needs oha (cargo install --locked oha) and prlimit (util-linux). Loopback only.
set -u
cd "$(dirname "$0")/../../.."
BIN=${1:-target/release}; shift || true
export PATH=$HOME/.cargo/bin:$PATH
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT
ulimit -n 65536 2>/dev/null || true
"$BIN/keyrelay-mock" --port 0 --chunk-delay-ms 50 > "$DIR/mock.out" 2>&1 &
sleep 0.5
MURL=$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$DIR/mock.out" | head -1)
key() { echo "{\"api_key\":\"$1\",\"model\":\"m\",\"provider\":\"openai\",\"base_url\":\"$MURL\",\"name\":\"$1\"}"; }
export LLM_KEYS="[$(key k1),$(key k2)]" KEYRELAY_ADMIN_TOKEN=adm RUST_LOG=keyrelay=warn
prlimit --nofile=1024:1024 -- "$BIN/keyrelay" --port 0 "$@" > "$DIR/kr.out" 2> "$DIR/kr.err" &
sleep 0.5
URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/kr.out" | head -1)
head -3 "$DIR/kr.out"
BODY='{"model":"m","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight"}]}'
oha --no-tui --output-format json -c 800 -z 12s -m POST -T application/json -d "$BODY" \
  "$URL/v1/chat/completions" > "$DIR/oha.json" 2>/dev/null
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("status:", d.get("statusCodeDistribution"), "errors:", d.get("errorDistribution"))' "$DIR/oha.json"
curl -s -H 'authorization: Bearer adm' "$URL/admin/keys" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("keys:", [(k["label"], k["state"], k["errors"]) for k in d["keys"]]); print("local exhaustion:", d.get("local_exhaustion"))'
ok=0
for _ in $(seq 20); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions" -H 'content-type: application/json' -d "$BODY")
  [ "$code" = 200 ] && ok=$((ok + 1))
done
echo "after the load: $ok of 20 succeeded"
