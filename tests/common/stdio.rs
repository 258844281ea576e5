//! `whatsapp-mcp stdio` as a desktop client runs it: a child process spoken to in JSON-RPC
//! lines on its stdin and stdout.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{self as common, KillOnDrop};

/// One `stdio` child and the requests sent to it.
pub struct StdioClient {
    pub child: KillOnDrop,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl StdioClient {
    /// Spawns `whatsapp-mcp ARGS` with the data directory `data`, pointed at the service whose
    /// bridge listens on `bridge`. Sends nothing yet.
    pub fn spawn(args: &[&str], data: &Path, bridge: u16) -> Self {
        let url = format!("http://127.0.0.1:{bridge}");
        Self::spawn_with(args, data, &[("WHATSAPP_BRIDGE_URL", url.as_str())])
    }

    /// Like [`StdioClient::spawn`], with `env` saying where the service is.
    pub fn spawn_with(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(common::binary())
            .args(args)
            .envs(common::isolated_env(data))
            .env("WHATSAPP_MCP_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("stdio starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child: KillOnDrop(child),
            stdin,
            stdout,
            next_id: 0,
        }
    }

    pub fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{message}").expect("write to stdio");
        stdin.flush().expect("flush stdio");
    }

    /// Sends a request and reads lines until its answer; returns its `result`.
    pub fn request(&mut self, method: &str, params: &Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|err| err.to_string())?;
            if n == 0 {
                return Err(format!("stdio closed before answering request {id}"));
            }
            let message: Value = serde_json::from_str(&line).map_err(|err| err.to_string())?;
            if message["id"] == json!(id) {
                return message
                    .get("result")
                    .cloned()
                    .ok_or_else(|| message.to_string());
            }
        }
    }

    /// `initialize`, checked to come from whatsapp-mcp; the `initialized` notification is
    /// left to the caller, so the time to the answer can be taken on its own.
    pub fn initialize(&mut self) -> Value {
        let answer = self
            .request(
                "initialize",
                &json!({"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}),
            )
            .expect("initialize");
        assert_eq!(answer["serverInfo"]["name"], "whatsapp-mcp", "{answer}");
        answer
    }

    pub fn initialized(&mut self) {
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    /// Closes stdin, as a desktop client ends the session, and waits for the exit.
    pub fn close(&mut self) -> Option<std::process::ExitStatus> {
        self.stdin = None;
        common::wait_with_timeout(&mut self.child, Duration::from_secs(15))
    }
}
