//! TLS: rustls only, TLS 1.2 and 1.3, forward-secret AEAD suites only. On first start a
//! self-signed certificate for `localhost` is made, so HTTPS works out of the box. The served
//! certificate follows its files: a changed pair (or SIGHUP) is loaded without a restart, and a
//! bad pair is refused while the current one stays in service.
//!
//! With a client CA bundle (`tls_client_ca_file`) the server also asks every client for a
//! certificate (mutual TLS). A client may send none and still connect (keys that do not demand
//! one keep working); a certificate that does not chain to the bundle ends the handshake. The
//! bundle is watched and reloaded with the pair.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// What can go wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: no usable {what} in PEM file")]
    Pem { path: PathBuf, what: &'static str },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be generated.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The client CA bundle cannot verify client certificates.
    #[error("{path}: client CA bundle: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// The files TLS is served from: the certificate chain and key, and the bundle of CAs whose
/// client certificates are accepted (none: no client certificate is asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The process-wide crypto provider; call once before any TLS is used.
pub fn install_crypto_provider() {
    let _ = aws_lc_rs::default_provider().install_default();
}

/// The provider restricted to ECDHE AEAD suites (rustls has no others, but we say so).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|suite| match suite {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20_POLY1305"))
        }
    });
    Arc::new(provider)
}

/// Creates `cert.pem` and `key.pem` (owner-only) in `dir` unless they exist. Returns the paths.
pub fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let mut key_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(io(&key_path))?;
    key_file
        .write_all(certified.signing_key.serialize_pem().as_bytes())
        .map_err(io(&key_path))?;
    fs::write(&cert_path, certified.cert.pem()).map_err(io(&cert_path))?;
    Ok((cert_path, key_path))
}

