//! Tests of `sse`, kept beside it so the module itself stays short.
use super::*;
use proptest::prelude::*;

fn ev(event: Option<&str>, data: &str) -> SseEvent {
    SseEvent {
        event: event.map(str::to_owned),
        data: data.to_owned(),
    }
}

fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c, &mut out).expect("push");
    }
    p.finish(&mut out);
    out
}

fn parse(input: &[u8]) -> Vec<SseEvent> {
    parse_chunks(&[input])
}

/// Parses `input` cut at `cuts` (sorted, in range); returns the events and whether the
/// parser failed.
fn parse_split(
    input: &[u8],
    cuts: &[usize],
    limit: usize,
) -> (Vec<SseEvent>, Option<SseError>, bool) {
    let mut p = SseParser::with_max_event_bytes(limit);
    let mut out = Vec::new();
    let mut err = None;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        if let Err(e) = p.push(&input[start..cut], &mut out) {
            err = Some(e);
        }
        start = cut;
    }
    let partial = p.has_partial();
    p.finish(&mut out);
    (out, err, partial)
}

#[test]
fn all_three_line_ends_are_accepted() {
    for nl in ["\n", "\r\n", "\r"] {
        let input = format!("event: a{nl}data: x{nl}{nl}data: y{nl}{nl}");
        assert_eq!(
            parse(input.as_bytes()),
            [ev(Some("a"), "x"), ev(None, "y")],
            "{nl:?}"
        );
    }
}

