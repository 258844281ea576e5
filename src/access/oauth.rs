//! OAuth 2.1 access tokens, as the MCP authorization spec has a server check them: this server
//! is a resource server. A bearer that is not one of the static tokens and looks like a JWT is
//! verified here against the configured issuer's signing keys, and what it may do comes from
//! its scopes (or, for Google ID tokens, from the accounts configured for its e-mail address).
//!
//! The keys are fetched when a token first needs them (the issuer's metadata names its JWKS),
//! kept for an hour, and fetched again at once when a token names a key that is not in the set,
//! which is how a rotation shows. Fetches are at least [`REFETCH_FLOOR`] apart, so tokens with
//! made-up key ids cannot turn this server into a load on the issuer. An issuer that cannot be
//! reached never stops the service: tokens wait for it (503) while static tokens keep working.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::Grant;
use crate::config::{OAuthSettings, Scope};

/// How long a fetched key set is used before it is fetched again.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The least time between two fetches of the issuer's keys.
pub(crate) const REFETCH_FLOOR: Duration = Duration::from_secs(1);

/// How long one fetch of the metadata or the keys may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest metadata or key set read.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// The algorithms a token may be signed with: asymmetric ones only, so a key published for
/// verifying can never be used as a shared secret, and `none` is not a name this list has.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OAuthError {
    /// The token is not valid here (RFC 6750 `invalid_token`); the words say why.
    #[error("{0}")]
    Invalid(&'static str),
    /// A valid token of an account that `[oauth.accounts]` does not list.
    #[error("this account is not among those let in ([oauth.accounts])")]
    AccountNotListed,
    /// The issuer's keys could not be fetched, so the token cannot be checked yet.
    #[error("the authorization server's signing keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// The claims read from a verified token (the registered ones are checked by `jsonwebtoken`).
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    scope: Option<String>,
    /// Some servers list scopes as `scp`, an array or a string.
    #[serde(default)]
    scp: Option<serde_json::Value>,
    #[serde(default)]
    email: Option<String>,
    /// Google sends a boolean, some servers the string "true".
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

/// One usable key of the issuer's set.
#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    /// The algorithms this key may verify: its own `alg` if it names one, else those of its
    /// type (and curve).
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<VerifyKey>,
    fetched_at: Option<Instant>,
    tried_at: Option<Instant>,
}

/// Checks access tokens for one `[oauth]` configuration.
pub struct OAuthVerifier {
    settings: OAuthSettings,
    validation: Validation,
    keys: tokio::sync::RwLock<KeySet>,
    /// Held while fetching, so concurrent requests fetch once.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthVerifier")
            .field("issuer", &self.settings.issuer)
            .field("audience", &self.settings.audience)
            .finish_non_exhaustive()
    }
}

impl OAuthVerifier {
    pub fn new(settings: OAuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        let mut issuers = vec![settings.issuer.clone()];
        issuers.extend(settings.issuer_aliases.iter().cloned());
        validation.set_issuer(&issuers);
        validation.set_audience(std::slice::from_ref(&settings.audience));
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            settings,
            validation,
            keys: tokio::sync::RwLock::new(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// What `token` grants, once its signature, issuer, audience and times are checked.
    pub async fn verify(&self, token: &str) -> Result<Grant, OAuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // `alg: none`, HS256 with no key of that kind, or no JWT at all.
            OAuthError::Invalid(
                "the token is not a JWT signed with an algorithm this server accepts",
            )
        })?;
        if !ALLOWED.contains(&header.alg) {
            return Err(OAuthError::Invalid(
                "the token is signed with an algorithm this server does not accept",
            ));
        }
        let kid = header.kid.as_deref();
        let mut candidates = self.candidates(kid, header.alg).await?;
        if candidates.is_empty() {
            self.refresh(true).await?;
            candidates = self.candidates(kid, header.alg).await?;
        }
        if candidates.is_empty() {
            return Err(OAuthError::Invalid(
                "the token names a signing key the authorization server does not publish",
            ));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut last = OAuthError::Invalid("the token's signature does not verify");
        for candidate in &candidates {
            match jsonwebtoken::decode::<Claims>(token, &candidate.key, &validation) {
                Ok(data) => return self.grant(&data.claims),
                Err(err) => last = describe(err.kind()),
            }
        }
        Err(last)
    }

    /// The keys that may have signed a token with `kid` and `alg`, after fetching the set if
    /// it was never fetched or is old.
    async fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerifyKey>, OAuthError> {
        let stale = {
            let set = self.keys.read().await;
            set.fetched_at
                .is_none_or(|fetched| fetched.elapsed() > KEYS_MAX_AGE)
        };
        if stale {
            self.refresh(false).await?;
        }
        let set = self.keys.read().await;
        Ok(set
            .keys
            .iter()
            .filter(|key| kid.is_none() || key.kid.as_deref() == kid)
            .filter(|key| key.algorithms.contains(&alg))
            .cloned()
            .collect())
    }

