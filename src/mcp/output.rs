//! The shapes tool results take on the wire: stable field names, ISO-8601 times, every address
//! both as a JID and (when it has one) as a phone number, and names already resolved.
//!
//! Message text is only ever a field of these records, never woven into prose, so a message that
//! reads like an instruction stays data to the model.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::jid::Jid;
use crate::report::iso;
use crate::store::model::{
    Chat, Contact, Delivery, Media, Message, MessageContext, Participant, Reaction,
};

/// Unix seconds as ISO-8601 UTC; out-of-range values (never written by the store) become `None`.
pub(crate) fn iso_time(secs: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(secs, 0).map(iso)
}

/// The phone number (digits, no `+`) of a phone-number JID.
pub(crate) fn phone_of(jid: &str) -> Option<String> {
    Jid::parse(jid)
        .ok()
        .and_then(|j| j.phone().map(str::to_owned))
}

/// A WhatsApp contact.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ContactOut {
    /// The contact's JID: the phone-number JID when known, else the LID.
    pub jid: String,
    /// Phone number in international form, digits only (no `+`), when known.
    pub phone: Option<String>,
    /// The contact's LID (WhatsApp's privacy address), when known.
    pub lid: Option<String>,
    /// The best name to show: address book, then business name, then the name they set.
    pub name: Option<String>,
    /// Name from the address book of the linked phone.
    pub full_name: Option<String>,
    /// Name the person set for themselves in WhatsApp.
    pub push_name: Option<String>,
    /// Verified business name, for business accounts.
    pub business_name: Option<String>,
}

impl From<Contact> for ContactOut {
    fn from(contact: Contact) -> Self {
        let name = contact.display_name().map(str::to_owned);
        Self {
            phone: contact.phone.clone().or_else(|| phone_of(&contact.jid)),
            jid: contact.jid,
            lid: contact.lid,
            name,
            full_name: contact.full_name,
            push_name: contact.push_name,
            business_name: contact.business_name,
        }
    }
}

/// Media attached to a message (download it with `download_media`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MediaOut {
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub media_type: String,
    /// The file name the sender gave, if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    pub mime_type: Option<String>,
    /// Size of the file in bytes, when known.
    pub size_bytes: Option<u64>,
}

impl From<Media> for MediaOut {
    fn from(media: Media) -> Self {
        Self {
            media_type: media.media_type,
            file_name: media.file_name,
            mime_type: media.mime_type,
            size_bytes: media.file_length,
        }
    }
}

/// Someone's reaction to a message.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ReactionOut {
    /// JID of the person who reacted.
    pub sender_jid: String,
    /// Their phone number, digits only, when known.
    pub sender_phone: Option<String>,
    /// Their resolved name, when known.
    pub sender_name: Option<String>,
    /// The emoji.
    pub emoji: String,
    /// When they reacted (ISO-8601, UTC).
    pub timestamp: Option<String>,
}

impl From<Reaction> for ReactionOut {
    fn from(reaction: Reaction) -> Self {
        Self {
            sender_phone: phone_of(&reaction.sender_jid),
            sender_jid: reaction.sender_jid,
            sender_name: reaction.sender_name,
            emoji: reaction.emoji,
            timestamp: iso_time(reaction.timestamp),
        }
    }
}

/// One archived message. `text` and `caption` are the message's content as data: they were
/// written by a WhatsApp user, not by this server.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MessageOut {
    /// Message id, unique within its chat; pass it with `chat_jid` to other tools.
    pub id: String,
    /// JID of the chat the message is in.
    pub chat_jid: String,
    /// Name of the chat (group name or contact name), when known.
    pub chat_name: Option<String>,
    /// JID of the author; `null` for our own messages in direct chats.
    pub sender_jid: Option<String>,
    /// The author's phone number, digits only, when known.
    pub sender_phone: Option<String>,
    /// The author's resolved name, when known.
    pub sender_name: Option<String>,
    /// True when the linked account sent it.
    pub from_me: bool,
    /// When it was sent (ISO-8601, UTC).
    pub timestamp: Option<String>,
    /// The text of the message, if it has any.
    pub text: Option<String>,
    /// The caption of an image, video or document.
    pub caption: Option<String>,
    /// Id of the message this one replies to.
    pub quoted_id: Option<String>,
    /// Attached media, if any.
    pub media: Option<MediaOut>,
    /// When it was last edited (ISO-8601), if it was.
    pub edited_at: Option<String>,
    /// True when it was deleted for everyone (its content is gone).
    pub deleted: bool,
    /// For our own messages, how far it got: "sent", "delivered", "read" or "played" (in a
    /// group: by at least one member); null when unknown or not ours.
    pub delivery: Option<&'static str>,
    /// Reactions to this message.
    pub reactions: Vec<ReactionOut>,
}

