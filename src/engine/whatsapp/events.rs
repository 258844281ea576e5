//! From whatsapp-rust's events to [`EngineEvent`]s, applied through [`Ingest`].
//!
//! Two paths lead into the archive. Live end-to-end messages go through [`ArchiveHook`], the
//! library's inbound durability hook: it runs before the message is acknowledged to WhatsApp and
//! returns only once the store has committed, so a crash or a failed write leaves the message in
//! WhatsApp's offline queue to be delivered again. Everything else (history sync, names, chat
//! settings, and the few messages the hook does not cover) is forwarded in arrival order to one
//! task by [`Forwarder`], which also records the lifecycle facts the connection supervisor acts
//! on the moment they are dispatched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use whatsapp_rust::Client;
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, EventKind, InboundMessage};

use super::convert::{self, Envelope, Meaning};
use crate::engine::ingest::{EngineEvent, Ingest};
use crate::jid::Jid;
use crate::state::Account;
use crate::store::StoreError;
use crate::store::model::{ChatUpdate, ContactUpdate};

/// Why a connection ended for good, as far as retrying is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The phone removed this device or the session is invalid.
    LoggedOut(String),
    /// Another client connected with this identity.
    StreamReplaced,
    /// WhatsApp refused this client version.
    ClientOutdated,
    /// WhatsApp banned the account for a while.
    TemporaryBan {
        reason: String,
        retry_after: Duration,
    },
    /// Every QR code of this linking attempt expired unscanned.
    QrExhausted,
}

/// What the supervisor learns about the current connection from the event stream.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) connected_at: Option<Instant>,
    pub(super) paired: bool,
    pub(super) verdict: Option<Verdict>,
    pub(super) last_disconnect: Option<String>,
    /// WhatsApp asked for a longer pause (stream error 429).
    pub(super) rate_limited: bool,
}

/// Shared between the forwarder (writer) and the supervisor (reader).
pub(super) type ObservedCell = Arc<Mutex<Observed>>;

/// The ids of the messages the server acknowledged most recently.
///
/// The server's ack can overtake the archiving of the message it acknowledges (`send_message`
/// returns before the ack, and the ack is applied on another task), and a delivery status for a
/// message not yet stored changes nothing. So the forwarder notes every ack here, inline, and
/// the sender looks here after archiving its message.
#[derive(Debug, Default)]
pub(super) struct RecentAcks(Mutex<VecDeque<String>>);

impl RecentAcks {
    /// Plenty for the sends in flight at any moment; older ids have long been archived.
    const KEEP: usize = 256;

    fn note(&self, id: &str) {
        if let Ok(mut ids) = self.0.lock() {
            if ids.len() == Self::KEEP {
                ids.pop_front();
            }
            ids.push_back(id.to_owned());
        }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.0.lock().is_ok_and(|ids| ids.iter().any(|i| i == id))
    }
}

fn observe(cell: &ObservedCell, edit: impl FnOnce(&mut Observed)) {
    if let Ok(mut observed) = cell.lock() {
        edit(&mut observed);
    }
}

/// The kinds this engine does something with; the bus skips building the rest.
const INTERESTS: [EventKind; 24] = [
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::LoggedOut,
    EventKind::PairingQrCode,
    EventKind::PairingCode,
    EventKind::PairingQrCodesExhausted,
    EventKind::ClientOutdated,
    EventKind::StreamReplaced,
    EventKind::TemporaryBan,
    EventKind::StreamError,
    EventKind::Messages,
    EventKind::HistorySync,
    EventKind::ContactUpdate,
    EventKind::PushNameUpdate,
    EventKind::ContactNumberChanged,
    EventKind::GroupUpdate,
    EventKind::PinUpdate,
    EventKind::MuteUpdate,
    EventKind::ArchiveUpdate,
    EventKind::DeleteMessageForMeUpdate,
    EventKind::Receipt,
    EventKind::ServerAck,
];

/// Runs inline on the library's dispatch path: notes lifecycle facts, then queues the event.
#[derive(Debug)]
pub(super) struct Forwarder {
    observed: ObservedCell,
    acks: Arc<RecentAcks>,
    queue: mpsc::UnboundedSender<Arc<Event>>,
}

