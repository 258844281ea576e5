//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a temporary directory,
//! listening on 127.0.0.1 on a free port and on a Unix socket inside that directory, with trust
//! authentication. Stopped and deleted on drop. Nothing assumes a server already running.
//!
//! `initdb` refuses to run as root, so under root the cluster belongs to the `postgres` system
//! user (created by Debian's postgresql package) and its programs run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Superuser the cluster is initialised with; trust authentication needs no password.
const SUPERUSER: &str = "postgres";

/// A private PostgreSQL server for the life of the value.
pub struct PgCluster {
    /// Owned by the server's user; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some(name)` when the server programs run as that user (we are root).
    run_as: Option<String>,
    running: bool,
    databases: AtomicU32,
    /// fsync, synchronous_commit and full_page_writes as a real server has them.
    durable: bool,
}

impl PgCluster {
    /// Initialises and starts a new cluster with fsync and friends off (the data is thrown
    /// away, and tests should be quick). Panics with the reason when PostgreSQL is not installed
    /// or does not start: tests that need it must not silently pass without it.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A cluster with PostgreSQL's durable defaults (fsync, synchronous_commit and
    /// full_page_writes on), as a production server runs: for figures of what ships.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let bin = find_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("wa-pg-")
            .tempdir()
            .expect("a temporary directory");
        let run_as = running_as_root().then(|| SUPERUSER.to_owned());
        if let Some(user) = &run_as {
            hand_over(dir.path(), user);
        }
        let mut cluster = Self {
            dir,
            bin,
            port: 0,
            run_as,
            running: false,
            databases: AtomicU32::new(0),
            durable,
        };
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir().display().to_string(),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                // What a Debian server's cluster has: a UTF-8 locale, under which pg_trgm
                // splits words of every script into trigrams (under `C`, ASCII only).
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        assert_ok(&initdb, "initdb");
        // The free port can be taken between our probe and the server's bind: try a few.
        for attempt in 1..=3 {
            cluster.port = super::free_port();
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(log) if attempt == 3 => panic!("PostgreSQL did not start:\n{log}"),
                Err(_) => {}
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its data. Calls
    /// made meanwhile fail as against a real outage.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        assert_ok(&out, "pg_ctl stop");
        self.running = false;
    }

    /// Starts the server again on the same port and data after `stop`.
    pub fn start_again(&mut self) {
        if self.running {
            return;
        }
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not restart:\n{log}");
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database and returns its `postgres://` URL (TCP, no TLS).
    pub fn new_database(&self) -> String {
        self.create_database(&[])
    }

    /// A new database whose character classification (`LC_CTYPE`) is `ctype` instead of the
    /// cluster's UTF-8 locale.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn new_database_with_ctype(&self, ctype: &str) -> String {
        self.create_database(&["--template=template0", &format!("--lc-ctype={ctype}")])
    }

    fn create_database(&self, options: &[&str]) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(options)
            .arg(&name)
            .output()
            .expect("run createdb");
        assert_ok(&out, "createdb");
        self.url(&name)
    }

    /// The URL of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// The server's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn try_start(&mut self) -> Result<(), String> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        if !self.durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let out = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log_file().display().to_string(),
            "-o",
            &options,
        ]);
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            ))
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data_dir().display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs one of the server programs, as the cluster's owner.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        command
            .args(args)
            // The server inherits the working directory; make sure its user can enter it.
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", path.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            // Immediate: nothing in a throwaway cluster is worth a clean checkpoint.
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else the directory of `initdb` on PATH.
fn find_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin \
                 or PATH: install the postgresql package (tests/run.sh does)"
            )
        })
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Gives `dir` to `user`, who must own a cluster's files.
fn hand_over(dir: &Path, user: &str) {
    let account = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "running as root, and there is no '{user}' user to run PostgreSQL as: install \
                 the postgresql package, which creates it"
            )
        });
    std::os::unix::fs::chown(dir, Some(account.uid.as_raw()), Some(account.gid.as_raw()))
        .expect("chown the cluster directory");
}
