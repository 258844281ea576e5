//! Settings: the TOML file, then environment overrides, validated once into a [`Config`].
//!
//! The file is optional at its default path and required when named with `--config`. Unknown keys
//! are rejected so a typo never silently turns a setting off. Secrets (the bearer token and any
//! database password) are wrapped so `Debug` and `check-config` never print them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the configuration file lives unless `--config` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/whatsapp-mcp/config.toml";

/// One key of the configuration file: the variables that override it, its type, its default
/// and what it does. [`SETTINGS`] lists them all for the manuals (`whatsapp-mcp manpage`); a
/// unit test holds it to the keys the file parser accepts and the variables the loader reads.
#[derive(Debug)]
pub struct Setting {
    /// `section.key` in the file.
    pub key: &'static str,
    /// Environment variables that take precedence, the last one winning.
    pub env: &'static [&'static str],
    pub kind: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every key of the configuration file, in file order.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "bridge.listen",
        env: &["WHATSAPP_MCP_BRIDGE_LISTEN"],
        kind: "address",
        default: "127.0.0.1:8080",
        doc: "Address of the bridge (HTTP API, status page, QR page) when the daemon binds its own \
              sockets; under socket activation whatsapp-mcp.socket decides.",
    },
    Setting {
        key: "bridge.url",
        env: &["WHATSAPP_BRIDGE_URL"],
        kind: "http:// or https:// URL",
        default: "http://localhost:PORT, PORT from bridge.listen",
        doc: "Where the stdio, status, qr, pair and logout commands find the running daemon \
              over TCP, with the token. Setting it makes them use TCP even where the local \
              socket exists.",
    },
    Setting {
        key: "bridge.socket",
        env: &["WHATSAPP_MCP_SOCKET"],
        kind: "absolute path, or \"none\"",
        default: "/run/whatsapp-mcp/bridge.sock",
        doc: "The local Unix socket that serves the bridge (and /mcp) to local users without a \
              token; who may connect is decided by its owner, group and mode. The commands \
              use it when it exists and bridge.url is not set. A daemon that binds its own \
              sockets binds it (mode 0660) only when it is set here or in the variable; under \
              socket activation whatsapp-mcp-local.socket decides.",
    },
    Setting {
        key: "mcp.listen",
        env: &["WHATSAPP_MCP_LISTEN", "MCP_PORT", "PORT"],
        kind: "address",
        default: "127.0.0.1:3000",
        doc: "Address of the MCP endpoint (/mcp, /sse, /messages) when the daemon binds its own \
              sockets. MCP_PORT and then PORT replace the port alone.",
    },
    Setting {
        key: "mcp.transport",
        env: &["MCP_TRANSPORT"],
        kind: "\"stdio\" or \"sse\"",
        default: "sse",
        doc: "What a bare whatsapp-mcp invocation serves when MCP_TRANSPORT is set: MCP on \
              stdin/stdout, or the daemon (which always serves both HTTP transports).",
    },
    Setting {
        key: "mcp.read_only",
        env: &["WHATSAPP_MCP_READ_ONLY"],
        kind: "boolean",
        default: "false",
        doc: "When true, the tools that send anything are not offered.",
    },
    Setting {
        key: "mcp.allowed_recipients",
        env: &["WHATSAPP_MCP_ALLOWED_RECIPIENTS"],
        kind: "list of strings (comma-separated in the variable)",
        default: "[] (anyone)",
        doc: "If not empty, messages may only be sent to these phone numbers (international \
              format) or chat JIDs.",
    },
    Setting {
        key: "mcp.confirm",
        env: &["WHATSAPP_MCP_CONFIRM"],
        kind: "\"never\", \"always\" or \"unlisted\"",
        default: "never",
        doc: "When a tool that acts (sends, reacts, edits, deletes, marks read, asks for history) \
              first asks the person at the client to confirm its recipient and content: never; \
              always; or unlisted, only for recipients not on mcp.allowed_recipients, who are \
              then asked about instead of refused. A client that cannot ask (no MCP \
              elicitation) gets the call refused wherever a question was due.",
    },
    Setting {
        key: "mcp.image_size",
        env: &["WHATSAPP_MCP_IMAGE_SIZE"],
        kind: "pixels (64-4096), or 0",
        default: "1024",
        doc: "download_media answers an image with the picture itself, scaled down so its \
              longer side is at most this many pixels, for models that can see; 0 leaves the \
              picture out (the file's path and the resource link stay).",
    },
    Setting {
        key: "mcp.allowed_origins",
        env: &["WHATSAPP_MCP_ALLOWED_ORIGINS"],
        kind: "list of strings (comma-separated in the variable)",
        default: "[]",
        doc: "Extra Origin header values accepted on MCP HTTP requests from browsers; other \
              origins than the server's own are refused.",
    },
    Setting {
        key: "engine.kind",
        env: &["WHATSAPP_MCP_ENGINE"],
        kind: "\"whatsapp\" or \"none\"",
        default: "whatsapp",
        doc: "What serve and stdio --standalone connect to: whatsapp links this server as a \
              WhatsApp device; none serves the archive and the tools without a WhatsApp \
              connection (the sending tools then explain why they cannot).",
    },
    Setting {
        key: "auth.token_file",
        env: &["WHATSAPP_MCP_TOKEN_FILE"],
        kind: "path",
        default: "$CREDENTIALS_DIRECTORY/token, when present",
        doc: "File holding the bearer token that requests from other machines must carry \
              (Authorization: Bearer TOKEN); at least 16 printable characters.",
    },
    Setting {
        key: "auth.token",
        env: &["WHATSAPP_MCP_TOKEN"],
        kind: "string",
        default: "none",
        doc: "The token itself. Avoid it in the file, which is world-readable; the variable wins \
              over auth.token_file.",
    },
    Setting {
        key: "auth.tokens",
        env: &[],
        kind: "tables: [auth.tokens.NAME] with token_file (or token) and scopes",
        default: "none",
        doc: "Further bearer tokens, each with a name (check-config shows it, never the token) \
              and the scopes it grants: \"whatsapp:read\" (read tools, resources, status and \
              dashboard) and \"whatsapp:send\" (the tools that act, QR linking, pairing and \
              logout). An assistant that only reads gets a token with [\"whatsapp:read\"]. The \
              main token (auth.token_file) grants both, and only it opens a browser login.",
    },
    Setting {
        key: "oauth.enabled",
        env: &["OAUTH_ENABLED"],
        kind: "boolean",
        default: "true when oauth.issuer is set",
        doc: "Accept OAuth 2.1 access tokens (JWTs) from an authorization server besides the \
              static tokens. Enabled without an issuer, the issuer is Google and the tokens are \
              Google ID tokens, as in the system this one replaces (OAUTH_ENABLED=true).",
    },
    Setting {
        key: "oauth.issuer",
        env: &["WHATSAPP_MCP_OAUTH_ISSUER"],
        kind: "https:// URL (http:// on loopback)",
        default: "https://accounts.google.com when oauth.enabled",
        doc: "The authorization server: its metadata (/.well-known/openid-configuration or \
              /.well-known/oauth-authorization-server) names its signing keys, fetched when a \
              token first needs them and again when a token names an unknown key. Tokens must \
              carry it as iss; /.well-known/oauth-protected-resource names it to clients.",
    },
    Setting {
        key: "oauth.audience",
        env: &["GOOGLE_CLIENT_ID", "WHATSAPP_MCP_OAUTH_AUDIENCE"],
        kind: "string",
        default: "none (required with OAuth)",
        doc: "What tokens must carry as aud: this server's resource identifier, or for Google \
              ID tokens the OAuth client id they were issued to.",
    },
    Setting {
        key: "oauth.resource",
        env: &["WHATSAPP_MCP_OAUTH_RESOURCE"],
        kind: "http:// or https:// URL",
        default: "the scheme and Host of each request",
        doc: "The public URL of this server (say https://mcp.example.com behind a proxy), \
              used in the protected resource metadata and in the resource_metadata of 401 \
              answers.",
    },
    Setting {
        key: "oauth.accounts",
        env: &[],
        kind: "table: e-mail address = list of scopes",
        default: "none (scopes come from the token's scope claim)",
        doc: "When not empty, access goes by the token's verified email claim instead of its \
              scopes: each listed account gets its scopes, every other account is refused. \
              Required for Google, whose ID tokens carry no scopes.",
    },
    Setting {
        key: "tls.cert_file",
        env: &["WHATSAPP_MCP_TLS_CERT"],
        kind: "absolute path (PEM)",
        default: "none (plain HTTP)",
        doc: "Serve both TCP ports over TLS with this certificate chain, and tls.key_file (give \
              both or neither). The files are read again when they change, so a renewed \
              certificate is served without a restart; the local socket stays plain.",
    },
    Setting {
        key: "tls.key_file",
        env: &["WHATSAPP_MCP_TLS_KEY"],
        kind: "absolute path (PEM)",
        default: "none",
        doc: "The private key of tls.cert_file; it must be readable by the service's user.",
    },
    Setting {
        key: "storage.database_url",
        env: &["DATABASE_URL"],
        kind: "sqlite:///PATH or postgres://USER@HOST/DB",
        default: "sqlite://DATA_DIR/whatsapp.db",
        doc: "The message archive.",
    },
    Setting {
        key: "storage.session_database_url",
        env: &["WHATSAPP_SESSION_DATABASE_URL"],
        kind: "sqlite:///PATH or postgres://USER@HOST/DB",
        default: "storage.database_url",
        doc: "The WhatsApp session (device keys).",
    },
    Setting {
        key: "paths.data_dir",
        env: &["WHATSAPP_MCP_DATA_DIR"],
        kind: "absolute path",
        default: "$STATE_DIRECTORY, else /var/lib/whatsapp-mcp for root, else \
                  $XDG_STATE_HOME/whatsapp-mcp or ~/.local/state/whatsapp-mcp",
        doc: "State directory (DATA_DIR above).",
    },
    Setting {
        key: "paths.media_dir",
        env: &["WHATSAPP_MCP_MEDIA_DIR"],
        kind: "absolute path",
        default: "DATA_DIR/media",
        doc: "Downloaded media is written here and nowhere else. At its default place the \
              service keeps it 0750 and its files 0640, for the members of its group.",
    },
    Setting {
        key: "paths.outbox_dir",
        env: &["WHATSAPP_MCP_OUTBOX_DIR"],
        kind: "absolute path",
        default: "DATA_DIR/outbox",
        doc: "send_file and send_audio_message read files from here only. At its default \
              place the service creates it 0770, so members of its group can drop files in.",
    },
    Setting {
        key: "log.level",
        env: &["WHATSAPP_MCP_LOG"],
        kind: "level or filter",
        default: "info",
        doc: "A level or a filter such as info,whatsapp_mcp=debug (ASCII; by target or span \
              name, not span fields).",
    },
    Setting {
        key: "log.target",
        env: &["WHATSAPP_MCP_LOG_TARGET"],
        kind: "\"auto\", \"journald\" or \"stderr\"",
        default: "auto",
        doc: "Where logs go; auto picks the journal when stderr is connected to it.",
    },
];

