//! The exit statuses of every command, in one place: the commands return them, the service
//! unit names one (`RestartPreventExitStatus=`), and the manual lists them all.

/// Exit code for a usage error, the same as clap uses for bad arguments.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for an unusable configuration (sysexits' EX_CONFIG). The service unit lists it in
/// `RestartPreventExitStatus=` so a broken config does not restart in a loop.
pub const EXIT_CONFIG: u8 = 78;
/// Exit code when the running service cannot be reached, or cannot link at all (sysexits'
/// EX_UNAVAILABLE): `status`, `stdio`, `qr`, `pair` and `logout`.
pub const EXIT_UNREACHABLE: u8 = 69;
/// Exit code after Ctrl-C, as shells report a process ended by SIGINT (`qr`, `pair`).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Every exit status, with what it means, for the manual.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "Success."),
    (
        1,
        "A runtime failure, or linking refused by WhatsApp (logged out, client outdated).",
    ),
    (
        EXIT_USAGE,
        "A usage error, or no subcommand without MCP_TRANSPORT (the help is printed).",
    ),
    (
        EXIT_UNREACHABLE,
        "The running service cannot be reached (status, stdio, qr, pair, logout).",
    ),
    (
        EXIT_CONFIG,
        "The configuration cannot be used; the service unit does not restart on it.",
    ),
    (EXIT_INTERRUPTED, "Interrupted with Ctrl-C (qr, pair)."),
];
