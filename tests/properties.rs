//! Property tests: JID parsing (canonical forms are fixed points, devices are dropped, phone
//! spellings agree, malformed input is refused, nothing panics) and the paging and time
//! arguments of the MCP tools (any value either works within the page bounds or is refused
//! with a message naming the problem; never a panic, a server error or a database error).

mod mcp_support;

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use whatsapp_mcp::jid::Jid;

use mcp_support::{ALICE, Client, GROUP, rig};

const SERVERS: [&str; 5] = ["s.whatsapp.net", "lid", "g.us", "broadcast", "newsletter"];

/// Largest page the tools return (store::model::MAX_PAGE_SIZE).
const MAX_PAGE: u64 = 200;

/// Strings shaped like JIDs, with the usual ways they go wrong.
fn jid_like() -> impl Strategy<Value = String> {
    let user = prop_oneof![
        "[0-9]{1,22}",
        "[0-9]{1,15}:[0-9]{1,3}",
        "[0-9]{1,15}\\.[0-9]:[0-9]{1,2}",
        "[0-9]{6,18}-[0-9]{6,12}",
        "[0-9a-zA-Z.:_+ -]{0,12}",
        "",
    ];
    let server = prop_oneof![
        proptest::sample::select(SERVERS.to_vec()).prop_map(str::to_owned),
        Just("S.WhatsApp.NET".to_owned()),
        Just("c.us".to_owned()),
        "[a-z.]{0,12}",
    ];
    (user, server, "[ \t]{0,2}")
        .prop_map(|(user, server, pad)| format!("{pad}{user}@{server}{pad}"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(2000)
    })]

    #[test]
    fn parsing_never_panics(input in "\\PC{0,40}") {
        let _ = Jid::parse(&input);
        let _ = Jid::from_phone(&input);
    }

    #[test]
    fn a_parsed_jid_is_canonical(input in jid_like()) {
        if let Ok(jid) = Jid::parse(&input) {
            // The canonical form parses to itself.
            prop_assert_eq!(Jid::parse(jid.as_str()), Ok(jid.clone()));
            let (user, server) = jid.as_str().split_once('@').expect("one @");
            prop_assert!(!user.is_empty(), "{input:?} → {jid}");
            prop_assert!(!user.contains([':', '@', ' ']), "{input:?} → {jid}");
            prop_assert!(SERVERS.contains(&server), "{input:?} → {jid}");
            prop_assert_eq!(jid.user(), user);
            prop_assert_eq!(jid.server(), server);
            if server != "g.us" {
                prop_assert!(!user.contains('-'), "{input:?} → {jid}");
            }
            if matches!(server, "s.whatsapp.net" | "lid") {
                prop_assert!(user.bytes().all(|b| b.is_ascii_digit()), "{input:?} → {jid}");
            }
            if server == "g.us" {
                let mut parts = user.split('-');
                let well_formed = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    && parts.next().is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    && parts.next().is_none();
                prop_assert!(well_formed, "{input:?} → {jid}");
            }
        }
    }

    #[test]
    fn devices_and_agents_are_dropped(user in "[0-9]{1,20}", agent in "(\\.[0-9])?", device in "[0-9]{1,3}") {
        let bare = Jid::parse(&format!("{user}@s.whatsapp.net")).unwrap();
        let with_device = Jid::parse(&format!("{user}{agent}:{device}@s.whatsapp.net")).unwrap();
        prop_assert_eq!(&with_device, &bare);
        prop_assert_eq!(Jid::parse(&format!("{user}@c.us")).unwrap(), bare);
    }

    #[test]
    fn phone_spellings_agree(digits in "[1-9][0-9]{6,14}", seps in proptest::collection::vec("[ ()-]{0,2}", 15)) {
        let mut spelled = String::from("+");
        for (i, c) in digits.chars().enumerate() {
            spelled.push(c);
            spelled.push_str(&seps[i % seps.len()]);
        }
        let expected = format!("{digits}@s.whatsapp.net");
        prop_assert_eq!(Jid::from_phone(&spelled).unwrap().to_string(), expected.clone());
        prop_assert_eq!(Jid::parse(&spelled).unwrap().to_string(), expected.clone());
        prop_assert_eq!(Jid::parse(&format!("00{digits}")).unwrap().to_string(), expected);
    }

    #[test]
    fn phone_numbers_of_the_wrong_length_are_refused(digits in prop_oneof!["[0-9]{1,6}", "[0-9]{16,30}"]) {
        let err = Jid::from_phone(&format!("+{digits}")).unwrap_err().to_string();
        prop_assert!(err.contains("7 to 15 digits"), "{err}");
    }

    #[test]
    fn user_jids_with_letters_are_refused(user in "[0-9]{0,5}[a-zA-Z_][0-9a-zA-Z]{0,5}", server in "(s\\.whatsapp\\.net|lid)") {
        let jid = format!("{user}@{server}");
        prop_assert!(Jid::parse(&jid).is_err(), "{}", jid);
    }
}

/// A paging or count argument: valid numbers of any size, and the JSON values that are not one.
fn count_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any::<u32>().prop_map(|n| json!(n)),
        2 => (0u32..=250).prop_map(|n| json!(n)),
        1 => prop_oneof![
            Just(json!(-1)),
            Just(json!(4_294_967_296_u64)),
            Just(json!(i64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(1.5)),
            Just(json!(1e300)),
            Just(json!("10")),
            Just(Value::Null),
            Just(json!([1])),
        ],
    ]
}

