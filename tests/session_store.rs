//! The WhatsApp session store through whatsapp-rust's own storage traits, on both backends:
//! everything written comes back equal after the store is dropped and reopened, the merge rules
//! match on both, concurrent openers migrate once, and a PostgreSQL outage mid-run gives clear
//! errors and heals without reopening.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pg::PgCluster;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::device::{CachedNoiseCert, CachedServerCertChain};
use wacore::store::error::StoreError as WaStoreError;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};
use whatsapp_mcp::config::DatabaseUrl;
use whatsapp_mcp::store::session;

/// Where a test's session store lives; keeps the SQLite directory or the cluster alive.
enum Place {
    Sqlite { _dir: tempfile::TempDir },
    Postgres(PgCluster),
}

impl Place {
    fn sqlite() -> (Self, DatabaseUrl) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("whatsapp.db").display());
        (
            Self::Sqlite { _dir: dir },
            DatabaseUrl::parse("test", &url).unwrap(),
        )
    }

    fn postgres() -> (Self, DatabaseUrl) {
        let cluster = PgCluster::start();
        let url = DatabaseUrl::parse("test", &cluster.new_database()).unwrap();
        (Self::Postgres(cluster), url)
    }
}

async fn open(url: &DatabaseUrl) -> Arc<dyn Backend> {
    session::open(url)
        .await
        .unwrap_or_else(|err| panic!("open {url}: {err}"))
}

/// A `Device` as whatsapp-rust persists it (its serde form skips the runtime-only fields).
fn persisted(device: &Device) -> serde_json::Value {
    serde_json::to_value(device).unwrap()
}

fn paired_device() -> Device {
    let mut device = Device::new();
    device.pn = Some("31612345678:7@s.whatsapp.net".parse().unwrap());
    device.lid = Some("100000012345678:7@lid".parse().unwrap());
    device.push_name = "Ada ✓".to_owned();
    // details = [1, 2, 3], accountSignatureKey = [9, 9], as protobuf.
    device.account = Some(Arc::new(
        wacore::store::device::account_serde::from_bytes(&[0x0a, 3, 1, 2, 3, 0x12, 2, 9, 9])
            .unwrap(),
    ));
    device.app_version_tertiary = u32::MAX;
    device.app_version_last_fetched_ms = 1_700_000_000_123;
    device.edge_routing_info = Some(vec![0, 1, 2, 255]);
    device.props_hash = Some("props-hash".to_owned());
    device.next_pre_key_id = 812;
    device.first_unupload_pre_key_id = 800;
    device.server_has_prekeys = true;
    device.nct_salt = Some(vec![7; 16]);
    device.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert {
            key: [0xab; 32],
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
        },
        leaf: CachedNoiseCert {
            key: [0xcd; 32],
            not_before: 1_700_000_500,
            not_after: 1_899_999_500,
        },
    });
    device.login_counter = 42;
    device.lid_migrated = true;
    device.last_signed_pre_key_rotation_ms = 1_700_000_000_999;
    device.read_receipts_disabled = true;
    device
}

fn hash_state() -> HashState {
    let mut hash = [0u8; 128];
    hash[0] = 0xff;
    hash[127] = 0x11;
    HashState {
        version: 42,
        hash,
        index_value_map: HashMap::from([
            ("index-a".to_owned(), vec![1, 2, 3]),
            ("index-b".to_owned(), vec![]),
        ]),
        mac_mismatch_fatal: true,
    }
}

fn device_list(user: &str) -> DeviceListRecord {
    DeviceListRecord {
        user: user.to_owned(),
        devices: vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(3, Some(7)).with_hosting(true),
        ],
        timestamp: 1_700_000_111,
        phash: Some("2:abcd".to_owned()),
        raw_id: Some(4_000_000_000),
    }
}

fn lid_mapping(lid: &str, phone: &str, updated_at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.to_owned(),
        phone_number: phone.to_owned(),
        created_at: 1_700_000_000,
        updated_at,
        learning_source: "usync".to_owned(),
    }
}

