//! The stdio relay outlives the service: after a restart its client's next calls work, none
//! is lost and nothing is sent twice; while the service is down, calls wait for it.
#![cfg(feature = "fake-engine")]

mod common;

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
