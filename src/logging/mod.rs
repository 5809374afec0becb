//! Logging: the subscriber keyrelay installs, and the parts of it written for the request
//! path, where every request logs one line.
//!
//! - `writer`: a buffer that a background thread writes out in batches.
//! - `fields`: the text line's fields, as tracing-subscriber writes them but cheaper.
//! - `json`: the JSON line, as tracing-subscriber writes it but cheaper.
//! - `time`: the line's timestamp, with the date worked out once per second.

mod fields;
mod json;
#[cfg(test)]
mod test_sink;
mod time;
mod writer;

pub use fields::TextFields;
pub use json::JsonLines;
pub use time::CachedSystemTime;
pub use writer::{FlushGuard, LogWriter};

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber (`RUST_LOG`, default `keyrelay=info`) writing `format`
/// lines to stderr through the log thread. Keep the guard: dropping it writes out what is
/// buffered and stops the thread.
pub fn init(format: LogFormat) -> std::io::Result<FlushGuard> {
    let (writer, guard) = LogWriter::spawn(std::io::stderr())?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("keyrelay=info"));
    // Colour codes only for a terminal: in files and collectors they are noise and cost.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_timer(CachedSystemTime)
        .fmt_fields(TextFields)
        .with_writer(writer);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().event_format(JsonLines::new()).init(),
    }
    Ok(guard)
}
