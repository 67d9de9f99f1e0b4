//! `wss://` with a certificate made in the test.

use std::sync::Arc;

use p2p_signaling::{ClientError, ClientOptions, Event, SignalingClient};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::common::{Server, next_event};

fn client_tls(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn wss_with_a_test_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let server = Server::start_with(
        "",
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let url = server.url.replacen("127.0.0.1", "localhost", 1);

    let options = ClientOptions {
        tls: Some(client_tls(&cert_pem)),
        ..ClientOptions::default()
    };
    let (a, _a_events) = SignalingClient::connect(&url, options.clone())
        .await
        .unwrap();
    let (b, mut b_events) = SignalingClient::connect(&url, options).await.unwrap();
    let room = a.allocate().await.unwrap();
    b.join(&room).await.unwrap();
    a.send(&room, "over tls").await.unwrap();
    assert_eq!(
        next_event(&mut b_events).await,
        Event::Message {
            room,
            payload: "over tls".into()
        }
    );

    // Without the certificate trusted, the handshake fails, and a plain ws:// client gets nowhere.
    let untrusted = SignalingClient::connect(&url, ClientOptions::default()).await;
    assert!(
        matches!(untrusted, Err(ClientError::Connect { .. })),
        "{untrusted:?}"
    );
    let plain = url.replacen("wss://", "ws://", 1);
    let short = ClientOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..ClientOptions::default()
    };
    let plain_result = SignalingClient::connect(&plain, short).await;
    assert!(
        matches!(plain_result, Err(ClientError::Connect { .. })),
        "{plain_result:?}"
    );
}

#[tokio::test]
async fn a_bad_certificate_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let output = std::process::Command::new(crate::common::BIN)
        .args(["--listen", "127.0.0.1:0", "--no-stun", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(dir.path().join("missing.pem"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cert.pem") && stderr.contains("CERTIFICATE"),
        "{stderr}"
    );
}