    /// Fetches the key set again unless a fetch was tried within [`REFETCH_FLOOR`]. A failed
    /// fetch keeps the keys already held; it is an error only when none are held, or when
    /// `wanted` (a token named a key not held) and the fetch itself failed.
    async fn refresh(&self, wanted: bool) -> Result<(), OAuthError> {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let set = self.keys.read().await;
            if set
                .tried_at
                .is_some_and(|tried| tried.elapsed() < REFETCH_FLOOR)
            {
                return if set.fetched_at.is_none() {
                    Err(OAuthError::Unavailable(
                        "the last try failed a moment ago".to_owned(),
                    ))
                } else {
                    Ok(())
                };
            }
        }
        let issuer = self.settings.issuer.clone();
        let fetched = tokio::task::spawn_blocking(move || fetch_keys(&issuer))
            .await
            .unwrap_or_else(|err| Err(format!("the fetch did not finish: {err}")));
        let mut set = self.keys.write().await;
        set.tried_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(
                    issuer = %self.settings.issuer,
                    keys = keys.len(),
                    "fetched the authorization server's signing keys"
                );
                set.keys = keys;
                set.fetched_at = set.tried_at;
                Ok(())
            }
            Err(err) => {
                tracing::warn!(issuer = %self.settings.issuer, error = %err, "cannot fetch the authorization server's signing keys");
                if set.fetched_at.is_none() || wanted {
                    Err(OAuthError::Unavailable(err))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The scopes a verified token carries, or, with `[oauth.accounts]`, those of its account.
    fn grant(&self, claims: &Claims) -> Result<Grant, OAuthError> {
        if !self.settings.accounts.is_empty() {
            let verified = match &claims.email_verified {
                None => true,
                Some(serde_json::Value::Bool(verified)) => *verified,
                Some(serde_json::Value::String(text)) => text == "true",
                Some(_) => false,
            };
            let account = claims
                .email
                .as_deref()
                .filter(|_| verified)
                .map(str::to_lowercase)
                .ok_or(OAuthError::AccountNotListed)?;
            return self
                .settings
                .accounts
                .get(&account)
                .map(|scopes| Grant::of(scopes))
                .ok_or(OAuthError::AccountNotListed);
        }
        let mut names: HashSet<&str> = HashSet::new();
        if let Some(scope) = &claims.scope {
            names.extend(scope.split_whitespace());
        }
        match &claims.scp {
            Some(serde_json::Value::String(text)) => names.extend(text.split_whitespace()),
            Some(serde_json::Value::Array(items)) => {
                names.extend(items.iter().filter_map(serde_json::Value::as_str));
            }
            _ => {}
        }
        let scopes: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|scope| names.contains(scope.as_str()))
            .collect();
        Ok(Grant::of(&scopes))
    }
}

/// The words for a token `jsonwebtoken` refused, safe to send back (they name no key).
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> OAuthError {
    use jsonwebtoken::errors::ErrorKind;
    OAuthError::Invalid(match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        _ => "the token cannot be read",
    })
}

/// The issuer's metadata, as far as it is read here.
#[derive(Deserialize)]
struct IssuerMetadata {
    issuer: String,
    jwks_uri: String,
}

/// The issuer's signing keys: its metadata (OpenID Connect discovery, then RFC 8414), then the
/// JWKS it names. Blocking; runs on tokio's blocking pool.
fn fetch_keys(issuer: &str) -> Result<Vec<VerifyKey>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .tls_config(crate::tls::client_config(None))
        .build()
        .into();
    let base = issuer.trim_end_matches('/');
    let mut metadata = None;
    let mut last_error = String::new();
    for well_known in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        match fetch_json::<IssuerMetadata>(&agent, &format!("{base}{well_known}")) {
            Ok(found) => {
                metadata = Some(found);
                break;
            }
            Err(err) => last_error = err,
        }
    }
    let metadata = metadata.ok_or(last_error)?;
    if metadata.issuer.trim_end_matches('/') != base {
        return Err(format!(
            "the metadata names the issuer {:?}, not the one configured",
            metadata.issuer
        ));
    }
    let jwks_uri = metadata.jwks_uri;
    let scheme_ok = jwks_uri.starts_with("https://")
        || jwks_uri.starts_with("http://127.")
        || jwks_uri.starts_with("http://localhost")
        || jwks_uri.starts_with("http://[::1]");
    if !scheme_ok {
        return Err("the metadata's jwks_uri is not an https:// URL".to_owned());
    }
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: JwkSet = fetch_json(&agent, &jwks_uri)?;
    // A key this server cannot use (an encryption key, a curve it does not know) is skipped
    // rather than failing the whole set.
    Ok(set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| usable(&jwk))
        .collect())
}

