//! Translating whatsapp-rust's messages into the archive's records.
//!
//! Pure functions only: the same translation serves live messages, our own sends, every
//! history sync chunk and the library's other events ([`translate`]), and the unit tests feed
//! it protobufs built by hand. What comes out is applied in order by one `Ingest::apply_all`.

use std::collections::BTreeMap;

use whatsapp_rust::buffa;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use whatsapp_rust::types::events::{Event, InboundMessage};

use crate::engine::ingest::{EngineEvent, HistoryConversation, VoteChoice};
use crate::jid::Jid;
use crate::state::Account;
use crate::store::model::{ChatUpdate, ContactUpdate, Delivery, Media, NewMessage, NewPoll};

/// One of whatsapp-rust's JIDs as ours: device and agent parts dropped; `None` for addresses
/// the archive has no use for (server JIDs, malformed input).
pub(super) fn jid(wa_jid: &whatsapp_rust::Jid) -> Option<Jid> {
    Jid::parse(&wa_jid.to_string()).ok()
}

/// A JID that arrived as text (history sync, message keys).
pub(super) fn jid_str(text: &str) -> Option<Jid> {
    if text.is_empty() {
        return None;
    }
    Jid::parse(text).ok()
}

/// Where a message sits and who wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Envelope {
    pub(super) chat: Jid,
    pub(super) id: String,
    /// The author; `None` when it is us.
    pub(super) sender: Option<Jid>,
    pub(super) from_me: bool,
    pub(super) timestamp: i64,
    /// Our own user JID, to attribute our reactions.
    pub(super) me: Option<Jid>,
}

/// What one WhatsApp message means for the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Meaning {
    /// A message to store (text, media, or both).
    Message(Box<NewMessage>),
    /// A poll: its message, and the question and options to record.
    Poll(Box<NewMessage>, NewPoll),
    /// A vote in a poll, sealed with the poll's secret (see [`SealedVote`]).
    Vote(SealedVote),
    /// Anything else the archive records: a reaction, an edit or a revoke.
    Event(EngineEvent),
    /// Nothing the archive keeps (receipts of keys, presence of protocol bookkeeping…).
    Nothing,
}

/// A vote as it arrives: encrypted with a key derived from the poll's secret, the poll's id
/// and both the poll's author and the voter, so it can be opened only once the poll is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SealedVote {
    pub(super) chat: Jid,
    pub(super) poll_id: String,
    /// The voter, as the message names them, and their other address (LID or phone number)
    /// when the message shows it.
    pub(super) voter: Jid,
    pub(super) voter_alt: Option<Jid>,
    pub(super) enc_payload: Vec<u8>,
    pub(super) enc_iv: Vec<u8>,
    pub(super) timestamp: i64,
}

