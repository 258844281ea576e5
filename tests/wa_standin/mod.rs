//! A WhatsApp server stand-in on 127.0.0.1 for the real whatsapp-rust client of the binary.
//!
//! It is the responder of the Noise handshake (XX for a new or freshly linked device, IK for a
//! device that kept the certificate of an earlier connection), then speaks the binary stanza
//! protocol inside the encrypted frames: each connection gets the [`Reply`] the test scripted
//! for it (offer QR refs, refuse the login, welcome a linked device with nothing queued for it),
//! the client's requests get empty answers (an account with no contacts, groups or app state),
//! and every stanza the client sends is kept for the test to look at. On the same port it
//! answers `GET /sw.js`, where the client reads the current version string.
//!
//! It stops short of anything end-to-end encrypted: it holds no Signal sessions, so it sends no
//! messages, history or app-state keys as a phone would.
//!
//! Its certificate chain is not signed by WhatsApp (only WhatsApp can do that); the test build
//! skips that check, see Cargo.toml.
#![allow(dead_code, unreachable_pub)]

pub mod phone;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder, WebSocketStream};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::framing::{FrameDecoder, encode_frame};
use whatsapp_rust::wacore::handshake::NoiseHandshake;
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore::noise::NoiseCipher;
use whatsapp_rust::wacore_binary::Node;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::wacore_binary::marshal::{marshal, unmarshal_ref};
use whatsapp_rust::wacore_binary::util::unpack;
use whatsapp_rust::waproto::whatsapp as wa;

/// The client revision `/sw.js` announces.
pub const CLIENT_REVISION: u32 = 1_026_131_876;

/// What the stand-in does on one connection once the handshake is done.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Offer these pairing refs (`<pair-device>`), then keep the socket open.
    Link(Vec<String>),
    /// Send this stanza (a `<failure>` or a `<stream:error>`) and hang up.
    Refuse(Node),
    /// Accept the login (`<success>`) and keep the socket open.
    Welcome,
}

/// What the client said in its handshake payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// A device that is not linked yet asks to register (QR or phone-number linking).
    Register,
    /// A linked device logs in as this user and device number.
    Login { user: u64, device: u32 },
}

/// One connection as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Connection {
    pub pattern: &'static str,
    pub hello: Hello,
}

#[derive(Default)]
struct State {
    script: Mutex<Vec<Reply>>,
    /// WebSocket upgrades so far: the client's connection attempts.
    attempts: AtomicUsize,
    version_fetches: AtomicUsize,
    connections: Mutex<Vec<Connection>>,
    received: Mutex<Vec<Node>>,
    /// Stanzas to push into the live connection.
    live: Mutex<Option<mpsc::UnboundedSender<Node>>>,
}

