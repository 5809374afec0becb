//! Timestamps for log lines: tracing-subscriber's `SystemTime` format
//! (`2026-11-25T14:52:52.455603Z`), with the date and time of day worked out once per
//! second instead of once per line. Converting to a calendar date and formatting its six
//! padded numbers cost about 2,000 instructions, a line's worth of fields.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// `FormatTime` with a per-thread cache of the current second's text.
#[derive(Debug, Default, Clone, Copy)]
pub struct CachedSystemTime;

/// The text up to the seconds (`2026-11-25T14:52:52`) of one whole second since the epoch.
struct Second {
    secs: u64,
    text: String,
}

thread_local! {
    static CURRENT: RefCell<Option<Second>> = const { RefCell::new(None) };
}

impl FormatTime for CachedSystemTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
        CURRENT.with_borrow_mut(|current| {
            if current.as_ref().is_none_or(|c| c.secs != secs) {
                *current = second_text(secs).map(|text| Second { secs, text });
            }
            match current {
                Some(second) => write_with_micros(w, &second.text, micros),
                // The clock crossed a second boundary while it was formatted: no cache.
                None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
            }
        })
    }
}

/// tracing-subscriber's own text for second `secs`, cut before the fraction. It can only be
/// asked for the time now, just after `secs` was read from the clock, so its answer is that
/// second or a later one; the seconds field tells which.
fn second_text(secs: u64) -> Option<String> {
    let mut full = String::with_capacity(32);
    tracing_subscriber::fmt::time::SystemTime
        .format_time(&mut Writer::new(&mut full))
        .ok()?;
    let (whole, _) = full.split_once('.')?;
    let seconds_field: u64 = whole.get(whole.len().checked_sub(2)?..)?.parse().ok()?;
    (seconds_field == secs % 60).then(|| whole.to_owned())
}

fn write_with_micros(w: &mut Writer<'_>, second: &str, micros: u32) -> fmt::Result {
    let mut fraction = *b".000000Z";
    let mut n = micros;
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    w.write_str(second)?;
    // ASCII digits, a dot and a `Z`.
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cached() -> String {
        let mut s = String::new();
        CachedSystemTime
            .format_time(&mut Writer::new(&mut s))
            .unwrap();
        s
    }

    fn theirs() -> String {
        let mut s = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut s))
            .unwrap();
        s
    }

    #[test]
    fn reads_as_tracing_subscribers_system_time() {
        // Taken in a row, the two agree up to the microseconds (and a second boundary
        // falling between them, hence a few tries).
        let agree = (0..50).any(|_| {
            let (a, b) = (cached(), theirs());
            a.len() == b.len() && a[..19] == b[..19] && a.ends_with('Z') && a.as_bytes()[19] == b'.'
        });
        assert!(agree, "{} vs {}", cached(), theirs());
    }

    #[test]
    fn the_fraction_is_six_digits() {
        let mut s = String::new();
        write_with_micros(&mut Writer::new(&mut s), "2026-11-25T14:52:52", 4_503).unwrap();
        assert_eq!(s, "2026-11-25T14:52:52.004503Z");
    }

    #[test]
    fn a_second_is_kept_only_when_it_is_the_current_one() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(second_text(now - 1).is_none());
        let kept = (0..50).find_map(|_| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            second_text(now)
        });
        assert_eq!(kept.map(|t| t.len()), Some(19));
    }
}
