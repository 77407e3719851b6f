//! The rustls configuration (ring provider, webpki roots) of the WebSocket. No process-wide
//! provider is installed.

use std::sync::Arc;

use rustls::ClientConfig;

use crate::Error;

/// The default TLS configuration: the ring provider, safe protocol versions, webpki roots.
pub fn default_tls_config() -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
