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
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
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
    /// The payloads of `chunk` when it is nothing but whole one-line `data: ` events in
    /// valid UTF-8 (`data: {…}\n\n`, as OpenAI-compatible upstreams write every event) and
    /// nothing of an earlier chunk is pending: the events `push` would give, read in place
    /// instead of copied out. `None` leaves the chunk to `push`.
    pub fn whole_data_events<'a>(&mut self, chunk: &'a [u8]) -> Option<DataPayloads<'a>> {
        // Nothing since the last event: no partial line, no field of the next event (which
        // would count in `event_bytes`).
        let clean = !self.failed && self.event_bytes == 0 && self.line.is_empty();
        if !clean || !is_whole_data_events(chunk) {
            return None;
        }
        self.at_start = false;
        // A `\r` that ended the last chunk: the next byte is not its `\n`.
        self.skip_lf = false;
        Some(DataPayloads { rest: chunk })
    }

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
        let (field, value) = match memchr::memchr(b':', line) {
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
                // With room for the `\n`: the buffer is handed to each event and starts
                // empty, and growing it by one byte would reallocate and copy the line.
                self.data.reserve(value.len() + 1);
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
/// Whether `chunk` is one or more `data: <payload>\n\n` events, payloads without line
/// ends, all in valid UTF-8. A pass of its own (`DataPayloads` walks the events again):
/// the answer is needed before any event is handed out, and the walk is two `memchr`s.
fn is_whole_data_events(chunk: &[u8]) -> bool {
    let mut rest = chunk;
    while !rest.is_empty() {
        let Some(payload) = rest.strip_prefix(b"data: ") else {
            return false;
        };
        let Some(end) = memchr::memchr2(b'\n', b'\r', payload) else {
            return false;
        };
        if payload.get(end..end + 2) != Some(b"\n\n") {
            return false;
        }
        rest = &payload[end + 2..];
    }
    !chunk.is_empty() && simdutf8::basic::from_utf8(chunk).is_ok()
}

/// The payloads of a chunk `is_whole_data_events` accepted.
pub struct DataPayloads<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DataPayloads<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let payload = self.rest.strip_prefix(b"data: ")?;
        let end = memchr::memchr(b'\n', payload)?;
        self.rest = payload.get(end + 2..).unwrap_or_default();
        payload.get(..end)
    }
}

fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
