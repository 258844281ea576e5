//! Tool calls whose answer nobody waits for any more: a read-only call stops when the client
//! cancels it (`notifications/cancelled`) or its session ends (DELETE, the SSE stream closed)
//! and gives its database connection back; a call that sends a message runs to the end however
//! it is cancelled, so what went out is in the archive. The calls are held up inside the
//! database by a table lock the test takes on the real PostgreSQL archive.
#![cfg(feature = "fake-engine")]

mod common;
mod wire;

use std::time::{Duration, Instant};

use common::NotifySocket;
use common::pg::PgCluster;
use serde_json::{Value, json};

/// Only stops a hung test; nothing here measures speed.
const PATIENCE: Duration = Duration::from_secs(30);

fn running_calls(mcp: u16) -> u64 {
    wire::sessions(mcp)["running_tool_calls"]
        .as_u64()
        .expect("/debug/sessions counts running tool calls")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An open transaction holding `ACCESS EXCLUSIVE` on `messages`: every read and write of the
/// table waits until it ends.
struct MessagesLocked {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl MessagesLocked {
    fn take(url: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
            client
        });
        Self { runtime, client }
    }

    fn release(self) {
        self.runtime
            .block_on(self.client.batch_execute("COMMIT"))
            .unwrap();
    }
}

/// A cancelled request gets no answer (MCP says a receiver should not answer one): its event
/// stream ends without a result.
fn is_cancelled(outcome: &wire::Outcome) -> bool {
    matches!(outcome, Err(text) if text.contains("without a response") || text.contains("cancelled"))
}

#[test]
fn cancelled_reads_stop_and_sends_finish() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (common::free_port(), common::free_port());
    let _serve = common::serve_demo(data.path(), &url, &notify, bridge, mcp);
    let endpoint = format!("http://127.0.0.1:{mcp}/mcp");
    let mut client = wire::Streamable::open(&endpoint).unwrap();
    wait_until("the demo archive", || {
        client
            .call("list_chats", &json!({}))
            .is_ok_and(|r| r["structuredContent"]["count"].as_u64() > Some(0))
    });
    assert_eq!(running_calls(mcp), 0);
    let lock = MessagesLocked::take(&url);

    // 1. The client cancels a search: the call stops while the lock still holds it up.
    let mut caller = client.fork(100);
    let id = caller.next_request_id();
    let search =
        std::thread::spawn(move || caller.call("list_messages", &json!({"query": "dinner"})));
    wait_until("the search to start", || running_calls(mcp) == 1);
    let status = client
        .notify(
            "notifications/cancelled",
            &json!({"requestId": id, "reason": "the user gave up"}),
        )
        .unwrap();
    assert_eq!(status, 202);
    wait_until("the cancelled search to stop", || running_calls(mcp) == 0);
    let outcome = search.join().unwrap();
    assert!(is_cancelled(&outcome), "{outcome:?}");

    // 2. A Streamable HTTP session ends (DELETE) with a call under way.
    let second = wire::Streamable::open(&endpoint).unwrap();
    let mut caller = second.fork(100);
    let listing = std::thread::spawn(move || {
        caller.call("list_chats", &json!({"include_last_message": true}))
    });
    wait_until("the listing to start", || running_calls(mcp) == 1);
    second.close().unwrap();
    wait_until("the listing of the ended session to stop", || {
        running_calls(mcp) == 0
    });
    assert!(listing.join().unwrap().is_err());

    // 3. An SSE client hangs up with a call under way.
    let mut sse = wire::Sse::open(mcp).unwrap();
    sse.send_call("list_messages", &json!({"query": "tokyo"}))
        .unwrap();
    wait_until("the SSE search to start", || running_calls(mcp) == 1);
    sse.close();
    wait_until("the search of the closed SSE stream to stop", || {
        running_calls(mcp) == 0
    });

    // 4. A send is cancelled: it goes on, and once the lock is gone it is archived.
    let mut caller = client.fork(200);
    let id = caller.next_request_id();
    let send = std::thread::spawn(move || {
        caller.call(
            "send_message",
            &json!({"recipient": whatsapp_mcp::engine::fake::DEMO_ADA, "message": "sent despite the cancel"}),
        )
    });
    wait_until("the send to start", || running_calls(mcp) == 1);
    client
        .notify("notifications/cancelled", &json!({"requestId": id}))
        .unwrap();
    // The cancel has had time to act (the search above stopped within this); the send must not.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running_calls(mcp), 1, "a cancel stopped a send");
    lock.release();
    wait_until("the send to finish", || running_calls(mcp) == 0);
    // The client asked not to be answered, and is not; the message went out all the same.
    let outcome = send.join().unwrap();
    assert!(is_cancelled(&outcome), "{outcome:?}");
    let found = client
        .call(
            "list_messages",
            &json!({"chat_jid": whatsapp_mcp::engine::fake::DEMO_ADA, "query": "despite the cancel"}),
        )
        .unwrap();
    assert_eq!(found["structuredContent"]["count"], json!(1), "{found}");

    // Cancelled calls left the connection pool in working order.
    let chats: Value = client
        .call("list_chats", &json!({"include_last_message": true}))
        .unwrap();
    assert!(chats["structuredContent"]["count"].as_u64() > Some(0));
}
