#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for SECONDS each (default 20); exits non-zero if
# any target crashes (a panic, an overflow or a failed check in fuzz/checks.rs).
#
#   bash scripts/fuzz.sh [SECONDS]
#
# Works on stable Rust: cargo-fuzz needs nightly-only compiler flags, which
# RUSTC_BOOTSTRAP=1 unlocks. cargo-fuzz itself is installed from crates.io when missing.
#
# Each target starts from its committed seeds (fuzz/seeds/<target>) plus the corpus earlier
# runs grew (fuzz/corpus/<target>, not committed), so repeated runs keep what they found.
# A crash input lands in fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/artifacts/<target>/crash-…
# then copy it to fuzz/regressions/<target>/ so `cargo test --test fuzz_regressions`
# replays it. Each target's full libFuzzer log is fuzz/artifacts/<target>/fuzz.log.
#
# FUZZ_SANITIZER (default `none`) picks cargo-fuzz's sanitizer. keyrelay forbids unsafe
# code, so what fuzzing finds here are panics (debug assertions and overflow checks are
# on); AddressSanitizer would add build time and halve the executions per second for
# little gain. Set FUZZ_SANITIZER=address to use it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS]  (seconds per target, default 20)" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-none}"
# `build` and `run` must get the same flags, or `run` rebuilds.
build_flags=(-s "$sanitizer")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
mapfile -t targets < <(cargo fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz: no fuzz targets found" >&2
    exit 1
fi

# One build for all targets (shared dependencies, parallel link); `run` then finds them
# up to date as long as the flags match.
echo "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer)"
cargo fuzz build "${build_flags[@]}"

failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    log="$artifacts/fuzz.log"
    echo "fuzz: $target for ${seconds}s"
    if cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -dict=fuzz/json.dict -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added)' "$log" |
            sed "s/^/fuzz: $target: /" || true
    else
        echo "fuzz: $target FAILED; last lines of $log:" >&2
        tail -n 60 "$log" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
