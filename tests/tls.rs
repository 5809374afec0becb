//! HTTPS upstreams: trusted through an extra CA file, refused without it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

struct TestPki {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keyrelay test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestPki {
        ca_pem: ca.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    }
}

async fn tls_mock(pki: &TestPki) -> MockUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockUpstream::serve(
        listener,
        MockOptions {
            record: true,
            ..Default::default()
        },
        Some(pki.acceptor.clone()),
    )
}

fn keys_for(mock: &MockUpstream) -> Value {
    // The certificate names `localhost`, so the URL must too.
    let url = format!("https://localhost:{}/v1", mock.addr().port());
    json!([{"api_key": "sk-tls", "model": "m", "provider": "openai", "base_url": url}])
}

#[tokio::test]
async fn https_upstream_trusted_through_ca_file() {
    let pki = test_pki();
    let mock = tls_mock(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();

    let proxy = Proxy::start(&keys_for(&mock), &["--ca-file", ca_file.to_str().unwrap()]).await;
    for _ in 0..3 {
        let resp = proxy.chat(&chat_body("m", "over tls")).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "You said: over tls");
    }
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].headers["authorization"], "Bearer sk-tls");
}

#[tokio::test]
async fn https_upstream_with_unknown_ca_is_refused() {
    let pki = test_pki();
    let mock = tls_mock(&pki).await;
    let proxy = Proxy::start(&keys_for(&mock), &[]).await;
    let err = expect_error(proxy.chat(&chat_body("m", "hi")).await, 502).await;
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(mock.requests().is_empty());
}