/// Variables the loader reads for defaults rather than to override a key.
pub const DEFAULT_SOURCES: &[(&str, &str)] = &[
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd (LoadCredential=): its file token is the bearer token when no other is \
         configured.",
    ),
    (
        "STATE_DIRECTORY",
        "Set by systemd (StateDirectory=): the first directory is the default paths.data_dir.",
    ),
    (
        "XDG_STATE_HOME",
        "For users other than root, the default paths.data_dir is whatsapp-mcp inside it.",
    ),
    (
        "HOME",
        "Without XDG_STATE_HOME, the default paths.data_dir is ~/.local/state/whatsapp-mcp; \
         /root counts as root.",
    ),
    (
        "USER",
        "When it is root, the default paths.data_dir is /var/lib/whatsapp-mcp.",
    ),
];

/// Shortest bearer token accepted; anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

/// A configuration that cannot be used, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// A value that must never be printed: `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A database URL whose password is hidden whenever it is displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        let url = Self(raw.trim().to_owned());
        match url.kind() {
            Some(_) => Ok(url),
            None => Err(ConfigError::invalid(
                key,
                format!(
                    "unsupported database URL {}: use sqlite:///path/to/file.db or postgres://user@host/db",
                    url.redacted()
                ),
            )),
        }
    }

    /// The full URL including any password, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> Option<BackendKind> {
        let scheme = self.0.split_once("://")?.0;
        match scheme {
            "sqlite" => Some(BackendKind::Sqlite),
            "postgres" | "postgresql" => Some(BackendKind::Postgres),
            _ => None,
        }
    }

    /// The filesystem path of an `sqlite://` URL (`sqlite:///abs` or `sqlite://relative`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.0.strip_prefix("sqlite://")?;
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// The URL with the password part of the authority replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url_password(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return redact_query_password(url);
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_owned()
    };
    redact_query_password(&format!("{scheme}://{masked}@{host}{tail}"))
}

/// libpq also accepts `?password=...`; hide that form too.
fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Which storage engine a database URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The MCP transport named by `MCP_TRANSPORT`: what a bare `whatsapp-mcp` invocation serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// MCP over stdin/stdout for a desktop client.
    Stdio,
    /// The daemon with both HTTP transports (legacy SSE and Streamable HTTP).
    Sse,
}

impl Transport {
    fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "stdio" => Ok(Self::Stdio),
            "sse" | "http" | "streamable-http" => Ok(Self::Sse),
            other => Err(ConfigError::invalid(
                key,
                format!("unknown transport {other:?}: expected \"stdio\" or \"sse\""),
            )),
        }
    }
}

/// Where log lines go (defined with the logging it configures).
pub use crate::logging::LogTarget;

/// The validated settings every part of the program reads.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the file was read from, if one was.
    pub source: Option<PathBuf>,
    pub bridge_listen: SocketAddr,
    /// Base URL of the bridge for the local clients (`status`, `qr`, `stdio`).
    pub bridge_url: String,
    /// True when `bridge_url` was set rather than derived from `bridge_listen`.
    pub bridge_url_set: bool,
    /// The local Unix socket.
    pub local_socket: LocalSocket,
    pub mcp_listen: SocketAddr,
    pub transport: Transport,
    pub read_only: bool,
    pub allowed_recipients: Vec<String>,
    pub confirm: Confirm,
    /// Longest side of the pictures `download_media` returns; 0: none.
    pub image_size: u32,
    pub allowed_origins: Vec<String>,
    pub engine: EngineKind,
    pub token: Option<Secret>,
    /// Where the token was read from, for `check-config`.
    pub token_source: Option<String>,
    /// The named tokens of `[auth.tokens.NAME]`, each with its scopes.
    pub tokens: Vec<NamedToken>,
    /// OAuth access tokens, when `[oauth]` turns them on.
    pub oauth: Option<OAuthSettings>,
    /// TLS on the TCP ports, when `[tls]` names a certificate and key.
    pub tls: Option<TlsFiles>,
    pub database_url: DatabaseUrl,
    pub session_database_url: DatabaseUrl,
    pub data_dir: PathBuf,
    pub media_dir: PathBuf,
    pub outbox_dir: PathBuf,
    pub log_level: String,
    pub log_target: LogTarget,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    bridge: BridgeSection,
    #[serde(default)]
    mcp: McpSection,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    oauth: OAuthSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    paths: PathsSection,
    #[serde(default)]
    log: LogSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeSection {
    listen: Option<SocketAddr>,
    url: Option<String>,
    socket: Option<String>,
}

/// Where the local Unix socket is, when it is in use.
pub const DEFAULT_LOCAL_SOCKET: &str = "/run/whatsapp-mcp/bridge.sock";

/// The local Unix socket: where the commands look for it, and whether `serve` binds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSocket {
    /// `None` when turned off (`none`).
    pub path: Option<PathBuf>,
    /// True when set in the file or the environment rather than defaulted.
    pub set: bool,
}

impl LocalSocket {
    /// The path a daemon binding its own sockets listens on: only one set explicitly, since
    /// the default lives in `/run/whatsapp-mcp`, which the package's socket unit owns.
    pub fn serve_path(&self) -> Option<&Path> {
        self.path.as_deref().filter(|_| self.set)
    }

    fn parse(raw: Option<String>) -> Result<Self, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Self {
                path: Some(PathBuf::from(DEFAULT_LOCAL_SOCKET)),
                set: false,
            });
        };
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("none") {
            return Ok(Self {
                path: None,
                set: true,
            });
        }
        let path = PathBuf::from(raw);
        if !path.is_absolute() {
            return Err(ConfigError::invalid(
                "bridge.socket",
                format!("{raw:?} is not an absolute path (or \"none\")"),
            ));
        }
        Ok(Self {
            path: Some(path),
            set: true,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpSection {
    listen: Option<SocketAddr>,
    transport: Option<String>,
    read_only: Option<bool>,
    allowed_recipients: Option<Vec<String>>,
    confirm: Option<String>,
    image_size: Option<u32>,
    allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    kind: Option<String>,
}

/// Which engine `serve` and `stdio --standalone` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The real WhatsApp client.
    Whatsapp,
    /// No WhatsApp connection: the archive and the tools only.
    None,
    /// The scripted engine of the tests (`fake-engine` builds only).
    Fake,
}

/// When an acting tool asks the person at the client before it acts (`mcp.confirm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirm {
    /// Never asks; the allow-list alone decides.
    #[default]
    Never,
    /// Asks before every acting call (to allowed recipients only).
    Always,
    /// Asks only for recipients outside the allow-list, who are then asked about instead of
    /// refused; the listed ones are served without a question.
    Unlisted,
}