#[test]
fn cr_then_lf_in_the_next_chunk_is_one_line_end() {
    // Were the `\n` a second line end, "data: x\r" + "\n" would dispatch at the `\n`
    // and the following line would start a new event.
    let got = parse_chunks(&[b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n"]);
    assert_eq!(got, [ev(None, "x\ny")]);
    // A `\r` then a non-`\n` byte in the next chunk: the `\r` alone ended the line.
    let got = parse_chunks(&[b"data: x\r", b"\r"]);
    assert_eq!(got, [ev(None, "x")]);
    // An empty chunk between the `\r` and the `\n` changes nothing.
    let got = parse_chunks(&[b"data: x\r", b"", b"\n", b"\n"]);
    assert_eq!(got, [ev(None, "x")]);
}

#[test]
fn one_leading_space_is_stripped_and_only_one() {
    let got = parse(b"data:x\n\ndata: x\n\ndata:  x\n\n");
    assert_eq!(got, [ev(None, "x"), ev(None, "x"), ev(None, " x")]);
}

#[test]
fn only_the_first_colon_separates_field_and_value() {
    let got = parse(b"data: {\"a\": \"b:c\"}\n\n");
    assert_eq!(got, [ev(None, "{\"a\": \"b:c\"}")]);
}

#[test]
fn data_lines_are_joined_with_newlines() {
    let got = parse(b"data: a\ndata:\ndata: b\n\n");
    assert_eq!(got, [ev(None, "a\n\nb")]);
}

#[test]
fn event_sets_the_type_last_one_wins_and_resets_per_event() {
    let got = parse(b"event: x\nevent: y\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n");
    assert_eq!(
        got,
        [ev(Some("y"), "1"), ev(None, "2"), ev(None, "3")],
        "the type must not leak into the next event; an empty type is no type"
    );
}

#[test]
fn id_retry_and_unknown_fields_are_ignored() {
    let got = parse(b"id: 7\nretry: 10\nfoo: bar\ndata: x\nid\n\n");
    assert_eq!(got, [ev(None, "x")]);
}

#[test]
fn a_field_without_colon_has_an_empty_value() {
    // `data` alone is a data line with an empty value, so the event is dispatched.
    assert_eq!(parse(b"data\n\n"), [ev(None, "")]);
    assert_eq!(parse(b"data\ndata\n\n"), [ev(None, "\n")]);
}

#[test]
fn e78_comment_lines_are_ignored() {
    let got = parse(b": OPENROUTER PROCESSING\n\n: ping\ndata: {\"a\":1}\n:data: no\n\n:\n\n");
    assert_eq!(got, [ev(None, "{\"a\":1}")]);
}

#[test]
fn an_event_without_data_is_not_dispatched() {
    let got = parse(b"event: ping\n\nid: 3\n\n\n\ndata: x\n\n");
    assert_eq!(
        got,
        [ev(None, "x")],
        "the `event: ping` type must not carry over"
    );
}

#[test]
fn a_leading_bom_is_skipped_once_even_when_split() {
    assert_eq!(parse(b"\xEF\xBB\xBFdata: x\n\n"), [ev(None, "x")]);
    let got = parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]);
    assert_eq!(got, [ev(None, "x")]);
    // Without the skip the first field would be "\u{feff}data", an unknown field.
    let got = parse(b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\ndata: z\n\n");
    assert_eq!(got, [ev(None, "x"), ev(None, "z")], "only at stream start");
}

#[test]
fn an_unterminated_event_is_discarded_at_finish() {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.push(b"data: a\n\ndata: b\n", &mut out).expect("push");
    assert_eq!(out, [ev(None, "a")]);
    assert!(p.has_partial());
    p.finish(&mut out);
    assert_eq!(out, [ev(None, "a")]);
    assert!(!p.has_partial());
    // The same for a final line without its line end.
    let mut p = SseParser::new();
    p.push(b"data: c", &mut out).expect("push");
    assert!(p.has_partial());
    p.finish(&mut out);
    assert_eq!(out, [ev(None, "a")]);
}

#[test]
fn has_partial_is_false_between_events() {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    assert!(!p.has_partial());
    p.push(b"data: a\n\n", &mut out).expect("push");
    assert!(!p.has_partial());
    p.push(b": keep-alive\n", &mut out).expect("push");
    assert!(!p.has_partial(), "a complete comment buffers nothing");
    p.push(b"da", &mut out).expect("push");
    assert!(p.has_partial());
}

#[test]
fn finish_resets_the_parser_for_a_new_stream() {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.push(b"event: x\ndata: a\r", &mut out).expect("push");
    p.finish(&mut out);
    p.push(b"\xEF\xBB\xBF\ndata: b\n\n", &mut out)
        .expect("push");
    assert_eq!(
        out,
        [ev(None, "b")],
        "no leftover type, data, `\\r` or BOM state"
    );
}

#[test]
fn invalid_utf8_in_data_is_replaced_not_fatal() {
    let got = parse(b"data: a\xFFb\xE2\x82\n\n");
    assert_eq!(got, [ev(None, "a\u{FFFD}b\u{FFFD}")]);
    let got = parse_chunks(&[b"data: \xE2\x82", b"\xAC\n\n"]);
    assert_eq!(
        got,
        [ev(None, "€")],
        "a character split across chunks is intact"
    );
}

#[test]
fn an_oversized_event_is_an_error_and_poisons_the_parser() {
    let mut p = SseParser::with_max_event_bytes(16);
    let mut out = Vec::new();
    p.push(b"data: 0123456789\n\n", &mut out).expect("push"); // 16 bytes: at the limit
    assert_eq!(out.len(), 1);
    let err = p
        .push(b"data: 0123456789A\n\n", &mut out)
        .expect_err("must fail");
    assert_eq!(err, SseError::EventTooLarge { limit: 16 });
    assert_eq!(out.len(), 1);
    assert!(p.push(b"data: x\n\n", &mut out).is_err(), "stays failed");
    assert_eq!(out.len(), 1);
    assert!(err.to_string().contains("16 bytes"), "{err}");
}

#[test]
fn the_limit_counts_the_whole_event_not_one_line() {
    let mut p = SseParser::with_max_event_bytes(20);
    let mut out = Vec::new();
    let err = p.push(b"data: 0123456\ndata: 0123456\n", &mut out);
    assert!(err.is_err(), "two 13-byte lines exceed 20");
    let mut p = SseParser::with_max_event_bytes(20);
    p.push(b"data: 0123456\n\ndata: 0123456\n\n", &mut out)
        .expect("push");
    assert_eq!(out.len(), 2, "the count restarts at each blank line");
}

#[test]
fn a_line_that_never_ends_is_bounded() {
    let mut p = SseParser::with_max_event_bytes(1000);
    let mut out = Vec::new();
    let mut failed = false;
    for _ in 0..100 {
        if p.push(&[b'x'; 64], &mut out).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert!(p.line.capacity() < 2000, "buffer freed or bounded");
}

#[test]
fn the_default_limit_is_16_mib() {
    let mut line = b"data: ".to_vec();
    line.resize(MAX_EVENT_BYTES, b'a');
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.push(&line, &mut out).expect("push");
    p.push(b"\n\n", &mut out).expect("push");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data.len(), MAX_EVENT_BYTES - 6);
    line.push(b'a');
    assert_eq!(
        p.push(&line, &mut out),
        Err(SseError::EventTooLarge {
            limit: MAX_EVENT_BYTES
        })
    );
}

/// A plain reference parser over the whole input, written from the spec's wording
/// independently of the incremental one.
fn reference(input: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    // `current` is an unterminated line: not a line, discarded.
    let (mut data, mut event, mut out) = (String::new(), String::new(), Vec::new());
    for line in lines {
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                out.push(SseEvent {
                    event: (!event.is_empty()).then(|| event.clone()),
                    data: std::mem::take(&mut data),
                });
            }
            data.clear();
            event.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => event = value.to_owned(),
            _ => {}
        }
    }
    out
}

