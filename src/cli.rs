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

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KEYRELAY_MAX_BODY", default_value_t = 32 * 1024 * 1024)]
    pub max_body: usize,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}
