//! The fields of a text log line, written directly: the same text as tracing-subscriber's
//! `DefaultFields` (the tests compare the two), at a fraction of its cost.
//!
//! Every request writes one line with a dozen fields. `DefaultFields` sends each field
//! through `write!` with styling wrappers that are empty without a terminal, and escapes
//! strings through `char::escape_debug`, whose printable-character tables cost about a
//! thousand instructions for a character such as the `…` of a key label. Together that
//! was a sixth of keyrelay's own instructions per request. Here names and values are
//! written as strings, numbers with `itoa`, and strings are copied as they are when nothing
//! in them needs escaping; anything else takes the standard library's path, so the output
//! stays exactly the same.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// `FormatFields` for the text format; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes the separator and `name=` for a field whose value is written here; `None`
    /// when the field is not shown or the line has already failed.
    fn named(&mut self, field: &Field) -> Option<()> {
        let name = field.name();
        // `log.` fields are metadata of events from the `log` crate, shown elsewhere.
        if self.result.is_err() || name.starts_with("log.") {
            return None;
        }
        let separator = if std::mem::replace(&mut self.first, false) {
            ""
        } else {
            " "
        };
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = self
            .writer
            .write_str(separator)
            .and_then(|()| self.writer.write_str(name))
            .and_then(|()| self.writer.write_char('='));
        self.result.is_ok().then_some(())
    }

    /// What is not written here (the message, errors, anything on a terminal) goes to
    /// `DefaultVisitor` itself, on the same line.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.first);
        record(&mut default);
        self.result = default.finish();
        // It writes nothing, not even the separator, for the `log.` fields it skips.
        if !field.name().starts_with("log.") {
            self.first = false;
        }
    }
}