impl Confirm {
    fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            "unlisted" => Ok(Self::Unlisted),
            other => Err(ConfigError::invalid(
                key,
                format!("unknown value {other:?}: expected \"never\", \"always\" or \"unlisted\""),
            )),
        }
    }
}

impl EngineKind {
    fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim() {
            "whatsapp" => Ok(Self::Whatsapp),
            "none" => Ok(Self::None),
            "fake" if cfg!(feature = "fake-engine") => Ok(Self::Fake),
            other => Err(ConfigError::invalid(
                key,
                format!("unknown engine {other:?}: expected \"whatsapp\" or \"none\""),
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    token: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, TokenSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSection {
    token: Option<String>,
    token_file: Option<PathBuf>,
    scopes: Vec<String>,
}

/// What a credential lets its holder do. The names are those an OAuth token would carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read tools, resources, the status and the dashboard.
    Read,
    /// The tools that act (send, react, mark read, ask for history), linking and logout.
    Send,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Send];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "whatsapp:read",
            Scope::Send => "whatsapp:send",
        }
    }

    fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw.trim())
            .ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!(
                        "unknown scope {raw:?}: expected \"whatsapp:read\" or \"whatsapp:send\""
                    ),
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A further bearer token: its name, shown in logs instead of the token, and its scopes.
#[derive(Clone, Debug)]
pub struct NamedToken {
    pub name: String,
    pub secret: Secret,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthSection {
    enabled: Option<bool>,
    issuer: Option<String>,
    audience: Option<String>,
    resource: Option<String>,
    #[serde(default)]
    accounts: std::collections::BTreeMap<String, Vec<String>>,
}

/// Google's issuer, the one `OAUTH_ENABLED=true` alone selects.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Access tokens from an OAuth 2.1 authorization server (`[oauth]`), checked by
/// `access::oauth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The issuer as configured; tokens carry it as `iss`.
    pub issuer: String,
    /// Other spellings of the issuer a token may carry: Google writes `accounts.google.com`
    /// in some of its ID tokens.
    pub issuer_aliases: Vec<String>,
    /// What tokens must carry as `aud`.
    pub audience: String,
    /// This server's public URL, when configured.
    pub resource: Option<String>,
    /// E-mail address (lower case) to scopes; when not empty, the only accounts let in.
    pub accounts: std::collections::BTreeMap<String, Vec<Scope>>,
}

impl OAuthSettings {
    fn resolve(section: OAuthSection, env: EnvLookup<'_>) -> Result<Option<Self>, ConfigError> {
        let enabled = match env("OAUTH_ENABLED") {
            Some(raw) => Some(parse_bool("OAUTH_ENABLED", &raw)?),
            None => section.enabled,
        };
        let (issuer_key, issuer) = match env("WHATSAPP_MCP_OAUTH_ISSUER") {
            Some(raw) => ("WHATSAPP_MCP_OAUTH_ISSUER", Some(raw)),
            None => ("oauth.issuer", section.issuer),
        };
        let audience = ["GOOGLE_CLIENT_ID", "WHATSAPP_MCP_OAUTH_AUDIENCE"]
            .into_iter()
            .filter_map(|key| env(key).map(|value| (key, value)))
            .next_back()
            .or_else(|| section.audience.map(|value| ("oauth.audience", value)));
        let resource = match env("WHATSAPP_MCP_OAUTH_RESOURCE") {
            Some(raw) => Some(("WHATSAPP_MCP_OAUTH_RESOURCE", raw)),
            None => section.resource.map(|raw| ("oauth.resource", raw)),
        };
        if !enabled.unwrap_or(issuer.is_some()) {
            return Ok(None);
        }
        let issuer = issuer.map_or_else(|| GOOGLE_ISSUER.to_owned(), |raw| raw.trim().to_owned());
        validate_oauth_url(issuer_key, &issuer, false)?;
        let Some((audience_key, audience)) = audience else {
            return Err(ConfigError::invalid(
                "oauth.audience",
                "OAuth needs the audience tokens are issued for (WHATSAPP_MCP_OAUTH_AUDIENCE; \
                 for Google the OAuth client id, GOOGLE_CLIENT_ID)",
            ));
        };
        let audience = audience.trim().to_owned();
        if audience.is_empty() || audience.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                audience_key,
                "the audience is empty or not printable",
            ));
        }
        let resource = match resource {
            Some((key, raw)) => {
                let raw = raw.trim().trim_end_matches('/').to_owned();
                validate_oauth_url(key, &raw, true)?;
                Some(raw)
            }
            None => None,
        };
        let mut accounts = std::collections::BTreeMap::new();
        for (account, scopes) in section.accounts {
            let key = format!("oauth.accounts.{account}");
            let account = account.trim().to_lowercase();
            let plain = account.len() <= 254
                && account.split_once('@').is_some_and(|(user, domain)| {
                    !user.is_empty() && domain.contains('.') && !domain.contains('@')
                })
                && !account.chars().any(|c| c.is_whitespace() || c.is_control());
            if !plain {
                return Err(ConfigError::invalid(&key, "not an e-mail address"));
            }
            let mut scopes = scopes
                .iter()
                .map(|raw| Scope::parse(&key, raw))
                .collect::<Result<Vec<_>, _>>()?;
            scopes.sort();
            scopes.dedup();
            if scopes.is_empty() {
                return Err(ConfigError::invalid(
                    &key,
                    "an account needs at least one scope: \"whatsapp:read\", \"whatsapp:send\"",
                ));
            }
            if accounts.insert(account, scopes).is_some() {
                return Err(ConfigError::invalid(&key, "this account is listed twice"));
            }
        }
        let issuer_aliases = if issuer == GOOGLE_ISSUER {
            if accounts.is_empty() {
                return Err(ConfigError::invalid(
                    "oauth.accounts",
                    "Google ID tokens carry no scopes: list the accounts to let in, each with \
                     its scopes, under [oauth.accounts]",
                ));
            }
            vec!["accounts.google.com".to_owned()]
        } else {
            Vec::new()
        };
        Ok(Some(Self {
            issuer,
            issuer_aliases,
            audience,
            resource,
            accounts,
        }))
    }
}

