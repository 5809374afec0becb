//! Replays the fuzz inputs kept in the repository through the fuzz targets' own checks
//! (`fuzz/checks.rs`), so `cargo test` runs them on stable Rust without cargo-fuzz:
//!
//! - `fuzz/seeds/<target>/*`: the starting corpus of each target;
//! - `fuzz/regressions/<target>/*`: inputs that once crashed a target. A crash found by
//!   fuzzing is added here, fails this test until it is fixed, and stays caught afterwards.
//!
//! Run one target's inputs with `cargo test --test fuzz_regressions -- <target>`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The input files of `kind/target`, sorted; dot files (`.gitkeep`) are not inputs.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs every input of `kind/target` through the target's check; reports all failures.
fn replay(kind: &str, target: &str) -> usize {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("unknown fuzz target {target}"));
    let files = inputs(kind, target);
    let mut failures = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}:\n  {message}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs in fuzz/{kind}/{target} fail the fuzz checks:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    files.len()
}

/// Every directory under `fuzz/<kind>/` is a known target, so no input is silently skipped.
fn assert_known_targets(kind: &str) {
    for entry in fs::read_dir(fuzz_dir().join(kind)).expect("fuzz dir") {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            checks::TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/{kind}/{name} is not a fuzz target"
        );
    }
}

macro_rules! target_tests {
    ($($target:ident),* $(,)?) => {
        mod seeds {
            $(
                #[test]
                fn $target() {
                    let n = super::replay("seeds", stringify!($target));
                    assert!(n > 0, "no seeds for {}", stringify!($target));
                }
            )*
        }
        mod regressions {
            $(
                #[test]
                fn $target() {
                    super::replay("regressions", stringify!($target));
                }
            )*
        }
        #[test]
        fn every_target_is_replayed() {
            let listed = [$(stringify!($target)),*];
            for (name, _) in checks::TARGETS {
                assert!(listed.contains(&name), "{name} has no replay test");
            }
            assert_known_targets("seeds");
            assert_known_targets("regressions");
        }
    };
}

target_tests!(
    llm_keys,
    openai_to_anthropic_request,
    anthropic_to_openai,
    reverse,
    sse_parser,
    inspect,
    json_member,
);
