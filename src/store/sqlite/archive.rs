//! The archive's SQL for SQLite: writes run inside a caller's transaction, reads on any connection.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::jid::{ChatKind, Jid};
use crate::store::model::{
    CLAIM_RETENTION_SECS, Chat, ChatQuery, ChatSort, ChatUpdate, Claim, Contact, ContactUpdate,
    Delivery, MAX_PAGE_SIZE, Media, Message, MessageContext, MessageQuery, Neighbours, NewMessage,
    NewPoll, NewPollVote, Page, Participant, Poll, PollVote, Reaction,
};
use crate::store::{CountChange, names_from_json, names_json, search};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Maps a LID to the phone-number JID it is linked to, if any; other JIDs pass through.
pub(super) fn canonical(conn: &Connection, jid: &Jid) -> rusqlite::Result<String> {
    if !jid.is_lid() {
        return Ok(jid.as_str().to_owned());
    }
    let phone: Option<String> = conn
        .prepare_cached("SELECT jid FROM contacts WHERE lid = ?1")?
        .query_row([jid.as_str()], |row| row.get(0))
        .optional()?;
    Ok(phone.unwrap_or_else(|| jid.as_str().to_owned()))
}

/// Lower-cased names and number joined, so one LIKE finds a contact by any of them.
fn contact_search_key(conn: &Connection, jid: &str) -> rusqlite::Result<()> {
    let names: Option<Vec<Option<String>>> = conn
        .prepare_cached(
            "SELECT full_name, first_name, push_name, business_name, phone, jid
             FROM contacts WHERE jid = ?1",
        )?
        .query_row([jid], |row| (0..6).map(|i| row.get(i)).collect())
        .optional()?;
    if let Some(names) = names {
        let key = search::fold_key(names.iter().flatten().map(String::as_str));
        conn.prepare_cached("UPDATE contacts SET search_key = ?2 WHERE jid = ?1")?
            .execute(params![jid, key])?;
    }
    Ok(())
}

pub(super) fn upsert_contacts(
    conn: &Connection,
    contacts: &[ContactUpdate],
    counts: &mut CountChange,
) -> rusqlite::Result<()> {
    // Insert, else update: which of the two happened is what the contact count needs.
    let mut insert = conn.prepare_cached(
        "INSERT INTO contacts (jid, lid, phone, full_name, first_name, push_name, business_name, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (jid) DO NOTHING",
    )?;
    let mut update = conn.prepare_cached(
        "UPDATE contacts SET
             full_name = COALESCE(?4, full_name),
             first_name = COALESCE(?5, first_name),
             push_name = COALESCE(?6, push_name),
             business_name = COALESCE(?7, business_name),
             updated_at = ?8
         WHERE jid = ?1",
    )?;
    for contact in contacts {
        let jid = canonical(conn, &contact.jid)?;
        let lid = contact.jid.is_lid().then(|| contact.jid.as_str());
        let lid = lid.filter(|lid| *lid == jid);
        let phone = contact.jid.phone().filter(|_| !contact.jid.is_lid());
        let values = params![
            jid,
            lid,
            phone,
            contact.full_name,
            contact.first_name,
            contact.push_name,
            contact.business_name,
            now()
        ];
        if insert.execute(values)? == 1 {
            counts.contacts += 1;
        } else {
            update.execute(values)?;
        }
        contact_search_key(conn, &jid)?;
    }
    Ok(())
}