fn line_strategy() -> impl Strategy<Value = String> {
    let value = "[a-zA-Z0-9 :{}\",é€😀]{0,12}";
    prop_oneof![
        4 => (Just("data"), prop::bool::ANY, value).prop_map(|(f, sp, v)| format!("{f}:{}{v}", if sp { " " } else { "" })),
        2 => value.prop_map(|v| format!("event: {v}")),
        1 => value.prop_map(|v| format!(":{v}")),
        1 => value.prop_map(|v| format!("id: {v}")),
        1 => Just("retry: 100".to_owned()),
        1 => Just("data".to_owned()),
        1 => value.prop_map(|v| format!("unknown: {v}")),
        3 => Just(String::new()),
    ]
}

/// A valid event stream: optional BOM, lines with mixed line ends, maybe an
/// unterminated tail.
fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::bool::ANY,
        prop::collection::vec((line_strategy(), 0..3usize), 0..24),
        prop::option::of("[a-z: ]{1,8}"),
    )
        .prop_map(|(bom, lines, tail)| {
            let mut s = Vec::new();
            if bom {
                s.extend_from_slice(BOM);
            }
            for (line, nl) in lines {
                s.extend_from_slice(line.as_bytes());
                s.extend_from_slice([&b"\n"[..], b"\r\n", b"\r"][nl]);
            }
            if let Some(t) = tail {
                s.extend_from_slice(t.as_bytes());
            }
            s
        })
}

/// Bytes biased towards the ones the parser branches on, plus invalid UTF-8.
fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(&b"\r\n: datevnx\xEF\xBB\xBF\xFF\x80"[..]),
            any::<u8>(),
        ],
        0..300,
    )
}