impl From<Message> for MessageOut {
    fn from(message: Message) -> Self {
        Self {
            sender_phone: message.sender_jid.as_deref().and_then(phone_of),
            id: message.id,
            chat_jid: message.chat_jid,
            chat_name: message.chat_name,
            sender_jid: message.sender_jid,
            sender_name: message.sender_name,
            from_me: message.from_me,
            timestamp: iso_time(message.timestamp),
            text: message.text,
            caption: message.caption,
            quoted_id: message.quoted_id,
            media: message.media.map(MediaOut::from),
            edited_at: message.edited_at.and_then(iso_time),
            deleted: message.deleted_at.is_some(),
            delivery: message.delivery.map(Delivery::as_str),
            reactions: message.reactions.into_iter().map(Into::into).collect(),
        }
    }
}

/// A message with, optionally, its neighbours in the same chat.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MessageWithContext {
    #[serde(flatten)]
    pub message: MessageOut,
    /// Older messages of the same chat, oldest first (only with `include_context`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_before: Option<Vec<MessageOut>>,
    /// Newer messages of the same chat, oldest first (only with `include_context`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_after: Option<Vec<MessageOut>>,
}

/// A chat: a direct conversation, a group, a broadcast list or a channel.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ChatOut {
    /// The chat's JID.
    pub jid: String,
    /// `direct`, `group`, `broadcast`, `newsletter` or `status`.
    pub kind: String,
    /// The group's name, or the contact's resolved name for direct chats.
    pub name: Option<String>,
    /// The contact's phone number (digits only) for direct chats.
    pub phone: Option<String>,
    /// Time of the latest message (ISO-8601, UTC).
    pub last_message_at: Option<String>,
    /// Messages not yet read on the phone.
    pub unread_count: u32,
    /// Archived on the phone.
    pub archived: bool,
    /// Pinned on the phone.
    pub pinned: bool,
    /// Muted until this time (ISO-8601), if muted.
    pub muted_until: Option<String>,
    /// The latest message, when asked for.
    pub last_message: Option<MessageOut>,
}

impl From<Chat> for ChatOut {
    fn from(chat: Chat) -> Self {
        Self {
            phone: phone_of(&chat.jid),
            jid: chat.jid,
            kind: chat.kind.as_str().to_owned(),
            name: chat.name,
            last_message_at: chat.last_message_at.and_then(iso_time),
            unread_count: chat.unread_count,
            archived: chat.archived,
            pinned: chat.pinned,
            muted_until: chat.muted_until.filter(|t| *t > 0).and_then(iso_time),
            last_message: chat.last_message.map(MessageOut::from),
        }
    }
}

/// A member of a group.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ParticipantOut {
    /// The member's JID.
    pub jid: String,
    /// Their phone number, digits only, when known.
    pub phone: Option<String>,
    /// Their resolved name, when known.
    pub name: Option<String>,
    /// `member`, `admin` or `superadmin`.
    pub role: String,
}

impl From<Participant> for ParticipantOut {
    fn from(participant: Participant) -> Self {
        Self {
            phone: participant.phone.or_else(|| phone_of(&participant.jid)),
            jid: participant.jid,
            name: participant.name,
            role: participant.role,
        }
    }
}

/// Result of `search_contacts`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContactList {
    /// Matching contacts.
    pub contacts: Vec<ContactOut>,
    /// How many contacts this page holds.
    pub count: usize,
}

/// Result of `list_messages`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MessageList {
    /// Matching messages, newest first.
    pub messages: Vec<MessageWithContext>,
    /// How many messages this page holds.
    pub count: usize,
    /// The page returned (0-based).
    pub page: u32,
    /// The page size used.
    pub limit: u32,
}

/// Result of `list_chats`, `list_groups` and `get_contact_chats`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChatList {
    /// The chats.
    pub chats: Vec<ChatOut>,
    /// How many chats this page holds.
    pub count: usize,
    /// The page returned (0-based).
    pub page: u32,
    /// The page size used.
    pub limit: u32,
}

/// Result of `get_last_interaction`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LastInteraction {
    /// The contact, when the archive knows them.
    pub contact: Option<ContactOut>,
    /// The most recent message to or from them, in any chat; `null` if there is none.
    pub message: Option<MessageOut>,
}

/// Result of `get_message_context`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContextOut {
    /// The message asked for.
    pub message: MessageOut,
    /// Older messages of the same chat, oldest first.
    pub before: Vec<MessageOut>,
    /// Newer messages of the same chat, oldest first.
    pub after: Vec<MessageOut>,
}

impl From<MessageContext> for ContextOut {
    fn from(context: MessageContext) -> Self {
        Self {
            message: context.message.into(),
            before: context.before.into_iter().map(Into::into).collect(),
            after: context.after.into_iter().map(Into::into).collect(),
        }
    }
}

/// Result of `get_group`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GroupOut {
    /// The group chat.
    pub group: ChatOut,
    /// Its members, with names resolved.
    pub participants: Vec<ParticipantOut>,
    /// How many members the archive knows.
    pub participant_count: usize,
}

/// Result of every tool that sends a message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SentOut {
    /// True: WhatsApp accepted the message.
    pub sent: bool,
    /// The message as stored in the archive (it also shows up in `list_messages`).
    pub message: MessageOut,
}

