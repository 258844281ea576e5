//! OAuth access tokens against an authorization server the test runs itself on loopback: its
//! own keys (ES256, and RS256 as Google signs), its discovery document and JWKS. Every way a
//! token can be wrong is refused with the right status and challenge, and only a valid token
//! with the right scope gets anything done; key rotation, an issuer that is down, and the
//! Google form of `OAUTH_ENABLED=true` (accounts mapped to scopes) included.

mod mcp_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_support::{ALICE, Client, TOKEN, rig};
use ring::rand::SystemRandom;
use ring::signature::KeyPair as _;
use serde_json::{Value, json};
use tower::ServiceExt;
use whatsapp_mcp::config::{Config, OAuthSettings};

const PEER: &str = "192.0.2.7:50000";
const AUDIENCE: &str = "https://whatsapp-mcp.test/mcp";

/// A signing key of the test issuer: what signs, and the JWK it publishes.
#[derive(Clone)]
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: Arc<EncodingKey>,
    jwk: Value,
}

impl SigningKey {
    fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: Arc::new(EncodingKey::from_ec_der(pkcs8.as_ref())),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }),
        }
    }

    /// An RSA key as Google's are (RS256), made with the openssl command.
    fn rs256(kid: &str, dir: &Path) -> Self {
        let pem = dir.join(format!("{kid}.pem"));
        let der = dir.join(format!("{kid}.der"));
        let run = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl (tests/run.sh installs it)");
            assert!(status.success(), "openssl {args:?}");
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            pem.to_str().unwrap(),
        ]);
        run(&[
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-outform",
            "DER",
            "-traditional",
            "-out",
            der.to_str().unwrap(),
        ]);
        let der = std::fs::read(der).unwrap();
        let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: Arc::new(EncodingKey::from_rsa_der(&der)),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The authorization server: discovery and JWKS on a loopback port, with a key set the test
/// changes, and a count of JWKS fetches.
struct Issuer {
    url: String,
    published: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let published: Arc<Mutex<Vec<Value>>> =
            Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "response_types_supported": ["code"],
        });
        let (set, count) = (published.clone(), fetches.clone());
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let keys = set.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            published,
            fetches,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.published.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Claims of a token valid now for `scope`.
    fn claims(&self, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": "agent-1", "scope": scope,
            "iat": now, "nbf": now - 5, "exp": now + 600,
        })
    }
}

/// The test's issuer with `keys`, and the MCP port of a server that takes its tokens, as a
/// remote peer sees it.
async fn served(keys: &[&SigningKey]) -> (Issuer, mcp_support::Rig, Router) {
    let issuer = Issuer::start(keys).await;
    let settings = settings_for(&issuer.url);
    let rig = rig(|config| config.oauth = Some(settings)).await;
    let app = rig.bare_app(PEER);
    (issuer, rig, app)
}