pub(super) fn link_lid(
    conn: &Connection,
    lid: &Jid,
    phone: &Jid,
    counts: &mut CountChange,
) -> rusqlite::Result<()> {
    let (lid, phone_jid) = (lid.as_str(), phone.as_str());
    counts.contacts += conn.execute(
        "INSERT INTO contacts (jid, phone, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (jid) DO NOTHING",
        params![phone_jid, phone.phone(), now()],
    )? as i64;
    // Names learnt while the person was only known by LID move to the phone-number row.
    conn.execute(
        "UPDATE contacts SET
             full_name = COALESCE(full_name, (SELECT full_name FROM contacts WHERE jid = ?1)),
             first_name = COALESCE(first_name, (SELECT first_name FROM contacts WHERE jid = ?1)),
             push_name = COALESCE(push_name, (SELECT push_name FROM contacts WHERE jid = ?1)),
             business_name = COALESCE(business_name, (SELECT business_name FROM contacts WHERE jid = ?1))
         WHERE jid = ?2",
        params![lid, phone_jid],
    )?;
    counts.contacts -= conn.execute("DELETE FROM contacts WHERE jid = ?1", [lid])? as i64;
    conn.execute(
        "UPDATE contacts SET lid = NULL WHERE lid = ?1 AND jid <> ?2",
        params![lid, phone_jid],
    )?;
    conn.execute(
        "UPDATE contacts SET lid = ?1 WHERE jid = ?2",
        params![lid, phone_jid],
    )?;
    contact_search_key(conn, phone_jid)?;

    // The LID chat folds into the phone-number chat (a new one only if the number had none).
    let phone_had_chat = conn
        .prepare_cached("SELECT 1 FROM chats WHERE jid = ?1")?
        .exists([phone_jid])?;
    let folded = conn.execute(
        "INSERT INTO chats (jid, kind, name, last_message_at, unread_count, archived, pinned, muted_until, search_key, updated_at)
         SELECT ?2, kind, name, last_message_at, unread_count, archived, pinned, muted_until, search_key, ?3
         FROM chats WHERE jid = ?1
         ON CONFLICT (jid) DO UPDATE SET
             name = COALESCE(chats.name, excluded.name),
             last_message_at = MAX(COALESCE(chats.last_message_at, 0), COALESCE(excluded.last_message_at, 0)),
             unread_count = chats.unread_count + excluded.unread_count,
             updated_at = excluded.updated_at",
        params![lid, phone_jid, now()],
    )?;
    if folded == 1 && !phone_had_chat {
        counts.chats += 1;
    }
    // A message stored under both addresses is kept once (the phone-number copy).
    counts.messages -= conn.execute(
        "DELETE FROM messages WHERE chat_jid = ?1
         AND id IN (SELECT id FROM messages WHERE chat_jid = ?2)",
        params![lid, phone_jid],
    )? as i64;
    conn.execute(
        "UPDATE messages SET chat_jid = ?2 WHERE chat_jid = ?1",
        params![lid, phone_jid],
    )?;
    conn.execute(
        "UPDATE messages SET sender_jid = ?2 WHERE sender_jid = ?1",
        params![lid, phone_jid],
    )?;
    for sql in [
        "UPDATE OR IGNORE reactions SET chat_jid = ?2 WHERE chat_jid = ?1",
        "UPDATE OR IGNORE reactions SET sender_jid = ?2 WHERE sender_jid = ?1",
        "UPDATE OR IGNORE group_participants SET participant_jid = ?2 WHERE participant_jid = ?1",
        "UPDATE OR IGNORE polls SET chat_jid = ?2 WHERE chat_jid = ?1",
        "UPDATE OR IGNORE poll_votes SET chat_jid = ?2 WHERE chat_jid = ?1",
        "UPDATE OR IGNORE poll_votes SET voter_jid = ?2 WHERE voter_jid = ?1",
    ] {
        conn.execute(sql, params![lid, phone_jid])?;
    }
    conn.execute(
        "DELETE FROM reactions WHERE chat_jid = ?1 OR sender_jid = ?1",
        [lid],
    )?;
    conn.execute("DELETE FROM polls WHERE chat_jid = ?1", [lid])?;
    conn.execute(
        "DELETE FROM poll_votes WHERE chat_jid = ?1 OR voter_jid = ?1",
        [lid],
    )?;
    conn.execute(
        "DELETE FROM group_participants WHERE participant_jid = ?1",
        [lid],
    )?;
    counts.chats -= conn.execute("DELETE FROM chats WHERE jid = ?1", [lid])? as i64;
    Ok(())
}

/// Creates the chat if the archive lacks it (counted), else moves its last activity forward.
fn ensure_chat(
    conn: &Connection,
    jid: &str,
    kind: ChatKind,
    last: Option<i64>,
    counts: &mut CountChange,
) -> rusqlite::Result<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO chats (jid, kind, last_message_at, search_key, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (jid) DO NOTHING",
        )?
        .execute(params![jid, kind.as_str(), last, search::fold_key([jid]), now()])?;
    if inserted == 1 {
        counts.chats += 1;
    } else {
        conn.prepare_cached(
            "UPDATE chats SET last_message_at = MAX(COALESCE(last_message_at, 0), COALESCE(?2, 0))
             WHERE jid = ?1",
        )?
        .execute(params![jid, last])?;
    }
    Ok(())
}

pub(super) fn upsert_chats(
    conn: &Connection,
    chats: &[ChatUpdate],
    counts: &mut CountChange,
) -> rusqlite::Result<()> {
    let mut update = conn.prepare_cached(
        "UPDATE chats SET
             name = COALESCE(?2, name),
             last_message_at = MAX(COALESCE(last_message_at, 0), COALESCE(?3, 0)),
             unread_count = COALESCE(?4, unread_count),
             archived = COALESCE(?5, archived),
             pinned = COALESCE(?6, pinned),
             muted_until = CASE WHEN ?7 IS NULL THEN muted_until WHEN ?7 = 0 THEN NULL ELSE ?7 END,
             updated_at = ?8
         WHERE jid = ?1",
    )?;
    for chat in chats {
        let jid = canonical(conn, &chat.jid)?;
        ensure_chat(conn, &jid, chat.jid.chat_kind(), None, counts)?;
        update.execute(params![
            jid,
            chat.name,
            chat.last_message_at,
            chat.unread_count,
            chat.archived,
            chat.pinned,
            chat.muted_until,
            now()
        ])?;
        let name: Option<String> = conn
            .prepare_cached("SELECT name FROM chats WHERE jid = ?1")?
            .query_row([&jid], |row| row.get(0))?;
        conn.prepare_cached("UPDATE chats SET search_key = ?2 WHERE jid = ?1")?
            .execute(params![
                jid,
                search::fold_key(name.as_deref().into_iter().chain([jid.as_str()]))
            ])?;
    }
    Ok(())
}

