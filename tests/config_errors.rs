//! Startup configuration errors, through the real binary: each names the entry and field,
//! exits non-zero before listening, and never prints a key.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output};

const SECRET: &str = "sk-live-DO-NOT-PRINT-0123456789";

fn keyrelay(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyrelay"));
    cmd.env_remove("LLM_KEYS")
        .env_remove("LLM_KEYS_FILE")
        .args(["--port", "0"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn rejected(env: &[(&str, &str)]) -> String {
    let out = keyrelay(env, &[]);
    assert_eq!(out.status.code(), Some(2), "should exit 2: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "must not start: {stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains(SECRET) && !stdout.contains(SECRET),
        "key leaked: {stderr}"
    );
    stderr
}

#[test]
fn each_entry_problem_is_named_by_index_and_field() {
    let keys = format!(
        r#"[{{"model": "m", "provider": "openai"}},
            {{"api_key": "{SECRET}", "model": "", "provider": "openai"}},
            {{"api_key": "{SECRET}", "model": "m", "provider": "azure-ish"}},
            {{"api_key": "{SECRET}", "model": "m", "provider": "openai", "base_url": "not a url"}},
            {{"api_key": "{SECRET}", "model": "m", "provider": "openai-compatible"}},
            {{"api_key": 12, "model": "m", "provider": "openai"}}]"#
    );
    let stderr = rejected(&[("LLM_KEYS", &keys)]);
    for expected in [
        "entry 0: field `api_key`: missing",
        "entry 1: field `model`: is empty",
        "entry 2: field `provider`: unknown provider \"azure-ish\" (valid: openai, anthropic, groq, mistral, deepseek, openrouter, together, fireworks, xai, perplexity, gemini, ollama, openai-compatible, mock)",
        "entry 3: field `base_url`",
        "entry 4: field `base_url`: required for provider openai-compatible",
        "entry 5: field `api_key`: must be a string",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn not_an_array_and_invalid_json() {
    let stderr = rejected(&[("LLM_KEYS", &format!(r#"{{"api_key": "{SECRET}"}}"#))]);
    assert!(stderr.contains("LLM_KEYS must be a JSON array"), "{stderr}");
    let stderr = rejected(&[("LLM_KEYS", &format!(r#"[{{"api_key": "{SECRET}""#))]);
    assert!(stderr.contains("LLM_KEYS is not valid JSON"), "{stderr}");
}

#[test]
fn both_or_neither_source_is_an_error() {
    let stderr = rejected(&[]);
    assert!(stderr.contains("no keys configured"), "{stderr}");
    let stderr = rejected(&[("LLM_KEYS", "[]"), ("LLM_KEYS_FILE", "/nonexistent")]);
    assert!(
        stderr.contains("both LLM_KEYS and LLM_KEYS_FILE are set"),
        "{stderr}"
    );
    let stderr = rejected(&[("LLM_KEYS_FILE", "/nonexistent/keys.json")]);
    assert!(
        stderr.contains("LLM_KEYS_FILE /nonexistent/keys.json: cannot read"),
        "{stderr}"
    );
}

#[test]
fn keys_file_is_validated_too() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        r#"[{{"api_key": "{SECRET}", "model": "m", "provider": "nope"}}]"#
    )
    .unwrap();
    let stderr = rejected(&[("LLM_KEYS_FILE", file.path().to_str().unwrap())]);
    assert!(
        stderr.contains("LLM_KEYS_FILE entry 0: field `provider`"),
        "{stderr}"
    );
}

#[test]
fn bad_host_is_reported() {
    let out = keyrelay(&[], &["--demo", "--host", "not a host!"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IP address"));
}