fn settings_for(issuer: &str) -> OAuthSettings {
    OAuthSettings {
        issuer: issuer.to_owned(),
        issuer_aliases: Vec::new(),
        audience: AUDIENCE.to_owned(),
        resource: None,
        accounts: Default::default(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// One JSON-RPC call on `/mcp` with `authorization` (if any): status, `WWW-Authenticate`, body.
async fn post(
    app: &Router,
    authorization: Option<&str>,
    body: Value,
) -> (StatusCode, String, String) {
    let mut request = Request::post("/mcp")
        .header("host", "mcp.example:3000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        challenge,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "oauth-test", "version": "1"}}})
}

/// A client on the MCP port from a remote peer, showing `token`.
async fn session(app: &Router, token: &str) -> Client {
    let mut client = Client::new(app.clone());
    client.headers = vec![("authorization", format!("Bearer {token}"))];
    client.initialize().await;
    client
}

const METADATA: &str =
    "resource_metadata=\"http://mcp.example:3000/.well-known/oauth-protected-resource/mcp\"";

#[tokio::test]
async fn only_a_valid_token_gets_in_and_each_wrong_one_is_told_why() {
    let key = SigningKey::es256("k1");
    let stranger = SigningKey::es256("k1");
    let (issuer, rig, app) = served(&[&key]).await;

    // Without a token: 401 naming the resource metadata.
    let (status, challenge, _) = post(&app, None, initialize()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains(METADATA), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    let valid = issuer.claims("whatsapp:read whatsapp:send");
    let now = now();
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid.to_string());
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        let secret = key.jwk.to_string();
        jsonwebtoken::encode(
            &header,
            &valid,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let unknown_kid = {
        let mut other = SigningKey::es256("k-unknown");
        other.kid = "k-unknown".to_owned();
        other.sign(&valid)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(valid.clone(), "exp", json!(now - 120))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&with(valid.clone(), "nbf", json!(now + 300))),
            "not valid yet",
        ),
        (
            "wrong audience",
            key.sign(&with(
                valid.clone(),
                "aud",
                json!("https://other.example/mcp"),
            )),
            "another audience",
        ),
        (
            "wrong issuer",
            key.sign(&with(valid.clone(), "iss", json!("https://evil.example"))),
            "another issuer",
        ),
        ("bad signature", stranger.sign(&valid), "signature"),
        ("alg none", format!("{header_none}.{payload}."), "algorithm"),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            "algorithm",
        ),
        ("unknown kid", unknown_kid, "signing key"),
        (
            "no exp",
            key.sign(&json!({"iss": issuer.url, "aud": AUDIENCE, "scope": "whatsapp:read"})),
            "lacks",
        ),
    ];
    for (name, token, reason) in &cases {
        let (status, challenge, body) =
            post(&app, Some(&format!("Bearer {token}")), initialize()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(METADATA),
            "{name}: {challenge}"
        );
        assert!(challenge.contains(reason), "{name}: {challenge}");
        assert!(!body.contains("\"result\""), "{name}: {body}");
    }
    // A bearer that is neither a static token nor a JWT is simply unknown.
    let (status, challenge, _) = post(&app, Some("Bearer not-a-token-at-all"), initialize()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!challenge.contains("error="), "{challenge}");

    // The valid token: a session, a read and an act.
    let token = key.sign(&valid);
    let mut client = session(&app, &token).await;
    client.ok("get_sync_status", json!({})).await;
    client
        .ok("send_message", json!({"recipient": ALICE, "message": "hi"}))
        .await;
    assert_eq!(rig.calls().len(), 1, "exactly the one valid send went out");
    // The keys were fetched once for all of the above, and once more at most for the unknown
    // key id if a second had passed by then.
    assert!(issuer.fetches.load(Ordering::SeqCst) <= 2);

    // The static token still works beside OAuth.
    let mut main = session(&app, TOKEN).await;
    main.ok("get_sync_status", json!({})).await;
}

#[tokio::test]
async fn a_token_without_the_send_scope_reads_and_is_refused_every_act() {
    let key = SigningKey::es256("k1");
    let (issuer, rig, app) = served(&[&key]).await;
    let reader = key.sign(&issuer.claims("openid whatsapp:read"));
    let mut client = session(&app, &reader).await;
    client.ok("get_sync_status", json!({})).await;
    client.ok("list_chats", json!({})).await;
    let (status, challenge, body) = post(
        &app,
        Some(&format!("Bearer {reader}")),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "send_message", "arguments": {"recipient": ALICE, "message": "x"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("whatsapp:send"),
        "{challenge}"
    );
    assert!(rig.calls().is_empty());
    // A token with no scope of ours reads nothing either.
    let bare = key.sign(&issuer.claims("openid profile"));
    let mut client = session(&app, &bare).await;
    let response = client
        .request(
            "tools/call",
            json!({"name": "get_sync_status", "arguments": {}}),
        )
        .await;
    assert!(response.get("error").is_some(), "{response}");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let old = SigningKey::es256("2026-11");
    let new = SigningKey::es256("2026-12");
    let (issuer, _rig, app) = served(&[&old]).await;
    let claims = issuer.claims("whatsapp:read");
    session(&app, &old.sign(&claims))
        .await
        .ok("get_sync_status", json!({}))
        .await;
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    issuer.publish(&[&new]);
    // Fetches are at least a second apart, so a flood of made-up key ids costs the issuer
    // one request a second; the rotated key is picked up once that has passed.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    session(&app, &new.sign(&claims))
        .await
        .ok("get_sync_status", json!({}))
        .await;
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
    // The retired key is no longer accepted.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, challenge, _) = post(
        &app,
        Some(&format!("Bearer {}", old.sign(&claims))),
        initialize(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("signing key"), "{challenge}");
    // Made-up key ids in a burst: at most one more fetch.
    let before = issuer.fetches.load(Ordering::SeqCst);
    for n in 0..20 {
        let mut made_up = new.clone();
        made_up.kid = format!("made-up-{n}");
        let (status, _, _) = post(
            &app,
            Some(&format!("Bearer {}", made_up.sign(&claims))),
            initialize(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(issuer.fetches.load(Ordering::SeqCst) <= before + 1);
}

#[tokio::test]
async fn an_issuer_that_is_down_delays_tokens_and_nothing_else() {
    let key = SigningKey::es256("k1");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let settings = settings_for(&dead);
    let rig = rig(|config| config.oauth = Some(settings)).await;
    let app = rig.bare_app(PEER);
    let token = key.sign(&json!({"iss": dead, "aud": AUDIENCE, "exp": now() + 600}));
    let (status, _, body) = post(&app, Some(&format!("Bearer {token}")), initialize()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("temporarily_unavailable"), "{body}");
    session(&app, TOKEN)
        .await
        .ok("get_sync_status", json!({}))
        .await;
}

#[tokio::test]
async fn the_resource_metadata_names_the_issuer_on_both_ports() {
    let key = SigningKey::es256("k1");
    let (issuer, rig, mcp) = served(&[&key]).await;
    let bridge = whatsapp_mcp::http::bridge_router(
        rig.ctx.clone(),
        whatsapp_mcp::access::AccessPolicy::from_config(&rig.ctx.config),
    )
    .layer(axum::extract::connect_info::MockConnectInfo(
        PEER.parse::<std::net::SocketAddr>().unwrap(),
    ));
    for (app, path, resource) in [
        (
            mcp,
            "/.well-known/oauth-protected-resource/mcp",
            "http://mcp.example:3000/mcp",
        ),
        (
            bridge.clone(),
            "/.well-known/oauth-protected-resource",
            "http://mcp.example:3000",
        ),
    ] {
        let response = app
            .oneshot(
                Request::get(path)
                    .header("host", "mcp.example:3000")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(document["resource"], json!(resource), "{document}");
        assert_eq!(document["authorization_servers"], json!([issuer.url]));
        assert_eq!(
            document["scopes_supported"],
            json!(["whatsapp:read", "whatsapp:send"])
        );
    }
    // The bridge's own API takes an access token too, with the scope its route needs.
    let reader = key.sign(&issuer.claims("whatsapp:read"));
    let status_of = |path: &'static str, method: &'static str| {
        let bridge = bridge.clone();
        let reader = reader.clone();
        async move {
            bridge
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(path)
                        .header("host", "mcp.example:8080")
                        .header("authorization", format!("Bearer {reader}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status_of("/api/status", "GET").await, StatusCode::OK);
    assert_eq!(
        status_of("/api/logout", "POST").await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_google_form_lets_in_listed_accounts_with_their_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::rs256("google-1", dir.path());
    let issuer = Issuer::start(&[&key]).await;
    let client_id = "1234567890-abc.apps.googleusercontent.com";
    // OAUTH_ENABLED=true as the seed has it, Google's client id as audience, and the accounts
    // let in; the issuer is the test's, since Google cannot be reached here.
    let env = |name: &str| match name {
        "OAUTH_ENABLED" => Some("true".to_owned()),
        "GOOGLE_CLIENT_ID" => Some(client_id.to_owned()),
        "WHATSAPP_MCP_OAUTH_ISSUER" => Some(issuer.url.clone()),
        _ => None,
    };
    let loaded = Config::from_toml(
        "[oauth.accounts]\n\"Owner@Example.com\" = [\"whatsapp:read\", \"whatsapp:send\"]\n\
         \"reader@example.com\" = [\"whatsapp:read\"]\n",
        Path::new("/test/config.toml"),
        &env,
    )
    .unwrap();
    let settings = loaded.oauth.clone().unwrap();
    assert_eq!(settings.audience, client_id);
    let rig = rig(|config| config.oauth = Some(settings)).await;
    let app = rig.bare_app(PEER);
    // What a Google ID token carries: no scope, an e-mail address and whether it is verified.
    let id_token = |email: &str, verified: bool| {
        let now = now();
        key.sign(&json!({
            "iss": issuer.url, "azp": client_id, "aud": client_id, "sub": "1098",
            "email": email, "email_verified": verified, "iat": now, "exp": now + 3600,
        }))
    };
    let mut owner = session(&app, &id_token("owner@example.com", true)).await;
    owner
        .ok("send_message", json!({"recipient": ALICE, "message": "hi"}))
        .await;
    let reader_token = id_token("reader@example.com", true);
    let mut reader = session(&app, &reader_token).await;
    reader.ok("list_chats", json!({})).await;
    let (status, _, _) = post(
        &app,
        Some(&format!("Bearer {reader_token}")),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "send_message", "arguments": {"recipient": ALICE, "message": "x"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (email, verified) in [("stranger@example.com", true), ("owner@example.com", false)] {
        let (status, challenge, _) = post(
            &app,
            Some(&format!("Bearer {}", id_token(email, verified))),
            initialize(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{email} {verified}");
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
    }
    assert_eq!(rig.calls().len(), 1);
}