/// Opens a sealed vote with its poll's secret under the first of `pairs` (poll author, voter)
/// it was sealed for; returns the SHA-256 of each option picked.
pub(super) fn open_sealed_vote(
    vote: &SealedVote,
    secret: &[u8],
    pairs: &[(Jid, Jid)],
) -> Result<Vec<Vec<u8>>, String> {
    use whatsapp_rust::wacore::poll;
    let mut last = "neither the poll's author nor the voter is known".to_owned();
    for (author, voter) in pairs {
        match poll::decrypt_poll_vote_with_secret(
            poll::PollVoteCiphertext {
                enc_payload: &vote.enc_payload,
                enc_iv: &vote.enc_iv,
            },
            secret,
            &vote.poll_id,
            author.as_str(),
            voter.as_str(),
        ) {
            Ok(hashes) => return Ok(hashes),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}

/// The poll a message asks, if it is one (every version WhatsApp has used).
fn poll_of(base: &wa::Message) -> Option<&wa::message::PollCreationMessage> {
    base.poll_creation_message
        .as_option()
        .or(base.poll_creation_message_v2.as_option())
        .or(base.poll_creation_message_v3.as_option())
        .or(base.poll_creation_message_v5.as_option())
}

/// Interprets `message` as sent in `envelope`.
pub(super) fn interpret(envelope: &Envelope, message: &wa::Message) -> Meaning {
    let base = message.get_base_message();
    if let Some(reaction) = base.reaction_message.as_option() {
        return reaction_meaning(envelope, reaction);
    }
    if let Some(update) = base.poll_update_message.as_option() {
        return vote_meaning(envelope, update);
    }
    if let Some(protocol) = base.protocol_message.as_option() {
        return protocol_meaning(envelope, protocol);
    }
    let mut new = NewMessage {
        chat: envelope.chat.clone(),
        id: envelope.id.clone(),
        sender: if envelope.from_me {
            None
        } else {
            envelope.sender.clone()
        },
        timestamp: envelope.timestamp,
        from_me: envelope.from_me,
        text: base.text_content().map(str::to_owned),
        caption: None,
        quoted_id: None,
        media: None,
    };
    if let Some(ext) = base.extended_text_message.as_option() {
        new.quoted_id = quoted(&ext.context_info);
    }
    if let Some(media) = media_of(base) {
        new.caption = media.caption;
        new.quoted_id = new.quoted_id.or(media.quoted_id);
        new.media = Some(media.media);
    }
    if let Some(poll) = poll_of(base) {
        let question = poll.name.clone().unwrap_or_default();
        let options: Vec<String> = poll
            .options
            .iter()
            .filter_map(|o| o.option_name.clone())
            .collect();
        new.text = Some(crate::engine::poll_text(&question, &options));
        let secret = message
            .message_context_info
            .as_option()
            .or(base.message_context_info.as_option())
            .and_then(|info| info.message_secret.clone());
        let record = NewPoll {
            chat: envelope.chat.clone(),
            message_id: envelope.id.clone(),
            question,
            options,
            selectable: poll.selectable_options_count.unwrap_or(0),
            secret,
        };
        return Meaning::Poll(Box::new(new), record);
    }
    if new.text.is_none() && new.media.is_none() {
        if let Some(summary) = summary_of(base) {
            new.text = Some(summary);
        } else {
            return Meaning::Nothing;
        }
    }
    Meaning::Message(Box::new(new))
}

fn vote_meaning(envelope: &Envelope, update: &wa::message::PollUpdateMessage) -> Meaning {
    let (Some(poll_id), Some(vote)) = (
        update
            .poll_creation_message_key
            .as_option()
            .and_then(|k| k.id.clone()),
        update.vote.as_option(),
    ) else {
        return Meaning::Nothing;
    };
    let voter = if envelope.from_me {
        envelope.me.clone()
    } else {
        envelope.sender.clone()
    };
    let (Some(voter), Some(enc_payload), Some(enc_iv)) =
        (voter, vote.enc_payload.clone(), vote.enc_iv.clone())
    else {
        return Meaning::Nothing;
    };
    Meaning::Vote(SealedVote {
        chat: envelope.chat.clone(),
        poll_id,
        voter,
        voter_alt: None,
        enc_payload,
        enc_iv,
        timestamp: update
            .sender_timestamp_ms
            .map(|ms| ms / 1000)
            .unwrap_or(envelope.timestamp),
    })
}

fn reaction_meaning(envelope: &Envelope, reaction: &wa::message::ReactionMessage) -> Meaning {
    let Some(target) = reaction.key.as_option().and_then(|k| k.id.clone()) else {
        return Meaning::Nothing;
    };
    let sender = if envelope.from_me {
        envelope.me.clone()
    } else {
        envelope.sender.clone()
    };
    let Some(sender) = sender else {
        return Meaning::Nothing;
    };
    let timestamp = reaction
        .sender_timestamp_ms
        .map(|ms| ms / 1000)
        .unwrap_or(envelope.timestamp);
    Meaning::Event(EngineEvent::Reaction {
        chat: envelope.chat.clone(),
        message_id: target,
        sender,
        emoji: reaction.text.clone().unwrap_or_default(),
        timestamp,
    })
}

fn protocol_meaning(envelope: &Envelope, protocol: &wa::message::ProtocolMessage) -> Meaning {
    let Some(target) = protocol.key.as_option().and_then(|k| k.id.clone()) else {
        return Meaning::Nothing;
    };
    let timestamp = protocol
        .timestamp_ms
        .map(|ms| ms / 1000)
        .unwrap_or(envelope.timestamp);
    match protocol.r#type {
        Some(ProtocolType::REVOKE) => Meaning::Event(EngineEvent::Revoke {
            chat: envelope.chat.clone(),
            message_id: target,
            timestamp,
        }),
        Some(ProtocolType::MESSAGE_EDIT) => {
            let Some(edited) = protocol.edited_message.as_option() else {
                return Meaning::Nothing;
            };
            let text = edited
                .text_content()
                .or_else(|| edited.get_caption())
                .map(str::to_owned);
            match text {
                Some(text) => Meaning::Event(EngineEvent::Edit {
                    chat: envelope.chat.clone(),
                    message_id: target,
                    text,
                    timestamp,
                }),
                None => Meaning::Nothing,
            }
        }
        _ => Meaning::Nothing,
    }
}

struct MediaParts {
    media: Media,
    caption: Option<String>,
    quoted_id: Option<String>,
}

fn quoted(context: &buffa::MessageField<wa::ContextInfo>) -> Option<String> {
    context
        .as_option()
        .and_then(|c| c.stanza_id.clone())
        .filter(|id| !id.is_empty())
}

fn non_empty(caption: Option<&String>) -> Option<String> {
    caption.filter(|c| !c.trim().is_empty()).cloned()
}

/// The archive's record of a media message `$m`: the media protobufs share these field names but
/// no trait, so a macro reads them from each.
macro_rules! media_record {
    ($m:expr, $kind:expr, $file_name:expr) => {
        Media {
            media_type: $kind.to_owned(),
            file_name: $file_name,
            mime_type: $m.mimetype.clone(),
            file_length: $m.file_length,
            url: $m.url.clone(),
            direct_path: $m.direct_path.clone(),
            media_key: $m.media_key.clone(),
            file_sha256: $m.file_sha256.clone(),
            file_enc_sha256: $m.file_enc_sha256.clone(),
        }
    };
}

/// The media part of a message, with everything needed to download it later.
fn media_of(base: &wa::Message) -> Option<MediaParts> {
    if let Some(m) = base.image_message.as_option() {
        return Some(MediaParts {
            media: media_record!(m, "image", None),
            caption: non_empty(m.caption.as_ref()),
            quoted_id: quoted(&m.context_info),
        });
    }
    if let Some(m) = base.video_message.as_option() {
        return Some(MediaParts {
            media: media_record!(m, "video", None),
            caption: non_empty(m.caption.as_ref()),
            quoted_id: quoted(&m.context_info),
        });
    }
    if let Some(m) = base.audio_message.as_option() {
        let kind = if m.ptt == Some(true) {
            "voice"
        } else {
            "audio"
        };
        return Some(MediaParts {
            media: media_record!(m, kind, None),
            caption: None,
            quoted_id: quoted(&m.context_info),
        });
    }
    if let Some(m) = base.document_message.as_option() {
        return Some(MediaParts {
            media: media_record!(
                m,
                "document",
                m.file_name.clone().or_else(|| m.title.clone())
            ),
            caption: non_empty(m.caption.as_ref()),
            quoted_id: quoted(&m.context_info),
        });
    }
    if let Some(m) = base.sticker_message.as_option() {
        return Some(MediaParts {
            media: media_record!(m, "sticker", None),
            caption: None,
            quoted_id: quoted(&m.context_info),
        });
    }
    None
}

/// A short text for content the archive has no columns for, so the conversation has no holes.
fn summary_of(base: &wa::Message) -> Option<String> {
    if let Some(location) = base.location_message.as_option() {
        let place = location
            .name
            .clone()
            .or_else(|| location.address.clone())
            .unwrap_or_default();
        let (lat, lon) = (
            location.degrees_latitude.unwrap_or_default(),
            location.degrees_longitude.unwrap_or_default(),
        );
        return Some(format!("[location] {place} ({lat:.5}, {lon:.5})").replace("]  (", "] ("));
    }
    if let Some(contact) = base.contact_message.as_option() {
        return Some(format!(
            "[contact card] {}",
            contact.display_name.clone().unwrap_or_default()
        ));
    }
    None
}

/// Everything one history sync chunk holds, as events in the order they must be applied:
/// LID links first (so messages land under the phone number), then the conversations, then
/// names, then group members, then reactions, edits and revokes of the chunk's messages.
pub(super) fn history_events(
    sync: &wa::HistorySync,
    me: Option<&Jid>,
    progress: Option<u8>,
) -> Vec<EngineEvent> {
    let mut links = Vec::new();
    for mapping in &sync.phone_number_to_lid_mappings {
        if let (Some(lid), Some(phone)) = (
            mapping.lid_jid.as_deref().and_then(jid_str),
            mapping.pn_jid.as_deref().and_then(jid_str),
        ) {
            links.push(EngineEvent::LidMapping { lid, phone });
        }
    }
    let mut conversations = Vec::new();
    let mut after = Vec::new();
    let mut groups = Vec::new();
    for conversation in &sync.conversations {
        let Some(chat) = jid_str(&conversation.id) else {
            continue;
        };
        if let (Some(lid), Some(phone)) = (
            conversation.lid_jid.as_deref().and_then(jid_str),
            conversation.pn_jid.as_deref().and_then(jid_str),
        ) && lid.is_lid()
        {
            links.push(EngineEvent::LidMapping { lid, phone });
        }
        let mut update = ChatUpdate::new(chat.clone());
        update.name = conversation
            .name
            .clone()
            .or_else(|| conversation.display_name.clone())
            .filter(|n| !n.trim().is_empty());
        update.last_message_at = conversation
            .conversation_timestamp
            .or(conversation.last_msg_timestamp)
            .and_then(|t| i64::try_from(t).ok())
            .filter(|t| *t > 0);
        update.unread_count = conversation.unread_count;
        update.archived = conversation.archived;
        update.pinned = conversation.pinned.map(|p| p > 0);
        update.muted_until = conversation
            .mute_end_time
            .and_then(|t| i64::try_from(t).ok());
        let mut messages = Vec::new();
        let mut delivered: BTreeMap<Delivery, Vec<String>> = BTreeMap::new();
        for item in &conversation.messages {
            let Some(info) = item.message.as_option() else {
                continue;
            };
            let Some(envelope) = web_envelope(&chat, info, me) else {
                continue;
            };
            if let Some(message) = info.message.as_option() {
                match interpret(&envelope, message) {
                    Meaning::Message(m) => messages.push(*m),
                    Meaning::Poll(m, poll) => {
                        messages.push(*m);
                        after.push(EngineEvent::Poll(poll));
                    }
                    Meaning::Event(e) => after.push(e),
                    // History carries votes opened, beside their poll (below).
                    Meaning::Vote(_) | Meaning::Nothing => {}
                }
            }
            after.extend(stored_reactions(&envelope, info, me));
            after.extend(stored_votes(&envelope, info, me));
            if let Some(delivery) = envelope
                .from_me
                .then(|| info.status.and_then(history_delivery))
                .flatten()
            {
                delivered
                    .entry(delivery)
                    .or_default()
                    .push(envelope.id.clone());
            }
        }
        after.extend(
            delivered
                .into_iter()
                .map(|(delivery, message_ids)| EngineEvent::Delivery {
                    chat: chat.clone(),
                    message_ids,
                    delivery,
                }),
        );
        if chat.chat_kind() == crate::jid::ChatKind::Group && !conversation.participant.is_empty() {
            let participants = conversation
                .participant
                .iter()
                .filter_map(|p| jid_str(&p.user_jid).map(|j| (j, rank_name(p.rank))))
                .collect();
            groups.push(EngineEvent::Group {
                jid: chat.clone(),
                name: update.name.clone(),
                participants,
            });
        }
        conversations.push(HistoryConversation {
            chat: update,
            messages,
        });
    }
    let contacts: Vec<ContactUpdate> = sync
        .pushnames
        .iter()
        .filter_map(|p| {
            let jid = p.id.as_deref().and_then(jid_str)?;
            let name = p.pushname.clone().filter(|n| !n.trim().is_empty())?;
            let mut update = ContactUpdate::new(jid);
            update.push_name = Some(name);
            Some(update)
        })
        .collect();
    let mut events = links;
    events.push(EngineEvent::History {
        conversations,
        progress,
    });
    if !contacts.is_empty() {
        events.push(EngineEvent::Contacts(contacts));
    }
    events.extend(groups);
    events.extend(after);
    events
}

/// How far one of our messages got, as a history sync entry records it.
fn history_delivery(status: wa::web_message_info::Status) -> Option<Delivery> {
    use wa::web_message_info::Status;
    match status {
        Status::SERVER_ACK => Some(Delivery::Sent),
        Status::DELIVERY_ACK => Some(Delivery::Delivered),
        Status::READ => Some(Delivery::Read),
        Status::PLAYED => Some(Delivery::Played),
        Status::ERROR | Status::PENDING => None,
    }
}

/// A delivery, read or played receipt for messages in a chat. Receipts our own other devices
/// send (`read-self`) and the protocol's retry and error receipts say nothing about how far our
/// messages got, so they map to nothing.
pub(super) fn receipt_delivery(
    receipt: &whatsapp_rust::types::events::Receipt,
) -> Option<EngineEvent> {
    use whatsapp_rust::types::presence::ReceiptType;
    let delivery = match receipt.r#type {
        ReceiptType::Sent => Delivery::Sent,
        ReceiptType::Delivered => Delivery::Delivered,
        ReceiptType::Read => Delivery::Read,
        ReceiptType::Played => Delivery::Played,
        _ => return None,
    };
    let chat = jid(&receipt.source.chat)?;
    let message_ids: Vec<String> = receipt
        .message_ids
        .iter()
        .filter(|id| !id.is_empty())
        .cloned()
        .collect();
    (!message_ids.is_empty()).then_some(EngineEvent::Delivery {
        chat,
        message_ids,
        delivery,
    })
}

