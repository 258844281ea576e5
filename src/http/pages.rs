//! The two HTML pages, rendered on the server: no scripts, no external resources.
//!
//! Both refresh themselves with a `<meta http-equiv="refresh">`, so the QR page follows code
//! rotation and the dashboard stays current without JavaScript.

use std::fmt::Write;

use qrcode::render::svg;

use crate::report::StatusReport;
use crate::state::{EngineStatus, LinkState, Severity};

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn severity_class(severity: Severity) -> &'static str {
    match severity {
        Severity::Good => "good",
        Severity::Pending => "pending",
        Severity::Warning => "warning",
        Severity::Bad => "bad",
    }
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:44rem;padding:0 1rem;color:#1b1b1b;background:#fafafa}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd}th{width:40%;color:#555;font-weight:500}\
.badge{display:inline-block;padding:.2rem .7rem;border-radius:1rem;font-weight:600;color:#fff}\
.good{background:#1f8a3b}.pending{background:#2f6fb3}.warning{background:#c77700}.bad{background:#b3261e}\
.qr{background:#fff;padding:1rem;display:inline-block;border:1px solid #ddd}\
footer{margin-top:2rem;color:#777;font-size:.85rem}";

fn page(title: &str, refresh_secs: u32, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_secs}\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}\
         <footer>whatsapp-mcp {version} · refreshes every {refresh_secs} s · \
         <a href=\"/status\">status</a> · <a href=\"/qr\">link a phone</a> · \
         <a href=\"/api/status\">JSON</a> · \
         <a href=\"{source}\" rel=\"license\">source code</a> ({license})</footer></body></html>\n",
        title = escape(title),
        version = env!("CARGO_PKG_VERSION"),
        source = escape(crate::SOURCE_URL),
        license = crate::DISTRIBUTED_LICENSE,
    )
}

/// The `/status` dashboard.
pub(super) fn dashboard(report: &StatusReport) -> String {
    let state = LinkState::from_name(&report.state).unwrap_or(LinkState::EngineOff);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>WhatsApp MCP</h1><p><span class=\"badge {class}\" data-state=\"{state}\">{label}</span> {text}</p>",
        class = severity_class(state.severity()),
        state = escape(&report.state),
        label = escape(&report.state.replace('_', " ")),
        text = escape(&report.status_text),
    );
    if let Some(error) = &report.error {
        let _ = write!(
            body,
            "<p class=\"error\"><strong>Problem:</strong> {}</p>",
            escape(error)
        );
    }
    let account = report
        .account
        .as_ref()
        .map(|a| {
            format!(
                "+{} ({})",
                a.phone,
                a.push_name.as_deref().unwrap_or("no name")
            )
        })
        .unwrap_or_else(|| "not linked".to_owned());
    let stats = &report.statistics;
    let rows = [
        ("Account", account),
        ("Connected", yes_no(report.sync_status.connected)),
        ("History sync", sync_text(report)),
        (
            "Messages",
            crate::report::group_thousands(stats.message_count),
        ),
        ("Chats", crate::report::group_thousands(stats.chat_count)),
        (
            "Contacts",
            crate::report::group_thousands(stats.contact_count),
        ),
        (
            "Last message",
            stats
                .last_message_time
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
        ),
        (
            "Last sync",
            stats
                .last_sync_time
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
        ),
        (
            "Store",
            format!("{} ({:.2} MB)", report.backend, stats.database_size_mb),
        ),
        ("Uptime", human_duration(report.uptime_seconds)),
        ("Checked", report.last_check.clone()),
    ];
    body.push_str("<table>");
    for (name, value) in rows {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(&value)
        );
    }
    body.push_str("</table>");
    page("WhatsApp MCP status", 5, &body)
}

/// The `/qr` linking page.
pub(super) fn qr(engine: &EngineStatus) -> String {
    let mut body = String::from("<h1>Link WhatsApp</h1>");
    let class = severity_class(engine.state.severity());
    match (&engine.qr, engine.state) {
        (Some(qr), _) => match render_svg(&qr.code) {
            Some(svg) => {
                let _ = write!(
                    body,
                    "<p><span class=\"badge {class}\" data-state=\"awaiting_scan\">scan me</span> \
                     On your phone open WhatsApp → Settings → Linked devices → Link a device, \
                     then point the camera at this code. It changes every few seconds; this page follows.</p>\
                     <div class=\"qr\" id=\"qr\">{svg}</div>"
                );
            }
            None => body.push_str("<p>The QR code could not be drawn; run <code>whatsapp-mcp qr</code> in a terminal instead.</p>"),
        },
        (None, state) if state.is_linked() => {
            let who = engine
                .account
                .as_ref()
                .map(|a| format!(" as +{}", escape(&a.phone)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<p><span class=\"badge good\" data-state=\"linked\">linked</span> This server is linked{who}. \
                 Nothing to scan. To link another phone, run <code>whatsapp-mcp logout</code> first.</p>"
            );
        }
        (None, LinkState::EngineOff) => {
            let _ = write!(
                body,
                "<p><span class=\"badge {class}\" data-state=\"engine_off\">unavailable</span> \
                 The WhatsApp engine is not running in this service, so there is no code to scan.</p>"
            );
        }
        (None, state) => {
            let _ = write!(
                body,
                "<p><span class=\"badge {class}\" data-state=\"{}\">waiting</span> {}. \
                 No QR code yet; this page refreshes until one arrives.</p>",
                state.as_str(),
                escape(&engine.headline()),
            );
        }
    }
    let refresh = if engine.qr.is_some() { 3 } else { 5 };
    page("Link WhatsApp", refresh, &body)
}

/// Draws `code` as an inline SVG; `None` if it is too long for a QR symbol.
pub(super) fn render_svg(code: &str) -> Option<String> {
    let symbol = qrcode::QrCode::new(code.as_bytes()).ok()?;
    Some(
        symbol
            .render::<svg::Color<'_>>()
            .min_dimensions(264, 264)
            .quiet_zone(true)
            .build(),
    )
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

fn sync_text(report: &StatusReport) -> String {
    let sync = &report.sync_status;
    match (sync.active, sync.progress_percent) {
        (true, Some(percent)) => format!("in progress ({percent}%)"),
        (true, None) => "in progress".to_owned(),
        (false, _) if sync.history_messages_received > 0 => format!(
            "done ({} messages received)",
            crate::report::group_thousands(sync.history_messages_received)
        ),
        (false, _) => "idle".to_owned(),
    }
}

fn human_duration(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// The `/login` form: one password field for the token, posted to `/login` with the page to
/// come back to.
pub(super) fn login(landing: &str, problem: Option<&str>) -> String {
    let problem = problem
        .map(|text| format!("<p class=\"badge bad\">{}</p>", escape(text)))
        .unwrap_or_default();
    let body = format!(
        "<h1>WhatsApp MCP</h1>{problem}<p>This server's pages need its token, once per browser. \
         It is in <code>/etc/whatsapp-mcp/token</code> on the server.</p>\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{landing}\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
         <button type=\"submit\">Log in</button></form>",
        landing = escape(landing),
    );
    // No refresh: it would throw away what is being typed.
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · WhatsApp MCP</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m 5s");
        assert_eq!(human_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(human_duration(2 * 86_400 + 3600), "2d 1h");
    }
}
