//! The `keyrelay` binary: parse options, load and validate the config, start logging, serve.

use std::process::ExitCode;

use clap::Parser;
use keyrelay::capacity::OpenFiles;
use keyrelay::cli::Cli;
use keyrelay::config::{Config, KeySource};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything is opened: a proxy holds two descriptors per stream, and the common
    // default soft limit (1,024) would cap it at a few hundred.
    let open_files = OpenFiles::raise();
    let config = match Config::load_with(&cli, KeySource::from_env(), open_files) {
        Ok(c) => c,
        Err(e) => {
            eprint!("keyrelay: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match keyrelay::logging::init(cli.log_format) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("keyrelay: cannot start the log thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.demo && KeySource::from_env().inline.is_some() {
        tracing::warn!("--demo ignores LLM_KEYS and serves the built-in mock key set");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyrelay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = keyrelay::server::listener::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    keyrelay::banner::log(addr, &config);
    #[expect(clippy::print_stdout, reason = "the banner is the program's output")]
    {
        print!("{}", keyrelay::banner::render(addr, &config));
    }
    keyrelay::server::run(&config, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: no new connections; waiting for open requests");
}
