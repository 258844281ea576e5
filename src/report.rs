//! The status report: one snapshot of link state, archive counts and store health.
//!
//! `/api/status`, the dashboard, the `status` command and systemd's `STATUS=` line all render
//! this one structure, so they always tell the same story. Field names of the original bridge
//! (`sync_status`, `bridge_status`, `statistics`, `authentication`, `last_check`, `error`) are
//! kept because existing scripts read them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppContext;

/// The JSON document served at `/api/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    pub sync_status: SyncStatus,
    pub bridge_status: BridgeStatus,
    pub statistics: Statistics,
    pub authentication: Authentication,
    /// When this report was made (ISO-8601, UTC).
    pub last_check: String,
    /// The most pressing problem, if any, in words a person can act on.
    pub error: Option<String>,
    /// Machine-readable link state, e.g. `connected`, `awaiting_scan`, `logged_out`.
    pub state: String,
    /// The same state as one human sentence (also systemd's `STATUS=`).
    pub status_text: String,
    pub account: Option<AccountInfo>,
    pub backend: String,
    pub uptime_seconds: u64,
    pub started_at: String,
    pub version: String,
    /// Where the corresponding source is published ([`crate::SOURCE_URL`]).
    #[serde(default)]
    pub source: String,
    /// The license of the running program as distributed ([`crate::DISTRIBUTED_LICENSE`]).
    #[serde(default)]
    pub license: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncStatus {
    /// True while history sync is delivering chunks.
    pub active: bool,
    pub authenticated: bool,
    pub connected: bool,
    pub progress_percent: Option<u8>,
    pub history_messages_received: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BridgeStatus {
    pub running: bool,
    pub authenticated: bool,
    pub api_responsive: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Statistics {
    pub message_count: u64,
    pub chat_count: u64,
    pub contact_count: u64,
    pub last_sync_time: Option<String>,
    pub last_message_time: Option<String>,
    pub database_size_mb: f64,
    pub database_exists: bool,
    /// Messages not yet in the search index; searches find them by a slower scan meanwhile.
    #[serde(default)]
    pub search_backlog: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Authentication {
    pub has_qr_code: bool,
    /// Path of the QR page on the bridge.
    pub qr_url: String,
    pub qr_expires_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    pub jid: String,
    pub phone: String,
    pub push_name: Option<String>,
}

pub fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Builds a fresh report; the archive is queried, everything else is read from memory.
pub async fn build(ctx: &AppContext) -> StatusReport {
    let engine = ctx.status.snapshot();
    let stats = ctx.store.stats().await;
    let (statistics, store_error) = match stats {
        Ok(stats) => (
            Statistics {
                message_count: stats.message_count,
                chat_count: stats.chat_count,
                contact_count: stats.contact_count,
                last_sync_time: engine.sync.last_sync_at.map(iso),
                last_message_time: stats.last_message_at.map(iso),
                database_size_mb: stats.database_bytes.map_or(0.0, |bytes| {
                    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
                }),
                database_exists: true,
                search_backlog: stats.search_backlog,
            },
            None,
        ),
        Err(err) => (
            Statistics {
                message_count: 0,
                chat_count: 0,
                contact_count: 0,
                last_sync_time: engine.sync.last_sync_at.map(iso),
                last_message_time: None,
                database_size_mb: 0.0,
                database_exists: false,
                search_backlog: 0,
            },
            Some(format!("archive unavailable: {err}")),
        ),
    };
    let linked = engine.state.is_linked();
    let connected = engine.state == crate::state::LinkState::Connected;
    StatusReport {
        sync_status: SyncStatus {
            active: engine.sync.active,
            authenticated: linked,
            connected,
            progress_percent: engine.sync.percent,
            history_messages_received: engine.sync.messages_received,
        },
        bridge_status: BridgeStatus {
            running: true,
            authenticated: linked,
            api_responsive: true,
        },
        statistics,
        authentication: Authentication {
            has_qr_code: engine.qr.is_some(),
            qr_url: "/qr".to_owned(),
            qr_expires_at: engine
                .qr
                .as_ref()
                .map(|qr| iso(qr.issued_at + chrono::Duration::seconds(qr.valid_for_secs as i64))),
        },
        last_check: iso(Utc::now()),
        error: store_error.or_else(|| engine.last_error.clone()),
        state: engine.state.as_str().to_owned(),
        status_text: engine.headline(),
        account: engine.account.as_ref().map(|a| AccountInfo {
            jid: a.jid.clone(),
            phone: a.phone.clone(),
            push_name: a.push_name.clone(),
        }),
        backend: ctx.store.kind().as_str().to_owned(),
        uptime_seconds: ctx.started.elapsed().as_secs(),
        started_at: iso(ctx.started_at),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        source: crate::SOURCE_URL.to_owned(),
        license: crate::DISTRIBUTED_LICENSE.to_owned(),
    }
}

/// The one-line summary for systemd's `STATUS=`: state, then archive size.
pub fn status_line(report: &StatusReport) -> String {
    let headline = &report.status_text;
    match &report.error {
        Some(err) if !report.statistics.database_exists => format!("{headline}; {err}"),
        _ => format!(
            "{headline}; {} messages in {} chats",
            group_thousands(report.statistics.message_count),
            group_thousands(report.statistics.chat_count)
        ),
    }
}

/// 12034 → "12 034": readable in `systemctl status` without locale tables.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::group_thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(12_034), "12 034");
        assert_eq!(group_thousands(1_000_000), "1 000 000");
    }
}
