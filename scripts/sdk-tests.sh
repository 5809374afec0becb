#!/usr/bin/env bash
# End-to-end tests with the official OpenAI and Anthropic Python SDKs against keyrelay and
# keyrelay-mock.
#
# Builds nothing: the caller builds first (cargo build). The binaries are taken from
# KEYRELAY_BIN_DIR (default target/debug, relative to the repo root). Extra arguments go
# to pytest, e.g. `scripts/sdk-tests.sh -k streaming`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export KEYRELAY_BIN_DIR="${KEYRELAY_BIN_DIR:-target/debug}"
for bin in keyrelay keyrelay-mock; do
    if [[ ! -x "$KEYRELAY_BIN_DIR/$bin" ]]; then
        echo "sdk-tests: $KEYRELAY_BIN_DIR/$bin not found; run 'cargo build' first or set KEYRELAY_BIN_DIR" >&2
        exit 1
    fi
done

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

# No cache dir: it would be left behind as an untracked .pytest_cache in the repo.
exec .venv/bin/python -m pytest tests/sdk -q -p no:cacheprovider "$@"