pub(super) fn insert_messages(
    conn: &Connection,
    messages: &[NewMessage],
    counts: &mut CountChange,
) -> rusqlite::Result<u64> {
    // LID lookups and chat upserts are done once per distinct address, not once per message.
    let mut canonical_of: HashMap<&Jid, String> = HashMap::new();
    let mut newest: HashMap<String, (ChatKind, i64)> = HashMap::new();
    for message in messages {
        for jid in std::iter::once(&message.chat).chain(message.sender.as_ref()) {
            if !canonical_of.contains_key(jid) {
                canonical_of.insert(jid, canonical(conn, jid)?);
            }
        }
        let chat = canonical_of[&message.chat].clone();
        let entry = newest
            .entry(chat)
            .or_insert((message.chat.chat_kind(), message.timestamp));
        entry.1 = entry.1.max(message.timestamp);
    }
    for (chat, (kind, last)) in &newest {
        ensure_chat(conn, chat, *kind, Some(*last), counts)?;
    }

    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (chat_jid, id, sender_jid, timestamp, from_me, text, caption, quoted_id,
             media_type, file_name, mime_type, file_length, media_url, direct_path, media_key,
             file_sha256, file_enc_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (chat_jid, id) DO NOTHING",
    )?;
    // A second delivery fills in what the first lacked; it never revives a deleted message.
    let mut fill = conn.prepare_cached(
        "UPDATE messages SET
             sender_jid = COALESCE(sender_jid, ?3),
             text = COALESCE(text, ?6),
             caption = COALESCE(caption, ?7),
             quoted_id = COALESCE(quoted_id, ?8),
             media_type = COALESCE(media_type, ?9),
             file_name = COALESCE(file_name, ?10),
             mime_type = COALESCE(mime_type, ?11),
             file_length = COALESCE(file_length, ?12),
             media_url = COALESCE(media_url, ?13),
             direct_path = COALESCE(direct_path, ?14),
             media_key = COALESCE(media_key, ?15),
             file_sha256 = COALESCE(file_sha256, ?16),
             file_enc_sha256 = COALESCE(file_enc_sha256, ?17)
         WHERE chat_jid = ?1 AND id = ?2 AND deleted_at IS NULL",
    )?;
    let mut inserted = 0;
    for message in messages {
        let chat = &canonical_of[&message.chat];
        let sender = message.sender.as_ref().map(|s| canonical_of[s].as_str());
        let media = message.media.as_ref();
        let values = params![
            chat,
            message.id,
            sender,
            message.timestamp,
            message.from_me,
            message.text,
            message.caption,
            message.quoted_id,
            media.map(|m| &m.media_type),
            media.and_then(|m| m.file_name.as_ref()),
            media.and_then(|m| m.mime_type.as_ref()),
            media.and_then(|m| m.file_length.map(|n| n as i64)),
            media.and_then(|m| m.url.as_ref()),
            media.and_then(|m| m.direct_path.as_ref()),
            media.and_then(|m| m.media_key.as_ref()),
            media.and_then(|m| m.file_sha256.as_ref()),
            media.and_then(|m| m.file_enc_sha256.as_ref()),
        ];
        if insert.execute(values)? == 1 {
            inserted += 1;
        } else {
            fill.execute(values)?;
        }
    }
    counts.messages += inserted as i64;
    // Live messages become searchable in the same transaction. A large backlog (a history
    // sync) is left to the background indexer, so the archive takes it at full speed.
    if inserted > 0 && search_backlog_bound(conn)? <= INLINE_INDEX_LIMIT {
        index_pending(conn, INLINE_INDEX_LIMIT)?;
    }
    Ok(inserted)
}

/// The most messages a write indexes for search itself; more wait for the background indexer.
const INLINE_INDEX_LIMIT: u64 = 500;

/// An upper bound of the messages not yet in the search index, in two index probes: pk
/// values above the mark (exact unless some of those rows were deleted before being indexed).
pub(super) fn search_backlog_bound(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT MAX(0, COALESCE((SELECT MAX(pk) FROM messages), 0) - indexed_through)
         FROM search_progress",
    )?
    .query_row([], |row| row.get::<_, i64>(0))
    .map(|n| n.max(0) as u64)
}

