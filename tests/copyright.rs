//! debian/copyright lists every crate the release binary links, with the license its sources
//! state: packaging/gen-copyright.py regenerates it from the dependency tree and this test fails
//! when the committed file differs (a new or updated dependency, or a changed license).
//!
//! Needs python3 and the crates unpacked by cargo, which building this test already did.

use std::path::Path;
use std::process::Command;

#[test]
fn debian_copyright_matches_the_dependency_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("packaging/gen-copyright.py"))
        .arg("--check")
        .arg(root.join("debian/copyright"))
        .current_dir(root)
        .output()
        .expect("python3 runs packaging/gen-copyright.py");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The file a regeneration would also rewrite: a generator that stopped reading SPDX headers
/// would pass the check above with a regenerated file, but not this.
#[test]
fn the_agpl_files_of_wacore_libsignal_are_stated() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/copyright");
    let text = std::fs::read_to_string(path).expect("debian/copyright is readable");
    let crate_paragraph = text
        .split("\n\n")
        .find(|p| p.starts_with("Files: cargo-registry/wacore-libsignal-") && p.contains("/*\n"))
        .expect("wacore-libsignal has a paragraph");
    assert!(
        crate_paragraph.contains("License: MIT and AGPL-3.0-only"),
        "{crate_paragraph}"
    );
    assert!(
        text.contains("/src/protocol/session_cipher.rs\n"),
        "the AGPL files are listed"
    );
    let agpl = text
        .split("\n\n")
        .find(|p| p.starts_with("License: AGPL-3.0-only\n"))
        .expect("a stand-alone AGPL-3.0-only paragraph");
    assert!(agpl.contains("GNU AFFERO GENERAL PUBLIC LICENSE"));
}