fn cuts_strategy(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len, 0..16).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn with_cuts(
    input: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    input.prop_flat_map(|bytes| {
        let len = bytes.len();
        (Just(bytes), cuts_strategy(len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Any split of a valid stream — 1-byte chunks, cuts inside `\r\n` or inside
    /// a multi-byte character — parses to the same events as the whole input, and
    /// those are the events the reference parser finds.
    #[test]
    fn prop_any_split_parses_like_one_piece((input, cuts) in with_cuts(stream_strategy())) {
        let (whole, err, partial) = parse_split(&input, &[], MAX_EVENT_BYTES);
        prop_assert!(err.is_none());
        prop_assert_eq!(&whole, &reference(&input));
        let (split, err, split_partial) = parse_split(&input, &cuts, MAX_EVENT_BYTES);
        prop_assert!(err.is_none());
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(split_partial, partial);
        let bytewise: Vec<usize> = (1..input.len()).collect();
        let (bytes, _, _) = parse_split(&input, &bytewise, MAX_EVENT_BYTES);
        prop_assert_eq!(&bytes, &whole);
    }

    /// (b) Arbitrary bytes never panic, and splitting them changes neither the events
    /// nor whether (and after which event) the size limit trips.
    #[test]
    fn prop_arbitrary_bytes_never_panic((input, cuts) in with_cuts(noisy_bytes()), limit in 1usize..64) {
        let (whole, _, _) = parse_split(&input, &[], MAX_EVENT_BYTES);
        prop_assert_eq!(&whole, &reference(&input));
        prop_assert_eq!(parse_split(&input, &cuts, MAX_EVENT_BYTES), parse_split(&input, &[], MAX_EVENT_BYTES));
        prop_assert_eq!(parse_split(&input, &cuts, limit), parse_split(&input, &[], limit));
    }
}

/// The events of `input` cut at `cuts`, each chunk read in place when it is whole data
/// events and pushed otherwise: what `UsageStrip` does.
fn parse_split_in_place(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let chunk = &input[start..cut];
        match p.whole_data_events(chunk) {
            Some(payloads) => out
                .extend(payloads.map(|d| ev(None, std::str::from_utf8(d).expect("checked utf-8")))),
            None => p.push(chunk, &mut out).expect("push"),
        }
        start = cut;
    }
    p.finish(&mut out);
    out
}

#[test]
fn whole_data_events_are_read_in_place() {
    let mut p = SseParser::new();
    let chunk = b"data: {\"a\":1}\n\ndata: \n\ndata:  two spaces\n\ndata: [DONE]\n\n";
    let payloads: Vec<&[u8]> = p.whole_data_events(chunk).expect("whole").collect();
    assert_eq!(
        payloads,
        [&b"{\"a\":1}"[..], b"", b" two spaces", b"[DONE]"]
    );
    assert_eq!(
        parse_split_in_place(chunk, &[]),
        parse(chunk),
        "the same events as push"
    );
}

#[test]
fn anything_else_is_left_to_push() {
    for chunk in [
        &b""[..],
        b"data: a\n",
        b"data: a\n\ndata: b",
        b"data: a\r\n\r\n",
        b"data:a\n\n",
        b"event: x\ndata: a\n\n",
        b"data: a\ndata: b\n\n",
        b": comment\n\ndata: a\n\n",
        b"data: \xFF\n\n",
        b"\xEF\xBB\xBFdata: a\n\n",
    ] {
        assert!(
            SseParser::new().whole_data_events(chunk).is_none(),
            "{:?}",
            String::from_utf8_lossy(chunk)
        );
    }
    // Nor after a chunk that left something pending.
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for pending in [
        &b"data: a\n"[..],
        b"data: a",
        b"event: x\n",
        b"data: a\r",
        b"id: 1\n",
    ] {
        p.push(pending, &mut out).expect("push");
        assert!(p.whole_data_events(b"data: b\n\n").is_none());
        p.finish(&mut out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Reading whole chunks in place and pushing the rest gives the events `push` alone
    /// gives, for any stream cut anywhere.
    #[test]
    fn prop_in_place_reading_parses_like_push((input, cuts) in with_cuts(prop_oneof![stream_strategy(), data_event_stream(), noisy_bytes()])) {
        let (pushed, err, _) = parse_split(&input, &cuts, MAX_EVENT_BYTES);
        prop_assume!(err.is_none());
        prop_assert_eq!(parse_split_in_place(&input, &cuts), pushed);
    }
}

/// Streams of `data: …\n\n` events, as OpenAI-compatible upstreams write them, with the
/// occasional other line so that some chunks are whole and some are not.
fn data_event_stream() -> impl Strategy<Value = Vec<u8>> {
    let event = prop_oneof![
        8 => "[a-zA-Z0-9 :{}\",é€\r]{0,16}".prop_map(|v| format!("data: {v}\n\n")),
        1 => line_strategy().prop_map(|l| format!("{l}\n")),
    ];
    prop::collection::vec(event, 0..12).prop_map(|events| events.concat().into_bytes())
}
