//! Criterion micro-benchmarks of the functions every request or every streamed byte goes
//! through (issue 7): key selection, request inspection (next to a plain copy of the same
//! body, so the ratio is visible), the SSE parser and Anthropic → OpenAI stream translation.
//!
//! `cargo bench --bench hot_paths -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyrelay::config::parse_keys;
use keyrelay::health::{HealthPolicy, Outcome};
use keyrelay::inspect::ChatRequest;
use keyrelay::json_member;
use keyrelay::pool::{KeyPool, Tried};
use keyrelay::translate::sse::SseParser;
use keyrelay::translate::stream::AnthropicToOpenAi;
use keyrelay::translate::{SseEvent, StreamTranslator};

/// A pool of `n` OpenAI keys for model `m`.
fn pool(n: usize) -> KeyPool {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"api_key":"bench-key-{i:04}","model":"m","provider":"openai","name":"k{i}","base_url":"http://127.0.0.1:9/v1"}}"#
            )
        })
        .collect();
    let specs = parse_keys(&format!("[{}]", entries.join(",")), "LLM_KEYS")
        .unwrap_or_else(|e| panic!("bench keys: {e:?}"));
    KeyPool::new(specs, HealthPolicy::default())
}

fn key_selection(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_selection");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 4, 64] {
        let pool = pool(n);
        let model = pool.model("m").unwrap_or_else(|| panic!("model m"));
        let now = pool.now_ms();
        g.bench_function(BenchmarkId::new("healthy", n), |b| {
            b.iter(|| black_box(model.pick(black_box(now), &Tried::default())))
        });
    }
    // Half the keys cooling down (rate limited for a minute): every other pick skips one.
    let pool = pool(4);
    let model = pool.model("m").unwrap_or_else(|| panic!("model m"));
    for key in model.keys().iter().skip(1).step_by(2) {
        pool.record(
            key,
            Outcome::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(60)),
            },
        );
    }
    let now = pool.now_ms();
    g.bench_function("half_cooling/4", |b| {
        b.iter(|| black_box(model.pick(black_box(now), &Tried::default())))
    });
    // A retry: the first key tried is excluded.
    let mut after_one = Tried::default();
    after_one.key(0);
    g.bench_function("retry_after_one/4", |b| {
        b.iter(|| black_box(model.pick(black_box(now), black_box(&after_one))))
    });
    g.finish();
}

/// A Chat Completions body of about `size` bytes: a long conversation of ordinary text
/// (with the escapes real prompts carry), `model` and `stream` after `messages`, so
/// inspection has to walk the whole body to find them.
fn chat_body(size: usize) -> Vec<u8> {
    let sentence = "The quick brown fox jumps over the lazy dog; \\\"quoted\\\" text,\\n \
                    numbers 12345 and unicode caf\u{e9} na\u{ef}ve. ";
    let mut messages = Vec::new();
    let mut total = 0;
    let mut turn = 0;
    while total < size.saturating_sub(200) {
        let words = (size - total).clamp(64, 2000);
        let mut text = String::with_capacity(words + sentence.len());
        while text.len() < words {
            text.push_str(sentence);
        }
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        let msg = format!(r#"{{"role":"{role}","content":"{text}"}}"#);
        total += msg.len() + 1;
        messages.push(msg);
        turn += 1;
    }
    format!(
        r#"{{"messages":[{}],"temperature":0.7,"max_tokens":1024,"model":"gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}}}}"#,
        messages.join(",")
    )
    .into_bytes()
}

/// The same with source code for content: an escape every few bytes (`\n`, `\"`, `\\`).
fn code_body(size: usize) -> Vec<u8> {
    let line = r#"    if (s[i] == '\\') {\n        out.push_str(\"\\\\\");\n    }\n"#;
    let mut text = String::with_capacity(size);
    while text.len() < size.saturating_sub(200) {
        text.push_str(line);
    }
    format!(
        r#"{{"messages":[{{"role":"user","content":"{text}"}}],"model":"gpt-4o-mini","stream":true}}"#
    )
    .into_bytes()
}

fn inspection(c: &mut Criterion) {
    let mut g = c.benchmark_group("inspect");
    let bodies = [
        ("1KB", chat_body(1 << 10)),
        ("100KB", chat_body(100 << 10)),
        ("10MB", chat_body(10 << 20)),
        ("10MB_code", code_body(10 << 20)),
    ];
    for (name, body) in bodies {
        let size = body.len();
        let parsed = ChatRequest::parse(&body).unwrap_or_else(|e| panic!("bench body: {e:?}"));
        assert_eq!(parsed.model, "gpt-4o-mini");
        assert!(parsed.stream);
        if size >= 1 << 20 {
            g.sample_size(20);
        }
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse", name), &body, |b, body| {
            b.iter(|| black_box(ChatRequest::parse(black_box(body))))
        });
        // The serde_json walk `parse` replaced (kept for the differential tests): the
        // before/after comparison within one run.
        g.bench_with_input(
            BenchmarkId::new("parse_serde_json", name),
            &body,
            |b, body| b.iter(|| black_box(ChatRequest::parse_reference(black_box(body)))),
        );
        // Baselines: the same bytes copied once, into a fresh allocation (what receiving the
        // body into a buffer costs) and into a buffer that already exists (memcpy alone).
        g.bench_with_input(BenchmarkId::new("copy_alloc", name), &body, |b, body| {
            b.iter(|| black_box(black_box(body.as_slice()).to_vec()))
        });
        let mut dst = vec![0u8; body.len()];
        g.bench_with_input(BenchmarkId::new("copy_memcpy", name), &body, |b, body| {
            b.iter(|| {
                dst.copy_from_slice(black_box(body));
                black_box(&dst);
            })
        });
        // The validation every parse starts with, alone: std's (which the serde_json walk
        // used) and the SIMD one `parse` uses.
        g.bench_with_input(BenchmarkId::new("utf8_check", name), &body, |b, body| {
            b.iter(|| black_box(std::str::from_utf8(black_box(body)).is_ok()))
        });
        g.bench_with_input(
            BenchmarkId::new("utf8_check_simd", name),
            &body,
            |b, body| b.iter(|| black_box(simdutf8::basic::from_utf8(black_box(body)).is_ok())),
        );
    }
    g.finish();
}

