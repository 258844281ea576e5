//! The archive's SQL for PostgreSQL: the same operations as the SQLite archive, in one
//! transaction per write.

use std::collections::{HashMap, HashSet};

use futures_util::future::try_join_all;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::jid::{ChatKind, Jid};
use crate::store::model::{
    CLAIM_RETENTION_SECS, Chat, ChatQuery, ChatSort, ChatUpdate, Claim, Contact, ContactUpdate,
    Delivery, MAX_PAGE_SIZE, Media, Message, MessageContext, MessageQuery, Neighbours, NewMessage,
    NewPoll, NewPollVote, Page, Participant, Poll, PollVote, Reaction,
};
use crate::store::{CountChange, names_from_json, names_json, search};

type Result<T> = std::result::Result<T, tokio_postgres::Error>;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs a statement through the connection's statement cache: parsed once per pooled
/// connection instead of on every call. For statements of fixed shape, whose best plan does
/// not depend on the values.
async fn query_cached(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = db.prepare_cached(sql).await?;
    db.query(&statement, params).await
}

/// Maps a LID to the phone-number JID it is linked to, if any; other JIDs pass through.
pub(super) async fn canonical(db: &impl GenericClient, jid: &Jid) -> Result<String> {
    if !jid.is_lid() {
        return Ok(jid.as_str().to_owned());
    }
    let row = query_cached(
        db,
        "SELECT jid FROM contacts WHERE lid = $1",
        &[&jid.as_str()],
    )
    .await?
    .pop();
    Ok(row.map_or_else(|| jid.as_str().to_owned(), |row| row.get(0)))
}