/// An issuer or resource URL: `https://`, or `http://` to a loopback host (a test or a local
/// authorization server); no credentials, query or fragment. A resource may have a path.
fn validate_oauth_url(key: &str, url: &str, resource: bool) -> Result<(), ConfigError> {
    let invalid = |message: &str| Err(ConfigError::invalid(key, format!("{url:?}: {message}")));
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme == "https" || scheme == "http" => (scheme, rest),
        _ => return invalid("expected an https:// URL"),
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    if authority.is_empty()
        || url.contains(['?', '#', '@'])
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return invalid("expected scheme://host[:port][/path] without user, query or fragment");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(host, _)| host),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(is_loopback);
    if scheme == "http" && !loopback && !resource {
        return invalid(
            "an authorization server is reached over https:// (http:// only on loopback)",
        );
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// The certificate chain and private key of `[tls]`, PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn resolve(section: TlsSection, env: EnvLookup<'_>) -> Result<Option<Self>, ConfigError> {
        let cert = env("WHATSAPP_MCP_TLS_CERT")
            .map(|raw| ("WHATSAPP_MCP_TLS_CERT", PathBuf::from(raw.trim())))
            .or_else(|| section.cert_file.map(|path| ("tls.cert_file", path)));
        let key = env("WHATSAPP_MCP_TLS_KEY")
            .map(|raw| ("WHATSAPP_MCP_TLS_KEY", PathBuf::from(raw.trim())))
            .or_else(|| section.key_file.map(|path| ("tls.key_file", path)));
        match (cert, key) {
            (None, None) => Ok(None),
            (Some((cert_key, cert)), Some((key_key, key))) => {
                require_absolute(cert_key, &cert)?;
                require_absolute(key_key, &key)?;
                Ok(Some(Self { cert, key }))
            }
            (Some(_), None) => Err(ConfigError::invalid(
                "tls.key_file",
                "a certificate needs its private key (tls.key_file or WHATSAPP_MCP_TLS_KEY)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "tls.cert_file",
                "a private key needs its certificate (tls.cert_file or WHATSAPP_MCP_TLS_CERT)",
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    database_url: Option<String>,
    session_database_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathsSection {
    data_dir: Option<PathBuf>,
    media_dir: Option<PathBuf>,
    outbox_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    target: Option<LogTarget>,
}

/// Reads environment variables; a trait object so tests can supply their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, ignoring variables that are set but empty.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Loads `path` (or the default path, if it exists) and applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &process_env)
    }

    /// Like [`Config::load`] with an explicit environment.
    pub fn load_with_env(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let (file, source) = match path {
            Some(path) => (read_file(path)?, Some(path.to_path_buf())),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    (read_file(default)?, Some(default.to_path_buf()))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        Self::resolve(file, source, env)
    }

    /// Parses TOML text as if it were the configuration file at `origin`.
    pub fn from_toml(text: &str, origin: &Path, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let file = parse_file(text, origin)?;
        Self::resolve(file, Some(origin.to_path_buf()), env)
    }

    fn resolve(
        file: FileConfig,
        source: Option<PathBuf>,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let bridge_listen = match env("WHATSAPP_MCP_BRIDGE_LISTEN") {
            Some(raw) => parse_addr("WHATSAPP_MCP_BRIDGE_LISTEN", &raw)?,
            None => file
                .bridge
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        };

        let mut mcp_listen = match env("WHATSAPP_MCP_LISTEN") {
            Some(raw) => parse_addr("WHATSAPP_MCP_LISTEN", &raw)?,
            None => file
                .mcp
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
        };
        // The seed's contract: MCP_PORT sets the MCP port and PORT (as set by Cloud Run and
        // similar platforms) wins over it.
        for key in ["MCP_PORT", "PORT"] {
            if let Some(raw) = env(key) {
                mcp_listen.set_port(parse_port(key, &raw)?);
            }
        }
        if mcp_listen.port() != 0 && mcp_listen.port() == bridge_listen.port() {
            let same_ip = mcp_listen.ip() == bridge_listen.ip()
                || mcp_listen.ip().is_unspecified()
                || bridge_listen.ip().is_unspecified();
            if same_ip {
                return Err(ConfigError::invalid(
                    "mcp.listen",
                    format!(
                        "the MCP listener ({mcp_listen}) and the bridge ({bridge_listen}) cannot share a port"
                    ),
                ));
            }
        }

        let bridge_url = env("WHATSAPP_BRIDGE_URL").or(file.bridge.url);
        let bridge_url_set = bridge_url.is_some();
        let bridge_url = bridge_url.unwrap_or_else(|| default_bridge_url(bridge_listen));
        let bridge_url = validate_bridge_url(bridge_url.trim())?;
        let local_socket = LocalSocket::parse(env("WHATSAPP_MCP_SOCKET").or(file.bridge.socket))?;

        let transport = match env("MCP_TRANSPORT").or(file.mcp.transport) {
            Some(raw) => Transport::parse("MCP_TRANSPORT", &raw)?,
            None => Transport::Sse,
        };

        let read_only = match env("WHATSAPP_MCP_READ_ONLY") {
            Some(raw) => parse_bool("WHATSAPP_MCP_READ_ONLY", &raw)?,
            None => file.mcp.read_only.unwrap_or(false),
        };
        let allowed_recipients = match env("WHATSAPP_MCP_ALLOWED_RECIPIENTS") {
            Some(raw) => split_list(&raw),
            None => file.mcp.allowed_recipients.unwrap_or_default(),
        };
        let confirm = match (env("WHATSAPP_MCP_CONFIRM"), file.mcp.confirm) {
            (Some(raw), _) => Confirm::parse("WHATSAPP_MCP_CONFIRM", &raw)?,
            (None, Some(raw)) => Confirm::parse("mcp.confirm", &raw)?,
            (None, None) => Confirm::Never,
        };
        let image_size = match env("WHATSAPP_MCP_IMAGE_SIZE") {
            Some(raw) => {
                parse_image_size("WHATSAPP_MCP_IMAGE_SIZE", raw.trim().parse().ok(), &raw)?
            }
            None => match file.mcp.image_size {
                Some(size) => parse_image_size("mcp.image_size", Some(size), &size.to_string())?,
                None => DEFAULT_IMAGE_SIZE,
            },
        };
        let allowed_origins = match env("WHATSAPP_MCP_ALLOWED_ORIGINS") {
            Some(raw) => split_list(&raw),
            None => file.mcp.allowed_origins.unwrap_or_default(),
        };

        let engine = match (env("WHATSAPP_MCP_ENGINE"), file.engine.kind) {
            (Some(raw), _) => EngineKind::parse("WHATSAPP_MCP_ENGINE", &raw)?,
            (None, Some(raw)) => EngineKind::parse("engine.kind", &raw)?,
            (None, None) => EngineKind::Whatsapp,
        };
        let (token, token_source) = resolve_token(&file.auth, env)?;
        let tokens = named_tokens(&file.auth, token.as_ref())?;
        let oauth = OAuthSettings::resolve(file.oauth, env)?;
        let tls = TlsFiles::resolve(file.tls, env)?;

        let data_dir = env("WHATSAPP_MCP_DATA_DIR")
            .map(PathBuf::from)
            .or(file.paths.data_dir)
            .unwrap_or_else(|| default_data_dir(env));
        require_absolute("paths.data_dir", &data_dir)?;
        let media_dir = env("WHATSAPP_MCP_MEDIA_DIR")
            .map(PathBuf::from)
            .or(file.paths.media_dir)
            .unwrap_or_else(|| data_dir.join("media"));
        require_absolute("paths.media_dir", &media_dir)?;
        let outbox_dir = env("WHATSAPP_MCP_OUTBOX_DIR")
            .map(PathBuf::from)
            .or(file.paths.outbox_dir)
            .unwrap_or_else(|| data_dir.join("outbox"));
        require_absolute("paths.outbox_dir", &outbox_dir)?;

        let database_url = match env("DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse("DATABASE_URL", &raw)?,
            None => match file.storage.database_url {
                Some(raw) => DatabaseUrl::parse("storage.database_url", &raw)?,
                None => DatabaseUrl(format!(
                    "sqlite://{}",
                    data_dir.join("whatsapp.db").display()
                )),
            },
        };
        let session_database_url = match env("WHATSAPP_SESSION_DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse("WHATSAPP_SESSION_DATABASE_URL", &raw)?,
            None => match file.storage.session_database_url {
                Some(raw) => DatabaseUrl::parse("storage.session_database_url", &raw)?,
                None => database_url.clone(),
            },
        };

        let log_level = env("WHATSAPP_MCP_LOG")
            .or(file.log.level)
            .unwrap_or_else(|| "info".to_owned());
        validate_log_level(&log_level)?;
        let log_target = match env("WHATSAPP_MCP_LOG_TARGET") {
            Some(raw) => match raw.trim() {
                "auto" => LogTarget::Auto,
                "journald" => LogTarget::Journald,
                "stderr" => LogTarget::Stderr,
                other => {
                    return Err(ConfigError::invalid(
                        "WHATSAPP_MCP_LOG_TARGET",
                        format!("unknown log target {other:?}: expected auto, journald or stderr"),
                    ));
                }
            },
            None => file.log.target.unwrap_or(LogTarget::Auto),
        };

        Ok(Self {
            source,
            bridge_listen,
            bridge_url,
            bridge_url_set,
            local_socket,
            mcp_listen,
            transport,
            read_only,
            allowed_recipients,
            confirm,
            image_size,
            allowed_origins,
            engine,
            token,
            token_source,
            tokens,
            oauth,
            tls,
            database_url,
            session_database_url,
            data_dir,
            media_dir,
            outbox_dir,
            log_level,
            log_target,
        })
    }

    /// True when some credential guards the TCP ports: a token, or OAuth.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || !self.tokens.is_empty() || self.oauth.is_some()
    }

    /// Refuses an address that other machines can reach unless a token guards it.
    ///
    /// Called with the configured addresses by `check-config` and with the addresses of the
    /// sockets actually held (which systemd may have chosen) by `serve`.
    pub fn check_exposure(&self, name: &str, addr: SocketAddr) -> Result<(), ConfigError> {
        if !self.has_credentials() && !is_loopback(addr.ip()) {
            return Err(ConfigError::invalid(
                name,
                format!(
                    "{addr} is reachable from other machines but no bearer token is configured; \
                     set [auth] token_file (or WHATSAPP_MCP_TOKEN_FILE), or [oauth], or listen \
                     on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets redacted, for `check-config`.
    pub fn to_redacted_toml(&self) -> String {
        let view = RedactedView {
            bridge: RedactedBridge {
                listen: self.bridge_listen.to_string(),
                url: self.bridge_url.clone(),
                socket: self
                    .local_socket
                    .path
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |path| path.display().to_string()),
            },
            mcp: RedactedMcp {
                listen: self.mcp_listen.to_string(),
                transport: self.transport,
                read_only: self.read_only,
                allowed_recipients: self.allowed_recipients.clone(),
                confirm: self.confirm,
                image_size: self.image_size,
                allowed_origins: self.allowed_origins.clone(),
            },
            engine: RedactedEngine { kind: self.engine },
            auth: RedactedAuth {
                token: if self.token.is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                },
                token_source: self.token_source.clone().unwrap_or_default(),
                tokens: self
                    .tokens
                    .iter()
                    .map(|named| {
                        (
                            named.name.clone(),
                            named.scopes.iter().map(|s| s.as_str()).collect(),
                        )
                    })
                    .collect(),
            },
            oauth: self.oauth.as_ref().map(|oauth| RedactedOAuth {
                issuer: oauth.issuer.clone(),
                audience: oauth.audience.clone(),
                resource: oauth.resource.clone().unwrap_or_default(),
                accounts: oauth
                    .accounts
                    .iter()
                    .map(|(account, scopes)| {
                        (account.clone(), scopes.iter().map(|s| s.as_str()).collect())
                    })
                    .collect(),
            }),
            tls: self.tls.as_ref().map(|tls| RedactedTls {
                cert_file: tls.cert.display().to_string(),
                key_file: tls.key.display().to_string(),
            }),
            storage: RedactedStorage {
                database_url: self.database_url.redacted(),
                session_database_url: self.session_database_url.redacted(),
            },
            paths: RedactedPaths {
                data_dir: self.data_dir.display().to_string(),
                media_dir: self.media_dir.display().to_string(),
                outbox_dir: self.outbox_dir.display().to_string(),
            },
            log: RedactedLog {
                level: self.log_level.clone(),
                target: self.log_target,
            },
        };
        toml::to_string_pretty(&view).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
    }
}

#[derive(Serialize)]
struct RedactedView {
    bridge: RedactedBridge,
    mcp: RedactedMcp,
    engine: RedactedEngine,
    auth: RedactedAuth,
    #[serde(skip_serializing_if = "Option::is_none")]
    oauth: Option<RedactedOAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<RedactedTls>,
    storage: RedactedStorage,
    paths: RedactedPaths,
    log: RedactedLog,
}

#[derive(Serialize)]
struct RedactedBridge {
    listen: String,
    url: String,
    socket: String,
}

#[derive(Serialize)]
struct RedactedMcp {
    listen: String,
    transport: Transport,
    read_only: bool,
    allowed_recipients: Vec<String>,
    confirm: Confirm,
    image_size: u32,
    allowed_origins: Vec<String>,
}

#[derive(Serialize)]
struct RedactedEngine {
    kind: EngineKind,
}

#[derive(Serialize)]
struct RedactedAuth {
    token: &'static str,
    token_source: String,
    /// Each named token's scopes; the tokens themselves are never shown.
    tokens: std::collections::BTreeMap<String, Vec<&'static str>>,
}

#[derive(Serialize)]
struct RedactedOAuth {
    issuer: String,
    audience: String,
    resource: String,
    accounts: std::collections::BTreeMap<String, Vec<&'static str>>,
}

#[derive(Serialize)]
struct RedactedTls {
    cert_file: String,
    key_file: String,
}

#[derive(Serialize)]
struct RedactedStorage {
    database_url: String,
    session_database_url: String,
}

#[derive(Serialize)]
struct RedactedPaths {
    data_dir: String,
    media_dir: String,
    outbox_dir: String,
}

#[derive(Serialize)]
struct RedactedLog {
    level: String,
    target: LogTarget,
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|err: toml::de::Error| {
        // The parser's own rendering quotes the offending line, which may be the token's or a
        // database URL's: name the place and the problem only.
        let message = hide_values(err.message().trim_end());
        let message = match err.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        }
    })
}

/// A parser message with each value serde found replaced by `…`: serde renders it as
/// `string "…"` or `variant `…``, and it may be a token put under the wrong key. Keys, the
/// expected forms and the parser's syntax messages (expected `"`) stay, as they say what to fix.
fn hide_values(message: &str) -> String {
    let mut shown = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next_quote = rest.find("string \"").map(|at| at + "string ".len());
        let next_variant = rest.find("variant `").map(|at| at + "variant ".len());
        let (at, close) = match (next_quote, next_variant) {
            (Some(q), Some(v)) if v < q => (v, '`'),
            (Some(q), _) => (q, '"'),
            (None, Some(v)) => (v, '`'),
            (None, None) => break,
        };
        shown.push_str(&rest[..=at]);
        shown.push('…');
        let value = &rest[at + 1..];
        let mut escaped = false;
        let end = value.char_indices().find_map(|(i, c)| {
            let found = !escaped && c == close;
            escaped = !escaped && c == '\\' && close == '"';
            found.then_some(i)
        });
        match end {
            Some(end) => {
                shown.push(close);
                rest = &value[end + 1..];
            }
            None => return shown,
        }
    }
    shown.push_str(rest);
    shown
}

fn resolve_token(
    auth: &AuthSection,
    env: EnvLookup<'_>,
) -> Result<(Option<Secret>, Option<String>), ConfigError> {
    if let Some(token) = env("WHATSAPP_MCP_TOKEN") {
        return Ok((
            Some(validate_token("WHATSAPP_MCP_TOKEN", &token)?),
            Some("environment WHATSAPP_MCP_TOKEN".to_owned()),
        ));
    }
    let explicit_file = env("WHATSAPP_MCP_TOKEN_FILE")
        .map(|raw| ("WHATSAPP_MCP_TOKEN_FILE", PathBuf::from(raw)))
        .or_else(|| {
            auth.token_file
                .clone()
                .map(|path| ("auth.token_file", path))
        });
    if let Some((key, path)) = explicit_file {
        let token = read_token_file(key, &path)?;
        return Ok((Some(token), Some(path.display().to_string())));
    }
    if let Some(token) = &auth.token {
        return Ok((
            Some(validate_token("auth.token", token)?),
            Some("config file".to_owned()),
        ));
    }
    // systemd's LoadCredential= hands the packaged token to the service this way, which keeps
    // the file itself root-only even for a DynamicUser service.
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join("token");
        if path.exists() {
            let token = read_token_file("CREDENTIALS_DIRECTORY/token", &path)?;
            return Ok((Some(token), Some(path.display().to_string())));
        }
    }
    Ok((None, None))
}

/// The `[auth.tokens.NAME]` tables: each name plain (it appears in logs), each token valid,
/// read from its file or given inline, and different from every other token, the main one
/// included (two names for one secret would make the scopes ambiguous).
fn named_tokens(auth: &AuthSection, main: Option<&Secret>) -> Result<Vec<NamedToken>, ConfigError> {
    let mut tokens: Vec<NamedToken> = Vec::new();
    for (name, section) in &auth.tokens {
        let key = format!("auth.tokens.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::invalid(
                &key,
                "a token's name is 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        let secret = match (&section.token_file, &section.token) {
            (Some(path), None) => read_token_file(&format!("{key}.token_file"), path)?,
            (None, Some(token)) => validate_token(&format!("{key}.token"), token)?,
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    "give exactly one of token_file (preferred) and token",
                ));
            }
        };
        let mut scopes = section
            .scopes
            .iter()
            .map(|raw| Scope::parse(&format!("{key}.scopes"), raw))
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.scopes"),
                "a token needs at least one scope: \"whatsapp:read\", \"whatsapp:send\"",
            ));
        }
        let taken = main.is_some_and(|main| main.expose() == secret.expose())
            || tokens
                .iter()
                .any(|other| other.secret.expose() == secret.expose());
        if taken {
            return Err(ConfigError::invalid(
                &key,
                "this token is already used by another name; every token must be different",
            ));
        }
        tokens.push(NamedToken {
            name: name.clone(),
            secret,
            scopes,
        });
    }
    Ok(tokens)
}

