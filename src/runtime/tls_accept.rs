//! The TLS listeners' certificate callback: at each handshake, the listener's certificate from
//! the current snapshot, so a reload rotates it without a restart.

use super::store::ConfigStore;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use std::sync::Arc;

/// Picks a TLS listener's certificate from the current snapshot at each handshake.
pub struct ListenerCerts {
    /// Where the current snapshot is.
    pub store: Arc<ConfigStore>,
    /// The listener address.
    pub address: String,
}

#[async_trait]
impl TlsAccept for ListenerCerts {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let snapshot = self.store.current();
        let Some(cert) = snapshot
            .listener_certs
            .iter()
            .find(|c| c.address == self.address)
        else {
            tracing::error!(address = %self.address, "no certificate for this TLS listener");
            return;
        };
        let mut result = ext::ssl_use_certificate(ssl, &cert.chain[0])
            .and_then(|()| ext::ssl_use_private_key(ssl, &cert.key));
        for extra in &cert.chain[1..] {
            result = result.and_then(|()| ext::ssl_add_chain_cert(ssl, extra));
        }
        if let Err(e) = result {
            tracing::error!(address = %self.address, error = %e, "cannot use the listener certificate");
        }
    }
}