/// The server took one of our messages: it counts as sent. Nacks and acks of other stanzas
/// (receipts, notifications) map to nothing.
pub(super) fn ack_delivery(ack: &whatsapp_rust::types::events::ServerAck) -> Option<EngineEvent> {
    if ack.class.as_deref() != Some("message") || ack.error.is_some() || ack.id.is_empty() {
        return None;
    }
    let chat = jid(ack.from.as_ref()?)?;
    Some(EngineEvent::Delivery {
        chat,
        message_ids: vec![ack.id.clone()],
        delivery: Delivery::Sent,
    })
}

fn rank_name(rank: Option<wa::group_participant::Rank>) -> String {
    match rank {
        Some(wa::group_participant::Rank::ADMIN) => "admin",
        Some(wa::group_participant::Rank::SUPERADMIN) => "superadmin",
        _ => "member",
    }
    .to_owned()
}

/// The envelope of a message as history sync stores it.
fn web_envelope(chat: &Jid, info: &wa::WebMessageInfo, me: Option<&Jid>) -> Option<Envelope> {
    let key = info.key.as_option()?;
    let id = key.id.clone().filter(|id| !id.is_empty())?;
    let from_me = key.from_me.unwrap_or(false);
    let sender = if from_me {
        None
    } else {
        info.participant
            .as_deref()
            .or(key.participant.as_deref())
            .and_then(jid_str)
            .or_else(|| (chat.chat_kind() == crate::jid::ChatKind::Direct).then(|| chat.clone()))
    };
    let timestamp = info
        .message_timestamp
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or_default();
    Some(Envelope {
        chat: chat.clone(),
        id,
        sender,
        from_me,
        timestamp,
        me: me.cloned(),
    })
}

