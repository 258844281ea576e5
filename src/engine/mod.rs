//! The port to WhatsApp: the actions the rest of the program may ask of a WhatsApp connection.
//!
//! The MCP tools and the bridge talk to an `Arc<dyn Engine>` and never to whatsapp-rust itself.
//! An engine publishes its link state through [`crate::state::StatusHandle`] and writes what it
//! receives and sends to the [`crate::store::Store`]; every action that sends a message stores
//! the sent message before it returns, so the archive always shows it.

#[cfg(feature = "fake-engine")]
pub mod fake;
pub mod ingest;
pub mod media;
pub mod whatsapp;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::jid::Jid;
use crate::store::model::Message;

/// What can go wrong when asking WhatsApp to do something, in words a user (or a model) can act
/// on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No account is linked to this server.
    #[error(
        "WhatsApp is not linked: open http://HOST:8080/qr (or run `whatsapp-mcp qr`) and scan the code with the phone"
    )]
    NotLinked,
    /// Linked but not connected right now; the engine is reconnecting.
    #[error("WhatsApp is not connected right now ({0}); try again in a minute")]
    Disconnected(String),
    /// This process runs without a WhatsApp connection (e.g. the engine is switched off).
    #[error("this whatsapp-mcp process has no WhatsApp connection: {0}")]
    Unavailable(String),
    /// The recipient cannot receive messages (unknown number, not on WhatsApp, not allowed).
    #[error("cannot send to {0}")]
    Recipient(String),
    /// The message, chat or media named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A media file could not be read, converted, uploaded or downloaded.
    #[error("media: {0}")]
    Media(String),
    /// WhatsApp refused the request or it failed in transit.
    #[error("WhatsApp: {0}")]
    Failed(String),
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session database could not be opened or migrated.
    #[error("opening the WhatsApp session store: {0}")]
    SessionStore(crate::store::StoreError),
    /// The fake engine's seed names nothing it knows.
    #[cfg(feature = "fake-engine")]
    #[error("unknown or malformed WHATSAPP_MCP_FAKE_SEED {0:?}")]
    Seed(String),
    /// Filling the archive for the fake engine failed.
    #[cfg(feature = "fake-engine")]
    #[error("seeding the fake engine: {0}")]
    Seeding(crate::store::StoreError),
    /// `engine.kind = "fake"` in a build without the test engine.
    #[error("this build has no fake engine (feature fake-engine)")]
    NoFakeEngine,
}

/// The kind of media a file is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    /// A plain audio file (not a voice note).
    Audio,
    Document,
}

impl MediaKind {
    /// Picks the kind from a MIME type; anything unknown is sent as a document.
    pub fn from_mime(mime: &str) -> Self {
        match mime.split('/').next().unwrap_or_default() {
            "image" if mime != "image/svg+xml" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            _ => Self::Document,
        }
    }
}

/// A text message to send.
#[derive(Clone, Debug)]
pub struct OutgoingText {
    pub text: String,
    /// The id of the message in the same chat this one replies to.
    pub reply_to: Option<String>,
    /// The people mentioned; each appears in `text` as `@` and their number.
    pub mentions: Vec<Jid>,
}

/// A poll to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingPoll {
    pub question: String,
    /// The options, 2 to 12, each named once.
    pub options: Vec<String>,
    /// How many options one voter may pick, 1 to all of them.
    pub selectable: u32,
}

/// How a poll reads in the archive's text column, so it shows and is found like a message.
pub fn poll_text(question: &str, options: &[String]) -> String {
    format!("[poll] {question} ({})", options.join(" / "))
}

impl OutgoingText {
    /// Plain text: no reply, no mentions.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            reply_to: None,
            mentions: Vec::new(),
        }
    }
}

/// A file to send, already checked to be inside the outbox and within the size limit, and held
/// open since that check: what goes out is the file that was checked, even if its path is
/// replaced (by a symlink to something private, say) before the engine gets to it.
#[derive(Clone, Debug)]
pub struct OutgoingFile {
    /// Where the file was when it was checked; shown in messages, never opened again.
    pub path: PathBuf,
    /// The name the recipient sees.
    pub file_name: String,
    pub mime_type: String,
    handle: Arc<std::fs::File>,
    max_len: u64,
}