/// An OpenAI stream of `chunks` content chunks, as the mock (and OpenAI) sends it.
fn openai_stream(chunks: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..chunks {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn sse_parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_parser");
    let stream = openai_stream(256);
    let events = 257u64;
    g.throughput(Throughput::Bytes(stream.len() as u64));
    // Whole stream in one push; then in 64-byte and 1,460-byte (one TCP segment) pieces,
    // so most lines are cut by a chunk boundary.
    for piece in [usize::MAX, 1460, 64] {
        let name = if piece == usize::MAX {
            "whole".to_owned()
        } else {
            format!("pieces_of_{piece}")
        };
        g.bench_with_input(
            BenchmarkId::new("openai_stream_256", name),
            &stream,
            |b, s| {
                let mut out = Vec::with_capacity(events as usize);
                b.iter(|| {
                    let mut parser = SseParser::new();
                    out.clear();
                    for chunk in s.chunks(piece.min(s.len())) {
                        parser
                            .push(black_box(chunk), &mut out)
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    assert_eq!(out.len() as u64, events);
                    black_box(&out);
                })
            },
        );
    }
    g.finish();
}

fn anthropic_events(deltas: usize) -> Vec<SseEvent> {
    let ev = |name: &str, data: String| SseEvent {
        event: Some(name.to_owned()),
        data,
    };
    let mut v = vec![
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}"#.to_owned(),
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                .to_owned(),
        ),
    ];
    for i in 0..deltas {
        v.push(ev(
            "content_block_delta",
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"word{i} "}}}}"#
            ),
        ));
    }
    v.push(ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.to_owned(),
    ));
    v.push(ev(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":300}}"#.to_owned(),
    ));
    v.push(ev("message_stop", r#"{"type":"message_stop"}"#.to_owned()));
    v
}

fn stream_translation(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_stream");
    // One text delta into a started stream: the event almost every streamed token is.
    let events = anthropic_events(1);
    let delta = &events[2];
    g.throughput(Throughput::Elements(1));
    g.bench_function("text_delta_event", |b| {
        let mut t = AnthropicToOpenAi::new(false, 1_700_000_000, "claude");
        let mut out = BytesMut::with_capacity(4096);
        t.on_event(&events[0], &mut out);
        t.on_event(&events[1], &mut out);
        b.iter(|| {
            out.clear();
            t.on_event(black_box(delta), &mut out);
            black_box(&out);
        })
    });
    // A whole 256-token stream, start to finish, per event.
    let events = anthropic_events(256);
    g.throughput(Throughput::Elements(events.len() as u64));
    for include_usage in [false, true] {
        g.bench_function(
            BenchmarkId::new(
                "stream_256_deltas",
                format!("include_usage={include_usage}"),
            ),
            |b| {
                b.iter_batched_ref(
                    || BytesMut::with_capacity(128 * 1024),
                    |out| {
                        let mut t = AnthropicToOpenAi::new(include_usage, 1_700_000_000, "claude");
                        for e in &events {
                            t.on_event(black_box(e), out);
                        }
                        t.on_end(out);
                        black_box(out);
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

/// An OpenAI answer of about `content` bytes of text (prose with a `\n` every line and a
/// quoted word now and then, as answers have), or a tool call whose arguments are JSON in a
/// string (an escaped quote every few bytes), `usage` last as OpenAI writes it.
fn openai_answer(content: usize, tool_call: bool) -> Vec<u8> {
    let line =
        r#"Paris is the capital of France; its \"Ville Lumi\u00e8re\" name dates from 1828.\n"#;
    let text = line.repeat(content / line.len() + 1);
    let message = if tool_call {
        let args = r#"{\"location\":\"Paris, FR\",\"unit\":\"celsius\",\"days\":[1,2,3]}"#;
        format!(
            r#"{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_abc","type":"function","function":{{"name":"get_weather","arguments":"{}"}}}}],"refusal":null}}"#,
            args.repeat(content / args.len() + 1)
        )
    } else {
        format!(r#"{{"role":"assistant","content":"{text}","refusal":null}}"#)
    };
    format!(
        r#"{{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4.1-2025-04-14","choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default"}}"#
    )
    .into_bytes()
}

/// Finding an answer's `usage`, which every plain passthrough request does.
fn usage_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("usage_find");
    for (name, body) in [
        ("short", openai_answer(40, false)),
        ("4KB_text", openai_answer(4 << 10, false)),
        ("4KB_tool_call", openai_answer(4 << 10, true)),
    ] {
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("bench body: {e}"));
        assert!(parsed["usage"].is_object());
        assert!(matches!(
            json_member::find(&body, "usage"),
            json_member::Member::At(_)
        ));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| black_box(json_member::find(black_box(body), "usage")))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    key_selection,
    inspection,
    usage_scan,
    sse_parser,
    stream_translation
);
criterion_main!(benches);
