//! PostgreSQL plumbing shared by the PostgreSQL stores: a connection pool with TLS as the URL
//! asks, migrations applied under an advisory lock, and the mapping of driver errors.
//!
//! TLS follows libpq's `sslmode` meanings, because users paste URLs written for libpq:
//! `disable` never encrypts; `prefer` (the default) and `require` encrypt without checking the
//! certificate (unless `sslrootcert` is given, where `require` acts as `verify-ca`); `verify-ca`
//! checks the chain against the roots; `verify-full` also checks the host name. The roots are
//! the `sslrootcert` PEM file, or the system store (`/etc/ssl/certs`) when it is absent or
//! `system`. tokio-postgres knows only disable/prefer/require, so the verifying modes and
//! `sslrootcert` are taken out of the URL here and turned into the rustls configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;
use crate::config::DatabaseUrl;

/// Connections kept per pool. The session store and the archive each get a pool.
const POOL_SIZE: usize = 8;
/// How long a caller waits for a connection before the database counts as unavailable: long
/// enough to ride out a busy moment, short enough that an outage is reported, not hung on.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Applied when the URL sets no `connect_timeout` of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a pool on `url` and checks out one connection, so a wrong address, password or
/// certificate is reported now rather than at the first query.
pub(crate) async fn connect(url: &DatabaseUrl) -> Result<Pool, StoreError> {
    let location = url.redacted();
    let (driver_url, tls) = split_tls_params(url.expose()).map_err(|reason| {
        StoreError::Other(format!("invalid database URL {location}: {reason}"))
    })?;
    let mut config: tokio_postgres::Config = driver_url
        .parse()
        .map_err(|err| StoreError::Other(format!("invalid database URL {location}: {err}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if matches!(tls.mode, TlsMode::VerifyCa | TlsMode::VerifyFull) {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
    }
    let connector = MakeRustlsConnect::new(tls_config(&tls)?);
    // Verified recycling runs a trivial query before a pooled connection is handed out, so after
    // a server restart the first call gets a fresh connection instead of a dead one.
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CHECKOUT_TIMEOUT))
        .create_timeout(Some(CHECKOUT_TIMEOUT))
        .recycle_timeout(Some(CHECKOUT_TIMEOUT))
        .build()
        .map_err(|err| StoreError::Other(format!("cannot set up a pool for {location}: {err}")))?;
    drop(pool.get().await.map_err(|err| {
        StoreError::Unavailable(format!("cannot connect to {location}: {}", describe(&err)))
    })?);
    Ok(pool)
}

/// Applies `runner`'s pending migrations while holding the session-level advisory lock
/// `lock_key`, so concurrent openers (other processes included) migrate one at a time and the
/// later ones find nothing left to do.
///
/// Give each migration set its own lock key (see [`advisory_key`]) and its own history table
/// (`Runner::set_migration_table_name`): refinery's default table would make two sets sharing a
/// database see each other's versions.
pub(crate) async fn migrate(
    pool: &Pool,
    runner: &refinery::Runner,
    lock_key: i64,
) -> Result<(), StoreError> {
    let mut conn = pool.get().await.map_err(|err| pool_error(&err))?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&lock_key])
        .await
        .map_err(|err| query_error(&err))?;
    let outcome = runner.run_async(&mut **conn).await;
    let unlocked = conn
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key])
        .await;
    if outcome.is_err() || unlocked.is_err() {
        // A connection that may still hold the lock or sit in an aborted transaction must not go
        // back to the pool; closing it releases whatever it held.
        drop(deadpool_postgres::Object::take(conn));
    }
    outcome.map_err(|err| {
        let text = describe(&err);
        if err_chain_mentions_connection(&err) {
            StoreError::Unavailable(format!("migration interrupted: {text}"))
        } else {
            StoreError::Other(format!("migration failed: {text}"))
        }
    })?;
    unlocked.map_err(|err| query_error(&err))?;
    Ok(())
}

/// A stable advisory-lock key derived from a name (64-bit FNV-1a), so each migration set can
/// name its lock instead of reserving a magic number. Stable across builds and Rust versions,
/// which `std`'s hasher is not promised to be.
pub(crate) const fn advisory_key(name: &str) -> i64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Maps a failure to obtain a pooled connection. Every kind means the database cannot be
/// reached right now (down, refusing, timing out), so all are `Unavailable`.
pub(crate) fn pool_error(err: &PoolError) -> StoreError {
    StoreError::Unavailable(describe(err))
}

/// Maps a failed statement: a lost or refused connection is `Unavailable`, a unique violation
/// is `Conflict`, anything else `Other`. The message includes the server's text, which names
/// objects but never connection credentials.
pub(crate) fn query_error(err: &tokio_postgres::Error) -> StoreError {
    let text = describe(err);
    if is_connection_loss(err) {
        return StoreError::Unavailable(text);
    }
    match err.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(text)
        }
        _ => StoreError::Other(text),
    }
}

/// Whether the statement failed because the connection went away or the server is not
/// accepting work, as opposed to the statement itself being wrong.
fn is_connection_loss(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.as_db_error() {
        // Class 08 is "connection exception"; 57P01-57P03 are shutdown and start-up states.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        // No server error at all: the failure was I/O or the protocol stream breaking.
        None => true,
    }
}

