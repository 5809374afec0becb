//! Talking to upstream providers: the shared HTTP client, header rules, and one module per
//! wire family.

pub mod client;
pub mod headers;
pub mod openai;

pub use client::UpstreamClient;
