//! Where log lines go: a shared buffer that a background thread writes out in batches.
//!
//! The request path must never wait on a slow terminal or pipe, so lines are written by a
//! thread of their own. `tracing-appender`'s non-blocking writer does that, but sends every
//! line through a channel and wakes its thread for each one: at 20,000 requests a second
//! that wake-up (a futex call, and a context switch on a 2-core machine) cost more than the
//! line itself, and since a response's line is logged as its last byte is handed to the
//! server, it sat between the upstream's answer and the client's. Here a line is appended
//! to a buffer under a short lock; the thread wakes by itself every `LINGER` and writes
//! whatever has gathered with one call. Only after a second without lines does it sleep
//! until the next line wakes it, and a buffer past `WRITE_NOW` wakes it at once. So a line
//! reaches stderr at most about `LINGER` late, never out of order, and none is dropped: a
//! sink that cannot keep up makes loggers wait once `MAX_BUFFER` is reached (back-pressure
//! rather than lost lines or unbounded memory).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often the thread writes what has gathered.
const LINGER: Duration = Duration::from_millis(50);
/// Empty rounds of `LINGER` after which the thread sleeps until a line wakes it.
const IDLE_ROUNDS: u32 = 20;
/// A buffer this large is written at once, without waiting out `LINGER`.
const WRITE_NOW: usize = 64 * 1024;
/// Past this, loggers wait for the thread to catch up.
const MAX_BUFFER: usize = 16 * 1024 * 1024;

struct Shared {
    state: Mutex<State>,
    /// The thread waits here for lines.
    lines: Condvar,
    /// Loggers wait here when the buffer is full.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closed: bool,
    /// The thread sleeps until notified: the next line must wake it.
    asleep: bool,
}

/// Hands out writers for `tracing_subscriber::fmt`; clone freely.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Keeps the writing thread; dropping it writes what is buffered and stops the thread.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the thread that writes to `sink`.
    pub fn spawn<W: Write + Send + 'static>(sink: W) -> std::io::Result<(LogWriter, FlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines: Condvar::new(),
            drained: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("keyrelay-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, sink)
            })?;
        let guard = FlushGuard {
            shared: shared.clone(),
            thread: Some(thread),
        };
        Ok((LogWriter { shared }, guard))
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock leaves only bytes in a Vec behind: keep logging.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_loop<W: Write>(shared: &Shared, mut sink: W) {
    let mut out = Vec::new();
    let mut idle_rounds = 0;
    loop {
        let mut state = lock(shared);
        if state.buf.len() < WRITE_NOW && !state.closed {
            if state.buf.is_empty() && idle_rounds >= IDLE_ROUNDS {
                state.asleep = true;
                while state.asleep && !state.closed {
                    state = shared.lines.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                idle_rounds = 0;
            }
            state = shared
                .lines
                .wait_timeout(state, LINGER)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.buf.is_empty() && !state.closed {
            idle_rounds += 1;
            continue;
        }
        idle_rounds = 0;
        std::mem::swap(&mut out, &mut state.buf);
        let closed = state.closed;
        drop(state);
        shared.drained.notify_all();
        // Nowhere to report a failed log write to: the lines are lost, the proxy goes on.
        let _ = sink.write_all(&out).and_then(|()| sink.flush());
        out.clear();
        if closed && lock(shared).buf.is_empty() {
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.lines.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One log line's writer: `fmt` writes each formatted event with one `write_all`.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
        }
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut state = lock(self.shared);
        if state.closed {
            // The thread has stopped (the process is exiting): write directly.
            drop(state);
            return std::io::stderr().write(line);
        }
        while state.buf.len() >= MAX_BUFFER {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.buf.extend_from_slice(line);
        let len = state.buf.len();
        // Wake the thread only if it sleeps for good, or to write a large buffer now: a
        // notify is a system call, and this runs on the request path.
        let wake =
            std::mem::take(&mut state.asleep) || (len >= WRITE_NOW && len - line.len() < WRITE_NOW);
        drop(state);
        if wake {
            self.shared.lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read, counting the writes it receives.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().expect("sink");
            s.0.extend_from_slice(data);
            s.1 += 1;
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes_and_all_by_the_guard() {
        let sink = Sink::default();
        let (writer, guard) = LogWriter::spawn(sink.clone()).expect("thread");
        let expected: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        drop(guard);
        let (text, writes) = sink.0.lock().expect("sink").clone();
        assert_eq!(
            text, expected,
            "every line, in order, by the time the guard is gone"
        );
        assert!(writes < 100, "1000 lines took {writes} writes");
    }

    #[test]
    fn a_lone_line_is_written_without_more_traffic() {
        let sink = Sink::default();
        let (writer, _guard) = LogWriter::spawn(sink.clone()).expect("thread");
        // Long enough for the thread to go to sleep: the line itself must wake it.
        std::thread::sleep(LINGER * (IDLE_ROUNDS + 4));
        assert!(lock(&writer.shared).asleep, "the idle thread sleeps");
        writer.make_writer().write_all(b"alone\n").expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().expect("sink").0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().expect("sink").0, b"alone\n");
    }

    #[test]
    fn a_stuck_sink_holds_loggers_back_instead_of_growing_without_bound() {
        /// Blocks every write until released.
        struct Stuck(Arc<(Mutex<bool>, Condvar)>);
        impl Write for Stuck {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().expect("gate");
                while !*open {
                    open = cv.wait(open).expect("gate");
                }
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (writer, guard) = LogWriter::spawn(Stuck(gate.clone())).expect("thread");
        let logger = std::thread::spawn({
            let writer = writer.clone();
            move || {
                let line = vec![b'x'; 1024 * 1024];
                for _ in 0..40 {
                    writer.make_writer().write_all(&line).expect("write");
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let held = lock(&writer.shared).buf.len();
        assert!(
            held <= MAX_BUFFER + 1024 * 1024,
            "buffer grew to {held} bytes behind a stuck sink"
        );
        assert!(!logger.is_finished(), "the logger was not held back");
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        logger.join().expect("logger");
        drop(guard);
    }
}
