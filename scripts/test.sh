#!/usr/bin/env bash
# Runs every test: formatting, lints, Rust unit and integration tests, and the end-to-end
# tests with the official Python SDKs (installed into .venv on first run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bins
cargo test --locked
KEYRELAY_BIN_DIR=target/debug bash scripts/sdk-tests.sh
