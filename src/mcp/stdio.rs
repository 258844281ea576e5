//! `whatsapp-mcp stdio`: MCP on stdin/stdout for desktop clients such as Claude Desktop.
//!
//! The WhatsApp session must live in one process only (two connections with one device
//! identity knock each other off), so by default this command is a relay: each JSON-RPC line
//! from stdin is POSTed to the daemon's Streamable HTTP endpoint at `WHATSAPP_BRIDGE_URL/mcp`
//! and every message of the answer (plain JSON or an event stream) is written to stdout as one
//! line. Connecting starts a socket-activated daemon. `--standalone` instead serves the tools
//! in this process, with its own store and engine.
//!
//! Nothing but protocol is written to stdout; diagnostics go to stderr (or the journal).
//!
//! The relay outlives the service: when the service restarts (an upgrade, `systemctl restart`,
//! the watchdog) the next request finds its session unknown; the relay then opens a new one
//! with the client's own `initialize` and sends the request again, which the service had not
//! run. A request that could not reach the service at all is sent again too, and so, once, is
//! one whose connection broke before its answer came: every acting call goes out with a request
//! key in its `_meta`, and the service's ledger ([`super::ledger`]) answers a key it has seen
//! with the first call's outcome instead of acting twice.
//!
//! What the service says on its own (a watched chat changed, the list of chats grew) comes on
//! the session's GET stream, which the relay holds open from `notifications/initialized` on and
//! reopens after a restart; the resources the client subscribed to are subscribed to again in
//! the new session, so a desktop client keeps hearing of its chats across an upgrade.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use serde_json::{Value, json};

use crate::bridge_client::{BridgeClient, Limits};
use crate::config::Config;
use crate::exit::EXIT_UNREACHABLE;

use super::tools::WhatsAppTools;

/// How [`Relay::probe`] words a refusal for want of the right token.
const UNAUTHORIZED: &str = "HTTP 401 Unauthorized";

/// How long to wait for the daemon to accept a connection (socket activation included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a request keeps being offered to a service that refuses connections (one that
/// binds its own ports and is restarting), and the pause between tries.
const REFUSED_GRACE: Duration = Duration::from_secs(10);
const REFUSED_PAUSE: Duration = Duration::from_millis(250);

/// The id of the relay's own `initialize` when it opens a new session for the client.
const RENEW_ID: &str = "whatsapp-mcp-relay-renew";

/// The ids of the relay's own `resources/subscribe` calls in a renewed session get this prefix.
const RESUBSCRIBE_ID: &str = "whatsapp-mcp-relay-resubscribe";

/// The pause before the relay reopens a broken GET stream, doubled after each failed try up
/// to the longest.
const LISTEN_PAUSE: Duration = Duration::from_millis(250);
const LISTEN_PAUSE_LONGEST: Duration = Duration::from_secs(5);

/// Runs the `stdio` command; `standalone` serves in-process with the engine that `serve` would
/// pick.
pub fn main(config: Config, standalone: bool) -> ExitCode {
    let sink = crate::logging::init(&config.log_level, config.log_target);
    tracing::debug!(?sink, standalone, "stdio logging initialised");
    if standalone {
        run_standalone(config)
    } else {
        run_relay(&config)
    }
}

