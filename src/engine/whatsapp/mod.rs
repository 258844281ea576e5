//! The real WhatsApp engine, on whatsapp-rust.
//!
//! [`WhatsAppEngine::start`] opens the session store, then hands the connection to the
//! [`supervisor`], which owns the whatsapp-rust client for the life of the process. What
//! WhatsApp says arrives through [`events`] and is translated by [`convert`] into
//! [`EngineEvent`]s for [`Ingest`]; the actions of the [`Engine`] port use the current client
//! and store what they send before returning.

mod backoff;
mod convert;
mod events;
#[cfg(feature = "fake-engine")]
mod loopback;
mod supervisor;
mod voice;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::{RwLock, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use whatsapp_rust::Client;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::download::{DownloadParams, MediaType};
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::upload::{UploadOptions, UploadResponse};
use whatsapp_rust::waproto::whatsapp as wa;

use super::ingest::{EngineEvent, Ingest};
use super::{
    DownloadedMedia, Engine, EngineError, MediaKind, OutgoingFile, OutgoingPoll, OutgoingText,
};
use crate::config::DatabaseUrl;
use crate::jid::{ChatKind, Jid};
use crate::state::LinkState;
use crate::store::model::{
    ChatUpdate, Delivery, Media, Message, MessageQuery, NewMessage, NewPoll, Page,
};
use supervisor::Command;

/// How long `pair_code` waits for a socket to ask WhatsApp on.
const PAIR_SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits for the connection to flush and close.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// What the engine's tasks share.
pub(crate) struct Shared {
    ingest: Ingest,
    media_dir: PathBuf,
    session_url: DatabaseUrl,
    backend: Arc<dyn Backend>,
    /// The client of the current connection attempt, if any.
    client: Arc<RwLock<Option<Arc<Client>>>>,
    observed: events::ObservedCell,
    acks: Arc<events::RecentAcks>,
    events: mpsc::UnboundedSender<Arc<Event>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("media_dir", &self.media_dir)
            .field("session_url", &self.session_url)
            .field("stopped", &self.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// The engine on whatsapp-rust.
#[derive(Debug)]
pub struct WhatsAppEngine {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl WhatsAppEngine {
    /// Opens the session store at `session_url` and starts the connection supervisor: it
    /// connects at once when a linked session exists, and starts linking (QR codes) otherwise.
    pub async fn start(
        ingest: Ingest,
        session_url: DatabaseUrl,
        media_dir: PathBuf,
    ) -> Result<Self, super::StartError> {
        ingest.status().update(|s| s.state = LinkState::Starting);
        let backend = crate::store::session::open(&session_url)
            .await
            .map_err(super::StartError::SessionStore)?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            ingest: ingest.clone(),
            media_dir,
            session_url,
            backend,
            client: Arc::new(RwLock::new(None)),
            observed: Arc::default(),
            acks: Arc::default(),
            events: events_tx,
            stop: CancellationToken::new(),
        });
        let consumer = tokio::spawn(events::consume(
            ingest,
            Arc::clone(&shared.client),
            events_rx,
        ));
        let supervisor = tokio::spawn(supervisor::supervise(Arc::clone(&shared), commands_rx));
        let engine = Self {
            shared,
            commands,
            tasks: Mutex::new(vec![supervisor, consumer]),
        };
        // A fresh install shows a QR code on /qr right away; the supervisor stops linking again
        // once the codes run out unscanned.
        let _ = engine.commands.send(Command::Link);
        Ok(engine)
    }

    /// The client when the account is online, else why not.
    async fn connected(&self) -> Result<Arc<Client>, EngineError> {
        let status = self.shared.ingest.status().snapshot();
        match status.state {
            LinkState::Connected => {}
            LinkState::NotLinked | LinkState::AwaitingScan | LinkState::LoggedOut => {
                return Err(EngineError::NotLinked);
            }
            _ => return Err(EngineError::Disconnected(status.headline())),
        }
        self.shared
            .client
            .read()
            .await
            .clone()
            .filter(|c| c.is_connected())
            .ok_or_else(|| EngineError::Disconnected("reconnecting".to_owned()))
    }

    fn me(client: &Client) -> Result<Jid, EngineError> {
        events::own_jid(client).ok_or(EngineError::NotLinked)
    }

    /// A message of the archive that an action refers to (a quote, a reaction, a download).
    async fn stored_message(&self, chat: &Jid, id: &str) -> Result<Message, EngineError> {
        self.shared
            .ingest
            .store()
            .message(chat.clone(), id.to_owned())
            .await
            .map_err(|_| EngineError::NotFound(format!("message {id} in {chat}")))
    }

    /// Stores a message we just sent and returns it as the archive shows it.
    async fn store_sent(&self, message: NewMessage) -> Result<Message, EngineError> {
        let (chat, id) = (message.chat.clone(), message.id.clone());
        let archive_error = |err| EngineError::Failed(format!("sent, but not archived: {err}"));
        self.shared
            .ingest
            .apply(EngineEvent::Messages(vec![message]))
            .await
            .map_err(archive_error)?;
        // The server's ack may have come in before the message was stored (see RecentAcks).
        if self.shared.acks.contains(&id) {
            self.shared
                .ingest
                .apply(EngineEvent::Delivery {
                    chat: chat.clone(),
                    message_ids: vec![id.clone()],
                    delivery: Delivery::Sent,
                })
                .await
                .map_err(archive_error)?;
        }
        self.shared
            .ingest
            .store()
            .message(chat, id)
            .await
            .map_err(archive_error)
    }

    async fn upload(
        client: &Client,
        bytes: Vec<u8>,
        kind: MediaType,
    ) -> Result<UploadResponse, EngineError> {
        client
            .upload(bytes, kind, UploadOptions::new())
            .await
            .map_err(|err| EngineError::Media(format!("upload failed: {err}")))
    }

    async fn send(client: &Client, to: &Jid, message: wa::Message) -> Result<String, EngineError> {
        let target = wa_jid(to)?;
        client
            .send_message(target, message)
            .await
            .map(|sent| sent.message_id)
            .map_err(|err| match err {
                whatsapp_rust::send::SendError::InvalidRequest(why) => {
                    EngineError::Recipient(format!("{to}: {why}"))
                }
                whatsapp_rust::send::SendError::NotLoggedIn => EngineError::NotLinked,
                other => EngineError::Failed(other.to_string()),
            })
    }

    /// The context that makes a message a reply to `quoted` in `chat`.
    async fn quote_context(
        &self,
        client: &Client,
        chat: &Jid,
        quoted: &str,
    ) -> Result<wa::ContextInfo, EngineError> {
        let original = self.stored_message(chat, quoted).await?;
        let author = match (&original.sender_jid, original.from_me) {
            (_, true) => Self::me(client)?.to_string(),
            (Some(sender), false) => sender.clone(),
            (None, false) => chat.to_string(),
        };
        let text = original
            .text
            .clone()
            .or(original.caption.clone())
            .unwrap_or_default();
        Ok(wa::ContextInfo {
            stanza_id: Some(quoted.to_owned()),
            participant: Some(author),
            quoted_message: MessageField::some(wa::Message {
                conversation: Some(text),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The oldest archived message of `chat`: a binary search on time over the newest-first
    /// query, so a chat of any size costs about forty single-row lookups.
    async fn oldest_message(&self, chat: &Jid) -> Result<Option<Message>, EngineError> {
        let store = self.shared.ingest.store();
        let newest_before = |before: i64| {
            let query = MessageQuery {
                chat: Some(chat.clone()),
                before: Some(before),
                page: Page::new(1, 0),
                ..MessageQuery::default()
            };
            store.list_messages(query)
        };
        let failed = |err: crate::store::StoreError| EngineError::Failed(err.to_string());
        let (mut low, mut high) = (i64::MIN / 2, Utc::now().timestamp() + 86_400);
        if newest_before(high).await.map_err(failed)?.is_empty() {
            return Ok(None);
        }
        // Invariant: no message is older than `low`; some message is older than `high`.
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if newest_before(mid).await.map_err(failed)?.is_empty() {
                low = mid;
            } else {
                high = mid;
            }
        }
        Ok(newest_before(high)
            .await
            .map_err(failed)?
            .into_iter()
            .next())
    }
}

/// Our JID as whatsapp-rust's.
fn wa_jid(jid: &Jid) -> Result<whatsapp_rust::Jid, EngineError> {
    jid.as_str()
        .parse()
        .map_err(|_| EngineError::Recipient(jid.to_string()))
}

fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
    }
}

/// A media message of type `wa::message::$kind` pointing at an upload: the fields every
/// uploaded file carries, plus the kind's own fields given in braces.
macro_rules! uploaded {
    ($kind:ident, $upload:expr, $mime:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        wa::message::$kind {
            url: Some($upload.url.clone()),
            direct_path: Some($upload.direct_path.clone()),
            media_key: Some($upload.media_key.to_vec()),
            file_sha256: Some($upload.file_sha256.to_vec()),
            file_enc_sha256: Some($upload.file_enc_sha256.to_vec()),
            file_length: Some($upload.file_length),
            media_key_timestamp: Some($upload.media_key_timestamp),
            mimetype: Some($mime.to_owned()),
            $($field: $value,)*
            ..Default::default()
        }
    };
}
/// The archive's record of media we uploaded.
fn uploaded_media(
    kind: &str,
    upload: &UploadResponse,
    mime_type: &str,
    file_name: Option<String>,
) -> Media {
    Media {
        media_type: kind.to_owned(),
        file_name,
        mime_type: Some(mime_type.to_owned()),
        file_length: Some(upload.file_length),
        url: Some(upload.url.clone()),
        direct_path: Some(upload.direct_path.clone()),
        media_key: Some(upload.media_key.to_vec()),
        file_sha256: Some(upload.file_sha256.to_vec()),
        file_enc_sha256: Some(upload.file_enc_sha256.to_vec()),
    }
}

#[async_trait::async_trait]
impl Engine for WhatsAppEngine {
    async fn send_text(&self, to: Jid, text: OutgoingText) -> Result<Message, EngineError> {
        let client = self.connected().await?;
        let OutgoingText {
            text,
            reply_to,
            mentions,
        } = text;
        let message = if reply_to.is_none() && mentions.is_empty() {
            wa::Message {
                conversation: Some(text.clone()),
                ..Default::default()
            }
        } else {
            // A quote and mentions both live in the text message's context.
            let mut context = match &reply_to {
                Some(quoted) => self.quote_context(&client, &to, quoted).await?,
                None => wa::ContextInfo::default(),
            };
            context.mentioned_jid = mentions.iter().map(ToString::to_string).collect();
            wa::Message {
                extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                    text: Some(text.clone()),
                    context_info: MessageField::some(context),
                    ..Default::default()
                }),
                ..Default::default()
            }
        };
        let id = Self::send(&client, &to, message).await?;
        self.store_sent(NewMessage {
            text: Some(text),
            quoted_id: reply_to,
            ..NewMessage::ours(to, id)
        })
        .await
    }

    async fn send_poll(&self, to: Jid, poll: OutgoingPoll) -> Result<Message, EngineError> {
        let client = self.connected().await?;
        let (sent, secret) = client
            .polls()
            .create(wa_jid(&to)?, &poll.question, &poll.options, poll.selectable)
            .await
            .map_err(|err| match err {
                whatsapp_rust::features::PollError::InvalidPoll(why) => {
                    EngineError::Failed(format!("invalid poll: {why}"))
                }
                whatsapp_rust::features::PollError::NotLoggedIn => EngineError::NotLinked,
                other => EngineError::Failed(other.to_string()),
            })?;
        let message = self
            .store_sent(NewMessage {
                text: Some(super::poll_text(&poll.question, &poll.options)),
                ..NewMessage::ours(to.clone(), sent.message_id.clone())
            })
            .await?;
        self.shared
            .ingest
            .apply(EngineEvent::Poll(NewPoll {
                chat: to,
                message_id: sent.message_id,
                question: poll.question,
                options: poll.options,
                selectable: poll.selectable,
                secret: Some(secret),
            }))
            .await
            .map_err(|err| EngineError::Failed(format!("sent, but not archived: {err}")))?;
        Ok(message)
    }

    async fn send_file(
        &self,
        to: Jid,
        file: OutgoingFile,
        kind: MediaKind,
        caption: Option<String>,
    ) -> Result<Message, EngineError> {
        let client = self.connected().await?;
        let bytes = file.read().await?;
        let upload = Self::upload(&client, bytes, media_type(kind)).await?;
        let mime = file.mime_type.clone();
        let caption_field = caption.clone().filter(|c| !c.trim().is_empty());
        let (message, kind_name) = match kind {
            MediaKind::Image => (
                wa::Message {
                    image_message: MessageField::some(uploaded!(ImageMessage, upload, mime, {
                        caption: caption_field.clone(),
                    })),
                    ..Default::default()
                },
                "image",
            ),
            MediaKind::Video => (
                wa::Message {
                    video_message: MessageField::some(uploaded!(VideoMessage, upload, mime, {
                        caption: caption_field.clone(),
                        streaming_sidecar: upload.streaming_sidecar.clone(),
                    })),
                    ..Default::default()
                },
                "video",
            ),
            MediaKind::Audio => (
                wa::Message {
                    audio_message: MessageField::some(uploaded!(AudioMessage, upload, mime, {
                        ptt: Some(false),
                        streaming_sidecar: upload.streaming_sidecar.clone(),
                    })),
                    ..Default::default()
                },
                "audio",
            ),
            MediaKind::Document => (
                wa::Message {
                    document_message: MessageField::some(
                        uploaded!(DocumentMessage, upload, mime, {
                            file_name: Some(file.file_name.clone()),
                            title: Some(file.file_name.clone()),
                            caption: caption_field.clone(),
                        }),
                    ),
                    ..Default::default()
                },
                "document",
            ),
        };
        let id = Self::send(&client, &to, message).await?;
        let file_name = (kind == MediaKind::Document).then_some(file.file_name);
        self.store_sent(NewMessage {
            caption: caption_field,
            media: Some(uploaded_media(kind_name, &upload, &mime, file_name)),
            ..NewMessage::ours(to, id)
        })
        .await
    }

    async fn send_voice_note(&self, to: Jid, file: OutgoingFile) -> Result<Message, EngineError> {
        let client = self.connected().await?;
        let note = voice::prepare(&file).await?;
        let upload = Self::upload(&client, note.ogg_opus, MediaType::Audio).await?;
        let mime = "audio/ogg; codecs=opus";
        let message = wa::Message {
            audio_message: MessageField::some(uploaded!(AudioMessage, upload, mime, {
                ptt: Some(true),
                seconds: Some(note.seconds),
                waveform: note.waveform,
                streaming_sidecar: upload.streaming_sidecar.clone(),
            })),
            ..Default::default()
        };
        let id = Self::send(&client, &to, message).await?;
        self.store_sent(NewMessage {
            media: Some(uploaded_media("voice", &upload, mime, None)),
            ..NewMessage::ours(to, id)
        })
        .await
    }

    async fn react(&self, chat: Jid, message_id: String, emoji: String) -> Result<(), EngineError> {
        let client = self.connected().await?;
        let target = self.stored_message(&chat, &message_id).await?;
        let participant = match (chat.chat_kind(), target.from_me) {
            (ChatKind::Direct, _) => None,
            (_, true) => Some(Self::me(&client)?.to_string()),
            (_, false) => target.sender_jid.clone(),
        };
        let key = wa::MessageKey {
            remote_jid: Some(chat.to_string()),
            from_me: Some(target.from_me),
            id: Some(message_id.clone()),
            participant,
        };
        client
            .send_reaction(wa_jid(&chat)?, key, &emoji)
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))?;
        self.shared
            .ingest
            .apply(EngineEvent::Reaction {
                chat,
                message_id,
                sender: Self::me(&client)?,
                emoji,
                timestamp: Utc::now().timestamp(),
            })
            .await
            .map_err(|err| EngineError::Failed(format!("reacted, but not archived: {err}")))
    }