/// Largest token file read; a token is a line, so anything longer is the wrong file (and a
/// device such as /dev/zero must not be read forever).
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

fn read_token_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    use std::io::Read as _;
    let cannot_read = |err: std::io::Error| {
        ConfigError::invalid(
            key,
            format!("cannot read token file {}: {err}", path.display()),
        )
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(ConfigError::invalid(
            key,
            format!(
                "token file {} is longer than {MAX_TOKEN_FILE_BYTES} bytes: it should hold the token alone",
                path.display()
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ConfigError::invalid(
            key,
            format!("token file {} is not UTF-8 text", path.display()),
        )
    })?;
    validate_token(key, &text)
}

fn validate_token(key: &str, raw: &str) -> Result<Secret, ConfigError> {
    let token = raw.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(ConfigError::invalid(
            key,
            format!("the token must be at least {MIN_TOKEN_LEN} characters long"),
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            key,
            "the token may only contain printable ASCII without spaces",
        ));
    }
    Ok(Secret::new(token))
}

fn parse_addr(key: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{raw:?} is not an address like 127.0.0.1:3000 or [::1]:3000"),
        )
    })
}

/// Longest side of a picture `download_media` returns, unless configured.
pub const DEFAULT_IMAGE_SIZE: u32 = 1024;

/// `mcp.image_size`: 0, or 64 to 4096 pixels (smaller shows nothing useful, larger is more than
/// any model takes in).
fn parse_image_size(key: &str, size: Option<u32>, raw: &str) -> Result<u32, ConfigError> {
    match size {
        Some(size) if size == 0 || (64..=4096).contains(&size) => Ok(size),
        _ => Err(ConfigError::invalid(
            key,
            format!(
                "{:?} is not 0 or a size in pixels from 64 to 4096",
                raw.trim()
            ),
        )),
    }
}