impl Forwarder {
    pub(super) fn new(
        observed: ObservedCell,
        acks: Arc<RecentAcks>,
        queue: mpsc::UnboundedSender<Arc<Event>>,
    ) -> Self {
        Self {
            observed,
            acks,
            queue,
        }
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        match &*event {
            Event::Connected(_) => observe(&self.observed, |o| {
                o.connected_at = Some(Instant::now());
            }),
            Event::PairSuccess(_) => observe(&self.observed, |o| o.paired = true),
            Event::Disconnected(d) => {
                let reason = d.reason.to_string();
                observe(&self.observed, |o| o.last_disconnect = Some(reason));
            }
            Event::LoggedOut(out) => {
                let reason = match &out.logout_message {
                    Some(message) => message
                        .header
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", out.reason)),
                    None => format!("the phone unlinked this device ({:?})", out.reason),
                };
                observe(&self.observed, |o| {
                    o.verdict = Some(Verdict::LoggedOut(reason));
                });
            }
            Event::StreamReplaced(_) => observe(&self.observed, |o| {
                o.verdict = Some(Verdict::StreamReplaced);
            }),
            Event::ClientOutdated(_) => observe(&self.observed, |o| {
                o.verdict = Some(Verdict::ClientOutdated);
            }),
            Event::TemporaryBan(ban) => {
                let retry_after = ban.expire.to_std().unwrap_or(Duration::from_secs(3600));
                let reason = format!("WhatsApp temporarily banned this account: {}", ban.code);
                observe(&self.observed, |o| {
                    o.verdict = Some(Verdict::TemporaryBan {
                        reason,
                        retry_after,
                    });
                });
            }
            Event::PairingQrCodesExhausted(x) if x.disconnected => observe(&self.observed, |o| {
                o.verdict = Some(Verdict::QrExhausted);
            }),
            Event::StreamError(e) if e.code == "429" => {
                observe(&self.observed, |o| o.rate_limited = true);
            }
            // A pairing code is handed to the caller that asked for it; keeping it out of
            // every log line is all there is to do here.
            Event::PairingCode(code) => crate::logging::register_secret(&code.code),
            Event::PairingQrCode(qr) => crate::logging::register_secret(&qr.code),
            Event::ServerAck(ack) if convert::ack_delivery(ack).is_some() => {
                self.acks.note(&ack.id);
            }
            _ => {}
        }
        let _ = self.queue.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&INTERESTS)
    }
}

/// The inbound durability hook: live messages are in the archive before WhatsApp hears they
/// arrived.
#[derive(Debug, Clone)]
pub(super) struct ArchiveHook {
    ingest: Ingest,
}

impl ArchiveHook {
    pub(super) fn new(ingest: Ingest) -> Self {
        Self { ingest }
    }
}

#[async_trait::async_trait]
impl whatsapp_rust::InboundDurabilityHook for ArchiveHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        let me = own_jid(&client);
        store_batch(&self.ingest, batch, me.as_ref())
            .await
            // Err keeps the acks back; WhatsApp delivers the batch again on the next connect.
            .map_err(|err| whatsapp_rust::anyhow::anyhow!("archive write failed: {err}"))
    }
}

/// Our own user JID (phone number form), once paired.
pub(super) fn own_jid(client: &Client) -> Option<Jid> {
    client.pn().as_ref().and_then(convert::jid)
}

/// The account as the status shows it.
pub(super) fn account(client: &Client) -> Option<Account> {
    let pn = client.pn()?;
    let phone = pn.user_base().to_owned();
    let push_name = Some(client.push_name()).filter(|n| !n.trim().is_empty());
    Some(Account {
        jid: pn.to_string(),
        phone,
        push_name,
    })
}

