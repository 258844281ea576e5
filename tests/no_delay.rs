//! Nagle's algorithm is off on every TCP connection the binary makes or accepts.
//!
//! An MCP answer leaves the service in more than one write; with Nagle on, a kept-alive client
//! waits for its own delayed ACK (about 40 ms) on every call. These tests read `TCP_NODELAY` from
//! the binary's own sockets (see `common::tcp_nodelay`): the ones its accept loop took on both
//! ports, with listeners from socket activation and bound by itself, and the ones `status` and
//! the stdio relay open to the service.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, NotifySocket, free_port, tcp_nodelay};

/// Opens a connection to `port`, completes one HTTP/1.1 exchange on it (so the service has
/// accepted it and served it) and returns it still open.
fn kept_alive(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete(&answer) {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    stream
}

/// True once `answer` holds a whole response with a `content-length` body.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .expect("a content-length header");
    body.len() >= length
}

/// Checks the service's side of a kept-alive connection to each port.
fn assert_accepted_without_nagle(pid: u32, ports: &[u16]) {
    for &port in ports {
        let client = kept_alive(port);
        let own = client.local_addr().unwrap().port();
        assert!(
            tcp_nodelay(pid, port, own),
            "Nagle is still on for the connection accepted on port {port}"
        );
    }
}

#[test]
fn accepted_connections_on_both_ports_socket_activated() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let child = common::socket_activate(&[bridge, mcp], "bridge:mcp", &notify, data.path(), 0);
    assert_accepted_without_nagle(child.id(), &[bridge, mcp]);
}

#[test]
fn accepted_connections_on_both_ports_self_bound() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let child = common::serve_command(data.path(), bridge, mcp)
        .env("NOTIFY_SOCKET", &notify.path)
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let ready = notify.collect_until(Duration::from_secs(30), |line| line == "READY=1");
    assert!(ready.iter().any(|l| l == "READY=1"), "{ready:?}");
    assert_accepted_without_nagle(child.id(), &[bridge, mcp]);
}

/// Runs `args` against a stand-in service on a port of the test's own, waits for the
/// connection the binary opens, and checks the binary's side of it.
fn assert_connects_without_nagle(args: &[&str]) {
    let data = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let child = Command::new(common::binary())
        .args(args)
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_BRIDGE_URL", format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let (stream, peer) = loop {
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "`{args:?}` never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("accept: {err}"),
        }
    };
    assert!(
        tcp_nodelay(child.id(), peer.port(), port),
        "Nagle is on for the connection `whatsapp-mcp {}` opened",
        args.join(" ")
    );
    drop(stream);
}

#[test]
fn the_status_command_connects_without_nagle() {
    assert_connects_without_nagle(&["status"]);
}

#[test]
fn the_stdio_relay_connects_without_nagle() {
    assert_connects_without_nagle(&["stdio"]);
}
