//! Upstream hosts and their breaker. A refused connection, a DNS or TLS failure or a connect
//! timeout says nothing about the key that was about to be used: it is the host's. Such
//! failures count here, per origin (`scheme://host:port`), never on a key.
//!
//! After `HostPolicy::threshold` consecutive connection failures the breaker opens: the
//! host's keys are skipped for `open_base`, doubling on each failed probe up to `open_max`.
//! When that time is over, one request is let through as a probe (others keep skipping the
//! host for `open_base`, in case the probe hangs); any answer from the host closes the
//! breaker, a connection failure opens it again for longer.
//!
//! Reading a closed breaker is one atomic load on the request path; the lock is only taken
//! on failures and probes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::health::duration_ms;

/// When a host's breaker opens, and for how long.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Consecutive connection failures that open the breaker.
    pub threshold: u32,
    /// The first open period.
    pub open_base: Duration,
    /// The longest open period, however many probes failed.
    pub open_max: Duration,
    /// How long a probe has to connect before another request may probe: the connect
    /// timeout and a margin, so that a host that swallows connects gets one probe at a time.
    pub probe_window: Duration,
}

impl HostPolicy {
    /// Opening for `open_base` first, doubling up to 30 s (or `open_base`, if longer), with
    /// probes that may take `connect_timeout`.
    pub fn new(open_base: Duration, connect_timeout: Duration) -> HostPolicy {
        HostPolicy {
            threshold: 3,
            open_base,
            open_max: open_base.max(Duration::from_secs(30)),
            probe_window: connect_timeout + Duration::from_secs(1),
        }
    }
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy::new(Duration::from_secs(1), Duration::from_secs(10))
    }
}

/// A host as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    Up,
    /// Skipped until `until_ms`.
    Open {
        until_ms: u64,
    },
    /// The open period is over: the next request probes, or a probe is under way.
    HalfOpen,
}

impl HostState {
    pub fn label(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Open { .. } => "open",
            HostState::HalfOpen => "half_open",
        }
    }
}

/// A change of a host's breaker, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostTransition {
    Opened(Duration),
    Closed,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive: u32,
    /// Open periods in a row, for the doubling; 0 while closed.
    opens: u32,
    /// A request was let through to test the host.
    probing: bool,
    /// When the current open period ends (0: closed), for `state`.
    open_until_ms: u64,
}

/// One upstream origin shared by the keys whose base URL points at it.
#[derive(Debug)]
pub struct Host {
    /// `scheme://host:port`, without user info: the host's name in logs, metrics and
    /// `/admin/keys`.
    pub label: &'static str,
    /// Its place in the pool's host list, for a request's record of failed hosts.
    pub index: usize,
    /// How long a probe has before another request may probe.
    probe_window_ms: u64,
    /// 0 while closed; otherwise no request is sent before this time (the open period, or
    /// the window of a probe under way).
    blocked_until_ms: AtomicU64,
    /// Anything for a success to reset: keeps the success path to one load.
    failing: AtomicBool,
    breaker: Mutex<Breaker>,
    pub connect_failures: AtomicU64,
    pub opened: AtomicU64,
}

