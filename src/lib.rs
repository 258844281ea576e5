//! whatsapp-mcp: a WhatsApp MCP server that runs as a socket-activated Linux service.
//!
//! See ARCHITECTURE.md for the map of modules and the rules between them.

/// Where the program's corresponding source is published (Cargo.toml's `repository`). The
/// binary links AGPL-3.0-only code, so the service offers this link to whoever uses it over the
/// network: `/api/status`, the dashboard and `--version` name it.
pub const SOURCE_URL: &str = env!("CARGO_PKG_REPOSITORY");

/// The license the binary as distributed is under: whatsapp-mcp's own code is MIT (Cargo.toml's
/// `license`), and wacore-libsignal, linked statically, carries AGPL-3.0-only files, so the
/// combined work goes out under the AGPL's terms (see debian/copyright).
pub const DISTRIBUTED_LICENSE: &str = "AGPL-3.0-only";

/// What `--version` prints after the name: the version, then the license statement above in
/// words (`concat!` takes literals only, hence the repeated `env!`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\n\nwhatsapp-mcp's own code is under the ",
    env!("CARGO_PKG_LICENSE"),
    " license. The binary as distributed links\n\
     wacore-libsignal, parts of which are under AGPL-3.0-only, so the combined work\n\
     is distributed under the terms of the GNU Affero General Public License,\n\
     version 3. Corresponding source: ",
    env!("CARGO_PKG_REPOSITORY"),
    "\nEvery linked crate and its license: /usr/share/doc/whatsapp-mcp/copyright",
);

pub mod access;
pub mod app;
pub mod bridge_client;
pub mod cli;
pub mod config;
mod connections;
pub mod engine;
pub mod exit;
pub mod http;
pub mod jid;
pub mod link_cli;
pub mod listeners;
pub mod logging;
pub mod manual;
pub mod mcp;
pub mod report;
pub mod server;
pub mod shared_dirs;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tls;