/// Adds up to `limit` of the oldest messages not yet indexed to the search index and moves the
/// mark past them (see V5__search_backlog.sql). Returns how many were indexed.
pub(super) fn index_pending(conn: &Connection, limit: u64) -> rusqlite::Result<u64> {
    let mark: i64 = conn
        .prepare_cached("SELECT indexed_through FROM search_progress")?
        .query_row([], |row| row.get(0))?;
    let (through, count): (Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT MAX(pk), COUNT(*) FROM
                 (SELECT pk FROM messages WHERE pk > ?1 ORDER BY pk LIMIT ?2)",
        )?
        .query_row(params![mark, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let Some(through) = through else {
        return Ok(0);
    };
    conn.prepare_cached(
        "INSERT INTO messages_fts (rowid, text, caption, file_name)
         SELECT pk, text, caption, file_name FROM messages WHERE pk > ?1 AND pk <= ?2",
    )?
    .execute(params![mark, through])?;
    conn.prepare_cached("UPDATE search_progress SET indexed_through = ?1")?
        .execute([through])?;
    Ok(count as u64)
}

pub(super) fn edit_message(
    conn: &Connection,
    chat: &Jid,
    id: &str,
    text: &str,
    edited_at: i64,
) -> rusqlite::Result<usize> {
    let chat = canonical(conn, chat)?;
    // An edit of a media message changes its caption.
    conn.execute(
        "UPDATE messages SET
             text = CASE WHEN media_type IS NULL THEN ?3 ELSE text END,
             caption = CASE WHEN media_type IS NULL THEN caption ELSE ?3 END,
             edited_at = ?4
         WHERE chat_jid = ?1 AND id = ?2 AND deleted_at IS NULL",
        params![chat, id, text, edited_at],
    )
}

pub(super) fn delete_message(
    conn: &Connection,
    chat: &Jid,
    id: &str,
    deleted_at: i64,
) -> rusqlite::Result<usize> {
    let chat = canonical(conn, chat)?;
    conn.execute(
        "UPDATE messages SET text = NULL, caption = NULL, deleted_at = ?3
         WHERE chat_jid = ?1 AND id = ?2",
        params![chat, id, deleted_at],
    )
}

pub(super) fn set_delivery(
    conn: &Connection,
    chat: &Jid,
    ids: &[String],
    delivery: Delivery,
) -> rusqlite::Result<u64> {
    let chat = canonical(conn, chat)?;
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET delivery = ?3
         WHERE chat_jid = ?1 AND id = ?2 AND from_me AND (delivery IS NULL OR delivery < ?3)",
    )?;
    let mut changed = 0;
    for id in ids {
        changed += stmt.execute(params![chat, id, delivery.rank()])? as u64;
    }
    Ok(changed)
}

pub(super) fn set_reaction(
    conn: &Connection,
    chat: &Jid,
    message_id: &str,
    sender: &Jid,
    emoji: &str,
    timestamp: i64,
) -> rusqlite::Result<()> {
    let chat = canonical(conn, chat)?;
    let sender = canonical(conn, sender)?;
    if emoji.is_empty() {
        conn.execute(
            "DELETE FROM reactions WHERE chat_jid = ?1 AND message_id = ?2 AND sender_jid = ?3",
            params![chat, message_id, sender],
        )?;
    } else {
        conn.execute(
            "INSERT INTO reactions (chat_jid, message_id, sender_jid, emoji, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (chat_jid, message_id, sender_jid) DO UPDATE SET
                 emoji = excluded.emoji, timestamp = excluded.timestamp
             WHERE excluded.timestamp >= reactions.timestamp",
            params![chat, message_id, sender, emoji, timestamp],
        )?;
    }
    Ok(())
}

pub(super) fn record_poll(conn: &Connection, poll: &NewPoll) -> rusqlite::Result<()> {
    let chat = canonical(conn, &poll.chat)?;
    conn.execute(
        "INSERT INTO polls (chat_jid, message_id, question, options, selectable, secret)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (chat_jid, message_id) DO UPDATE SET
             secret = COALESCE(polls.secret, excluded.secret)",
        params![
            chat,
            poll.message_id,
            poll.question,
            names_json(&poll.options),
            poll.selectable,
            poll.secret
        ],
    )?;
    Ok(())
}

pub(super) fn set_poll_vote(conn: &Connection, vote: &NewPollVote) -> rusqlite::Result<()> {
    let chat = canonical(conn, &vote.chat)?;
    let voter = canonical(conn, &vote.voter)?;
    conn.execute(
        "INSERT INTO poll_votes (chat_jid, message_id, voter_jid, options, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (chat_jid, message_id, voter_jid) DO UPDATE SET
             options = excluded.options, timestamp = excluded.timestamp
         WHERE excluded.timestamp >= poll_votes.timestamp",
        params![
            chat,
            vote.poll_id,
            voter,
            names_json(&vote.options),
            vote.timestamp
        ],
    )?;
    Ok(())
}

pub(super) fn set_participants(
    conn: &Connection,
    group: &Jid,
    participants: &[(Jid, String)],
    counts: &mut CountChange,
) -> rusqlite::Result<()> {
    let group = canonical(conn, group)?;
    ensure_chat(conn, &group, ChatKind::Group, None, counts)?;
    conn.execute(
        "DELETE FROM group_participants WHERE group_jid = ?1",
        [&group],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO group_participants (group_jid, participant_jid, role) VALUES (?1, ?2, ?3)",
    )?;
    for (jid, role) in participants {
        insert.execute(params![group, canonical(conn, jid)?, role])?;
    }
    Ok(())
}

pub(super) fn clear_archive(conn: &Connection) -> rusqlite::Result<()> {
    // The search index is emptied in one step; with the mark at 0 first, the delete trigger
    // has no entries left to remove row by row.
    conn.execute_batch(
        "UPDATE search_progress SET indexed_through = 0;
         INSERT INTO messages_fts (messages_fts) VALUES ('delete-all');
         DELETE FROM reactions;
         DELETE FROM polls;
         DELETE FROM poll_votes;
         DELETE FROM group_participants;
         DELETE FROM messages;
         DELETE FROM chats;
         DELETE FROM contacts;
         DELETE FROM sync_state;
         DELETE FROM tool_requests;
         UPDATE archive_counts SET messages = 0, chats = 0, contacts = 0;",
    )
}

/// Adds one transaction's tally to the stored counts (see V6__archive_counts.sql).
pub(super) fn add_counts(conn: &Connection, counts: CountChange) -> rusqlite::Result<()> {
    if !counts.is_none() {
        conn.prepare_cached(
            "UPDATE archive_counts SET
                 messages = messages + ?1, chats = chats + ?2, contacts = contacts + ?3",
        )?
        .execute(params![counts.messages, counts.chats, counts.contacts])?;
    }
    Ok(())
}

/// The stored message, chat and contact counts and the newest message's time (an index probe).
pub(super) fn counts(conn: &Connection) -> rusqlite::Result<(u64, u64, u64, Option<i64>)> {
    conn.prepare_cached(
        "SELECT messages, chats, contacts, (SELECT MAX(timestamp) FROM messages)
         FROM archive_counts",
    )?
    .query_row([], |row| {
        let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
        Ok((count(0)?, count(1)?, count(2)?, row.get(3)?))
    })
}

pub(super) fn set_sync_state(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// See [`crate::store::Store::claim_request`].
pub(super) fn claim_request(
    conn: &Connection,
    key: &str,
    tool: &str,
    now: i64,
) -> rusqlite::Result<Claim> {
    conn.prepare_cached("DELETE FROM tool_requests WHERE started_at < ?1")?
        .execute([now - CLAIM_RETENTION_SECS])?;
    let claimed = conn
        .prepare_cached(
            "INSERT INTO tool_requests (request_key, tool, started_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (request_key) DO NOTHING",
        )?
        .execute(params![key, tool, now])?;
    if claimed == 1 {
        return Ok(Claim::New);
    }
    conn.prepare_cached(
        "SELECT tool, started_at, outcome FROM tool_requests WHERE request_key = ?1",
    )?
    .query_row([key], |row| {
        Ok(Claim::Taken {
            tool: row.get(0)?,
            started_at: row.get(1)?,
            outcome: row.get(2)?,
        })
    })
}

pub(super) fn finish_request(conn: &Connection, key: &str, outcome: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE tool_requests SET outcome = ?2 WHERE request_key = ?1")?
        .execute([key, outcome])?;
    Ok(())
}

pub(super) fn release_request(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM tool_requests WHERE request_key = ?1 AND outcome IS NULL")?
        .execute([key])?;
    Ok(())
}

pub(super) fn sync_state(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM sync_state WHERE key = ?1",
        [key],
        |row| row.get(0),
    )
    .optional()
}

// --- reads -------------------------------------------------------------------------------------

/// The best name for a contact row aliased `alias`.
macro_rules! contact_name {
    ($alias:literal) => {
        concat!(
            "COALESCE(",
            $alias,
            ".full_name, ",
            $alias,
            ".first_name, ",
            $alias,
            ".business_name, ",
            $alias,
            ".push_name)"
        )
    };
}

const MESSAGE_COLUMNS: &str = concat!(
    "m.chat_jid, COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name), m.id, m.sender_jid, ",
    contact_name!("sc"),
    ", m.timestamp, m.from_me, m.text, m.caption, m.quoted_id, m.media_type, m.file_name, m.mime_type, \
     m.file_length, m.media_url, m.direct_path, m.media_key, m.file_sha256, m.file_enc_sha256, \
     m.edited_at, m.deleted_at, m.delivery"
);

const MESSAGE_FROM: &str = "FROM messages m
     JOIN chats c ON c.jid = m.chat_jid
     LEFT JOIN contacts cc ON cc.jid = m.chat_jid
     LEFT JOIN contacts sc ON sc.jid = m.sender_jid";

fn message_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let media_type: Option<String> = row.get(10)?;
    let media = media_type.map(|media_type| -> rusqlite::Result<Media> {
        Ok(Media {
            media_type,
            file_name: row.get(11)?,
            mime_type: row.get(12)?,
            file_length: row.get::<_, Option<i64>>(13)?.map(|n| n.max(0) as u64),
            url: row.get(14)?,
            direct_path: row.get(15)?,
            media_key: row.get(16)?,
            file_sha256: row.get(17)?,
            file_enc_sha256: row.get(18)?,
        })
    });
    Ok(Message {
        chat_jid: row.get(0)?,
        chat_name: row.get(1)?,
        id: row.get(2)?,
        sender_jid: row.get(3)?,
        sender_name: row.get(4)?,
        timestamp: row.get(5)?,
        from_me: row.get(6)?,
        text: row.get(7)?,
        caption: row.get(8)?,
        quoted_id: row.get(9)?,
        media: media.transpose()?,
        edited_at: row.get(19)?,
        deleted_at: row.get(20)?,
        delivery: row.get::<_, Option<i64>>(21)?.and_then(Delivery::from_rank),
        reactions: Vec::new(),
    })
}

