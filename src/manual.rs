//! The manuals, whatsapp-mcp(1) and whatsapp-mcp.toml(5), rendered from what the program runs
//! on: the clap command line, [`config::SETTINGS`], the exit codes of [`cli`] and the table of
//! other variables below, so a new subcommand, option, key or variable shows up in them.
//!
//! clap_mangen renders the head of page 1 (title, name, synopsis, global options); the
//! subcommands and the rest are written here in the same roff.

use std::fmt::Write as _;

use crate::config::{DEFAULT_CONFIG_PATH, DEFAULT_SOURCES, SETTINGS};
use crate::exit::EXIT_CODES;

/// Variables read outside the configuration loader, with what they do.
pub const PROCESS_VARIABLES: &[(&str, &str)] = &[
    (
        "LISTEN_FDS",
        "Set by systemd for socket activation, with LISTEN_PID and LISTEN_FDNAMES: the daemon \
         serves the sockets it was given instead of binding bridge.listen and mcp.listen.",
    ),
    ("LISTEN_PID", "See LISTEN_FDS."),
    (
        "LISTEN_FDNAMES",
        "Names of the activated sockets: bridge and mcp (else they are taken in that order), and \
         local for the Unix socket of local users.",
    ),
    (
        "NOTIFY_SOCKET",
        "Set by systemd: the daemon reports readiness and status there (sd_notify).",
    ),
    (
        "WATCHDOG_USEC",
        "Set by systemd (WatchdogSec=): the daemon pings the watchdog twice as often.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd: with log.target auto, logs go to the journal when stderr is this stream.",
    ),
];

/// Variables of the test seams, documented in test builds only: the package tier checks that
/// the shipped binary holds none of their names.
#[cfg(feature = "fake-engine")]
const TEST_VARIABLES: &[(&str, &str)] = &[
    (
        "WHATSAPP_MCP_FAKE_SEED",
        "Test builds only (the fake-engine feature): how the stand-in engine starts.",
    ),
    (
        "WHATSAPP_MCP_FAKE_ACK_LOG",
        "Test builds only: a file where the stand-in engine records acknowledged history.",
    ),
    (
        "WHATSAPP_MCP_FAKE_INBOX",
        "Test builds only: a directory whose JSON files the stand-in engine receives as messages.",
    ),
    (
        "WHATSAPP_MCP_FAKE_WA_SERVER",
        "Test builds only: the address of a local WhatsApp server stand-in.",
    ),
];
#[cfg(not(feature = "fake-engine"))]
const TEST_VARIABLES: &[(&str, &str)] = &[];

/// Files the package installs or the service uses.
const FILES: &[(&str, &str)] = &[
    (
        DEFAULT_CONFIG_PATH,
        "The configuration file, optional at this path; see whatsapp-mcp.toml(5).",
    ),
    (
        "/etc/whatsapp-mcp/token",
        "The bearer token generated at installation (root only); the service receives it \
         through systemd credentials.",
    ),
    (
        "/var/lib/whatsapp-mcp/",
        "The service's state: the archive whatsapp.db, the WhatsApp session, media/ and outbox/.",
    ),
    (
        "/usr/lib/systemd/system/whatsapp-mcp.socket",
        "The bridge socket (127.0.0.1:8080); whatsapp-mcp-mcp.socket holds the MCP one \
         (127.0.0.1:3000), and the first connection starts whatsapp-mcp.service.",
    ),
    (
        "/usr/share/doc/whatsapp-mcp/NETWORK.md",
        "How to reach the service from other machines.",
    ),
    (
        "/usr/share/doc/whatsapp-mcp/copyright",
        "Every crate linked into the program, with its license.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "whatsapp-mcp check-config",
        "Validate /etc/whatsapp-mcp/config.toml and the environment and print the effective \
         settings.",
    ),
    ("whatsapp-mcp qr", "Link a phone to the running service."),
    (
        "whatsapp-mcp status --json",
        "Print the service's /api/status document.",
    ),
    (
        "WHATSAPP_MCP_LOG=debug whatsapp-mcp stdio --standalone",
        "Serve MCP on stdin/stdout without the service, logging to stderr in detail.",
    ),
];

/// whatsapp-mcp(1): the command line, its environment, files and exit status.
pub fn commands_page(mut cmd: clap::Command) -> std::io::Result<String> {
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut head = Vec::new();
    man.render_title(&mut head)?;
    man.render_name_section(&mut head)?;
    man.render_synopsis_section(&mut head)?;
    man.render_description_section(&mut head)?;
    man.render_options_section(&mut head)?;
    let mut out = without_repeated_preambles(&String::from_utf8_lossy(&head));

    out.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
        let _ = writeln!(out, ".SS {}", sub.get_name());
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        let _ = writeln!(out, ".B {}", escape(usage));
        let about = sub.get_long_about().or(sub.get_about());
        if let Some(about) = about {
            let _ = writeln!(out, ".br\n{}", escape(&about.to_string()));
        }
        for arg in sub.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") || arg.is_global_set() {
                continue;
            }
            let _ = writeln!(out, ".TP\n{}", arg_term(arg));
            let mut text = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            if !values.is_empty() {
                text = format!("{} (one of: {})", text.trim(), values.join(", "));
            }
            if let Some(default) = arg
                .get_default_values()
                .first()
                .filter(|_| takes_values(arg))
            {
                let _ = write!(text, "; default {}", default.to_string_lossy());
            }
            let _ = writeln!(out, "{}", escape(&sentence(text.trim())));
        }
    }

    out.push_str(".SH ENVIRONMENT\n");
    out.push_str(
        "Variables override the configuration file, see whatsapp-mcp.toml(5). \
         Variables set to an empty value count as unset.\n",
    );
    for arg in cmd.get_arguments() {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            let doc = format!("Same as --{long}.");
            item(&mut out, &bold(&env.to_string_lossy()), &doc);
        }
    }
    for setting in SETTINGS {
        for (n, var) in setting.env.iter().enumerate() {
            let doc = match n {
                0 => format!("Sets {}. {}", setting.key, setting.doc),
                _ => format!("Sets {} too; see {}.", setting.key, setting.env[0]),
            };
            item(&mut out, &bold(var), &doc);
        }
    }
    for (var, doc) in DEFAULT_SOURCES
        .iter()
        .chain(PROCESS_VARIABLES)
        .chain(TEST_VARIABLES)
    {
        item(&mut out, &bold(var), doc);
    }

    out.push_str(".SH FILES\n");
    for (path, doc) in FILES {
        item(&mut out, &italic(path), doc);
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (code, doc) in EXIT_CODES {
        item(&mut out, &bold(&code.to_string()), doc);
    }
    out.push_str(".SH EXAMPLES\n");
    for (command, doc) in EXAMPLES {
        let _ = writeln!(
            out,
            ".PP\n{}\n.RS\n.B {}\n.RE",
            escape(doc),
            escape(command)
        );
    }
    license_and_see_also(&mut out, "whatsapp-mcp.toml (5)");
    Ok(out)
}

