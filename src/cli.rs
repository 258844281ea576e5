//! The command line: parses arguments, loads the config, and runs one subcommand.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::bridge_client::{BridgeClient, Limits};
use crate::config::{Config, ConfigError, Transport};
use crate::listeners::Listeners;
use crate::report::StatusReport;
use crate::systemd::Notifier;
use crate::{logging, server, store};

pub use crate::exit::{EXIT_CODES, EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_UNREACHABLE, EXIT_USAGE};

#[derive(Debug, Parser)]
#[command(
    name = "whatsapp-mcp",
    version,
    long_version = crate::LONG_VERSION,
    about = "WhatsApp for AI assistants: an MCP server that searches, reads and sends your WhatsApp messages",
    long_about = None,
)]
pub(crate) struct Cli {
    /// Configuration file [default: /etc/whatsapp-mcp/config.toml, if it exists]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "WHATSAPP_MCP_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: the bridge (default port 8080) and MCP over HTTP (default port 3000)
    Serve,
    /// Speak MCP on stdin/stdout for a desktop client such as Claude Desktop
    Stdio {
        /// Run the WhatsApp connection in this process instead of using the local service
        #[arg(long)]
        standalone: bool,
    },
    /// Show the state of the running service
    Status {
        /// Print the raw JSON of /api/status
        #[arg(long)]
        json: bool,
    },
    /// Link a phone by scanning a QR code drawn in this terminal
    Qr,
    /// Link a phone with an 8-character pairing code instead of a QR code
    Pair {
        /// The phone number in international format, e.g. +31612345678
        #[arg(long, value_name = "NUMBER")]
        phone: String,
    },
    /// Unlink this server from the WhatsApp account and remove the session
    Logout {
        /// Also delete the archived messages
        #[arg(long)]
        wipe_archive: bool,
    },
    /// Copy the archive to a new file while the service runs (SQLite; PostgreSQL: pg_dump)
    Backup {
        /// The backup file to create; an existing file is not overwritten
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Keep the WhatsApp session in the copy (only with the service stopped, to move it
        /// to another machine)
        #[arg(long)]
        with_session: bool,
    },
    /// Validate the configuration and print the effective settings (secrets hidden)
    CheckConfig,
    /// Print a shell completion script
    Completions {
        /// The shell to print it for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff), for packaging: whatsapp-mcp(1) or whatsapp-mcp.toml(5)
    #[command(hide = true)]
    Manpage {
        /// The manual section: 1 for the commands, 5 for the configuration file
        #[arg(long, default_value = "1", value_parser = ["1", "5"])]
        section: String,
    },
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(command) => command,
        // The original's contract: MCP_TRANSPORT alone picks what a bare invocation serves.
        None => match crate::config::process_env("MCP_TRANSPORT") {
            Some(_) => match load_config(cli.config.as_ref()) {
                Ok(config) if config.transport == Transport::Stdio => {
                    Command::Stdio { standalone: false }
                }
                Ok(_) => Command::Serve,
                Err(code) => return code,
            },
            None => {
                let _ = Cli::command().print_help();
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "whatsapp-mcp",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage { section } => {
            let page = match section.as_str() {
                "5" => Ok(crate::manual::config_page()),
                _ => crate::manual::commands_page(Cli::command()),
            };
            match page.and_then(|page| std::io::stdout().write_all(page.as_bytes())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("whatsapp-mcp: cannot write the man page: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig => check_config(cli.config.as_ref()),
        Command::Serve => match load_config(cli.config.as_ref()) {
            Ok(config) => serve(config),
            Err(code) => code,
        },
        Command::Status { json } => match load_config(cli.config.as_ref()) {
            Ok(config) => status(&config, json),
            Err(code) => code,
        },
        Command::Stdio { standalone } => match load_config(cli.config.as_ref()) {
            Ok(config) => crate::mcp::stdio::main(config, standalone),
            Err(code) => code,
        },
        Command::Qr => match load_config(cli.config.as_ref()) {
            Ok(config) => crate::link_cli::qr(&config),
            Err(code) => code,
        },
        Command::Pair { phone } => match load_config(cli.config.as_ref()) {
            Ok(config) => crate::link_cli::pair(&config, &phone),
            Err(code) => code,
        },
        Command::Logout { wipe_archive } => match load_config(cli.config.as_ref()) {
            Ok(config) => crate::link_cli::logout(&config, wipe_archive),
            Err(code) => code,
        },
        Command::Backup { file, with_session } => match load_config(cli.config.as_ref()) {
            Ok(config) => backup(&config, file, with_session),
            Err(code) => code,
        },
    }
}

/// `whatsapp-mcp backup FILE`: the archive. The WhatsApp session shares the archive's file by
/// default and is taken out of the copy unless `with_session`: its Signal state moves on with
/// every message, so a restored old copy of it could no longer decrypt what arrives. A restore
/// then asks for a new link instead of failing quietly.
fn backup(config: &Config, file: PathBuf, with_session: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("whatsapp-mcp: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shown = file.display().to_string();
    let session_inside = config.session_database_url == config.database_url;
    let copy_url = crate::config::DatabaseUrl::parse("backup", &format!("sqlite://{shown}"));
    let made = runtime.block_on(async {
        let summary = store::backup(&config.database_url, file).await?;
        if session_inside && !with_session {
            let url = copy_url.map_err(|err| store::StoreError::Other(err.to_string()))?;
            crate::store::session::wipe_session(&url).await?;
        }
        Ok::<_, store::StoreError>(summary)
    });
    match made {
        Ok(summary) => {
            println!(
                "backed up {} messages ({:.1} MB) to {shown}{}",
                summary.messages,
                summary.bytes as f64 / 1e6,
                if session_inside && with_session {
                    ", with the WhatsApp session"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("whatsapp-mcp backup: {err}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    Config::load(path.map(PathBuf::as_path)).map_err(|err| {
        eprintln!("whatsapp-mcp: configuration error: {err}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check_config(path: Option<&PathBuf>) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let exposure = [
        ("bridge.listen", config.bridge_listen),
        ("mcp.listen", config.mcp_listen),
    ]
    .into_iter()
    .map(|(key, addr)| config.check_exposure(key, addr))
    .collect::<Result<Vec<()>, ConfigError>>();
    if let Err(err) = exposure {
        eprintln!("whatsapp-mcp: configuration error: {err}");
        return ExitCode::from(EXIT_CONFIG);
    }
    match &config.source {
        Some(path) => println!(
            "# effective configuration: {} plus environment",
            path.display()
        ),
        None => println!("# effective configuration: built-in defaults plus environment"),
    }
    print!("{}", config.to_redacted_toml());
    eprintln!("configuration OK");
    ExitCode::SUCCESS
}

fn serve(config: Config) -> ExitCode {
    let sink = logging::init(&config.log_level, config.log_target);
    tracing::debug!(?sink, "logging initialised");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("whatsapp-mcp")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve_async(config))
}

async fn serve_async(config: Config) -> ExitCode {
    // First, so that a stop request during start-up ends the process cleanly once it is up.
    let shutdown = server::shutdown_signal();
    let notifier = Notifier::from_env();
    let listeners = match Listeners::acquire(&config) {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(error = %err, "cannot open the listening sockets");
            return ExitCode::FAILURE;
        }
    };
    let exposure = listeners
        .local_addrs()
        .map_err(|err| err.to_string())
        .and_then(|addrs| {
            addrs.into_iter().try_for_each(|(role, addr)| {
                config
                    .check_exposure(role, addr)
                    .map_err(|err| err.to_string())
            })
        });
    if let Err(err) = exposure {
        tracing::error!(error = %err, "refusing to start");
        return ExitCode::from(EXIT_CONFIG);
    }
    notifier.status("opening the archive");
    // Migrations or the first open of a large archive may outlast TimeoutStartSec=.
    let extending = notifier.extend_start_while_busy();
    let ctx = match crate::app::start(config).await {
        Ok(ctx) => ctx,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    drop(extending);
    let engine = Arc::clone(&ctx.engine);
    let served = server::run(ctx, listeners, notifier, shutdown).await;
    // The WhatsApp connection flushes its session state before the process exits.
    engine.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "service failed");
            ExitCode::FAILURE
        }
    }
}

fn status(config: &Config, json: bool) -> ExitCode {
    let client = BridgeClient::new(
        config,
        Limits {
            connect: None,
            global: Some(Duration::from_secs(10)),
        },
    );
    let location = client.location();
    let unreachable = |detail: String| {
        eprintln!(
            "whatsapp-mcp: cannot reach the service at {location}: {detail}\n\
             Is it running? Try `systemctl status whatsapp-mcp.socket whatsapp-mcp` \
             or start it with `whatsapp-mcp serve`; set WHATSAPP_BRIDGE_URL if it listens elsewhere."
        );
        ExitCode::from(EXIT_UNREACHABLE)
    };
    let mut response = match client.get("/api/status").call() {
        Ok(response) => response,
        Err(err) => return unreachable(client.describe(&err)),
    };
    let code = response.status();
    let body = match response.body_mut().read_to_string() {
        Ok(body) => body,
        Err(err) => return unreachable(err.to_string()),
    };
    if code == 401 {
        eprintln!(
            "whatsapp-mcp: the service at {location} refused this client (HTTP 401): {}",
            client.unauthorized_hint()
        );
        return ExitCode::from(EXIT_UNREACHABLE);
    }
    if !code.is_success() {
        return unreachable(format!("HTTP {code}: {}", body.trim()));
    }
    if json {
        println!("{}", body.trim_end());
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<StatusReport>(&body) {
        Ok(report) => {
            print!("{}", render_status(&location, &report));
            ExitCode::SUCCESS
        }
        Err(err) => unreachable(format!("unexpected answer ({err})")),
    }
}

fn render_status(url: &str, report: &StatusReport) -> String {
    let stats = &report.statistics;
    let account = report
        .account
        .as_ref()
        .map(|a| format!("+{} ({})", a.phone, a.jid))
        .unwrap_or_else(|| "not linked".to_owned());
    let mut out = format!(
        "whatsapp-mcp {version} at {url}\n\
         state:    {state} — {text}\n\
         account:  {account}\n\
         archive:  {messages} messages in {chats} chats, {contacts} contacts ({backend}, {size:.2} MB)\n\
         synced:   {synced}\n\
         uptime:   {uptime} s\n",
        version = report.version,
        state = report.state,
        text = report.status_text,
        messages = crate::report::group_thousands(stats.message_count),
        chats = crate::report::group_thousands(stats.chat_count),
        contacts = crate::report::group_thousands(stats.contact_count),
        backend = report.backend,
        size = stats.database_size_mb,
        synced = stats.last_sync_time.as_deref().unwrap_or("never"),
        uptime = report.uptime_seconds,
    );
    if stats.search_backlog > 0 {
        out.push_str(&format!(
            "search:   {} messages still being indexed (searches scan them meanwhile)\n",
            crate::report::group_thousands(stats.search_backlog)
        ));
    }
    if report.authentication.has_qr_code {
        out.push_str(&format!(
            "link:     a QR code is waiting: open {url}/qr or run `whatsapp-mcp qr`\n"
        ));
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("problem:  {error}\n"));
    }
    out
}

#[cfg(test)]
mod manual_tests;
