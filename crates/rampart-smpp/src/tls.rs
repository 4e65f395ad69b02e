//! rustls client configuration for TLS towards the SMSC: Mozilla roots plus optional extra
//! roots, optional client certificate. Built once, when the client is spawned.

use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use secrecy::ExposeSecret;

use crate::{SmppError, TlsConfig};

/// A ready-to-use TLS connector and the name to verify.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn invalid(why: impl std::fmt::Display) -> SmppError {
    SmppError::InvalidConfig(format!("tls: {why}"))
}

/// Builds the connector. Uses the process-wide rustls crypto provider if one is installed,
/// else aws-lc-rs, so it never depends on which providers happen to be compiled in.
pub(crate) fn tls_setup(config: &TlsConfig) -> Result<TlsSetup, SmppError> {
    let mut roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    if let Some(pem) = &config.extra_root_ca_pem {
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(format!("extra_root_ca_pem: {error}")))?;
        if certificates.is_empty() {
            return Err(invalid("extra_root_ca_pem holds no certificate"));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| invalid(format!("extra_root_ca_pem: {error}")))?;
        }
    }
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_root_certificates(roots);
    let client_config = match (&config.client_cert_pem, &config.client_key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert_pem), Some(key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| invalid(format!("client_cert_pem: {error}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose_secret().as_bytes())
                .map_err(|error| invalid(format!("client_key_pem: {error}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| invalid(format!("client certificate: {error}")))?
        }
        _ => return Err(invalid("client_cert_pem and client_key_pem go together")),
    };
    let server_name = ServerName::try_from(config.server_name.clone())
        .map_err(|error| invalid(format!("server_name: {error}")))?;
    Ok(TlsSetup {
        connector: tokio_rustls::TlsConnector::from(Arc::new(client_config)),
        server_name,
    })
}
