//! Writes the deterministic benchmark archive into SQLite, PostgreSQL, or the original bridge's
//! `messages.db` layout, so the same data can be measured anywhere.
//!
//! ```text
//! cargo run --release --example generate_archive -- --to sqlite:///tmp/archive.db
//! cargo run --release --example generate_archive -- --to postgres://user@localhost/db
//! cargo run --release --example generate_archive -- --to original:/tmp/messages.db
//! ```

#[path = "../benches/support/archive.rs"]
mod archive;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use archive::{Archive, Spec};
use clap::Parser;
use whatsapp_mcp::config::DatabaseUrl;

/// Generate a realistic WhatsApp archive from a seed.
#[derive(Debug, Parser)]
struct Args {
    /// Where to write: sqlite:///path.db, postgres://…, or original:/path/messages.db.
    #[arg(long)]
    to: String,
    #[arg(long, default_value_t = Spec::FULL.messages)]
    messages: u64,
    #[arg(long, default_value_t = Spec::FULL.chats)]
    chats: u32,
    #[arg(long, default_value_t = Spec::FULL.contacts)]
    contacts: u32,
    #[arg(long, default_value_t = Spec::FULL.seed)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = Spec {
        messages: args.messages,
        chats: args.chats,
        contacts: args.contacts,
        seed: args.seed,
    };
    let archive = Archive::plan(spec);
    let started = Instant::now();
    let result = if let Some(path) = args.to.strip_prefix("original:") {
        archive
            .write_original(&PathBuf::from(path))
            .map_err(|err| err.to_string())
    } else {
        write_store(&archive, &args.to)
    };
    match result {
        Ok(stored) => {
            eprintln!(
                "wrote {stored} messages in {} chats ({} contacts, seed {}) to {} in {:.1} s",
                spec.chats,
                spec.contacts,
                spec.seed,
                args.to,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("generate_archive: {err}");
            ExitCode::FAILURE
        }
    }
}

fn write_store(archive: &Archive, url: &str) -> Result<u64, String> {
    let url = DatabaseUrl::parse("--to", url).map_err(|err| err.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime.block_on(async {
        let store = whatsapp_mcp::store::open(&url)
            .await
            .map_err(|err| err.to_string())?;
        archive
            .write_store(store.as_ref())
            .await
            .map_err(|err| err.to_string())
    })
}
