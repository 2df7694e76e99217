//! TLS material compiled into a snapshot: listener certificates (chosen at each handshake from
//! the current snapshot, so a reload rotates them without a restart) and the upstream trust
//! store and client certificate (mTLS), read again on every reload.

use super::file::{Listen, UpstreamTls};
use crate::config::Problem;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;
use pingora::utils::tls::CertKey;
use std::sync::Arc;

/// A listener's certificate chain and key.
pub struct ListenerCert {
    /// The listener address it serves.
    pub address: String,
    /// Leaf first, then intermediates.
    pub(crate) chain: Vec<X509>,
    /// Its private key.
    pub(crate) key: PKey<Private>,
}

fn read(path: &str, at: &str) -> Result<Vec<u8>, Problem> {
    std::fs::read(path).map_err(|e| Problem::new(at, format!("cannot read {path:?}: {e}")))
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &str, at: &str) -> Result<Vec<X509>, Problem> {
    let pem = read(path, at)?;
    match X509::stack_from_pem(&pem) {
        Ok(list) if !list.is_empty() => Ok(list),
        Ok(_) => Err(Problem::new(
            at,
            format!("{path:?} holds no PEM certificate"),
        )),
        Err(e) => Err(Problem::new(
            at,
            format!("{path:?} is not a PEM certificate file: {e}"),
        )),
    }
}

/// A certificate chain and its private key, checked to belong together.
fn cert_and_key(
    cert: &str,
    key: &str,
    (cert_at, key_at): (&str, &str),
) -> Result<(Vec<X509>, PKey<Private>), Vec<Problem>> {
    let chain = certificates(cert, cert_at);
    let key = read(key, key_at).and_then(|pem| {
        PKey::private_key_from_pem(&pem)
            .map_err(|e| Problem::new(key_at, format!("{key:?} is not a PEM private key: {e}")))
    });
    match (chain, key) {
        (Ok(chain), Ok(key)) => {
            let matches = chain[0]
                .public_key()
                .map(|p| p.public_eq(&key))
                .unwrap_or(false);
            if matches {
                Ok((chain, key))
            } else {
                Err(vec![Problem::new(
                    key_at,
                    "the private key does not belong to the certificate",
                )])
            }
        }
        (chain, key) => Err([chain.err(), key.err()].into_iter().flatten().collect()),
    }
}

/// Loads the certificate of every TLS listener.
pub fn listener_certs(listen: &Listen, problems: &mut Vec<Problem>) -> Vec<ListenerCert> {
    let mut out = Vec::new();
    for (i, l) in listen.entries().iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        let at = match listen {
            Listen::One(_) => "listen.tls".to_string(),
            Listen::Many(_) => format!("listen[{i}].tls"),
        };
        match cert_and_key(
            &tls.cert,
            &tls.key,
            (&format!("{at}.cert"), &format!("{at}.key")),
        ) {
            Ok((chain, key)) => out.push(ListenerCert {
                address: l.address.clone(),
                chain,
                key,
            }),
            Err(mut p) => problems.append(&mut p),
        }
    }
    out
}

/// Upstream TLS material of one backend.
#[derive(Default, Clone)]
pub struct UpstreamTlsMaterial {
    /// Trust these CAs instead of the system store.
    pub ca: Option<Arc<Box<[X509]>>>,
    /// Present this certificate (mTLS).
    pub client: Option<Arc<CertKey>>,
    /// SHA-256 of the files' contents (state built on the material is rebuilt when it changes).
    pub fingerprint: String,
}

impl UpstreamTlsMaterial {
    /// Reads the files an upstream TLS setting names.
    pub fn compile(tls: &UpstreamTls, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let ca = match &tls.ca {
            Some(path) => match certificates(path, &format!("{at}.ca")) {
                Ok(list) => Some(Arc::new(list.into_boxed_slice())),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
            None => None,
        };
        let client = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => match cert_and_key(
                cert,
                key,
                (&format!("{at}.client_cert"), &format!("{at}.client_key")),
            ) {
                Ok((chain, key)) => Some(Arc::new(CertKey::new(chain, key))),
                Err(mut p) => {
                    problems.append(&mut p);
                    None
                }
            },
            (Some(_), None) => {
                problems.push(Problem::new(
                    format!("{at}.client_key"),
                    "client_cert needs client_key",
                ));
                None
            }
            (None, Some(_)) => {
                problems.push(Problem::new(
                    format!("{at}.client_cert"),
                    "client_key needs client_cert",
                ));
                None
            }
            (None, None) => None,
        };
        let fingerprint = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for path in [&tls.ca, &tls.client_cert, &tls.client_key]
                .into_iter()
                .flatten()
            {
                h.update(std::fs::read(path).unwrap_or_default());
            }
            h.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        if problems.is_empty() {
            Ok(UpstreamTlsMaterial {
                ca,
                client,
                fingerprint,
            })
        } else {
            Err(problems)
        }
    }
}
