//! Connection failures are the upstream host's, not the key's: a refused connection fails
//! over to a key on another host, leaves both keys as they were, and counts towards the
//! host's breaker, which `/admin/keys` and `/metrics` show, and which closes again once a
//! probe gets through.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A loopback port that refuses connections until `listen` is called: bound, not listening.
struct DeadPort(socket2::Socket);

impl DeadPort {
    fn new() -> DeadPort {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        DeadPort(socket)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().as_socket().unwrap().port()
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Starts accepting: a mock upstream now answers on this port.
    fn come_back(self) -> MockUpstream {
        self.0.listen(128).unwrap();
        let listener: std::net::TcpListener = self.0.into();
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        MockUpstream::serve(listener, MockOptions::default(), None)
    }
}

fn key_at(origin: &str, label: &str) -> Value {
    json!({"api_key": label, "model": "m", "provider": "openai",
           "base_url": format!("{origin}/v1"), "name": label})
}

fn upstream<'a>(admin: &'a Value, origin: &str) -> &'a Value {
    admin["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["upstream"] == origin)
        .unwrap_or_else(|| panic!("{origin} not in {admin}"))
}

fn assert_keys_untouched(admin: &Value) {
    for key in admin["keys"].as_array().unwrap() {
        assert_eq!(key["state"], "healthy", "{admin}");
        assert_eq!(key["consecutive_failures"], 0, "{admin}");
        assert_eq!(key["errors"], 0, "{admin}");
        assert_eq!(key["cooldowns"], 0, "{admin}");
    }
}

