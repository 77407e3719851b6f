//! The client's TLS configuration is the one every HTTP call uses, in every adapter's HTTP
//! client (reqwest and ureq): a private root certificate given through the builder is trusted,
//! the bundled roots alone refuse it; and HTTPS calls go through a real proxy (tinyproxy) as a
//! `CONNECT` tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::Arc;
use std::time::Duration;

use dingtalk_core::error::ClientError;
use dingtalk_core::proxy::Proxies;
use dingtalk_driver::runtime::{HttpClient, HttpSettings, Reqwest, Ureq};
use dingtalk_tests::servers::TinyProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` signed by nobody the
/// bundled roots know; answers `200 ok` to every request. Returns its port and the
/// certificate to trust.
async fn https_server() -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, der)
}

fn trusting(cert: rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn get<H: HttpClient>(
    settings: &HttpSettings,
    url: &str,
) -> Result<(u16, Vec<u8>), ClientError> {
    let http = H::new(settings).unwrap();
    let request = http::Request::get(url).body(Vec::new()).unwrap();
    http.send(request)
        .await
        .map(|r| (r.status().as_u16(), r.into_body()))
}

async fn custom_roots_are_trusted<H: HttpClient>(name: &str) {
    let (port, cert) = https_server().await;
    let url = format!("https://localhost:{port}/secret-path?access_token=SECRET");
    let ours = HttpSettings::new(trusting(cert), Duration::from_secs(5));
    assert_eq!(
        get::<H>(&ours, &url).await.unwrap(),
        (200, b"ok".to_vec()),
        "{name}: the given root is trusted"
    );
    let bundled = HttpSettings::new(
        dingtalk_driver::default_tls_config().unwrap(),
        Duration::from_secs(5),
    );
    let e = get::<H>(&bundled, &url).await.unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{name}: {e:?}");
    assert!(
        !e.to_string().contains("SECRET"),
        "{name}: the error quotes the URL: {e}"
    );

    // HTTPS through a proxy: a CONNECT tunnel, the same roots inside it.
    let proxy = TinyProxy::start(None).unwrap_or_else(|e| panic!("{e}"));
    let proxied = ours.clone().proxies(Proxies::all(&proxy.url()).unwrap());
    assert_eq!(
        get::<H>(&proxied, &url).await.unwrap(),
        (200, b"ok".to_vec()),
        "{name}"
    );
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("CONNECT localhost:{port} "))),
        "{name}: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_trusts_the_given_roots_and_tunnels_https_through_the_proxy() {
    custom_roots_are_trusted::<Reqwest>("reqwest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ureq_trusts_the_given_roots_and_tunnels_https_through_the_proxy() {
    custom_roots_are_trusted::<Ureq>("ureq").await;
}
