//! The stdio relay outlives the service: after a restart its client's next calls work, none
//! is lost and nothing is sent twice; while the service is down, calls wait for it. An acting
//! call whose connection breaks in flight is sent again with its request key and done once.
#![cfg(feature = "fake-engine")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::stdio::StdioClient;
use common::{KillOnDrop, NotifySocket, free_port, terminate, wait_with_timeout};
use serde_json::{Value, json};

/// The demo service on fixed ports, so a restart comes back where the relay looks.
struct Service {
    data: tempfile::TempDir,
    bridge: u16,
    mcp: u16,
}

impl Service {
    fn start(&self) -> KillOnDrop {
        let archive = format!(
            "sqlite://{}",
            self.data.path().join("whatsapp.db").display()
        );
        common::serve_demo(
            self.data.path(),
            &archive,
            &NotifySocket::new(),
            self.bridge,
            self.mcp,
        )
    }
}

fn stop(mut child: KillOnDrop) {
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("stops");
    assert!(exit.success(), "{exit:?}");
}

/// A tool call through the relay that must succeed; its structured result.
fn call(relay: &mut StdioClient, tool: &str, arguments: &Value) -> Value {
    let result = relay
        .request("tools/call", &json!({"name": tool, "arguments": arguments}))
        .unwrap_or_else(|err| panic!("{tool}: {err}"));
    assert_eq!(result["isError"], json!(false), "{tool}: {result}");
    result["structuredContent"].clone()
}

/// How many messages in the recipient's chat have this text.
fn sent_count(relay: &mut StdioClient, text: &str) -> usize {
    let found = call(
        relay,
        "list_messages",
        &json!({"chat_jid": "31611111111@s.whatsapp.net", "limit": 100, "include_context": false}),
    );
    found["messages"].as_array().map_or(0, |messages| {
        messages.iter().filter(|m| m["text"] == text).count()
    })
}

#[test]
fn calls_after_a_restart_work_and_nothing_is_sent_twice() {
    let service = Service {
        data: tempfile::tempdir().unwrap(),
        bridge: free_port(),
        mcp: free_port(),
    };
    let first = service.start();
    let mut relay = StdioClient::spawn(&["stdio"], service.data.path(), service.bridge);
    relay.initialize();
    relay.initialized();
    let chats = call(&mut relay, "list_chats", &json!({}))["count"].clone();
    let send = json!({"recipient": "+31 6 1111 1111", "message": "relay before the restart"});
    call(&mut relay, "send_message", &send);

    stop(first);
    let second = service.start();
    // The new service knows nothing of the relay's session; the relay opens a new one.
    assert_eq!(call(&mut relay, "list_chats", &json!({}))["count"], chats);
    let send = json!({"recipient": "+31 6 1111 1111", "message": "relay after the restart"});
    call(&mut relay, "send_message", &send);
    assert_eq!(sent_count(&mut relay, "relay after the restart"), 1);
    assert_eq!(sent_count(&mut relay, "relay before the restart"), 1);

    // While a self-bound service is down its ports refuse connections; the relay keeps
    // offering the call until it is back.
    stop(second);
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let third = service.start();
        (service, third)
    });
    assert_eq!(call(&mut relay, "list_chats", &json!({}))["count"], chats);
    let (_service, third) = restarter.join().unwrap();
    assert!(relay.close().is_some_and(|exit| exit.success()));
    stop(third);
}

/// A TCP relay in front of the service that, once armed, cuts the connection carrying the next
/// `send_message` call after handing the call on and before any of its answer comes back, as a
/// network or a proxy can.
struct CuttingProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (armed_, cuts_) = (Arc::clone(&armed), Arc::clone(&cuts));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let upstream = TcpStream::connect(("127.0.0.1", target)).unwrap();
                let cut = Arc::new(AtomicBool::new(false));
                let (mut from_service, mut to_client) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                let cut_ = Arc::clone(&cut);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from_service.read(&mut buf) {
                        if n == 0 || cut_.load(Ordering::SeqCst) {
                            break;
                        }
                        if to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                let (armed, cuts) = (Arc::clone(&armed_), Arc::clone(&cuts_));
                std::thread::spawn(move || {
                    let (mut from_client, mut to_service) = (client, upstream);
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = from_client.read(&mut buf).unwrap_or(0);
                        if n == 0 {
                            let _ = to_service.shutdown(Shutdown::Write);
                            break;
                        }
                        let chunk = &buf[..n];
                        let acting = chunk.windows(14).any(|w| w == b"\"send_message\"");
                        if acting && armed.swap(false, Ordering::SeqCst) {
                            cut.store(true, Ordering::SeqCst);
                            cuts.fetch_add(1, Ordering::SeqCst);
                            to_service.write_all(chunk).unwrap();
                            // The service acts; its answer is dropped with the connection.
                            std::thread::sleep(Duration::from_millis(500));
                            let _ = from_client.shutdown(Shutdown::Both);
                            let _ = to_service.shutdown(Shutdown::Both);
                            break;
                        }
                        if to_service.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, armed, cuts }
    }
}

#[test]
fn an_acting_call_cut_off_in_flight_is_sent_again_and_done_once() {
    let service = Service {
        data: tempfile::tempdir().unwrap(),
        bridge: free_port(),
        mcp: free_port(),
    };
    let running = service.start();
    let proxy = CuttingProxy::start(service.bridge);
    let mut relay = StdioClient::spawn(&["stdio"], service.data.path(), proxy.port);
    relay.initialize();
    relay.initialized();
    proxy.armed.store(true, Ordering::SeqCst);
    let send = json!({"recipient": "+31 6 1111 1111", "message": "cut off in flight"});
    // The relay sends the call again with its request key; the service answers from its
    // ledger instead of sending a second time.
    let sent = call(&mut relay, "send_message", &send);
    assert_eq!(sent["sent"], json!(true), "{sent}");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(sent_count(&mut relay, "cut off in flight"), 1);
    assert!(relay.close().is_some_and(|exit| exit.success()));
    stop(running);
}
