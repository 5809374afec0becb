//! How much this process can hold open at once: the open-file limit, raised from the soft to
//! the hard limit at startup (as Go's runtime and most servers do), and the in-flight request
//! limit that fits in it.
//!
//! A proxied stream holds two descriptors (the client's connection and the upstream's), so
//! a limit on requests in flight that the descriptors cannot back turns into `EMFILE` on the
//! upstream connect. Deriving the limit from the descriptors makes the gate answer 503 first.

use std::fmt;

/// Descriptors kept aside for everything that is not a stream: stdio, the listener, the
/// runtime's epoll and wake-up descriptors, the log thread, DNS lookups, certificate files,
/// idle upstream connections to other hosts, and `/metrics` or `/admin` while under load.
pub const RESERVED_FILES: u64 = 64;

/// Descriptors one proxied stream holds: its client connection and its upstream connection.
pub const FILES_PER_STREAM: u64 = 2;

/// The open-file limit (`RLIMIT_NOFILE`) as keyrelay found and left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit at startup.
    pub before: u64,
    /// The soft limit now: what this process may open.
    pub limit: u64,
    pub hard: u64,
    /// Why the soft limit could not be raised, if it could not.
    pub raise_error: Option<String>,
}

impl OpenFiles {
    /// The limits as they are, unchanged.
    pub fn current() -> OpenFiles {
        match rlimit::Resource::NOFILE.get() {
            Ok((soft, hard)) => OpenFiles {
                before: soft,
                limit: soft,
                hard,
                raise_error: None,
            },
            // No such limit on this platform: nothing to derive from.
            Err(e) => OpenFiles {
                before: u64::MAX,
                limit: u64::MAX,
                hard: u64::MAX,
                raise_error: Some(e.to_string()),
            },
        }
    }

    /// Raises the soft limit to the hard one; called once, before anything is opened.
    pub fn raise() -> OpenFiles {
        let mut files = OpenFiles::current();
        if files.limit >= files.hard {
            return files;
        }
        match rlimit::increase_nofile_limit(files.hard) {
            Ok(now) => files.limit = now,
            Err(e) => files.raise_error = Some(e.to_string()),
        }
        files
    }

    /// Streams these descriptors can carry, after the reserve; at least one.
    pub fn streams(&self) -> u64 {
        (self.limit.saturating_sub(RESERVED_FILES) / FILES_PER_STREAM).max(1)
    }
}

impl fmt::Display for OpenFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.limit)?;
        match &self.raise_error {
            Some(e) => write!(
                f,
                " (could not raise it to the hard limit {}: {e})",
                self.hard
            ),
            None if self.limit > self.before => {
                write!(f, " (raised from {} to the hard limit)", self.before)
            }
            None if self.limit == self.hard => write!(f, " (the hard limit)"),
            None => write!(f, " (hard limit {})", self.hard),
        }
    }
}

/// The bound on requests in flight, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    pub limit: usize,
    /// True when derived from the open-file limit, false when `--max-concurrency` set it.
    pub derived: bool,
    /// Set when `--max-concurrency` asks for more streams than the descriptors can carry.
    pub warning: Option<String>,
}

impl Concurrency {
    /// `--max-concurrency` when given (with a warning if the descriptors cannot back it),
    /// else what the open-file limit carries.
    pub fn plan(explicit: Option<u32>, files: &OpenFiles) -> Concurrency {
        let fits = usize::try_from(files.streams()).unwrap_or(usize::MAX);
        match explicit {
            None => Concurrency {
                limit: fits,
                derived: true,
                warning: None,
            },
            Some(asked) => {
                let asked = asked as usize;
                let warning = (asked > fits).then(|| {
                    format!(
                        "--max-concurrency {asked} is more than the open-file limit of {} can carry \
                         ({FILES_PER_STREAM} per stream, {RESERVED_FILES} reserved: about {fits} \
                         streams); past that, requests get 503 proxy_overloaded. Raise the limit \
                         (ulimit -n, systemd's LimitNOFILE=) or lower --max-concurrency",
                        files.limit
                    )
                });
                Concurrency {
                    limit: asked,
                    derived: false,
                    warning,
                }
            }
        }
    }
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.derived {
            write!(
                f,
                "{} (derived from the open-file limit: {FILES_PER_STREAM} per stream, \
                 {RESERVED_FILES} reserved)",
                self.limit
            )
        } else {
            write!(f, "{} (--max-concurrency)", self.limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(before: u64, limit: u64, hard: u64) -> OpenFiles {
        OpenFiles {
            before,
            limit,
            hard,
            raise_error: None,
        }
    }

    #[test]
    fn derived_from_the_limit_with_two_files_per_stream() {
        let plan = Concurrency::plan(None, &files(1024, 1024, 1024));
        assert_eq!(plan.limit, (1024 - 64) / 2);
        assert!(plan.derived && plan.warning.is_none());
        assert_eq!(Concurrency::plan(None, &files(10, 10, 10)).limit, 1);
    }

    #[test]
    fn explicit_limit_kept_and_warned_about_only_beyond_the_files() {
        let limits = files(1024, 1024, 1024);
        let within = Concurrency::plan(Some(480), &limits);
        assert_eq!((within.limit, within.derived), (480, false));
        assert!(within.warning.is_none());
        let beyond = Concurrency::plan(Some(481), &limits);
        assert_eq!(beyond.limit, 481);
        let warning = beyond.warning.expect("warned");
        assert!(warning.contains("about 480 streams"), "{warning}");
    }

    #[test]
    fn the_banner_text_says_what_was_raised() {
        assert_eq!(
            files(1024, 20000, 20000).to_string(),
            "20000 (raised from 1024 to the hard limit)"
        );
        assert_eq!(files(256, 256, 256).to_string(), "256 (the hard limit)");
        let failed = OpenFiles {
            raise_error: Some("denied".into()),
            ..files(256, 256, 512)
        };
        assert_eq!(
            failed.to_string(),
            "256 (could not raise it to the hard limit 512: denied)"
        );
    }
}