/// Reactions history sync keeps on the message they react to.
fn stored_reactions(
    envelope: &Envelope,
    info: &wa::WebMessageInfo,
    me: Option<&Jid>,
) -> Vec<EngineEvent> {
    info.reactions
        .iter()
        .filter_map(|reaction| {
            let sender = key_author(reaction.key.as_option()?, me)?;
            Some(EngineEvent::Reaction {
                chat: envelope.chat.clone(),
                message_id: envelope.id.clone(),
                sender,
                emoji: reaction.text.clone().unwrap_or_default(),
                timestamp: reaction
                    .sender_timestamp_ms
                    .map(|ms| ms / 1000)
                    .unwrap_or(envelope.timestamp),
            })
        })
        .collect()
}

/// Who wrote what a message key names: us, a group member, or the other side of a chat.
fn key_author(key: &wa::MessageKey, me: Option<&Jid>) -> Option<Jid> {
    if key.from_me == Some(true) {
        me.cloned()
    } else {
        key.participant
            .as_deref()
            .or(key.remote_jid.as_deref())
            .and_then(jid_str)
    }
}

/// The votes history sync keeps beside a poll message, already opened by the phone.
fn stored_votes(
    envelope: &Envelope,
    info: &wa::WebMessageInfo,
    me: Option<&Jid>,
) -> Vec<EngineEvent> {
    info.poll_updates
        .iter()
        .filter_map(|update| {
            let voter = key_author(update.poll_update_message_key.as_option()?, me)?;
            let vote = update.vote.as_option()?;
            Some(EngineEvent::PollVote {
                chat: envelope.chat.clone(),
                poll_id: envelope.id.clone(),
                voter,
                choice: VoteChoice::Hashes(vote.selected_options.clone()),
                timestamp: update
                    .sender_timestamp_ms
                    .map(|ms| ms / 1000)
                    .unwrap_or(envelope.timestamp),
            })
        })
        .collect()
}

