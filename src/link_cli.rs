//! The `qr`, `pair` and `logout` commands: link or unlink the running service from a terminal.
//!
//! They talk to the bridge (`WHATSAPP_BRIDGE_URL`) like `status` does, because only the running
//! service holds the WhatsApp connection: a second process linking on its own would fight it for
//! the session. The QR code is drawn with half-block characters so it fits an 80-column SSH
//! terminal, and redrawn whenever WhatsApp rotates it.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qrcode::render::unicode::Dense1x2;
use serde::Deserialize;

use crate::bridge_client::{BridgeClient, Limits};
use crate::config::Config;
use crate::exit::{EXIT_INTERRUPTED, EXIT_UNREACHABLE};

/// How often the link state is polled while waiting for the phone.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for the first code before giving up: linking needs WhatsApp's servers.
const FIRST_CODE_WITHIN: Duration = Duration::from_secs(90);
/// `pair` waits this long for the phone to accept the code (WhatsApp lets it expire sooner).
const PAIR_WAIT: Duration = Duration::from_secs(300);

/// `whatsapp-mcp qr`: draw the QR code until the phone scans it.
pub fn qr(config: &Config) -> ExitCode {
    run(config, |bridge| async move {
        let view = bridge.link().await?;
        if let Some(done) = settled(&view, false) {
            return Ok(done);
        }
        if view.qr.is_none() {
            bridge.post("/api/link", serde_json::json!({})).await?;
        }
        follow(&bridge, Mode::Qr).await
    })
}

/// `whatsapp-mcp pair --phone NUMBER`: print a pairing code and wait until it is entered.
pub fn pair(config: &Config, phone: &str) -> ExitCode {
    let phone = phone.to_owned();
    run(config, |bridge| async move {
        let view = bridge.link().await?;
        if let Some(done) = settled(&view, false) {
            return Ok(done);
        }
        let answer = bridge
            .post("/api/pair", serde_json::json!({ "phone": phone }))
            .await?;
        let Some(code) = answer.get("code").and_then(|c| c.as_str()) else {
            return Err(Failure::Unreachable(format!("unexpected answer: {answer}")));
        };
        println!(
            "Pairing code: {code}\n\n\
             On the phone open WhatsApp → Settings → Linked devices → Link a device,\n\
             tap \"Link with phone number instead\" and type the code.\n\
             Waiting for the phone (Ctrl-C to stop waiting)…"
        );
        flush();
        follow(&bridge, Mode::Pair).await
    })
}

