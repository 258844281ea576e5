//! One contract for every storage backend: each check is written once and run against each.
//!
//! The PostgreSQL runs use a throwaway cluster per test (see `common::pg`), never a server that
//! happens to be running.

mod common;

use std::sync::Arc;

use whatsapp_mcp::config::DatabaseUrl;
use whatsapp_mcp::jid::{ChatKind, Jid};
use whatsapp_mcp::store::model::{
    CLAIM_RETENTION_SECS, ChatQuery, ChatSort, ChatUpdate, Claim, ContactUpdate, Delivery, Media,
    MessageQuery, NewMessage, Page,
};
use whatsapp_mcp::store::{self, Store, StoreError};

/// A store on a fresh, empty database, kept alive for the test's duration.
struct Fixture {
    store: Arc<dyn Store>,
    url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    _cluster: Option<common::pg::PgCluster>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(
        "test",
        &format!("sqlite://{}", dir.path().join("archive.db").display()),
    )
    .unwrap();
    Fixture {
        store: store::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
        _cluster: None,
    }
}

async fn postgres() -> Fixture {
    let cluster = tokio::task::spawn_blocking(common::pg::PgCluster::start)
        .await
        .unwrap();
    let url = DatabaseUrl::parse("test", &cluster.new_database()).unwrap();
    Fixture {
        store: store::open(&url).await.unwrap(),
        url,
        _dir: None,
        _cluster: Some(cluster),
    }
}

/// Runs each listed contract check against each backend.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let fixture = super::sqlite().await;
                    super::$check(&fixture).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fixture = super::postgres().await;
                    super::$check(&fixture).await;
                }
            )*
        }
    };
}

contract!(
    migrations_apply_from_empty_and_rerun_cleanly,
    the_same_message_twice_is_stored_once,
    chats_sort_by_activity_or_name_and_page,
    paging_edges_are_safe,
    messages_filter_by_chat_sender_and_time,
    full_text_search_handles_languages_numbers_and_media,
    search_pages_are_newest_first_for_common_and_rare_words,
    lid_and_phone_become_one_person,
    contacts_are_found_by_name_or_number,
    context_surrounds_a_message_in_order,
    messages_are_found_by_id_alone,
    edits_deletes_and_reactions,
    delivery_status_only_moves_forward,
    groups_list_participants_with_names,
    interactions_across_chats,
    concurrent_writers_lose_nothing,
    missing_things_are_not_found,
    clearing_the_archive_empties_it,
    counts_stay_exact_through_every_write,
    the_counts_migration_counts_an_existing_archive,
    a_request_key_is_claimed_once,
    polls_keep_each_voters_latest_choice,
);

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

const ADA: &str = "31611111111@s.whatsapp.net";
const BOB: &str = "31622222222@s.whatsapp.net";
const ADA_LID: &str = "987654321012345@lid";
const GROUP: &str = "120363000000000001@g.us";

fn text(chat: &str, id: &str, sender: Option<&str>, ts: i64, body: &str) -> NewMessage {
    NewMessage {
        chat: jid(chat),
        id: id.to_owned(),
        sender: sender.map(jid),
        timestamp: ts,
        from_me: sender.is_none(),
        text: Some(body.to_owned()),
        caption: None,
        quoted_id: None,
        media: None,
    }
}

fn ids(messages: &[whatsapp_mcp::store::model::Message]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

async fn search(store: &dyn Store, q: &str) -> Vec<String> {
    let query = MessageQuery {
        text: Some(q.to_owned()),
        page: Page::new(50, 0),
        ..MessageQuery::default()
    };
    let mut found: Vec<String> = store
        .list_messages(query)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    found.sort();
    found
}

async fn migrations_apply_from_empty_and_rerun_cleanly(f: &Fixture) {
    let health = f.store.health().await;
    assert!(health.schema_ok(), "{health:?}");
    f.store
        .insert_messages(vec![text(ADA, "m1", Some(ADA), 100, "hello")])
        .await
        .unwrap();
    // Opening again applies nothing and keeps the data.
    let again = store::open(&f.url).await.unwrap();
    assert!(again.health().await.schema_ok());
    assert_eq!(again.stats().await.unwrap().message_count, 1);
}

async fn the_same_message_twice_is_stored_once(f: &Fixture) {
    let store = &*f.store;
    let mut first = text(ADA, "dup", Some(ADA), 100, "photo of the cat");
    first.text = None;
    first.media = Some(Media {
        media_type: "image".to_owned(),
        mime_type: Some("image/jpeg".to_owned()),
        ..Media::default()
    });
    assert_eq!(store.insert_messages(vec![first.clone()]).await.unwrap(), 1);
    // History sync delivers it again, this time with the caption and download keys.
    let mut second = first.clone();
    second.caption = Some("our cat Minou".to_owned());
    second.media.as_mut().unwrap().direct_path = Some("/v/t62/abc".to_owned());
    second.media.as_mut().unwrap().media_key = Some(vec![1, 2, 3]);
    assert_eq!(
        store
            .insert_messages(vec![second.clone(), second])
            .await
            .unwrap(),
        0
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.message_count, stats.chat_count), (1, 1));
    let stored = store.message(jid(ADA), "dup".to_owned()).await.unwrap();
    assert_eq!(stored.caption.as_deref(), Some("our cat Minou"));
    let media = stored.media.unwrap();
    assert_eq!(media.direct_path.as_deref(), Some("/v/t62/abc"));
    assert_eq!(media.media_key, Some(vec![1, 2, 3]));
    assert_eq!(search(store, "Minou").await, vec!["dup"]);
    // Two copies in one batch of a message the archive lacks: the first is stored, the second
    // still fills in what the first lacked.
    let bare = text(ADA, "pair", Some(ADA), 110, "ticket");
    let mut fuller = bare.clone();
    fuller.quoted_id = Some("dup".to_owned());
    fuller.caption = Some("boarding pass".to_owned());
    assert_eq!(store.insert_messages(vec![bare, fuller]).await.unwrap(), 1);
    let stored = store.message(jid(ADA), "pair".to_owned()).await.unwrap();
    assert_eq!(stored.quoted_id.as_deref(), Some("dup"));
    assert_eq!(search(store, "boarding").await, vec!["pair"]);
}