fn sync_key(byte: u8) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: vec![byte, 1, 2],
        timestamp: 1_700_000_000 + i64::from(byte),
    }
}

/// Writes one of everything through the traits.
async fn write_everything(store: &dyn Backend, device: &Device) {
    assert!(!store.exists().await.unwrap());
    assert!(store.load().await.unwrap().is_none());
    assert_eq!(store.create().await.unwrap(), session::DEVICE_ID);
    assert!(store.exists().await.unwrap());
    store.save(device).await.unwrap();

    // Identities and Signal sessions, single and batched.
    store
        .put_identity("31612345678@s.whatsapp.net", [1; 32])
        .await
        .unwrap();
    store
        .put_identities_batch(&[
            (Arc::from("31600000001:2@s.whatsapp.net"), [2; 32]),
            (Arc::from("31600000002@s.whatsapp.net"), [3; 32]),
            // A repeated key in one batch ends with its last value.
            (Arc::from("31600000002@s.whatsapp.net"), [4; 32]),
        ])
        .await
        .unwrap();
    store
        .put_session("31612345678@s.whatsapp.net", b"session record")
        .await
        .unwrap();
    store
        .put_sessions_batch(&[
            (
                Arc::from("100000012345678:7@lid"),
                Bytes::from_static(b"lid session"),
            ),
            (
                Arc::from("31600000001:2@s.whatsapp.net"),
                Bytes::from_static(b"second"),
            ),
        ])
        .await
        .unwrap();

    // Pre-keys: single, batched, marked uploaded, one removed.
    store.store_prekey(1, b"prekey 1", false).await.unwrap();
    store
        .store_prekeys_batch(
            &[
                (2, Bytes::from_static(b"prekey 2")),
                (3, Bytes::from_static(b"prekey 3")),
                (16_777_215, Bytes::from_static(b"prekey big")),
            ],
            false,
        )
        .await
        .unwrap();
    store.mark_prekeys_uploaded(&[1, 2]).await.unwrap();
    store.remove_prekey(3).await.unwrap();
    store.store_signed_prekey(1, b"signed 1").await.unwrap();
    store.store_signed_prekey(2, b"signed 2").await.unwrap();
    store.store_signed_prekey(3, b"signed 3").await.unwrap();
    store.remove_signed_prekey(3).await.unwrap();

    // Sender keys.
    store
        .put_sender_key("120363000000000001@g.us::31612345678::0", b"sender key")
        .await
        .unwrap();
    store
        .put_sender_keys_batch(&[(
            Arc::from("120363000000000001@g.us::31600000001::2"),
            Bytes::from_static(b"sender key 2"),
        )])
        .await
        .unwrap();

    // App-state keys, versions and mutation MACs.
    store.set_sync_key(b"key-a", sync_key(1)).await.unwrap();
    store.set_sync_key(b"key-b", sync_key(2)).await.unwrap();
    store
        .set_version("regular_high", hash_state())
        .await
        .unwrap();
    store
        .put_mutation_macs(
            "regular_high",
            42,
            &[
                AppStateMutationMAC {
                    index_mac: vec![1; 32],
                    value_mac: vec![10; 32],
                },
                AppStateMutationMAC {
                    index_mac: vec![2; 32],
                    value_mac: vec![20; 32],
                },
                AppStateMutationMAC {
                    index_mac: vec![3; 32],
                    value_mac: vec![30; 32],
                },
            ],
        )
        .await
        .unwrap();
    store
        .delete_mutation_macs("regular_high", &[vec![3; 32]])
        .await
        .unwrap();
    store
        .put_mutation_macs(
            "regular_low",
            1,
            &[AppStateMutationMAC {
                index_mac: vec![1; 32],
                value_mac: vec![99; 32],
            }],
        )
        .await
        .unwrap();
    store.clear_mutation_macs("regular_low").await.unwrap();

    // Protocol state.
    store
        .set_sender_key_status(
            "120363000000000001@g.us",
            &[
                ("31612345678:0@s.whatsapp.net", true),
                ("31600000001:2@s.whatsapp.net", false),
                ("31600000009:1@s.whatsapp.net", true),
            ],
        )
        .await
        .unwrap();
    store
        .delete_sender_key_device_rows(&["31600000009:1@s.whatsapp.net"])
        .await
        .unwrap();
    store
        .put_lid_mapping(&lid_mapping(
            "100000012345678",
            "31612345678",
            1_700_000_100,
        ))
        .await
        .unwrap();
    store
        .put_lid_mappings(&[
            lid_mapping("100000099999999", "31600000001", 1_700_000_050),
            lid_mapping("100000088888888", "31600000001", 1_700_000_200),
        ])
        .await
        .unwrap();
    store
        .save_base_key("31612345678.0", "MSG1", b"base key")
        .await
        .unwrap();
    store
        .update_device_list(device_list("31612345678"))
        .await
        .unwrap();
    store
        .update_device_lists(vec![device_list("100000012345678"), device_list("31699")])
        .await
        .unwrap();
    store.delete_devices("31699").await.unwrap();
    store
        .put_group_metadata("120363000000000001@g.us", b"group blob")
        .await
        .unwrap();
    store
        .put_tc_token(
            "100000012345678@lid",
            &TcTokenEntry {
                token: vec![5; 20],
                token_timestamp: 1_700_000_000,
                sender_timestamp: Some(1_700_000_001),
            },
        )
        .await
        .unwrap();
    store
        .store_sent_message("31612345678@s.whatsapp.net", "SENT1", b"payload 1")
        .await
        .unwrap();
    store
        .store_pending_inbound(
            "31612345678@s.whatsapp.net",
            "31612345678@s.whatsapp.net",
            "IN1",
            b"in 1",
        )
        .await
        .unwrap();
    store
        .store_pending_inbound_batch(&[
            PendingInboundRow {
                chat: "g@g.us",
                sender: "a@s.whatsapp.net",
                id: "IN2",
                message: b"in 2",
            },
            PendingInboundRow {
                chat: "g@g.us",
                sender: "b@s.whatsapp.net",
                id: "IN2",
                message: b"in 2 from b",
            },
        ])
        .await
        .unwrap();

    // Message secrets.
    store
        .put_msg_secret(
            "31612345678@s.whatsapp.net",
            "31612345678@s.whatsapp.net",
            "M1",
            &[8; 32],
        )
        .await
        .unwrap();
    let stored = store
        .put_msg_secrets(vec![MsgSecretEntry {
            chat: Arc::from("g@g.us"),
            sender: Arc::from("a@s.whatsapp.net"),
            msg_id: Arc::from("M2"),
            secret: [9; 32],
            expires_at: 1_900_000_000,
            message_ts: 1_700_000_000,
        }])
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

/// Reads everything back and compares it with what `write_everything` wrote.
async fn read_everything(store: &dyn Backend, device: &Device) {
    let loaded = store.load().await.unwrap().expect("the device row");
    assert_eq!(persisted(&loaded), persisted(device));
    assert!(store.exists().await.unwrap());

    assert_eq!(
        store
            .load_identity("31612345678@s.whatsapp.net")
            .await
            .unwrap(),
        Some([1; 32])
    );
    assert_eq!(
        store
            .load_identity("31600000001:2@s.whatsapp.net")
            .await
            .unwrap(),
        Some([2; 32])
    );
    assert_eq!(
        store
            .load_identity("31600000002@s.whatsapp.net")
            .await
            .unwrap(),
        Some([4; 32])
    );
    assert_eq!(
        store.load_identity("nobody@s.whatsapp.net").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_session("31612345678@s.whatsapp.net")
            .await
            .unwrap(),
        Some(Bytes::from_static(b"session record"))
    );
    assert_eq!(
        store.get_session("100000012345678:7@lid").await.unwrap(),
        Some(Bytes::from_static(b"lid session"))
    );
    assert!(
        store
            .has_session("31600000001:2@s.whatsapp.net")
            .await
            .unwrap()
    );
    assert!(!store.has_session("nobody@s.whatsapp.net").await.unwrap());
    assert!(
        store
            .has_signal_state_for_user("31612345678")
            .await
            .unwrap()
    );
    assert!(
        store
            .has_signal_state_for_user("31600000002")
            .await
            .unwrap()
    );
    assert!(!store.has_signal_state_for_user("3161234567").await.unwrap());

    assert_eq!(
        store.load_prekey(1).await.unwrap(),
        Some(Bytes::from_static(b"prekey 1"))
    );
    assert_eq!(store.load_prekey(3).await.unwrap(), None);
    let mut batch = store
        .load_prekeys_batch(&[1, 2, 3, 16_777_215])
        .await
        .unwrap();
    batch.sort_by_key(|(id, _)| *id);
    assert_eq!(
        batch,
        vec![
            (1, Bytes::from_static(b"prekey 1")),
            (2, Bytes::from_static(b"prekey 2")),
            (16_777_215, Bytes::from_static(b"prekey big")),
        ]
    );
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 16_777_215);
    assert_eq!(
        store.load_signed_prekey(2).await.unwrap(),
        Some(b"signed 2".to_vec())
    );
    let mut signed = store.load_all_signed_prekeys().await.unwrap();
    signed.sort();
    assert_eq!(
        signed,
        vec![(1, b"signed 1".to_vec()), (2, b"signed 2".to_vec())]
    );

    assert_eq!(
        store
            .get_sender_key("120363000000000001@g.us::31612345678::0")
            .await
            .unwrap(),
        Some(b"sender key".to_vec())
    );
    assert_eq!(
        store
            .get_sender_key("120363000000000001@g.us::31600000001::2")
            .await
            .unwrap(),
        Some(b"sender key 2".to_vec())
    );

    let key = store.get_sync_key(b"key-b").await.unwrap().expect("key-b");
    assert_eq!(
        (key.key_data, key.fingerprint, key.timestamp),
        (vec![2; 32], vec![2, 1, 2], 1_700_000_002)
    );
    assert!(store.get_sync_key(b"key-z").await.unwrap().is_none());
    assert_eq!(
        store.get_latest_sync_key_id().await.unwrap(),
        Some(b"key-b".to_vec())
    );
    let version = store.get_version("regular_high").await.unwrap();
    let expected = hash_state();
    assert_eq!(version.version, expected.version);
    assert_eq!(version.hash, expected.hash);
    assert_eq!(version.index_value_map, expected.index_value_map);
    assert_eq!(version.mac_mismatch_fatal, expected.mac_mismatch_fatal);
    assert_eq!(store.get_version("never_synced").await.unwrap().version, 0);
    assert_eq!(
        store
            .get_mutation_mac("regular_high", &[1; 32])
            .await
            .unwrap(),
        Some(vec![10; 32])
    );
    assert_eq!(
        store
            .get_mutation_mac("regular_high", &[3; 32])
            .await
            .unwrap(),
        None
    );
    let macs = store
        .get_mutation_macs("regular_high", &[[1; 32], [2; 32], [3; 32]])
        .await
        .unwrap();
    assert_eq!(
        macs,
        HashMap::from([([1; 32], vec![10; 32]), ([2; 32], vec![20; 32])])
    );
    assert_eq!(
        store
            .get_mutation_mac("regular_low", &[1; 32])
            .await
            .unwrap(),
        None
    );

    let mut devices = store
        .get_sender_key_devices("120363000000000001@g.us")
        .await
        .unwrap();
    devices.sort();
    assert_eq!(
        devices,
        vec![
            ("31600000001:2@s.whatsapp.net".to_owned(), false),
            ("31612345678:0@s.whatsapp.net".to_owned(), true),
        ]
    );
    let mapping = store
        .get_lid_mapping("100000012345678")
        .await
        .unwrap()
        .expect("mapping");
    assert_eq!(
        (
            mapping.phone_number.as_str(),
            mapping.created_at,
            mapping.updated_at
        ),
        ("31612345678", 1_700_000_000, 1_700_000_100)
    );
    // The phone's most recently updated LID wins.
    assert_eq!(
        store
            .get_pn_mapping("31600000001")
            .await
            .unwrap()
            .map(|m| m.lid),
        Some("100000088888888".to_owned())
    );
    assert_eq!(store.get_all_lid_mappings().await.unwrap().len(), 3);
    assert!(
        store
            .has_same_base_key("31612345678.0", "MSG1", b"base key")
            .await
            .unwrap()
    );
    assert!(
        !store
            .has_same_base_key("31612345678.0", "MSG1", b"other key")
            .await
            .unwrap()
    );
    let list = store
        .get_devices("100000012345678")
        .await
        .unwrap()
        .expect("device list");
    let want = device_list("100000012345678");
    assert_eq!(
        serde_json::to_value(&list).unwrap(),
        serde_json::to_value(&want).unwrap()
    );
    assert!(store.get_devices("31699").await.unwrap().is_none());
    assert_eq!(
        store
            .get_group_metadata("120363000000000001@g.us")
            .await
            .unwrap(),
        Some(b"group blob".to_vec())
    );
    let token = store
        .get_tc_token("100000012345678@lid")
        .await
        .unwrap()
        .expect("tc token");
    assert_eq!(
        (token.token, token.token_timestamp, token.sender_timestamp),
        (vec![5; 20], 1_700_000_000, Some(1_700_000_001))
    );
    assert_eq!(
        store.get_all_tc_token_jids().await.unwrap(),
        vec!["100000012345678@lid".to_owned()]
    );
    assert_eq!(
        store
            .get_pending_inbound("g@g.us", "b@s.whatsapp.net", "IN2")
            .await
            .unwrap(),
        Some(b"in 2 from b".to_vec())
    );
    assert_eq!(
        store
            .get_msg_secret(
                "31612345678@s.whatsapp.net",
                "31612345678@s.whatsapp.net",
                "M1"
            )
            .await
            .unwrap(),
        Some(vec![8; 32])
    );
    assert_eq!(
        store
            .get_msg_secret_with_ts("g@g.us", "a@s.whatsapp.net", "M2")
            .await
            .unwrap(),
        Some((vec![9; 32], 1_700_000_000))
    );
    // Taking a sent message consumes it.
    assert_eq!(
        store
            .take_sent_message("31612345678@s.whatsapp.net", "SENT1")
            .await
            .unwrap(),
        Some(b"payload 1".to_vec())
    );
    assert_eq!(
        store
            .take_sent_message("31612345678@s.whatsapp.net", "SENT1")
            .await
            .unwrap(),
        None
    );
}

