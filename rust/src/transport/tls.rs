//! rustls client configuration: webpki roots, verification always on.
//!
//! The crypto provider is `ring`, which builds from crates.io with only a C
//! compiler (aws-lc-rs would also need cmake and, on some targets, nasm). The
//! default configuration is built once and shared, since parsing the ~150
//! webpki roots is the expensive part of a TLS connect; a `ca_file` adds its
//! certificates to a fresh copy of the root store for that connection.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

fn roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn build(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The shared configuration trusting the webpki roots.
pub fn default_config() -> Result<Arc<ClientConfig>, String> {
    static DEFAULT: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    DEFAULT.get_or_init(|| build(roots())).clone()
}

/// The webpki roots plus every certificate in the PEM file `ca_file`.
/// Errors name the file and the problem (unreadable, no certificates, bad PEM).
pub fn config_with_ca(ca_file: &str) -> Result<Arc<ClientConfig>, String> {
    let mut store = roots();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("cannot read ca_file {ca_file:?}: {e}"))?;
    let mut added = 0usize;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad PEM in ca_file {ca_file:?}: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("unusable certificate in ca_file {ca_file:?}: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("ca_file {ca_file:?} contains no PEM certificates"));
    }
    build(store)
}
