//! whatsapp-mcp: a WhatsApp MCP server that runs as a socket-activated Linux service.
//!
//! See ARCHITECTURE.md for the map of modules and the rules between them.

pub mod cli;
pub mod config;
mod connections;
pub mod engine;
pub mod http;
pub mod jid;
pub mod link_cli;
pub mod listeners;
pub mod logging;
pub mod mcp;
pub mod report;
pub mod server;
pub mod state;
pub mod store;
pub mod systemd;