/// Stores one batch of received messages (and what they teach about names and LIDs).
pub(super) async fn store_batch(
    ingest: &Ingest,
    batch: &[InboundMessage],
    me: Option<&Jid>,
) -> Result<(), StoreError> {
    let mut links = Vec::new();
    let mut messages = Vec::new();
    let mut contacts = Vec::new();
    let mut others = Vec::new();
    for inbound in batch {
        let info = &inbound.info;
        let source = &info.source;
        let Some(chat) = convert::jid(&source.chat) else {
            continue;
        };
        let sender = convert::jid(&source.sender);
        // One person, two addresses: the store files both under the phone number.
        for (a, b) in [
            (Some(&source.sender), source.sender_alt.as_ref()),
            (Some(&source.chat), source.recipient_alt.as_ref()),
        ] {
            if let (Some(a), Some(b)) = (a.and_then(convert::jid), b.and_then(convert::jid)) {
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
        match convert::interpret(&envelope, &inbound.message) {
            Meaning::Message(message) => messages.push(*message),
            Meaning::Event(event) => others.push(event),
            Meaning::Nothing => {}
        }
    }
    for event in links {
        ingest.apply(event).await?;
    }
    if !messages.is_empty() {
        ingest.apply(EngineEvent::Messages(messages)).await?;
    }
    if !contacts.is_empty() {
        ingest.apply(EngineEvent::Contacts(contacts)).await?;
    }
    for event in others {
        ingest.apply(event).await?;
    }
    Ok(())
}

/// Consumes forwarded events in order until the engine stops.
pub(super) async fn consume(
    ingest: Ingest,
    current: Arc<tokio::sync::RwLock<Option<Arc<Client>>>>,
    mut queue: mpsc::UnboundedReceiver<Arc<Event>>,
) {
    while let Some(event) = queue.recv().await {
        let client = current.read().await.clone();
        if let Err(err) = handle(&ingest, client, &event).await {
            // The kind only: payloads may hold message text or names.
            tracing::warn!(event = ?event.kind(), error = %err, "could not store a WhatsApp event");
        }
    }
}

async fn handle(
    ingest: &Ingest,
    client: Option<Arc<Client>>,
    event: &Arc<Event>,
) -> Result<(), StoreError> {
    let me = client.as_deref().and_then(own_jid);
    match &**event {
        Event::PairingQrCode(qr) => {
            ingest
                .apply(EngineEvent::QrCode {
                    code: qr.code.clone(),
                    valid_for_secs: qr.timeout.as_secs().max(1),
                })
                .await
        }
        Event::PairSuccess(success) => {
            tracing::info!("the phone accepted the link; connecting with the new identity");
            let phone = success.id.user_base().to_owned();
            let account = Account {
                jid: success.id.to_string(),
                phone,
                push_name: Some(success.business_name.clone()).filter(|n| !n.is_empty()),
            };
            if let (Some(lid), Some(phone)) =
                (convert::jid(&success.lid), convert::jid(&success.id))
                && lid.is_lid()
            {
                ingest.apply(EngineEvent::LidMapping { lid, phone }).await?;
            }
            ingest.apply(EngineEvent::Paired { account }).await
        }
        Event::PairError(error) => {
            tracing::warn!(error = %error.error, "linking failed on the phone's side");
            Ok(())
        }
        Event::Connected(_) => {
            let Some(client) = client else { return Ok(()) };
            let Some(account) = account(&client) else {
                return Ok(());
            };
            tracing::info!(phone = %account.phone, "connected to WhatsApp");
            ingest.apply(EngineEvent::Connected { account }).await?;
            tokio::spawn(after_connect(ingest.clone(), client));
            Ok(())
        }
        Event::Messages(batch) if !batch.hook_committed => {
            store_batch(ingest, &batch.messages, me.as_ref()).await
        }
        Event::HistorySync(lazy) => {
            let progress = lazy.progress().map(|p| p.min(100) as u8);
            let owned = Arc::clone(event);
            let decoded = tokio::task::spawn_blocking(move || match &*owned {
                Event::HistorySync(lazy) => lazy
                    .get()
                    .map(|sync| convert::history_events(sync, me.as_ref(), progress)),
                _ => None,
            })
            .await
            .map_err(|err| StoreError::Other(format!("history sync decoding stopped: {err}")))?;
            let Some(events) = decoded else {
                tracing::warn!("a history sync chunk could not be decoded; it is skipped");
                return Ok(());
            };
            for event in events {
                ingest.apply(event).await?;
            }
            if progress == Some(100) {
                ingest.apply(EngineEvent::HistoryComplete).await?;
            }
            Ok(())
        }
        Event::Receipt(receipt) => match convert::receipt_delivery(receipt) {
            Some(delivery) => ingest.apply(delivery).await,
            None => Ok(()),
        },
        Event::ServerAck(ack) => match convert::ack_delivery(ack) {
            Some(delivery) => ingest.apply(delivery).await,
            None => Ok(()),
        },
        Event::ContactUpdate(update) => {
            let Some(jid) = convert::jid(&update.jid) else {
                return Ok(());
            };
            let action = &update.action;
            if let (Some(lid), Some(phone)) = (
                action.lid_jid.as_deref().and_then(convert::jid_str),
                action.pn_jid.as_deref().and_then(convert::jid_str),
            ) && lid.is_lid()
            {
                ingest.apply(EngineEvent::LidMapping { lid, phone }).await?;
            }
            let mut contact = ContactUpdate::new(jid);
            contact.full_name = action.full_name.clone().filter(|n| !n.trim().is_empty());
            contact.first_name = action.first_name.clone().filter(|n| !n.trim().is_empty());
            ingest.apply(EngineEvent::Contacts(vec![contact])).await
        }
        Event::PushNameUpdate(update) => {
            let Some(jid) = convert::jid(&update.jid) else {
                return Ok(());
            };
            let mut contact = ContactUpdate::new(jid);
            contact.push_name = Some(update.new_push_name.clone()).filter(|n| !n.trim().is_empty());
            ingest.apply(EngineEvent::Contacts(vec![contact])).await
        }
        Event::ContactNumberChanged(change) => {
            if let (Some(lid), Some(phone)) = (
                change.new_lid.as_ref().and_then(convert::jid),
                convert::jid(&change.new_jid),
            ) && lid.is_lid()
            {
                ingest.apply(EngineEvent::LidMapping { lid, phone }).await?;
            }
            Ok(())
        }
        Event::GroupUpdate(update) => {
            if let Some(client) = client {
                let group = update.group_jid.clone();
                let ingest = ingest.clone();
                // Fetched off the event path: a slow query must not hold up the messages queued
                // behind this notification.
                tokio::spawn(async move {
                    if let Err(err) = refresh_group(&ingest, &client, &group).await {
                        tracing::debug!(error = %err, "group metadata not refreshed");
                    }
                });
            }
            Ok(())
        }
        Event::PinUpdate(update) => {
            chat_setting(ingest, &update.jid, |c| c.pinned = update.action.pinned).await
        }
        Event::ArchiveUpdate(update) => {
            chat_setting(ingest, &update.jid, |c| c.archived = update.action.archived).await
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
            chat_setting(ingest, &update.jid, |c| c.muted_until = until).await
        }
        Event::DeleteMessageForMeUpdate(update) => {
            let Some(chat) = convert::jid(&update.chat_jid) else {
                return Ok(());
            };
            ingest
                .apply(EngineEvent::Revoke {
                    chat,
                    message_id: update.message_id.clone(),
                    timestamp: update.timestamp.timestamp(),
                })
                .await
        }
        _ => Ok(()),
    }
}

async fn chat_setting(
    ingest: &Ingest,
    jid: &whatsapp_rust::Jid,
    edit: impl FnOnce(&mut ChatUpdate),
) -> Result<(), StoreError> {
    let Some(jid) = convert::jid(jid) else {
        return Ok(());
    };
    let mut update = ChatUpdate::new(jid);
    edit(&mut update);
    ingest.apply(EngineEvent::Chats(vec![update])).await
}

/// After each connect: every LID link the library knows, and the groups we are in.
async fn after_connect(ingest: Ingest, client: Arc<Client>) {
    match client
        .persistence_manager()
        .backend()
        .get_all_lid_mappings()
        .await
    {
        Ok(mappings) => {
            for mapping in mappings {
                let lid = Jid::parse(&format!("{}@lid", mapping.lid));
                let phone = Jid::from_phone(&mapping.phone_number);
                if let (Ok(lid), Ok(phone)) = (lid, phone)
                    && let Err(err) = ingest.apply(EngineEvent::LidMapping { lid, phone }).await
                {
                    tracing::warn!(error = %err, "could not store a LID link");
                    break;
                }
            }
        }
        Err(err) => tracing::debug!(error = %err, "LID links not readable from the session store"),
    }
    match client.groups().get_participating().await {
        Ok(groups) => {
            for metadata in groups.into_values() {
                if let Err(err) = apply_group(&ingest, &metadata).await {
                    tracing::warn!(error = %err, "could not store group metadata");
                    break;
                }
            }
        }
        Err(err) => tracing::debug!(error = %err, "group list not fetched"),
    }
}

async fn refresh_group(
    ingest: &Ingest,
    client: &Client,
    group: &whatsapp_rust::Jid,
) -> Result<(), String> {
    let metadata = client
        .groups()
        .get_metadata(group)
        .await
        .map_err(|err| err.to_string())?;
    apply_group(ingest, &metadata)
        .await
        .map_err(|err| err.to_string())
}

async fn apply_group(
    ingest: &Ingest,
    metadata: &whatsapp_rust::GroupMetadata,
) -> Result<(), StoreError> {
    let Some(jid) = convert::jid(&metadata.id) else {
        return Ok(());
    };
    let mut participants = Vec::new();
    for member in &metadata.participants {
        let role = if member.is_super_admin() {
            "superadmin"
        } else if member.is_admin() {
            "admin"
        } else {
            "member"
        };
        let lid = member
            .lid
            .as_ref()
            .and_then(convert::jid)
            .filter(Jid::is_lid);
        let phone = member
            .phone_number
            .as_ref()
            .and_then(convert::jid)
            .filter(|j| !j.is_lid());
        let own = convert::jid(&member.jid);
        if let (Some(lid), Some(phone)) = (lid.clone(), phone.clone()) {
            ingest.apply(EngineEvent::LidMapping { lid, phone }).await?;
        }
        if let Some(who) = phone.or(own).or(lid) {
            participants.push((who, role.to_owned()));
        }
    }
    ingest
        .apply(EngineEvent::Group {
            jid,
            name: Some(metadata.subject.clone()).filter(|s| !s.trim().is_empty()),
            participants,
        })
        .await
}
