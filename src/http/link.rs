//! The bridge's linking endpoints: the current QR code, starting a link, pairing codes, logout.
//!
//! The QR string is a credential for a few seconds: it is served here (and drawn on /qr) and
//! nowhere else, never cached and never logged. The POST endpoints change the account, so they
//! refuse requests a browser makes on behalf of another site: a web page the user happens to
//! visit must not be able to unlink their WhatsApp.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::no_store;
use crate::app::AppContext;
use crate::engine::EngineError;
use crate::jid::Jid;
use crate::state::{Account, LinkState};

/// What `GET /api/link` answers: everything a client needs to show the code or report the link.
#[derive(Debug, Serialize)]
struct LinkView {
    state: LinkState,
    status_text: String,
    /// The string to encode as a QR code while one is waiting to be scanned.
    qr: Option<String>,
    qr_expires_at: Option<DateTime<Utc>>,
    account: Option<Account>,
    /// The last problem worth showing, if any.
    error: Option<String>,
}

pub(super) async fn get_link(State(ctx): State<AppContext>) -> Response {
    let status = ctx.status.snapshot();
    let view = LinkView {
        state: status.state,
        status_text: status.headline(),
        qr_expires_at: status.qr.as_ref().map(|qr| {
            qr.issued_at + chrono::Duration::seconds(i64::try_from(qr.valid_for_secs).unwrap_or(0))
        }),
        qr: status.qr.map(|qr| qr.code),
        account: status.account,
        error: status.last_error,
    };
    no_store(axum::Json(view).into_response())
}

pub(super) async fn post_link(State(ctx): State<AppContext>, headers: HeaderMap) -> Response {
    if let Err(refusal) = same_origin(&headers) {
        return *refusal;
    }
    match ctx.engine.start_linking().await {
        Ok(()) => ok_json(serde_json::json!({ "started": true })),
        Err(err) => engine_error(&err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairRequest {
    phone: String,
}

pub(super) async fn post_pair(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = same_origin(&headers) {
        return *refusal;
    }
    let request: PairRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected a JSON body like {{\"phone\": \"+31612345678\"}}: {err}"),
            );
        }
    };
    // Only a phone number will do: a JID or LID would make WhatsApp refuse with a vaguer error.
    let phone = match Jid::from_phone(&request.phone) {
        Ok(phone) => phone,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    match ctx.engine.pair_code(phone).await {
        Ok(code) => ok_json(serde_json::json!({ "code": code })),
        Err(err) => engine_error(&err),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    #[serde(default)]
    wipe_archive: bool,
}

pub(super) async fn post_logout(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = same_origin(&headers) {
        return *refusal;
    }
    // An empty body means the safe default: keep the archive.
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        match serde_json::from_slice::<LogoutRequest>(&body) {
            Ok(request) => request,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected a JSON body like {{\"wipe_archive\": false}}: {err}"),
                );
            }
        }
    };
    match ctx.engine.logout(request.wipe_archive).await {
        Ok(()) => ok_json(serde_json::json!({
            "logged_out": true,
            "archive_wiped": request.wipe_archive,
        })),
        Err(err) => engine_error(&err),
    }
}

/// Lets a request through when no browser says it comes from another site.
///
/// Browsers send `Sec-Fetch-Site` and `Origin` on cross-site POSTs; command-line clients send
/// neither. `Origin` must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> Result<(), Box<Response>> {
    crate::access::cross_site(headers).map_or(Ok(()), |why| {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            &format!("refused a cross-site request ({why}): use the bridge's own pages or a command-line client"),
        )))
    })
}

fn ok_json(value: serde_json::Value) -> Response {
    no_store(axum::Json(value).into_response())
}

fn error(status: StatusCode, message: &str) -> Response {
    no_store((status, axum::Json(serde_json::json!({ "error": message }))).into_response())
}

