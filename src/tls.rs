//! TLS on the TCP ports without a proxy: the certificate and key from `[tls]`, served with
//! rustls (ring), and picked up again when the files change (a renewal by certbot or an ACME
//! client), without a restart. A replacement that does not load (half written, a key that does
//! not match) is logged and the last good pair keeps being served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// The TLS settings of our own HTTPS clients (the local commands and the relay on an `https://`
/// bridge URL, the OAuth key fetch): the system's trusted roots (so an authority installed with
/// `update-ca-certificates` counts), and the certificates of `served`, this machine's own
/// `[tls]` chain, when it is readable, so a self-signed certificate or a chain that carries its
/// authority is trusted by the commands on the machine that serves it.
pub fn client_config(served: Option<&TlsFiles>) -> ureq::tls::TlsConfig {
    let mut roots: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if let Some(files) = served
        && let Ok(chain) = CertificateDer::pem_file_iter(&files.cert)
    {
        roots.extend(
            chain
                .flatten()
                .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned()),
        );
    }
    let builder = ureq::tls::TlsConfig::builder();
    if roots.is_empty() {
        // No system store at all (no ca-certificates): the roots ureq carries itself.
        builder.build()
    } else {
        builder
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .build()
    }
}

/// How often, at most, a handshake looks at the files for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read the private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// What identifies one version of the two files: size, modification time and inode.
type Stamp = [(u64, Option<SystemTime>, u64); 2];

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok(), meta.ino()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|err| TlsError::Certificate {
            path: files.cert.clone(),
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: files.cert.clone(),
            message: "no certificate in the file".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| TlsError::Key {
        path: files.key.clone(),
        message: err.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::Key {
            path: files.key.clone(),
            message: err.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
    })?;
    Ok(Arc::new(certified))
}

struct Current {
    key: Arc<CertifiedKey>,
    stamp: Option<Stamp>,
    checked: Instant,
}

/// The certificate a handshake gets: the files' current pair, loaded again when they change.
struct Reloading {
    files: TlsFiles,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Reloading {
    fn key(&self) -> Arc<CertifiedKey> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.checked.elapsed() >= CHECK_EVERY {
            current.checked = Instant::now();
            let now = stamp(&self.files);
            if now.is_some() && now != current.stamp {
                match load(&self.files) {
                    Ok(key) => {
                        tracing::info!(cert = %self.files.cert.display(), "serving the renewed TLS certificate");
                        current.key = key;
                        current.stamp = now;
                    }
                    // Tried again at the next change; until then the old pair is served.
                    Err(err) => {
                        tracing::warn!(error = %err, "the changed TLS files do not load; still serving the previous certificate");
                        current.stamp = now;
                    }
                }
            }
        }
        Arc::clone(&current.key)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

/// The acceptor for `files`: fails at start when they do not load, so a mistake shows there.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let stamp_before = stamp(files);
    let key = load(files)?;
    let resolver = Reloading {
        files: files.clone(),
        current: Mutex::new(Current {
            key,
            stamp: stamp_before,
            checked: Instant::now(),
        }),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| TlsError::Setup(err.to_string()))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