impl OutgoingFile {
    /// Wraps a file opened (and checked) by the caller; `max_len` bounds what `read` accepts
    /// should the file grow after the check.
    pub fn new(
        handle: std::fs::File,
        path: PathBuf,
        file_name: String,
        mime_type: String,
        max_len: u64,
    ) -> Self {
        OutgoingFile {
            path,
            file_name,
            mime_type,
            handle: Arc::new(handle),
            max_len,
        }
    }

    /// The file's whole content, read through the handle opened at the check.
    pub async fn read(&self) -> Result<Vec<u8>, EngineError> {
        let (handle, max_len) = (Arc::clone(&self.handle), self.max_len);
        let unreadable = self.unreadable();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt as _;
            let len = handle.metadata()?.len();
            if len > max_len {
                return Err(std::io::Error::other(format!(
                    "it grew to {} MiB since it was checked",
                    len.div_ceil(1024 * 1024)
                )));
            }
            // Positional reads: clones of this file share one offset.
            let mut bytes = vec![0; len as usize];
            handle.read_exact_at(&mut bytes, 0)?;
            Ok(bytes)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|read| read)
        .map_err(unreadable)
    }

    /// The file's size now.
    pub fn size(&self) -> Result<u64, EngineError> {
        self.handle
            .metadata()
            .map(|m| m.len())
            .map_err(self.unreadable())
    }

    /// Another descriptor of the same open file, e.g. as a converter's standard input.
    pub fn duplicate(&self) -> Result<std::fs::File, EngineError> {
        self.handle.try_clone().map_err(self.unreadable())
    }

    /// The error for an I/O failure on this file, naming it as the sender knows it.
    fn unreadable(&self) -> impl FnOnce(std::io::Error) -> EngineError + use<> {
        let name = self.file_name.clone();
        move |err| EngineError::Media(format!("cannot read {name}: {err}"))
    }
}

/// Where a downloaded media file was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadedMedia {
    pub path: PathBuf,
    pub mime_type: Option<String>,
    pub size_bytes: u64,
    /// True when an earlier download was reused (its hash matched).
    pub reused: bool,
}

/// The actions available on a WhatsApp connection.
#[async_trait::async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Sends a text message, optionally as a reply to `reply_to` (a message id in that chat).
    /// Returns the message as stored in the archive.
    async fn send_text(&self, to: Jid, text: OutgoingText) -> Result<Message, EngineError>;

    /// Sends an image, video, audio file or document, with an optional caption.
    async fn send_file(
        &self,
        to: Jid,
        file: OutgoingFile,
        kind: MediaKind,
        caption: Option<String>,
    ) -> Result<Message, EngineError>;

    /// Sends a voice note (push-to-talk audio); the engine converts to Ogg/Opus when needed.
    async fn send_voice_note(&self, to: Jid, file: OutgoingFile) -> Result<Message, EngineError>;

    /// Reacts to a message; an empty emoji removes our reaction.
    async fn react(&self, chat: Jid, message_id: String, emoji: String) -> Result<(), EngineError>;

    /// Replaces the text of our own text message `message_id` in `chat` (the caller checked
    /// that it is ours and within WhatsApp's edit window). Returns the message as archived.
    async fn edit_text(
        &self,
        chat: Jid,
        message_id: String,
        text: String,
    ) -> Result<Message, EngineError>;

    /// Deletes our own message `message_id` in `chat` for everyone (a revoke).
    async fn revoke(&self, chat: Jid, message_id: String) -> Result<(), EngineError>;

    /// Sends a poll; returns its message as archived (its votes are counted as they come).
    async fn send_poll(&self, to: Jid, poll: OutgoingPoll) -> Result<Message, EngineError>;

    /// Marks the given messages of a chat as read.
    async fn mark_read(&self, chat: Jid, message_ids: Vec<String>) -> Result<(), EngineError>;

    /// Asks the phone for up to `count` messages older than the oldest archived in `chat`; they
    /// arrive later through history sync.
    async fn request_history(&self, chat: Jid, count: u32) -> Result<(), EngineError>;

    /// Downloads the media of a message into the media directory (reusing an earlier download
    /// whose hash matches) and returns where it is.
    async fn download_media(
        &self,
        chat: Jid,
        message_id: String,
    ) -> Result<DownloadedMedia, EngineError>;

    /// Starts linking a phone if none is linked: QR codes then appear in the status.
    async fn start_linking(&self) -> Result<(), EngineError> {
        Err(EngineError::Unavailable(
            "this engine cannot link a phone".to_owned(),
        ))
    }

    /// Requests the 8-character code to link the phone with number `phone` ("Link with phone
    /// number instead" on the phone).
    async fn pair_code(&self, phone: Jid) -> Result<String, EngineError> {
        let _ = phone;
        Err(EngineError::Unavailable(
            "this engine cannot link a phone".to_owned(),
        ))
    }

    /// Unlinks this device and wipes the session; the archive too when `wipe_archive`.
    async fn logout(&self, wipe_archive: bool) -> Result<(), EngineError> {
        let _ = wipe_archive;
        Err(EngineError::Unavailable(
            "this engine has no session to log out of".to_owned(),
        ))
    }

    /// Closes the connection cleanly (flushing session state) before the process exits.
    async fn shutdown(&self) {}
}