fn run_standalone(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("whatsapp-mcp-stdio")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("whatsapp-mcp stdio: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // The engine runs here, with its own session: this process is the one WhatsApp device.
        let ctx = match crate::app::start(config).await {
            Ok(ctx) => ctx,
            Err(err) => {
                eprintln!("whatsapp-mcp stdio: {err}");
                return ExitCode::FAILURE;
            }
        };
        let engine = Arc::clone(&ctx.engine);
        let service = match WhatsAppTools::new(ctx)
            .serve(rmcp::transport::stdio())
            .await
        {
            Ok(service) => service,
            Err(err) => {
                eprintln!("whatsapp-mcp stdio: the MCP client did not initialise: {err}");
                return ExitCode::FAILURE;
            }
        };
        let outcome = service.waiting().await;
        // Close the WhatsApp connection cleanly so the session is saved.
        engine.shutdown().await;
        match outcome {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("whatsapp-mcp stdio: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

/// What the relay knows about its session with the daemon.
#[derive(Debug, Default)]
struct RelayState {
    session_id: Option<String>,
    protocol_version: Option<String>,
    /// The client's `initialize` parameters, to open a new session with after a restart.
    initialize: Option<Value>,
    /// The URIs the client subscribed to, to subscribe to again in a renewed session.
    subscriptions: BTreeSet<String>,
}

/// Whether a request the relay could not complete may have been acted on by the service.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// No connection was made: the service never saw it.
    NotSent,
    /// The connection broke after the request went out.
    Unknown,
}

/// How one exchange with the service ended.
#[derive(Debug)]
enum Exchange {
    /// The answer (or an error standing for it) went to the client.
    Done,
    /// The connection broke after the message may have reached the service, before its answer.
    Cut(String),
}

/// True when a call names itself with a request key (see [`super::ledger`]).
fn has_request_key(message: &Value) -> bool {
    message
        .pointer("/params/_meta")
        .and_then(|meta| meta.get(super::ledger::REQUEST_KEY))
        .is_some_and(|key| !key.is_null())
}

/// The acting call `message` with a fresh request key in its `_meta`, or `None` when it is not
/// an acting call or already has a key.
fn with_request_key(message: &Value) -> Option<Value> {
    if !is_acting_call(message) || has_request_key(message) {
        return None;
    }
    let mut keyed = message.clone();
    let params = keyed.get_mut("params")?.as_object_mut()?;
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        return None;
    }
    meta[super::ledger::REQUEST_KEY] = Value::String(uuid::Uuid::new_v4().to_string());
    Some(keyed)
}

/// True for a `tools/call` of a tool that changes something on WhatsApp.
fn is_acting_call(message: &Value) -> bool {
    message.get("method").and_then(Value::as_str) == Some("tools/call")
        && message
            .pointer("/params/name")
            .and_then(Value::as_str)
            .is_some_and(|name| super::tools::WRITE_TOOLS.contains(&name))
}

/// How far a failed POST got.
fn delivery(err: &ureq::Error) -> Delivery {
    use std::io::ErrorKind;
    match err {
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::NotFound | ErrorKind::AddrNotAvailable
            ) =>
        {
            Delivery::NotSent
        }
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => Delivery::NotSent,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => Delivery::NotSent,
        _ => Delivery::Unknown,
    }
}

/// The relay's connection to the daemon.
#[derive(Debug)]
struct Relay {
    client: BridgeClient,
    /// Where `/mcp` is, for messages.
    url: String,
    state: Mutex<RelayState>,
    stdout: Mutex<std::io::Stdout>,
    /// Set once the GET stream's thread runs.
    listening: AtomicBool,
    /// Set when the client has gone, so the GET stream is not reopened.
    closing: AtomicBool,
}

fn run_relay(config: &Config) -> ExitCode {
    let client = BridgeClient::new(
        config,
        Limits {
            connect: Some(CONNECT_TIMEOUT),
            global: None,
        },
    );
    let base = client.location();
    let relay = Arc::new(Relay {
        url: client.url("/mcp"),
        client,
        state: Mutex::default(),
        stdout: Mutex::new(std::io::stdout()),
        listening: AtomicBool::new(false),
        closing: AtomicBool::new(false),
    });
    if let Err(detail) = relay.probe() {
        if detail == UNAUTHORIZED {
            eprintln!(
                "whatsapp-mcp stdio: the whatsapp-mcp service at {base} refused this client (HTTP 401): {}",
                relay.client.unauthorized_hint()
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        eprintln!(
            "whatsapp-mcp stdio: cannot reach the whatsapp-mcp service at {base}: {detail}\n\
             Is it running? Try `systemctl status whatsapp-mcp.socket whatsapp-mcp` or start it \
             with `whatsapp-mcp serve`; set WHATSAPP_BRIDGE_URL if it listens elsewhere, or run \
             `whatsapp-mcp stdio --standalone`."
        );
        return ExitCode::from(EXIT_UNREACHABLE);
    }
    tracing::info!(url = %relay.url, "relaying MCP from stdin/stdout to the service");

    let mut workers = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                tracing::error!(error = %err, "cannot read stdin");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(err) => {
                relay.emit(&json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": {"code": -32700, "message": format!("parse error: {err}")},
                }));
                continue;
            }
        };
        if line.len() > super::MCP_BODY_LIMIT {
            // The service would refuse it too, but may hang up before the body is sent, which
            // the relay could only report as a broken connection.
            relay.fail(
                &message,
                &format!(
                    "request body too large: the limit is {} bytes",
                    super::MCP_BODY_LIMIT
                ),
            );
            continue;
        }
        let is_request =
            message.get("id").is_some_and(|id| !id.is_null()) && message.get("method").is_some();
        let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        if is_request && !is_initialize {
            // Requests run side by side: a slow tool must not hold up a ping or a cancellation.
            let relay = Arc::clone(&relay);
            workers.push(std::thread::spawn(move || relay.forward(&line, &message)));
            workers.retain(|worker| !worker.is_finished());
        } else {
            // `initialize` gives the session id every later request needs; notifications and
            // responses are answered at once with 202.
            relay.forward(&line, &message);
            if message.get("method").and_then(Value::as_str) == Some("notifications/initialized") {
                Relay::listen(&relay);
            }
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    relay.close();
    ExitCode::SUCCESS
}

impl Relay {
    /// Checks that the daemon answers at all, before the client starts talking.
    /// `/api/status` rather than `/health`, which answers without a token and so could not tell
    /// a client that its token is missing or wrong.
    fn probe(&self) -> Result<(), String> {
        let response = self
            .client
            .get("/api/status")
            .call()
            .map_err(|err| self.client.describe(&err))?;
        if response.status().is_success() {
            Ok(())
        } else if response.status() == 401 {
            Err(UNAUTHORIZED.to_owned())
        } else {
            Err(format!(
                "GET /api/status answered HTTP {}",
                response.status()
            ))
        }
    }

    /// Writes one JSON-RPC message to stdout as one line.
    fn emit(&self, message: &Value) {
        let mut stdout = self
            .stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = writeln!(stdout, "{message}").and_then(|()| stdout.flush());
        if let Err(err) = written {
            tracing::error!(error = %err, "cannot write to stdout");
        }
    }

    /// Writes a line the daemon sent, which is already one JSON-RPC message.
    fn emit_raw(&self, data: &str) {
        match serde_json::from_str::<Value>(data) {
            Ok(message) => self.emit(&message),
            Err(err) => tracing::warn!(error = %err, "the service sent an event that is not JSON"),
        }
    }

    /// Answers a request the daemon could not take with a JSON-RPC error the client shows.
    fn fail(&self, message: &Value, text: &str) {
        if let Some(id) = message.get("id").filter(|id| !id.is_null())
            && message.get("method").is_some()
        {
            self.emit(&json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": -32000, "message": text},
            }));
        } else {
            tracing::warn!(problem = %text, "a notification could not be delivered");
        }
    }

    /// The session and protocol version later requests name.
    fn session(&self) -> (Option<String>, Option<String>) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.session_id.clone(), state.protocol_version.clone())
    }

    /// POSTs one JSON-RPC line to the service.
    fn post(
        &self,
        body: &str,
        session_id: Option<&str>,
        protocol_version: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut request = self
            .client
            .post("/mcp")
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(id) = session_id {
            request = request.header("Mcp-Session-Id", id);
        }
        if let Some(version) = protocol_version {
            request = request.header("MCP-Protocol-Version", version);
        }
        request.send(body)
    }

    /// Opens a new session with the client's own `initialize` after the service forgot
    /// `stale` (it restarted). Returns false when that is not possible. Requests that found the
    /// same stale session wait here and then use the session the first one opened.
    fn renew_session(&self, stale: &str) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.session_id.as_deref() != Some(stale) {
            return true;
        }
        let Some(params) = state.initialize.clone() else {
            return false;
        };
        let initialize =
            json!({"jsonrpc": "2.0", "id": RENEW_ID, "method": "initialize", "params": params});
        let response = match self.post(&initialize.to_string(), None, None) {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::warn!(status = %response.status(), "the restarted service refused a new session");
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot open a new session with the restarted service");
                return false;
            }
        };
        let Some(session) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
        else {
            return false;
        };
        // The answer is the relay's own; the client already has the first one.
        let mut body = response.into_body();
        let _ = body.read_to_string();
        let version = state.protocol_version.clone();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        if let Err(err) = self.post(&initialized.to_string(), Some(&session), version.as_deref()) {
            tracing::warn!(error = %err, "the restarted service did not take `initialized`");
            return false;
        }
        // What the client watched, it watches in the new session too. The answers are the
        // relay's own; one that fails (a chat gone meanwhile) leaves the rest standing.
        for (n, uri) in state.subscriptions.iter().enumerate() {
            let subscribe = json!({
                "jsonrpc": "2.0",
                "id": format!("{RESUBSCRIBE_ID}-{n}"),
                "method": "resources/subscribe",
                "params": {"uri": uri},
            });
            match self.post(&subscribe.to_string(), Some(&session), version.as_deref()) {
                Ok(response) => {
                    let _ = response.into_body().read_to_string();
                }
                Err(err) => {
                    tracing::warn!(error = %err, "a subscription could not be renewed");
                }
            }
        }
        tracing::info!("the service restarted; this client's session was opened again");
        state.session_id = Some(session);
        true
    }

    /// Starts the thread that holds the session's GET stream open, once.
    fn listen(relay: &Arc<Self>) {
        if relay.session().0.is_none() || relay.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let relay = Arc::clone(relay);
        std::thread::spawn(move || relay.follow_stream());
    }

    /// Relays what the service sends on the session's GET stream until the client goes; a
    /// broken stream is reopened, and a session the service forgot is renewed first. Ends when
    /// the service has no such stream to offer (a session-less protocol, where the client
    /// listens with `subscriptions/listen` requests instead).
    fn follow_stream(&self) {
        let mut pause = LISTEN_PAUSE;
        while !self.closing.load(Ordering::SeqCst) {
            let (Some(session_id), protocol_version) = self.session() else {
                return;
            };
            let mut request = self
                .client
                .get("/mcp")
                .header("Accept", "text/event-stream")
                .header("Mcp-Session-Id", &session_id);
            if let Some(version) = &protocol_version {
                request = request.header("MCP-Protocol-Version", version);
            }
            match request.call() {
                Ok(response) if response.status() == 404 => {
                    if self.renew_session(&session_id) {
                        continue;
                    }
                }
                Ok(response) if response.status().is_success() => {
                    pause = LISTEN_PAUSE;
                    let reader = BufReader::new(response.into_body().into_reader());
                    // Ends with the stream: the service stopped or restarted.
                    let _ = read_events(reader, |data| self.emit_raw(data));
                }
                Ok(response) => {
                    tracing::debug!(status = %response.status(), "the service offers no GET stream");
                    return;
                }
                Err(err) => tracing::debug!(error = %err, "the GET stream could not be opened"),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(LISTEN_PAUSE_LONGEST);
        }
    }

    fn forward(&self, line: &str, message: &Value) {
        let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        self.note_subscription(message);
        if is_initialize {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .initialize = message.get("params").cloned();
        }
        // An acting call goes out with a request key, so that sending it again after a broken
        // connection gets the first answer instead of acting twice.
        let keyed = with_request_key(message);
        let (line, message) = match &keyed {
            Some(keyed) => (keyed.to_string(), keyed),
            None => (line.to_owned(), message),
        };
        let repeatable = !is_acting_call(message) || has_request_key(message);
        let mut resent = false;
        loop {
            match self.exchange(&line, message, is_initialize) {
                Exchange::Done => return,
                Exchange::Cut(why) if repeatable && !resent => {
                    tracing::info!(problem = %why, "the connection to the service broke; sending the request again");
                    resent = true;
                }
                Exchange::Cut(why) => {
                    let text = if is_acting_call(message) {
                        format!(
                            "the connection to the whatsapp-mcp service at {} broke while this \
                             was being done ({why}); it may have been sent: check with \
                             list_messages before trying again",
                            self.url
                        )
                    } else {
                        format!(
                            "the connection to the whatsapp-mcp service at {} broke while this \
                             was being answered ({why})",
                            self.url
                        )
                    };
                    self.fail(message, &text);
                    return;
                }
            }
        }
    }

    /// Sends one message and relays its answer. [`Exchange::Cut`] when the connection broke
    /// after the message may have reached the service and before its answer came back.
    fn exchange(&self, line: &str, message: &Value, is_initialize: bool) -> Exchange {
        let started = std::time::Instant::now();
        let mut renewed = false;
        let (session_id, response) = loop {
            let (session_id, protocol_version) = self.session();
            match self.post(line, session_id.as_deref(), protocol_version.as_deref()) {
                Ok(response) if response.status() == 404 && !renewed && !is_initialize => {
                    // The service restarted and no longer knows the session; it ran nothing.
                    match &session_id {
                        Some(stale) if self.renew_session(stale) => renewed = true,
                        _ => break (session_id, response),
                    }
                }
                Ok(response) => break (session_id, response),
                Err(err) => match delivery(&err) {
                    Delivery::NotSent if started.elapsed() < REFUSED_GRACE => {
                        std::thread::sleep(REFUSED_PAUSE);
                    }
                    Delivery::Unknown => return Exchange::Cut(err.to_string()),
                    Delivery::NotSent => {
                        self.fail(
                            message,
                            &format!(
                                "the whatsapp-mcp service at {} is unreachable: {err}",
                                self.url
                            ),
                        );
                        return Exchange::Done;
                    }
                },
            }
        };
        let status = response.status();
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
        {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .session_id = Some(id.to_owned());
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut body = response.into_body();
        if status == 404 && session_id.is_some() {
            self.fail(
                message,
                "the whatsapp-mcp service restarted and would not open a new session for this \
                 client: restart the MCP server in your client",
            );
            return Exchange::Done;
        }
        if !status.is_success() {
            let text = body.read_to_string().unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .or_else(|| v.pointer("/error"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| text.trim().to_owned());
            self.fail(
                message,
                &format!("the service answered HTTP {status}: {detail}"),
            );
            return Exchange::Done;
        }
        // A request is answered when its response has come; a notification or a response of
        // the client's own needs nothing back.
        let awaited = message
            .get("method")
            .and(message.get("id"))
            .filter(|id| !id.is_null());
        let mut answered = awaited.is_none();
        let mut relay = |data: &str| {
            self.note_version(data);
            if let Some(id) = awaited
                && let Ok(sent) = serde_json::from_str::<Value>(data)
                && sent.get("method").is_none()
                && sent.get("id") == Some(id)
            {
                answered = true;
            }
            self.emit_raw(data);
        };
        let mut broken = None;
        if content_type.starts_with("text/event-stream") {
            broken = read_events(BufReader::new(body.into_reader()), &mut relay).err();
        } else if content_type.starts_with("application/json") {
            match body.read_to_string() {
                Ok(text) => relay(&text),
                Err(err) => broken = Some(err.to_string()),
            }
        }
        if answered {
            Exchange::Done
        } else {
            Exchange::Cut(broken.unwrap_or_else(|| "the answer stream ended early".to_owned()))
        }
    }

    /// Keeps the set of subscribed URIs up to date with the client's subscribe and unsubscribe
    /// calls.
    fn note_subscription(&self, message: &Value) {
        let method = message.get("method").and_then(Value::as_str);
        let Some(uri) = message.pointer("/params/uri").and_then(Value::as_str) else {
            return;
        };
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match method {
            Some("resources/subscribe") => {
                state.subscriptions.insert(uri.to_owned());
            }
            Some("resources/unsubscribe") => {
                state.subscriptions.remove(uri);
            }
            _ => {}
        }
    }

    /// Remembers the protocol version the daemon agreed to, which later requests must name.
    fn note_version(&self, data: &str) {
        let Ok(message) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(version) = message
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .protocol_version = Some(version.to_owned());
        }
    }

    /// Ends the session on the daemon when the client goes away.
    fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let session_id = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .session_id
            .clone();
        if let Some(id) = session_id {
            let _ = self
                .client
                .delete("/mcp")
                .header("Mcp-Session-Id", &id)
                .call();
        }
    }
}

