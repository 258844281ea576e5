//! Path tricks against the outbox through real tool calls (`send_file`, `send_audio_message`
//! on the in-process MCP router): parent steps, symlinks to files and directories outside,
//! chains of symlinks, absolute paths, names too long for the kernel, NUL bytes, names that
//! are not UTF-8, FIFOs, and a file swapped for a symlink after it was sent once. Every one is
//! refused with a message that says what to do, no secret byte is echoed, and the engine is
//! asked for nothing but the one legitimate send.

mod mcp_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::json;

use mcp_support::{ALICE, Call, Client, rig};

const SECRET: &str = "private bytes that must stay outside the outbox";

/// The kinds of refusal a path may get; each tells the caller how to proceed.
const REFUSALS: [&str; 4] = [
    "outside the outbox",
    "not a regular file",
    "no such file",
    "cannot be read",
];

#[tokio::test]
async fn every_path_trick_is_refused_and_nothing_is_sent() {
    let rig = rig(|_| {}).await;
    let outbox = rig.outbox();
    let outside = rig.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    // A directory outside whose name is not UTF-8, holding a file.
    let odd_dir = outside.join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&odd_dir).unwrap();
    std::fs::write(odd_dir.join("secret.txt"), SECRET).unwrap();

    std::fs::write(outbox.join("photo.jpg"), b"\xFF\xD8\xFF\xE0jpeg").unwrap();
    std::fs::create_dir(outbox.join("sub")).unwrap();
    symlink(outside.join("secret.txt"), outbox.join("report.pdf")).unwrap();
    symlink(&outside, outbox.join("shared")).unwrap();
    symlink(outbox.join("report.pdf"), outbox.join("chain.pdf")).unwrap();
    symlink("../outside/secret.txt", outbox.join("relative.pdf")).unwrap();
    symlink(&odd_dir, outbox.join("odd")).unwrap();
    symlink("/dev/zero", outbox.join("zero.bin")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(outbox.join("pipe.ogg"))
        .status()
        .unwrap();
    assert!(fifo.success());
    // A file in the outbox whose own name is not UTF-8 cannot even be named in JSON.
    std::fs::write(outbox.join(OsStr::from_bytes(b"\xff\xfe.jpg")), b"x").unwrap();

    let outbox_text = outbox.display().to_string();
    let tricks: Vec<String> = vec![
        "../outside/secret.txt".into(),
        "sub/../../outside/secret.txt".into(),
        "./sub/./../../outside/secret.txt".into(),
        format!("{outbox_text}/../outside/secret.txt"),
        outside.join("secret.txt").display().to_string(),
        "/etc/passwd".into(),
        "/proc/self/environ".into(),
        "report.pdf".into(),
        "chain.pdf".into(),
        "relative.pdf".into(),
        "shared/secret.txt".into(),
        "shared".into(),
        "odd/secret.txt".into(),
        "zero.bin".into(),
        "pipe.ogg".into(),
        "sub".into(),
        ".".into(),
        "..".into(),
        "/".into(),
        "\u{FFFD}\u{FFFD}.jpg".into(),
        "photo.jpg\0.txt".into(),
        "\0".into(),
        "a".repeat(300),
        "sub/".repeat(1100) + "photo.jpg",
        format!("{}/photo.jpg", "x".repeat(5000)),
    ];

    let mut c = Client::new(rig.app("127.0.0.1:50000"));
    c.initialize().await;
    let mut refused = 0;
    for tool in ["send_file", "send_audio_message"] {
        for trick in &tricks {
            let text = c
                .tool_error(tool, json!({"recipient": ALICE, "media_path": trick}))
                .await;
            let shown: String = trick.chars().take(40).collect();
            assert!(
                REFUSALS.iter().any(|kind| text.contains(kind)),
                "{tool} {shown:?}: {text}"
            );
            assert!(!text.contains(SECRET), "{tool} {shown:?} echoed the file");
            if text.contains("outside the outbox") || text.contains("no such file") {
                assert!(
                    text.contains(&outbox_text),
                    "{tool} {shown:?} should name the outbox: {text}"
                );
            }
            refused += 1;
        }
    }
    assert!(rig.calls().is_empty(), "sent: {:?}", rig.calls());

    // A file that was fine once and is then replaced by a symlink pointing out is refused.
    c.ok(
        "send_file",
        json!({"recipient": ALICE, "media_path": "photo.jpg"}),
    )
    .await;
    std::fs::remove_file(outbox.join("photo.jpg")).unwrap();
    symlink(outside.join("secret.txt"), outbox.join("photo.jpg")).unwrap();
    for tool in ["send_file", "send_audio_message"] {
        let text = c
            .tool_error(tool, json!({"recipient": ALICE, "media_path": "photo.jpg"}))
            .await;
        assert!(text.contains("outside the outbox"), "{tool}: {text}");
        refused += 1;
    }
    let calls = rig.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        matches!(&calls[0], Call::File { path, .. } if path.ends_with(Path::new("outbox/photo.jpg"))),
        "{calls:?}"
    );
    println!("{refused} path tricks refused");
}
