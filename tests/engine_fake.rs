//! The ingest path and the engine actions, driven by the fake engine, on both backends.
#![cfg(feature = "fake-engine")]

mod common;

use std::sync::Arc;

use whatsapp_mcp::config::DatabaseUrl;
use whatsapp_mcp::engine::fake::{Action, DEMO_ADA, DEMO_ADA_LID, DEMO_GROUP, FakeEngine};
use whatsapp_mcp::engine::ingest::{EngineEvent, Ingest};
use whatsapp_mcp::engine::{Engine, EngineError, MediaKind, OutgoingFile, OutgoingText};
use whatsapp_mcp::jid::Jid;
use whatsapp_mcp::state::{ArchiveChange, EngineStatus, LinkState, StatusHandle};
use whatsapp_mcp::store::model::{ChatQuery, MessageQuery, NewMessage, Page};
use whatsapp_mcp::store::{self, Store};

struct Rig {
    engine: FakeEngine,
    store: Arc<dyn Store>,
    status: StatusHandle,
    media: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _cluster: Option<common::pg::PgCluster>,
}

async fn rig(postgres: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (url, cluster) = if postgres {
        let cluster = tokio::task::spawn_blocking(common::pg::PgCluster::start)
            .await
            .unwrap();
        (cluster.new_database(), Some(cluster))
    } else {
        (
            format!("sqlite://{}", dir.path().join("wa.db").display()),
            None,
        )
    };
    let store = store::open(&DatabaseUrl::parse("test", &url).unwrap())
        .await
        .unwrap();
    let status = StatusHandle::new(EngineStatus::new(LinkState::NotLinked));
    let media = dir.path().join("media");
    let engine = FakeEngine::new(
        Ingest::new(Arc::clone(&store), status.clone()),
        media.clone(),
    );
    Rig {
        engine,
        store,
        status,
        media,
        _dir: dir,
        _cluster: cluster,
    }
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

async fn history_sync_lands_in_the_archive(postgres: bool) {
    let rig = rig(postgres).await;
    let states = rig.status.subscribe();
    rig.engine.play_history(40, 3000).await.unwrap();
    let stats = rig.store.stats().await.unwrap();
    assert_eq!((stats.message_count, stats.chat_count), (3000, 40));
    let status = rig.status.snapshot();
    assert_eq!(status.state, LinkState::Connected);
    assert_eq!(status.sync.messages_received, 3000);
    assert_eq!(status.sync.chunks_received, 6);
    assert_eq!(
        (status.sync.active, status.sync.percent),
        (false, Some(100))
    );
    assert!(states.has_changed().unwrap());
    // Replaying the same history changes nothing.
    rig.engine.play_history(40, 3000).await.unwrap();
    assert_eq!(rig.store.stats().await.unwrap().message_count, 3000);
    let newest = rig
        .store
        .list_messages(MessageQuery {
            page: Page::new(1, 0),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].id, "HIST00002999");
}

async fn the_demo_person_with_a_lid_is_one_chat(postgres: bool) {
    let rig = rig(postgres).await;
    rig.engine.seed_demo().await.unwrap();
    let chats = rig.store.list_chats(ChatQuery::default()).await.unwrap();
    assert_eq!(chats.len(), 3, "{chats:?}");
    let group = rig
        .store
        .list_messages(MessageQuery {
            chat: Some(jid(DEMO_GROUP)),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    let first = group.iter().find(|m| m.id == "DEMO-G1").unwrap();
    assert_eq!(first.sender_jid.as_deref(), Some(DEMO_ADA));
    assert_eq!(first.sender_name.as_deref(), Some("Ada Lovelace"));
    let via_lid = rig.store.chat(jid(DEMO_ADA_LID)).await.unwrap();
    assert_eq!(via_lid.jid, DEMO_ADA);
    let members = rig.store.participants(jid(DEMO_GROUP)).await.unwrap();
    assert_eq!(members.len(), 3);
}

async fn sends_are_archived_and_recorded(postgres: bool) {
    let rig = rig(postgres).await;
    let ada = jid(DEMO_ADA);
    let err = rig
        .engine
        .send_text(ada.clone(), OutgoingText::plain("hi"))
        .await
        .unwrap_err();
    assert_eq!(err, EngineError::NotLinked);
    rig.engine.seed_demo().await.unwrap();
    let sent = rig
        .engine
        .send_text(
            ada.clone(),
            OutgoingText {
                reply_to: Some("DEMO-A1".to_owned()),
                ..OutgoingText::plain("On my way")
            },
        )
        .await
        .unwrap();
    assert!(sent.from_me);
    assert_eq!(sent.quoted_id.as_deref(), Some("DEMO-A1"));
    let latest = rig
        .store
        .chat(ada.clone())
        .await
        .unwrap()
        .last_message
        .unwrap();
    assert_eq!(latest.id, sent.id);
    assert_eq!(latest.text.as_deref(), Some("On my way"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("menu.pdf");
    std::fs::write(&path, b"%PDF-1.4 menu").unwrap();
    let file = OutgoingFile::new(
        std::fs::File::open(&path).unwrap(),
        path,
        "menu.pdf".to_owned(),
        "application/pdf".to_owned(),
        u64::MAX,
    );
    let doc = rig
        .engine
        .send_file(
            ada.clone(),
            file,
            MediaKind::Document,
            Some("tonight's menu".to_owned()),
        )
        .await
        .unwrap();
    let media = doc.media.unwrap();
    assert_eq!(
        (media.media_type.as_str(), media.file_length),
        ("document", Some(13))
    );
    rig.engine
        .react(ada.clone(), "DEMO-A3".to_owned(), "👍".to_owned())
        .await
        .unwrap();
    let reacted = rig
        .store
        .message(ada.clone(), "DEMO-A3".to_owned())
        .await
        .unwrap();
    assert_eq!(reacted.reactions[0].emoji, "👍");
    rig.engine
        .mark_read(ada.clone(), vec!["DEMO-A4".to_owned()])
        .await
        .unwrap();
    assert_eq!(rig.store.chat(ada.clone()).await.unwrap().unread_count, 0);
    let actions = rig.engine.actions();
    assert!(matches!(&actions[0], Action::SendText { text, .. } if text == "On my way"));
    assert_eq!(actions.len(), 4);
}

async fn media_downloads_stay_in_the_media_dir_and_are_reused(postgres: bool) {
    let rig = rig(postgres).await;
    rig.engine.seed_demo().await.unwrap();
    let first = rig
        .engine
        .download_media(jid(DEMO_ADA), "DEMO-A6".to_owned())
        .await
        .unwrap();
    assert!(first.path.starts_with(&rig.media), "{first:?}");
    assert!(!first.reused);
    assert_eq!(
        std::fs::read(&first.path).unwrap(),
        whatsapp_mcp::engine::fake::DEMO_IMAGE
    );
    let again = rig
        .engine
        .download_media(jid(DEMO_ADA), "DEMO-A6".to_owned())
        .await
        .unwrap();
    assert_eq!(again.path, first.path);
    assert!(again.reused);
    // A corrupted copy is replaced, not served.
    std::fs::write(&first.path, b"tampered").unwrap();
    let repaired = rig
        .engine
        .download_media(jid(DEMO_ADA), "DEMO-A6".to_owned())
        .await
        .unwrap();
    assert!(!repaired.reused);
    let entries: Vec<_> = std::fs::read_dir(&rig.media).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the one file, no leftovers");
    let err = rig
        .engine
        .download_media(jid(DEMO_ADA), "DEMO-A1".to_owned())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no media"), "{err}");
}

async fn connection_trouble_is_published(postgres: bool) {
    let rig = rig(postgres).await;
    rig.engine.seed_demo().await.unwrap();
    rig.engine
        .emit(EngineEvent::Disconnected {
            reason: "network down".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(rig.status.snapshot().state, LinkState::Disconnected);
    let err = rig
        .engine
        .send_text(jid(DEMO_ADA), OutgoingText::plain("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Disconnected(_)), "{err}");
    rig.engine.emit(EngineEvent::StreamReplaced).await.unwrap();
    let status = rig.status.snapshot();
    assert_eq!(status.state, LinkState::StreamReplaced);
    assert!(status.headline().contains("another client"));
    rig.engine
        .emit(EngineEvent::LoggedOut {
            reason: "removed on the phone".to_owned(),
        })
        .await
        .unwrap();
    let status = rig.status.snapshot();
    assert_eq!(status.state, LinkState::LoggedOut);
    assert!(status.account.is_none());
    // The archive survives a logout.
    assert!(rig.store.stats().await.unwrap().message_count > 0);
}

/// An incoming text in `chat`, as the real engine hands it over.
fn incoming(chat: &str, id: &str) -> NewMessage {
    NewMessage {
        sender: Some(jid(chat)),
        from_me: false,
        text: Some("push".to_owned()),
        ..NewMessage::ours(jid(chat), id.to_owned())
    }
}

/// Everything announced so far.
fn announced(feed: &mut tokio::sync::broadcast::Receiver<ArchiveChange>) -> Vec<ArchiveChange> {
    std::iter::from_fn(|| feed.try_recv().ok()).collect()
}

async fn committed_changes_are_announced_under_the_archives_jid(postgres: bool) {
    let rig = rig(postgres).await;
    rig.engine.seed_demo().await.unwrap();
    let mut feed = rig.status.follow_changes();
    let messages = |batch: Vec<NewMessage>| EngineEvent::Messages(batch);
    // Two messages of one chat are one change; a chat reached by the contact's LID is
    // announced under the JID the archive keeps for it.
    rig.engine
        .emit(messages(vec![
            incoming(DEMO_ADA, "PUSH-1"),
            incoming(DEMO_ADA, "PUSH-2"),
        ]))
        .await
        .unwrap();
    rig.engine
        .emit(messages(vec![incoming(DEMO_ADA_LID, "PUSH-3")]))
        .await
        .unwrap();
    let ada = ArchiveChange::Chat {
        chat: jid(DEMO_ADA),
        new: false,
    };
    assert_eq!(announced(&mut feed), [ada.clone(), ada.clone()]);
    // A chat the archive did not hold is new, once.
    let stranger = "31633333333@s.whatsapp.net";
    for id in ["PUSH-4", "PUSH-5"] {
        rig.engine
            .emit(messages(vec![incoming(stranger, id)]))
            .await
            .unwrap();
    }
    assert_eq!(
        announced(&mut feed),
        [
            ArchiveChange::Chat {
                chat: jid(stranger),
                new: true
            },
            ArchiveChange::Chat {
                chat: jid(stranger),
                new: false
            },
        ]
    );
    // Reactions are changes of their chat; a history chunk may change any.
    rig.engine
        .emit(EngineEvent::Reaction {
            chat: jid(DEMO_ADA),
            message_id: "PUSH-1".to_owned(),
            sender: jid(DEMO_ADA),
            emoji: "👍".to_owned(),
            timestamp: 1_767_225_900,
        })
        .await
        .unwrap();
    assert_eq!(announced(&mut feed), [ada]);
    rig.engine.play_history(2, 10).await.unwrap();
    assert!(announced(&mut feed).contains(&ArchiveChange::Many));
    // After a logout that wipes the archive, a chat that comes back is new again.
    rig.engine.logout(true).await.unwrap();
    assert_eq!(announced(&mut feed), [ArchiveChange::Many]);
    rig.engine
        .emit(messages(vec![incoming(DEMO_ADA, "PUSH-6")]))
        .await
        .unwrap();
    assert_eq!(
        announced(&mut feed),
        [ArchiveChange::Chat {
            chat: jid(DEMO_ADA),
            new: true
        }]
    );
    // With nobody following, the writer skips the work.
    drop(feed);
    assert!(!rig.status.changes_followed());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test] async fn $name() { super::$name(false).await; } )*
        }
        mod on_postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(true).await; } )*
        }
    };
}

on_both!(
    history_sync_lands_in_the_archive,
    the_demo_person_with_a_lid_is_one_chat,
    sends_are_archived_and_recorded,
    media_downloads_stay_in_the_media_dir_and_are_reused,
    connection_trouble_is_published,
    committed_changes_are_announced_under_the_archives_jid,
);
