//! Blocking MCP clients that talk to the real binary over real sockets: Streamable HTTP
//! (`/mcp`, through ureq) and the legacy HTTP+SSE pair (`/sse` + `/messages`, on a raw TCP
//! stream so the test can cut the connection at any moment), plus the server's memory figures.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// How long one request may take before the client calls it an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const PROTOCOL: &str = "2025-06-18";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

fn initialize_request() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "wire-tests", "version": "1"}}})
}

/// The JSON-RPC messages in a body that is either plain JSON or an event stream.
fn messages_in(text: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return vec![value];
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

/// A tool call's outcome: `Ok(result)` when the tool answered (`isError` may still be true),
/// `Err` for anything that is not a JSON-RPC result.
pub type Outcome = Result<Value, String>;

/// One Streamable HTTP session.
pub struct Streamable {
    agent: ureq::Agent,
    url: String,
    session: String,
    next_id: u64,
}

impl Streamable {
    /// `initialize` plus the `initialized` notification against `http://…/mcp`.
    pub fn open(url: &str) -> Result<Self, String> {
        let agent = agent();
        let mut response = agent
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .send(initialize_request().to_string())
            .map_err(|err| format!("initialize: {err}"))?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let (200, Some(session)) = (status, session) else {
            return Err(format!("initialize: HTTP {status} {body}"));
        };
        let client = Self {
            agent,
            url: url.to_owned(),
            session,
            next_id: 1,
        };
        let (status, body) =
            client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        if status != 202 {
            return Err(format!("initialized: HTTP {status} {body}"));
        }
        Ok(client)
    }

    fn post(&self, message: &Value) -> Result<(u16, String), String> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL)
            .send(message.to_string())
            .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|err| err.to_string())?;
        Ok((status, body))
    }

    /// Another handle on the same session whose requests are numbered from `first_id + 1`,
    /// so a test can call from one thread and send notifications from another.
    pub fn fork(&self, first_id: u64) -> Self {
        Self {
            agent: self.agent.clone(),
            url: self.url.clone(),
            session: self.session.clone(),
            next_id: first_id,
        }
    }

    /// The id the next `call` will use.
    pub fn next_request_id(&self) -> u64 {
        self.next_id + 1
    }

    /// Sends a notification (no id, no answer expected); returns the HTTP status.
    pub fn notify(&self, method: &str, params: &Value) -> Result<u16, String> {
        self.post(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .map(|(status, _)| status)
    }

    /// Calls a tool and returns its result.
    pub fn call(&mut self, tool: &str, arguments: &Value) -> Outcome {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let (status, body) = self.post(&request)?;
        messages_in(&body)
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .ok_or_else(|| format!("{tool}: HTTP {status} without a response: {body}"))
            .and_then(|m| match m.get("result") {
                Some(result) => Ok(result.clone()),
                None => Err(format!("{tool}: {m}")),
            })
    }

    /// Posts a tool call on a connection of its own and hangs up as soon as the response has
    /// started, before the result arrives: a client that goes away mid-stream.
    pub fn call_and_hang_up(&self, tool: &str, arguments: &Value) -> Result<(), String> {
        let rest = self.url.trim_start_matches("http://");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let body = json!({"jsonrpc": "2.0", "id": 999_999, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}})
        .to_string();
        let mut stream = TcpStream::connect(host).map_err(|err| err.to_string())?;
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                     Accept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\n\
                     Mcp-Protocol-Version: {PROTOCOL}\r\nContent-Length: {}\r\n\r\n{body}",
                    self.session,
                    body.len()
                )
                .as_bytes(),
            )
            .map_err(|err| err.to_string())?;
        let mut first = [0u8; 12];
        stream
            .read_exact(&mut first)
            .map_err(|err| err.to_string())?;
        let _ = stream.shutdown(Shutdown::Both);
        if first.starts_with(b"HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("answered {:?}", String::from_utf8_lossy(&first)))
        }
    }

    /// Ends the session the way a client that exits cleanly does (`DELETE /mcp`).
    pub fn close(self) -> Result<(), String> {
        let response = self
            .agent
            .delete(&self.url)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL)
            .call()
            .map_err(|err| err.to_string())?;
        match response.status().as_u16() {
            200 | 202 | 204 => Ok(()),
            other => Err(format!("DELETE /mcp: HTTP {other}")),
        }
    }
}

/// One legacy SSE session: the event stream is read by a thread of its own, which hands every
/// JSON-RPC message to the caller.
pub struct Sse {
    agent: ureq::Agent,
    post_url: String,
    stream: TcpStream,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
}