/// Maps an engine refusal to a status code: 503 when the engine cannot act at all right now,
/// 400 for a number WhatsApp will not pair, 409 when the account's state forbids it.
fn engine_error(err: &EngineError) -> Response {
    let status = match err {
        EngineError::Unavailable(_) | EngineError::Disconnected(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        EngineError::Recipient(_) => StatusCode::BAD_REQUEST,
        EngineError::NotLinked
        | EngineError::NotFound(_)
        | EngineError::Media(_)
        | EngineError::Failed(_) => StatusCode::CONFLICT,
    };
    error(status, &err.to_string())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::access::AccessPolicy;
    use crate::config::Config;
    use crate::engine::{DownloadedMedia, Engine, MediaKind, OutgoingFile};
    use crate::http::bridge_router;
    use crate::state::{EngineStatus, QrCode, StatusHandle};
    use crate::store::model::Message;

    /// An engine that records the linking calls and answers them as told.
    #[derive(Debug, Default)]
    struct LinkEngine {
        calls: Mutex<Vec<String>>,
        refuse: Option<EngineError>,
    }

    impl LinkEngine {
        fn answer(&self, call: String) -> Result<(), EngineError> {
            self.calls.lock().unwrap().push(call);
            self.refuse.clone().map_or(Ok(()), Err)
        }
    }

    #[async_trait::async_trait]
    impl Engine for LinkEngine {
        async fn send_text(
            &self,
            _: Jid,
            _: crate::engine::OutgoingText,
        ) -> Result<Message, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn send_file(
            &self,
            _: Jid,
            _: OutgoingFile,
            _: MediaKind,
            _: Option<String>,
        ) -> Result<Message, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn send_voice_note(&self, _: Jid, _: OutgoingFile) -> Result<Message, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn react(&self, _: Jid, _: String, _: String) -> Result<(), EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn edit_text(&self, _: Jid, _: String, _: String) -> Result<Message, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn revoke(&self, _: Jid, _: String) -> Result<(), EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn send_poll(
            &self,
            _: Jid,
            _: crate::engine::OutgoingPoll,
        ) -> Result<Message, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn mark_read(&self, _: Jid, _: Vec<String>) -> Result<(), EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn request_history(&self, _: Jid, _: u32) -> Result<(), EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn download_media(&self, _: Jid, _: String) -> Result<DownloadedMedia, EngineError> {
            Err(EngineError::NotLinked)
        }
        async fn start_linking(&self) -> Result<(), EngineError> {
            self.answer("link".to_owned())
        }
        async fn pair_code(&self, phone: Jid) -> Result<String, EngineError> {
            self.answer(format!("pair {}", phone.user()))
                .map(|()| "ABCD-EFGH".to_owned())
        }
        async fn logout(&self, wipe_archive: bool) -> Result<(), EngineError> {
            self.answer(format!("logout {wipe_archive}"))
        }
    }

    struct Rig {
        router: axum::Router,
        engine: Arc<LinkEngine>,
        status: StatusHandle,
        _dir: tempfile::TempDir,
    }

    async fn rig(refuse: Option<EngineError>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_with_env(None, &|_| None).unwrap();
        let url = crate::config::DatabaseUrl::parse(
            "test",
            &format!("sqlite://{}", dir.path().join("a.db").display()),
        )
        .unwrap();
        let store = crate::store::open(&url).await.unwrap();
        let engine = Arc::new(LinkEngine {
            calls: Mutex::default(),
            refuse,
        });
        let status = StatusHandle::new(EngineStatus::new(LinkState::NotLinked));
        let ctx = AppContext::new(config, status.clone(), store, engine.clone());
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let router = bridge_router(ctx, AccessPolicy::new(None)).layer(MockConnectInfo(peer));
        Rig {
            router,
            engine,
            status,
            _dir: dir,
        }
    }

    async fn call(
        rig: &Rig,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = rig
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn get_link_serves_the_code_uncached_and_only_while_it_waits() {
        let rig = rig(None).await;
        let (status, headers, body) = call(&rig, "GET", "/api/link", &[], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["state"], "not_linked");
        assert!(body["qr"].is_null() && body["account"].is_null(), "{body}");

        let issued_at = Utc::now();
        rig.status.update(|s| {
            s.state = LinkState::AwaitingScan;
            s.qr = Some(QrCode {
                code: "2@ref,key,identity,secret".to_owned(),
                issued_at,
                valid_for_secs: 20,
            });
        });
        let (_, headers, body) = call(&rig, "GET", "/api/link", &[], "").await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["state"], "awaiting_scan");
        assert_eq!(body["qr"], "2@ref,key,identity,secret");
        let expires: DateTime<Utc> = body["qr_expires_at"].as_str().unwrap().parse().unwrap();
        assert_eq!((expires - issued_at).num_seconds(), 20);
        assert!(
            body["status_text"].as_str().unwrap().contains("QR"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn posts_reach_the_engine() {
        let rig = rig(None).await;
        let (status, _, body) = call(&rig, "POST", "/api/link", &[], "").await;
        assert_eq!((status, &body["started"]), (StatusCode::OK, &true.into()));
        let (status, _, body) = call(
            &rig,
            "POST",
            "/api/pair",
            &[("content-type", "application/json")],
            r#"{"phone": "+31 6 1234 5678"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["code"], "ABCD-EFGH");
        let (status, _, body) = call(
            &rig,
            "POST",
            "/api/logout",
            &[],
            r#"{"wipe_archive": true}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["archive_wiped"], true);
        let (status, _, _) = call(&rig, "POST", "/api/logout", &[], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            *rig.engine.calls.lock().unwrap(),
            ["link", "pair 31612345678", "logout true", "logout false"]
        );
    }

    #[tokio::test]
    async fn bad_bodies_and_numbers_are_400_and_never_reach_the_engine() {
        let rig = rig(None).await;
        for (path, body) in [
            ("/api/pair", ""),
            ("/api/pair", "{\"phone\": 31612345678}"),
            ("/api/pair", "{\"phone\": \"12\"}"),
            ("/api/pair", "{\"phone\": \"31612345678@lid\"}"),
            ("/api/pair", "{\"phone\": \"+31612345678\", \"extra\": 1}"),
            ("/api/logout", "{\"wipe_archive\": \"yes\"}"),
            ("/api/logout", "not json"),
        ] {
            let (status, _, answer) = call(&rig, "POST", path, &[], body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
            assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        assert!(rig.engine.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn engine_refusals_keep_their_words() {
        let unavailable = rig(Some(EngineError::Unavailable("no engine here".to_owned()))).await;
        let (status, _, body) = call(&unavailable, "POST", "/api/link", &[], "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].as_str().unwrap().contains("no engine here"));

        let linked = rig(Some(EngineError::Failed("already linked".to_owned()))).await;
        let (status, _, body) = call(
            &linked,
            "POST",
            "/api/pair",
            &[],
            r#"{"phone": "+31612345678"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().unwrap().contains("already linked"));
    }

    #[tokio::test]
    async fn cross_site_posts_are_refused() {
        let rig = rig(None).await;
        for headers in [
            &[("origin", "https://evil.example")][..],
            &[("origin", "null")],
            &[("origin", "http://localhost:8080.evil.example")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site")],
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://localhost:8080"),
            ],
        ] {
            for path in ["/api/link", "/api/pair", "/api/logout"] {
                let body = r#"{"phone": "+31612345678"}"#;
                let body = if path == "/api/pair" { body } else { "" };
                let (status, _, answer) = call(&rig, "POST", path, headers, body).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{path} {headers:?}: {answer}"
                );
            }
        }
        assert!(rig.engine.calls.lock().unwrap().is_empty());

        // The bridge's own pages may post.
        let own = [
            ("origin", "http://localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        let (status, _, _) = call(&rig, "POST", "/api/logout", &own, "").await;
        assert_eq!(status, StatusCode::OK);
    }
}
