//! One rustls configuration (ring provider) for the WebSocket and the HTTP client. No
//! process-wide default provider is installed.

use std::sync::Arc;

use rustls::ClientConfig;

use crate::Error;

/// The default TLS configuration: the ring provider, safe protocol versions, and the bundled
/// webpki roots (or the platform verifier with the `platform-verifier` feature).
pub fn default_tls_config() -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    #[cfg(feature = "platform-verifier")]
    let config = {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder
            .with_platform_verifier()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
    };
    #[cfg(not(feature = "platform-verifier"))]
    let config = {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}