/// Starts the engine `kind` names (`engine.kind`): the real engine on the session database
/// `session_url`, or none.
///
/// Builds with the `fake-engine` feature accept `WHATSAPP_MCP_ENGINE=fake` (tests only), with
/// `WHATSAPP_MCP_FAKE_SEED` set to `demo` or `history:CHATS:MESSAGES` (fill the archive first),
/// `logged-out` / `stream-replaced` (start in that state) or `scan-after:MS` (link on request).
/// With `WHATSAPP_MCP_FAKE_ACK_LOG` naming a file, history sync chunks are acknowledged there and
/// a restart re-sends only the unacknowledged ones (see [`fake::AckLog`]). With
/// `WHATSAPP_MCP_FAKE_INBOX` naming a directory, JSON files dropped there arrive as messages
/// from contacts (see [`fake::FakeEngine::with_inbox`]).
pub async fn start(
    kind: crate::config::EngineKind,
    store: std::sync::Arc<dyn crate::store::Store>,
    status: crate::state::StatusHandle,
    media_dir: PathBuf,
    session_url: &crate::config::DatabaseUrl,
) -> Result<std::sync::Arc<dyn Engine>, StartError> {
    use crate::config::EngineKind;
    match kind {
        EngineKind::Whatsapp => {
            let ingest = ingest::Ingest::new(store, status);
            let engine =
                whatsapp::WhatsAppEngine::start(ingest, session_url.clone(), media_dir).await?;
            Ok(std::sync::Arc::new(engine))
        }
        EngineKind::None => {
            let _ = (store, status, media_dir, session_url);
            Ok(std::sync::Arc::new(NoEngine::new(
                "this process runs without a WhatsApp connection (WHATSAPP_MCP_ENGINE=none)",
            )))
        }
        #[cfg(feature = "fake-engine")]
        EngineKind::Fake => {
            status.update(|s| s.state = crate::state::LinkState::NotLinked);
            let mut engine = fake::FakeEngine::new(ingest::Ingest::new(store, status), media_dir);
            if let Some(path) = std::env::var_os("WHATSAPP_MCP_FAKE_ACK_LOG") {
                engine = engine.with_ack_log(path.into());
            }
            if let Some(dir) = std::env::var_os("WHATSAPP_MCP_FAKE_INBOX") {
                engine = engine.with_inbox(dir.into());
            }
            let seed = std::env::var("WHATSAPP_MCP_FAKE_SEED").unwrap_or_default();
            let seeded = match seed.split(':').collect::<Vec<_>>().as_slice() {
                [""] => Ok(()),
                ["scan-after", millis] => {
                    let millis = millis.parse().map_err(|_| StartError::Seed(seed.clone()))?;
                    engine = engine.with_scan_after(std::time::Duration::from_millis(millis));
                    Ok(())
                }
                ["demo"] => engine.seed_demo().await,
                ["logged-out"] => {
                    let reason = "the phone removed this linked device".to_owned();
                    engine.emit(ingest::EngineEvent::LoggedOut { reason }).await
                }
                ["stream-replaced"] => {
                    let account = fake::FakeEngine::account();
                    let connected = ingest::EngineEvent::Connected { account };
                    match engine.emit(connected).await {
                        Ok(()) => engine.emit(ingest::EngineEvent::StreamReplaced).await,
                        Err(err) => Err(err),
                    }
                }
                ["history", chats, messages] => {
                    let chats = chats.parse().map_err(|_| StartError::Seed(seed.clone()))?;
                    let messages = messages
                        .parse()
                        .map_err(|_| StartError::Seed(seed.clone()))?;
                    engine.play_history(chats, messages).await
                }
                _ => return Err(StartError::Seed(seed)),
            };
            seeded.map_err(StartError::Seeding)?;
            Ok(std::sync::Arc::new(engine))
        }
        #[cfg(not(feature = "fake-engine"))]
        EngineKind::Fake => Err(StartError::NoFakeEngine),
    }
}