/// A time argument: ISO-8601 from the far past to the far future, and text that is not one.
fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i32..=9999, 1u32..=12, 1u32..=28, 0u32..24, -14i32..=14).prop_map(
            |(y, mo, d, h, off)| {
                json!(format!("{y:04}-{mo:02}-{d:02}T{h:02}:00:00{off:+03}:00"))
            }
        ),
        (-300_000i32..=300_000, 1u32..=12, 1u32..=28)
            .prop_map(|(y, mo, d)| json!(format!("{y:+}-{mo:02}-{d:02}"))),
        "\\PC{0,24}".prop_map(|s| json!(s)),
        Just(json!("2025-02-30")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!(1_700_000_000)),
    ]
}

/// A tool call with generated paging, context and time arguments.
fn paging_call() -> impl Strategy<Value = (&'static str, Value)> {
    let limit_page = || (count_value(), count_value());
    prop_oneof![
        (
            limit_page(),
            time_value(),
            time_value(),
            any::<bool>(),
            count_value(),
            count_value()
        )
            .prop_map(|((limit, page), after, before, context, cb, ca)| {
                (
                    "list_messages",
                    json!({"limit": limit, "page": page, "after": after, "before": before,
                    "include_context": context, "context_before": cb, "context_after": ca}),
                )
            }),
        limit_page()
            .prop_map(|(limit, page)| ("list_chats", json!({"limit": limit, "page": page}))),
        limit_page().prop_map(|(limit, page)| (
            "search_contacts",
            json!({"query": "a", "limit": limit, "page": page})
        )),
        limit_page().prop_map(|(limit, page)| (
            "get_contact_chats",
            json!({"jid": ALICE, "limit": limit, "page": page})
        )),
        limit_page()
            .prop_map(|(limit, page)| ("list_groups", json!({"limit": limit, "page": page}))),
        (count_value(), count_value()).prop_map(|(before, after)| {
            (
                "get_message_context",
                json!({"message_id": "G2", "chat_jid": GROUP, "before": before, "after": after}),
            )
        }),
    ]
}

fn as_u32(value: &Value) -> Option<u64> {
    value.as_u64().filter(|n| *n <= u64::from(u32::MAX))
}

#[test]
fn paging_and_time_arguments_work_or_are_refused_clearly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rig = runtime.block_on(rig(|_| {}));
    let client = RefCell::new(Client::new(rig.app("127.0.0.1:50000")));
    runtime.block_on(client.borrow_mut().initialize());
    let mut runner = TestRunner::new(RunnerConfig {
        failure_persistence: None,
        ..RunnerConfig::with_cases(1000)
    });
    let outcome = runner.run(&paging_call(), |(tool, arguments)| {
        let mut client = client.borrow_mut();
        let response = runtime.block_on(client.request(
            "tools/call",
            json!({"name": tool, "arguments": arguments.clone()}),
        ));
        let numbers_valid = [
            "limit",
            "page",
            "context_before",
            "context_after",
            "before",
            "after",
        ]
        .iter()
        .filter(|key| !(tool == "list_messages" && matches!(**key, "before" | "after")))
        .filter_map(|key| arguments.get(*key))
        .all(|value| as_u32(value).is_some());
        // A refusal comes as a protocol error or as a tool error, depending on where the
        // arguments were found wanting; either way it has to say why.
        let result = &response["result"];
        let refusal = match response.get("error") {
            Some(error) => Some(error["message"].as_str().unwrap_or_default().to_owned()),
            None if result["isError"] == json!(true) => Some(
                result["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => None,
        };
        if !numbers_valid {
            let message = refusal.unwrap_or_default();
            prop_assert!(
                message.contains("u32") || message.contains("invalid"),
                "{tool} {arguments}: a value that is no u32 was not refused clearly: {response}"
            );
            return Ok(());
        }
        let times_are_text = tool != "list_messages"
            || ["after", "before"]
                .iter()
                .all(|key| arguments.get(*key).is_none_or(Value::is_string));
        if !times_are_text {
            let message = refusal.unwrap_or_default();
            prop_assert!(
                message.contains("expected a string"),
                "{arguments}: a time that is no text was not refused clearly: {response}"
            );
            return Ok(());
        }
        if let Some(message) = refusal {
            // With valid numbers only a time may be refused, and the refusal names the field.
            prop_assert_eq!(tool, "list_messages", "{}: {}", arguments, message);
            prop_assert!(message.contains("ISO-8601"), "{arguments}: {message}");
            prop_assert!(
                message.starts_with("after:") || message.starts_with("before:"),
                "{message}"
            );
            return Ok(());
        }
        let content = &result["structuredContent"];
        if let Some(limit) = arguments.get("limit").and_then(as_u32) {
            let cap = limit.clamp(1, MAX_PAGE);
            if let Some(echoed) = content.get("limit") {
                prop_assert_eq!(echoed.as_u64(), Some(cap), "{}", content);
            }
            let count = content["count"].as_u64().unwrap_or(u64::MAX);
            prop_assert!(count <= cap, "{tool}: {count} rows for limit {limit}");
        }
        if let (Some(page), Some(echoed)) =
            (arguments.get("page").and_then(as_u32), content.get("page"))
        {
            prop_assert_eq!(echoed.as_u64(), Some(page), "{}", content);
        }
        if tool == "get_message_context" {
            for side in ["before", "after"] {
                let asked = as_u32(&arguments[side]).unwrap_or(0).min(MAX_PAGE);
                let got = content[side].as_array().map_or(0, Vec::len) as u64;
                prop_assert!(got <= asked, "{side}: {got} messages for {asked}");
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Nothing of this reached the engine.
    assert!(rig.calls().is_empty(), "{:?}", rig.calls());
}