fn with_reactions(conn: &Connection, mut messages: Vec<Message>) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT r.sender_jid, ",
        contact_name!("sc"),
        ", r.emoji, r.timestamp FROM reactions r LEFT JOIN contacts sc ON sc.jid = r.sender_jid
         WHERE r.chat_jid = ?1 AND r.message_id = ?2 ORDER BY r.timestamp"
    ))?;
    for message in &mut messages {
        message.reactions = stmt
            .query_map(params![message.chat_jid, message.id], |row| {
                Ok(Reaction {
                    sender_jid: row.get(0)?,
                    sender_name: row.get(1)?,
                    emoji: row.get(2)?,
                    timestamp: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(messages)
}

const CHAT_COLUMNS: &str =
    "c.jid, c.kind, COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name),
     c.last_message_at, c.unread_count, c.archived, c.pinned, c.muted_until";

fn chat_row(row: &Row<'_>) -> rusqlite::Result<Chat> {
    let kind: String = row.get(1)?;
    Ok(Chat {
        jid: row.get(0)?,
        kind: ChatKind::from_name(&kind).unwrap_or(ChatKind::Direct),
        name: row.get(2)?,
        last_message_at: row.get(3)?,
        unread_count: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
        archived: row.get(5)?,
        pinned: row.get(6)?,
        muted_until: row.get(7)?,
        last_message: None,
    })
}

fn latest_message(conn: &Connection, chat: &str) -> rusqlite::Result<Option<Message>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.chat_jid = ?1 ORDER BY m.timestamp DESC, m.pk DESC LIMIT 1"
    );
    conn.prepare_cached(&sql)?
        .query_row([chat], message_row)
        .optional()
}

pub(super) fn list_chats(conn: &Connection, query: &ChatQuery) -> rusqlite::Result<Vec<Chat>> {
    let order = match query.sort {
        ChatSort::LastActive => "c.last_message_at IS NULL, c.last_message_at DESC, c.jid",
        ChatSort::Name => {
            "COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name) IS NULL, \
                           COALESCE(cc.full_name, cc.first_name, cc.business_name, c.name, cc.push_name) COLLATE NOCASE, c.jid"
        }
    };
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM chats c LEFT JOIN contacts cc ON cc.jid = c.jid
         WHERE (?1 IS NULL OR c.kind = ?1)
           AND (?2 IS NULL OR c.search_key LIKE ?2 ESCAPE '\\' OR cc.search_key LIKE ?2 ESCAPE '\\')
         ORDER BY {order} LIMIT ?3 OFFSET ?4"
    );
    let pattern = query.query.as_deref().and_then(search::like_pattern);
    let mut chats: Vec<Chat> = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.kind.map(ChatKind::as_str),
                pattern,
                query.page.limit(),
                query.page.offset()
            ],
            chat_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    if query.include_last_message {
        for chat in &mut chats {
            chat.last_message = latest_message(conn, &chat.jid)?;
        }
    }
    Ok(chats)
}

