//! Configuration: command-line options and the key list, validated before anything starts.
//!
//! The environment is read in exactly one place (`KeySource::from_env`), so tests build a
//! `KeySource` directly instead of mutating the process environment.

mod keys;
mod tokens;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use keys::{KeySpec, parse_keys};
pub use tokens::{ClientToken, parse_token_file, parse_token_list};

use crate::capacity::{Concurrency, OpenFiles};
use crate::cli::Cli;
use crate::health::HealthPolicy;
use crate::hosts::HostPolicy;
use crate::provider::Provider;
use crate::secret::Secret;

/// Every secret the environment provides, as the user set it: the upstream key list, the
/// client tokens, the admin token.
#[derive(Debug, Default, Clone)]
pub struct KeySource {
    /// The JSON text of `LLM_KEYS`, wrapped because it contains every key.
    pub inline: Option<Secret>,
    /// The path in `LLM_KEYS_FILE`.
    pub file: Option<PathBuf>,
    /// `KEYRELAY_ADMIN_TOKEN`: enables `/admin/*` and is required as its bearer token.
    pub admin_token: Option<Secret>,
    /// `KEYRELAY_METRICS_TOKEN`: when set, `/metrics` requires it as a bearer token.
    pub metrics_token: Option<Secret>,
    /// `KEYRELAY_TOKENS`: comma-separated client tokens.
    pub tokens: Option<Secret>,
    /// `KEYRELAY_TOKENS_FILE`: a JSON array of `{"token", "name", "models"}`.
    pub tokens_file: Option<PathBuf>,
}