/// Hands the data of each event of an event stream to `relay`, until the stream ends (`Ok`) or
/// breaks (the error, worded). Events without data (rmcp's priming events) are skipped.
fn read_events(reader: impl BufRead, mut relay: impl FnMut(&str)) -> Result<(), String> {
    let mut data = String::new();
    for line in reader.lines() {
        let line = line.map_err(|err| err.to_string())?;
        if line.is_empty() {
            if !data.is_empty() {
                relay(&data);
                data.clear();
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if !data.is_empty() {
        relay(&data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_relayed_whole_and_empty_ones_skipped() {
        let stream = "id: 0\nretry: 3000\ndata:\n\n\
                      event: message\ndata: {\"a\":\ndata: 1}\n\n\
                      : keep-alive\n\n\
                      data: {\"b\":2}";
        let mut seen = Vec::new();
        let ended = read_events(stream.as_bytes(), |data| seen.push(data.to_owned()));
        assert_eq!(ended, Ok(()));
        assert_eq!(seen, ["{\"a\":\n1}", "{\"b\":2}"]);
    }

    #[test]
    fn a_broken_stream_is_told_apart_from_its_end() {
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                ))
            }
        }
        let ended = read_events(BufReader::new(Broken), |_| panic!("nothing to relay"));
        assert!(ended.unwrap_err().contains("reset"));
    }

    #[test]
    fn subscriptions_follow_subscribe_and_unsubscribe() {
        let relay = Relay {
            client: BridgeClient::new(
                &Config::load_with_env(None, &|_: &str| None).unwrap(),
                Limits {
                    connect: None,
                    global: None,
                },
            ),
            url: String::new(),
            state: Mutex::default(),
            stdout: Mutex::new(std::io::stdout()),
            listening: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        };
        let call = |method: &str, uri: &str| json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"uri": uri}});
        relay.note_subscription(&call("resources/subscribe", "whatsapp://chats"));
        relay.note_subscription(&call("resources/subscribe", "whatsapp://chat/+31611111111"));
        relay.note_subscription(&call("resources/read", "whatsapp://status"));
        relay.note_subscription(&call("resources/unsubscribe", "whatsapp://chats"));
        let state = relay.state.lock().unwrap();
        assert_eq!(
            state.subscriptions.iter().collect::<Vec<_>>(),
            ["whatsapp://chat/+31611111111"]
        );
    }
}