pub(super) fn chat(conn: &Connection, jid: &Jid) -> rusqlite::Result<Chat> {
    let jid = canonical(conn, jid)?;
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM chats c LEFT JOIN contacts cc ON cc.jid = c.jid WHERE c.jid = ?1"
    );
    let mut chat = conn.prepare_cached(&sql)?.query_row([&jid], chat_row)?;
    chat.last_message = latest_message(conn, &jid)?;
    Ok(chat)
}

pub(super) fn list_messages(
    conn: &Connection,
    query: &MessageQuery,
) -> rusqlite::Result<Vec<Message>> {
    let chat = query
        .chat
        .as_ref()
        .map(|jid| canonical(conn, jid))
        .transpose()?;
    let sender = query
        .sender
        .as_ref()
        .map(|jid| canonical(conn, jid))
        .transpose()?;
    let text = query
        .text
        .as_deref()
        .map(search::TextQuery::parse)
        .filter(|q| !q.is_empty());
    // Only the filters given are written out: with `?1 IS NULL OR m.chat_jid = ?1` SQLite
    // cannot use the chat (or sender) index and walks the whole archive by time instead.
    // Unused numbers stay bound; the statement always uses ?5 and ?6, so they are in range.
    // Full-text matches are looked up first; how many there are decides how to find the
    // newest of them (see `walk_time_index`).
    let matches = match text.as_ref().and_then(search::TextQuery::fts5_match) {
        Some(expression) => {
            let mut pks: Vec<rusqlite::types::Value> = conn
                .prepare_cached("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1")?
                .query_map([expression], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if let Some(text) = &text {
                pks.extend(unindexed_matches(conn, text)?);
            }
            if pks.is_empty() {
                return Ok(Vec::new());
            }
            Some(std::rc::Rc::new(pks))
        }
        None => None,
    };
    let from = match &matches {
        Some(pks)
            if chat.is_none()
                && sender.is_none()
                && walk_time_index(conn, pks.len(), query.page)? =>
        {
            MESSAGE_FROM.replacen(
                "FROM messages m",
                "FROM messages m INDEXED BY messages_by_time",
                1,
            )
        }
        _ => MESSAGE_FROM.to_owned(),
    };
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} {from} WHERE 1 = 1");
    for (given, condition) in [
        (chat.is_some(), " AND m.chat_jid = ?1"),
        (sender.is_some(), " AND m.sender_jid = ?2"),
        (query.after.is_some(), " AND m.timestamp > ?3"),
        (query.before.is_some(), " AND m.timestamp < ?4"),
    ] {
        if given {
            sql.push_str(condition);
        }
    }
    let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(chat),
        Box::new(sender),
        Box::new(query.after),
        Box::new(query.before),
        Box::new(query.page.limit()),
        Box::new(query.page.offset()),
    ];
    if let Some(pks) = matches {
        values.push(Box::new(pks));
        sql.push_str(&format!(" AND m.pk IN rarray(?{})", values.len()));
    }
    if let Some(text) = &text {
        for pattern in text.short_terms_like() {
            values.push(Box::new(pattern));
            let n = values.len();
            sql.push_str(&format!(
                " AND (lower(m.text) LIKE ?{n} ESCAPE '\\' OR lower(m.caption) LIKE ?{n} ESCAPE '\\' \
                 OR lower(m.file_name) LIKE ?{n} ESCAPE '\\')"
            ));
        }
    }
    sql.push_str(" ORDER BY m.timestamp DESC, m.pk DESC LIMIT ?5 OFFSET ?6");
    let mut stmt = conn.prepare_cached(&sql)?;
    let messages = stmt
        .query_map(rusqlite::params_from_iter(values.iter()), message_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    with_reactions(conn, messages)
}