    async fn edit_text(
        &self,
        chat: Jid,
        message_id: String,
        text: String,
    ) -> Result<Message, EngineError> {
        let client = self.connected().await?;
        let content = wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        };
        client
            .edit_message(wa_jid(&chat)?, message_id.clone(), content)
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))?;
        self.shared
            .ingest
            .own_edit(chat, message_id, text)
            .await
            .map_err(|err| EngineError::Failed(format!("edited, but not archived: {err}")))
    }

    async fn revoke(&self, chat: Jid, message_id: String) -> Result<(), EngineError> {
        let client = self.connected().await?;
        client
            .revoke_message(
                wa_jid(&chat)?,
                message_id.clone(),
                whatsapp_rust::RevokeType::Sender,
            )
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))?;
        self.shared
            .ingest
            .own_revoke(chat, message_id)
            .await
            .map_err(|err| EngineError::Failed(format!("deleted, but not archived: {err}")))
    }

    async fn mark_read(&self, chat: Jid, message_ids: Vec<String>) -> Result<(), EngineError> {
        let client = self.connected().await?;
        let target = wa_jid(&chat)?;
        // Group receipts name the author of each message, so they go out per author.
        let mut by_sender: Vec<(Option<String>, Vec<String>)> = Vec::new();
        for id in message_ids {
            let sender = match chat.chat_kind() {
                ChatKind::Direct => None,
                _ => self
                    .shared
                    .ingest
                    .store()
                    .message(chat.clone(), id.clone())
                    .await
                    .ok()
                    .and_then(|m| m.sender_jid),
            };
            match by_sender.iter_mut().find(|(s, _)| *s == sender) {
                Some((_, ids)) => ids.push(id),
                None => by_sender.push((sender, vec![id])),
            }
        }
        for (sender, ids) in by_sender {
            let sender = sender.and_then(|s| s.parse::<whatsapp_rust::Jid>().ok());
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            client
                .mark_as_read(&target, sender.as_ref(), &ids)
                .await
                .map_err(|err| EngineError::Failed(err.to_string()))?;
        }
        let mut update = ChatUpdate::new(chat);
        update.unread_count = Some(0);
        self.shared
            .ingest
            .apply(EngineEvent::Chats(vec![update]))
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn request_history(&self, chat: Jid, count: u32) -> Result<(), EngineError> {
        let client = self.connected().await?;
        let oldest = self.oldest_message(&chat).await?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "no archived message in {chat} to ask for older ones from"
            ))
        })?;
        client
            .fetch_message_history(
                &wa_jid(&chat)?,
                &oldest.id,
                oldest.from_me,
                oldest.timestamp.saturating_mul(1000),
                i32::try_from(count.clamp(1, 500)).unwrap_or(50),
            )
            .await
            .map(|_| ())
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn download_media(
        &self,
        chat: Jid,
        message_id: String,
    ) -> Result<DownloadedMedia, EngineError> {
        let message = self.stored_message(&chat, &message_id).await?;
        let media = message
            .media
            .ok_or_else(|| EngineError::Media(format!("message {message_id} has no media")))?;
        let expected = media
            .file_sha256
            .clone()
            .ok_or_else(|| EngineError::Media("WhatsApp sent no hash for this media".to_owned()))?;
        let path = self.shared.media_dir.join(super::media::file_name(
            &expected,
            media.mime_type.as_deref(),
        ));
        if let Some(copy) =
            super::media::verified_copy(&path, &expected, media.mime_type.clone()).await
        {
            return Ok(copy);
        }
        let (Some(direct_path), Some(key), Some(enc_sha)) = (
            media.direct_path.clone(),
            media.media_key.clone(),
            media.file_enc_sha256.clone(),
        ) else {
            return Err(EngineError::Media(
                "the archive lacks the keys to download this media".to_owned(),
            ));
        };
        let kind = match media.media_type.as_str() {
            "image" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" | "voice" => MediaType::Audio,
            "sticker" => MediaType::Sticker,
            _ => MediaType::Document,
        };
        let client = self.connected().await?;
        let params = DownloadParams::encrypted(
            direct_path,
            &key,
            &expected,
            &enc_sha,
            media.file_length.unwrap_or_default(),
            kind,
        );
        let bytes = client.download_from_params(&params).await.map_err(|err| {
            EngineError::Media(format!(
                "download failed (media older than a few weeks may be gone from WhatsApp's servers): {err}"
            ))
        })?;
        if Sha256::digest(&bytes).as_slice() != expected.as_slice() {
            return Err(EngineError::Media(
                "the downloaded file does not match its hash; nothing was saved".to_owned(),
            ));
        }
        super::media::write_new(&self.shared.media_dir, &path, &bytes)
            .await
            .map_err(|err| EngineError::Media(format!("cannot save the media: {err}")))?;
        Ok(DownloadedMedia {
            path,
            mime_type: media.mime_type,
            size_bytes: bytes.len() as u64,
            reused: false,
        })
    }

    async fn start_linking(&self) -> Result<(), EngineError> {
        self.commands
            .send(Command::Link)
            .map_err(|_| EngineError::Unavailable("the WhatsApp engine has stopped".to_owned()))
    }

    async fn pair_code(&self, phone: Jid) -> Result<String, EngineError> {
        let digits = phone
            .phone()
            .ok_or_else(|| EngineError::Recipient(format!("{phone} is not a phone number")))?
            .to_owned();
        if self.shared.ingest.status().snapshot().state.is_linked() {
            return Err(EngineError::Failed(
                "this server is already linked; run `whatsapp-mcp logout` first".to_owned(),
            ));
        }
        self.start_linking().await?;
        let deadline = tokio::time::Instant::now() + PAIR_SOCKET_TIMEOUT;
        let client = loop {
            if let Some(client) = self.shared.client.read().await.clone() {
                break client;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::Disconnected(
                    "cannot reach WhatsApp to request a pairing code".to_owned(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        client
            .wait_for_socket(PAIR_SOCKET_TIMEOUT)
            .await
            .map_err(|err| EngineError::Disconnected(err.to_string()))?;
        let options = whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: digits,
            ..Default::default()
        };
        let code = client.pair_with_code(options).await.map_err(|err| {
            EngineError::Failed(format!("WhatsApp refused a pairing code: {err}"))
        })?;
        crate::logging::register_secret(&code);
        Ok(code)
    }

    async fn logout(&self, wipe_archive: bool) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Logout {
                reason: "unlinked with `whatsapp-mcp logout`".to_owned(),
                reply,
            })
            .map_err(|_| EngineError::Unavailable("the WhatsApp engine has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| EngineError::Unavailable("the WhatsApp engine has stopped".to_owned()))?
            .map_err(|err| EngineError::Failed(err.to_string()))?;
        // The archive goes only after the unlink succeeded, so a failed logout loses nothing.
        if wipe_archive {
            self.shared.ingest.clear_archive().await.map_err(|err| {
                EngineError::Failed(format!("unlinked, but the archive was not deleted: {err}"))
            })?;
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.shared.stop.cancel();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        let mut tasks = tasks.into_iter();
        if let Some(supervisor) = tasks.next()
            && tokio::time::timeout(SHUTDOWN_TIMEOUT, supervisor)
                .await
                .is_err()
        {
            tracing::warn!("the WhatsApp connection did not close in time");
        }
        // The event consumer drains what is queued, then ends with the last sender.
        for task in tasks {
            task.abort();
        }
    }
}