/// Result of `send_reaction`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReactionSent {
    /// True: WhatsApp accepted the reaction.
    pub sent: bool,
    /// The chat of the message reacted to.
    pub chat_jid: String,
    /// The message reacted to.
    pub message_id: String,
    /// The emoji sent; empty when the reaction was removed.
    pub emoji: String,
}

/// Result of `get_poll_results`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PollResults {
    /// The chat the poll is in.
    pub chat_jid: String,
    /// The poll's message id.
    pub message_id: String,
    pub question: String,
    /// How many answers one voter may pick.
    pub selectable: u32,
    /// Each answer with its votes, in the poll's order.
    pub options: Vec<PollOptionOut>,
    /// How many people have voted.
    pub voter_count: usize,
}

/// One answer of a poll and who chose it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PollOptionOut {
    pub name: String,
    pub votes: usize,
    pub voters: Vec<VoterOut>,
}

/// Someone who voted for an answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VoterOut {
    pub jid: String,
    /// Their name, when known.
    pub name: Option<String>,
    /// Their phone number, digits only, when known.
    pub phone: Option<String>,
    /// When they voted (ISO-8601, UTC).
    pub voted_at: Option<String>,
}

impl From<crate::store::model::Poll> for PollResults {
    fn from(poll: crate::store::model::Poll) -> Self {
        let options = poll
            .options
            .iter()
            .map(|name| {
                let voters: Vec<VoterOut> = poll
                    .votes
                    .iter()
                    .filter(|vote| vote.options.contains(name))
                    .map(|vote| VoterOut {
                        phone: phone_of(&vote.voter_jid),
                        jid: vote.voter_jid.clone(),
                        name: vote.voter_name.clone(),
                        voted_at: iso_time(vote.timestamp),
                    })
                    .collect();
                PollOptionOut {
                    name: name.clone(),
                    votes: voters.len(),
                    voters,
                }
            })
            .collect();
        Self {
            chat_jid: poll.chat_jid,
            message_id: poll.message_id,
            question: poll.question,
            selectable: poll.selectable,
            options,
            voter_count: poll.votes.len(),
        }
    }
}

/// Result of `mark_read`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MarkedRead {
    /// The chat.
    pub chat_jid: String,
    /// The message ids marked as read.
    pub message_ids: Vec<String>,
}

/// Result of `delete_message`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// True: WhatsApp accepted the deletion; the message shows as deleted for everyone.
    pub deleted: bool,
    /// The chat.
    pub chat_jid: String,
    /// The deleted message's id.
    pub message_id: String,
}

/// Result of `request_history`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryRequested {
    /// True: the phone was asked for older messages.
    pub requested: bool,
    /// The chat.
    pub chat_jid: String,
    /// How many older messages were asked for.
    pub count: u32,
    /// What happens next.
    pub note: String,
}

/// Result of `download_media`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DownloadOut {
    /// The chat of the message.
    pub chat_jid: String,
    /// The message whose media was downloaded.
    pub message_id: String,
    /// Absolute path of the downloaded file (inside the media directory).
    pub path: String,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// True when an earlier download was reused.
    pub reused: bool,
    /// The file as an MCP resource, readable with `resources/read`.
    pub resource_uri: String,
    /// The picture sent beside this record (image content), for an image.
    pub picture: Option<PictureOut>,
    /// Why an image came without a picture.
    pub picture_note: Option<String>,
}

/// The scaled picture `download_media` sends of an image.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PictureOut {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
}

/// Result of `get_sync_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SyncStatusOut {
    /// Link state: `connected`, `not_linked`, `awaiting_scan`, `disconnected`, `logged_out`, ...
    pub state: String,
    /// The same state as one sentence.
    pub status_text: String,
    /// True once an account is linked (even if offline right now).
    pub linked: bool,
    /// True while connected to WhatsApp.
    pub connected: bool,
    /// True while history sync is delivering older messages.
    pub sync_active: bool,
    /// History sync progress in percent, when WhatsApp reports it.
    pub sync_progress_percent: Option<u8>,
    /// Messages received through history sync so far.
    pub history_messages_received: u64,
    /// When history sync last delivered something (ISO-8601).
    pub last_sync_time: Option<String>,
    /// The linked account's JID, when linked.
    pub account_jid: Option<String>,
    /// The linked account's phone number, digits only, when linked.
    pub account_phone: Option<String>,
    /// Messages in the archive.
    pub message_count: u64,
    /// Chats in the archive.
    pub chat_count: u64,
    /// Contacts in the archive.
    pub contact_count: u64,
    /// Time of the newest archived message (ISO-8601).
    pub last_message_time: Option<String>,
    /// Archive backend: `sqlite` or `postgres`.
    pub backend: String,
    /// True when WhatsApp actions are switched off on this server (read-only mode).
    pub read_only: bool,
    /// The most pressing problem and what to do about it, if any.
    pub error: Option<String>,
    /// What to do next when not connected, e.g. where to scan the QR code.
    pub next_step: Option<String>,
}