fn err_chain_mentions_connection(err: &refinery::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(pg) = inner.downcast_ref::<tokio_postgres::Error>() {
            return is_connection_loss(pg);
        }
        source = inner.source();
    }
    false
}

/// An error with its chain of causes, `outer: inner: innermost`, skipping repeats (several
/// drivers put their cause's text into their own message as well).
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

// --- TLS ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug)]
struct TlsParams {
    mode: TlsMode,
    /// `sslrootcert`; `None` (or `system`) means the system store.
    root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query, returning the URL tokio-postgres
/// should parse and the TLS wishes. `disable`/`prefer`/`require` stay in the URL, since the
/// driver decides from them whether to negotiate TLS at all.
fn split_tls_params(url: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams {
        mode: TlsMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                params.mode = match value {
                    "disable" => TlsMode::Disable,
                    "allow" | "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => return Err(format!("unknown sslmode {other:?}")),
                };
                match params.mode {
                    // libpq's `allow` tries plain first; encrypting when offered is no worse.
                    TlsMode::Prefer => kept.push("sslmode=prefer".to_owned()),
                    TlsMode::Disable | TlsMode::Require => kept.push(pair.to_owned()),
                    TlsMode::VerifyCa | TlsMode::VerifyFull => {}
                }
            }
            "sslrootcert" => {
                let path = percent_decode(value)?;
                params.root_cert = (path != "system").then(|| PathBuf::from(path));
            }
            _ => kept.push(pair.to_owned()),
        }
    }
    // libpq: with a root certificate at hand, `require` verifies the chain.
    if params.mode == TlsMode::Require && params.root_cert.is_some() {
        params.mode = TlsMode::VerifyCa;
        kept.retain(|pair| pair != "sslmode=require");
    }
    let driver_url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((driver_url, params))
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

fn tls_config(params: &TlsParams) -> Result<rustls::ClientConfig, StoreError> {
    // ring is named explicitly instead of relying on a process-wide default provider, which
    // would depend on which other crates happen to enable which rustls backend.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| StoreError::Other(format!("TLS set-up failed: {err}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match params.mode {
        // With `disable` the driver never starts TLS; the verifier is never consulted.
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => {
            Arc::new(EncryptOnly(Arc::clone(&provider)))
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let roots = Arc::new(load_roots(params.root_cert.as_ref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|err| StoreError::Other(format!("TLS set-up failed: {err}")))?;
            if params.mode == TlsMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn load_roots(file: Option<&PathBuf>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|err| {
                    StoreError::Other(format!("cannot read sslrootcert {}: {err}", path.display()))
                })?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Other(match file {
            Some(path) => format!("sslrootcert {} holds no usable certificate", path.display()),
            None => "no trusted root certificates found in the system store; install \
                     ca-certificates or set sslrootcert in the database URL"
                .to_owned(),
        }));
    }
    Ok(roots)
}

/// libpq's `prefer`/`require`: the link is encrypted and the handshake signatures are checked,
/// but the server's certificate is not (protection from eavesdropping, not impersonation).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must lead to a trusted root, the name may differ. webpki checks
/// the chain before the name, so a name mismatch means the chain already passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_defaults_to_prefer() {
        let (url, tls) = split_tls_params("postgres://u:p@db/wa").unwrap();
        assert_eq!(url, "postgres://u:p@db/wa");
        assert_eq!(tls.mode, TlsMode::Prefer);
        assert!(tls.root_cert.is_none());
    }

    #[test]
    fn require_stays_in_the_url_for_the_driver() {
        let (url, tls) =
            split_tls_params("postgres://db/wa?application_name=x&sslmode=require").unwrap();
        assert_eq!(url, "postgres://db/wa?application_name=x&sslmode=require");
        assert_eq!(tls.mode, TlsMode::Require);
    }

    #[test]
    fn verifying_modes_and_root_cert_are_taken_out() {
        let (url, tls) = split_tls_params(
            "postgresql://db/wa?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(url, "postgresql://db/wa?connect_timeout=3");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn require_with_a_root_cert_verifies_the_chain() {
        let (url, tls) =
            split_tls_params("postgres://db/wa?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(url, "postgres://db/wa");
        assert_eq!(tls.mode, TlsMode::VerifyCa);
    }

    #[test]
    fn system_root_cert_means_the_system_store() {
        let (_, tls) =
            split_tls_params("postgres://db/wa?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        assert!(tls.root_cert.is_none());
    }

    #[test]
    fn unknown_sslmode_is_refused() {
        assert!(split_tls_params("postgres://db/wa?sslmode=sometimes").is_err());
    }

    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        assert_eq!(advisory_key("a"), advisory_key("a"));
        assert_ne!(advisory_key("whatsapp session"), advisory_key("archive"));
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(advisory_key(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
    }

    #[tokio::test]
    async fn connection_errors_hide_the_password() {
        // Nothing listens on port 1; the error must name the place but not the secret.
        let url =
            DatabaseUrl::parse("t", "postgres://me:s3cret@127.0.0.1:1/wa?sslmode=disable").unwrap();
        let err = connect(&url).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{text}");
        assert!(text.contains("me:***@127.0.0.1:1"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