/// What one event of the library means for the archive and the link state, in the order the
/// events are to be applied. `me` is our own user JID; `account` is the account of the live
/// client when there is one. History sync chunks are decoded apart (see [`history_events`]),
/// off the async runtime; every other event the engine listens to is translated here.
pub(super) fn translate(
    event: &Event,
    me: Option<&Jid>,
    account: Option<Account>,
) -> Vec<EngineEvent> {
    match event {
        Event::PairingQrCode(qr) => vec![EngineEvent::QrCode {
            code: qr.code.clone(),
            valid_for_secs: qr.timeout.as_secs().max(1),
        }],
        Event::PairSuccess(success) => {
            let account = Account {
                jid: success.id.to_string(),
                phone: success.id.user_base().to_owned(),
                push_name: Some(success.business_name.clone()).filter(|n| !n.is_empty()),
            };
            let mut events: Vec<_> = lid_link(jid(&success.lid), jid(&success.id))
                .into_iter()
                .collect();
            events.push(EngineEvent::Paired { account });
            events
        }
        Event::Connected(_) => account
            .map(|account| EngineEvent::Connected { account })
            .into_iter()
            .collect(),
        Event::Messages(batch) if !batch.hook_committed => inbound_events(&batch.messages, me),
        Event::Receipt(receipt) => receipt_delivery(receipt).into_iter().collect(),
        Event::ServerAck(ack) => ack_delivery(ack).into_iter().collect(),
        Event::ContactUpdate(update) => {
            let Some(who) = jid(&update.jid) else {
                return Vec::new();
            };
            let action = &update.action;
            let mut events: Vec<_> = lid_link(
                action.lid_jid.as_deref().and_then(jid_str),
                action.pn_jid.as_deref().and_then(jid_str),
            )
            .into_iter()
            .collect();
            let mut contact = ContactUpdate::new(who);
            contact.full_name = action.full_name.clone().filter(|n| !n.trim().is_empty());
            contact.first_name = action.first_name.clone().filter(|n| !n.trim().is_empty());
            events.push(EngineEvent::Contacts(vec![contact]));
            events
        }
        Event::PushNameUpdate(update) => {
            let Some(who) = jid(&update.jid) else {
                return Vec::new();
            };
            let mut contact = ContactUpdate::new(who);
            contact.push_name = Some(update.new_push_name.clone()).filter(|n| !n.trim().is_empty());
            vec![EngineEvent::Contacts(vec![contact])]
        }
        Event::ContactNumberChanged(change) => {
            lid_link(change.new_lid.as_ref().and_then(jid), jid(&change.new_jid))
                .into_iter()
                .collect()
        }
        Event::PinUpdate(update) => chat_setting(&update.jid, |c| c.pinned = update.action.pinned),
        Event::ArchiveUpdate(update) => {
            chat_setting(&update.jid, |c| c.archived = update.action.archived)
        }
        Event::MuteUpdate(update) => {
            let until = match update.action.muted {
                Some(true) => update.action.mute_end_timestamp.map(|t| {
                    // -1 means "always"; WhatsApp sends milliseconds.
                    if t < 0 { i64::MAX } else { t / 1000 }
                }),
                Some(false) => Some(0),
                None => None,
            };
            chat_setting(&update.jid, |c| c.muted_until = until)
        }
        Event::DeleteMessageForMeUpdate(update) => jid(&update.chat_jid)
            .map(|chat| EngineEvent::Revoke {
                chat,
                message_id: update.message_id.clone(),
                timestamp: update.timestamp.timestamp(),
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// A LID and a phone number known to be one person, when the first really is a LID.
fn lid_link(lid: Option<Jid>, phone: Option<Jid>) -> Option<EngineEvent> {
    match (lid, phone) {
        (Some(lid), Some(phone)) if lid.is_lid() => Some(EngineEvent::LidMapping { lid, phone }),
        _ => None,
    }
}

fn chat_setting(chat: &whatsapp_rust::Jid, edit: impl FnOnce(&mut ChatUpdate)) -> Vec<EngineEvent> {
    let Some(chat) = jid(chat) else {
        return Vec::new();
    };
    let mut update = ChatUpdate::new(chat);
    edit(&mut update);
    vec![EngineEvent::Chats(vec![update])]
}

/// One batch of received messages: the LID links their addresses show first, then the
/// messages, then the push names of their senders, then reactions, edits and revokes.
pub(super) fn inbound_events(batch: &[InboundMessage], me: Option<&Jid>) -> Vec<EngineEvent> {
    let (events, votes) = inbound(batch, me);
    if !votes.is_empty() {
        tracing::debug!(
            votes = votes.len(),
            "poll votes outside the archive hook are not opened"
        );
    }
    events
}

/// [`inbound_events`], with the batch's poll votes apart: they can be opened only with the
/// secret of their poll, which the archive holds (see `events::store_batch`).
pub(super) fn inbound(
    batch: &[InboundMessage],
    me: Option<&Jid>,
) -> (Vec<EngineEvent>, Vec<SealedVote>) {
    let mut votes = Vec::new();
    let mut links = Vec::new();
    let mut messages = Vec::new();
    let mut contacts = Vec::new();
    let mut others = Vec::new();
    for inbound in batch {
        let info = &inbound.info;
        let source = &info.source;
        let Some(chat) = jid(&source.chat) else {
            continue;
        };
        let sender = jid(&source.sender);
        // One person, two addresses: the store files both under the phone number.
        for (a, b) in [
            (Some(&source.sender), source.sender_alt.as_ref()),
            (Some(&source.chat), source.recipient_alt.as_ref()),
        ] {
            if let (Some(a), Some(b)) = (a.and_then(jid), b.and_then(jid)) {
                match (a.is_lid(), b.is_lid()) {
                    (true, false) if b.phone().is_some() => {
                        links.push(EngineEvent::LidMapping { lid: a, phone: b });
                    }
                    (false, true) if a.phone().is_some() => {
                        links.push(EngineEvent::LidMapping { lid: b, phone: a });
                    }
                    _ => {}
                }
            }
        }
        if !source.is_from_me
            && !info.push_name.trim().is_empty()
            && let Some(sender) = &sender
        {
            let mut update = ContactUpdate::new(sender.clone());
            update.push_name = Some(info.push_name.clone());
            contacts.push(update);
        }
        let envelope = Envelope {
            chat,
            id: info.id.clone(),
            sender,
            from_me: source.is_from_me,
            timestamp: info.timestamp.timestamp(),
            me: me.cloned(),
        };
        match interpret(&envelope, &inbound.message) {
            Meaning::Message(message) => messages.push(*message),
            Meaning::Poll(message, poll) => {
                messages.push(*message);
                others.push(EngineEvent::Poll(poll));
            }
            Meaning::Vote(mut vote) => {
                vote.voter_alt = source.sender_alt.as_ref().and_then(jid);
                votes.push(vote);
            }
            Meaning::Event(event) => others.push(event),
            Meaning::Nothing => {}
        }
    }
    let mut events = links;
    if !messages.is_empty() {
        events.push(EngineEvent::Messages(messages));
    }
    if !contacts.is_empty() {
        events.push(EngineEvent::Contacts(contacts));
    }
    events.extend(others);
    (events, votes)
}

/// A group's name and members, and the LID links its member list shows.
pub(super) fn group_events(metadata: &whatsapp_rust::GroupMetadata) -> Vec<EngineEvent> {
    let Some(group) = jid(&metadata.id) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    let mut participants = Vec::new();
    for member in &metadata.participants {
        let role = if member.is_super_admin() {
            "superadmin"
        } else if member.is_admin() {
            "admin"
        } else {
            "member"
        };
        let lid = member.lid.as_ref().and_then(jid).filter(Jid::is_lid);
        let phone = member
            .phone_number
            .as_ref()
            .and_then(jid)
            .filter(|j| !j.is_lid());
        let own = jid(&member.jid);
        if let (Some(lid), Some(phone)) = (lid.clone(), phone.clone()) {
            events.push(EngineEvent::LidMapping { lid, phone });
        }
        if let Some(who) = phone.or(own).or(lid) {
            participants.push((who, role.to_owned()));
        }
    }
    events.push(EngineEvent::Group {
        jid: group,
        name: Some(metadata.subject.clone()).filter(|s| !s.trim().is_empty()),
        participants,
    });
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use buffa::MessageField;

    fn envelope(from_me: bool) -> Envelope {
        Envelope {
            chat: Jid::parse("31611111111").unwrap(),
            id: "ABC".to_owned(),
            sender: Some(Jid::parse("31611111111").unwrap()),
            from_me,
            timestamp: 1_700_000_000,
            me: Some(Jid::parse("31600000000").unwrap()),
        }
    }

    #[test]
    fn a_poll_is_recorded_and_its_votes_open_with_its_secret() {
        use crate::engine::ingest::option_hash;
        let secret = vec![5u8; 32];
        let option = |name: &str| wa::message::poll_creation_message::Option {
            option_name: Some(name.to_owned()),
            ..Default::default()
        };
        let poll = wa::Message {
            poll_creation_message_v3: MessageField::some(wa::message::PollCreationMessage {
                name: Some("Dinner?".to_owned()),
                options: vec![option("Pizza"), option("Soup")],
                selectable_options_count: Some(1),
                ..Default::default()
            }),
            message_context_info: MessageField::some(wa::MessageContextInfo {
                message_secret: Some(secret.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Meaning::Poll(message, record) = interpret(&envelope(true), &poll) else {
            panic!("not a poll")
        };
        assert_eq!(
            message.text.as_deref(),
            Some("[poll] Dinner? (Pizza / Soup)")
        );
        assert_eq!(record.options, ["Pizza", "Soup"]);
        assert_eq!(
            (record.selectable, record.secret),
            (1, Some(secret.clone()))
        );

        // Ada votes Soup in our poll: sealed for us as the author and her as the voter, the
        // way her phone seals it.
        let (me, ada) = (
            Jid::parse("31600000000").unwrap(),
            Jid::parse("31611111111").unwrap(),
        );
        let (payload, iv) = whatsapp_rust::wacore::poll::encrypt_poll_vote_with_secret(
            &[option_hash("Soup")],
            &secret,
            "ABC",
            me.as_str(),
            ada.as_str(),
        )
        .unwrap();
        let vote = wa::Message {
            poll_update_message: MessageField::some(wa::message::PollUpdateMessage {
                poll_creation_message_key: MessageField::some(wa::MessageKey {
                    id: Some("ABC".to_owned()),
                    ..Default::default()
                }),
                vote: MessageField::some(wa::message::PollEncValue {
                    enc_payload: Some(payload),
                    enc_iv: Some(iv.to_vec()),
                }),
                sender_timestamp_ms: Some(1_700_000_100_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let from_ada = Envelope {
            id: "VOTE1".to_owned(),
            ..envelope(false)
        };
        let Meaning::Vote(sealed) = interpret(&from_ada, &vote) else {
            panic!("not a vote")
        };
        assert_eq!(
            (sealed.poll_id.as_str(), &sealed.voter, sealed.timestamp),
            ("ABC", &ada, 1_700_000_100)
        );
        // The first pair that fits opens it; a wrong secret opens nothing.
        let pairs = [(ada.clone(), me.clone()), (me.clone(), ada.clone())];
        assert_eq!(
            open_sealed_vote(&sealed, &secret, &pairs).unwrap(),
            [option_hash("Soup")]
        );
        assert!(open_sealed_vote(&sealed, &[6; 32], &pairs).is_err());
        assert!(open_sealed_vote(&sealed, &secret, &[]).is_err());
    }

    #[test]
    fn history_keeps_votes_opened_beside_their_poll() {
        use crate::engine::ingest::option_hash;
        let ada = Jid::parse("31611111111").unwrap();
        let info = wa::WebMessageInfo {
            poll_updates: vec![wa::PollUpdate {
                poll_update_message_key: MessageField::some(wa::MessageKey {
                    remote_jid: Some(ada.to_string()),
                    from_me: Some(false),
                    ..Default::default()
                }),
                vote: MessageField::some(wa::message::PollVoteMessage {
                    selected_options: vec![option_hash("Soup")],
                }),
                sender_timestamp_ms: Some(1_700_000_200_000),
                ..Default::default()
            }],
            ..Default::default()
        };
        let envelope = envelope(true);
        assert_eq!(
            stored_votes(&envelope, &info, envelope.me.as_ref()),
            [EngineEvent::PollVote {
                chat: envelope.chat.clone(),
                poll_id: "ABC".to_owned(),
                voter: ada,
                choice: VoteChoice::Hashes(vec![option_hash("Soup")]),
                timestamp: 1_700_000_200,
            }]
        );
    }

    #[test]
    fn text_and_replies() {
        let plain = wa::Message {
            conversation: Some("hello".to_owned()),
            ..Default::default()
        };
        let Meaning::Message(m) = interpret(&envelope(false), &plain) else {
            panic!("not a message")
        };
        assert_eq!(m.text.as_deref(), Some("hello"));
        assert_eq!(m.sender, Some(Jid::parse("31611111111").unwrap()));

        let reply = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".to_owned()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("QUOTED".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Meaning::Message(m) = interpret(&envelope(true), &reply) else {
            panic!("not a message")
        };
        assert_eq!(m.quoted_id.as_deref(), Some("QUOTED"));
        assert_eq!(m.sender, None, "our own messages carry no sender");
        assert!(m.from_me);
    }

    #[test]
    fn media_keeps_caption_and_download_keys() {
        let image = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("sunset".to_owned()),
                mimetype: Some("image/jpeg".to_owned()),
                direct_path: Some("/v/t62/abc".to_owned()),
                media_key: Some(vec![1; 32]),
                file_sha256: Some(vec![2; 32]),
                file_enc_sha256: Some(vec![3; 32]),
                file_length: Some(1234),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Meaning::Message(m) = interpret(&envelope(false), &image) else {
            panic!("not a message")
        };
        assert_eq!(m.caption.as_deref(), Some("sunset"));
        assert_eq!(m.text, None);
        let media = m.media.unwrap();
        assert_eq!(media.media_type, "image");
        assert_eq!(media.direct_path.as_deref(), Some("/v/t62/abc"));
        assert_eq!(media.media_key, Some(vec![1; 32]));
        assert_eq!(media.file_sha256, Some(vec![2; 32]));
        assert_eq!(media.file_length, Some(1234));

        let voice = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                ptt: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Meaning::Message(m) = interpret(&envelope(false), &voice) else {
            panic!("not a message")
        };
        assert_eq!(m.media.unwrap().media_type, "voice");
    }

    #[test]
    fn reactions_edits_and_revokes_are_events() {
        let key = wa::MessageKey {
            id: Some("TARGET".to_owned()),
            ..Default::default()
        };
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(key.clone()),
                text: Some("👍".to_owned()),
                sender_timestamp_ms: Some(1_700_000_123_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            interpret(&envelope(true), &reaction),
            Meaning::Event(EngineEvent::Reaction {
                chat: Jid::parse("31611111111").unwrap(),
                message_id: "TARGET".to_owned(),
                sender: Jid::parse("31600000000").unwrap(),
                emoji: "👍".to_owned(),
                timestamp: 1_700_000_123,
            })
        );
        let revoke = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(key.clone()),
                r#type: Some(ProtocolType::REVOKE),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            interpret(&envelope(false), &revoke),
            Meaning::Event(EngineEvent::Revoke { ref message_id, .. }) if message_id == "TARGET"
        ));
        let edit = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(key),
                r#type: Some(ProtocolType::MESSAGE_EDIT),
                edited_message: MessageField::some(wa::Message {
                    conversation: Some("fixed".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            interpret(&envelope(false), &edit),
            Meaning::Event(EngineEvent::Edit { ref text, .. }) if text == "fixed"
        ));
        assert_eq!(
            interpret(&envelope(false), &wa::Message::default()),
            Meaning::Nothing
        );
    }

    #[test]
    fn history_chunks_carry_links_names_and_messages() {
        let message = |id: &str, from_me: bool, text: &str| wa::HistorySyncMsg {
            message: MessageField::some(wa::WebMessageInfo {
                key: MessageField::some(wa::MessageKey {
                    remote_jid: Some("31611111111@s.whatsapp.net".to_owned()),
                    from_me: Some(from_me),
                    id: Some(id.to_owned()),
                    participant: None,
                }),
                message: MessageField::some(wa::Message {
                    conversation: Some(text.to_owned()),
                    ..Default::default()
                }),
                message_timestamp: Some(1_700_000_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sync = wa::HistorySync {
            conversations: vec![wa::Conversation {
                id: "31611111111@s.whatsapp.net".to_owned(),
                messages: vec![message("H1", false, "hi"), message("H2", true, "hello")],
                unread_count: Some(1),
                pn_jid: Some("31611111111@s.whatsapp.net".to_owned()),
                lid_jid: Some("123456789@lid".to_owned()),
                ..Default::default()
            }],
            pushnames: vec![wa::Pushname {
                id: Some("31611111111@s.whatsapp.net".to_owned()),
                pushname: Some("Ada".to_owned()),
            }],
            ..Default::default()
        };
        let events = history_events(&sync, None, Some(40));
        assert!(matches!(&events[0], EngineEvent::LidMapping { lid, .. } if lid.is_lid()));
        let EngineEvent::History {
            conversations,
            progress,
        } = &events[1]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*progress, Some(40));
        assert_eq!(conversations[0].messages.len(), 2);
        assert_eq!(conversations[0].chat.unread_count, Some(1));
        assert!(conversations[0].messages[1].from_me);
        assert!(
            matches!(&events[2], EngineEvent::Contacts(c) if c[0].push_name.as_deref() == Some("Ada"))
        );
    }

    #[test]
    fn history_records_how_far_our_messages_got() {
        let message = |id: &str, from_me: bool, status| wa::HistorySyncMsg {
            message: MessageField::some(wa::WebMessageInfo {
                key: MessageField::some(wa::MessageKey {
                    remote_jid: Some("31611111111@s.whatsapp.net".to_owned()),
                    from_me: Some(from_me),
                    id: Some(id.to_owned()),
                    participant: None,
                }),
                message: MessageField::some(wa::Message {
                    conversation: Some("text".to_owned()),
                    ..Default::default()
                }),
                message_timestamp: Some(1_700_000_000),
                status,
                ..Default::default()
            }),
            ..Default::default()
        };
        use wa::web_message_info::Status;
        let sync = wa::HistorySync {
            conversations: vec![wa::Conversation {
                id: "31611111111@s.whatsapp.net".to_owned(),
                messages: vec![
                    message("R1", true, Some(Status::READ)),
                    message("R2", true, Some(Status::READ)),
                    message("D1", true, Some(Status::DELIVERY_ACK)),
                    message("P1", true, Some(Status::PENDING)),
                    message("IN", false, Some(Status::READ)),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut statuses: Vec<(Delivery, Vec<String>)> = history_events(&sync, None, None)
            .into_iter()
            .filter_map(|event| match event {
                EngineEvent::Delivery {
                    delivery,
                    message_ids,
                    ..
                } => Some((delivery, message_ids)),
                _ => None,
            })
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                (Delivery::Delivered, vec!["D1".to_owned()]),
                (Delivery::Read, vec!["R1".to_owned(), "R2".to_owned()]),
            ]
        );
    }

    #[test]
    fn receipts_and_acks_map_to_delivery_steps() {
        use whatsapp_rust::types::events::{Receipt, ServerAck};
        use whatsapp_rust::types::message::MessageSource;
        use whatsapp_rust::types::presence::ReceiptType;
        let chat: whatsapp_rust::Jid = "31611111111@s.whatsapp.net".parse().unwrap();
        let receipt = |kind: ReceiptType| {
            Receipt::builder()
                .source(MessageSource {
                    chat: chat.clone(),
                    sender: chat.clone(),
                    ..Default::default()
                })
                .message_ids(vec!["M1".to_owned(), "M2".to_owned()])
                .timestamp(chrono::Utc::now())
                .r#type(kind)
                .offline(false)
                .build()
        };
        for (kind, expected) in [
            (ReceiptType::Delivered, Some(Delivery::Delivered)),
            (ReceiptType::Read, Some(Delivery::Read)),
            (ReceiptType::Played, Some(Delivery::Played)),
            (ReceiptType::ReadSelf, None),
            (ReceiptType::Retry, None),
        ] {
            let mapped = receipt_delivery(&receipt(kind.clone()));
            match (mapped, expected) {
                (None, None) => {}
                (
                    Some(EngineEvent::Delivery {
                        chat,
                        message_ids,
                        delivery,
                    }),
                    Some(expected),
                ) => {
                    assert_eq!(delivery, expected);
                    assert_eq!(chat.to_string(), "31611111111@s.whatsapp.net");
                    assert_eq!(message_ids, ["M1", "M2"]);
                }
                (got, _) => panic!("{kind:?} mapped to {got:?}"),
            }
        }
        let ack = |class: Option<&str>, error: Option<&str>| {
            ServerAck::builder()
                .id("M3".to_owned())
                .maybe_class(class.map(str::to_owned))
                .from(chat.clone())
                .maybe_error(error.map(str::to_owned))
                .build()
        };
        assert!(matches!(
            ack_delivery(&ack(Some("message"), None)),
            Some(EngineEvent::Delivery { delivery: Delivery::Sent, ref message_ids, .. })
                if message_ids == &["M3"]
        ));
        assert_eq!(ack_delivery(&ack(Some("receipt"), None)), None);
        assert_eq!(ack_delivery(&ack(Some("message"), Some("479"))), None);
    }

    #[test]
    fn library_events_translate_in_the_order_they_are_applied() {
        use wa::sync_action_value::{ContactAction, MuteAction};
        use whatsapp_rust::types::events::{ContactUpdate as WaContact, MuteUpdate};
        let chat: whatsapp_rust::Jid = "31611111111@s.whatsapp.net".parse().unwrap();
        let mute = |muted: Option<bool>, end: Option<i64>| {
            Event::MuteUpdate(
                MuteUpdate::builder()
                    .jid(chat.clone())
                    .timestamp(chrono::Utc::now())
                    .action(Box::new(MuteAction {
                        muted,
                        mute_end_timestamp: end,
                        ..Default::default()
                    }))
                    .from_full_sync(false)
                    .build(),
            )
        };
        let muted_until = |event: &Event| match translate(event, None, None).as_slice() {
            [EngineEvent::Chats(updates)] => updates[0].muted_until,
            other => panic!("{other:?}"),
        };
        assert_eq!(muted_until(&mute(Some(true), Some(-1))), Some(i64::MAX));
        assert_eq!(
            muted_until(&mute(Some(true), Some(1_700_000_000_000))),
            Some(1_700_000_000)
        );
        assert_eq!(muted_until(&mute(Some(false), None)), Some(0));
        assert_eq!(muted_until(&mute(None, None)), None);

        // An address-book entry: the LID link first, then the names.
        let contact = |lid: &str| {
            Event::ContactUpdate(
                WaContact::builder()
                    .jid(chat.clone())
                    .timestamp(chrono::Utc::now())
                    .action(Box::new(ContactAction {
                        full_name: Some("Ada Lovelace".to_owned()),
                        first_name: Some(" ".to_owned()),
                        lid_jid: Some(lid.to_owned()),
                        pn_jid: Some("31611111111@s.whatsapp.net".to_owned()),
                        ..Default::default()
                    }))
                    .from_full_sync(true)
                    .build(),
            )
        };
        match translate(&contact("99887766@lid"), None, None).as_slice() {
            [
                EngineEvent::LidMapping { lid, phone },
                EngineEvent::Contacts(contacts),
            ] => {
                assert_eq!(lid.to_string(), "99887766@lid");
                assert_eq!(phone.to_string(), "31611111111@s.whatsapp.net");
                assert_eq!(contacts[0].full_name.as_deref(), Some("Ada Lovelace"));
                assert_eq!(contacts[0].first_name, None, "a blank name is no name");
            }
            other => panic!("{other:?}"),
        }
        // A "LID" that is a phone number links nothing.
        let events = translate(&contact("31622222222@s.whatsapp.net"), None, None);
        assert!(
            matches!(events.as_slice(), [EngineEvent::Contacts(_)]),
            "{events:?}"
        );
        // Connected means something only with the live client's account.
        let connected =
            Event::Connected(whatsapp_rust::types::events::Connected::builder().build());
        assert!(translate(&connected, None, None).is_empty());
        let account = Account {
            jid: "31611111111@s.whatsapp.net".to_owned(),
            phone: "31611111111".to_owned(),
            push_name: None,
        };
        assert!(matches!(
            translate(&connected, None, Some(account)).as_slice(),
            [EngineEvent::Connected { .. }]
        ));
    }
}