/// Each field is written here unless it is the message (shown without its name, in
/// whatever form `DefaultVisitor` gives it) or the line goes to a terminal (where
/// `DefaultVisitor` styles names); those go to `DefaultVisitor`.
macro_rules! record {
    ($self:ident, $field:ident, $delegate:expr, $write:expr) => {
        if $field.name() == "message" || $self.writer.has_ansi_escapes() {
            $self.delegate($field, $delegate);
        } else if $self.named($field).is_some() {
            $self.result = $write;
        }
    };
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        record!(self, field, |d| d.record_str(field, value), {
            write_debug_str(&mut self.writer, value)
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        record!(self, field, |d| d.record_u64(field, value), {
            self.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        record!(self, field, |d| d.record_i64(field, value), {
            self.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        record!(self, field, |d| d.record_bool(field, value), {
            self.writer.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        record!(self, field, |d| d.record_f64(field, value), {
            match thousandths(value) {
                Some(n) => write_thousandths(&mut self.writer, n),
                None => write!(self.writer, "{value:?}"),
            }
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |d| d.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        record!(self, field, |d| d.record_debug(field, value), {
            write!(self.writer, "{value:?}")
        });
    }
}

/// `{:?}` of a string: quoted, with the standard library's escapes. Runs of characters it
/// leaves alone are copied in one piece; only the others go through `escape_debug`.
fn write_debug_str(writer: &mut Writer<'_>, s: &str) -> fmt::Result {
    if s.bytes().all(|b| b.is_ascii() && shown_as_is(b as char)) {
        writer.write_char('"')?;
        writer.write_str(s)?;
        return writer.write_char('"');
    }
    writer.write_char('"')?;
    let mut plain = 0;
    for (at, ch) in s.char_indices() {
        if shown_as_is(ch) {
            continue;
        }
        writer.write_str(&s[plain..at])?;
        // The same escapes as `str`'s Debug for every character but `'`, which is shown
        // as is above.
        write!(writer, "{}", ch.escape_debug())?;
        plain = at + ch.len_utf8();
    }
    writer.write_str(&s[plain..])?;
    writer.write_char('"')
}

/// `value` as a whole number of thousandths, when it is exactly the double nearest to one
/// (durations in milliseconds are logged to the microsecond).
fn thousandths(value: f64) -> Option<u64> {
    // Below 10^9 (11 days in milliseconds) `value * 1000` is within a ten-thousandth of a
    // whole number when it should be one; NaN fails the comparison, -0.0 the sign test.
    if !(0.0..1.0e9).contains(&value) || value.is_sign_negative() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "in range, checked above"
    )]
    let n = (value * 1000.0).round() as u64;
    #[expect(clippy::cast_precision_loss, reason = "n < 2^53: exact")]
    let exact = n as f64 / 1000.0 == value;
    exact.then_some(n)
}

/// What `{:?}` writes for the double nearest to `n / 1000`: the shortest decimal that reads
/// back as that double is `n / 1000` itself, since any other decimal of at most three
/// places is at least 0.001 away, and Debug drops trailing zeros but keeps one place.
fn write_thousandths(writer: &mut Writer<'_>, n: u64) -> fmt::Result {
    let mut whole = itoa::Buffer::new();
    writer.write_str(whole.format(n / 1000))?;
    let mut places = *b".000";
    let mut fraction = n % 1000;
    for digit in places[1..].iter_mut().rev() {
        *digit = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    let kept = places
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(2, |i| i.max(1) + 1);
    writer.write_str(std::str::from_utf8(&places[..kept]).map_err(|_| fmt::Error)?)
}

/// Characters `str`'s Debug never escapes, anywhere in a string: printable ASCII except the
/// quote and backslash, and the printable Latin-1 and general punctuation ranges that
/// appear in labels and model names. (A test checks each one against the standard library.)
fn shown_as_is(ch: char) -> bool {
    matches!(ch, ' '..='~' if ch != '"' && ch != '\\')
        || matches!(ch, '\u{a1}'..='\u{ac}' | '\u{ae}'..='\u{2ff}' | '\u{2010}'..='\u{2027}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logging::test_sink::Sink;
    use proptest::prelude::*;
    use tracing_subscriber::fmt::format::DefaultFields;

    #[test]
    fn every_character_shown_as_is_is_what_debug_shows() {
        for ch in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| shown_as_is(c))
        {
            let s = format!("a{ch}");
            assert_eq!(format!("{s:?}"), format!("\"{s}\""), "U+{:04X}", ch as u32);
            let s = ch.to_string();
            assert_eq!(
                format!("{s:?}"),
                format!("\"{s}\""),
                "U+{:04X} first",
                ch as u32
            );
        }
    }

    /// The line `emit` logs, with the given field formatter and no timestamp.
    fn line<N>(fields: N, ansi: bool, emit: &dyn Fn()) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(fields)
            .without_time()
            .with_ansi(ansi)
            .with_writer(sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        sink.text()
    }

    /// The line, checked to be what `DefaultFields` writes, without and with colours.
    fn same_as_default(emit: &dyn Fn()) -> String {
        let coloured = line(TextFields, true, emit);
        assert_eq!(coloured, line(DefaultFields::new(), true, emit));
        let ours = line(TextFields, false, emit);
        assert_eq!(ours, line(DefaultFields::new(), false, emit));
        ours
    }

    #[test]
    fn the_request_line_reads_as_with_default_fields() {
        let out = same_as_default(&|| {
            tracing::info!(
                request_id = %"kr-1", caller = "-", endpoint = "chat_completions",
                model = "gpt\"4\n…", key = "openai…Y_1", attempts = %"k1:success:200",
                status = 200u16, duration_ms = 1.25f64, ttfb_ms = 0.5f64,
                prompt_tokens = Some(3u64), completion_tokens = None::<u64>,
                delta = -4i64, complete = true, r#type = "x", "request"
            );
        });
        assert!(
            out.contains(r#"request request_id=kr-1 caller="-""#),
            "{out}"
        );
        assert!(out.contains(r#"model="gpt\"4\n…""#), "{out}");
        assert!(out.contains("duration_ms=1.25 "), "{out}");
        assert!(!out.contains("completion_tokens"), "{out}");
    }

    #[test]
    fn messages_and_errors_read_as_with_default_fields() {
        same_as_default(&|| tracing::warn!("plain \x1b[31m message \u{85} with escapes"));
        same_as_default(&|| {
            let e = std::io::Error::other("broken \x07 pipe");
            tracing::warn!(error = %e, detail = ?e, "upstream stream ended early");
        });
        same_as_default(&|| tracing::info!(message = "named message field", n = 1u64));
        same_as_default(&|| tracing::info!(message = 7u64, flag = false, n = -1i64));
        same_as_default(&|| tracing::info!(first = "\u{301}accent first", "x"));
        same_as_default(&|| tracing::info!(inner = "e\u{301} \u{2028} \u{0} \t '", "x"));
    }

    fn thousandths_text(v: f64) -> Option<String> {
        let n = thousandths(v)?;
        let mut s = String::new();
        write_thousandths(&mut Writer::new(&mut s), n).unwrap();
        Some(s)
    }

    #[test]
    fn milliseconds_read_as_debug_of_the_double() {
        for v in [
            0.0, 1.0, 0.001, 0.01, 0.1, 0.5, 1.25, 51.475, 71.07, 100.0, 12345.678,
        ] {
            assert_eq!(thousandths_text(v), Some(format!("{v:?}")), "{v}");
        }
        for v in [
            0.0001,
            1.0 / 3.0,
            -1.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            1.0e9,
        ] {
            assert_eq!(thousandths(v), None, "{v}");
        }
    }

    proptest! {
        #[test]
        fn any_count_of_thousandths_reads_as_debug(n in 0u64..1_000_000_000_000) {
            let v = n as f64 / 1000.0;
            prop_assert_eq!(thousandths_text(v), Some(format!("{v:?}")));
        }

        #[test]
        fn any_double_is_written_as_debug_writes_it(v in any::<f64>()) {
            let written = thousandths_text(v).unwrap_or_else(|| format!("{v:?}"));
            prop_assert_eq!(written, format!("{v:?}"));
        }

        #[test]
        fn any_string_field_reads_as_with_default_fields(s in any::<String>(), m in any::<String>()) {
            let s = s.as_str();
            let m = m.as_str();
            same_as_default(&|| tracing::info!(field = s, message = m));
        }
    }
}