async fn chats_sort_by_activity_or_name_and_page(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![
            text(ADA, "a1", Some(ADA), 300, "hi from ada"),
            text(BOB, "b1", Some(BOB), 200, "hi from bob"),
            text(GROUP, "g1", Some(BOB), 100, "hi group"),
        ])
        .await
        .unwrap();
    let mut ada = ContactUpdate::new(jid(ADA));
    ada.full_name = Some("Ada Lovelace".to_owned());
    let mut bob = ContactUpdate::new(jid(BOB));
    bob.push_name = Some("bob".to_owned());
    store.upsert_contacts(vec![ada, bob]).await.unwrap();
    let mut group = ChatUpdate::new(jid(GROUP));
    group.name = Some("Climbing club".to_owned());
    store.upsert_chats(vec![group]).await.unwrap();

    let by_activity = store
        .list_chats(ChatQuery {
            include_last_message: true,
            ..ChatQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<_> = by_activity
        .iter()
        .map(|c| c.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["Ada Lovelace", "bob", "Climbing club"]);
    assert_eq!(by_activity[0].last_message.as_ref().unwrap().id, "a1");
    assert_eq!(by_activity[2].kind, ChatKind::Group);

    let by_name = store
        .list_chats(ChatQuery {
            sort: ChatSort::Name,
            ..ChatQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<_> = by_name.iter().map(|c| c.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        ["Ada Lovelace", "bob", "Climbing club"].map(str::to_owned)
    );

    let filtered = store
        .list_chats(ChatQuery {
            query: Some("CLIMB".to_owned()),
            ..ChatQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].jid, GROUP);
    let groups = store
        .list_chats(ChatQuery {
            kind: Some(ChatKind::Group),
            ..ChatQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);

    let page = |limit, page| ChatQuery {
        page: Page::new(limit, page),
        ..ChatQuery::default()
    };
    let second = store.list_chats(page(2, 1)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].jid, GROUP);
}

async fn paging_edges_are_safe(f: &Fixture) {
    let store = &*f.store;
    let batch: Vec<_> = (0..25)
        .map(|i| text(ADA, &format!("p{i:02}"), Some(ADA), 1000 + i, "page me"))
        .collect();
    store.insert_messages(batch).await.unwrap();
    let list = |limit, page| {
        store.list_messages(MessageQuery {
            chat: Some(jid(ADA)),
            page: Page::new(limit, page),
            ..MessageQuery::default()
        })
    };
    assert_eq!(ids(&list(10, 0).await.unwrap())[0], "p24");
    assert_eq!(list(10, 2).await.unwrap().len(), 5);
    assert!(list(10, 3).await.unwrap().is_empty());
    assert!(list(10, u32::MAX).await.unwrap().is_empty());
    // Zero is lifted to one row, and huge limits are capped.
    assert_eq!(list(0, 0).await.unwrap().len(), 1);
    assert_eq!(list(u32::MAX, 0).await.unwrap().len(), 25);
    // Pages never overlap and together cover everything.
    let mut all = Vec::new();
    for page in 0..5 {
        all.extend(list(7, page).await.unwrap().into_iter().map(|m| m.id));
    }
    all.dedup();
    assert_eq!(all.len(), 25);
}

async fn messages_filter_by_chat_sender_and_time(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![
            text(GROUP, "g1", Some(ADA), 100, "one"),
            text(GROUP, "g2", Some(BOB), 200, "two"),
            text(GROUP, "g3", None, 300, "three"),
            text(BOB, "b1", Some(BOB), 250, "direct"),
        ])
        .await
        .unwrap();
    let query = |chat: Option<&str>, sender: Option<&str>, after, before| MessageQuery {
        chat: chat.map(jid),
        sender: sender.map(jid),
        after,
        before,
        ..MessageQuery::default()
    };
    let run = |q| async {
        ids(&store.list_messages(q).await.unwrap())
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(query(Some(GROUP), None, None, None)).await,
        ["g3", "g2", "g1"]
    );
    assert_eq!(run(query(None, Some(BOB), None, None)).await, ["b1", "g2"]);
    assert_eq!(
        run(query(Some(GROUP), None, Some(100), Some(300))).await,
        ["g2"]
    );
    assert_eq!(run(query(None, None, Some(200), None)).await, ["g3", "b1"]);
    let mine = store
        .list_messages(query(Some(GROUP), None, Some(250), None))
        .await
        .unwrap();
    assert!(mine[0].from_me);
    assert_eq!(mine[0].sender_jid, None);
}

/// More messages than either backend reads before choosing how to search: a word in every
/// third message (its page is among the newest), one only in old messages, one in a handful,
/// and a time filter; every page must be the newest matches in order, with nothing skipped.
async fn search_pages_are_newest_first_for_common_and_rare_words(f: &Fixture) {
    let store = &*f.store;
    let body = |i: i64| match i {
        i if i % 3 == 0 => format!("harbour view {i}"),
        i if i < 2_000 && i % 7 == 1 => format!("old lighthouse {i}"),
        i if i % 2_500 == 2 => format!("rare comet {i}"),
        i => format!("plain words {i}"),
    };
    let archive: Vec<NewMessage> = (0..12_000i64)
        .map(|i| {
            let chat = if i % 2 == 0 { ADA } else { BOB };
            // Times run against insertion order in places, as history sync delivers them.
            text(
                chat,
                &format!("s{i}"),
                Some(chat),
                100_000 + (i * 7_919) % 12_000,
                &body(i),
            )
        })
        .collect();
    for chunk in archive.chunks(3_000) {
        store.insert_messages(chunk.to_vec()).await.unwrap();
    }
    for (word, after) in [
        ("harbour", None),
        ("lighthouse", None),
        ("comet", None),
        ("harbour", Some(100_000 + 11_000)),
        ("lighthouse", Some(100_000 + 6_000)),
    ] {
        let mut want: Vec<&NewMessage> = archive
            .iter()
            .filter(|m| m.text.as_deref().unwrap().contains(word))
            .filter(|m| after.is_none_or(|t| m.timestamp > t))
            .collect();
        want.sort_by_key(|m| std::cmp::Reverse(m.timestamp));
        for (limit, page) in [(20, 0), (20, 3), (7, 11), (200, 1)] {
            let found = store
                .list_messages(MessageQuery {
                    text: Some(word.to_owned()),
                    after,
                    page: Page::new(limit, page),
                    ..MessageQuery::default()
                })
                .await
                .unwrap();
            let expected: Vec<&str> = want
                .iter()
                .skip((limit * page) as usize)
                .take(limit as usize)
                .map(|m| m.id.as_str())
                .collect();
            assert_eq!(
                ids(&found),
                expected,
                "{word} after {after:?}, page {page} of {limit}"
            );
        }
    }
}

async fn full_text_search_handles_languages_numbers_and_media(f: &Fixture) {
    let store = &*f.store;
    let mut doc = text(BOB, "doc", Some(BOB), 60, "");
    doc.text = None;
    doc.caption = Some("the signed contract".to_owned());
    doc.media = Some(Media {
        media_type: "document".to_owned(),
        file_name: Some("Mietvertrag_2026.pdf".to_owned()),
        ..Media::default()
    });
    store
        .insert_messages(vec![
            text(ADA, "en", Some(ADA), 10, "Dinner at eight tomorrow?"),
            text(ADA, "de", Some(ADA), 20, "Grüße an Frau Müller aus Köln"),
            text(ADA, "ru", Some(ADA), 30, "Привет, как дела?"),
            text(ADA, "ja", Some(ADA), 40, "明日は東京タワーに行きます"),
            text(
                ADA,
                "tel",
                Some(ADA),
                50,
                "call me on +31 6 1234 5678 after work",
            ),
            text(ADA, "ok", Some(ADA), 55, "ok see you"),
            doc,
        ])
        .await
        .unwrap();
    assert_eq!(search(store, "dinner").await, ["en"]);
    assert_eq!(search(store, "EIGHT dinner").await, ["en"]);
    assert_eq!(search(store, "\"at eight\"").await, ["en"]);
    assert_eq!(search(store, "Müller").await, ["de"]);
    assert_eq!(
        search(store, "muller koln").await,
        ["de"],
        "diacritics are ignored"
    );
    assert_eq!(search(store, "привет").await, ["ru"]);
    assert_eq!(
        search(store, "東京").await,
        ["ja"],
        "short terms fall back to substring matching"
    );
    assert_eq!(search(store, "東京タワー").await, ["ja"]);
    assert_eq!(search(store, "1234 5678").await, ["tel"]);
    assert_eq!(search(store, "5678").await, ["tel"]);
    assert_eq!(
        search(store, "ok").await,
        ["ok"],
        "short terms fall back to substring matching"
    );
    assert_eq!(
        search(store, "contract").await,
        ["doc"],
        "captions are searched"
    );
    assert_eq!(
        search(store, "mietvertrag").await,
        ["doc"],
        "file names are searched"
    );
    assert!(search(store, "nothing like this").await.is_empty());
    // Operators typed by a model are text, not syntax.
    assert!(search(store, "dinner OR NEAR(x) *").await.is_empty());
    assert!(search(store, "\"unbalanced").await.is_empty());
    // A deleted message is no longer found.
    store
        .delete_message(jid(ADA), "en".to_owned(), 99)
        .await
        .unwrap();
    assert!(search(store, "dinner").await.is_empty());
}

async fn lid_and_phone_become_one_person(f: &Fixture) {
    let store = &*f.store;
    // Before the mapping is known, Ada writes from her LID, and we learn her push name there.
    store
        .insert_messages(vec![
            text(ADA_LID, "l1", Some(ADA_LID), 100, "from my lid"),
            text(GROUP, "g1", Some(ADA_LID), 110, "lid in a group"),
        ])
        .await
        .unwrap();
    let mut named = ContactUpdate::new(jid(ADA_LID));
    named.push_name = Some("Ada".to_owned());
    store.upsert_contacts(vec![named]).await.unwrap();
    store
        .insert_messages(vec![text(ADA, "p1", Some(ADA), 120, "from my number")])
        .await
        .unwrap();
    store
        .set_reaction(
            jid(ADA),
            "p1".to_owned(),
            jid(ADA_LID),
            "👍".to_owned(),
            121,
        )
        .await
        .unwrap();
    store
        .set_participants(jid(GROUP), vec![(jid(ADA_LID), "admin".to_owned())])
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().chat_count, 3);

    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();
    // Linking twice changes nothing.
    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();

    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.chat_count, 2,
        "the LID chat folded into the phone chat"
    );
    let chat = store.chat(jid(ADA)).await.unwrap();
    assert_eq!(chat.name.as_deref(), Some("Ada"));
    assert_eq!(chat.last_message_at, Some(120));
    let in_chat = store
        .list_messages(MessageQuery {
            chat: Some(jid(ADA)),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&in_chat), ["p1", "l1"]);
    assert!(in_chat.iter().all(|m| m.sender_jid.as_deref() == Some(ADA)));
    assert_eq!(in_chat[0].reactions[0].sender_jid, ADA);
    assert_eq!(in_chat[0].reactions[0].sender_name.as_deref(), Some("Ada"));
    let group = store
        .list_messages(MessageQuery {
            chat: Some(jid(GROUP)),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(group[0].sender_name.as_deref(), Some("Ada"));
    let members = store.participants(jid(GROUP)).await.unwrap();
    assert_eq!(members[0].jid, ADA);

    // Later LID-addressed traffic lands in the same chat, and the LID resolves on reads.
    store
        .insert_messages(vec![text(
            ADA_LID,
            "l2",
            Some(ADA_LID),
            130,
            "still my lid",
        )])
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().chat_count, 2);
    let via_lid = store.chat(jid(ADA_LID)).await.unwrap();
    assert_eq!(via_lid.jid, ADA);
    assert_eq!(via_lid.last_message.unwrap().id, "l2");
    let contact = store.contact(jid(ADA_LID)).await.unwrap();
    assert_eq!(
        (contact.jid.as_str(), contact.lid.as_deref()),
        (ADA, Some(ADA_LID))
    );
}

async fn contacts_are_found_by_name_or_number(f: &Fixture) {
    let store = &*f.store;
    let mut ada = ContactUpdate::new(jid(ADA));
    ada.full_name = Some("Ådne Østlund".to_owned());
    ada.push_name = Some("ådi".to_owned());
    let mut bob = ContactUpdate::new(jid(BOB));
    bob.business_name = Some("Bob's Bikes".to_owned());
    store.upsert_contacts(vec![ada, bob]).await.unwrap();
    // A later push-name update keeps the address-book name.
    let mut push = ContactUpdate::new(jid(ADA));
    push.push_name = Some("Ådi 🚲".to_owned());
    store.upsert_contacts(vec![push]).await.unwrap();

    let find = |q: &str| {
        let q = q.to_owned();
        async move {
            store
                .search_contacts(q, Page::default())
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.jid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("østlund").await, [ADA]);
    assert_eq!(find("ÅDNE").await, [ADA]);
    assert_eq!(find("bikes").await, [BOB]);
    assert_eq!(find("+31 6 2222").await, [BOB]);
    let mut both = find("316").await;
    both.sort();
    assert_eq!(both, [ADA, BOB]);
    assert_eq!(
        find("%").await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    assert!(find("   ").await.is_empty());
    let ada = store.contact(jid(ADA)).await.unwrap();
    assert_eq!(ada.full_name.as_deref(), Some("Ådne Østlund"));
    assert_eq!(ada.push_name.as_deref(), Some("Ådi 🚲"));
    assert_eq!(ada.phone.as_deref(), Some("31611111111"));
}

async fn context_surrounds_a_message_in_order(f: &Fixture) {
    let store = &*f.store;
    let batch: Vec<_> = (0..10)
        .map(|i| text(ADA, &format!("c{i}"), Some(ADA), 100 + i, "line"))
        .collect();
    store.insert_messages(batch).await.unwrap();
    // Another chat's messages at the same times must not leak in.
    store
        .insert_messages(vec![text(BOB, "x", Some(BOB), 105, "other")])
        .await
        .unwrap();
    let ctx = store
        .message_context(jid(ADA), "c5".to_owned(), 2, 3)
        .await
        .unwrap();
    assert_eq!(ctx.message.id, "c5");
    assert_eq!(ids(&ctx.before), ["c3", "c4"]);
    assert_eq!(ids(&ctx.after), ["c6", "c7", "c8"]);
    let edge = store
        .message_context(jid(ADA), "c0".to_owned(), 5, 0)
        .await
        .unwrap();
    assert!(edge.before.is_empty() && edge.after.is_empty());
    // A page of results at once: neighbours overlap, a reaction comes along, an unknown
    // message gets none, and the order of the request is kept.
    store
        .set_reaction(jid(ADA), "c4".to_owned(), jid(BOB), "👍".to_owned(), 200)
        .await
        .unwrap();
    let wanted = [
        (ADA, "c5"),
        (ADA, "nope"),
        (BOB, "x"),
        (ADA, "c4"),
        (ADA, "c9"),
    ]
    .map(|(chat, id)| (chat.to_owned(), id.to_owned()));
    let found = store.neighbours(wanted.to_vec(), 2, 1).await.unwrap();
    let shape: Vec<(Vec<&str>, Vec<&str>)> = found
        .iter()
        .map(|n| (ids(&n.before), ids(&n.after)))
        .collect();
    assert_eq!(
        shape,
        [
            (vec!["c3", "c4"], vec!["c6"]),
            (vec![], vec![]),
            (vec![], vec![]),
            (vec!["c2", "c3"], vec!["c5"]),
            (vec!["c7", "c8"], vec![]),
        ]
    );
    let liked = &found[0].before[1];
    assert_eq!(liked.reactions.len(), 1);
    assert_eq!(liked.reactions[0].emoji, "👍");
    assert!(found[3].before.iter().all(|m| m.reactions.is_empty()));
    let none = store.neighbours(wanted.to_vec(), 0, 0).await.unwrap();
    assert!(
        none.iter()
            .all(|n| n.before.is_empty() && n.after.is_empty())
    );
    assert_eq!(none.len(), wanted.len());
}

async fn messages_are_found_by_id_alone(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![
            text(ADA, "same", Some(ADA), 100, "in ada's chat"),
            text(BOB, "same", Some(BOB), 200, "in bob's chat"),
            text(BOB, "unique", Some(BOB), 300, "only here"),
        ])
        .await
        .unwrap();
    let found = store.messages_by_id("unique".to_owned()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].chat_jid, BOB);
    let both = store.messages_by_id("same".to_owned()).await.unwrap();
    let chats: Vec<_> = both.iter().map(|m| m.chat_jid.as_str()).collect();
    assert_eq!(chats, [BOB, ADA]);
    assert!(
        store
            .messages_by_id("none".to_owned())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn edits_deletes_and_reactions(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![text(BOB, "e1", Some(BOB), 100, "see you at 7")])
        .await
        .unwrap();
    store
        .edit_message(jid(BOB), "e1".to_owned(), "see you at 8".to_owned(), 110)
        .await
        .unwrap();
    let edited = store.message(jid(BOB), "e1".to_owned()).await.unwrap();
    assert_eq!(
        (edited.text.as_deref(), edited.edited_at),
        (Some("see you at 8"), Some(110))
    );
    assert_eq!(search(store, "you at 8").await, ["e1"]);

    store
        .set_reaction(jid(BOB), "e1".to_owned(), jid(ADA), "❤️".to_owned(), 120)
        .await
        .unwrap();
    store
        .set_reaction(jid(BOB), "e1".to_owned(), jid(ADA), "😂".to_owned(), 130)
        .await
        .unwrap();
    // An older reaction arriving late does not overwrite the newer one.
    store
        .set_reaction(jid(BOB), "e1".to_owned(), jid(ADA), "👎".to_owned(), 125)
        .await
        .unwrap();
    store
        .set_reaction(jid(BOB), "e1".to_owned(), jid(BOB), "👍".to_owned(), 140)
        .await
        .unwrap();
    let reacted = store.message(jid(BOB), "e1".to_owned()).await.unwrap();
    let emojis: Vec<_> = reacted.reactions.iter().map(|r| r.emoji.as_str()).collect();
    assert_eq!(emojis, ["😂", "👍"]);
    store
        .set_reaction(jid(BOB), "e1".to_owned(), jid(ADA), String::new(), 150)
        .await
        .unwrap();
    assert_eq!(
        store
            .message(jid(BOB), "e1".to_owned())
            .await
            .unwrap()
            .reactions
            .len(),
        1
    );

    store
        .delete_message(jid(BOB), "e1".to_owned(), 200)
        .await
        .unwrap();
    let deleted = store.message(jid(BOB), "e1".to_owned()).await.unwrap();
    assert_eq!((deleted.text, deleted.deleted_at), (None, Some(200)));
    // Re-delivery by history sync does not bring the text back.
    store
        .insert_messages(vec![text(BOB, "e1", Some(BOB), 100, "see you at 7")])
        .await
        .unwrap();
    assert_eq!(
        store.message(jid(BOB), "e1".to_owned()).await.unwrap().text,
        None
    );
    let err = store
        .edit_message(jid(BOB), "nope".to_owned(), "x".to_owned(), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn delivery_status_only_moves_forward(f: &Fixture) {
    let store = &*f.store;
    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();
    store
        .insert_messages(vec![
            text(ADA, "mine-1", None, 100, "first"),
            text(ADA, "mine-2", None, 110, "second"),
            text(ADA, "theirs", Some(ADA), 120, "an answer"),
        ])
        .await
        .unwrap();
    let delivery = |id: &'static str| async move {
        store
            .message(jid(ADA), id.to_owned())
            .await
            .unwrap()
            .delivery
    };
    assert_eq!(delivery("mine-1").await, None);

    let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let changed = store
        .set_delivery(jid(ADA), ids(&["mine-1", "mine-2"]), Delivery::Delivered)
        .await
        .unwrap();
    assert_eq!(changed, 2);
    // A read receipt addressed to the LID lands on the same chat; the late "sent" ack and a
    // second "delivered" do not move it back.
    store
        .set_delivery(jid(ADA_LID), ids(&["mine-1"]), Delivery::Read)
        .await
        .unwrap();
    for late in [Delivery::Sent, Delivery::Delivered] {
        let changed = store
            .set_delivery(jid(ADA), ids(&["mine-1"]), late)
            .await
            .unwrap();
        assert_eq!(changed, 0, "{late:?} must not overwrite read");
    }
    assert_eq!(delivery("mine-1").await, Some(Delivery::Read));
    assert_eq!(delivery("mine-2").await, Some(Delivery::Delivered));

    // Other people's messages, unknown ids and unknown chats carry no delivery status.
    let changed = store
        .set_delivery(jid(ADA), ids(&["theirs", "never-stored"]), Delivery::Read)
        .await
        .unwrap();
    assert_eq!(changed, 0);
    assert_eq!(delivery("theirs").await, None);
    let changed = store
        .set_delivery(jid(BOB), ids(&["mine-1"]), Delivery::Played)
        .await
        .unwrap();
    assert_eq!(changed, 0);
    assert_eq!(
        store
            .set_delivery(jid(ADA), Vec::new(), Delivery::Read)
            .await
            .unwrap(),
        0
    );

    // Listings carry it too.
    let listed = store
        .list_messages(MessageQuery {
            chat: Some(jid(ADA)),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    let statuses: Vec<_> = listed.iter().map(|m| (m.id.as_str(), m.delivery)).collect();
    assert!(
        statuses.contains(&("mine-1", Some(Delivery::Read))),
        "{statuses:?}"
    );
}

async fn groups_list_participants_with_names(f: &Fixture) {
    let store = &*f.store;
    let mut ada = ContactUpdate::new(jid(ADA));
    ada.full_name = Some("Ada".to_owned());
    store.upsert_contacts(vec![ada]).await.unwrap();
    store
        .set_participants(
            jid(GROUP),
            vec![
                (jid(BOB), "member".to_owned()),
                (jid(ADA), "superadmin".to_owned()),
                (jid("31633333333@s.whatsapp.net"), "admin".to_owned()),
            ],
        )
        .await
        .unwrap();
    let members = store.participants(jid(GROUP)).await.unwrap();
    let roles: Vec<_> = members
        .iter()
        .map(|p| (p.jid.as_str(), p.role.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            (ADA, "superadmin"),
            ("31633333333@s.whatsapp.net", "admin"),
            (BOB, "member")
        ]
    );
    assert_eq!(members[0].name.as_deref(), Some("Ada"));
    // Replacing the list drops members who left.
    store
        .set_participants(jid(GROUP), vec![(jid(BOB), "member".to_owned())])
        .await
        .unwrap();
    assert_eq!(store.participants(jid(GROUP)).await.unwrap().len(), 1);
    let err = store
        .set_participants(jid(GROUP), vec![(jid(BOB), "owner".to_owned())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown group role"), "{err}");
    assert_eq!(store.chat(jid(GROUP)).await.unwrap().kind, ChatKind::Group);
}

async fn interactions_across_chats(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![
            text(ADA, "d1", Some(ADA), 100, "direct"),
            text(GROUP, "g1", Some(ADA), 300, "in the group"),
            text(GROUP, "g2", Some(BOB), 400, "bob in the group"),
            text(BOB, "b1", None, 50, "to bob"),
        ])
        .await
        .unwrap();
    let last = store.last_interaction(jid(ADA)).await.unwrap().unwrap();
    assert_eq!(last.id, "g1");
    let last = store.last_interaction(jid(BOB)).await.unwrap().unwrap();
    assert_eq!(last.id, "g2");
    assert!(
        store
            .last_interaction(jid("31699999999@s.whatsapp.net"))
            .await
            .unwrap()
            .is_none()
    );
    let chats = store
        .contact_chats(jid(ADA), Page::default())
        .await
        .unwrap();
    let jids: Vec<_> = chats.iter().map(|c| c.jid.as_str()).collect();
    assert_eq!(jids, [GROUP, ADA]);
    store
        .set_sync_state("oldest:x".to_owned(), "42".to_owned())
        .await
        .unwrap();
    store
        .set_sync_state("oldest:x".to_owned(), "41".to_owned())
        .await
        .unwrap();
    assert_eq!(
        store
            .sync_state("oldest:x".to_owned())
            .await
            .unwrap()
            .as_deref(),
        Some("41")
    );
    assert_eq!(store.sync_state("missing".to_owned()).await.unwrap(), None);
}

async fn concurrent_writers_lose_nothing(f: &Fixture) {
    // Writers through this handle and a second, independent handle on the same database (as a
    // second process would have), interleaved with readers.
    let second = store::open(&f.url).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = if writer % 2 == 0 {
            Arc::clone(&f.store)
        } else {
            Arc::clone(&second)
        };
        tasks.push(tokio::spawn(async move {
            for batch in 0..10 {
                let messages: Vec<_> = (0..50)
                    .map(|i| {
                        text(
                            &format!("3160000{writer:04}@s.whatsapp.net"),
                            &format!("w{writer}b{batch}i{i}"),
                            None,
                            i64::from(batch * 50 + i),
                            "concurrent",
                        )
                    })
                    .collect();
                store.insert_messages(messages).await.unwrap();
                store.list_chats(ChatQuery::default()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = f.store.stats().await.unwrap();
    assert_eq!((stats.message_count, stats.chat_count), (4000, 8));
}

async fn clearing_the_archive_empties_it(f: &Fixture) {
    let store = &*f.store;
    store
        .insert_messages(vec![
            text(ADA, "x1", Some(ADA), 1, "searchable words"),
            text(GROUP, "x2", Some(BOB), 2, "more words"),
        ])
        .await
        .unwrap();
    store
        .set_participants(jid(GROUP), vec![(jid(BOB), "member".to_owned())])
        .await
        .unwrap();
    store
        .set_reaction(jid(ADA), "x1".to_owned(), jid(BOB), "👍".to_owned(), 3)
        .await
        .unwrap();
    store
        .upsert_contacts(vec![ContactUpdate::new(jid(ADA))])
        .await
        .unwrap();
    store.clear_archive().await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.message_count, stats.chat_count, stats.contact_count),
        (0, 0, 0)
    );
    assert!(search(store, "words").await.is_empty());
    // The archive works as before afterwards, search included.
    store
        .insert_messages(vec![text(ADA, "y1", Some(ADA), 4, "fresh words")])
        .await
        .unwrap();
    assert_eq!(search(store, "words").await, ["y1"]);
    store.message(jid(ADA), "y1".to_owned()).await.unwrap();
    store
        .delete_message(jid(ADA), "y1".to_owned(), 5)
        .await
        .unwrap();
    assert!(search(store, "words").await.is_empty());
}

async fn a_request_key_is_claimed_once(f: &Fixture) {
    let store = &f.store;
    let now = 1_800_000_000;
    let claim =
        |key: &str, tool: &str, at: i64| store.claim_request(key.to_owned(), tool.to_owned(), at);
    assert_eq!(claim("k1", "send_message", now).await.unwrap(), Claim::New);
    // Taken while it runs: no outcome yet.
    assert_eq!(
        claim("k1", "send_message", now + 1).await.unwrap(),
        Claim::Taken {
            tool: "send_message".to_owned(),
            started_at: now,
            outcome: None
        }
    );
    store
        .finish_request("k1".to_owned(), r#"{"content":[]}"#.to_owned())
        .await
        .unwrap();
    // Releasing a finished call changes nothing.
    store.release_request("k1".to_owned()).await.unwrap();
    assert_eq!(
        claim("k1", "send_message", now + 2).await.unwrap(),
        Claim::Taken {
            tool: "send_message".to_owned(),
            started_at: now,
            outcome: Some(r#"{"content":[]}"#.to_owned())
        }
    );
    // A released key can be claimed again.
    assert_eq!(claim("k2", "send_file", now).await.unwrap(), Claim::New);
    store.release_request("k2".to_owned()).await.unwrap();
    assert_eq!(claim("k2", "send_file", now + 3).await.unwrap(), Claim::New);
    // Many claimers of one key at once: exactly one gets it.
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .claim_request("k3".to_owned(), "mark_read".to_owned(), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        if racer.await.unwrap() == Claim::New {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // A week later the old keys are forgotten.
    let later = now + CLAIM_RETENTION_SECS + 10;
    assert_eq!(
        claim("k1", "send_message", later).await.unwrap(),
        Claim::New
    );
    // Clearing the archive (logout) clears the ledger too: answers can hold message text.
    store.clear_archive().await.unwrap();
    assert_eq!(
        claim("k1", "send_message", later).await.unwrap(),
        Claim::New
    );
}

/// Runs SQL on the fixture's database behind the store's back (a test's own connection).
async fn polls_keep_each_voters_latest_choice(f: &Fixture) {
    use whatsapp_mcp::store::model::{NewPoll, NewPollVote};
    let store = &*f.store;
    let options = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    store
        .insert_messages(vec![text(
            GROUP,
            "poll1",
            None,
            100,
            "[poll] Lunch? (Pizza / Soup)",
        )])
        .await
        .unwrap();
    let poll = NewPoll {
        chat: jid(GROUP),
        message_id: "poll1".to_owned(),
        question: "Lunch?".to_owned(),
        options: options(&["Pizza", "Soup", "Sushi"]),
        selectable: 3,
        secret: None,
    };
    store.record_poll(poll.clone()).await.unwrap();
    // Seen again (history after live), it keeps what it had and gains a secret.
    store
        .record_poll(NewPoll {
            secret: Some(vec![7; 32]),
            question: "changed".to_owned(),
            ..poll.clone()
        })
        .await
        .unwrap();
    let vote = |voter: &str, names: &[&str], ts: i64| NewPollVote {
        chat: jid(GROUP),
        poll_id: "poll1".to_owned(),
        voter: jid(voter),
        options: options(names),
        timestamp: ts,
    };
    let mut named = ContactUpdate::new(jid(BOB));
    named.push_name = Some("Bob".to_owned());
    store.upsert_contacts(vec![named]).await.unwrap();
    for v in [
        vote(ADA_LID, &["Pizza"], 110),
        vote(BOB, &["Soup", "Sushi"], 120),
        // Ada changes her mind; a late copy of her first vote changes nothing.
        vote(ADA_LID, &["Sushi"], 130),
        vote(ADA_LID, &["Pizza"], 111),
    ] {
        store.set_poll_vote(v).await.unwrap();
    }
    let read = store.poll(jid(GROUP), "poll1".to_owned()).await.unwrap();
    assert_eq!(read.question, "Lunch?");
    assert_eq!(read.options, options(&["Pizza", "Soup", "Sushi"]));
    assert_eq!(read.selectable, 3);
    assert_eq!(read.secret, Some(vec![7; 32]));
    let choices: Vec<(&str, Vec<String>)> = read
        .votes
        .iter()
        .map(|v| (v.voter_jid.as_str(), v.options.clone()))
        .collect();
    assert_eq!(
        choices,
        [
            (BOB, options(&["Soup", "Sushi"])),
            (ADA_LID, options(&["Sushi"]))
        ]
    );
    assert_eq!(read.votes[0].voter_name.as_deref(), Some("Bob"));
    // Once Ada's LID is linked to her number, her vote is hers under the number; taking it
    // back leaves Bob's alone.
    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();
    let read = store.poll(jid(GROUP), "poll1".to_owned()).await.unwrap();
    assert_eq!(read.votes[1].voter_jid, ADA);
    store.set_poll_vote(vote(ADA, &[], 140)).await.unwrap();
    let read = store.poll(jid(GROUP), "poll1".to_owned()).await.unwrap();
    assert_eq!(read.votes.len(), 1);
    assert_eq!(read.votes[0].voter_jid, BOB);
    assert!(matches!(
        store.poll(jid(GROUP), "nope".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    store.clear_archive().await.unwrap();
    assert!(matches!(
        store.poll(jid(GROUP), "poll1".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn run_sql(f: &Fixture, sql: &str) {
    if let Some(path) = f.url.sqlite_path() {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    } else {
        pg_client(f).await.batch_execute(sql).await.unwrap();
    }
}

async fn pg_client(f: &Fixture) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(f.url.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Messages, chats and contacts as `COUNT(*)` finds them.
async fn counted_rows(f: &Fixture) -> (u64, u64, u64) {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM chats),
                              (SELECT COUNT(*) FROM contacts)";
    let (messages, chats, contacts): (i64, i64, i64) = if let Some(path) = f.url.sqlite_path() {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(SQL, [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
    } else {
        let row = pg_client(f).await.query_one(SQL, &[]).await.unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    (messages as u64, chats as u64, contacts as u64)
}

/// The counts `stats` reports match the rows in the tables.
async fn assert_counts(f: &Fixture, after: &str, expected: (u64, u64, u64)) {
    let stats = f.store.stats().await.unwrap();
    let reported = (stats.message_count, stats.chat_count, stats.contact_count);
    assert_eq!(
        reported,
        counted_rows(f).await,
        "stored counts after {after}"
    );
    assert_eq!(reported, expected, "rows after {after}");
}

async fn counts_stay_exact_through_every_write(f: &Fixture) {
    let store = &*f.store;
    assert_counts(f, "nothing", (0, 0, 0)).await;
    let batch = vec![
        text(ADA, "c1", Some(ADA), 10, "one"),
        text(ADA, "c1", Some(ADA), 10, "one again in the same batch"),
        text(ADA, "c2", None, 20, "two"),
        text(GROUP, "c1", Some(BOB), 30, "same id, other chat"),
    ];
    assert_eq!(store.insert_messages(batch.clone()).await.unwrap(), 3);
    assert_counts(f, "a batch with a duplicate", (3, 2, 0)).await;
    assert_eq!(store.insert_messages(batch).await.unwrap(), 0);
    assert_counts(f, "the same batch again", (3, 2, 0)).await;

    let mut named = ChatUpdate::new(jid(BOB));
    named.name = Some("Bob".to_owned());
    store
        .upsert_chats(vec![named.clone(), ChatUpdate::new(jid(ADA)), named])
        .await
        .unwrap();
    assert_counts(f, "chat upserts", (3, 3, 0)).await;
    let mut ada = ContactUpdate::new(jid(ADA));
    ada.full_name = Some("Ada".to_owned());
    store
        .upsert_contacts(vec![ada.clone(), ContactUpdate::new(jid(BOB)), ada])
        .await
        .unwrap();
    store
        .upsert_contacts(vec![ContactUpdate::new(jid(BOB))])
        .await
        .unwrap();
    assert_counts(f, "contact upserts", (3, 3, 2)).await;
    store
        .set_participants(
            jid("120363000000000002@g.us"),
            vec![(jid(ADA), "member".to_owned())],
        )
        .await
        .unwrap();
    store
        .set_participants(jid(GROUP), vec![(jid(BOB), "admin".to_owned())])
        .await
        .unwrap();
    assert_counts(f, "group members", (3, 4, 2)).await;
    store
        .insert_history(
            vec![
                text(BOB, "h1", Some(BOB), 5, "old"),
                text(ADA, "c2", None, 20, "two"),
            ],
            vec![ChatUpdate::new(jid("31633333333@s.whatsapp.net"))],
        )
        .await
        .unwrap();
    assert_counts(f, "a history chunk", (4, 5, 2)).await;

    // Ada's LID: a chat with one message she also sent from her number, and a contact.
    store
        .insert_messages(vec![
            text(ADA_LID, "c1", Some(ADA_LID), 10, "one"),
            text(ADA_LID, "l1", Some(ADA_LID), 40, "only under the lid"),
        ])
        .await
        .unwrap();
    store
        .upsert_contacts(vec![ContactUpdate::new(jid(ADA_LID))])
        .await
        .unwrap();
    assert_counts(f, "LID traffic", (6, 6, 3)).await;
    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();
    assert_counts(f, "merging the LID chat", (5, 5, 2)).await;
    store.link_lid(jid(ADA_LID), jid(ADA)).await.unwrap();
    assert_counts(f, "linking again", (5, 5, 2)).await;
    // A LID whose number the archive has never seen: its chat and contact move over.
    let carl_lid = "123123123123123@lid";
    store
        .insert_messages(vec![text(carl_lid, "k1", Some(carl_lid), 50, "hi")])
        .await
        .unwrap();
    store
        .upsert_contacts(vec![ContactUpdate::new(jid(carl_lid))])
        .await
        .unwrap();
    assert_counts(f, "a second LID", (6, 6, 3)).await;
    store
        .link_lid(jid(carl_lid), jid("31644444444@s.whatsapp.net"))
        .await
        .unwrap();
    assert_counts(f, "moving a LID to a new number", (6, 6, 3)).await;

    // Deleted for everyone: the row stays (without its content), so the counts do too.
    store
        .delete_message(jid(ADA), "c2".to_owned(), 60)
        .await
        .unwrap();
    assert_eq!(
        store
            .insert_messages(vec![text(ADA, "c2", None, 20, "two")])
            .await
            .unwrap(),
        0
    );
    store
        .edit_message(jid(ADA), "c1".to_owned(), "edited".to_owned(), 61)
        .await
        .unwrap();
    store
        .set_reaction(jid(ADA), "c1".to_owned(), jid(BOB), "👍".to_owned(), 62)
        .await
        .unwrap();
    store
        .set_delivery(jid(ADA), vec!["c2".to_owned()], Delivery::Read)
        .await
        .unwrap();
    assert_counts(f, "deletes, edits, reactions and receipts", (6, 6, 3)).await;

    store.clear_archive().await.unwrap();
    assert_counts(f, "clearing the archive", (0, 0, 0)).await;
    store
        .insert_messages(vec![text(ADA, "c1", Some(ADA), 10, "one")])
        .await
        .unwrap();
    assert_counts(f, "a message after clearing", (1, 1, 0)).await;
}

async fn the_counts_migration_counts_an_existing_archive(f: &Fixture) {
    f.store
        .insert_messages(vec![
            text(ADA, "m1", Some(ADA), 100, "hello"),
            text(GROUP, "m2", Some(BOB), 200, "hi all"),
        ])
        .await
        .unwrap();
    f.store
        .upsert_contacts(vec![ContactUpdate::new(jid(BOB))])
        .await
        .unwrap();
    // Back to the schema before the counts: without the table, the later ones, and their
    // migrations' records.
    let history = if f.url.sqlite_path().is_some() {
        "refinery_schema_history"
    } else {
        "archive_schema_history"
    };
    run_sql(
        f,
        &format!(
            "DROP TABLE archive_counts; DROP TABLE tool_requests;
             DROP TABLE polls; DROP TABLE poll_votes;
             DELETE FROM {history} WHERE name IN ('archive_counts', 'tool_requests', 'polls');"
        ),
    )
    .await;
    assert!(!f.store.health().await.schema_ok());
    let reopened = store::open(&f.url).await.unwrap();
    assert!(reopened.health().await.schema_ok());
    let stats = reopened.stats().await.unwrap();
    assert_eq!(
        (stats.message_count, stats.chat_count, stats.contact_count),
        (2, 2, 1)
    );
    assert_eq!(stats.last_message_at.map(|t| t.timestamp()), Some(200));
}

async fn missing_things_are_not_found(f: &Fixture) {
    let store = &*f.store;
    for err in [
        store.chat(jid(ADA)).await.map(drop).unwrap_err(),
        store
            .message(jid(ADA), "x".to_owned())
            .await
            .map(drop)
            .unwrap_err(),
        store
            .message_context(jid(ADA), "x".to_owned(), 1, 1)
            .await
            .map(drop)
            .unwrap_err(),
        store.contact(jid(ADA)).await.map(drop).unwrap_err(),
        store
            .delete_message(jid(ADA), "x".to_owned(), 1)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        assert!(
            err.to_string().contains("31611111111") || err.to_string().contains("no such"),
            "{err}"
        );
    }
    let err = store.link_lid(jid(ADA), jid(BOB)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

/// pg_trgm classifies characters by the database's `LC_CTYPE`: under `C` it makes no trigrams
/// of Cyrillic, Arabic or CJK words, and the store says so (a warning at open); under the
/// UTF-8 locale the test cluster has, like a Debian server's, it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_index_reports_an_ascii_only_locale() {
    let cluster = tokio::task::spawn_blocking(common::pg::PgCluster::start)
        .await
        .unwrap();
    let utf8 = DatabaseUrl::parse("test", &cluster.new_database()).unwrap();
    let store = whatsapp_mcp::store::PostgresStore::open(&utf8)
        .await
        .unwrap();
    assert_eq!(store.ascii_only_search_index().await.unwrap(), None);

    let ascii = DatabaseUrl::parse("test", &cluster.new_database_with_ctype("C")).unwrap();
    let store = whatsapp_mcp::store::PostgresStore::open(&ascii)
        .await
        .unwrap();
    assert_eq!(
        store.ascii_only_search_index().await.unwrap().as_deref(),
        Some("C")
    );
    // Searches still find every match there, only without the index's help.
    store
        .insert_messages(vec![text(ADA, "thanks", Some(ADA), 1, "Большое спасибо!")])
        .await
        .unwrap();
    assert_eq!(search(&store, "спасибо").await, ["thanks"]);
}

/// The database going away: calls fail with `Unavailable` (no panic, no hang), the status report
/// says so, and the same store works again once the server is back, without being reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_reported_and_recovered_from() {
    use whatsapp_mcp::app::AppContext;
    use whatsapp_mcp::report;
    use whatsapp_mcp::state::{EngineStatus, LinkState, StatusHandle};

    let mut cluster = tokio::task::spawn_blocking(common::pg::PgCluster::start)
        .await
        .unwrap();
    let url = cluster.new_database();
    let env = {
        let url = url.clone();
        move |key: &str| match key {
            "DATABASE_URL" => Some(url.clone()),
            "WHATSAPP_MCP_DATA_DIR" => Some("/nonexistent".to_owned()),
            _ => None,
        }
    };
    let config = whatsapp_mcp::config::Config::from_toml(
        "",
        std::path::Path::new("/test/config.toml"),
        &env,
    )
    .unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    store
        .insert_messages(vec![text(
            ADA,
            "before",
            Some(ADA),
            1,
            "stored before the outage",
        )])
        .await
        .unwrap();
    let ctx = AppContext::new(
        config,
        StatusHandle::new(EngineStatus::new(LinkState::EngineOff)),
        Arc::clone(&store),
        Arc::new(whatsapp_mcp::engine::NoEngine::new("tests")),
    );

    let mut cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    let err = store.stats().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let err = store
        .insert_messages(vec![text(ADA, "during", Some(ADA), 2, "lost?")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("password"), "{err}");
    let health = store.health().await;
    assert!(!health.connected && health.error.is_some(), "{health:?}");
    let status = report::build(&ctx).await;
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("archive unavailable")),
        "{:?}",
        status.error
    );
    assert!(!status.statistics.database_exists);

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again();
        cluster
    })
    .await
    .unwrap();
    // The caller retries the write it could not make; nothing else is needed to recover.
    store
        .insert_messages(vec![text(ADA, "during", Some(ADA), 2, "retried")])
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().message_count, 2);
    assert!(store.health().await.schema_ok());
    assert!(report::build(&ctx).await.error.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_ingest_refreshes_the_planner_statistics() {
    let f = postgres().await;
    let (client, connection) = tokio_postgres::connect(f.url.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let analyzed = || async {
        client
            .query_one(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'messages'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    // 60 chunks of 1 000, as a history sync delivers them; the store's own ANALYZE (not
    // autovacuum's, which sets last_autoanalyze) must follow once 50 000 rows are in.
    for chunk in 0..60 {
        assert!(
            !analyzed().await || chunk >= 50,
            "analysed after {chunk} chunks"
        );
        let batch = (0..1_000)
            .map(|i| {
                let n = chunk * 1_000 + i;
                text(ADA, &format!("bulk{n}"), Some(ADA), n, "history")
            })
            .collect();
        f.store.insert_messages(batch).await.unwrap();
    }
    let start = std::time::Instant::now();
    while !analyzed().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no ANALYZE of messages after 60 000 new rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
