//! The JSON log line (`--log-format json`), written directly: the same text as
//! tracing-subscriber's JSON format with the event's fields flattened and no current span
//! (how `init` configures it; the tests compare the two), at about a third of its cost.
//!
//! tracing-subscriber serialises each line through serde_json's map serializer and a
//! `format!`-style adaptor per field, about 25,000 instructions for the request line. Here
//! keys and strings are escaped by serde_json's rules and written straight out, integers
//! with `itoa` and floats with `zmij`, as serde_json itself writes them. Lines inside a span
//! and events forwarded from the `log` crate go to tracing-subscriber's own formatter.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::CachedSystemTime;

/// `FormatEvent` for JSON lines; see the module documentation.
pub struct JsonLines {
    /// tracing-subscriber's formatter, configured alike, for what is not written here.
    stock: Format<Json, CachedSystemTime>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines {
            stock: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_timer(CachedSystemTime),
        }
    }
}

impl Default for JsonLines {
    fn default() -> Self {
        JsonLines::new()
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let in_span = event.parent().is_some() || ctx.lookup_current().is_some();
        if in_span || event.normalized_metadata().is_some() {
            return self.stock.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        CachedSystemTime.format_time(&mut Writer::new(&mut Escaped(&mut writer)))?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Each field as `,"name":value`.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| write_json_str(self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| write_json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes what is not finite as `null`.
        self.entry(field, |w| {
            if value.is_finite() {
                w.write_str(zmij::Buffer::new().format_finite(value))
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn write_json_str(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Writes through serde_json's string escapes: `"` and `\`, the short forms of backspace,
/// form feed, newline, carriage return and tab, `\u00XX` for other control characters.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            return self.0.write_str(s);
        }
        let mut plain = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\x08' => "\\b",
                b'\x0c' => "\\f",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", b)?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logging::test_sink::Sink;
    use proptest::prelude::*;

    /// The lines `emit` logs through `format`, with the timestamps blanked out (the two
    /// formatters read the clock at different moments).
    fn lines<F>(format: F, emit: &dyn Fn()) -> String
    where
        F: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::JsonFields>
            + Send
            + Sync
            + 'static,
    {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .event_format(format)
            .with_writer(sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = sink.text();
        text.lines()
            .map(|line| {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                v["timestamp"] = "T".into();
                // Byte for byte, apart from the timestamp.
                let at = line.find("\"level\"").unwrap();
                format!("{}|{}", v["timestamp"], &line[at..])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn same_as_stock(emit: &dyn Fn()) -> String {
        let ours = lines(JsonLines::new(), emit);
        assert_eq!(ours, lines(JsonLines::new().stock, emit));
        ours
    }

    #[test]
    fn the_request_line_reads_as_tracing_subscribers() {
        let out = same_as_stock(&|| {
            tracing::info!(
                request_id = %"kr-1", caller = "-", endpoint = "chat_completions",
                model = "gpt\"4\n…\u{1}", key = "openai…Y_1", attempts = %"k1:success:200",
                status = 200u16, duration_ms = 1.25f64, ttfb_ms = 0.5f64, big = 1e300f64,
                tiny = 1e-7f64, nan = f64::NAN, prompt_tokens = Some(3u64),
                completion_tokens = None::<u64>, delta = -4i64, complete = true,
                r#type = "x", "request"
            );
        });
        assert!(
            out.contains(r#""message":"request","request_id":"kr-1""#),
            "{out}"
        );
        assert!(out.contains(r#""model":"gpt\"4\n…\u0001""#), "{out}");
    }

    #[test]
    fn other_events_read_as_tracing_subscribers() {
        same_as_stock(&|| tracing::warn!("plain \x1b[31m message"));
        same_as_stock(&|| {
            let e = std::io::Error::other("broken \x07 pipe");
            tracing::warn!(error = %e, detail = ?e, "upstream stream ended early");
        });
        same_as_stock(&|| tracing::info!(message = "named", n = 1u64));
        same_as_stock(&|| tracing::info!(n = 1u64));
        same_as_stock(&|| {
            let span = tracing::info_span!("outer", id = 7u64);
            let _in = span.enter();
            tracing::info!(inside = true, "in a span");
        });
    }

    proptest! {
        #[test]
        fn any_field_reads_as_tracing_subscribers(s in any::<String>(), f in any::<f64>()) {
            let s = s.as_str();
            same_as_stock(&|| tracing::info!(field = s, float = f, debug = ?s, "m"));
        }
    }
}
