//! Log output: journald when stderr is the journal (or when asked), stderr otherwise; never stdout.
//!
//! stdout belongs to the MCP protocol in `stdio` mode, so no log line may ever reach it.

use std::os::unix::fs::MetadataExt;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogTarget;

/// The identifier journald files our lines under (`SYSLOG_IDENTIFIER`).
pub const SYSLOG_IDENTIFIER: &str = "whatsapp-mcp";

/// Where log lines ended up, so the caller can mention it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSink {
    Journald,
    Stderr,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive such as `info` or
/// `whatsapp_mcp=debug,info`.
pub fn init(level: &str, target: LogTarget) -> LogSink {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let want_journald = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => stderr_is_journal(),
    };
    if want_journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                // syslog's levels: info lines are informational (6), not notices (5), so
                // `journalctl -p notice` shows only what needs attention.
                let priorities = PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                };
                let layer = layer
                    .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned())
                    .with_priority_mappings(priorities);
                if tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init()
                    .is_ok()
                {
                    return LogSink::Journald;
                }
                return LogSink::Stderr;
            }
            Err(err) => {
                // No journald socket (a container without it, a test host): say so once on
                // stderr and carry on there.
                eprintln!("whatsapp-mcp: journald unavailable ({err}); logging to stderr");
            }
        }
    }
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .try_init();
    LogSink::Stderr
}

/// True when `JOURNAL_STREAM` names the device and inode stderr is connected to, which is how
/// systemd tells a service that its stderr goes to the journal.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|meta| meta.dev() == dev && meta.ino() == ino)
}