fn parse_port(key: &str, raw: &str) -> Result<u16, ConfigError> {
    raw.trim()
        .parse::<u16>()
        .map_err(|_| ConfigError::invalid(key, format!("{raw:?} is not a port number (0-65535)")))
}

fn parse_bool(key: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            key,
            format!("{raw:?} is not a boolean (true/false)"),
        )),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn require_absolute(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{} must be an absolute path", path.display()),
        ))
    }
}

fn validate_bridge_url(url: &str) -> Result<String, ConfigError> {
    let ok = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty());
    if ok {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::invalid(
            "WHATSAPP_BRIDGE_URL",
            format!("{url:?} is not an http:// or https:// URL"),
        ))
    }
}

fn validate_log_level(level: &str) -> Result<(), ConfigError> {
    crate::logging::parse_filter(level)
        .map(drop)
        .map_err(|err| ConfigError::invalid("log.level", format!("{level:?}: {err}")))
}

fn default_bridge_url(listen: SocketAddr) -> String {
    let host = if listen.ip().is_unspecified() || is_loopback(listen.ip()) {
        "localhost".to_owned()
    } else {
        match listen.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    };
    format!("http://{host}:{}", listen.port())
}

/// `$STATE_DIRECTORY` under systemd, `/var/lib/whatsapp-mcp` for root, else the XDG state dir.
fn default_data_dir(env: EnvLookup<'_>) -> PathBuf {
    if let Some(dir) = env("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; the first is ours.
        let first = dir.split(':').next().unwrap_or(&dir);
        return PathBuf::from(first);
    }
    let is_root = env("USER").as_deref() == Some("root") || env("HOME").as_deref() == Some("/root");
    if is_root {
        return PathBuf::from("/var/lib/whatsapp-mcp");
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return Path::new(&state).join("whatsapp-mcp");
    }
    match env("HOME") {
        Some(home) => Path::new(&home).join(".local/state/whatsapp-mcp"),
        None => PathBuf::from("/var/lib/whatsapp-mcp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn load(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/test/config.toml"), &env_of(pairs))
    }

    #[test]
    fn oauth_enabled_alone_is_the_google_form_and_needs_a_client_id_and_accounts() {
        let err = load("", &[("OAUTH_ENABLED", "true")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("oauth.audience") && err.contains("GOOGLE_CLIENT_ID"),
            "{err}"
        );
        let err = load(
            "",
            &[("OAUTH_ENABLED", "true"), ("GOOGLE_CLIENT_ID", "id-1")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("oauth.accounts"), "{err}");
        let config = load(
            "[oauth.accounts]\n\"Me@Example.org\" = [\"whatsapp:read\", \"whatsapp:read\"]\n",
            &[("OAUTH_ENABLED", "yes"), ("GOOGLE_CLIENT_ID", "id-1")],
        )
        .unwrap();
        let oauth = config.oauth.clone().unwrap();
        assert_eq!(oauth.issuer, GOOGLE_ISSUER);
        assert_eq!(oauth.issuer_aliases, ["accounts.google.com"]);
        assert_eq!(oauth.audience, "id-1");
        assert_eq!(oauth.accounts["me@example.org"], [Scope::Read]);
        // OAuth is a credential: it may guard a port other machines reach.
        assert!(
            config
                .check_exposure("mcp", "0.0.0.0:3000".parse().unwrap())
                .is_ok()
        );
        let shown = config.to_redacted_toml();
        assert!(
            shown.contains("[oauth]") && shown.contains("me@example.org"),
            "{shown}"
        );
    }

    #[test]
    fn an_issuer_turns_oauth_on_unless_it_is_turned_off() {
        let file =
            "[oauth]\nissuer = \"https://login.example.com/realms/home\"\naudience = \"a\"\n";
        let config = load(file, &[]).unwrap();
        let oauth = config.oauth.unwrap();
        assert_eq!(oauth.issuer, "https://login.example.com/realms/home");
        assert!(oauth.issuer_aliases.is_empty() && oauth.accounts.is_empty());
        assert!(
            load(file, &[("OAUTH_ENABLED", "false")])
                .unwrap()
                .oauth
                .is_none()
        );
        assert!(load("", &[]).unwrap().oauth.is_none());
        // The variable wins over the file, and the last audience variable over the first.
        let config = load(
            file,
            &[
                ("WHATSAPP_MCP_OAUTH_ISSUER", "http://127.0.0.1:9000"),
                ("GOOGLE_CLIENT_ID", "g"),
                ("WHATSAPP_MCP_OAUTH_AUDIENCE", "w"),
                ("WHATSAPP_MCP_OAUTH_RESOURCE", "https://mcp.example.com/"),
            ],
        )
        .unwrap();
        let oauth = config.oauth.unwrap();
        assert_eq!(oauth.issuer, "http://127.0.0.1:9000");
        assert_eq!(oauth.audience, "w");
        assert_eq!(oauth.resource.as_deref(), Some("https://mcp.example.com"));
    }

    #[test]
    fn oauth_settings_that_cannot_be_safe_are_refused_with_their_key() {
        for (text, env, key) in [
            (
                "[oauth]\nissuer = \"http://login.example.com\"\naudience = \"a\"\n",
                vec![],
                "oauth.issuer",
            ),
            (
                "",
                vec![
                    (
                        "WHATSAPP_MCP_OAUTH_ISSUER",
                        "https://user:pw@login.example.com",
                    ),
                    ("WHATSAPP_MCP_OAUTH_AUDIENCE", "a"),
                ],
                "WHATSAPP_MCP_OAUTH_ISSUER",
            ),
            (
                "[oauth]\nissuer = \"ftp://x\"\naudience = \"a\"\n",
                vec![],
                "oauth.issuer",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\naudience = \"a\"\nresource = \"https://m.example/?q\"\n",
                vec![],
                "oauth.resource",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\naudience = \"a\"\n[oauth.accounts]\n\"not-an-address\" = [\"whatsapp:read\"]\n",
                vec![],
                "oauth.accounts.not-an-address",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\naudience = \"a\"\n[oauth.accounts]\n\"a@b.example\" = []\n",
                vec![],
                "oauth.accounts.a@b.example",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\naudience = \"a\"\n[oauth.accounts]\n\"a@b.example\" = [\"whatsapp:all\"]\n",
                vec![],
                "oauth.accounts.a@b.example",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\naudience = \"a\"\n[oauth.accounts]\n\"a@b.example\" = [\"whatsapp:read\"]\n\"A@b.example\" = [\"whatsapp:send\"]\n",
                vec![],
                "listed twice",
            ),
            (
                "[oauth]\nissuer = \"https://x.example\"\nscope = \"a\"\n",
                vec![],
                "scope",
            ),
        ] {
            let err = load(text, &env).map(drop).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_both_absolute() {
        assert!(load("", &[]).unwrap().tls.is_none());
        let config = load(
            "[tls]\ncert_file = \"/etc/ssl/a.pem\"\nkey_file = \"/etc/ssl/a.key\"\n",
            &[("WHATSAPP_MCP_TLS_KEY", "/run/credentials/b.key")],
        )
        .unwrap();
        let tls = config.tls.clone().unwrap();
        assert_eq!(tls.cert, Path::new("/etc/ssl/a.pem"));
        assert_eq!(tls.key, Path::new("/run/credentials/b.key"));
        assert!(config.to_redacted_toml().contains("[tls]"));
        for (text, env, key) in [
            ("[tls]\ncert_file = \"/a.pem\"\n", vec![], "tls.key_file"),
            (
                "",
                vec![("WHATSAPP_MCP_TLS_KEY", "/a.key")],
                "tls.cert_file",
            ),
            (
                "[tls]\ncert_file = \"a.pem\"\nkey_file = \"/a.key\"\n",
                vec![],
                "tls.cert_file",
            ),
            (
                "",
                vec![
                    ("WHATSAPP_MCP_TLS_CERT", "/a.pem"),
                    ("WHATSAPP_MCP_TLS_KEY", "a.key"),
                ],
                "WHATSAPP_MCP_TLS_KEY",
            ),
        ] {
            let err = load(text, &env).map(drop).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn defaults_are_loopback_and_sqlite_under_the_data_dir() {
        let config = load("", &[("STATE_DIRECTORY", "/var/lib/whatsapp-mcp")]).unwrap();
        assert_eq!(config.bridge_listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.mcp_listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.bridge_url, "http://localhost:8080");
        assert_eq!(
            config.database_url.expose(),
            "sqlite:///var/lib/whatsapp-mcp/whatsapp.db"
        );
        assert_eq!(config.session_database_url, config.database_url);
        assert_eq!(
            config.media_dir,
            PathBuf::from("/var/lib/whatsapp-mcp/media")
        );
        assert!(config.token.is_none());
    }

    #[test]
    fn a_log_filter_with_a_multibyte_character_is_an_error_not_a_panic() {
        // tracing-subscriber's parser cuts a directive with leading blanks in the wrong place,
        // and panics when that place is inside a character.
        for level in [" [sä]", "info, [ü]=debug", "whatsapp_mcp=débug"] {
            let err = load("", &[("WHATSAPP_MCP_LOG", level)]).unwrap_err();
            assert!(err.to_string().contains("log.level"), "{level}: {err}");
        }
        let level = "whatsapp_mcp=debug, [sync]=trace";
        let config = load("", &[("WHATSAPP_MCP_LOG", level)]);
        assert_eq!(config.unwrap().log_level, level);
        let filter = crate::logging::parse_filter(level).unwrap().to_string();
        assert!(filter.contains("[sync]=trace"), "{filter}");
    }

    #[test]
    fn a_log_filter_with_span_fields_is_refused() {
        // Found by the config_load fuzz target: a field value tracing-subscriber compiled into
        // an automaton of more than 2 GB, and repeated fields that trip its debug assertion.
        for text in [
            include_str!("../fuzz/seeds/config_load/log_filter_field_regex"),
            include_str!("../fuzz/seeds/config_load/log_filter_duplicate_fields"),
            "[log]\nlevel = \"info,[request{path=/api}]=debug\"\n",
        ] {
            let err = load(text, &[]).map(drop).unwrap_err().to_string();
            assert!(
                err.contains("log.level") && err.contains("span field filters"),
                "{err}"
            );
        }
        let level = "info,[request]=debug";
        assert_eq!(
            load("", &[("WHATSAPP_MCP_LOG", level)]).unwrap().log_level,
            level
        );
    }

    /// The fields a section accepts, as the parser lists them when it refuses an unknown one.
    fn accepted_fields(section: Option<&str>) -> Vec<String> {
        let text = match section {
            Some(section) => format!("[{section}]\nno_such_key = 1\n"),
            None => "no_such_key = 1\n".to_owned(),
        };
        let err = load(&text, &[]).map(drop).unwrap_err().to_string();
        let expected = err.split_once("expected").expect("a list of fields").1;
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn settings_table_has_every_file_key_and_every_variable_the_loader_reads() {
        let mut keys = Vec::new();
        for section in accepted_fields(None) {
            for field in accepted_fields(Some(&section)) {
                keys.push(format!("{section}.{field}"));
            }
        }
        let mut table: Vec<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        keys.sort();
        table.sort();
        assert!(keys.len() > 10, "{keys:?}");
        assert_eq!(keys, table, "file keys against SETTINGS");

        // With nothing set, the loader asks for every variable it knows.
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let record = |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            None
        };
        Config::from_toml("", Path::new("/test/config.toml"), &record).unwrap();
        let mut known: std::collections::BTreeSet<String> = SETTINGS
            .iter()
            .flat_map(|s| s.env.iter().map(|v| (*v).to_owned()))
            .collect();
        known.extend(DEFAULT_SOURCES.iter().map(|(v, _)| (*v).to_owned()));
        assert_eq!(
            asked.into_inner(),
            known,
            "variables read against the tables"
        );
    }

    #[test]
    fn port_takes_precedence_over_mcp_port() {
        let config = load(
            "[mcp]\nlisten = \"127.0.0.1:3000\"\n",
            &[("MCP_PORT", "8000"), ("PORT", "9000")],
        )
        .unwrap();
        assert_eq!(config.mcp_listen.port(), 9000);
        let config = load("", &[("MCP_PORT", "8000")]).unwrap();
        assert_eq!(config.mcp_listen.port(), 8000);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = load("[mcp]\nlisten_addr = \"x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err = load("colour = 1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load(
            "[storage]\ndatabase_url = \"sqlite:///a.db\"\n[bridge]\nurl = \"http://a:1\"\n",
            &[
                ("DATABASE_URL", "postgres://u:pw@db/wa"),
                ("WHATSAPP_BRIDGE_URL", "http://b:2/"),
                ("MCP_TRANSPORT", "stdio"),
            ],
        )
        .unwrap();
        assert_eq!(config.database_url.kind(), Some(BackendKind::Postgres));
        assert_eq!(config.session_database_url, config.database_url);
        assert_eq!(config.bridge_url, "http://b:2");
        assert_eq!(config.transport, Transport::Stdio);
    }

    #[test]
    fn the_engine_is_configuration_and_check_config_shows_it() {
        assert_eq!(load("", &[]).unwrap().engine, EngineKind::Whatsapp);
        let config = load("[engine]\nkind = \"none\"\n", &[]).unwrap();
        assert_eq!(config.engine, EngineKind::None);
        assert!(
            config
                .to_redacted_toml()
                .contains("[engine]\nkind = \"none\"")
        );
        let config = load(
            "[engine]\nkind = \"none\"\n",
            &[("WHATSAPP_MCP_ENGINE", "whatsapp")],
        )
        .unwrap();
        assert_eq!(config.engine, EngineKind::Whatsapp);
        let err = load("", &[("WHATSAPP_MCP_ENGINE", "telegram")]).unwrap_err();
        assert!(err.to_string().contains("unknown engine"), "{err}");
    }

    #[test]
    fn the_local_socket_defaults_to_run_and_is_served_only_when_set() {
        let config = load("", &[]).unwrap();
        assert_eq!(
            config.local_socket.path.as_deref(),
            Some(Path::new(DEFAULT_LOCAL_SOCKET))
        );
        assert_eq!(config.local_socket.serve_path(), None);
        assert!(!config.bridge_url_set);

        let config = load("[bridge]\nsocket = \"/tmp/wa/bridge.sock\"\n", &[]).unwrap();
        assert_eq!(
            config.local_socket.serve_path(),
            Some(Path::new("/tmp/wa/bridge.sock"))
        );
        let config = load(
            "[bridge]\nsocket = \"/tmp/wa/bridge.sock\"\n",
            &[
                ("WHATSAPP_MCP_SOCKET", "none"),
                ("WHATSAPP_BRIDGE_URL", "http://a:1"),
            ],
        )
        .unwrap();
        assert_eq!(config.local_socket.path, None);
        assert!(config.bridge_url_set);
        assert!(config.to_redacted_toml().contains("socket = \"none\""));

        let err = load("", &[("WHATSAPP_MCP_SOCKET", "run/bridge.sock")]).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn passwords_never_appear_when_printed() {
        let config = load(
            "",
            &[
                (
                    "DATABASE_URL",
                    "postgres://wa:hunter22@db:5432/wa?sslmode=require",
                ),
                (
                    "WHATSAPP_SESSION_DATABASE_URL",
                    "postgres://db/wa?password=hunter33",
                ),
                ("WHATSAPP_MCP_TOKEN", "0123456789abcdef0123"),
            ],
        )
        .unwrap();
        let shown = format!("{config:?}\n{}", config.to_redacted_toml());
        for secret in ["hunter22", "hunter33", "0123456789abcdef0123"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("postgres://wa:***@db:5432/wa?sslmode=require"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (pairs, key) in [
            (vec![("MCP_PORT", "http")], "MCP_PORT"),
            (vec![("MCP_TRANSPORT", "carrier-pigeon")], "MCP_TRANSPORT"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (vec![("WHATSAPP_MCP_TOKEN", "short")], "WHATSAPP_MCP_TOKEN"),
            (
                vec![("WHATSAPP_BRIDGE_URL", "localhost:8080")],
                "WHATSAPP_BRIDGE_URL",
            ),
            (
                vec![("WHATSAPP_MCP_DATA_DIR", "relative")],
                "paths.data_dir",
            ),
        ] {
            let err = load("", &pairs).unwrap_err();
            assert!(err.to_string().starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn named_tokens_carry_their_scopes_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reader.token");
        std::fs::write(&file, "reader-token-0123456789\n").unwrap();
        let text = format!(
            "[auth.tokens.assistant]\ntoken_file = \"{}\"\nscopes = [\"whatsapp:read\"]\n\
             [auth.tokens.notifier]\ntoken = \"sender-token-0123456789\"\n\
             scopes = [\"whatsapp:send\", \"whatsapp:read\", \"whatsapp:send\"]\n",
            file.display()
        );
        let config = load(&text, &[]).unwrap();
        let named: Vec<_> = config
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.secret.expose(), t.scopes.clone()))
            .collect();
        assert_eq!(
            named,
            [
                ("assistant", "reader-token-0123456789", vec![Scope::Read]),
                (
                    "notifier",
                    "sender-token-0123456789",
                    vec![Scope::Read, Scope::Send]
                ),
            ]
        );
        // A named token alone guards a listener beyond loopback.
        assert!(
            config
                .check_exposure("mcp", "0.0.0.0:3000".parse().unwrap())
                .is_ok()
        );
        // check-config names the tokens and their scopes, never the tokens themselves.
        let shown = config.to_redacted_toml();
        assert!(
            shown.contains("assistant") && shown.contains("whatsapp:read"),
            "{shown}"
        );
        assert!(!shown.contains("token-0123456789"), "{shown}");

        for (text, key, words) in [
            (
                "[auth.tokens.a]\ntoken = \"abcdefghijklmnop\"\nscopes = [\"whatsapp:write\"]\n",
                "auth.tokens.a.scopes",
                "unknown scope",
            ),
            (
                "[auth.tokens.a]\ntoken = \"abcdefghijklmnop\"\nscopes = []\n",
                "auth.tokens.a.scopes",
                "at least one scope",
            ),
            (
                "[auth.tokens.a]\nscopes = [\"whatsapp:read\"]\n",
                "auth.tokens.a",
                "exactly one of token_file",
            ),
            (
                "[auth.tokens.\"a b\"]\ntoken = \"abcdefghijklmnop\"\nscopes = [\"whatsapp:read\"]\n",
                "auth.tokens.a b",
                "letters, digits",
            ),
            (
                "[auth]\ntoken = \"abcdefghijklmnop\"\n[auth.tokens.a]\ntoken = \"abcdefghijklmnop\"\n\
                 scopes = [\"whatsapp:read\"]\n",
                "auth.tokens.a",
                "already used",
            ),
            (
                "[auth.tokens.a]\ntoken = \"short\"\nscopes = [\"whatsapp:read\"]\n",
                "auth.tokens.a.token",
                "at least",
            ),
        ] {
            let err = load(text, &[]).map(drop).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(words), "{text}: {err}");
            assert!(
                !err.contains("abcdefghijklmnop"),
                "a token in an error: {err}"
            );
        }
    }

    #[test]
    fn exposure_without_token_is_refused() {
        let config = load("", &[]).unwrap();
        assert!(
            config
                .check_exposure("bridge", "127.0.0.1:8080".parse().unwrap())
                .is_ok()
        );
        assert!(
            config
                .check_exposure("bridge", "0.0.0.0:8080".parse().unwrap())
                .is_err()
        );
        let config = load("", &[("WHATSAPP_MCP_TOKEN", "0123456789abcdef")]).unwrap();
        assert!(
            config
                .check_exposure("bridge", "0.0.0.0:8080".parse().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn credentials_directory_supplies_the_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abcdefghijklmnopqrstuvwxyz\n").unwrap();
        let config = load(
            "",
            &[("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(
            config.token.as_ref().map(Secret::expose),
            Some("abcdefghijklmnopqrstuvwxyz")
        );
    }

    #[test]
    fn a_syntax_error_names_the_place_without_quoting_the_line() {
        let err = load(
            "[auth]\ntoken = \"tok-en-never-shown-0123\" trailing\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2, column"), "{err}");
        assert!(!err.contains("tok-en-never-shown"), "{err}");
    }

    #[test]
    fn confirmation_is_off_unless_asked_for_and_the_variable_wins() {
        assert_eq!(load("", &[]).unwrap().confirm, Confirm::Never);
        let file = "[mcp]\nconfirm = \"unlisted\"\n";
        assert_eq!(load(file, &[]).unwrap().confirm, Confirm::Unlisted);
        let both = load(file, &[("WHATSAPP_MCP_CONFIRM", " Always ")]).unwrap();
        assert_eq!(both.confirm, Confirm::Always);
        assert!(both.to_redacted_toml().contains("confirm = \"always\""));
        let err = load("[mcp]\nconfirm = \"sometimes\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mcp.confirm") && err.contains("\"unlisted\""),
            "{err}"
        );
        let err = load("", &[("WHATSAPP_MCP_CONFIRM", "yes")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WHATSAPP_MCP_CONFIRM"), "{err}");
    }

    #[test]
    fn the_picture_size_is_bounded_and_zero_turns_pictures_off() {
        assert_eq!(load("", &[]).unwrap().image_size, DEFAULT_IMAGE_SIZE);
        assert_eq!(
            load("[mcp]\nimage_size = 512\n", &[]).unwrap().image_size,
            512
        );
        let env = load(
            "[mcp]\nimage_size = 512\n",
            &[("WHATSAPP_MCP_IMAGE_SIZE", "0")],
        );
        assert_eq!(env.unwrap().image_size, 0);
        for (text, pairs) in [
            ("[mcp]\nimage_size = 10\n", &[][..]),
            ("", &[("WHATSAPP_MCP_IMAGE_SIZE", "big")][..]),
            ("", &[("WHATSAPP_MCP_IMAGE_SIZE", "5000")][..]),
        ] {
            let err = load(text, pairs).unwrap_err().to_string();
            assert!(err.contains("64 to 4096"), "{err}");
        }
    }

    #[test]
    fn a_value_in_the_wrong_place_is_not_quoted_back() {
        let secret = "Qm7vT2xK9pLw4Rz8Nc3Hd6Fj1Bs5Gy0U";
        for text in [
            format!("tokens = [\"{secret}\"]\n"),
            format!(
                "[auth]\ntoken = \"main-token-0246913578abcdef\"\n[auth.tokens]\ntoken = \"{secret}\"\n"
            ),
            format!(
                "[auth]\ntoken = {{ token = 5 }}\n[[tokens]]\nname = \"a\"\ntoken = \"{secret}\"\nscopes = \"{secret}\"\n"
            ),
        ] {
            let err = load(&text, &[]).unwrap_err().to_string();
            assert!(err.contains("line "), "{err}");
            assert!(!err.contains(secret), "{err}");
        }
        assert_eq!(
            hide_values(r#"invalid type: string "a\"b", expected struct T"#),
            r#"invalid type: string "…", expected struct T"#
        );
        assert_eq!(
            hide_values("unknown variant `xyz`, expected one of `a`, `b`"),
            "unknown variant `…`, expected one of `a`, `b`"
        );
        assert_eq!(hide_values("string \"cut off"), "string \"…");
        for syntax in [
            "invalid basic string, expected `\"`",
            r#"missing escaped value, expected `b`, `\\`, `\"`, `u`"#,
        ] {
            assert_eq!(hide_values(syntax), syntax);
        }
        assert_eq!(hide_values("missing field `name`"), "missing field `name`");
    }

    #[test]
    fn a_token_file_that_is_not_a_token_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(10_000)).unwrap();
        let err = load("", &[("WHATSAPP_MCP_TOKEN_FILE", big.to_str().unwrap())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 4096 bytes"), "{err}");
        let err = load("", &[("WHATSAPP_MCP_TOKEN_FILE", "/dev/zero")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn the_packaged_sample_file_shows_every_setting() {
        let sample = include_str!("../packaging/config.toml");
        for setting in SETTINGS {
            let (section, name) = setting.key.split_once('.').unwrap();
            let header = format!("\n[{section}]\n");
            let start = sample
                .find(&header)
                .unwrap_or_else(|| panic!("no [{section}] in packaging/config.toml"));
            let body = &sample[start + header.len()..];
            let body = &body[..body.find("\n[").unwrap_or(body.len())];
            let shown = body.contains(&format!("\n#{name} = "))
                || body.starts_with(&format!("#{name} = "))
                || body.contains(&format!("\n#[{section}.{name}"));
            assert!(shown, "packaging/config.toml does not show {}", setting.key);
        }
    }
}
