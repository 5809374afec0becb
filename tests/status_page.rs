//! The live status page, rendered by headless Chromium (installed by scripts/test.sh): it
//! shows a key that was made to cool down as cooling, and a screenshot is produced.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let bin = std::env::var("KEYRELAY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,700",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} (scripts/test.sh installs it): {e}"))
}

#[tokio::test]
async fn status_page_shows_a_cooling_key_in_a_real_browser() {
    let mock = recording_mock().await;
    mock.script(
        "limited",
        [Behavior::Fail {
            status: 429,
            headers: vec![("retry-after".into(), "60".into())],
        }],
    );
    let keys = json!([
        openai_key(&mock, "gpt", "limited"),
        openai_key(&mock, "gpt", "steady"),
        openai_key(&mock, "<b>model</b>", "odd")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    assert_eq!(proxy.chat(&chat_body("gpt", "hello")).await.status(), 200);

    // Without the admin token: refused, with a Basic challenge a browser can answer.
    let refused = client().get(proxy.url("/status")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let url = format!("http://admin:{ADMIN_TOKEN}@{}/status", proxy.addr);
    let page = url.clone();
    let dom = tokio::task::spawn_blocking(move || chromium(&["--dump-dom"], &page))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let row = |label: &str| {
        dom.lines()
            .find(|l| l.contains(&format!("data-key=\"{label}\"")))
            .unwrap_or_else(|| panic!("no row for {label} in:\n{dom}"))
            .to_owned()
    };
    assert!(
        row("limited").contains("class=\"cooling\">cooling,"),
        "{}",
        row("limited")
    );
    assert!(
        row("steady").contains("class=\"healthy\">healthy"),
        "{}",
        row("steady")
    );
    assert!(
        dom.contains("&lt;b&gt;model&lt;/b&gt;"),
        "names are escaped"
    );
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || chromium(&[&arg], &url))
        .await
        .unwrap();
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
}