/// Messages above the search index's mark (stored, not yet indexed) that contain every term:
/// a scan of those rows, folded the way the index folds. Usually there are none or a few;
/// during a history sync the scan keeps search complete until the indexer catches up.
fn unindexed_matches(
    conn: &Connection,
    text: &search::TextQuery,
) -> rusqlite::Result<Vec<rusqlite::types::Value>> {
    let patterns = text.folded_like_patterns();
    let mut sql = String::from(
        "SELECT pk FROM (SELECT pk, search_text(text, caption, file_name) AS folded FROM messages
                         WHERE pk > (SELECT indexed_through FROM search_progress))
         WHERE 1 = 1",
    );
    for n in 1..=patterns.len() {
        sql.push_str(&format!(" AND folded LIKE ?{n} ESCAPE '\\'"));
    }
    conn.prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(patterns), |row| row.get(0))?
        .collect()
}

/// Registers `search_text(text, caption, file_name)`: the three fields joined and folded as
/// `search::message_search_text` does, for scanning messages the index has not taken yet.
pub(super) fn register_search_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "search_text",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let field = |i| ctx.get::<Option<String>>(i);
            let (text, caption, file_name) = (field(0)?, field(1)?, field(2)?);
            Ok(search::message_search_text([
                text.as_deref(),
                caption.as_deref(),
                file_name.as_deref(),
            ]))
        },
    )
}

/// Whether the newest `matches` full-text hits of the archive are found faster by walking the
/// time index from the newest message and keeping the hits (cost grows with how far apart the
/// hits are) than by looking up every hit and sorting them (cost grows with their number).
/// Common words take the walk, rare ones the lookup; the walk for a rare word could cross the
/// whole archive.
pub(super) fn walk_time_index(
    conn: &Connection,
    matches: usize,
    page: Page,
) -> rusqlite::Result<bool> {
    // Measured on a million messages: a step along the time index costs about 1/30 of a hit
    // looked up and sorted, so the walk wins once matches² exceeds rows × wanted / 30.
    const LOOKUP_PER_STEP: u64 = 30;
    let rows: i64 = conn.query_row("SELECT COALESCE(MAX(pk), 0) FROM messages", [], |row| {
        row.get(0)
    })?;
    let wanted = page.limit().saturating_add(page.offset()).max(0) as u64;
    let matches = matches as u64;
    Ok(matches
        .saturating_mul(matches)
        .saturating_mul(LOOKUP_PER_STEP)
        > (rows.max(0) as u64).saturating_mul(wanted))
}

pub(super) fn message(conn: &Connection, chat: &Jid, id: &str) -> rusqlite::Result<Message> {
    message_in(conn, &canonical(conn, chat)?, id)
}

pub(super) fn messages_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Message>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.id = ?1 ORDER BY m.timestamp DESC LIMIT 5"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_map([id], message_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    with_reactions(conn, found)
}

fn message_in(conn: &Connection, chat: &str, id: &str) -> rusqlite::Result<Message> {
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM} WHERE m.chat_jid = ?1 AND m.id = ?2");
    let message = conn
        .prepare_cached(&sql)?
        .query_row(params![chat, id], message_row)?;
    Ok(with_reactions(conn, vec![message])?.remove(0))
}

pub(super) fn message_context(
    conn: &Connection,
    chat: &Jid,
    id: &str,
    before: u32,
    after: u32,
) -> rusqlite::Result<MessageContext> {
    let chat = canonical(conn, chat)?;
    let message = message_in(conn, &chat, id)?;
    let Neighbours { before, after } =
        neighbours_of(conn, &chat, id, before, after)?.unwrap_or_default();
    Ok(MessageContext {
        message,
        before,
        after,
    })
}

pub(super) fn neighbours(
    conn: &Connection,
    messages: &[(String, String)],
    before: u32,
    after: u32,
) -> rusqlite::Result<Vec<Neighbours>> {
    messages
        .iter()
        .map(|(chat, id)| Ok(neighbours_of(conn, chat, id, before, after)?.unwrap_or_default()))
        .collect()
}

/// Up to `before` older and `after` newer messages around one message of a stored chat;
/// `None` when the archive does not have that message.
fn neighbours_of(
    conn: &Connection,
    chat: &str,
    id: &str,
    before: u32,
    after: u32,
) -> rusqlite::Result<Option<Neighbours>> {
    if before == 0 && after == 0 {
        return Ok(Some(Neighbours::default()));
    }
    let Some((pk, timestamp)) = conn
        .prepare_cached("SELECT pk, timestamp FROM messages WHERE chat_jid = ?1 AND id = ?2")?
        .query_row(params![chat, id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let older_sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM}
         WHERE m.chat_jid = ?1 AND (m.timestamp < ?2 OR (m.timestamp = ?2 AND m.pk < ?3))
         ORDER BY m.timestamp DESC, m.pk DESC LIMIT ?4"
    );
    let newer_sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM}
         WHERE m.chat_jid = ?1 AND (m.timestamp > ?2 OR (m.timestamp = ?2 AND m.pk > ?3))
         ORDER BY m.timestamp ASC, m.pk ASC LIMIT ?4"
    );
    let mut older: Vec<Message> = conn
        .prepare_cached(&older_sql)?
        .query_map(
            params![chat, timestamp, pk, before.min(MAX_PAGE_SIZE)],
            message_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    older.reverse();
    let newer: Vec<Message> = conn
        .prepare_cached(&newer_sql)?
        .query_map(
            params![chat, timestamp, pk, after.min(MAX_PAGE_SIZE)],
            message_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Neighbours {
        before: with_reactions(conn, older)?,
        after: with_reactions(conn, newer)?,
    }))
}

const CONTACT_COLUMNS: &str = "jid, lid, phone, full_name, first_name, push_name, business_name";