impl KeySource {
    pub fn from_env() -> Self {
        Self {
            inline: std::env::var("LLM_KEYS").ok().map(Secret::new),
            file: std::env::var_os("LLM_KEYS_FILE").map(PathBuf::from),
            admin_token: std::env::var("KEYRELAY_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            metrics_token: std::env::var("KEYRELAY_METRICS_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            tokens: std::env::var("KEYRELAY_TOKENS")
                .ok()
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            tokens_file: std::env::var_os("KEYRELAY_TOKENS_FILE").map(PathBuf::from),
        }
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub keys: Vec<KeySpec>,
    pub demo: bool,
    pub upstream: UpstreamOptions,
    pub failover: FailoverOptions,
    pub health: HealthPolicy,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub admin_token: Option<Secret>,
    pub metrics_token: Option<Secret>,
    pub client_tokens: Vec<ClientToken>,
    /// Certificate chain and private key (PEM) to serve HTTPS directly.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The open-file limit keyrelay runs with.
    pub open_files: OpenFiles,
    /// In-flight requests (streams included) beyond which new ones get 503 at once.
    pub concurrency: Concurrency,
    pub header_read_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Attempts per request, each on a different key.
    pub max_attempts: u32,
    /// How long a request may wait for a cooling key.
    pub wait_for_key: Duration,
    /// Longest silence between chunks of a streaming upstream.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub connect_timeout: Duration,
    /// Time from sending the request to the upstream's response head.
    pub first_byte_timeout: Duration,
    /// PEM file with extra root certificates to trust, beside the built-in Mozilla roots.
    pub extra_roots: Option<PathBuf>,
}

impl Config {
    /// Builds the configuration with the open-file limit as it is now, reporting every
    /// problem found, one per line.
    pub fn load(cli: &Cli, source: KeySource) -> Result<Config, ConfigError> {
        Config::load_with(cli, source, OpenFiles::current())
    }

    /// Like `load`, with the open-file limit the binary raised at startup.
    pub fn load_with(
        cli: &Cli,
        source: KeySource,
        open_files: OpenFiles,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let keys = if cli.demo {
            demo_keys()
        } else {
            match load_keys(&source) {
                Ok(keys) => keys,
                Err(mut p) => {
                    problems.append(&mut p);
                    Vec::new()
                }
            }
        };
        let listen = match (cli.host.as_str(), cli.port).to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(_) => None,
        };
        if listen.is_none() {
            problems.push(format!(
                "--host/KEYRELAY_HOST {:?} is not an IP address or a resolvable host name",
                cli.host
            ));
        }
        for (flag, path) in [
            ("--ca-file", &cli.ca_file),
            ("--tls-cert", &cli.tls_cert),
            ("--tls-key", &cli.tls_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                problems.push(format!("{flag} {}: no such file", path.display()));
            }
        }
        let tls = match (&cli.tls_cert, &cli.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                problems.push("--tls-cert and --tls-key go together: give both or neither".into());
                None
            }
        };
        let client_tokens = match load_tokens(&source) {
            Ok(tokens) => tokens,
            Err(mut p) => {
                problems.append(&mut p);
                Vec::new()
            }
        };
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && client_tokens.is_empty()
            && !cli.allow_unauthenticated
        {
            problems.push(format!(
                "refusing to listen on {} without client tokens: anyone who can reach it could spend \
                 your keys. Set KEYRELAY_TOKENS (or KEYRELAY_TOKENS_FILE), listen on 127.0.0.1, or pass \
                 --allow-unauthenticated if something in front of keyrelay already checks callers",
                addr.ip()
            ));
        }
        match listen {
            Some(listen) if problems.is_empty() => Ok(Config {
                listen,
                keys,
                demo: cli.demo,
                upstream: UpstreamOptions {
                    connect_timeout: Duration::from_secs_f64(cli.connect_timeout),
                    first_byte_timeout: Duration::from_secs_f64(cli.first_byte_timeout),
                    extra_roots: cli.ca_file.clone(),
                },
                failover: FailoverOptions {
                    max_attempts: cli.max_attempts,
                    wait_for_key: Duration::from_secs_f64(cli.wait_for_key),
                    idle_timeout: Duration::from_secs_f64(cli.idle_timeout),
                },
                health: HealthPolicy {
                    default_cooldown: Duration::from_secs_f64(cli.default_cooldown),
                    max_cooldown: Duration::from_secs_f64(cli.max_cooldown),
                    breaker_cooldown: Duration::from_secs_f64(cli.breaker_cooldown),
                    hosts: HostPolicy::new(
                        Duration::from_secs_f64(cli.host_breaker_cooldown),
                        Duration::from_secs_f64(cli.connect_timeout),
                    ),
                    ..HealthPolicy::default()
                },
                max_body_bytes: cli.max_body,
                shutdown_timeout: Duration::from_secs_f64(cli.shutdown_timeout),
                admin_token: source.admin_token.clone(),
                metrics_token: source.metrics_token.clone(),
                client_tokens,
                tls,
                concurrency: Concurrency::plan(cli.max_concurrency, &open_files),
                open_files,
                header_read_timeout: Duration::from_secs_f64(cli.header_read_timeout),
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

fn load_keys(source: &KeySource) -> Result<Vec<KeySpec>, Vec<String>> {
    match (&source.inline, &source.file) {
        (Some(_), Some(_)) => Err(vec![
            "both LLM_KEYS and LLM_KEYS_FILE are set; set exactly one".into(),
        ]),
        (None, None) => Err(vec![
            "no keys configured: set LLM_KEYS to a JSON array of {\"api_key\", \"model\", \"provider\"} \
             objects, or LLM_KEYS_FILE to a file containing one (or run with --demo)"
                .into(),
        ]),
        (Some(text), None) => parse_keys(text.expose(), "LLM_KEYS"),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![format!("LLM_KEYS_FILE {}: cannot read: {e}", path.display())]
            })?;
            parse_keys(&text, "LLM_KEYS_FILE")
        }
    }
}

fn load_tokens(source: &KeySource) -> Result<Vec<ClientToken>, Vec<String>> {
    match (&source.tokens, &source.tokens_file) {
        (Some(_), Some(_)) => Err(vec![
            "both KEYRELAY_TOKENS and KEYRELAY_TOKENS_FILE are set; set at most one".into(),
        ]),
        (None, None) => Ok(Vec::new()),
        (Some(list), None) => parse_token_list(list.expose()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![format!(
                    "KEYRELAY_TOKENS_FILE {}: cannot read: {e}",
                    path.display()
                )]
            })?;
            parse_token_file(&text)
        }
    }
}

/// The built-in key set of `--demo`: two models served by the in-process mock provider, so
/// rotation can be watched in the logs without any real key.
pub fn demo_keys() -> Vec<KeySpec> {
    let key = |model: &str, n: usize| KeySpec {
        provider: Provider::Mock,
        model: model.to_owned(),
        upstream_model: model.to_owned(),
        base_url: String::new(),
        api_key: Secret::new(format!("demo-key-{model}-{n}")),
        label: format!("{model}-key-{n}"),
        max_tokens: None,
    };
    vec![
        key("demo-gpt", 1),
        key("demo-gpt", 2),
        key("demo-gpt", 3),
        key("demo-fast", 1),
        key("demo-fast", 2),
    ]
}

/// All configuration problems, each naming where it is.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
