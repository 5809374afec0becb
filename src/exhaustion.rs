//! Running out of something on this host: open files, memory, socket buffers, local ports.
//!
//! Such a failure is keyrelay's, never a key's or an upstream's: the request gets 503
//! `proxy_overloaded` with `retry-after`, no key or host is marked, a counter per resource
//! counts it, and a log line says what ran out — at most one per resource every
//! `LOG_EVERY`, with the count of those it did not log, so that a flood of refusals does not
//! also flood the log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::health::{Clock, duration_ms};
use crate::metrics::{Metrics, ResourceLabels};

/// What ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `EMFILE`, `ENFILE`: this process's or the system's open-file table.
    OpenFiles,
    /// `ENOMEM`.
    Memory,
    /// `ENOBUFS`: kernel socket buffers.
    SocketBuffers,
    /// `EADDRNOTAVAIL`, `EAGAIN` on connect: no local port left to connect from.
    LocalPorts,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::OpenFiles,
        Resource::Memory,
        Resource::SocketBuffers,
        Resource::LocalPorts,
    ];

    /// The resource an I/O error says ran out, if it says so.
    pub fn of(e: &std::io::Error) -> Option<Resource> {
        match e.raw_os_error()? {
            libc::EMFILE | libc::ENFILE => Some(Resource::OpenFiles),
            libc::ENOMEM => Some(Resource::Memory),
            libc::ENOBUFS => Some(Resource::SocketBuffers),
            // Linux answers a connect with EADDRNOTAVAIL when every ephemeral port to that
            // destination is taken (EAGAIN on older kernels).
            libc::EADDRNOTAVAIL | libc::EAGAIN => Some(Resource::LocalPorts),
            _ => None,
        }
    }

    /// The first such error in `e`'s chain of causes.
    pub fn in_chain(e: &(dyn std::error::Error + 'static)) -> Option<Resource> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<std::io::Error>().and_then(Resource::of) {
                return Some(r);
            }
            cur = err.source();
        }
        None
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Resource::OpenFiles => "open_files",
            Resource::Memory => "memory",
            Resource::SocketBuffers => "socket_buffers",
            Resource::LocalPorts => "local_ports",
        }
    }

    /// What ran out, in a few words, for clients.
    pub fn short(self) -> &'static str {
        match self {
            Resource::OpenFiles => "open files",
            Resource::Memory => "memory",
            Resource::SocketBuffers => "socket buffers",
            Resource::LocalPorts => "local ports",
        }
    }

    /// For operators: what ran out, and what to do about it.
    pub fn describe(self) -> &'static str {
        match self {
            Resource::OpenFiles => {
                "open files (raise the limit: ulimit -n, systemd's LimitNOFILE=; or lower \
                 --max-concurrency)"
            }
            Resource::Memory => "memory",
            Resource::SocketBuffers => "kernel socket buffers",
            Resource::LocalPorts => {
                "local addresses to connect from (EADDRNOTAVAIL: the ephemeral ports to that \
                 upstream are used up — net.ipv4.ip_local_port_range — or its address family \
                 is disabled on this host)"
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts what ran out and logs it, rate-limited. Shared by the accept loop and the
/// upstream client.
pub struct Exhaustion {
    counters: [Counter; 4],
    /// When each resource was last logged, on `clock` (0: never).
    logged_at_ms: [AtomicU64; 4],
    /// Occurrences since the last line for each resource.
    unlogged: [AtomicU64; 4],
    clock: Clock,
}

impl Exhaustion {
    /// Registers one counter per resource, so every series exists from the start.
    pub fn new(metrics: &Metrics) -> Exhaustion {
        Exhaustion {
            counters: Resource::ALL.map(|r| {
                let labels = ResourceLabels {
                    resource: r.label(),
                };
                metrics.exhaustion.get_or_create(&labels).clone()
            }),
            logged_at_ms: Default::default(),
            unlogged: Default::default(),
            clock: Clock::default(),
        }
    }

    /// Counts one occurrence while doing `what` ("connecting to an upstream").
    pub fn note(&self, resource: Resource, what: &'static str) {
        self.note_at(resource, what, self.clock.now_ms());
    }

    fn note_at(&self, resource: Resource, what: &'static str, now_ms: u64) -> bool {
        let i = resource.index();
        self.counters[i].inc();
        let unlogged = self.unlogged[i].fetch_add(1, Relaxed) + 1;
        let last = self.logged_at_ms[i].load(Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= duration_ms(LOG_EVERY);
        // One thread wins the right to log; the others only count.
        if !due
            || self.logged_at_ms[i]
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        let count = self.unlogged[i].swap(0, Relaxed).max(unlogged);
        tracing::error!(
            resource = resource.label(),
            occurrences = count,
            "ran out of {} while {what}: requests get 503 proxy_overloaded; no key or upstream \
             is blamed",
            resource.describe()
        );
        true
    }

    /// Occurrences so far, for `/admin/keys`.
    pub fn counts(&self) -> impl Iterator<Item = (Resource, u64)> + '_ {
        Resource::ALL
            .map(|r| (r, self.counters[r.index()].get()))
            .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_local_exhaustion_and_nothing_else() {
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(Resource::of(&os(libc::EMFILE)), Some(Resource::OpenFiles));
        assert_eq!(Resource::of(&os(libc::ENFILE)), Some(Resource::OpenFiles));
        assert_eq!(Resource::of(&os(libc::ENOMEM)), Some(Resource::Memory));
        assert_eq!(
            Resource::of(&os(libc::ENOBUFS)),
            Some(Resource::SocketBuffers)
        );
        assert_eq!(
            Resource::of(&os(libc::EADDRNOTAVAIL)),
            Some(Resource::LocalPorts)
        );
        for upstream_fault in [libc::ECONNREFUSED, libc::ECONNRESET, libc::ETIMEDOUT] {
            assert_eq!(Resource::of(&os(upstream_fault)), None);
        }
        assert_eq!(Resource::of(&std::io::Error::other("no os error")), None);
        // Found through a chain of causes, as hyper and rustls wrap it.
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(
            Resource::in_chain(&Outer(os(libc::EMFILE))),
            Some(Resource::OpenFiles)
        );
    }

    #[test]
    fn counts_every_occurrence_and_logs_once_per_interval() {
        let metrics = Metrics::default();
        let ex = Exhaustion::new(&metrics);
        let every = duration_ms(LOG_EVERY);
        let files = Resource::OpenFiles;
        assert!(ex.note_at(files, "testing", 1), "the first is logged");
        assert!(!ex.note_at(files, "testing", 2));
        assert!(!ex.note_at(files, "testing", every));
        assert!(
            ex.note_at(Resource::Memory, "testing", 3),
            "each resource has its own interval"
        );
        assert!(ex.note_at(files, "testing", every + 1));
        let counts: Vec<(Resource, u64)> = ex.counts().collect();
        assert_eq!(counts[0], (files, 4));
        assert_eq!(counts[1], (Resource::Memory, 1));
        let text = metrics.render();
        assert!(
            text.contains(r#"keyrelay_local_exhaustion_total{resource="open_files"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keyrelay_local_exhaustion_total{resource="local_ports"} 0"#),
            "{text}"
        );
    }
}
