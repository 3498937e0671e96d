//! TLS, with rustls (the `ring` provider): the server's certificate and key, the CA that client
//! certificates must chain to, `tls-auth-clients` and `tls-protocols`, loaded at start and
//! again when CONFIG SET changes one of them (a failed load keeps the previous acceptor).

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::config::{ClientAuth, TlsSettings};

/// The acceptor new TLS connections use.
#[derive(Default)]
pub(crate) struct Tls {
    acceptor: RwLock<Option<TlsAcceptor>>,
}

impl Tls {
    /// Loads the certificates named by `settings` and makes them the ones new connections get.
    pub(crate) fn configure(&self, settings: &TlsSettings) -> Result<(), String> {
        let config = server_config(settings)?;
        *self.acceptor.write() = Some(TlsAcceptor::from(Arc::new(config)));
        Ok(())
    }

    /// The acceptor for a new connection (`None` before TLS is configured).
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().clone()
    }
}

/// rustls's `ring` provider: it builds with nothing but a C compiler (aws-lc-rs needs cmake).
/// Deprecated only for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `tls-protocols`: Redis's names, any case, space separated; rustls speaks TLS 1.2 and 1.3.
fn versions(protocols: Option<&str>) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let Some(protocols) = protocols else { return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]) };
    let mut out = Vec::new();
    for word in protocols.split_whitespace() {
        let v = match word.to_ascii_lowercase().as_str() {
            "tlsv1.2" => &rustls::version::TLS12,
            "tlsv1.3" => &rustls::version::TLS13,
            "tlsv1" | "tlsv1.1" => {
                return Err(format!("{word} is not supported (TLS 1.2 and TLS 1.3 are)"));
            }
            _ => return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1.2' and 'TLSv1.3'.".into()),
        };
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1.2' and 'TLSv1.3'.".into());
    }
    Ok(out)
}

/// Builds the rustls configuration from the files named by `settings`.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let cert_file = settings.cert_file.as_deref().ok_or("tls-cert-file is not set")?;
    let key_file = settings.key_file.as_deref().ok_or("tls-key-file is not set")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(std::iter::Iterator::collect)
        .map_err(|e| format!("Failed to load certificate: {cert_file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("Failed to load certificate: {cert_file}: no certificate found"));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("Failed to load private key: {key_file}: {e}"))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(settings.protocols.as_deref())?)
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (settings.auth_clients, &settings.ca_cert_file) {
        (ClientAuth::No, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, \
                        tls-replication or tls-auth-clients are enabled!"
                .into());
        }
        (auth, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("Failed to load CA: {ca_file}: {e}"))?
            {
                let cert = cert.map_err(|e| format!("Failed to load CA: {ca_file}: {e}"))?;
                roots.add(cert).map_err(|e| format!("Failed to load CA: {ca_file}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("TLS: {e}"))?)
        }
    };
    builder.with_single_cert(certs, key).map_err(|e| format!("TLS: {e}"))
}
