//! `keyrelay-mock`: the project's mock OpenAI upstream as a standalone server, for the SDK
//! tests, the benchmarks and trying keyrelay without a provider account.

use std::time::Duration;

use clap::Parser;
use keyrelay::mock::upstream::{MockOptions, MockUpstream};

/// A mock OpenAI-compatible upstream. A key containing `status-429` answers 429; one
/// containing `delay-250` waits 250 ms before answering.
#[derive(Parser)]
#[command(name = "keyrelay-mock", version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Milliseconds between stream chunks.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no address", args.host))?;
    let listener = keyrelay::server::listener::bind(addr)?;
    let mock = MockUpstream::serve(
        listener,
        MockOptions {
            chunk_delay: Duration::from_millis(args.chunk_delay_ms),
            ..Default::default()
        },
        None,
    );
    #[expect(clippy::print_stdout, reason = "the address is the program's output")]
    {
        println!("keyrelay-mock listening on {}", mock.base_url());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
