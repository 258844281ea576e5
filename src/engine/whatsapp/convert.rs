//! Translating whatsapp-rust's messages into the archive's records.
//!
//! Pure functions only: the same translation serves live messages, our own sends and every
//! history sync chunk, and the unit tests feed it protobufs built by hand.

use std::collections::BTreeMap;

use whatsapp_rust::buffa;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::engine::ingest::{EngineEvent, HistoryConversation};
use crate::jid::Jid;
use crate::store::model::{ChatUpdate, ContactUpdate, Delivery, Media, NewMessage};

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
    /// Anything else the archive records: a reaction, an edit or a revoke.
    Event(EngineEvent),
    /// Nothing the archive keeps (receipts of keys, presence of protocol bookkeeping…).
    Nothing,
}

/// Interprets `message` as sent in `envelope`.
pub(super) fn interpret(envelope: &Envelope, message: &wa::Message) -> Meaning {
    let base = message.get_base_message();
    if let Some(reaction) = base.reaction_message.as_option() {
        return reaction_meaning(envelope, reaction);
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
    if new.text.is_none() && new.media.is_none() {
        if let Some(summary) = summary_of(base) {
            new.text = Some(summary);
        } else {
            return Meaning::Nothing;
        }
    }
    Meaning::Message(Box::new(new))
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
    if let Some(poll) = base
        .poll_creation_message
        .as_option()
        .or(base.poll_creation_message_v3.as_option())
    {
        let options: Vec<&str> = poll
            .options
            .iter()
            .filter_map(|o| o.option_name.as_deref())
            .collect();
        return Some(format!(
            "[poll] {} ({})",
            poll.name.clone().unwrap_or_default(),
            options.join(" / ")
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
                    Meaning::Event(e) => after.push(e),
                    Meaning::Nothing => {}
                }
            }
            after.extend(stored_reactions(&envelope, info, me));
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
            let key = reaction.key.as_option()?;
            let sender = if key.from_me == Some(true) {
                me.cloned()?
            } else {
                key.participant
                    .as_deref()
                    .or(key.remote_jid.as_deref())
                    .and_then(jid_str)?
            };
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
}
