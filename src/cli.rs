//! Command-line options. Every option also reads an environment variable, so a container
//! can be configured without flags.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "keyrelay",
    version,
    about = "An LLM proxy that rotates many API keys per model, round-robin.",
    after_help = "Keys come from LLM_KEYS (a JSON array of {\"api_key\", \"model\", \"provider\"}) \
                  or LLM_KEYS_FILE (a file holding that array)."
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "KEYRELAY_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "KEYRELAY_PORT", default_value_t = 7788)]
    pub port: u16,

    /// Listen on a non-loopback address without client tokens (only when something in front
    /// of keyrelay already checks callers).
    #[arg(long, env = "KEYRELAY_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// PEM certificate chain to serve HTTPS directly (with --tls-key).
    #[arg(long, env = "KEYRELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEYRELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// In-flight requests (open streams included) beyond which new requests get 503 with
    /// retry-after at once, instead of queueing without bound. Default: what the open-file
    /// limit carries (two descriptors per stream, 64 reserved).
    #[arg(long, env = "KEYRELAY_MAX_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: Option<u32>,

    /// Seconds a new connection may stay silent, a client may take to send a request's
    /// headers, and an idle keep-alive connection may stay open.
    #[arg(long, env = "KEYRELAY_HEADER_READ_TIMEOUT", default_value_t = 30.0, value_parser = positive_seconds)]
    pub header_read_timeout: f64,

    /// Serve a built-in key set backed by the in-process mock provider; no keys needed.
    #[arg(long)]
    pub demo: bool,

    /// PEM file of extra root certificates to trust for HTTPS upstreams.
    #[arg(long, env = "KEYRELAY_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Seconds to wait for a TCP (and TLS) connection to an upstream.
    #[arg(long, env = "KEYRELAY_CONNECT_TIMEOUT", default_value_t = 10.0, value_parser = positive_seconds)]
    pub connect_timeout: f64,

    /// Seconds to wait for an upstream's response headers after sending the request.
    #[arg(long, env = "KEYRELAY_FIRST_BYTE_TIMEOUT", default_value_t = 300.0, value_parser = positive_seconds)]
    pub first_byte_timeout: f64,

    /// Seconds without a chunk from a streaming upstream before the stream is ended with an
    /// error.
    #[arg(long, env = "KEYRELAY_IDLE_TIMEOUT", default_value_t = 300.0, value_parser = positive_seconds)]
    pub idle_timeout: f64,

    /// Most upstream attempts for one request, each on a different key (never more than the
    /// model has keys).
    #[arg(long, env = "KEYRELAY_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// First cooldown of a rate-limited key when the upstream gives no retry hint; doubles on
    /// consecutive 429s.
    #[arg(long, env = "KEYRELAY_DEFAULT_COOLDOWN", default_value_t = 5.0, value_parser = positive_seconds)]
    pub default_cooldown: f64,

    /// Longest cooldown, whatever the upstream's retry-after says.
    #[arg(long, env = "KEYRELAY_MAX_COOLDOWN", default_value_t = 300.0, value_parser = positive_seconds)]
    pub max_cooldown: f64,

    /// Cooldown after 3 consecutive 5xx/timeouts on a key (the circuit breaker).
    #[arg(long, env = "KEYRELAY_BREAKER_COOLDOWN", default_value_t = 10.0, value_parser = positive_seconds)]
    pub breaker_cooldown: f64,

    /// Seconds an upstream host is skipped after 3 consecutive connection failures (refused,
    /// DNS, TLS, connect timeout), before one request probes it; doubles on each failed
    /// probe, up to 30 s.
    #[arg(long, env = "KEYRELAY_HOST_BREAKER_COOLDOWN", default_value_t = 1.0, value_parser = positive_seconds)]
    pub host_breaker_cooldown: f64,

    /// Seconds a request may wait for a key to come back when all of its model's keys are
    /// cooling down (0: answer 429 at once).
    #[arg(long, env = "KEYRELAY_WAIT_FOR_KEY", default_value_t = 0.0, value_parser = non_negative_seconds)]
    pub wait_for_key: f64,

    /// Seconds to let open requests and streams finish after SIGTERM/SIGINT.
    #[arg(long, env = "KEYRELAY_SHUTDOWN_TIMEOUT", default_value_t = 30.0, value_parser = non_negative_seconds)]
    pub shutdown_timeout: f64,

    /// Log line format on stderr; levels come from RUST_LOG.
    #[arg(long, env = "KEYRELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KEYRELAY_MAX_BODY", default_value_t = 32 * 1024 * 1024)]
    pub max_body: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}