async fn round_trip(_place: &Place, url: &DatabaseUrl) {
    let device = paired_device();
    {
        let store = open(url).await;
        write_everything(store.as_ref(), &device).await;
    }
    let store = open(url).await;
    read_everything(store.as_ref(), &device).await;
}

/// Deletions and the merge rules whatsapp-rust relies on, identical on both backends.
async fn merge_rules(_place: &Place, url: &DatabaseUrl) {
    let store = open(url).await;

    store
        .put_identity("a@s.whatsapp.net", [1; 32])
        .await
        .unwrap();
    store.delete_identity("a@s.whatsapp.net").await.unwrap();
    assert_eq!(store.load_identity("a@s.whatsapp.net").await.unwrap(), None);
    store.put_session("a@s.whatsapp.net", b"s").await.unwrap();
    store.delete_session("a@s.whatsapp.net").await.unwrap();
    assert!(!store.has_session("a@s.whatsapp.net").await.unwrap());
    store.put_sender_key("k", b"s").await.unwrap();
    store.delete_sender_key("k").await.unwrap();
    assert_eq!(store.get_sender_key("k").await.unwrap(), None);
    assert_eq!(store.get_max_prekey_id().await.unwrap(), 0);

    // Marking uploaded never brings back a consumed pre-key.
    store.store_prekey(5, b"p", false).await.unwrap();
    store.remove_prekey(5).await.unwrap();
    store.mark_prekeys_uploaded(&[5]).await.unwrap();
    assert_eq!(store.load_prekey(5).await.unwrap(), None);

    // A sync key of the wrong length reads as absent and is not "latest".
    store
        .set_sync_key(
            b"zzz-bad",
            AppStateSyncKey {
                key_data: vec![1; 16],
                fingerprint: vec![],
                timestamp: 1,
            },
        )
        .await
        .unwrap();
    store.set_sync_key(b"aaa-good", sync_key(3)).await.unwrap();
    assert!(store.get_sync_key(b"zzz-bad").await.unwrap().is_none());
    assert_eq!(
        store.get_latest_sync_key_id().await.unwrap(),
        Some(b"aaa-good".to_vec())
    );

    // tc tokens: the sender bucket only moves forward and keeps the token bytes; a received
    // token is newer-wins and keeps the sender bucket.
    let jid = "100000012345678@lid";
    store
        .touch_tc_token_sender_timestamp(jid, 200)
        .await
        .unwrap();
    let placeholder = store.get_tc_token(jid).await.unwrap().unwrap();
    assert_eq!(
        (placeholder.token.len(), placeholder.sender_timestamp),
        (0, Some(200))
    );
    store
        .store_received_tc_token(jid, b"real", 150)
        .await
        .unwrap();
    store
        .touch_tc_token_sender_timestamp(jid, 100)
        .await
        .unwrap();
    let entry = store.get_tc_token(jid).await.unwrap().unwrap();
    assert_eq!(
        (
            entry.token.as_slice(),
            entry.token_timestamp,
            entry.sender_timestamp
        ),
        (&b"real"[..], 150, Some(200))
    );
    store
        .store_received_tc_token(jid, b"stale", 140)
        .await
        .unwrap();
    store
        .store_received_tc_token(jid, b"fresh", 160)
        .await
        .unwrap();
    let entry = store.get_tc_token(jid).await.unwrap().unwrap();
    assert_eq!(
        (
            entry.token.as_slice(),
            entry.token_timestamp,
            entry.sender_timestamp
        ),
        (&b"fresh"[..], 160, Some(200))
    );
    // Expiry needs both halves stale.
    assert_eq!(store.delete_expired_tc_tokens(170, 150).await.unwrap(), 0);
    assert_eq!(store.delete_expired_tc_tokens(170, 250).await.unwrap(), 1);
    store.delete_tc_token("nobody").await.unwrap();

    // Message secrets: the later deadline wins, 0 ("never") beats any deadline, and a known
    // parent time is never replaced by 0.
    let secret = |expires_at, message_ts| MsgSecretEntry {
        chat: Arc::from("c@s.whatsapp.net"),
        sender: Arc::from("c@s.whatsapp.net"),
        msg_id: Arc::from("M"),
        secret: [1; 32],
        expires_at,
        message_ts,
    };
    store.put_msg_secrets(vec![secret(100, 50)]).await.unwrap();
    store.put_msg_secrets(vec![secret(80, 0)]).await.unwrap();
    assert_eq!(store.delete_expired_msg_secrets(90).await.unwrap(), 0);
    assert_eq!(
        store
            .get_msg_secret_with_ts("c@s.whatsapp.net", "c@s.whatsapp.net", "M")
            .await
            .unwrap(),
        Some((vec![1; 32], 50))
    );
    store.put_msg_secrets(vec![secret(0, 0)]).await.unwrap();
    assert_eq!(store.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);
    store.put_msg_secrets(vec![secret(10, 0)]).await.unwrap();
    assert_eq!(store.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);

    // Expiry of the retry and durability buffers by age.
    store.store_sent_message("c", "S", b"p").await.unwrap();
    store
        .store_pending_inbound("c", "s", "I", b"m")
        .await
        .unwrap();
    store
        .store_pending_inbound("c", "s", "J", b"m")
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sent_messages(0).await.unwrap(), 0);
    assert_eq!(store.delete_expired_pending_inbound(0).await.unwrap(), 0);
    store
        .delete_pending_inbound_batch(&[PendingInboundKey {
            chat: "c",
            sender: "s",
            id: "J",
        }])
        .await
        .unwrap();
    assert_eq!(
        store.get_pending_inbound("c", "s", "J").await.unwrap(),
        None
    );
    let future = wacore::time::now_secs() + 10;
    assert_eq!(store.delete_expired_sent_messages(future).await.unwrap(), 1);
    assert_eq!(
        store.delete_expired_pending_inbound(future).await.unwrap(),
        1
    );
    store
        .store_pending_inbound("c", "s", "K", b"m")
        .await
        .unwrap();
    store.delete_pending_inbound("c", "s", "K").await.unwrap();
    assert_eq!(
        store.get_pending_inbound("c", "s", "K").await.unwrap(),
        None
    );

    // Group-wide and global clearing; group metadata and base keys deletion.
    store
        .set_sender_key_status("g1@g.us", &[("d1", true), ("d2", true)])
        .await
        .unwrap();
    store
        .set_sender_key_status("g2@g.us", &[("d1", true)])
        .await
        .unwrap();
    store.clear_sender_key_devices("g1@g.us").await.unwrap();
    assert!(
        store
            .get_sender_key_devices("g1@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_sender_key_devices("g2@g.us").await.unwrap().len(),
        1
    );
    store.clear_all_sender_key_devices().await.unwrap();
    assert!(
        store
            .get_sender_key_devices("g2@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    store.put_group_metadata("g1@g.us", b"x").await.unwrap();
    store.delete_group_metadata("g1@g.us").await.unwrap();
    assert_eq!(store.get_group_metadata("g1@g.us").await.unwrap(), None);
    store.save_base_key("a", "m", b"k").await.unwrap();
    store.delete_base_key("a", "m").await.unwrap();
    assert!(!store.has_same_base_key("a", "m", b"k").await.unwrap());

    // Creating a device twice is refused, not silently overwritten.
    store.create().await.unwrap();
    assert!(store.create().await.is_err());
}

/// Many processes' worth of openers at once on an empty database: all succeed, and on
/// PostgreSQL each migration is recorded once and the schema is complete.
async fn concurrent_openers(place: &Place, url: &DatabaseUrl) {
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { session::open(&url).await.map(|_| ()) })
        })
        .collect();
    for opener in openers {
        opener
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("concurrent open: {err}"));
    }
    let store = open(url).await;
    store.put_identity("a", [1; 32]).await.unwrap();
    assert_eq!(store.load_identity("a").await.unwrap(), Some([1; 32]));
    let Place::Postgres(cluster) = place else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM wa_session_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap_or_else(|err| panic!("history table: {err}\n{}", cluster.log()))
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1]);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'wa\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 19, "18 wa_ tables and the history table");
}

