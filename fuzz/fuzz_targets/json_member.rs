//! Fuzz target `json_member`: the checks live in `fuzz/checks.rs`, shared with
//! `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::json_member(data));
