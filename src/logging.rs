//! Log output: journald when stderr is the journal (or when asked), stderr otherwise; never stdout.
//!
//! stdout belongs to the MCP protocol in `stdio` mode, so no log line may ever reach it.
//!
//! whatsapp-rust logs through the `log` crate; [`SecretFilter`] carries those records into the
//! same tracing pipeline, but first drops every record that could hold a linking secret: all of
//! the pairing-code targets, and any line containing a QR or pairing code the engine has
//! registered with [`register_secret`] (the library prints the pairing code at info level).
//!
//! The library also reports each failed connection attempt at error level. The engine's
//! supervisor already says one warning per attempt, so the library's line is kept at debug and
//! its reason handed to that warning through [`take_connect_failure`]: one journal entry per
//! attempt, at the priority an expected, retried failure deserves.

use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock};

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use serde::{Deserialize, Serialize};

/// Where log lines go (`log.target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// journald when stderr is connected to the journal (`JOURNAL_STREAM`), else stderr.
    Auto,
    Journald,
    Stderr,
}

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
    let filter = level_filter(level);
    install_log_bridge(filter.max_level_hint());
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
    let filter = level_filter(level);
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

/// Parses an `EnvFilter` directive such as `info` or `whatsapp_mcp=debug,info`.
///
/// tracing-subscriber's directive parser finds positions in the trimmed directive but slices
/// the untrimmed one, so a directive with leading blanks is cut in the wrong place, and panics
/// when that place is inside a multi-byte character (tokio-rs/tracing#2452 asks for the trim).
/// Each directive is trimmed here first, and only printable ASCII is accepted: every target,
/// span and level a filter matches on is ASCII anyway. Span field filters
/// (`[span{field=value}]`) are refused: their values are compiled into automata that a short
/// pattern can make take gigabytes and minutes, and two directives with the same field break
/// an ordering invariant the crate asserts in debug builds.
pub fn parse_filter(level: &str) -> Result<EnvFilter, FilterError> {
    if let Some(bad) = level.chars().find(|c| !c.is_ascii_graphic() && *c != ' ') {
        return Err(FilterError::NotAscii(bad));
    }
    if level.contains(['{', '}']) {
        return Err(FilterError::SpanFields);
    }
    let directives: Vec<&str> = level.split(',').map(str::trim).collect();
    Ok(EnvFilter::try_new(directives.join(","))?)
}

/// Why a log filter directive was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0:?} is not allowed; a filter is ASCII, e.g. `info` or `whatsapp_mcp=debug,info`")]
    NotAscii(char),
    #[error(
        "span field filters ({{…}}) are not supported; filter by target or span name, \
         e.g. `whatsapp_mcp=debug` or `[sync]=trace`"
    )]
    SpanFields,
    #[error(transparent)]
    Directive(#[from] tracing_subscriber::filter::ParseError),
}

/// The configured directive, with rmcp held at info whatever it asks for: rmcp's debug lines
/// carry every JSON-RPC message whole, i.e. message bodies, contacts and tool arguments.
fn level_filter(level: &str) -> EnvFilter {
    let filter = parse_filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    match "rmcp=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    }
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

/// `log` targets whose records are never let through at any level: whatsapp-rust's pairing-code
/// flow logs the code itself (`Bot/PairCode` at info, `Client/PairCode` at stage one) and the
/// phone number being linked.
pub const SECRET_TARGETS: [&str; 3] = ["Bot/PairCode", "Client/PairCode", "Client/PairTest"];

/// Codes that must never appear in a log line, registered while they are valid.
fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// How many recent codes are remembered; older ones have long expired.
const REMEMBERED_SECRETS: usize = 32;

/// Adds a QR or pairing code to the set of strings no log line may contain.
pub fn register_secret(secret: &str) {
    // Very short strings would drop unrelated lines and protect nothing.
    if secret.len() < 6 {
        return;
    }
    if let Ok(mut list) = secrets().lock() {
        if list.iter().any(|s| s == secret) {
            return;
        }
        if list.len() >= REMEMBERED_SECRETS {
            list.remove(0);
        }
        list.push(secret.to_owned());
    }
}

/// True if `text` contains a registered secret.
fn carries_secret(text: &str) -> bool {
    secrets()
        .lock()
        .map(|list| list.iter().any(|s| text.contains(s.as_str())))
        // A poisoned lock means a panic elsewhere; err on the side of silence.
        .unwrap_or(true)
}

/// The `log` → tracing bridge with the secret filter in front of it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretFilter;

impl SecretFilter {
    /// Whether a record may be logged at all.
    pub fn admits(record: &log::Record<'_>) -> bool {
        let target = record.target();
        if SECRET_TARGETS
            .iter()
            .any(|t| target.eq_ignore_ascii_case(t))
        {
            return false;
        }
        match record.args().as_str() {
            Some(fixed) => !carries_secret(fixed),
            None => !carries_secret(&record.args().to_string()),
        }
    }
}

impl log::Log for SecretFilter {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        !SECRET_TARGETS
            .iter()
            .any(|t| metadata.target().eq_ignore_ascii_case(t))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !Self::admits(record) {
            return;
        }
        if let Some(reason) = connect_failure(record) {
            *last_connect_failure()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
            let demoted = log::Record::builder()
                .args(*record.args())
                .level(log::Level::Debug)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            let _ = tracing_log::format_trace(&demoted);
            return;
        }
        let _ = tracing_log::format_trace(record);
    }

    fn flush(&self) {}
}

