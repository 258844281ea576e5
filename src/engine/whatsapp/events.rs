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

use super::convert;
use crate::engine::ingest::{EngineEvent, Ingest};
use crate::jid::Jid;
use crate::state::Account;
use crate::store::StoreError;

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
        let own_lid = client.lid().as_ref().and_then(convert::jid);
        store_batch(&self.ingest, batch, me.as_ref(), own_lid.as_ref())
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

/// Stores one batch of received messages (and what they teach about names and LIDs), then
/// the votes among them, opened with their polls' secrets (a poll asked in the same batch is
/// stored by then). `own_lid` is our own LID, when known, for votes in LID-addressed polls.
pub(super) async fn store_batch(
    ingest: &Ingest,
    batch: &[InboundMessage],
    me: Option<&Jid>,
    own_lid: Option<&Jid>,
) -> Result<(), StoreError> {
    let (events, votes) = convert::inbound(batch, me);
    ingest.apply_all(events).await?;
    for vote in votes {
        if let Some(event) = open_vote(ingest.store(), &vote, me, own_lid).await? {
            ingest.apply(event).await?;
        }
    }
    Ok(())
}

/// `None` for what the archive does not hold.
fn missing<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// A user's phone-number and LID addresses, as far as known.
#[derive(Debug, Default)]
struct Addresses {
    phone: Option<Jid>,
    lid: Option<Jid>,
}

impl Addresses {
    fn of(jids: impl IntoIterator<Item = Jid>) -> Self {
        let mut found = Self::default();
        for jid in jids {
            let slot = if jid.is_lid() {
                &mut found.lid
            } else {
                &mut found.phone
            };
            slot.get_or_insert(jid);
        }
        found
    }

    /// Adds what the archive knows of this person's other address.
    async fn complete(mut self, store: &dyn crate::store::Store) -> Self {
        if let Some(known) = self.phone.clone().or_else(|| self.lid.clone())
            && let Ok(contact) = store.contact(known).await
        {
            let more = Self::of(
                [Some(contact.jid), contact.lid]
                    .into_iter()
                    .flatten()
                    .filter_map(|jid| Jid::parse(&jid).ok()),
            );
            self.phone = self.phone.or(more.phone);
            self.lid = self.lid.or(more.lid);
        }
        self
    }
}

/// Opens `vote` with the secret of its poll: `None` when the archive lacks the poll (older
/// than the archive) or its secret, or when the vote does not open (logged; a vote is not
/// worth keeping a message from the archive for).
async fn open_vote(
    store: &Arc<dyn crate::store::Store>,
    vote: &convert::SealedVote,
    me: Option<&Jid>,
    own_lid: Option<&Jid>,
) -> Result<Option<EngineEvent>, StoreError> {
    let Some(poll) = missing(store.poll(vote.chat.clone(), vote.poll_id.clone()).await)? else {
        return Ok(None);
    };
    let (Some(secret), Some(message)) = (
        poll.secret,
        missing(store.message(vote.chat.clone(), vote.poll_id.clone()).await)?,
    ) else {
        return Ok(None);
    };
    let creator = if message.from_me {
        Addresses::of(me.into_iter().chain(own_lid).cloned())
    } else {
        let author = message
            .sender_jid
            .as_deref()
            .and_then(|j| Jid::parse(j).ok());
        Addresses::of(author).complete(store.as_ref()).await
    };
    let voter = Addresses::of(std::iter::once(vote.voter.clone()).chain(vote.voter_alt.clone()))
        .complete(store.as_ref())
        .await;
    match convert::open_sealed_vote(vote, &secret, &creator_pair(&creator, &voter)) {
        Ok(hashes) => Ok(Some(EngineEvent::PollVote {
            chat: vote.chat.clone(),
            poll_id: vote.poll_id.clone(),
            voter: vote.voter.clone(),
            choice: crate::engine::ingest::VoteChoice::Hashes(hashes),
            timestamp: vote.timestamp,
        })),
        Err(err) => {
            tracing::warn!(poll = %vote.poll_id, error = %err, "a poll vote did not open");
            Ok(None)
        }
    }
}

/// The (author, voter) address pairs a vote may be sealed under: phone numbers, then LIDs.
fn creator_pair(creator: &Addresses, voter: &Addresses) -> Vec<(Jid, Jid)> {
    [
        (creator.phone.clone(), voter.phone.clone()),
        (creator.lid.clone(), voter.lid.clone()),
    ]
    .into_iter()
    .filter_map(|pair| match pair {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    })
    .collect()
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

/// One forwarded event: translated, applied, then whatever it asks of the live client.
async fn handle(
    ingest: &Ingest,
    client: Option<Arc<Client>>,
    event: &Arc<Event>,
) -> Result<(), StoreError> {
    let me = client.as_deref().and_then(own_jid);
    let events = match &**event {
        Event::HistorySync(lazy) => {
            let progress = lazy.progress().map(|p| p.min(100) as u8);
            let mut events = history_chunk(Arc::clone(event), me, progress).await?;
            if progress == Some(100) {
                events.push(EngineEvent::HistoryComplete);
            }
            events
        }
        other => convert::translate(other, me.as_ref(), client.as_deref().and_then(account)),
    };
    ingest.apply_all(events).await?;
    match &**event {
        Event::PairSuccess(_) => {
            tracing::info!("the phone accepted the link; connecting with the new identity");
        }
        Event::PairError(error) => {
            tracing::warn!(error = %error.error, "linking failed on the phone's side");
        }
        Event::Connected(_) => {
            if let Some(client) = client
                && let Some(account) = account(&client)
            {
                tracing::info!(phone = %account.phone, "connected to WhatsApp");
                tokio::spawn(after_connect(ingest.clone(), client));
            }
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
        }
        _ => {}
    }
    Ok(())
}

/// Decodes a history sync chunk off the async runtime (it can be megabytes of protobuf); an
/// undecodable chunk is skipped with a warning.
async fn history_chunk(
    event: Arc<Event>,
    me: Option<Jid>,
    progress: Option<u8>,
) -> Result<Vec<EngineEvent>, StoreError> {
    let decoded = tokio::task::spawn_blocking(move || match &*event {
        Event::HistorySync(lazy) => lazy
            .get()
            .map(|sync| convert::history_events(sync, me.as_ref(), progress)),
        _ => None,
    })
    .await
    .map_err(|err| StoreError::Other(format!("history sync decoding stopped: {err}")))?;
    Ok(decoded.unwrap_or_else(|| {
        tracing::warn!("a history sync chunk could not be decoded; it is skipped");
        Vec::new()
    }))
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
            let links: Vec<_> = mappings
                .into_iter()
                .filter_map(|mapping| {
                    let lid = Jid::parse(&format!("{}@lid", mapping.lid)).ok()?;
                    let phone = Jid::from_phone(&mapping.phone_number).ok()?;
                    Some(EngineEvent::LidMapping { lid, phone })
                })
                .collect();
            if let Err(err) = ingest.apply_all(links).await {
                tracing::warn!(error = %err, "could not store a LID link");
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
    ingest.apply_all(convert::group_events(metadata)).await
}