/// whatsapp-mcp.toml(5): every key of the configuration file.
pub fn config_page() -> String {
    let mut out = format!(
        ".TH WHATSAPP-MCP.TOML 5 \"\" \"whatsapp-mcp {}\"\n\
         .SH NAME\n\
         whatsapp-mcp.toml \\- configuration file of whatsapp-mcp\n\
         .SH SYNOPSIS\n\
         .I {DEFAULT_CONFIG_PATH}\n\
         .SH DESCRIPTION\n\
         whatsapp-mcp reads this TOML file at start, or the file named by \\-\\-config or \
         WHATSAPP_MCP_CONFIG, which must then exist. Every key is optional. Keys the program \
         does not know are an error, so a typo stops the service instead of being ignored. \
         Environment variables take precedence over the file; for the packaged service, set \
         them in a drop-in made with systemctl edit whatsapp-mcp.service. Check a change \
         with whatsapp-mcp check-config.\n",
        env!("CARGO_PKG_VERSION"),
    );
    let mut section = "";
    for setting in SETTINGS {
        let (table, key) = setting.key.split_once('.').unwrap_or(("", setting.key));
        if table != section {
            section = table;
            let _ = writeln!(out, ".SH \"[{table}]\"");
        }
        let _ = writeln!(out, ".TP\n{} = \\fI{}\\fR", bold(key), escape(setting.kind));
        let _ = writeln!(out, "{}", escape(setting.doc));
        let _ = writeln!(out, ".br\nDefault: {}.", escape(setting.default));
        if !setting.env.is_empty() {
            let _ = writeln!(
                out,
                ".br\nEnvironment: {}.",
                escape(&setting.env.join(", "))
            );
        }
    }
    out.push_str(".SH EXAMPLE\n.nf\n.RS\n");
    for line in [
        "[mcp]",
        "read_only = true",
        "allowed_recipients = [\"+31612345678\"]",
        "",
        "[storage]",
        "database_url = \"postgres://whatsapp@localhost/whatsapp\"",
        "",
        "[log]",
        "level = \"info,whatsapp_mcp=debug\"",
    ] {
        let _ = writeln!(out, "{}", escape(line));
    }
    out.push_str(".RE\n.fi\n");
    license_and_see_also(&mut out, "whatsapp-mcp (1)");
    out
}

fn license_and_see_also(out: &mut String, other_page: &str) {
    let _ = writeln!(
        out,
        ".SH LICENSE\n\
         whatsapp-mcp's own code is under the {} license. The program as distributed links \
         code under {}, so the combined work is distributed under the terms of the GNU Affero \
         General Public License, version 3. Corresponding source: {}\n\
         .SH \"SEE ALSO\"\n\
         .BR {other_page} ,\n\
         .BR systemctl (1),\n\
         .BR systemd.socket (5)",
        env!("CARGO_PKG_LICENSE"),
        crate::DISTRIBUTED_LICENSE,
        crate::SOURCE_URL,
    );
}

/// clap_mangen's pieces each begin with roff's apostrophe preamble; keep only the first.
fn without_repeated_preambles(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter(|line| !line.contains(" .ds Aq ") || seen.insert(*line))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// A `.TP` entry: the term on its own line, then the text.
fn item(out: &mut String, term: &str, text: &str) {
    let _ = writeln!(out, ".TP\n{term}\n{}", escape(text));
}

fn arg_term(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|names| names.join(" "))
        .unwrap_or_else(|| arg.get_id().as_str().to_ascii_uppercase());
    match (arg.get_short(), arg.get_long()) {
        (_, Some(long)) if !takes_values(arg) => bold(&format!("--{long}")),
        (_, Some(long)) => format!("{} {}", bold(&format!("--{long}")), italic(&value)),
        (Some(short), None) => bold(&format!("-{short}")),
        (None, None) => italic(&value),
    }
}

fn takes_values(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values())
}

/// Help text as a sentence: clap's help lines have no final full stop.
fn sentence(text: &str) -> String {
    match text.ends_with('.') || text.is_empty() {
        true => text.to_owned(),
        false => format!("{text}."),
    }
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", escape(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", escape(text))
}

/// Text safe in roff: backslashes and minus signs escaped, no line starting a request.
pub(crate) fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_requests_cannot_be_injected() {
        assert_eq!(escape(".SH x-y"), "\\&.SH x\\-y");
        assert_eq!(escape("a\\b"), "a\\eb");
    }
}