/// Each check once per backend: `on_sqlite::name` and `on_postgres::name`.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (place, url) = super::Place::sqlite();
                    super::$check(&place, &url).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (place, url) = super::Place::postgres();
                    super::$check(&place, &url).await;
                }
            )*
        }
    };
}

on_both_backends!(
    round_trip,
    merge_rules,
    concurrent_openers,
    wipe_leaves_the_archive
);

/// The error and its causes, as an operator would read them in the log.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Runs `call` until it returns within `limit`; a hung call fails the test instead of the
/// test hanging.
async fn bounded<T>(limit: Duration, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, call)
        .await
        .expect("the call must return, not hang, while the database is away")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_clear_errors_and_heals_without_reopening() {
    let (mut place, url) = Place::postgres();
    let store = open(&url).await;
    store.create().await.unwrap();
    store
        .put_session("a@s.whatsapp.net", b"before")
        .await
        .unwrap();

    let Place::Postgres(cluster) = &mut place else {
        unreachable!()
    };
    cluster.stop();

    let started = Instant::now();
    let read = bounded(
        Duration::from_secs(30),
        store.get_session("a@s.whatsapp.net"),
    )
    .await;
    let write = bounded(
        Duration::from_secs(30),
        store.put_session("a@s.whatsapp.net", b"x"),
    )
    .await;
    let load = bounded(Duration::from_secs(30), store.load()).await;
    for err in [read.err(), write.err(), load.err()] {
        let err = err.expect("calls fail while the database is down");
        assert!(
            matches!(err, WaStoreError::Connection(_)),
            "an outage is a connection error: {err:?}"
        );
        let text = error_chain(&err);
        assert!(text.contains("database unavailable"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    cluster.start_again();
    // The same store recovers on its own: no reopen, the pool replaces dead connections.
    assert_eq!(
        store.get_session("a@s.whatsapp.net").await.unwrap(),
        Some(Bytes::from_static(b"before"))
    );
    store
        .put_session("a@s.whatsapp.net", b"after")
        .await
        .unwrap();
    assert_eq!(
        store.get_session("a@s.whatsapp.net").await.unwrap(),
        Some(Bytes::from_static(b"after"))
    );
    assert!(store.exists().await.unwrap());
}

/// Rows per table of the database at `url` (every table, whoever created it).
async fn row_counts(url: &DatabaseUrl) -> std::collections::BTreeMap<String, i64> {
    let mut counts = std::collections::BTreeMap::new();
    if let Some(path) = url.sqlite_path() {
        let conn = rusqlite::Connection::open(path).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for table in tables {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
                    row.get(0)
                })
                .unwrap();
            counts.insert(table, n);
        }
    } else {
        let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let tables = client
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .unwrap();
        for row in tables {
            let table: String = row.get(0);
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
                .await
                .unwrap()
                .get(0);
            counts.insert(table, n);
        }
    }
    counts
}

/// Migration histories and SQLite's own tables: not session data.
fn is_bookkeeping(table: &str) -> bool {
    table.starts_with("sqlite_")
        || table.contains("schema_migrations")
        || table.contains("schema_history")
}

/// `logout` wipes the session: every session row goes, so the next start links as a new device,
/// while the archive beside it (same SQLite file, or same PostgreSQL database) is untouched.
async fn wipe_leaves_the_archive(_place: &Place, url: &DatabaseUrl) {
    use whatsapp_mcp::jid::Jid;
    use whatsapp_mcp::store::model::NewMessage;

    let archive = whatsapp_mcp::store::open(url).await.unwrap();
    archive
        .insert_messages(vec![NewMessage {
            chat: Jid::parse("31611111111").unwrap(),
            id: "kept".to_owned(),
            sender: None,
            timestamp: 1,
            from_me: true,
            text: Some("still here after logout".to_owned()),
            caption: None,
            quoted_id: None,
            media: None,
        }])
        .await
        .unwrap();
    // Whatever exists before the session store is created belongs to the archive.
    let archive_tables: Vec<String> = row_counts(url).await.into_keys().collect();
    let store = open(url).await;
    write_everything(&*store, &paired_device()).await;
    drop(store);
    assert!(session::health(url).await.initialized);
    let filled = row_counts(url).await;

    whatsapp_mcp::store::session::wipe_session(url)
        .await
        .unwrap();

    let reopened = open(url).await;
    assert!(
        !reopened.exists().await.unwrap(),
        "the device identity is gone"
    );
    assert!(reopened.load().await.unwrap().is_none());
    assert!(
        reopened
            .load_identity("31612345678@s.whatsapp.net")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(archive.stats().await.unwrap().message_count, 1);
    // Every session table is empty, so a table the wipe does not know of fails here; the
    // archive's tables (created before the session store) keep their rows.
    let wiped = row_counts(url).await;
    let session_tables: Vec<_> = filled
        .iter()
        .filter(|(table, _)| !archive_tables.contains(table) && !is_bookkeeping(table))
        .collect();
    assert!(
        session_tables.iter().filter(|(_, n)| **n > 0).count() >= 10,
        "the session tables were filled: {filled:?}"
    );
    for (table, _) in session_tables {
        assert_eq!(
            wiped[table], 0,
            "{table} kept rows after the wipe: {wiped:?}"
        );
    }
    // A wiped store takes a new device, as a fresh link does.
    assert_eq!(reopened.create().await.unwrap(), session::DEVICE_ID);
}
