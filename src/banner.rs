//! The startup summary: where keyrelay listens, how much it can hold open, and each model
//! with its key labels (never the keys). In demo mode it ends with a curl line to copy.

use std::fmt::Write;
use std::net::SocketAddr;

use crate::config::{Config, KeySpec};

pub fn render(addr: SocketAddr, config: &Config) -> String {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let keys = &config.keys;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keyrelay {} listening on {scheme}://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "  open files: {}", config.open_files);
    let _ = writeln!(out, "  max concurrency: {}", config.concurrency);
    if let Some(warning) = &config.concurrency.warning {
        let _ = writeln!(out, "  warning: {warning}");
    }
    let mut models: Vec<&str> = Vec::new();
    for k in keys {
        if !models.contains(&k.model.as_str()) {
            models.push(&k.model);
        }
    }
    for model in &models {
        let of_model: Vec<&KeySpec> = keys.iter().filter(|k| k.model == *model).collect();
        let labels: Vec<String> = of_model
            .iter()
            .map(|k| format!("{} ({})", k.label, k.provider.name()))
            .collect();
        let _ = writeln!(
            out,
            "  model {model}: {} key{}: {}",
            of_model.len(),
            if of_model.len() == 1 { "" } else { "s" },
            labels.join(", ")
        );
    }
    if config.demo {
        let model = models.first().copied().unwrap_or("demo-gpt");
        let _ = writeln!(
            out,
            "\ndemo mode: keys are served by the built-in mock provider. Try:\n  \
             curl -s {scheme}://{addr}/v1/chat/completions -H 'Content-Type: application/json' \\\n    \
             -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello keyrelay\"}}]}}'"
        );
    }
    out
}

/// The same summary as log lines, one per model: labels and counts, never keys.
pub fn log(addr: SocketAddr, config: &Config) {
    let keys: &[KeySpec] = &config.keys;
    tracing::info!(
        %addr,
        keys = keys.len(),
        open_files = config.open_files.limit,
        max_concurrency = config.concurrency.limit,
        "keyrelay listening"
    );
    if let Some(warning) = &config.concurrency.warning {
        tracing::warn!("{warning}");
    }
    let mut models: Vec<&str> = Vec::new();
    for k in keys {
        if !models.contains(&k.model.as_str()) {
            models.push(&k.model);
        }
    }
    for model in models {
        let of_model: Vec<&KeySpec> = keys.iter().filter(|k| k.model == model).collect();
        let labels: Vec<&str> = of_model.iter().map(|k| k.label.as_str()).collect();
        let providers: Vec<&str> = of_model.iter().map(|k| k.provider.name()).collect();
        tracing::info!(
            model,
            keys = of_model.len(),
            labels = %labels.join(","),
            providers = %providers.join(","),
            "model configured"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::KeySource;
    use clap::Parser;

    #[test]
    fn lists_models_with_counts_and_curl_line() {
        let cli = Cli::try_parse_from(["keyrelay", "--demo"]).expect("valid");
        let config = Config::load(&cli, KeySource::default()).expect("valid");
        let keys = &config.keys;
        let text = render(SocketAddr::from(([127, 0, 0, 1], 7788)), &config);
        assert!(text.contains("listening on http://127.0.0.1:7788"));
        assert!(text.contains("model demo-gpt: 3 keys"));
        assert!(text.contains("model demo-fast: 2 keys"));
        assert!(text.contains("curl -s http://127.0.0.1:7788/v1/chat/completions"));
        assert!(text.contains("max concurrency: "), "{text}");
        for k in keys {
            assert!(!text.contains(k.api_key.expose()));
        }
    }
}