/// The engine of a process that has no WhatsApp connection: every action explains why.
#[derive(Debug, Clone)]
pub struct NoEngine {
    reason: String,
}

impl NoEngine {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    fn refuse<T>(&self) -> Result<T, EngineError> {
        Err(EngineError::Unavailable(self.reason.clone()))
    }
}

#[async_trait::async_trait]
impl Engine for NoEngine {
    async fn send_text(&self, _: Jid, _: OutgoingText) -> Result<Message, EngineError> {
        self.refuse()
    }

    async fn send_file(
        &self,
        _: Jid,
        _: OutgoingFile,
        _: MediaKind,
        _: Option<String>,
    ) -> Result<Message, EngineError> {
        self.refuse()
    }

    async fn send_voice_note(&self, _: Jid, _: OutgoingFile) -> Result<Message, EngineError> {
        self.refuse()
    }

    async fn react(&self, _: Jid, _: String, _: String) -> Result<(), EngineError> {
        self.refuse()
    }

    async fn edit_text(&self, _: Jid, _: String, _: String) -> Result<Message, EngineError> {
        self.refuse()
    }

    async fn revoke(&self, _: Jid, _: String) -> Result<(), EngineError> {
        self.refuse()
    }

    async fn send_poll(&self, _: Jid, _: OutgoingPoll) -> Result<Message, EngineError> {
        self.refuse()
    }

    async fn mark_read(&self, _: Jid, _: Vec<String>) -> Result<(), EngineError> {
        self.refuse()
    }

    async fn request_history(&self, _: Jid, _: u32) -> Result<(), EngineError> {
        self.refuse()
    }

    async fn download_media(&self, _: Jid, _: String) -> Result<DownloadedMedia, EngineError> {
        self.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_kinds_follow_the_mime_type() {
        assert_eq!(MediaKind::from_mime("image/jpeg"), MediaKind::Image);
        assert_eq!(MediaKind::from_mime("image/svg+xml"), MediaKind::Document);
        assert_eq!(MediaKind::from_mime("video/mp4"), MediaKind::Video);
        assert_eq!(MediaKind::from_mime("audio/mpeg"), MediaKind::Audio);
        assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::Document);
        assert_eq!(MediaKind::from_mime(""), MediaKind::Document);
    }

    #[tokio::test]
    async fn without_an_engine_every_action_says_why() {
        let engine = NoEngine::new("the engine is not part of this version");
        let jid = Jid::parse("31611111111").unwrap();
        let err = engine
            .send_text(jid, OutgoingText::plain("hi"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not part of this version"),
            "{err}"
        );
    }
}