/// The reason in whatsapp-rust's "Failed to connect: REASON. Will retry..." line, if `record`
/// is that line.
fn connect_failure(record: &log::Record<'_>) -> Option<String> {
    if record.level() != log::Level::Error || !record.target().starts_with("whatsapp_rust::") {
        return None;
    }
    let text = record.args().to_string();
    let reason = text.strip_prefix("Failed to connect: ")?;
    Some(
        reason
            .strip_suffix(". Will retry...")
            .unwrap_or(reason)
            .to_owned(),
    )
}

fn last_connect_failure() -> &'static Mutex<Option<String>> {
    static LAST: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    LAST.get_or_init(|| Mutex::new(None))
}

/// Why whatsapp-rust's last connection attempt failed, as it said so, once: the supervisor
/// takes it for its own warning about that attempt.
pub fn take_connect_failure() -> Option<String> {
    last_connect_failure()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Routes `log` records (whatsapp-rust's) through [`SecretFilter`] into tracing, at most as
/// verbose as the tracing filter lets through so the library does not format lines that are
/// thrown away. Only the first call installs anything.
pub fn install_log_bridge(max: Option<tracing_subscriber::filter::LevelFilter>) {
    use tracing_subscriber::filter::LevelFilter;
    let level = match max {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(SecretFilter)).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps everything written to it.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// What `emit` logs through the `log` bridge, as a subscriber that lets everything through
    /// writes it.
    fn through_log_bridge(emit: impl FnOnce()) -> String {
        install_log_bridge(Some(tracing_subscriber::filter::LevelFilter::TRACE));
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = capture.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn pairing_codes_and_qr_codes_never_reach_the_log() {
        let pair_code = "K7QX2M9P";
        let qr = "2@AbCdEfGhIjKl,NoiseKeyBase64=,IdentityKeyBase64=,AdvSecretBase64=";
        let text = through_log_bridge(|| {
            // What whatsapp-rust 0.7 itself prints while linking with a code.
            log::info!(target: "Bot/PairCode", "Pair code generated: {pair_code}");
            log::info!(target: "Client/PairCode", "Stage 1 complete, waiting for phone confirmation. Code: {pair_code}");
            log::warn!(target: "bot/paircode", "mixed case target {pair_code}");
            // The same code anywhere else is dropped once the engine has registered it.
            register_secret(pair_code);
            register_secret(qr);
            log::info!(target: "whatsapp_rust::client", "echo of {pair_code} elsewhere");
            log::debug!(target: "whatsapp_rust::pair", "qr payload {qr}");
            // Ordinary lines still pass.
            log::info!(target: "whatsapp_rust::client", "Will attempt to reconnect");
            log::error!(target: "Client/AppState", "app state sync failed");
        });
        assert!(!text.contains(pair_code), "pairing code leaked:\n{text}");
        assert!(!text.contains("AdvSecret"), "QR code leaked:\n{text}");
        assert!(!text.contains("Pair code generated"), "{text}");
        assert!(
            text.contains("Will attempt to reconnect"),
            "bridge lost a line:\n{text}"
        );
        assert!(text.contains("app state sync failed"), "{text}");
    }

    #[test]
    fn rmcp_stays_at_info_even_when_debug_is_asked_for() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(level_filter("debug"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(capture.clone())
                    .with_ansi(false),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "rmcp::service", "response message text=dinner at eight");
            tracing::info!(target: "rmcp::service", "service initialized");
            tracing::debug!(target: "whatsapp_mcp::server", "watchdog enabled");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("dinner at eight"), "{text}");
        assert!(text.contains("service initialized"), "{text}");
        assert!(text.contains("watchdog enabled"), "{text}");
    }

    #[test]
    fn the_library_connect_failure_is_folded_into_our_warning() {
        let text = through_log_bridge(|| {
            // What whatsapp-rust 0.7 prints for each failed attempt (client/lifecycle.rs).
            log::error!(
                target: "whatsapp_rust::client::lifecycle",
                "Failed to connect: failed to resolve app version. Will retry..."
            );
            log::error!(target: "whatsapp_rust::client::lifecycle", "Client lifecycle scope closure panicked");
        });
        let line = text
            .lines()
            .find(|line| line.contains("Failed to connect"))
            .unwrap_or_else(|| panic!("the line is kept, at debug:\n{text}"));
        assert!(line.contains("DEBUG"), "{line}");
        assert!(
            text.lines()
                .any(|line| line.contains("ERROR") && line.contains("panicked")),
            "other errors keep their level:\n{text}"
        );
        assert_eq!(
            take_connect_failure().as_deref(),
            Some("failed to resolve app version")
        );
        assert_eq!(take_connect_failure(), None, "taken once");
    }

    #[test]
    fn short_strings_are_not_treated_as_secrets() {
        register_secret("abc");
        assert!(!carries_secret("abc def"));
    }
}
