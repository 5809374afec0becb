#!/usr/bin/env bash
# Runs every test: formatting, lints, Rust unit and integration tests, and the end-to-end
# tests with the official Python SDKs (installed into .venv on first run).
set -euo pipefail
cd "$(dirname "$0")/.."

# The status-page test renders in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install it (apt-get install chromium) and run again" >&2
    exit 1
  fi
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bins
cargo test --locked
KEYRELAY_BIN_DIR=target/debug bash scripts/sdk-tests.sh
# Every fuzz target for a short, bounded time (longer by hand: bash scripts/fuzz.sh 600).
bash scripts/fuzz.sh "${KEYRELAY_FUZZ_SECONDS:-10}"
