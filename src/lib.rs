//! keyrelay: an LLM proxy that rotates many API keys per model, round-robin.
//!
//! Layout:
//! - `cli`: command-line options (each also an environment variable).
//! - `config`: `LLM_KEYS` parsing and validation, and the validated `Config`.
//! - `provider`: the closed set of providers, their default URLs and wire families.
//! - `secret`: the redacting wrapper every key and token lives in.
//! - `auth`: client tokens (constant-time comparison, per-token model lists).
//! - `pool`: keys grouped per model, with the lock-free round-robin cursor.
//! - `health`: per-key cooldowns, disabling and the circuit breaker (atomics only).
//! - `hosts`: upstream hosts and their breaker (connection failures are never a key's).
//! - `exhaustion`: running out of files, memory or ports here: a 503, never a key's fault.
//! - `inspect`: finds `model`/`stream` in a request body without building a tree.
//! - `json_member`: finds one top-level member of a JSON answer (its `usage`) by scanning.
//! - `server`: the listener, routes and thin endpoint handlers.
//! - `upstream`: the shared HTTP client, header rules, one module per wire family.
//! - `mock`: the in-process `mock` provider and the mock upstream server for tests.
//! - `translate`: OpenAI ⇄ Anthropic translation, pure functions and stream state machines.
//! - `usage`: token counts of one response, from whichever layer reads them.
//! - `error`: keyrelay's own errors and their single mapping to HTTP responses.
//! - `request_id`: `x-request-id` taken or generated, echoed, sent upstream.
//! - `metrics`: the Prometheus registry and every series keyrelay exports.
//! - `banner`: the startup summary.
//! - `capacity`: the open-file limit, raised at startup, and the in-flight limit it carries.
//! - `logging`: the subscriber, the text line's fields and timestamps, and the thread that
//!   writes lines out.

pub mod auth;
pub mod banner;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod error;
pub mod exhaustion;
pub mod health;
pub mod hosts;
pub mod inspect;
pub mod json_member;
#[cfg(test)]
mod json_strategy;
pub mod logging;
pub mod metrics;
pub mod mock;
pub mod pool;
pub mod provider;
pub mod request_id;
pub mod secret;
pub mod server;
pub mod translate;
pub mod upstream;
pub mod usage;
