//! TLS on both TCP ports, the real binary: a client that verifies against the test's own CA
//! reaches `/health`, MCP and the bridge (a browser login's cookie marked `Secure`, `status`
//! over https:// trusting the machine's own chain); one that does not trust the CA fails its handshake,
//! and plain HTTP gets no HTTP answer; a renewed certificate is served to new connections
//! without a restart while a kept-alive connection goes on, and a broken replacement leaves the
//! last good certificate in place.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{KillOnDrop, free_port, serve_command, wait_for_listener};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

const TOKEN: &str = "tls-test-token-0123456789abcdef";

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (tests/run.sh installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, and a function that issues a certificate for localhost/127.0.0.1 with `serial`
/// (for one server key) into `name`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path, ca: &str) -> Self {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
            ],
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn issue(&self, ca: &str, serial: u32, name: &str) -> PathBuf {
        if !self.dir.join("server.key").exists() {
            openssl(
                &self.dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    "server.key",
                ],
            );
        }
        std::fs::write(
            self.dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-key",
                "server.key",
                "-subj",
                "/CN=localhost",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                name,
            ],
        );
        self.dir.join(name)
    }
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// A TLS client that trusts only `ca`, without session resumption.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every connection a full handshake, as a new client's: a resumed session would show the
    // certificate of the session it resumes.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A finished handshake with the server on `port`, or the error it ended with.
fn connect(config: &Arc<rustls::ClientConfig>, port: u16) -> Result<Tls, std::io::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

fn peer_certificate(stream: &Tls) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

/// One request on a kept-alive connection; returns the status and the body.
fn exchange(stream: &mut Tls, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, body) = send(stream, &request);
    (status, body)
}

/// Sends `request` as it is; returns the status, the head and the body of the answer.
fn send(stream: &mut Tls, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    // Read the head, then exactly the body its Content-Length (or chunks) announce.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        body.resize(length.parse().unwrap(), 0);
        stream.read_exact(&mut body).unwrap();
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                stream.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Replaces `path` with `contents` the way renewal tools do: written beside it, then renamed.
fn replace(path: &Path, contents: &[u8]) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn both_ports_serve_tls_and_a_renewed_certificate_needs_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "test-ca");
    let first = pki.issue("test-ca", 1001, "first.pem");
    let second = pki.issue("test-ca", 1002, "second.pem");
    // Served as a full chain that carries its authority, as a private CA's set-up does.
    let ca = std::fs::read(dir.path().join("test-ca.pem")).unwrap();
    let chain = |leaf: &Path| [std::fs::read(leaf).unwrap(), ca.clone()].concat();
    let cert = dir.path().join("served.pem");
    std::fs::write(&cert, chain(&first)).unwrap();
    let key = dir.path().join("server.key");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log = dir.path().join("serve.log");

    let (bridge, mcp) = (free_port(), free_port());
    let mut command = serve_command(&data, bridge, mcp);
    command
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env("WHATSAPP_MCP_TLS_CERT", &cert)
        .env("WHATSAPP_MCP_TLS_KEY", &key)
        .stderr(std::fs::File::create(&log).unwrap());
    let server = KillOnDrop(command.spawn().unwrap());
    let pid = server.id();
    wait_for_listener(bridge, Duration::from_secs(20));
    wait_for_listener(mcp, Duration::from_secs(20));

    let trusting = client_config(&dir.path().join("test-ca.pem"));
    // Both ports, a verified handshake each, and real answers behind them.
    let mut kept = connect(&trusting, mcp).expect("handshake with the MCP port");
    assert_eq!(peer_certificate(&kept), der(&first));
    assert_eq!(exchange(&mut kept, "GET", "/health", "").0, 200);
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tls-test","version":"1"}}}"#;
    let (status, body) = exchange(&mut kept, "POST", "/mcp", initialize);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    let mut on_bridge = connect(&trusting, bridge).expect("handshake with the bridge");
    let (status, body) = exchange(&mut on_bridge, "GET", "/api/status", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"bridge_status\""), "{body}");
    // A browser login over TLS gets a cookie it only ever sends back over TLS.
    let form = format!("token={TOKEN}&next=%2Fstatus");
    let (status, head, _) = send(
        &mut on_bridge,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost:{bridge}\r\nOrigin: https://localhost:{bridge}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.contains("; Secure"), "{cookie}");

    // `whatsapp-mcp status` on the https:// URL: with this machine's [tls] settings it trusts
    // the chain the service serves; without them it has the system's roots only, which do not
    // hold the test's CA, and says it cannot connect.
    let status = |with_tls: bool| {
        let mut command = Command::new(common::binary());
        command
            .args(["status", "--json"])
            .envs(common::isolated_env(&data))
            .env("WHATSAPP_BRIDGE_URL", format!("https://localhost:{bridge}"))
            .env("WHATSAPP_MCP_SOCKET", "none")
            .env("WHATSAPP_MCP_TOKEN", TOKEN);
        if with_tls {
            command
                .env("WHATSAPP_MCP_TLS_CERT", &cert)
                .env("WHATSAPP_MCP_TLS_KEY", &key);
        }
        command.output().unwrap()
    };
    let trusted = status(true);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("\"bridge_status\""));
    let untrusted = status(false);
    assert!(!untrusted.status.success());
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(said.contains("cannot reach the service"), "{said}");

    // A client that does not trust this CA stops at the handshake.
    let other = Pki::new(dir.path(), "other-ca");
    drop(other);
    let distrusting = client_config(&dir.path().join("other-ca.pem"));
    assert!(connect(&distrusting, mcp).is_err());
    // Plain HTTP on a TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", mcp)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // Renewal: the new certificate for new connections, the old connection goes on, same pid.
    replace(&cert, &chain(&second));
    // The files are looked at once a second at most.
    std::thread::sleep(Duration::from_millis(1200));
    let mut renewed = connect(&trusting, bridge).expect("handshake after the renewal");
    assert_eq!(peer_certificate(&renewed), der(&second));
    assert_eq!(exchange(&mut renewed, "GET", "/health", "").0, 200);
    assert_eq!(exchange(&mut kept, "GET", "/health", "").0, 200);
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok(),
        "the service was not restarted"
    );

    // A broken replacement: the last good certificate stays, with a warning.
    replace(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
    std::thread::sleep(Duration::from_millis(1200));
    let after = connect(&trusting, mcp).expect("handshake after a broken replacement");
    assert_eq!(peer_certificate(&after), der(&second));
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("still serving the previous certificate"),
        "{logged}"
    );
}

#[test]
fn a_certificate_that_does_not_load_stops_the_service_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cert = dir.path().join("missing.pem");
    let key = dir.path().join("missing.key");
    let output = serve_command(&data, free_port(), free_port())
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env("WHATSAPP_MCP_TLS_CERT", &cert)
        .env("WHATSAPP_MCP_TLS_KEY", &key)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TLS") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