/// `whatsapp-mcp logout [--wipe-archive]`: unlink this server and remove its session.
pub fn logout(config: &Config, wipe_archive: bool) -> ExitCode {
    run(config, |bridge| async move {
        let view = bridge.link().await?;
        if view.state == "engine_off" {
            // Nothing to unlink, and the engine's own refusal would not say why.
            return Ok(settled(&view, false).unwrap_or(ExitCode::FAILURE));
        }
        bridge
            .post(
                "/api/logout",
                serde_json::json!({ "wipe_archive": wipe_archive }),
            )
            .await?;
        if wipe_archive {
            println!("unlinked: the WhatsApp session and the archive are deleted");
        } else {
            println!(
                "unlinked: the WhatsApp session is removed; the archive is kept \
                 (run `whatsapp-mcp qr` to link again)"
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Why a command stopped early.
#[derive(Debug)]
enum Failure {
    /// No answer from the service, or an answer that is not the bridge's.
    Unreachable(String),
    /// The service answered with an error.
    Refused { status: u16, message: String },
}

/// The part of `GET /api/link` the commands use.
#[derive(Debug, Deserialize)]
struct LinkView {
    state: String,
    status_text: String,
    qr: Option<String>,
    qr_expires_at: Option<String>,
    account: Option<AccountView>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AccountView {
    phone: String,
}

impl LinkView {
    /// Paired: a device identity exists, whether or not it is online this second.
    fn linked_as(&self) -> Option<&str> {
        let linked = matches!(
            self.state.as_str(),
            "connecting" | "connected" | "disconnected" | "stream_replaced"
        );
        self.account
            .as_ref()
            .filter(|_| linked)
            .map(|a| a.phone.as_str())
    }

    fn problem(&self) -> &str {
        self.error.as_deref().unwrap_or(&self.status_text)
    }
}

/// A bridge client; requests run on the blocking pool so Ctrl-C is noticed while they wait.
#[derive(Clone, Debug)]
struct Bridge {
    /// Reads are quick; asking WhatsApp for a pairing code can take a while.
    reads: Arc<BridgeClient>,
    acts: Arc<BridgeClient>,
}

impl Bridge {
    fn new(config: &Config) -> Self {
        let limit = |secs| Limits {
            connect: None,
            global: Some(Duration::from_secs(secs)),
        };
        Self {
            reads: Arc::new(BridgeClient::new(config, limit(10))),
            acts: Arc::new(BridgeClient::new(config, limit(90))),
        }
    }

    async fn link(&self) -> Result<LinkView, Failure> {
        let body = self.call(None, "/api/link").await?;
        serde_json::from_value(body)
            .map_err(|err| Failure::Unreachable(format!("unexpected answer ({err})")))
    }

    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        self.call(Some(body), path).await
    }

    /// GET `path`, or POST `body` to it.
    async fn call(
        &self,
        body: Option<serde_json::Value>,
        path: &str,
    ) -> Result<serde_json::Value, Failure> {
        let bridge = self.clone();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || bridge.request(&path, body.as_ref()))
            .await
            .map_err(|err| Failure::Unreachable(err.to_string()))?
    }

    fn request(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let sent = match body {
            Some(body) => self
                .acts
                .post(path)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            None => self.reads.get(path).call(),
        };
        let mut response = sent.map_err(|err| Failure::Unreachable(self.reads.describe(&err)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|err| Failure::Unreachable(err.to_string()))?;
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| Failure::Unreachable(format!("unexpected answer: {text}")));
        }
        // An older service has no such endpoint; say so instead of echoing its 404.
        let message = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}: {}", text.trim()));
        Err(Failure::Refused { status, message })
    }
}

/// Builds the runtime, runs `body` with a bridge client and turns failures into exit codes.
fn run<F, Fut>(config: &Config, body: F) -> ExitCode
where
    F: FnOnce(Bridge) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("whatsapp-mcp: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let bridge = Bridge::new(config);
    let url = bridge.reads.location();
    let hint = bridge.reads.unauthorized_hint();
    runtime.block_on(async move {
        let outcome = tokio::select! {
            outcome = body(bridge) => outcome,
            _ = tokio::signal::ctrl_c() => {
                println!();
                eprintln!("whatsapp-mcp: stopped; a code already shown stays valid until it expires");
                return ExitCode::from(EXIT_INTERRUPTED);
            }
        };
        match outcome {
            Ok(code) => code,
            Err(Failure::Unreachable(detail)) => {
                eprintln!(
                    "whatsapp-mcp: cannot reach the service at {url}: {detail}\n\
                     Is it running? Try `systemctl status whatsapp-mcp.socket whatsapp-mcp` \
                     or start it with `whatsapp-mcp serve`; set WHATSAPP_BRIDGE_URL if it listens elsewhere."
                );
                ExitCode::from(EXIT_UNREACHABLE)
            }
            Err(Failure::Refused { status: 503, message }) => {
                eprintln!("whatsapp-mcp: the service cannot do that now: {message}");
                ExitCode::from(EXIT_UNREACHABLE)
            }
            Err(Failure::Refused { status: 401, .. }) => {
                eprintln!(
                    "whatsapp-mcp: the service at {url} refused this client (HTTP 401): {hint}"
                );
                ExitCode::from(EXIT_UNREACHABLE)
            }
            Err(Failure::Refused { status, message }) => {
                eprintln!("whatsapp-mcp: the service refused (HTTP {status}): {message}");
                ExitCode::FAILURE
            }
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Draw each QR code.
    Qr,
    /// A pairing code was printed; only wait.
    Pair,
}

/// The end of the command if `view` settles it: linked, or a state no waiting can fix.
/// `waited` says whether a code was offered already, after which "not linked" means it expired.
fn settled(view: &LinkView, waited: bool) -> Option<ExitCode> {
    if let Some(phone) = view.linked_as() {
        println!("linked as +{phone}");
        return Some(ExitCode::SUCCESS);
    }
    match view.state.as_str() {
        "engine_off" => {
            eprintln!(
                "whatsapp-mcp: the service runs without a WhatsApp connection: {}",
                view.problem()
            );
            Some(ExitCode::from(EXIT_UNREACHABLE))
        }
        "client_outdated" => {
            eprintln!("whatsapp-mcp: {}", view.status_text);
            Some(ExitCode::FAILURE)
        }
        "logged_out" if waited => {
            eprintln!("whatsapp-mcp: linking failed: {}", view.problem());
            Some(ExitCode::FAILURE)
        }
        "not_linked" if waited => {
            eprintln!(
                "whatsapp-mcp: the code expired before the phone used it ({}); run the command again",
                view.problem()
            );
            Some(ExitCode::FAILURE)
        }
        _ => None,
    }
}

/// Polls the link state, drawing each new QR code in [`Mode::Qr`], until it settles.
async fn follow(bridge: &Bridge, mode: Mode) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    let mut drawn: Option<String> = None;
    let mut waited = false;
    let mut said = String::new();
    loop {
        let view = bridge.link().await?;
        if let Some(done) = settled(&view, waited) {
            return Ok(done);
        }
        if view.state == "awaiting_scan" {
            waited = true;
        }
        match (&view.qr, mode) {
            (Some(code), Mode::Qr) if drawn.as_ref() != Some(code) => {
                match draw(code, view.qr_expires_at.as_deref(), drawn.is_some()) {
                    Ok(picture) => print!("{picture}"),
                    Err(err) => {
                        eprintln!(
                            "whatsapp-mcp: cannot draw the QR code: {err}; open the /qr page"
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                }
                flush();
                drawn = Some(code.clone());
            }
            _ => {}
        }
        if drawn.is_none() && view.status_text != said {
            eprintln!("whatsapp-mcp: {}", view.status_text);
            said.clone_from(&view.status_text);
        }
        let patience = match mode {
            Mode::Qr => FIRST_CODE_WITHIN,
            Mode::Pair => PAIR_WAIT,
        };
        if drawn.is_none() && started.elapsed() > patience {
            return Err(Failure::Refused {
                status: 503,
                message: format!("no link after {} s: {}", patience.as_secs(), view.problem()),
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The picture of one QR code with what to do with it. On a terminal the screen is cleared
/// first and the code drawn black on white whatever the terminal's colours, so phones read it.
fn draw(code: &str, expires_at: Option<&str>, again: bool) -> Result<String, String> {
    let terminal = std::io::stdout().is_terminal();
    let lines = render(code, terminal)?;
    let mut out = String::new();
    if terminal {
        out.push_str("\x1b[2J\x1b[H");
    } else if again {
        out.push_str("\n(new code)\n");
    }
    out.push_str(&lines);
    out.push_str("\nScan with WhatsApp on the phone: Settings → Linked devices → Link a device.\n");
    // Lines stay under 80 columns, like the picture.
    let until = expires_at
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| {
            format!(
                " at {} UTC",
                at.with_timezone(&chrono::Utc).format("%H:%M:%S")
            )
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "The code changes{until}; the new one is drawn here. Ctrl-C to stop.\n"
    ));
    Ok(out)
}

/// The QR code as half-block text with its quiet zone: two modules per character cell, so a
/// WhatsApp code (version 10 or so) is about 65 columns wide.
fn render(code: &str, ansi: bool) -> Result<String, String> {
    let qr = qrcode::QrCode::new(code.as_bytes()).map_err(|err| err.to_string())?;
    let text = qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .quiet_zone(true)
        .build();
    if !ansi {
        return Ok(text + "\n");
    }
    // Black on white, reset at each line end so a resized terminal does not smear the colours.
    Ok(text
        .lines()
        .map(|line| format!("\x1b[30;107m{line}\x1b[0m\n"))
        .collect())
}

fn flush() {
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string as long as the ones WhatsApp issues: a reference and three base64 keys.
    fn whatsapp_sized_code() -> String {
        format!(
            "2@{},{},{},{}",
            "A".repeat(86),
            "B".repeat(44),
            "C".repeat(44),
            "D".repeat(44)
        )
    }

    #[test]
    fn a_whatsapp_code_fits_an_80_column_terminal() {
        let text = render(&whatsapp_sized_code(), false).unwrap();
        let width = text.lines().map(|l| l.chars().count()).max().unwrap();
        let height = text.lines().count();
        assert!(width <= 80, "{width} columns");
        assert!(height <= 40, "{height} rows");
        // The quiet zone: the first and last rows are blank (light) on both sides.
        let first = text.lines().next().unwrap();
        assert!(first.chars().all(|c| c == ' '), "{first:?}");
        // Two rows of modules per line: the picture is about half as tall as it is wide.
        assert!(height * 2 <= width + 2, "{width}x{height}");
    }

    #[test]
    fn the_picture_decodes_to_the_same_modules() {
        // Rebuild the module grid from the half blocks and compare it with the encoder's.
        let code = "2@ref,key,identity,secret";
        let qr = qrcode::QrCode::new(code.as_bytes()).unwrap();
        let text = render(code, false).unwrap();
        let width = qr.width();
        let quiet = 4;
        let mut rows: Vec<Vec<bool>> = Vec::new();
        for line in text.lines() {
            let (mut upper, mut lower) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (u, l) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                upper.push(u);
                lower.push(l);
            }
            rows.push(upper);
            rows.push(lower);
        }
        for y in 0..width {
            for x in 0..width {
                let dark = qr[(x, y)] == qrcode::Color::Dark;
                assert_eq!(rows[y + quiet][x + quiet], dark, "module {x},{y}");
            }
        }
    }

    #[test]
    fn on_a_terminal_each_line_is_black_on_white() {
        let text = render("2@ref", true).unwrap();
        assert!(
            text.lines()
                .all(|l| l.starts_with("\x1b[30;107m") && l.ends_with("\x1b[0m"))
        );
    }

    fn view(state: &str, phone: Option<&str>) -> LinkView {
        LinkView {
            state: state.to_owned(),
            status_text: format!("{state} text"),
            qr: None,
            qr_expires_at: None,
            account: phone.map(|p| AccountView {
                phone: p.to_owned(),
            }),
            error: None,
        }
    }

    #[test]
    fn which_states_end_the_wait() {
        assert_eq!(
            view("connected", Some("31600000000")).linked_as(),
            Some("31600000000")
        );
        // An account left over from before a logout does not count as linked.
        assert_eq!(view("logged_out", Some("31600000000")).linked_as(), None);
        // Offline and never paired: keep waiting for a code.
        assert!(settled(&view("disconnected", None), true).is_none());
        assert!(settled(&view("awaiting_scan", None), true).is_none());
        // Logged out or not linked before any code: that is why we link.
        assert!(settled(&view("logged_out", None), false).is_none());
        assert!(settled(&view("not_linked", None), false).is_none());
        // After a code was shown they mean it failed or expired.
        assert_eq!(
            settled(&view("not_linked", None), true),
            Some(ExitCode::FAILURE)
        );
        assert_eq!(
            settled(&view("client_outdated", None), false),
            Some(ExitCode::FAILURE)
        );
        assert_eq!(
            settled(&view("engine_off", None), false),
            Some(ExitCode::from(EXIT_UNREACHABLE))
        );
    }
}