async fn refresh_contact_key(db: &impl GenericClient, jid: &str) -> Result<()> {
    let row = db
        .query_opt(
            "SELECT full_name, first_name, push_name, business_name, phone, jid FROM contacts WHERE jid = $1",
            &[&jid],
        )
        .await?;
    if let Some(row) = row {
        let names: Vec<Option<String>> = (0..6).map(|i| row.get(i)).collect();
        let key = search::fold_key(names.iter().flatten().map(String::as_str));
        db.execute(
            "UPDATE contacts SET search_key = $2 WHERE jid = $1",
            &[&jid, &key],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn upsert_contacts(
    db: &impl GenericClient,
    contacts: &[ContactUpdate],
    counts: &mut CountChange,
) -> Result<()> {
    let upsert = db
        .prepare(
            "INSERT INTO contacts (jid, lid, phone, full_name, first_name, push_name, business_name, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (jid) DO UPDATE SET
                 full_name = COALESCE(excluded.full_name, contacts.full_name),
                 first_name = COALESCE(excluded.first_name, contacts.first_name),
                 push_name = COALESCE(excluded.push_name, contacts.push_name),
                 business_name = COALESCE(excluded.business_name, contacts.business_name),
                 updated_at = excluded.updated_at
             RETURNING xmax = 0",
        )
        .await?;
    for contact in contacts {
        let jid = canonical(db, &contact.jid).await?;
        let lid = (contact.jid.is_lid() && contact.jid.as_str() == jid).then_some(jid.as_str());
        let phone = contact.jid.phone();
        let row = db
            .query_one(
                &upsert,
                &[
                    &jid,
                    &lid,
                    &phone,
                    &contact.full_name,
                    &contact.first_name,
                    &contact.push_name,
                    &contact.business_name,
                    &now(),
                ],
            )
            .await?;
        counts.contacts += i64::from(inserted(&row));
        refresh_contact_key(db, &jid).await?;
    }
    Ok(())
}

pub(super) async fn link_lid(
    db: &impl GenericClient,
    lid: &Jid,
    phone: &Jid,
    counts: &mut CountChange,
) -> Result<()> {
    let (lid, phone_jid) = (lid.as_str(), phone.as_str());
    let stamp = now();
    counts.contacts += db.execute(
        "INSERT INTO contacts (jid, phone, updated_at) VALUES ($1, $2, $3) ON CONFLICT (jid) DO NOTHING",
        &[&phone_jid, &phone.phone(), &stamp],
    )
    .await? as i64;
    // The LID chat folds into the phone-number chat before the messages move over.
    let folded = db.query_opt(
        "INSERT INTO chats (jid, kind, name, last_message_at, unread_count, archived, pinned, muted_until, search_key, updated_at)
         SELECT $2, kind, name, last_message_at, unread_count, archived, pinned, muted_until, search_key, $3
         FROM chats WHERE jid = $1
         ON CONFLICT (jid) DO UPDATE SET
             name = COALESCE(chats.name, excluded.name),
             last_message_at = GREATEST(chats.last_message_at, excluded.last_message_at),
             unread_count = chats.unread_count + excluded.unread_count,
             updated_at = excluded.updated_at
         RETURNING xmax = 0",
        &[&lid, &phone_jid, &stamp],
    )
    .await?;
    counts.chats += i64::from(folded.as_ref().is_some_and(inserted));
    // Every remaining step reads "move what is stored under $1 (the LID) to $2 (the number)".
    let steps = [
        // Names learnt while the person was only known by LID move to the phone-number row.
        "UPDATE contacts SET
             full_name = COALESCE(contacts.full_name, old.full_name),
             first_name = COALESCE(contacts.first_name, old.first_name),
             push_name = COALESCE(contacts.push_name, old.push_name),
             business_name = COALESCE(contacts.business_name, old.business_name)
         FROM contacts old WHERE old.jid = $1 AND contacts.jid = $2",
        "UPDATE contacts SET lid = NULL WHERE lid = $1 AND jid <> $2",
        "UPDATE contacts SET lid = $1 WHERE jid = $2",
        "UPDATE messages SET chat_jid = $2 WHERE chat_jid = $1",
        "UPDATE messages SET sender_jid = $2 WHERE sender_jid = $1",
        "UPDATE reactions r SET chat_jid = $2 WHERE r.chat_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM reactions o WHERE o.chat_jid = $2 AND o.message_id = r.message_id AND o.sender_jid = r.sender_jid)",
        "UPDATE reactions r SET sender_jid = $2 WHERE r.sender_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM reactions o WHERE o.chat_jid = r.chat_jid AND o.message_id = r.message_id AND o.sender_jid = $2)",
        "UPDATE group_participants p SET participant_jid = $2 WHERE p.participant_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM group_participants o WHERE o.group_jid = p.group_jid AND o.participant_jid = $2)",
        "UPDATE polls p SET chat_jid = $2 WHERE p.chat_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM polls o WHERE o.chat_jid = $2 AND o.message_id = p.message_id)",
        "UPDATE poll_votes v SET chat_jid = $2 WHERE v.chat_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM poll_votes o WHERE o.chat_jid = $2 AND o.message_id = v.message_id AND o.voter_jid = v.voter_jid)",
        "UPDATE poll_votes v SET voter_jid = $2 WHERE v.voter_jid = $1 AND NOT EXISTS (
             SELECT 1 FROM poll_votes o WHERE o.chat_jid = v.chat_jid AND o.message_id = v.message_id AND o.voter_jid = $2)",
    ];
    // A message stored under both addresses is kept once (the phone-number copy).
    counts.messages -= db
        .execute(
            "DELETE FROM messages WHERE chat_jid = $1 AND id IN (SELECT id FROM messages WHERE chat_jid = $2)",
            &[&lid, &phone_jid],
        )
        .await? as i64;
    for sql in steps {
        db.execute(sql, &[&lid, &phone_jid]).await?;
    }
    // What could not move (the number already had the same row) is dropped with the LID.
    counts.contacts -= db
        .execute("DELETE FROM contacts WHERE jid = $1", &[&lid])
        .await? as i64;
    for sql in [
        "DELETE FROM reactions WHERE chat_jid = $1 OR sender_jid = $1",
        "DELETE FROM group_participants WHERE participant_jid = $1",
        "DELETE FROM polls WHERE chat_jid = $1",
        "DELETE FROM poll_votes WHERE chat_jid = $1 OR voter_jid = $1",
    ] {
        db.execute(sql, &[&lid]).await?;
    }
    counts.chats -= db
        .execute("DELETE FROM chats WHERE jid = $1", &[&lid])
        .await? as i64;
    refresh_contact_key(db, phone_jid).await
}

/// Whether an upsert's `RETURNING xmax = 0` row was inserted rather than updated: a row version
/// written by `ON CONFLICT DO UPDATE` carries the lock the update took in `xmax`.
fn inserted(row: &Row) -> bool {
    row.get(0)
}

/// Creates the chat if the archive lacks it, else moves its last activity forward; true when
/// it was created.
async fn ensure_chat(
    db: &impl GenericClient,
    jid: &str,
    kind: ChatKind,
    last: Option<i64>,
) -> Result<bool> {
    let row = db
        .query_one(
            "INSERT INTO chats (jid, kind, last_message_at, search_key, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (jid) DO UPDATE SET
                 last_message_at = GREATEST(chats.last_message_at, excluded.last_message_at)
             RETURNING xmax = 0",
            &[&jid, &kind.as_str(), &last, &search::fold_key([jid]), &now()],
        )
        .await?;
    Ok(inserted(&row))
}

pub(super) async fn upsert_chats(
    db: &impl GenericClient,
    chats: &[ChatUpdate],
    counts: &mut CountChange,
) -> Result<()> {
    for chat in chats {
        let jid = canonical(db, &chat.jid).await?;
        counts.chats += i64::from(ensure_chat(db, &jid, chat.jid.chat_kind(), None).await?);
        let unread = chat.unread_count.map(i64::from);
        let name: Option<String> = db
            .query_one(
                "UPDATE chats SET
                     name = COALESCE($2, name),
                     last_message_at = GREATEST(last_message_at, $3),
                     unread_count = COALESCE($4, unread_count),
                     archived = COALESCE($5, archived),
                     pinned = COALESCE($6, pinned),
                     muted_until = CASE WHEN $7::BIGINT IS NULL THEN muted_until WHEN $7 = 0 THEN NULL ELSE $7 END,
                     updated_at = $8
                 WHERE jid = $1 RETURNING name",
                &[
                    &jid,
                    &chat.name,
                    &chat.last_message_at,
                    &unread,
                    &chat.archived,
                    &chat.pinned,
                    &chat.muted_until,
                    &now(),
                ],
            )
            .await?
            .get(0);
        let key = search::fold_key(name.as_deref().into_iter().chain([jid.as_str()]));
        db.execute(
            "UPDATE chats SET search_key = $2 WHERE jid = $1",
            &[&jid, &key],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn insert_messages(
    db: &impl GenericClient,
    messages: &[NewMessage],
    counts: &mut CountChange,
) -> Result<u64> {
    let mut canonical_of: HashMap<&Jid, String> = HashMap::new();
    let mut newest: HashMap<String, (ChatKind, i64)> = HashMap::new();
    for message in messages {
        for jid in std::iter::once(&message.chat).chain(message.sender.as_ref()) {
            if !canonical_of.contains_key(jid) {
                let resolved = canonical(db, jid).await?;
                canonical_of.insert(jid, resolved);
            }
        }
        let entry = newest
            .entry(canonical_of[&message.chat].clone())
            .or_insert((message.chat.chat_kind(), message.timestamp));
        entry.1 = entry.1.max(message.timestamp);
    }
    // Sorted so concurrent writers touch chats in the same order and cannot deadlock.
    let mut chats: Vec<_> = newest.into_iter().collect();
    chats.sort_by(|a, b| a.0.cmp(&b.0));
    // Issued together, tokio-postgres pipelines them: one round trip for all the chats.
    let created = try_join_all(
        chats
            .iter()
            .map(|(chat, (kind, last))| ensure_chat(db, chat, *kind, Some(*last))),
    )
    .await?;
    counts.chats += created.into_iter().filter(|&new| new).count() as i64;
    let rows: Vec<MessageRow<'_>> = messages
        .iter()
        .map(|message| MessageRow::new(message, &canonical_of))
        .collect();
    // The first copy of each message goes into one multi-row INSERT: a chunk costs one round
    // trip instead of one per message. Copies the archive already has, and later copies within
    // the chunk, only fill in what the stored row lacks, in the order they came.
    let mut seen = HashSet::new();
    let first_copy: Vec<bool> = rows
        .iter()
        .map(|row| seen.insert((row.chat, row.id)))
        .collect();
    let fresh: Vec<&MessageRow<'_>> = rows
        .iter()
        .zip(&first_copy)
        .filter_map(|(row, first)| first.then_some(row))
        .collect();
    let inserted: HashSet<(String, String)> = bulk_insert(db, &fresh).await?.into_iter().collect();
    counts.messages += inserted.len() as i64;
    let known: Vec<&MessageRow<'_>> = rows
        .iter()
        .zip(&first_copy)
        .filter_map(|(row, first)| {
            let new_row = *first && inserted.contains(&(row.chat.to_owned(), row.id.to_owned()));
            (!new_row).then_some(row)
        })
        .collect();
    if known.is_empty() {
        return Ok(inserted.len() as u64);
    }
    let fill = db
        .prepare(
            "UPDATE messages SET
                 sender_jid = COALESCE(sender_jid, $3),
                 text = COALESCE(text, $6),
                 caption = COALESCE(caption, $7),
                 quoted_id = COALESCE(quoted_id, $8),
                 media_type = COALESCE(media_type, $9),
                 file_name = COALESCE(file_name, $10),
                 mime_type = COALESCE(mime_type, $11),
                 file_length = COALESCE(file_length, $12),
                 media_url = COALESCE(media_url, $13),
                 direct_path = COALESCE(direct_path, $14),
                 media_key = COALESCE(media_key, $15),
                 file_sha256 = COALESCE(file_sha256, $16),
                 file_enc_sha256 = COALESCE(file_enc_sha256, $17)
             WHERE chat_jid = $1 AND id = $2 AND deleted_at IS NULL
               AND $4::BIGINT IS NOT NULL AND $5::BOOLEAN IS NOT NULL AND $18::TEXT IS NOT NULL",
        )
        .await?;
    for row in known {
        let values = row.values();
        if db.execute(&fill, &values).await? == 1 {
            // The stored row may have gained text or a caption: search what it now says.
            let stored = db
                .query_one(
                    "SELECT text, caption, file_name FROM messages WHERE chat_jid = $1 AND id = $2",
                    &[&row.chat, &row.id],
                )
                .await?;
            let text = search::message_search_text([stored.get(0), stored.get(1), stored.get(2)]);
            db.execute(
                "UPDATE messages SET search_text = $3 WHERE chat_jid = $1 AND id = $2 AND search_text <> $3",
                &[&row.chat, &row.id, &text],
            )
            .await?;
        }
    }
    Ok(inserted.len() as u64)
}

/// A message's column values as `insert_messages` writes them, borrowed from the message.
struct MessageRow<'a> {
    chat: &'a str,
    id: &'a str,
    sender: Option<&'a str>,
    timestamp: i64,
    from_me: bool,
    text: Option<&'a str>,
    caption: Option<&'a str>,
    quoted_id: Option<&'a str>,
    media_type: Option<&'a str>,
    file_name: Option<&'a str>,
    mime_type: Option<&'a str>,
    file_length: Option<i64>,
    url: Option<&'a str>,
    direct_path: Option<&'a str>,
    media_key: Option<&'a [u8]>,
    file_sha256: Option<&'a [u8]>,
    file_enc_sha256: Option<&'a [u8]>,
    search_text: String,
}

impl<'a> MessageRow<'a> {
    fn new(message: &'a NewMessage, canonical_of: &'a HashMap<&Jid, String>) -> Self {
        let media = message.media.as_ref();
        let file_name = media.and_then(|m| m.file_name.as_deref());
        MessageRow {
            chat: &canonical_of[&message.chat],
            id: &message.id,
            sender: message.sender.as_ref().map(|s| canonical_of[s].as_str()),
            timestamp: message.timestamp,
            from_me: message.from_me,
            text: message.text.as_deref(),
            caption: message.caption.as_deref(),
            quoted_id: message.quoted_id.as_deref(),
            media_type: media.map(|m| m.media_type.as_str()),
            file_name,
            mime_type: media.and_then(|m| m.mime_type.as_deref()),
            file_length: media.and_then(|m| m.file_length).map(|n| n as i64),
            url: media.and_then(|m| m.url.as_deref()),
            direct_path: media.and_then(|m| m.direct_path.as_deref()),
            media_key: media.and_then(|m| m.media_key.as_deref()),
            file_sha256: media.and_then(|m| m.file_sha256.as_deref()),
            file_enc_sha256: media.and_then(|m| m.file_enc_sha256.as_deref()),
            search_text: search::message_search_text([
                message.text.as_deref(),
                message.caption.as_deref(),
                file_name,
            ]),
        }
    }

    /// The values in the column order of `insert_messages`' statements ($1 … $18).
    fn values(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.chat,
            &self.id,
            &self.sender,
            &self.timestamp,
            &self.from_me,
            &self.text,
            &self.caption,
            &self.quoted_id,
            &self.media_type,
            &self.file_name,
            &self.mime_type,
            &self.file_length,
            &self.url,
            &self.direct_path,
            &self.media_key,
            &self.file_sha256,
            &self.file_enc_sha256,
            &self.search_text,
        ]
    }
}

/// Inserts rows the archive may not have yet in one statement, column by column through
/// `unnest`; returns the (chat, id) of the rows it inserted.
async fn bulk_insert(
    db: &impl GenericClient,
    rows: &[&MessageRow<'_>],
) -> Result<Vec<(String, String)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    fn column<'r, T>(rows: &[&'r MessageRow<'_>], f: impl Fn(&'r MessageRow<'_>) -> T) -> Vec<T> {
        rows.iter().map(|row| f(row)).collect()
    }
    let chats = column(rows, |r| r.chat);
    let ids = column(rows, |r| r.id);
    let senders = column(rows, |r| r.sender);
    let timestamps = column(rows, |r| r.timestamp);
    let from_me = column(rows, |r| r.from_me);
    let texts = column(rows, |r| r.text);
    let captions = column(rows, |r| r.caption);
    let quoted = column(rows, |r| r.quoted_id);
    let media_types = column(rows, |r| r.media_type);
    let file_names = column(rows, |r| r.file_name);
    let mime_types = column(rows, |r| r.mime_type);
    let file_lengths = column(rows, |r| r.file_length);
    let urls = column(rows, |r| r.url);
    let direct_paths = column(rows, |r| r.direct_path);
    let media_keys = column(rows, |r| r.media_key);
    let sha256s = column(rows, |r| r.file_sha256);
    let enc_sha256s = column(rows, |r| r.file_enc_sha256);
    let search_texts = column(rows, |r| r.search_text.as_str());
    let inserted = db
        .query(
            "INSERT INTO messages (chat_jid, id, sender_jid, timestamp, from_me, text, caption, quoted_id,
                 media_type, file_name, mime_type, file_length, media_url, direct_path, media_key,
                 file_sha256, file_enc_sha256, search_text)
             SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[],
                 $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::BIGINT[],
                 $13::TEXT[], $14::TEXT[], $15::BYTEA[], $16::BYTEA[], $17::BYTEA[], $18::TEXT[])
             ON CONFLICT (chat_jid, id) DO NOTHING
             RETURNING chat_jid, id",
            &[
                &chats,
                &ids,
                &senders,
                &timestamps,
                &from_me,
                &texts,
                &captions,
                &quoted,
                &media_types,
                &file_names,
                &mime_types,
                &file_lengths,
                &urls,
                &direct_paths,
                &media_keys,
                &sha256s,
                &enc_sha256s,
                &search_texts,
            ],
        )
        .await?;
    Ok(inserted
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub(super) async fn edit_message(
    db: &impl GenericClient,
    chat: &Jid,
    id: &str,
    text: &str,
    edited_at: i64,
) -> Result<u64> {
    let chat = canonical(db, chat).await?;
    let row = db
        .query_opt(
            "UPDATE messages SET
                 text = CASE WHEN media_type IS NULL THEN $3 ELSE text END,
                 caption = CASE WHEN media_type IS NULL THEN caption ELSE $3 END,
                 edited_at = $4
             WHERE chat_jid = $1 AND id = $2 AND deleted_at IS NULL
             RETURNING text, caption, file_name",
            &[&chat, &id, &text, &edited_at],
        )
        .await?;
    let Some(row) = row else { return Ok(0) };
    let search_text = search::message_search_text([row.get(0), row.get(1), row.get(2)]);
    db.execute(
        "UPDATE messages SET search_text = $3 WHERE chat_jid = $1 AND id = $2",
        &[&chat, &id, &search_text],
    )
    .await?;
    Ok(1)
}

pub(super) async fn delete_message(
    db: &impl GenericClient,
    chat: &Jid,
    id: &str,
    deleted_at: i64,
) -> Result<u64> {
    let chat = canonical(db, chat).await?;
    db.execute(
        "UPDATE messages SET text = NULL, caption = NULL, search_text = '', deleted_at = $3
         WHERE chat_jid = $1 AND id = $2",
        &[&chat, &id, &deleted_at],
    )
    .await
}

pub(super) async fn set_delivery(
    db: &impl GenericClient,
    chat: &Jid,
    ids: &[String],
    delivery: Delivery,
) -> Result<u64> {
    let chat = canonical(db, chat).await?;
    db.execute(
        "UPDATE messages SET delivery = $3
         WHERE chat_jid = $1 AND id = ANY($2) AND from_me AND (delivery IS NULL OR delivery < $3)",
        &[&chat, &ids, &delivery.rank()],
    )
    .await
}

pub(super) async fn set_reaction(
    db: &impl GenericClient,
    chat: &Jid,
    message_id: &str,
    sender: &Jid,
    emoji: &str,
    timestamp: i64,
) -> Result<()> {
    let chat = canonical(db, chat).await?;
    let sender = canonical(db, sender).await?;
    if emoji.is_empty() {
        db.execute(
            "DELETE FROM reactions WHERE chat_jid = $1 AND message_id = $2 AND sender_jid = $3",
            &[&chat, &message_id, &sender],
        )
        .await?;
    } else {
        db.execute(
            "INSERT INTO reactions (chat_jid, message_id, sender_jid, emoji, timestamp)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (chat_jid, message_id, sender_jid) DO UPDATE SET
                 emoji = excluded.emoji, timestamp = excluded.timestamp
             WHERE excluded.timestamp >= reactions.timestamp",
            &[&chat, &message_id, &sender, &emoji, &timestamp],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn record_poll(db: &impl GenericClient, poll: &NewPoll) -> Result<()> {
    let chat = canonical(db, &poll.chat).await?;
    db.execute(
        "INSERT INTO polls (chat_jid, message_id, question, options, selectable, secret)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (chat_jid, message_id) DO UPDATE SET
             secret = COALESCE(polls.secret, excluded.secret)",
        &[
            &chat,
            &poll.message_id,
            &poll.question,
            &names_json(&poll.options),
            &i64::from(poll.selectable),
            &poll.secret,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn set_poll_vote(db: &impl GenericClient, vote: &NewPollVote) -> Result<()> {
    let chat = canonical(db, &vote.chat).await?;
    let voter = canonical(db, &vote.voter).await?;
    db.execute(
        "INSERT INTO poll_votes (chat_jid, message_id, voter_jid, options, timestamp)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (chat_jid, message_id, voter_jid) DO UPDATE SET
             options = excluded.options, timestamp = excluded.timestamp
         WHERE excluded.timestamp >= poll_votes.timestamp",
        &[
            &chat,
            &vote.poll_id,
            &voter,
            &names_json(&vote.options),
            &vote.timestamp,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn poll(
    db: &impl GenericClient,
    chat: &Jid,
    message_id: &str,
) -> Result<Option<Poll>> {
    let chat = canonical(db, chat).await?;
    let Some(row) = db
        .query_opt(
            "SELECT question, options, selectable, secret FROM polls
             WHERE chat_jid = $1 AND message_id = $2",
            &[&chat, &message_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT v.voter_jid, {CONTACT_NAME_SC}, v.options, v.timestamp
         FROM poll_votes v LEFT JOIN contacts sc ON sc.jid = v.voter_jid
         WHERE v.chat_jid = $1 AND v.message_id = $2 AND v.options <> '[]'
         ORDER BY v.timestamp, v.voter_jid"
    );
    let votes = db
        .query(&sql, &[&chat, &message_id])
        .await?
        .iter()
        .map(|vote| PollVote {
            voter_jid: vote.get(0),
            voter_name: vote.get(1),
            options: names_from_json(vote.get(2)),
            timestamp: vote.get(3),
        })
        .collect();
    Ok(Some(Poll {
        question: row.get(0),
        options: names_from_json(row.get(1)),
        selectable: u32::try_from(row.get::<_, i64>(2)).unwrap_or(0),
        secret: row.get(3),
        votes,
        chat_jid: chat,
        message_id: message_id.to_owned(),
    }))
}

pub(super) async fn set_participants(
    db: &impl GenericClient,
    group: &Jid,
    participants: &[(Jid, String)],
    counts: &mut CountChange,
) -> Result<()> {
    let group = canonical(db, group).await?;
    counts.chats += i64::from(ensure_chat(db, &group, ChatKind::Group, None).await?);
    db.execute(
        "DELETE FROM group_participants WHERE group_jid = $1",
        &[&group],
    )
    .await?;
    for (jid, role) in participants {
        let member = canonical(db, jid).await?;
        db.execute(
            "INSERT INTO group_participants (group_jid, participant_jid, role) VALUES ($1, $2, $3)
             ON CONFLICT (group_jid, participant_jid) DO UPDATE SET role = excluded.role",
            &[&group, &member, role],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn clear_archive(db: &impl GenericClient) -> Result<()> {
    db.batch_execute(
        "TRUNCATE reactions, polls, poll_votes, group_participants, messages, chats, contacts,
                  sync_state, tool_requests;
         UPDATE archive_counts SET messages = 0, chats = 0, contacts = 0",
    )
    .await
}

/// Adds one transaction's tally to the stored counts (see V3__archive_counts.sql). Run last
/// before the commit: concurrent writers wait for the row only from here to their commit.
pub(super) async fn add_counts(db: &impl GenericClient, counts: CountChange) -> Result<()> {
    if !counts.is_none() {
        query_cached(
            db,
            "UPDATE archive_counts SET
                 messages = messages + $1, chats = chats + $2, contacts = contacts + $3",
            &[&counts.messages, &counts.chats, &counts.contacts],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn set_sync_state(db: &impl GenericClient, key: &str, value: &str) -> Result<()> {
    db.execute(
        "INSERT INTO sync_state (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

/// See [`crate::store::Store::claim_request`].
pub(super) async fn claim_request(
    db: &impl GenericClient,
    key: &str,
    tool: &str,
    now: i64,
) -> Result<Claim> {
    db.execute(
        "DELETE FROM tool_requests WHERE started_at < $1",
        &[&(now - CLAIM_RETENTION_SECS)],
    )
    .await?;
    let claimed = db
        .execute(
            "INSERT INTO tool_requests (request_key, tool, started_at) VALUES ($1, $2, $3)
             ON CONFLICT (request_key) DO NOTHING",
            &[&key, &tool, &now],
        )
        .await?;
    if claimed == 1 {
        return Ok(Claim::New);
    }
    let row = db
        .query_one(
            "SELECT tool, started_at, outcome FROM tool_requests WHERE request_key = $1",
            &[&key],
        )
        .await?;
    Ok(Claim::Taken {
        tool: row.get(0),
        started_at: row.get(1),
        outcome: row.get(2),
    })
}

pub(super) async fn finish_request(
    db: &impl GenericClient,
    key: &str,
    outcome: &str,
) -> Result<()> {
    db.execute(
        "UPDATE tool_requests SET outcome = $2 WHERE request_key = $1",
        &[&key, &outcome],
    )
    .await?;
    Ok(())
}

pub(super) async fn release_request(db: &impl GenericClient, key: &str) -> Result<()> {
    db.execute(
        "DELETE FROM tool_requests WHERE request_key = $1 AND outcome IS NULL",
        &[&key],
    )
    .await?;
    Ok(())
}

pub(super) async fn sync_state(db: &impl GenericClient, key: &str) -> Result<Option<String>> {
    Ok(db
        .query_opt("SELECT value FROM sync_state WHERE key = $1", &[&key])
        .await?
        .map(|row| row.get(0)))
}

// --- reads -------------------------------------------------------------------------------------

const CONTACT_NAME_SC: &str =
    "COALESCE(sc.full_name, sc.first_name, sc.business_name, sc.push_name)";

/// The columns `message_row` reads, in its order; `MESSAGE_FROM` provides the tables.
const MESSAGE_COLUMNS: &str =
    "m.chat_jid, COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name),
     m.id, m.sender_jid, COALESCE(sc.full_name, sc.first_name, sc.business_name, sc.push_name),
     m.timestamp, m.from_me, m.text, m.caption, m.quoted_id, m.media_type, m.file_name, m.mime_type,
     m.file_length, m.media_url, m.direct_path, m.media_key, m.file_sha256, m.file_enc_sha256,
     m.edited_at, m.deleted_at, m.delivery";

const MESSAGE_FROM: &str = "FROM messages m
     JOIN chats c ON c.jid = m.chat_jid
     LEFT JOIN contacts cc ON cc.jid = m.chat_jid
     LEFT JOIN contacts sc ON sc.jid = m.sender_jid";

fn message_row(row: &Row) -> Message {
    let media = row.get::<_, Option<String>>(10).map(|media_type| Media {
        media_type,
        file_name: row.get(11),
        mime_type: row.get(12),
        file_length: row.get::<_, Option<i64>>(13).map(|n| n.max(0) as u64),
        url: row.get(14),
        direct_path: row.get(15),
        media_key: row.get(16),
        file_sha256: row.get(17),
        file_enc_sha256: row.get(18),
    });
    Message {
        chat_jid: row.get(0),
        chat_name: row.get(1),
        id: row.get(2),
        sender_jid: row.get(3),
        sender_name: row.get(4),
        timestamp: row.get(5),
        from_me: row.get(6),
        text: row.get(7),
        caption: row.get(8),
        quoted_id: row.get(9),
        media,
        edited_at: row.get(19),
        deleted_at: row.get(20),
        delivery: row
            .get::<_, Option<i16>>(21)
            .and_then(|r| Delivery::from_rank(r.into())),
        reactions: Vec::new(),
    }
}

async fn with_reactions(
    db: &impl GenericClient,
    mut messages: Vec<Message>,
) -> Result<Vec<Message>> {
    if messages.is_empty() {
        return Ok(messages);
    }
    // One query for the reactions of all the messages, whatever their number.
    let chats: Vec<&str> = messages.iter().map(|m| m.chat_jid.as_str()).collect();
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let sql = format!(
        "SELECT r.chat_jid, r.message_id, r.sender_jid, {CONTACT_NAME_SC}, r.emoji, r.timestamp
         FROM reactions r LEFT JOIN contacts sc ON sc.jid = r.sender_jid
         WHERE (r.chat_jid, r.message_id) IN (SELECT * FROM unnest($1::TEXT[], $2::TEXT[]))
         ORDER BY r.timestamp, r.sender_jid"
    );
    let mut reactions: HashMap<(String, String), Vec<Reaction>> = HashMap::new();
    for row in query_cached(db, &sql, &[&chats, &ids]).await? {
        reactions
            .entry((row.get(0), row.get(1)))
            .or_default()
            .push(Reaction {
                sender_jid: row.get(2),
                sender_name: row.get(3),
                emoji: row.get(4),
                timestamp: row.get(5),
            });
    }
    if reactions.is_empty() {
        return Ok(messages);
    }
    for message in &mut messages {
        let key = (message.chat_jid.clone(), message.id.clone());
        if let Some(found) = reactions.get(&key) {
            message.reactions = found.clone();
        }
    }
    Ok(messages)
}

const CHAT_SELECT: &str = "SELECT c.jid, c.kind, COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name),
     c.last_message_at, c.unread_count, c.archived, c.pinned, c.muted_until
     FROM chats c LEFT JOIN contacts cc ON cc.jid = c.jid";

fn chat_row(row: &Row) -> Chat {
    let kind: String = row.get(1);
    Chat {
        jid: row.get(0),
        kind: ChatKind::from_name(&kind).unwrap_or(ChatKind::Direct),
        name: row.get(2),
        last_message_at: row.get(3),
        unread_count: row.get::<_, i64>(4).clamp(0, i64::from(u32::MAX)) as u32,
        archived: row.get(5),
        pinned: row.get(6),
        muted_until: row.get(7),
        last_message: None,
    }
}

/// The newest message of each chat, keyed by chat; chats without messages are absent.
async fn latest_messages(
    db: &impl GenericClient,
    chats: &[&str],
) -> Result<HashMap<String, Message>> {
    if chats.is_empty() {
        return Ok(HashMap::new());
    }
    // One LATERAL probe of the (chat, time) index per chat, all in one statement.
    let sql = format!(
        "WITH newest AS (
             SELECT l.pk FROM unnest($1::TEXT[]) AS x(jid)
             CROSS JOIN LATERAL (
                 SELECT pk FROM messages WHERE chat_jid = x.jid
                 ORDER BY timestamp DESC, pk DESC LIMIT 1
             ) l
         )
         SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} JOIN newest ON newest.pk = m.pk"
    );
    Ok(query_cached(db, &sql, &[&chats])
        .await?
        .iter()
        .map(message_row)
        .map(|message| (message.chat_jid.clone(), message))
        .collect())
}

/// Fills in `last_message` of every chat with one query.
async fn with_last_messages(db: &impl GenericClient, chats: &mut [Chat]) -> Result<()> {
    let jids: Vec<&str> = chats.iter().map(|c| c.jid.as_str()).collect();
    let mut latest = latest_messages(db, &jids).await?;
    for chat in chats {
        chat.last_message = latest.remove(&chat.jid);
    }
    Ok(())
}

pub(super) async fn list_chats(db: &impl GenericClient, query: &ChatQuery) -> Result<Vec<Chat>> {
    let name = "COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name)";
    let order = match query.sort {
        ChatSort::LastActive => "c.last_message_at DESC NULLS LAST, c.jid".to_owned(),
        ChatSort::Name => format!("lower({name}) NULLS LAST, c.jid"),
    };
    let sql = format!(
        "{CHAT_SELECT}
         WHERE ($1::TEXT IS NULL OR c.kind = $1)
           AND ($2::TEXT IS NULL OR c.search_key LIKE $2 OR cc.search_key LIKE $2)
         ORDER BY {order} LIMIT $3 OFFSET $4"
    );
    let pattern = query.query.as_deref().and_then(search::like_pattern);
    let kind = query.kind.map(ChatKind::as_str);
    let rows = db
        .query(
            &sql,
            &[&kind, &pattern, &query.page.limit(), &query.page.offset()],
        )
        .await?;
    let mut chats: Vec<Chat> = rows.iter().map(chat_row).collect();
    if query.include_last_message {
        with_last_messages(db, &mut chats).await?;
    }
    Ok(chats)
}

pub(super) async fn chat(db: &impl GenericClient, jid: &Jid) -> Result<Option<Chat>> {
    let jid = canonical(db, jid).await?;
    let Some(row) = query_cached(db, &format!("{CHAT_SELECT} WHERE c.jid = $1"), &[&jid])
        .await?
        .pop()
    else {
        return Ok(None);
    };
    let mut chat = [chat_row(&row)];
    with_last_messages(db, &mut chat).await?;
    let [chat] = chat;
    Ok(Some(chat))
}

pub(super) async fn list_messages(
    db: &impl GenericClient,
    query: &MessageQuery,
) -> Result<Vec<Message>> {
    let chat = match &query.chat {
        Some(jid) => Some(canonical(db, jid).await?),
        None => None,
    };
    let sender = match &query.sender {
        Some(jid) => Some(canonical(db, jid).await?),
        None => None,
    };
    let patterns = query
        .text
        .as_deref()
        .map(|t| search::TextQuery::parse(t).folded_like_patterns())
        .unwrap_or_default();
    // Only the filters given are written out, numbered as they come, so each combination is
    // one statement shape the connection can keep prepared with a plan that fits it.
    let limit = query.page.limit();
    let offset = query.page.offset();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit, &offset];
    let mut conditions = String::new();
    let filters: [(&str, Option<&(dyn ToSql + Sync)>); 4] = [
        (
            "m.chat_jid =",
            chat.as_ref().map(|c| c as &(dyn ToSql + Sync)),
        ),
        (
            "m.sender_jid =",
            sender.as_ref().map(|s| s as &(dyn ToSql + Sync)),
        ),
        (
            "m.timestamp >",
            query.after.as_ref().map(|t| t as &(dyn ToSql + Sync)),
        ),
        (
            "m.timestamp <",
            query.before.as_ref().map(|t| t as &(dyn ToSql + Sync)),
        ),
    ];
    for (condition, value) in filters {
        if let Some(value) = value {
            params.push(value);
            conditions.push_str(&format!(" AND {condition} ${}", params.len()));
        }
    }
    if patterns.is_empty() {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE TRUE{conditions}
             ORDER BY m.timestamp DESC, m.pk DESC LIMIT $1 OFFSET $2"
        );
        let rows = query_cached(db, &sql, &params).await?;
        return with_reactions(db, rows.iter().map(message_row).collect()).await;
    }

    // A text search first finds the page's row numbers on `messages` alone, then reads those
    // rows with their names: joined before the sort, every match (thousands for a common
    // word) would be joined and read in full to keep twenty.
    let mut matching = String::new();
    for pattern in &patterns {
        params.push(pattern);
        matching.push_str(&format!(" AND m.search_text LIKE ${}", params.len()));
    }
    let anywhere = chat.is_none() && sender.is_none();
    if anywhere {
        // The newest messages are tried first: for a common word the page is among them, a
        // few milliseconds away. The planner cannot tell a common word from a rare one (its
        // estimate for a trigram pattern is rough), and both of its plans are slow for the
        // wrong kind: walking the time index for a rare word, or fetching, rechecking and
        // sorting every match of a common one.
        let probe = format!(
            "SELECT pk FROM (SELECT m.pk, m.timestamp, m.search_text FROM messages m
                             WHERE TRUE{conditions}
                             ORDER BY m.timestamp DESC, m.pk DESC LIMIT {RECENT_PROBE}) m
             WHERE TRUE{matching} ORDER BY m.timestamp DESC, m.pk DESC LIMIT $1::bigint + $2::bigint"
        );
        let found = row_numbers(db, &probe, &params).await?;
        if found.len() as i64 >= limit.saturating_add(offset) {
            let page = found.into_iter().skip(offset.max(0) as usize).collect();
            return messages_by_pk(db, page).await;
        }
    }
    // Fewer matches than a page among the newest messages (or a chat or sender given): the
    // planner chooses between all matches through the trigram index, sorted, and a longer
    // walk back in time. Forcing the trigram index with sequential scans off was tried and
    // measured worse: 517 ms median for `ありがとう` on the benchmark archive, 23–46 ms without.
    let search = format!(
        "SELECT m.pk FROM messages m WHERE TRUE{conditions}{matching}
         ORDER BY m.timestamp DESC, m.pk DESC LIMIT $1 OFFSET $2"
    );
    let page = row_numbers(db, &search, &params).await?;
    messages_by_pk(db, page).await
}

/// The first column of every row `sql` returns: message row numbers.
async fn row_numbers(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<i64>> {
    Ok(db
        .query(sql, params)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Newest messages a search without a chat or sender looks through before using the trigram
/// index: a few milliseconds of reading, enough to fill a page for any common word.
const RECENT_PROBE: i64 = 5_000;

/// The messages with these row numbers, newest first.
async fn messages_by_pk(db: &impl GenericClient, pks: Vec<i64>) -> Result<Vec<Message>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.pk = ANY($1)
         ORDER BY m.timestamp DESC, m.pk DESC"
    );
    let rows = query_cached(db, &sql, &[&pks]).await?;
    with_reactions(db, rows.iter().map(message_row).collect()).await
}

pub(super) async fn messages_by_id(db: &impl GenericClient, id: &str) -> Result<Vec<Message>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.id = $1 ORDER BY m.timestamp DESC LIMIT 5"
    );
    let found = db
        .query(&sql, &[&id])
        .await?
        .iter()
        .map(message_row)
        .collect();
    with_reactions(db, found).await
}

async fn message_in(db: &impl GenericClient, chat: &str, id: &str) -> Result<Option<Message>> {
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.chat_jid = $1 AND m.id = $2");
    let Some(row) = query_cached(db, &sql, &[&chat, &id]).await?.pop() else {
        return Ok(None);
    };
    Ok(with_reactions(db, vec![message_row(&row)]).await?.pop())
}

pub(super) async fn message(
    db: &impl GenericClient,
    chat: &Jid,
    id: &str,
) -> Result<Option<Message>> {
    let chat = canonical(db, chat).await?;
    message_in(db, &chat, id).await
}

pub(super) async fn message_context(
    db: &impl GenericClient,
    chat: &Jid,
    id: &str,
    before: u32,
    after: u32,
) -> Result<Option<MessageContext>> {
    let chat = canonical(db, chat).await?;
    let Some(message) = message_in(db, &chat, id).await? else {
        return Ok(None);
    };
    let key = [(chat, id.to_owned())];
    let Neighbours { before, after } = neighbours(db, &key, before, after)
        .await?
        .pop()
        .unwrap_or_default();
    Ok(Some(MessageContext {
        message,
        before,
        after,
    }))
}

pub(super) async fn neighbours(
    db: &impl GenericClient,
    messages: &[(String, String)],
    before: u32,
    after: u32,
) -> Result<Vec<Neighbours>> {
    let mut found: Vec<Neighbours> = vec![Neighbours::default(); messages.len()];
    if messages.is_empty() || (before == 0 && after == 0) {
        return Ok(found);
    }
    let chats: Vec<&str> = messages.iter().map(|(chat, _)| chat.as_str()).collect();
    let ids: Vec<&str> = messages.iter().map(|(_, id)| id.as_str()).collect();
    let before = i64::from(before.min(MAX_PAGE_SIZE));
    let after = i64::from(after.min(MAX_PAGE_SIZE));
    // Each anchor probes the (chat, time) index twice, older and newer, all in one statement;
    // `ord` says which anchor a row belongs to (neighbouring results share rows).
    let sql = format!(
        "WITH anchor AS (
             SELECT k.ord, m.chat_jid, m.timestamp, m.pk
             FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS k(chat_jid, id, ord)
             JOIN messages m ON m.chat_jid = k.chat_jid AND m.id = k.id
         ),
         near AS (
             SELECT a.ord, FALSE AS newer, o.pk FROM anchor a CROSS JOIN LATERAL (
                 SELECT pk FROM messages
                 WHERE chat_jid = a.chat_jid AND (timestamp, pk) < (a.timestamp, a.pk)
                 ORDER BY timestamp DESC, pk DESC LIMIT $3
             ) o
             UNION ALL
             SELECT a.ord, TRUE, n.pk FROM anchor a CROSS JOIN LATERAL (
                 SELECT pk FROM messages
                 WHERE chat_jid = a.chat_jid AND (timestamp, pk) > (a.timestamp, a.pk)
                 ORDER BY timestamp, pk LIMIT $4
             ) n
         )
         SELECT {MESSAGE_COLUMNS}, near.ord, near.newer {MESSAGE_FROM}
         JOIN near ON near.pk = m.pk
         ORDER BY near.ord, m.timestamp, m.pk"
    );
    let rows = query_cached(db, &sql, &[&chats, &ids, &before, &after]).await?;
    let placed: Vec<(usize, bool)> = rows
        .iter()
        .map(|row| ((row.get::<_, i64>(22) - 1) as usize, row.get(23)))
        .collect();
    let listed = with_reactions(db, rows.iter().map(message_row).collect()).await?;
    for ((ord, newer), message) in placed.into_iter().zip(listed) {
        let slot = &mut found[ord];
        if newer {
            slot.after.push(message);
        } else {
            slot.before.push(message);
        }
    }
    Ok(found)
}

const CONTACT_SELECT: &str =
    "SELECT jid, lid, phone, full_name, first_name, push_name, business_name FROM contacts";

fn contact_row(row: &Row) -> Contact {
    Contact {
        jid: row.get(0),
        lid: row.get(1),
        phone: row.get(2),
        full_name: row.get(3),
        first_name: row.get(4),
        push_name: row.get(5),
        business_name: row.get(6),
    }
}

pub(super) async fn search_contacts(
    db: &impl GenericClient,
    query: &str,
    page: Page,
) -> Result<Vec<Contact>> {
    let Some(pattern) = search::like_pattern(query) else {
        return Ok(Vec::new());
    };
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let digit_pattern = (digits.len() >= 3).then(|| format!("%{digits}%"));
    let sql = format!(
        "{CONTACT_SELECT}
         WHERE search_key LIKE $1 OR ($2::TEXT IS NOT NULL AND phone LIKE $2)
         ORDER BY lower(COALESCE(full_name, first_name, business_name, push_name, phone)) NULLS LAST, jid
         LIMIT $3 OFFSET $4"
    );
    let rows = db
        .query(
            &sql,
            &[&pattern, &digit_pattern, &page.limit(), &page.offset()],
        )
        .await?;
    Ok(rows.iter().map(contact_row).collect())
}

pub(super) async fn contact(db: &impl GenericClient, jid: &Jid) -> Result<Option<Contact>> {
    let jid = canonical(db, jid).await?;
    Ok(db
        .query_opt(&format!("{CONTACT_SELECT} WHERE jid = $1"), &[&jid])
        .await?
        .as_ref()
        .map(contact_row))
}

pub(super) async fn contact_chats(
    db: &impl GenericClient,
    jid: &Jid,
    page: Page,
) -> Result<Vec<Chat>> {
    let jid = canonical(db, jid).await?;
    let sql = format!(
        "{CHAT_SELECT}
         WHERE c.jid = $1
            OR c.jid IN (SELECT DISTINCT chat_jid FROM messages WHERE sender_jid = $1)
            OR c.jid IN (SELECT group_jid FROM group_participants WHERE participant_jid = $1)
         ORDER BY c.last_message_at DESC NULLS LAST, c.jid
         LIMIT $2 OFFSET $3"
    );
    let rows = db
        .query(&sql, &[&jid, &page.limit(), &page.offset()])
        .await?;
    let mut chats: Vec<Chat> = rows.iter().map(chat_row).collect();
    with_last_messages(db, &mut chats).await?;
    Ok(chats)
}

pub(super) async fn last_interaction(
    db: &impl GenericClient,
    jid: &Jid,
) -> Result<Option<Message>> {
    let jid = canonical(db, jid).await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM}
         WHERE m.pk = (SELECT pk FROM (
             (SELECT pk, timestamp FROM messages WHERE chat_jid = $1 ORDER BY timestamp DESC LIMIT 1)
             UNION ALL
             (SELECT pk, timestamp FROM messages WHERE sender_jid = $1 ORDER BY timestamp DESC LIMIT 1)
         ) latest ORDER BY timestamp DESC LIMIT 1)"
    );
    let Some(row) = db.query_opt(&sql, &[&jid]).await? else {
        return Ok(None);
    };
    Ok(with_reactions(db, vec![message_row(&row)]).await?.pop())
}

pub(super) async fn participants(db: &impl GenericClient, group: &Jid) -> Result<Vec<Participant>> {
    let group = canonical(db, group).await?;
    let sql = format!(
        "SELECT p.participant_jid, {CONTACT_NAME_SC}, sc.phone, p.role
         FROM group_participants p LEFT JOIN contacts sc ON sc.jid = p.participant_jid
         WHERE p.group_jid = $1
         ORDER BY CASE p.role WHEN 'superadmin' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, p.participant_jid"
    );
    Ok(db
        .query(&sql, &[&group])
        .await?
        .iter()
        .map(|row| Participant {
            jid: row.get(0),
            name: row.get(1),
            phone: row.get(2),
            role: row.get(3),
        })
        .collect())
}