#[tokio::test]
async fn a_refused_host_fails_over_to_another_host_and_its_breaker_opens() {
    let live = MockUpstream::start(MockOptions::default()).await.unwrap();
    let dead = DeadPort::new();
    let origin = dead.origin();
    let keys = json!([key_at(&origin, "k-dead"), openai_key(&live, "m", "k-live")]);
    // Open for longer than the test runs: nothing below depends on timing.
    let proxy = Proxy::start(&keys, &["--host-breaker-cooldown", "60"]).await;

    // Every other pick lands on the dead host: each of those fails over to the live one.
    for _ in 0..6 {
        let resp = proxy.chat(&chat_body("m", "hi")).await;
        assert_eq!(resp.status(), 200);
    }
    let admin = admin_keys(&proxy).await;
    assert_keys_untouched(&admin);
    let host = upstream(&admin, &origin);
    assert_eq!(host["state"], "open", "{admin}");
    assert_eq!(host["connect_failures"], 3, "{admin}");
    assert_eq!(host["breaker_opens"], 1, "{admin}");
    assert!(host["open_remaining_s"].as_f64().unwrap() <= 60.0);
    let live_origin = format!("http://{}", live.addr());
    assert_eq!(upstream(&admin, &live_origin)["state"], "up");
    let dead_key = &admin["keys"][0];
    assert_eq!(
        (&dead_key["upstream"], &dead_key["attempts"]),
        (&json!(origin), &json!(3))
    );

    let text = metrics(&proxy).await;
    for line in [
        format!(r#"keyrelay_upstream_state{{upstream="{origin}",state="open"}} 1"#),
        format!(r#"keyrelay_upstream_state{{upstream="{origin}",state="up"}} 0"#),
        format!(r#"keyrelay_upstream_state{{upstream="{live_origin}",state="up"}} 1"#),
        format!(r#"keyrelay_upstream_connect_failures_total{{upstream="{origin}"}} 3"#),
        format!(r#"keyrelay_upstream_breaker_opens_total{{upstream="{origin}"}} 1"#),
        r#"keyrelay_upstream_attempts_total{key="k-dead",model="m",outcome="connect_error"} 3"#
            .to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("key_cooldowns_total{"), "{text}");
    let page = client()
        .get(proxy.url("/status"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row =
        format!(r#"<tr data-upstream="{origin}"><td>{origin}</td><td class="disabled">open, "#);
    assert!(page.contains(&row), "{page}");

    // While the breaker is open the dead host is not tried at all.
    let hits_before = live.hits()["k-live"];
    for _ in 0..4 {
        assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 200);
    }
    assert_eq!(live.hits()["k-live"], hits_before + 4);
    assert_eq!(
        upstream(&admin_keys(&proxy).await, &origin)["connect_failures"],
        3
    );

    // An operator's reset of one of its keys vouches for the host too.
    let reset = client()
        .post(proxy.url("/admin/keys/k-dead/reset"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(upstream(&admin_keys(&proxy).await, &origin)["state"], "up");
}

/// Once the open period is over, one request probes the host, and the breaker closes as soon
/// as its connection opens, not when a slow answer's head arrives.
#[tokio::test]
async fn a_probe_that_connects_closes_the_breaker_before_its_answer() {
    let dead = DeadPort::new();
    let origin = dead.origin();
    let proxy = Proxy::start(
        &json!([key_at(&origin, "k-dead")]),
        &["--host-breaker-cooldown", "0.2"],
    )
    .await;
    for _ in 0..3 {
        expect_error(proxy.chat(&chat_body("m", "hi")).await, 502).await;
    }
    let admin = admin_keys(&proxy).await;
    assert_eq!(upstream(&admin, &origin)["breaker_opens"], 1, "{admin}");

    let back = dead.come_back();
    back.script("k-dead", [Behavior::DelayHeaders(Duration::from_secs(1))]);
    let half_open = poll_until(&proxy, |admin| {
        upstream(admin, &origin)["state"] == "half_open"
    })
    .await;
    assert_keys_untouched(&half_open);
    let probe = tokio::spawn({
        let url = proxy.url("/v1/chat/completions");
        async move {
            client()
                .post(url)
                .json(&chat_body("m", "probe"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let up = poll_until(&proxy, |admin| upstream(admin, &origin)["state"] == "up").await;
    assert!(
        !probe.is_finished(),
        "closed while the answer is still on its way"
    );
    assert_eq!(upstream(&up, &origin)["consecutive_failures"], 0);
    assert_eq!(probe.await.unwrap(), 200);
    assert_eq!(back.hits()["k-dead"], 1, "one probe");
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 200);
    let text = metrics(&proxy).await;
    let line = format!(r#"keyrelay_upstream_state{{upstream="{origin}",state="up"}} 1"#);
    assert!(text.contains(&line), "{text}");
}

/// `/admin/keys` once `done` holds for it, polled every 20 ms for up to 5 s.
async fn poll_until(proxy: &Proxy, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let admin = admin_keys(proxy).await;
        if done(&admin) {
            return admin;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached: {admin}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_key_on_one_unreachable_host_gets_one_more_try_then_the_breaker_answers() {
    let dead = DeadPort::new();
    let origin = dead.origin();
    let keys = json!([
        key_at(&origin, "k1"),
        key_at(&origin, "k2"),
        key_at(&origin, "k3")
    ]);
    let proxy = Proxy::start(&keys, &["--host-breaker-cooldown", "30"]).await;
    let attempts = |admin: &Value| -> u64 {
        admin["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["attempts"].as_u64().unwrap())
            .sum()
    };

    // One more try on a fresh connection, not the whole attempt budget of 3.
    let body = expect_error(proxy.chat(&chat_body("m", "hi")).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let admin = admin_keys(&proxy).await;
    assert_eq!(attempts(&admin), 2, "{admin}");
    assert_keys_untouched(&admin);

    // The third failure opens the breaker; from then on no attempt is made.
    expect_error(proxy.chat(&chat_body("m", "hi")).await, 502).await;
    let admin = admin_keys(&proxy).await;
    assert_eq!(upstream(&admin, &origin)["state"], "open", "{admin}");
    let made = attempts(&admin);

    let resp = proxy.chat(&chat_body("m", "hi")).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body = expect_error(resp, 503).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("No upstream host for model `m`"),
        "{message}"
    );

    // In the Anthropic envelope on /v1/messages.
    let resp = post_messages(
        &proxy,
        &json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(resp.headers().contains_key("retry-after"));
    let body = expect_anthropic_error(resp, 503).await;
    assert_eq!(body["error"]["type"], "overloaded_error");

    let admin = admin_keys(&proxy).await;
    assert_eq!(
        attempts(&admin),
        made,
        "no attempt while the breaker is open"
    );
    assert_keys_untouched(&admin);
}