impl Host {
    pub fn new(label: &'static str, index: usize, policy: &HostPolicy) -> Host {
        Host {
            label,
            index,
            probe_window_ms: duration_ms(policy.probe_window),
            blocked_until_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            breaker: Mutex::default(),
            connect_failures: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the host is up, or open, or half-open with no probe under way.
    pub fn available(&self, now_ms: u64) -> bool {
        self.blocked_until(now_ms).is_none()
    }

    /// Whether a request may go to this host now. A half-open host lets one caller through
    /// as its probe and blocks the others for the probe's window.
    pub fn admit(&self, now_ms: u64) -> bool {
        let until = self.blocked_until_ms.load(Relaxed);
        if until == 0 {
            return true;
        }
        if until > now_ms {
            return false;
        }
        let mut breaker = self.breaker();
        // Looked at again under the lock: the breaker may have closed (a probe connected) or
        // another request may have taken the probe since.
        match self.blocked_until_ms.load(Relaxed) {
            0 => return true,
            until if until > now_ms => return false,
            _ => {}
        }
        breaker.probing = true;
        self.blocked_until_ms
            .store(now_ms + self.probe_window_ms, Relaxed);
        true
    }

    /// When the host will next take a request, if it is blocked now.
    pub fn blocked_until(&self, now_ms: u64) -> Option<u64> {
        let until = self.blocked_until_ms.load(Relaxed);
        (until > now_ms).then_some(until)
    }

    pub fn state(&self, now_ms: u64) -> HostState {
        if self.blocked_until_ms.load(Relaxed) == 0 {
            return HostState::Up;
        }
        let breaker = self.breaker();
        if breaker.probing || breaker.open_until_ms <= now_ms {
            HostState::HalfOpen
        } else {
            HostState::Open {
                until_ms: breaker.open_until_ms,
            }
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        if !self.failing.load(Relaxed) {
            return 0;
        }
        self.breaker().consecutive
    }

    /// The host answered (whatever the status): it is reachable.
    pub fn record_success(&self) -> Option<HostTransition> {
        if !self.failing.load(Relaxed) {
            return None;
        }
        let mut breaker = self.breaker();
        let was_open = breaker.opens > 0;
        *breaker = Breaker::default();
        self.blocked_until_ms.store(0, Relaxed);
        self.failing.store(false, Relaxed);
        was_open.then_some(HostTransition::Closed)
    }

    /// No connection could be made.
    pub fn record_failure(&self, now_ms: u64, policy: &HostPolicy) -> Option<HostTransition> {
        self.connect_failures.fetch_add(1, Relaxed);
        let mut breaker = self.breaker();
        self.failing.store(true, Relaxed);
        breaker.consecutive = breaker.consecutive.saturating_add(1);
        let open = if breaker.probing {
            breaker.probing = false;
            true
        } else {
            // A request that was on its way when the breaker opened does not extend it.
            breaker.opens == 0 && breaker.consecutive >= policy.threshold
        };
        if !open {
            return None;
        }
        breaker.opens = breaker.opens.saturating_add(1);
        let period = policy
            .open_base
            .saturating_mul(1 << (breaker.opens - 1).min(16))
            .min(policy.open_max);
        breaker.open_until_ms = now_ms + duration_ms(period);
        self.blocked_until_ms.store(breaker.open_until_ms, Relaxed);
        self.opened.fetch_add(1, Relaxed);
        Some(HostTransition::Opened(period))
    }

    /// Back to up, as an operator asked.
    pub fn reset(&self) {
        *self.breaker() = Breaker::default();
        self.blocked_until_ms.store(0, Relaxed);
        self.failing.store(false, Relaxed);
    }
}

/// `scheme://host:port` of an upstream URL, without user info (which may hold a secret).
pub fn origin_label(uri: &http::Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    let host = authority.host();
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy {
            threshold: 3,
            open_base: Duration::from_millis(1000),
            open_max: Duration::from_millis(3000),
            probe_window: Duration::from_millis(1000),
        }
    }

    #[test]
    fn opens_after_the_threshold_and_skips_the_host_until_the_probe() {
        let p = policy();
        let host = Host::new("http://h:1", 0, &p);
        assert_eq!(host.record_failure(10, &p), None);
        assert_eq!(host.record_failure(11, &p), None);
        assert!(host.admit(12), "still up below the threshold");
        assert_eq!(
            host.record_failure(12, &p),
            Some(HostTransition::Opened(Duration::from_millis(1000)))
        );
        assert_eq!(host.state(13), HostState::Open { until_ms: 1012 });
        assert!(!host.admit(13) && !host.available(1011));
        // A request that was already on its way fails too: the period is not extended.
        assert_eq!(host.record_failure(14, &p), None);
        assert_eq!(host.state(1012), HostState::HalfOpen);
        assert!(
            host.admit(1012),
            "the first request after the period probes"
        );
        assert!(!host.admit(1013), "only one probe at a time");
        assert_eq!(host.consecutive_failures(), 4);
    }

    #[test]
    fn a_failed_probe_doubles_the_period_up_to_the_cap_and_an_answer_closes_it() {
        let p = policy();
        let host = Host::new("http://h:1", 0, &p);
        for t in 0..3 {
            host.record_failure(t, &p);
        }
        let mut now = 2;
        for expected in [2000, 3000, 3000] {
            now += 5000;
            assert!(host.admit(now));
            assert_eq!(
                host.record_failure(now, &p),
                Some(HostTransition::Opened(Duration::from_millis(expected)))
            );
        }
        assert_eq!(host.opened.load(Relaxed), 4);
        now += 5000;
        assert!(host.admit(now));
        assert_eq!(host.record_success(), Some(HostTransition::Closed));
        assert_eq!(host.state(now), HostState::Up);
        assert_eq!(host.consecutive_failures(), 0);
        assert_eq!(host.record_success(), None, "nothing to reset twice");
        // Closed again: the count starts over.
        assert_eq!(host.record_failure(now, &p), None);
    }

    #[test]
    fn a_probe_that_never_reports_lets_another_through_after_its_window() {
        let p = policy();
        let host = Host::new("http://h:1", 0, &p);
        for t in 0..3 {
            host.record_failure(t, &p);
        }
        assert!(host.admit(1002));
        assert!(!host.admit(2001));
        assert!(host.admit(2002), "the abandoned probe's window is over");
    }

    #[test]
    fn success_below_the_threshold_resets_the_count() {
        let p = policy();
        let host = Host::new("http://h:1", 0, &p);
        host.record_failure(1, &p);
        host.record_failure(2, &p);
        assert_eq!(host.record_success(), None);
        host.record_failure(3, &p);
        host.record_failure(4, &p);
        assert_eq!(host.state(5), HostState::Up);
    }

    #[test]
    fn origin_labels_drop_user_info_and_name_the_port() {
        let label = |s: &str| origin_label(&s.parse().expect("uri"));
        assert_eq!(
            label("https://user:secret@api.example.com/v1/chat/completions").as_deref(),
            Some("https://api.example.com:443")
        );
        assert_eq!(
            label("http://127.0.0.1:9000/v1").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(label("http://[::1]/v1").as_deref(), Some("http://[::1]:80"));
        assert_eq!(label("/relative"), None);
    }
}