/// The stand-in, listening until dropped.
pub struct Standin {
    pub addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Standin {
    /// Listens on a free loopback port. Connection `n` (from 0) gets `script[n]`, later ones the
    /// last entry.
    pub fn start(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(State {
            script: Mutex::new(script),
            ..State::default()
        });
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&accepting);
                tokio::spawn(async move {
                    if let Err(err) = serve(stream, state).await {
                        eprintln!("stand-in: connection ended: {err}");
                    }
                });
            }
        });
        Self {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    /// Connection attempts (WebSocket upgrades) so far.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// How often the client fetched the version string.
    pub fn version_fetches(&self) -> usize {
        self.state.version_fetches.load(Ordering::SeqCst)
    }

    /// Connections whose handshake completed, in order.
    pub fn connections(&self) -> Vec<Connection> {
        self.state.connections.lock().unwrap().clone()
    }

    /// Every stanza the client sent so far.
    pub fn received(&self) -> Vec<Node> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits for a stanza from the client that `matches`.
    pub fn wait_for_stanza(&self, timeout: Duration, matches: impl Fn(&Node) -> bool) -> Node {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(node) = self.received().into_iter().find(&matches) {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "no such stanza from the client within {timeout:?}; got {:?}",
                self.received()
                    .iter()
                    .map(|n| n.tag.clone())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a stanza on the open connection.
    pub fn push(&self, node: Node) {
        let live = self.state.live.lock().unwrap();
        live.as_ref()
            .expect("a live connection")
            .send(node)
            .expect("the connection is open");
    }

    /// Waits until at least `n` connection attempts were made.
    pub fn wait_for_attempts(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.attempts() < n {
            assert!(
                Instant::now() < deadline,
                "{} connection attempts within {timeout:?}, wanted {n}",
                self.attempts()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `<failure reason="…"/>`, what the server answers a login it refuses.
pub fn failure(reason: u16) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", reason.to_string())
        .attr("location", "lla")
        .build()
}

/// `<stream:error><conflict type="replaced"/></stream:error>`: another client took over.
pub fn stream_replaced() -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict")
            .attr("type", "replaced")
            .build()])
        .build()
}

/// `<stream:error code="515"/>`: the server restarts the stream (sent right after pairing).
pub fn restart_stream() -> Node {
    NodeBuilder::new("stream:error").attr("code", "515").build()
}

/// A server-initiated IQ.
pub fn server_iq(id: &str, xmlns: &'static str, child: Node) -> Node {
    NodeBuilder::new("iq")
        .attr("from", "s.whatsapp.net")
        .attr("id", id)
        .attr("type", "set")
        .attr("xmlns", xmlns)
        .attr("t", now().to_string())
        .children([child])
        .build()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

type Ws = WebSocketStream<TcpStream>;
type Error = Box<dyn std::error::Error + Send + Sync>;

async fn serve(stream: TcpStream, state: Arc<State>) -> Result<(), Error> {
    // One port for both: the version fetch is plain HTTP, the chat socket a WebSocket upgrade.
    let mut head = [0u8; 16];
    let mut seen = 0;
    while seen < head.len() {
        seen = stream.peek(&mut head).await?;
        if seen == 0 {
            return Ok(());
        }
    }
    if head.starts_with(b"GET /sw.js") {
        state.version_fetches.fetch_add(1, Ordering::SeqCst);
        return serve_version(stream).await;
    }
    let (_request, ws) = ServerBuilder::new().accept(stream).await?;
    let index = state.attempts.fetch_add(1, Ordering::SeqCst);
    let reply = {
        let script = state.script.lock().unwrap();
        script[index.min(script.len() - 1)].clone()
    };
    let mut link = handshake(ws).await?;
    state.connections.lock().unwrap().push(Connection {
        pattern: link.pattern,
        hello: link.hello.clone(),
    });
    let (to_client, mut pushed) = mpsc::unbounded_channel();
    *state.live.lock().unwrap() = Some(to_client);
    let hang_up = match reply {
        Reply::Link(refs) => {
            let refs = refs
                .into_iter()
                .map(|r| NodeBuilder::new("ref").bytes(r.into_bytes()).build());
            let offer = NodeBuilder::new("pair-device").children(refs).build();
            link.send(server_iq("pair-1", "md", offer)).await?;
            None
        }
        Reply::Refuse(node) => {
            link.send(node).await?;
            // The real server closes the socket right after; the client may beat it to it.
            Some(tokio::time::Instant::now() + Duration::from_secs(2))
        }
        Reply::Welcome => {
            link.send(success()).await?;
            // Nothing was queued while the device was away.
            let offline = NodeBuilder::new("offline").attr("count", "0").build();
            link.send(NodeBuilder::new("ib").children([offline]).build())
                .await?;
            None
        }
    };
    loop {
        let deadline = async {
            match hang_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => {
                let _ = link.ws.close().await;
                return Ok(());
            }
            Some(node) = pushed.recv() => link.send(node).await?,
            node = link.recv() => {
                let Some(node) = node? else { return Ok(()) };
                if let Some(answer) = answer(&node) {
                    link.send(answer).await?;
                }
                state.received.lock().unwrap().push(node);
            }
        }
    }
}

/// `<success>` for a device that logged in.
fn success() -> Node {
    NodeBuilder::new("success")
        .attr("t", now().to_string())
        .attr("props", "1")
        .attr("abprops", "1")
        .attr("location", "lla")
        .attr("creation", now().to_string())
        .build()
}

/// The stand-in's answer to a client request: an app-state sync gets every requested collection
/// back empty (an account with nothing in it yet), every other request an empty result.
fn answer(node: &Node) -> Option<Node> {
    if node.tag != "iq" {
        return None;
    }
    let mut attrs = node.attrs();
    let kind = attrs
        .optional_string("type")
        .map(std::borrow::Cow::into_owned);
    let xmlns = attrs
        .optional_string("xmlns")
        .map(std::borrow::Cow::into_owned);
    let id = attrs
        .optional_string("id")
        .map(std::borrow::Cow::into_owned)?;
    let result = NodeBuilder::new("iq")
        .attr("from", "s.whatsapp.net")
        .attr("id", id)
        .attr("type", "result");
    match (kind.as_deref(), xmlns.as_deref()) {
        (Some("get"), Some("w:p")) => Some(result.build()),
        (Some("set"), Some("w:sync:app:state")) => {
            let names = node
                .get_optional_child("sync")
                .map(|sync| {
                    sync.get_children_by_tag("collection")
                        .filter_map(|c| {
                            let name = c.attrs().optional_string("name")?;
                            Some(name.into_owned())
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let collections = names.into_iter().map(|name| {
                NodeBuilder::new("collection")
                    .attr("name", name)
                    .attr("version", "0")
                    .build()
            });
            Some(
                result
                    .children([NodeBuilder::new("sync").children(collections).build()])
                    .build(),
            )
        }
        // Anything else the client asks gets an empty result: enough for the requests it
        // waits on after login (prekeys, passive mode, privacy settings) to move on.
        (Some("get" | "set"), _) => Some(result.build()),
        _ => None,
    }
}

async fn serve_version(mut stream: TcpStream) -> Result<(), Error> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let body = format!("self.client_revision={CLIENT_REVISION};\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/javascript\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// One handshaken connection: encrypted frames both ways.
struct Link {
    ws: Ws,
    frames: FrameDecoder,
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
    pattern: &'static str,
    hello: Hello,
}

impl Link {
    async fn send(&mut self, node: Node) -> Result<(), Error> {
        let plain = marshal(&node)?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)?;
        self.write_counter += 1;
        self.ws
            .send(Message::binary(encode_frame(&sealed, None)?))
            .await?;
        Ok(())
    }

    /// The next stanza from the client; `None` when it hung up.
    async fn recv(&mut self) -> Result<Option<Node>, Error> {
        let Some(mut frame) = next_frame(&mut self.ws, &mut self.frames).await? else {
            return Ok(None);
        };
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)?;
        self.read_counter += 1;
        let plain = unpack(&frame)?;
        Ok(Some(unmarshal_ref(&plain)?.to_owned()))
    }
}

async fn next_frame(ws: &mut Ws, frames: &mut FrameDecoder) -> Result<Option<Vec<u8>>, Error> {
    loop {
        if let Some(frame) = frames.decode_frame() {
            return Ok(Some(frame.to_vec()));
        }
        match ws.next().await {
            None => return Ok(None),
            Some(message) => {
                let message = message?;
                if message.is_close() {
                    return Ok(None);
                }
                if message.is_binary() {
                    frames.feed(message.as_payload());
                }
            }
        }
    }
}

fn key32(bytes: &[u8]) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| "a key is not 32 bytes".into())
}

fn public(pair: &KeyPair) -> [u8; 32] {
    pair.public_key.public_key_bytes().try_into().unwrap()
}

/// The stand-in's long-lived Noise identity and its certificate chain (unsigned, see above).
struct Identity {
    keys: KeyPair,
    chain: Vec<u8>,
}

impl Identity {
    fn new() -> Self {
        let keys = KeyPair::generate(&mut rand::rng());
        let details = |serial: u32, issuer: u32, key: Vec<u8>| {
            wa::cert_chain::noise_certificate::Details {
                serial: Some(serial),
                issuer_serial: Some(issuer),
                key: Some(key),
                not_before: Some(now() - 3600),
                not_after: Some(now() + 30 * 86_400),
            }
            .encode_to_vec()
        };
        let certificate = |details: Vec<u8>| wa::cert_chain::NoiseCertificate {
            details: Some(details),
            signature: Some(vec![0; 64]),
        };
        let chain = wa::CertChain {
            intermediate: whatsapp_rust::buffa::MessageField::some(certificate(details(
                1,
                0,
                vec![0x5a; 32],
            ))),
            leaf: whatsapp_rust::buffa::MessageField::some(certificate(details(
                2,
                1,
                public(&keys).to_vec(),
            ))),
        }
        .encode_to_vec();
        Self { keys, chain }
    }
}

/// One stand-in identity for the whole test process: a device that cached the certificate on
/// one connection finds the same key on the next (Noise IK).
fn identity() -> &'static Identity {
    static IDENTITY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(Identity::new)
}

fn server_hello(ephemeral: [u8; 32], r#static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    let hello = wa::HandshakeMessage {
        server_hello: whatsapp_rust::buffa::MessageField::some(
            wa::handshake_message::ServerHello {
                ephemeral: Some(ephemeral.to_vec()),
                r#static,
                payload: Some(payload),
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    encode_frame(&hello.encode_to_vec(), None).unwrap()
}

fn hello_of(payload: &[u8]) -> Result<Hello, Error> {
    let payload = wa::ClientPayload::decode_from_slice(payload)?;
    Ok(match payload.username {
        Some(user) => Hello::Login {
            user,
            device: payload.device.unwrap_or(0),
        },
        None => Hello::Register,
    })
}

/// The responder side of the Noise handshake, XX or IK as the client chose.
async fn handshake(mut ws: Ws) -> Result<Link, Error> {
    let me = identity();
    let mut frames = FrameDecoder::new();
    // The first message carries the connection header in front of its frame.
    let first = loop {
        match ws.next().await {
            None => return Err("closed before the hello".into()),
            Some(message) => {
                let message = message?;
                if message.is_binary() {
                    break message.as_payload().to_vec();
                }
            }
        }
    };
    let rest = first
        .strip_prefix(&WA_CONN_HEADER[..])
        .ok_or("no connection header")?;
    frames.feed(rest);
    let hello = next_frame(&mut ws, &mut frames)
        .await?
        .ok_or("closed before the hello")?;
    let hello = wa::HandshakeMessage::decode_from_slice(&hello)?
        .client_hello
        .into_option()
        .ok_or("no client hello")?;
    let client_ephemeral = key32(hello.ephemeral.as_deref().ok_or("no ephemeral key")?)?;
    let ephemeral = KeyPair::generate(&mut rand::rng());
    let (noise, pattern, hello) = match (hello.r#static, hello.payload) {
        (Some(sealed_static), Some(sealed_payload)) => {
            // IK: the client knew our static key from an earlier connection.
            let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
            noise.authenticate(&public(&me.keys));
            noise.authenticate(&client_ephemeral);
            noise.mix_shared_secret(me.keys.private_key.serialize(), &client_ephemeral)?;
            let client_static = key32(&noise.decrypt(&sealed_static)?)?;
            noise.mix_shared_secret(me.keys.private_key.serialize(), &client_static)?;
            let payload = noise.decrypt(&sealed_payload)?;
            noise.authenticate(&public(&ephemeral));
            noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
            noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
            let sealed_chain = noise.encrypt(&me.chain)?;
            ws.send(Message::binary(server_hello(
                public(&ephemeral),
                None,
                sealed_chain,
            )))
            .await?;
            (noise, "IK", hello_of(&payload)?)
        }
        _ => {
            let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
            noise.authenticate(&client_ephemeral);
            noise.authenticate(&public(&ephemeral));
            noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
            let sealed_static = noise.encrypt(&public(&me.keys))?;
            noise.mix_shared_secret(me.keys.private_key.serialize(), &client_ephemeral)?;
            let sealed_chain = noise.encrypt(&me.chain)?;
            ws.send(Message::binary(server_hello(
                public(&ephemeral),
                Some(sealed_static),
                sealed_chain,
            )))
            .await?;
            let finish = next_frame(&mut ws, &mut frames)
                .await?
                .ok_or("closed before the client finish")?;
            let finish = wa::HandshakeMessage::decode_from_slice(&finish)?
                .client_finish
                .into_option()
                .ok_or("no client finish")?;
            let client_static =
                key32(&noise.decrypt(finish.r#static.as_deref().ok_or("no static key")?)?)?;
            noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
            let payload = noise.decrypt(finish.payload.as_deref().ok_or("no payload")?)?;
            (noise, "XX", hello_of(&payload)?)
        }
    };
    // The client writes with the first key and reads with the second.
    let (read, write) = noise.finish()?;
    Ok(Link {
        ws,
        frames,
        read,
        write,
        read_counter: 0,
        write_counter: 0,
        pattern,
        hello,
    })
}
