//! Incremental Server-Sent Events parser, per the WHATWG HTML "event stream interpretation"
//! rules (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
//!
//! It runs on every byte an upstream streams, so it is written by hand for that path: one
//! scan per chunk for line ends, no allocation per byte or per line (a line that fits in one
//! chunk is parsed in place; only a line cut by a chunk boundary is copied, once), and
//! amortised O(n) in the input however it is split. The one allocation per dispatched event
//! is the `String` the event owns.
//!
//! Rules implemented, all independent of how the input is split into chunks:
//! - Lines end in `\n`, `\r\n` or `\r`; a `\r` ending one chunk and a `\n` starting the next
//!   are one line end.
//! - A UTF-8 byte-order mark at the very start of the stream is skipped.
//! - `field: value` — one leading space of the value is stripped; a line without `:` is a
//!   field with an empty value. `data` values are joined with `\n`; `event` sets the type
//!   (the last one in an event wins); `id`, `retry` and unknown fields are ignored.
//! - Lines starting with `:` are comments (keep-alives such as `: OPENROUTER PROCESSING`).
//! - A blank line dispatches the event; an event without any `data` line is not dispatched.
//!   A `data:` line with an empty value does count: it dispatches an event with empty data.
//! - An empty `event:` value means "no type" (`SseEvent::event == None`), which the spec
//!   reports as the default type `message`.

use super::SseEvent;

/// Upper bound on one event: the raw bytes of its lines (field names, comments and all,
/// line ends excluded). Bounds the parser's memory when an upstream never sends a line end
/// or a blank line; real events are a few KiB.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The stream cannot be parsed any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew past the limit without being dispatched.
    #[error("an upstream server-sent event is larger than the limit of {limit} bytes")]
    EventTooLarge { limit: usize },
}

/// Incremental SSE parser: feed it chunks with [`SseParser::push`], end with
/// [`SseParser::finish`].
#[derive(Debug)]
pub struct SseParser {
    /// The start of a line cut by a chunk boundary. Empty when the last chunk ended at a
    /// line end (a carried line always has at least one byte).
    line: Vec<u8>,
    /// The data buffer: each `data` value followed by `\n`, as in the spec; the final `\n`
    /// is removed at dispatch. Empty means "no data line yet".
    data: Vec<u8>,
    /// The event type buffer.
    event: Vec<u8>,
    /// Raw bytes of the complete lines of the event being assembled, for the size limit.
    event_bytes: usize,
    /// The previous chunk ended in `\r`: a `\n` starting the next chunk belongs to it.
    skip_lf: bool,
    /// No line has completed yet, so the next one may start with the BOM.
    at_start: bool,
    limit: usize,
    /// The limit was exceeded; the stream is unusable and every later push fails.
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_max_event_bytes(MAX_EVENT_BYTES)
    }

    /// A parser with a different event size limit than [`MAX_EVENT_BYTES`].
    pub fn with_max_event_bytes(limit: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            event_bytes: 0,
            skip_lf: false,
            at_start: true,
            limit,
            failed: false,
        }
    }

    /// Parses one chunk, appending every event it completes to `out`.
    ///
    /// On error, `out` holds the events completed before the oversized one; the parser then
    /// refuses all further input (the rest of the stream cannot be framed reliably).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut rest = chunk;
        if self.skip_lf {
            if let Some((first, tail)) = rest.split_first() {
                if *first == b'\n' {
                    rest = tail;
                }
                self.skip_lf = false;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let Some((line_part, after)) = rest.split_at_checked(pos) else {
                break; // unreachable: `pos` is an index of `rest`
            };
            let Some((&terminator, mut tail)) = after.split_first() else {
                break; // unreachable: `after` starts with the line end found
            };
            if terminator == b'\r' {
                match tail.split_first() {
                    Some((b'\n', t)) => tail = t,
                    Some(_) => {}
                    // The `\n` of a `\r\n` may be the first byte of the next chunk.
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.complete_line(line_part, out)?;
            } else {
                self.check_size(self.line.len() + line_part.len())?;
                self.line.extend_from_slice(line_part);
                // Taken out and put back so the buffer keeps its capacity.
                let line = std::mem::take(&mut self.line);
                let result = self.complete_line(&line, out);
                self.line = line;
                self.line.clear();
                result?;
            }
            rest = tail;
        }
        if !rest.is_empty() {
            self.check_size(self.line.len() + rest.len())?;
            self.line.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Ends the stream. Per the spec, an event whose blank line never arrived is incomplete
    /// and is discarded, not dispatched, so this never appends to `out`: an upstream that
    /// stops mid-event has truncated its stream, and the translator must report that rather
    /// than act on half an event. Callers that want to know call [`SseParser::has_partial`]
    /// first. The parser is reset and can parse a new stream.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        let _ = out;
        *self = Self::with_max_event_bytes(self.limit);
    }

    /// Whether bytes of an undispatched event are buffered: a line without its line end, or
    /// `data` lines awaiting their blank line.
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || !self.data.is_empty()
    }

    fn error(&self) -> SseError {
        SseError::EventTooLarge { limit: self.limit }
    }

    /// Fails if the current event plus a line of `line_len` bytes exceeds the limit. The
    /// same sum is checked for a partial line and for the completed line, so where the
    /// input is split does not change whether (or after which events) it fails.
    fn check_size(&mut self, line_len: usize) -> Result<(), SseError> {
        if self.event_bytes.saturating_add(line_len) > self.limit {
            self.failed = true;
            // Nothing buffered is usable any more; free it now.
            self.line = Vec::new();
            self.data = Vec::new();
            self.event = Vec::new();
            return Err(self.error());
        }
        Ok(())
    }

    fn complete_line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.check_size(raw.len())?;
        self.event_bytes += raw.len();
        let mut line = raw;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let Some((&first, _)) = line.split_first() else {
            self.dispatch(out);
            return Ok(());
        };
        if first == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => match line.split_at_checked(colon) {
                Some((field, after)) => {
                    let value = after.get(1..).unwrap_or_default();
                    (field, value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            },
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            // `id` and `retry` only matter to a reconnecting EventSource; a proxy never
            // reconnects a model response mid-stream. Unknown fields are ignored by the spec.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        self.event_bytes = 0;
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop(); // the `\n` after the last data line
        let data = into_string(std::mem::take(&mut self.data));
        let event = if self.event.is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(&self.event).into_owned())
        };
        self.event.clear();
        out.push(SseEvent { event, data });
    }
}

/// Invalid UTF-8 becomes U+FFFD rather than an error: the spec decodes the whole stream
/// that way (its line-end and field bytes are ASCII, so decoding per field gives the same
/// text), and one bad byte from an upstream should cost one character, not the rest of the
/// response. The result is always valid UTF-8, so the JSON parser downstream sees no
/// encoding errors either. Valid input (the normal case) is moved, not copied.
fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
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
}