fn fetch_json<T: serde::de::DeserializeOwned>(agent: &ureq::Agent, url: &str) -> Result<T, String> {
    let mut response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|err| format!("{url}: {err}"))?;
    if response.status() != 200 {
        return Err(format!("{url}: HTTP {}", response.status().as_u16()));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_to_string()
        .map_err(|err| format!("{url}: {err}"))?;
    serde_json::from_str(&text).map_err(|err| format!("{url}: not the expected JSON: {err}"))
}

/// A signing key of the set, with the algorithms it may verify; `None` for a key that is not
/// for signatures or of a kind this server does not verify with (shared secrets above all).
fn usable(jwk: &Jwk) -> Option<VerifyKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return None;
    }
    let of_type: Vec<Algorithm> = match &jwk.algorithm {
        // The RSA algorithms lead the allowed list.
        AlgorithmParameters::RSA(_) => ALLOWED[..6].to_vec(),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => of_type,
        Some(named) => {
            let named = signing_algorithm(named)?;
            if !of_type.contains(&named) {
                return None;
            }
            vec![named]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

/// The signature algorithm a JWK's `alg` names, if it names an allowed one.
fn signing_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    let algorithm = match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    };
    Some(algorithm)
}

/// True when `token` has the shape of a JWT (three base64url parts), so it is worth handing
/// to [`OAuthVerifier::verify`] rather than refused as an unknown static token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty() && parts != 3
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3 && token.len() <= 16 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_look_like_a_jwt() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("s3cret-token-0123456789"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b c.d"));
        assert!(!looks_like_jwt("a+/.b.c"));
    }

    fn jwk(value: serde_json::Value) -> Option<VerifyKey> {
        usable(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn shared_secrets_and_encryption_keys_are_never_used() {
        assert!(jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).is_none());
        let ed = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "e",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        });
        assert_eq!(jwk(ed.clone()).unwrap().algorithms, vec![Algorithm::EdDSA]);
        let mut encrypting = ed.clone();
        encrypting["use"] = "enc".into();
        assert!(jwk(encrypting).is_none());
        // A key whose own alg is not one of its type's is refused, not re-purposed.
        let mut mislabelled = ed;
        mislabelled["alg"] = "RS256".into();
        assert!(jwk(mislabelled).is_none());
    }

    fn verifier(accounts: &[(&str, &[Scope])]) -> OAuthVerifier {
        OAuthVerifier::new(OAuthSettings {
            issuer: "http://127.0.0.1:1".to_owned(),
            issuer_aliases: Vec::new(),
            audience: "aud".to_owned(),
            resource: None,
            accounts: accounts
                .iter()
                .map(|(account, scopes)| ((*account).to_owned(), scopes.to_vec()))
                .collect(),
        })
    }

    fn claims(value: serde_json::Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn scopes_come_from_scope_or_scp_and_unknown_ones_are_ignored() {
        let v = verifier(&[]);
        let read = Grant::of(&[Scope::Read]);
        let grant = |value| v.grant(&claims(value)).unwrap();
        assert_eq!(
            grant(serde_json::json!({"scope": "openid whatsapp:read"})),
            read
        );
        assert_eq!(grant(serde_json::json!({"scp": ["whatsapp:read"]})), read);
        assert_eq!(
            grant(serde_json::json!({"scp": "whatsapp:send whatsapp:read"})),
            Grant::ALL
        );
        assert_eq!(
            grant(serde_json::json!({"scope": "whatsapp:readx"})),
            Grant::of(&[])
        );
    }

    #[test]
    fn with_accounts_only_a_verified_listed_address_is_let_in() {
        let v = verifier(&[("alice@example.com", &[Scope::Read])]);
        let grant = |value| v.grant(&claims(value));
        assert_eq!(
            grant(serde_json::json!({"email": "Alice@Example.com", "email_verified": true})),
            Ok(Grant::of(&[Scope::Read]))
        );
        // The token's own scopes do not widen what the account has.
        assert_eq!(
            grant(serde_json::json!({"email": "alice@example.com", "scope": "whatsapp:send"})),
            Ok(Grant::of(&[Scope::Read]))
        );
        for refused in [
            serde_json::json!({"email": "alice@example.com", "email_verified": false}),
            serde_json::json!({"email": "alice@example.com", "email_verified": "false"}),
            serde_json::json!({"email": "bob@example.com", "email_verified": true}),
            serde_json::json!({"scope": "whatsapp:read whatsapp:send"}),
        ] {
            assert_eq!(
                grant(refused.clone()),
                Err(OAuthError::AccountNotListed),
                "{refused}"
            );
        }
    }
}
