//! TLS: rustls only, TLS 1.2 and 1.3, forward-secret AEAD suites only. On first start a
//! self-signed certificate for `localhost` is made, so HTTPS works out of the box. The served
//! certificate follows its files: a changed pair (or SIGHUP) is loaded without a restart, and a
//! bad pair is refused while the current one stays in service.

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

/// A server configuration from PEM files, offering HTTP/2 and HTTP/1.1.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
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
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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

/// Decides when the certificate and key files are to be loaded again.
///
/// A change is acted on once the files have stayed the same for one look, so a pair written
/// in two steps (certificate, then key) is loaded once, whole. A pair that failed to load is
/// not tried again until the files change again (or on an explicit request), so a bad pair
/// is reported once, not every second.
#[derive(Debug)]
pub struct CertificateWatch {
    cert_path: PathBuf,
    key_path: PathBuf,
    /// The files as they were when last loaded (or tried).
    loaded: (Option<FileStamp>, Option<FileStamp>),
    /// The files as they were at the previous look.
    previous: (Option<FileStamp>, Option<FileStamp>),
}

impl CertificateWatch {
    /// Watches a pair that has just been loaded.
    pub fn new(cert_path: &Path, key_path: &Path) -> Self {
        let now = (stamp(cert_path), stamp(key_path));
        CertificateWatch {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            loaded: now.clone(),
            previous: now,
        }
    }

    /// One look at the files. Returns the new configuration when the pair changed (or when
    /// `forced`), or why the new pair cannot be used; `None` when there is nothing to do.
    pub fn poll(&mut self, forced: bool) -> Option<Result<Arc<ServerConfig>, TlsError>> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        let settled = now == self.previous;
        self.previous = now.clone();
        let changed = settled && now != self.loaded;
        if !(forced || changed) {
            return None;
        }
        self.loaded = now;
        Some(server_config(&self.cert_path, &self.key_path))
    }
}

/// Keeps `served` in step with the certificate and key files: looks at them every second and
/// loads them again on SIGHUP. Connections already open keep the configuration they began
/// with; new handshakes get the new one. A pair that cannot be used is logged and the current
/// one kept. The SIGHUP handler is in place when this returns (call it inside the runtime);
/// the future runs until it is dropped.
pub fn reload_on_change(
    served: RustlsConfig,
    cert_path: PathBuf,
    key_path: PathBuf,
) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = CertificateWatch::new(&cert_path, &key_path);
    let hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP handler; certificate files are still watched");
            None
        }
    };
    reload_loop(served, watch, hangup, cert_path)
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
        let config = server_config(&cert, &key).unwrap();
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
        let mut watch = CertificateWatch::new(&cert, &key);
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
        let mut watch = CertificateWatch::new(&cert, &key);
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
        let mut watch = CertificateWatch::new(&cert, &key);
        assert!(matches!(watch.poll(true), Some(Ok(_))));
    }
}