/// The protocol versions we speak: TLS 1.0 and 1.1 are refused (rustls has neither anyway).
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server configuration from PEM files, offering HTTP/2 and HTTP/1.1, asking for a client
/// certificate when `files` name a client CA bundle.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = (files.cert.as_path(), files.key.as_path());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|_| TlsError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        })?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| TlsError::Pem {
        path: key_path.to_path_buf(),
        what: "private key",
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path)?),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A verifier of client certificates against the CAs in `path`: a certificate that chains to
/// one of them is accepted, none at all too (the key decides whether it needs one), any other
/// certificate ends the handshake.
fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let refused = |reason: String| TlsError::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| refused(format!("cannot read it: {e}")))?;
    for cert in certs {
        let cert = cert.map_err(|e| refused(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| refused(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(refused("no CA certificate in it".to_owned()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| refused(e.to_string()))
}

/// How often the certificate and key files are looked at.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// What identifies one version of a file on disk: a replaced file (renamed over, or a symlink
/// pointed elsewhere) has a new inode, a rewritten one a new size or modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// The stamps of every file of a [`TlsFiles`] (the client CA bundle's only when set).
type Stamps = (Option<FileStamp>, Option<FileStamp>, Option<FileStamp>);

fn stamps(files: &TlsFiles) -> Stamps {
    (
        stamp(&files.cert),
        stamp(&files.key),
        files.client_ca.as_deref().and_then(stamp),
    )
}

/// Decides when the certificate, key and client CA files are to be loaded again.
///
/// A change is acted on once the files have stayed the same for one look, so a pair written
/// in two steps (certificate, then key) is loaded once, whole. A set that failed to load is
/// not tried again until the files change again (or on an explicit request), so a bad file
/// is reported once, not every second.
#[derive(Debug)]
pub struct CertificateWatch {
    files: TlsFiles,
    /// The files as they were when last loaded (or tried).
    loaded: Stamps,
    /// The files as they were at the previous look.
    previous: Stamps,
}

impl CertificateWatch {
    /// Watches files that have just been loaded.
    pub fn new(files: &TlsFiles) -> Self {
        let now = stamps(files);
        CertificateWatch {
            files: files.clone(),
            loaded: now.clone(),
            previous: now,
        }
    }

    /// One look at the files. Returns the new configuration when they changed (or when
    /// `forced`), or why the new files cannot be used; `None` when there is nothing to do.
    pub fn poll(&mut self, forced: bool) -> Option<Result<Arc<ServerConfig>, TlsError>> {
        let now = stamps(&self.files);
        let settled = now == self.previous;
        self.previous = now.clone();
        let changed = settled && now != self.loaded;
        if !(forced || changed) {
            return None;
        }
        self.loaded = now;
        Some(server_config(&self.files))
    }
}

/// Keeps `served` in step with the certificate, key and client CA files: looks at them every
/// second and loads them again on SIGHUP. Connections already open keep the configuration
/// they began with; new handshakes get the new one. Files that cannot be used are logged and
/// the current configuration kept. The SIGHUP handler is in place when this returns (call it
/// inside the runtime); the future runs until it is dropped.
pub fn reload_on_change(
    served: RustlsConfig,
    files: TlsFiles,
) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = CertificateWatch::new(&files);
    let hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP handler; certificate files are still watched");
            None
        }
    };
    reload_loop(served, watch, hangup, files.cert)
}

async fn reload_loop(
    served: RustlsConfig,
    mut watch: CertificateWatch,
    mut hangup: Option<tokio::signal::unix::Signal>,
    cert_path: PathBuf,
) {
    let mut ticks = tokio::time::interval(RELOAD_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let forced = tokio::select! {
            _ = ticks.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let reason = if forced { "SIGHUP" } else { "files changed" };
        match watch.poll(forced) {
            None => {}
            Some(Ok(config)) => {
                served.reload_from_config(config);
                tracing::info!(
                    reason,
                    certificate = %cert_path.display(),
                    "TLS certificate reloaded; new connections use it"
                );
            }
            Some(Err(error)) => tracing::warn!(
                reason,
                %error,
                "TLS certificate not reloaded; keeping the current one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair_in(dir: &Path) -> (PathBuf, PathBuf) {
        install_crypto_provider();
        ensure_self_signed(dir).unwrap()
    }

    fn files(cert: &Path, key: &Path) -> TlsFiles {
        TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
        }
    }

    /// Moves a freshly made pair over `cert` and `key`, as a deployment tool would.
    fn replace_pair(scratch: &Path, cert: &Path, key: &Path) {
        let (new_cert, new_key) = pair_in(scratch);
        fs::rename(new_key, key).unwrap();
        fs::rename(new_cert, cert).unwrap();
    }

    #[test]
    fn only_tls_1_2_and_1_3_with_forward_secret_aead_suites_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let config = server_config(&files(&cert, &key)).unwrap();
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            [
                rustls::ProtocolVersion::TLSv1_3,
                rustls::ProtocolVersion::TLSv1_2
            ]
        );
        let suites = &config.crypto_provider().cipher_suites;
        assert!(!suites.is_empty());
        for suite in suites {
            let name = format!("{:?}", suite.suite());
            let aead = name.contains("_GCM_") || name.contains("CHACHA20_POLY1305");
            assert!(aead, "{name} is not an AEAD suite");
            match suite {
                // TLS 1.3 suites name only the AEAD; the key exchange is always (EC)DHE.
                rustls::SupportedCipherSuite::Tls13(_) => assert!(name.starts_with("TLS13_")),
                rustls::SupportedCipherSuite::Tls12(_) => {
                    assert!(name.contains("_ECDHE_"), "{name} has no forward secrecy")
                }
            }
        }
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_replaced_pair_is_loaded_once_it_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let mut watch = CertificateWatch::new(&files(&cert, &key));
        assert!(watch.poll(false).is_none(), "nothing changed");

        replace_pair(scratch.path(), &cert, &key);
        assert!(
            watch.poll(false).is_none(),
            "changed just now: wait one look"
        );
        let config = watch.poll(false).expect("a reload").unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
        assert!(watch.poll(false).is_none(), "loaded once");
    }

    #[test]
    fn a_bad_pair_is_reported_once_and_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let mut watch = CertificateWatch::new(&files(&cert, &key));
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = pair_in(other.path());
        // A key that does not belong to the certificate.
        fs::rename(other_key, &key).unwrap();
        assert!(watch.poll(false).is_none());
        let refused = watch.poll(false).expect("an attempt");
        assert!(matches!(refused, Err(TlsError::Rustls(_))), "{refused:?}");
        assert!(
            watch.poll(false).is_none(),
            "not retried until the files change"
        );

        fs::write(&cert, "not a certificate").unwrap();
        assert!(watch.poll(false).is_none());
        let refused = watch.poll(false).expect("an attempt");
        assert!(matches!(refused, Err(TlsError::Pem { .. })), "{refused:?}");
    }

    #[test]
    fn a_forced_reload_loads_the_files_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let mut watch = CertificateWatch::new(&files(&cert, &key));
        assert!(matches!(watch.poll(true), Some(Ok(_))));
    }

    /// A fresh CA certificate (PEM), as an organisation's client CA would be.
    fn client_ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_client_ca_bundle_makes_the_server_ask_for_an_optional_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let ca = dir.path().join("clients.pem");
        fs::write(&ca, client_ca_pem()).unwrap();
        let verifier = client_verifier(&ca).unwrap();
        assert!(verifier.offer_client_auth());
        assert!(
            !verifier.client_auth_mandatory(),
            "clients without a certificate still connect"
        );
        server_config(&TlsFiles {
            client_ca: Some(ca),
            ..files(&cert, &key)
        })
        .unwrap();
    }

    #[test]
    fn an_unusable_client_ca_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let ca = dir.path().join("clients.pem");
        for content in ["", "not a certificate"] {
            fs::write(&ca, content).unwrap();
            let refused = server_config(&TlsFiles {
                client_ca: Some(ca.clone()),
                ..files(&cert, &key)
            });
            assert!(
                matches!(refused, Err(TlsError::ClientCa { .. })),
                "{content:?}: {refused:?}"
            );
        }
        let missing = server_config(&TlsFiles {
            client_ca: Some(dir.path().join("missing.pem")),
            ..files(&cert, &key)
        });
        assert!(matches!(missing, Err(TlsError::ClientCa { .. })));
    }

    #[test]
    fn a_changed_client_ca_bundle_is_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_in(dir.path());
        let ca = dir.path().join("clients.pem");
        fs::write(&ca, client_ca_pem()).unwrap();
        let mut watch = CertificateWatch::new(&TlsFiles {
            client_ca: Some(ca.clone()),
            ..files(&cert, &key)
        });
        assert!(watch.poll(false).is_none(), "nothing changed");
        let renamed = dir.path().join("clients.pem.new");
        fs::write(&renamed, format!("{}{}", client_ca_pem(), client_ca_pem())).unwrap();
        fs::rename(&renamed, &ca).unwrap();
        assert!(
            watch.poll(false).is_none(),
            "changed just now: wait one look"
        );
        assert!(matches!(watch.poll(false), Some(Ok(_))), "a reload");

        fs::write(&renamed, "not a certificate").unwrap();
        fs::rename(&renamed, &ca).unwrap();
        assert!(watch.poll(false).is_none());
        let refused = watch.poll(false).expect("an attempt");
        assert!(
            matches!(refused, Err(TlsError::ClientCa { .. })),
            "{refused:?}"
        );
    }
}
