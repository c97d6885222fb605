//! `server.tls`: HTTPS on the API's own listener, through rustls on ring.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// The rustls server configuration of `server.tls`: TLS 1.2 and 1.3, HTTP/1.1 by ALPN. An error
/// names the file and the key that set it.
pub fn server_config(tls: &TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.certificate_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .with_context(|| format!("server.tls.certificate_file: cannot read a PEM certificate chain from {}", tls.certificate_file))?;
    if chain.is_empty() {
        anyhow::bail!("server.tls.certificate_file: {} holds no certificate", tls.certificate_file);
    }
    let key = PrivateKeyDer::from_pem_file(&tls.private_key_file)
        .with_context(|| format!("server.tls.private_key_file: cannot read a PEM private key from {}", tls.private_key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("server.tls: the TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls: the private key does not go with the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