impl Sse {
    /// `GET /sse` on `127.0.0.1:port`, then `initialize` through the announced endpoint.
    pub fn open(port: u16) -> Result<Self, String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|err| format!("connect: {err}"))?;
        stream
            .write_all(
                format!(
                    "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     Accept: text/event-stream\r\n\r\n"
                )
                .as_bytes(),
            )
            .map_err(|err| format!("GET /sse: {err}"))?;
        let reader = stream.try_clone().map_err(|err| err.to_string())?;
        let (endpoint_tx, endpoint_rx) = mpsc::channel();
        let (messages_tx, messages) = mpsc::channel();
        std::thread::spawn(move || read_events(reader, &endpoint_tx, &messages_tx));
        let endpoint = endpoint_rx
            .recv_timeout(REQUEST_TIMEOUT)
            .map_err(|_| "no endpoint event".to_owned())??;
        let mut client = Self {
            agent: agent(),
            post_url: format!("http://127.0.0.1:{port}{endpoint}"),
            stream,
            messages,
            next_id: 1,
        };
        client.request(initialize_request())?;
        client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(client)
    }

    fn post(&self, message: &Value) -> Result<(), String> {
        let mut response = self
            .agent
            .post(&self.post_url)
            .header("content-type", "application/json")
            .send(message.to_string())
            .map_err(|err| err.to_string())?;
        match response.status().as_u16() {
            202 => Ok(()),
            other => Err(format!(
                "POST /messages: HTTP {other} {}",
                response.body_mut().read_to_string().unwrap_or_default()
            )),
        }
    }

    /// Sends `request` (its id is set here) and waits for its response on the stream.
    fn request(&mut self, mut request: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        request["id"] = json!(id);
        self.post(&request)?;
        loop {
            let message = self
                .messages
                .recv_timeout(REQUEST_TIMEOUT)
                .map_err(|_| format!("no response to request {id} on the stream"))?;
            if message["id"] == json!(id) {
                return Ok(message);
            }
        }
    }

    /// Calls a tool and returns its result.
    pub fn call(&mut self, tool: &str, arguments: &Value) -> Outcome {
        let request = json!({"jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let message = self.request(request)?;
        match message.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(format!("{tool}: {message}")),
        }
    }

    /// Posts a tool call without waiting for its answer; returns the request's id.
    pub fn send_call(&mut self, tool: &str, arguments: &Value) -> Result<u64, String> {
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        self.post(&request).map(|()| self.next_id)
    }

    /// Posts a tool call and hangs up at once, before the response can arrive: a client that
    /// goes away mid-request.
    pub fn call_and_vanish(mut self, tool: &str, arguments: &Value) {
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let _ = self.post(&request);
        self.close();
    }

    /// Drops the connection; the server sees the stream end.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Reads the HTTP response of `GET /sse`: headers, then the chunked body as server-sent events.
fn read_events(
    stream: TcpStream,
    endpoint: &mpsc::Sender<Result<String, String>>,
    messages: &mpsc::Sender<Value>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("HTTP/1.1 200") {
        let _ = endpoint.send(Err(format!("GET /sse answered {line:?}")));
        return;
    }
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        chunked |= header == "transfer-encoding: chunked";
    }
    // Events may be split across chunks anywhere, so the body is reassembled before parsing.
    let mut pending = Vec::new();
    let mut event = String::new();
    let mut data = String::new();
    loop {
        let piece = if chunked {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
                return;
            };
            if size == 0 {
                return;
            }
            let mut piece = vec![0; size + 2];
            if reader.read_exact(&mut piece).is_err() {
                return;
            }
            piece.truncate(size);
            piece
        } else {
            let mut piece = vec![0; 4096];
            match reader.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    piece.truncate(n);
                    piece
                }
            }
        };
        pending.extend_from_slice(&piece);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                match event.as_str() {
                    "endpoint" => {
                        let _ = endpoint.send(Ok(data.clone()));
                    }
                    _ if !data.is_empty() => {
                        if let Ok(value) = serde_json::from_str(&data)
                            && messages.send(value).is_err()
                        {
                            return;
                        }
                    }
                    _ => {}
                }
                event.clear();
                data.clear();
            } else if let Some(name) = text.strip_prefix("event:") {
                name.trim().clone_into(&mut event);
            } else if let Some(value) = text.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }
}

/// The server's resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What `/debug/sessions` (fake-engine builds only) reports about open sessions and tasks.
pub fn sessions(port: u16) -> Value {
    let mut response = agent()
        .get(&format!("http://127.0.0.1:{port}/debug/sessions"))
        .call()
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}