fn contact_row(row: &Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        jid: row.get(0)?,
        lid: row.get(1)?,
        phone: row.get(2)?,
        full_name: row.get(3)?,
        first_name: row.get(4)?,
        push_name: row.get(5)?,
        business_name: row.get(6)?,
    })
}

pub(super) fn search_contacts(
    conn: &Connection,
    query: &str,
    page: Page,
) -> rusqlite::Result<Vec<Contact>> {
    let Some(pattern) = search::like_pattern(query) else {
        return Ok(Vec::new());
    };
    // Digits typed with spaces or dashes ("+31 6 1234") still find the number.
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let digit_pattern = (digits.len() >= 3).then(|| format!("%{digits}%"));
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts
         WHERE search_key LIKE ?1 ESCAPE '\\' OR (?2 IS NOT NULL AND phone LIKE ?2)
         ORDER BY COALESCE(full_name, first_name, business_name, push_name, phone) IS NULL,
                  COALESCE(full_name, first_name, business_name, push_name, phone) COLLATE NOCASE, jid
         LIMIT ?3 OFFSET ?4"
    );
    conn.prepare_cached(&sql)?
        .query_map(
            params![pattern, digit_pattern, page.limit(), page.offset()],
            contact_row,
        )?
        .collect()
}

pub(super) fn contact(conn: &Connection, jid: &Jid) -> rusqlite::Result<Contact> {
    let jid = canonical(conn, jid)?;
    conn.prepare_cached(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE jid = ?1"
    ))?
    .query_row([jid], contact_row)
}

pub(super) fn contact_chats(
    conn: &Connection,
    jid: &Jid,
    page: Page,
) -> rusqlite::Result<Vec<Chat>> {
    let jid = canonical(conn, jid)?;
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM chats c LEFT JOIN contacts cc ON cc.jid = c.jid
         WHERE c.jid = ?1
            OR c.jid IN (SELECT DISTINCT chat_jid FROM messages WHERE sender_jid = ?1)
            OR c.jid IN (SELECT group_jid FROM group_participants WHERE participant_jid = ?1)
         ORDER BY c.last_message_at IS NULL, c.last_message_at DESC, c.jid
         LIMIT ?2 OFFSET ?3"
    );
    let mut chats: Vec<Chat> = conn
        .prepare_cached(&sql)?
        .query_map(params![jid, page.limit(), page.offset()], chat_row)?
        .collect::<rusqlite::Result<_>>()?;
    for chat in &mut chats {
        chat.last_message = latest_message(conn, &chat.jid)?;
    }
    Ok(chats)
}

pub(super) fn last_interaction(conn: &Connection, jid: &Jid) -> rusqlite::Result<Option<Message>> {
    let jid = canonical(conn, jid)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} {MESSAGE_FROM}
         WHERE m.pk = (SELECT pk FROM (
             SELECT pk, timestamp FROM (SELECT pk, timestamp FROM messages WHERE chat_jid = ?1 ORDER BY timestamp DESC LIMIT 1)
             UNION ALL
             SELECT pk, timestamp FROM (SELECT pk, timestamp FROM messages WHERE sender_jid = ?1 ORDER BY timestamp DESC LIMIT 1)
         ) ORDER BY timestamp DESC LIMIT 1)"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row([jid], message_row)
        .optional()?;
    found
        .map(|m| with_reactions(conn, vec![m]).map(|mut v| v.remove(0)))
        .transpose()
}

pub(super) fn participants(conn: &Connection, group: &Jid) -> rusqlite::Result<Vec<Participant>> {
    let group = canonical(conn, group)?;
    conn.prepare_cached(concat!(
        "SELECT p.participant_jid, ",
        contact_name!("sc"),
        ", sc.phone, p.role FROM group_participants p LEFT JOIN contacts sc ON sc.jid = p.participant_jid
         WHERE p.group_jid = ?1
         ORDER BY CASE p.role WHEN 'superadmin' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, p.participant_jid"
    ))?
    .query_map([group], |row| {
        Ok(Participant {
            jid: row.get(0)?,
            name: row.get(1)?,
            phone: row.get(2)?,
            role: row.get(3)?,
        })
    })?
    .collect()
}

pub(super) fn poll(conn: &Connection, chat: &Jid, message_id: &str) -> rusqlite::Result<Poll> {
    let chat = canonical(conn, chat)?;
    let mut poll = conn
        .prepare_cached(
            "SELECT question, options, selectable, secret FROM polls
             WHERE chat_jid = ?1 AND message_id = ?2",
        )?
        .query_row(params![chat, message_id], |row| {
            Ok(Poll {
                chat_jid: chat.clone(),
                message_id: message_id.to_owned(),
                question: row.get(0)?,
                options: names_from_json(&row.get::<_, String>(1)?),
                selectable: row.get(2)?,
                secret: row.get(3)?,
                votes: Vec::new(),
            })
        })?;
    poll.votes = conn
        .prepare_cached(concat!(
            "SELECT v.voter_jid, ",
            contact_name!("sc"),
            ", v.options, v.timestamp FROM poll_votes v LEFT JOIN contacts sc ON sc.jid = v.voter_jid
             WHERE v.chat_jid = ?1 AND v.message_id = ?2 AND v.options <> '[]'
             ORDER BY v.timestamp, v.voter_jid"
        ))?
        .query_map(params![chat, message_id], |row| {
            Ok(PollVote {
                voter_jid: row.get(0)?,
                voter_name: row.get(1)?,
                options: names_from_json(&row.get::<_, String>(2)?),
                timestamp: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(poll)
}
