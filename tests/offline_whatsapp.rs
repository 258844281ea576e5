//! The real binary with the real whatsapp-rust client against a WhatsApp stand-in on 127.0.0.1
//! (tests/wa_standin): QR linking on /qr, /api/status and `whatsapp-mcp qr`, and what the
//! service does when WhatsApp logs the device out, replaces the stream or rejects the version.
//!
//! The client reaches the stand-in through a switch only test builds have
//! (`WHATSAPP_MCP_FAKE_WA_SERVER`, feature `fake-engine`).
#![cfg(feature = "fake-engine")]

mod common;
mod wa_standin;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, NotifySocket, free_port, get, terminate, wait_for_http};
use wa_standin::{Hello, Reply, Standin};

/// Generous: the client fetches the version and shakes hands before anything shows.
const SETTLE: Duration = Duration::from_secs(60);
/// How long a refused client is watched for another connection attempt.
const QUIET: Duration = Duration::from_secs(5);

/// `serve` on a data directory, with the real engine pointed at `standin`.
struct Service {
    child: KillOnDrop,
    base: String,
    log: PathBuf,
    notify: NotifySocket,
}

impl Service {
    fn start(standin: &Standin, data: &Path, extra: &[(&str, String)]) -> Self {
        let notify = NotifySocket::new();
        let bridge = free_port();
        let log = data.join("serve.log");
        let child = Command::new(common::binary())
            .arg("serve")
            .envs(common::isolated_env(data))
            .env("WHATSAPP_MCP_ENGINE", "whatsapp")
            .env("WHATSAPP_MCP_FAKE_WA_SERVER", standin.addr.to_string())
            .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
            .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:0")
            .env("NOTIFY_SOCKET", &notify.path)
            // Debug, so the check that no QR code reaches the log sees everything.
            .env("WHATSAPP_MCP_LOG", "debug")
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map(KillOnDrop)
            .unwrap();
        let base = format!("http://127.0.0.1:{bridge}");
        assert!(
            wait_for_http(&format!("{base}/health"), SETTLE),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self {
            child,
            base,
            log,
            notify,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = get(&format!("{}{path}", self.base));
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        self.json("/api/status")
    }

    /// Polls `/api/status` until `done` holds for it.
    fn wait_for(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            let log = self.log();
            // The stand-in cannot sign for WhatsApp's root key; only `fake-engine` builds accept it.
            assert!(
                !log.contains("certificate verification failed"),
                "{} was built without the fake-engine feature:\n{log}",
                common::binary()
            );
            assert!(
                Instant::now() < deadline,
                "no {what} within {SETTLE:?}: {status}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for_state(&self, state: &str) -> serde_json::Value {
        self.wait_for(state, |s| s["state"] == state)
    }

    /// The last `STATUS=` line the service gave systemd.
    fn systemd_status(&self) -> String {
        let lines = self.notify.collect_until(Duration::from_secs(1), |_| false);
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("STATUS="))
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// SIGTERM; the service must leave cleanly.
    fn stop(mut self) {
        terminate(self.child.id());
        let exit = common::wait_with_timeout(&mut self.child, Duration::from_secs(20))
            .expect("exits on SIGTERM");
        assert!(exit.success(), "{exit:?}\n{}", self.log());
    }
}

/// Refs as WhatsApp hands them out: opaque strings, one per QR code.
fn refs() -> Vec<String> {
    vec![
        "2@standinRefOneAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "2@standinRefTwoBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".to_owned(),
    ]
}

/// The current code from `/api/link`.
fn current_code(service: &Service) -> Option<String> {
    service.json("/api/link")["qr"].as_str().map(str::to_owned)
}

/// The `<svg>` of the `/qr` page.
fn page_svg(service: &Service) -> String {
    let (code, page) = get(&format!("{}/qr", service.base));
    assert_eq!(code, 200);
    let start = page
        .find("<svg")
        .unwrap_or_else(|| panic!("no SVG: {page}"));
    let end = page[start..].find("</svg>").expect("a closed SVG") + start;
    page[start..end].to_owned()
}

/// The half-block picture `whatsapp-mcp qr` draws for `code` when not on a terminal.
fn terminal_picture(code: &str) -> String {
    use qrcode::render::unicode::Dense1x2;
    qrcode::QrCode::new(code.as_bytes())
        .unwrap()
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .quiet_zone(true)
        .build()
}

fn wait_for_file(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE * 2;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what}: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn qr_codes_from_the_server_reach_the_page_the_api_and_the_terminal_and_rotate() {
    let refs = refs();
    let standin = Standin::start(vec![Reply::Link(refs.clone())]);
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(&standin, data.path(), &[]);

    let status = service.wait_for("a QR code", |s| s["authentication"]["has_qr_code"] == true);
    assert_eq!(status["state"], "awaiting_scan", "{status}");
    // What the client did to get there: fetched the version, then registered over Noise XX.
    assert!(standin.version_fetches() >= 1);
    let connections = standin.connections();
    assert_eq!(connections[0].hello, Hello::Register, "{connections:?}");
    assert_eq!(connections[0].pattern, "XX");
    // It acknowledged the server's pair-device request.
    standin.wait_for_stanza(SETTLE, |n| {
        n.tag == "iq" && n.attrs().optional_string("id").as_deref() == Some("pair-1")
    });

    // The code is the first ref plus the client's own keys, and the page draws it.
    let first = current_code(&service).expect("a code on /api/link");
    assert!(first.starts_with(&format!("{},", refs[0])), "{first}");
    assert_eq!(
        first.split(',').count(),
        5,
        "ref, noise key, identity key, secret, platform"
    );
    let first_svg = page_svg(&service);

    // `whatsapp-mcp qr` draws the same code in the terminal.
    let qr_out = data.path().join("qr.out");
    let mut qr = Command::new(common::binary())
        .arg("qr")
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_BRIDGE_URL", &service.base)
        .stdout(std::fs::File::create(&qr_out).unwrap())
        .stderr(std::fs::File::create(data.path().join("qr.err")).unwrap())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let drawn = wait_for_file(&qr_out, "QR code in the terminal", |t| {
        t.contains("Scan with")
    });
    assert!(drawn.contains(&terminal_picture(&first)), "{drawn}");

    // WhatsApp's client moves to the next ref when the first one runs out (60 s); the page,
    // the API and the terminal follow.
    let deadline = Instant::now() + SETTLE * 2;
    let second = loop {
        match current_code(&service) {
            Some(code) if code != first => break code,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the code never changed");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(second.starts_with(&format!("{},", refs[1])), "{second}");
    assert_ne!(page_svg(&service), first_svg);
    let redrawn = wait_for_file(&qr_out, "the new code in the terminal", |t| {
        t.contains(&terminal_picture(&second))
    });
    assert!(redrawn.contains("(new code)"), "{redrawn}");
    // Both codes came over one connection.
    assert_eq!(standin.attempts(), 1);

    // After the last ref (20 s more) the client gives up and hangs up. Linking stops there: no
    // new connection until someone asks again, and `qr` says the code expired.
    let status = service.wait_for("the codes to run out", |s| s["state"] == "not_linked");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{status}"
    );
    let exit = common::wait_with_timeout(&mut qr, SETTLE).expect("`qr` ends");
    assert!(!exit.success(), "{exit:?}");
    let said = std::fs::read_to_string(data.path().join("qr.err")).unwrap();
    assert!(said.contains("expired"), "{said}");
    std::thread::sleep(QUIET);
    let attempts = standin.attempts();
    println!("QR codes seen: 2 (one rotation); connection attempts: {attempts}");
    assert_eq!(attempts, 1, "{}", service.log());

    // The codes are credentials: neither they nor the secret in them reach the log.
    let log = service.log();
    for code in [&first, &second] {
        let secret = code.split(',').nth(3).unwrap();
        assert!(
            !log.contains(code.as_str()) && !log.contains(secret),
            "{log}"
        );
    }
    service.stop();
}

/// Runs the service against a stand-in that answers every login with `refusal`, waits for
/// `state`, then watches for reconnects. Returns the status, the STATUS= line and the log.
fn refused(refusal: wa_standin::Reply, state: &str) -> (serde_json::Value, String, String) {
    let standin = Standin::start(vec![refusal]);
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(&standin, data.path(), &[]);
    let status = service.wait_for_state(state);
    standin.wait_for_attempts(1, SETTLE);
    // No reconnect loop: nothing more reaches the server while we watch.
    std::thread::sleep(QUIET);
    let attempts = standin.attempts();
    println!("{state}: {attempts} connection attempt(s) in the {QUIET:?} after");
    assert_eq!(attempts, 1, "{}", service.log());
    let status_line = service.systemd_status();
    let log = service.log();
    assert_eq!(service.status()["state"], state, "the state held");
    service.stop();
    (status, status_line, log)
}

#[test]
fn logged_out_by_the_server_wipes_the_session_and_does_not_reconnect() {
    let (status, line, log) = refused(Reply::Refuse(wa_standin::failure(401)), "logged_out");
    assert!(
        status["status_text"]
            .as_str()
            .unwrap()
            .contains("logged out"),
        "{status}"
    );
    assert!(status["account"].is_null(), "{status}");
    assert!(line.contains("logged out"), "{line}");
    assert!(log.contains("logged this device out"), "{log}");
}

#[test]
fn a_replaced_stream_stays_off_until_restarted() {
    let (status, line, _) = refused(
        Reply::Refuse(wa_standin::stream_replaced()),
        "stream_replaced",
    );
    assert!(
        status["status_text"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{status}"
    );
    assert!(line.contains("another client"), "{line}");
}

#[test]
fn an_outdated_client_is_told_to_upgrade() {
    let (status, line, log) = refused(Reply::Refuse(wa_standin::failure(405)), "client_outdated");
    assert!(
        status["status_text"].as_str().unwrap().contains("upgrade"),
        "{status}"
    );
    assert!(line.contains("upgrade"), "{line}");
    assert!(log.contains("upgrade whatsapp-mcp"), "{log}");
}

/// Linking end to end, on the session store of either backend: the phone scans, the client
/// checks and stores the device identity, `/api/status` turns authenticated, then connected; a
/// replaced stream keeps it off. After a restart the service logs in with what it stored; a 401
/// on that login wipes it, so the next start registers from scratch.
fn linking_stores_the_device_and_a_logout_wipes_it(postgres: bool) {
    let pg = postgres.then(common::pg::PgCluster::start);
    let extra: Vec<(&str, String)> = match &pg {
        Some(pg) => vec![("WHATSAPP_SESSION_DATABASE_URL", pg.new_database())],
        None => Vec::new(),
    };
    let data = tempfile::tempdir().unwrap();
    let phone = wa_standin::phone::Phone::new("15550001111", "123456789012345", 7);
    let linked_as = Hello::Login {
        user: 15_550_001_111,
        device: 7,
    };

    // Linking: the server offers refs, the phone scans, the client signs and stores.
    let standin = Standin::start(vec![Reply::Link(refs()), Reply::Welcome]);
    let service = Service::start(&standin, data.path(), &extra);
    service.wait_for("a QR code", |s| s["authentication"]["has_qr_code"] == true);
    let code = current_code(&service).expect("a code");
    standin.push(phone.scan(&code, "pair-2"));
    // The client's answer: the identity signed with its own key too.
    standin.wait_for_stanza(SETTLE, |n| {
        n.get_optional_child("pair-device-sign").is_some()
    });
    let status = service.wait_for("authenticated", |s| {
        s["sync_status"]["authenticated"] == true
    });
    assert_eq!(status["account"]["phone"], "15550001111", "{status}");
    assert_eq!(status["authentication"]["has_qr_code"], false, "{status}");
    // As after a real pairing the server restarts the stream; the client logs in as the device.
    standin.push(wa_standin::restart_stream());
    standin.wait_for_attempts(2, SETTLE);
    let deadline = Instant::now() + SETTLE;
    while standin.connections().len() < 2 {
        assert!(Instant::now() < deadline, "{}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(standin.connections()[1].hello, linked_as);
    // Logged in: the stand-in answers the requests that follow and the client reports connected.
    let status = service.wait_for_state("connected");
    assert_eq!(status["sync_status"]["connected"], true, "{status}");
    assert_eq!(status["account"]["phone"], "15550001111", "{status}");
    // Another client takes the session over: the service stays off until restarted.
    standin.push(wa_standin::stream_replaced());
    service.wait_for_state("stream_replaced");
    std::thread::sleep(QUIET);
    assert_eq!(standin.attempts(), 2, "{}", service.log());
    assert!(service.systemd_status().contains("another client"));
    service.stop();
    drop(standin);

    // A restart reads the identity back from the session store and logs in with it; this time
    // WhatsApp says the device was removed (after a replaced stream, a restart is how to reclaim
    // the session).
    let standin = Standin::start(vec![Reply::Refuse(wa_standin::failure(401))]);
    let service = Service::start(&standin, data.path(), &extra);
    let status = service.wait_for_state("logged_out");
    assert!(status["account"].is_null(), "{status}");
    assert_eq!(standin.connections()[0].hello, linked_as);
    // The certificate kept from the last login lets the client resume with Noise IK.
    assert_eq!(standin.connections()[0].pattern, "IK");
    std::thread::sleep(QUIET);
    assert_eq!(standin.attempts(), 1, "{}", service.log());
    service.stop();
    drop(standin);

    // Wiped: the next start has no identity to log in with and registers anew.
    let standin = Standin::start(vec![Reply::Link(refs())]);
    let service = Service::start(&standin, data.path(), &extra);
    service.wait_for("a QR code", |s| s["authentication"]["has_qr_code"] == true);
    assert_eq!(standin.connections()[0].hello, Hello::Register);
    service.stop();
}

#[test]
fn linking_stores_the_device_and_a_logout_wipes_it_sqlite() {
    linking_stores_the_device_and_a_logout_wipes_it(false);
}

#[test]
fn linking_stores_the_device_and_a_logout_wipes_it_postgres() {
    linking_stores_the_device_and_a_logout_wipes_it(true);
}
