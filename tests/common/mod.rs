//! Helpers shared by the integration tests: free ports, a notify socket, HTTP, the binary.
#![allow(dead_code, unreachable_pub)]

pub mod netns;
pub mod pg;
pub mod stdio;

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
///
/// With `WHATSAPP_MCP_TEST_LOG_DIR` set (tests/run.sh sets it), this is a wrapper script in that
/// directory that copies the binary's stderr into a file there, at debug level unless the test
/// chose a level, so that the run can finally check that no secret reached any log. The wrapper
/// `exec`s the binary: pids, signals, inherited sockets and exit codes stay the binary's own.
pub fn binary() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let real = env!("CARGO_BIN_EXE_whatsapp-mcp");
    PATH.get_or_init(|| match std::env::var_os("WHATSAPP_MCP_TEST_LOG_DIR") {
        Some(dir) => logging_wrapper(Path::new(&dir), real),
        None => real.to_owned(),
    })
}

/// Writes the wrapper described at [`binary`] and returns its path.
fn logging_wrapper(dir: &Path, real: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let test = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let path = dir.join(format!("run-{test}-{}.sh", std::process::id()));
    // Under a journal stream the binary must keep its own stderr (tests/journald.rs); the copy
    // process closes the sockets systemd-socket-activate hands over, so they close on exit.
    let script = format!(
        "#!/bin/bash\n\
         export WHATSAPP_MCP_LOG=${{WHATSAPP_MCP_LOG:-debug}}\n\
         if [ -n \"${{JOURNAL_STREAM:-}}\" ]; then exec '{real}' \"$@\"; fi\n\
         exec 2> >(exec tee -a '{dir}/{test}-'\"$$\"'.log' >&2 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-)\n\
         exec '{real}' \"$@\"\n",
        dir = dir.display(),
    );
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, script).unwrap();
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    path.display().to_string()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Unix datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifySocket {
    pub path: PathBuf,
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self {
            path,
            socket,
            _dir: dir,
        }
    }

    /// Receives datagrams until `until` returns true for one of them or `timeout` passes; returns
    /// every datagram seen, split into its `KEY=VALUE` lines.
    pub fn collect_until(
        &self,
        timeout: Duration,
        mut until: impl FnMut(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return seen;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut done = false;
                    for line in text.lines() {
                        done |= until(line);
                        seen.push(line.to_owned());
                    }
                    if done {
                        return seen;
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return seen;
                }
                Err(err) => panic!("notify socket: {err}"),
            }
        }
    }
}

/// A plain HTTP GET with a generous timeout; returns the status code and body.
pub fn get(url: &str) -> (u16, String) {
    get_with(url, &[])
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request
        .call()
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// Polls `url` until it answers or `timeout` passes.
pub fn wait_for_http(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(1)))
        .http_status_as_error(false)
        .build()
        .into();
    while Instant::now() < deadline {
        if agent.get(url).call().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A child process that is killed if the test ends (or panics) while it still runs.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Connects to `port` until something accepts, then hangs up.
pub fn wait_for_listener(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit, killing it if it takes longer than `timeout`.
pub fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// Starts the binary behind `systemd-socket-activate` with the given `-l` ports and fd names.
pub fn socket_activate(
    ports: &[u16],
    fdnames: &str,
    notify: &NotifySocket,
    data_dir: &std::path::Path,
    watchdog_usec: u64,
) -> KillOnDrop {
    let mut cmd = Command::new("systemd-socket-activate");
    for port in ports {
        cmd.arg("-l").arg(format!("127.0.0.1:{port}"));
    }
    if !fdnames.is_empty() {
        cmd.arg(format!("--fdname={fdnames}"));
    }
    // systemd-socket-activate passes only a few variables of its own environment on (PATH,
    // HOME, ...), so the notify socket and the test's isolation are handed over with -E, as
    // systemd itself sets a service's environment.
    cmd.arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()));
    for (key, value) in isolated_env(data_dir) {
        cmd.arg("-E").arg(format!("{key}={value}"));
    }
    if watchdog_usec > 0 {
        cmd.arg("-E").arg(format!("WATCHDOG_USEC={watchdog_usec}"));
    }
    // WATCHDOG_PID must be the service's own pid; `exec` keeps the shell's pid for the binary.
    cmd.arg("sh")
        .arg("-c")
        .arg(format!("export WATCHDOG_PID=$$; exec {} serve", binary()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd
        .spawn()
        .map(KillOnDrop)
        .expect("systemd-socket-activate is installed (package systemd)");
    // The first connection makes systemd-socket-activate start the service, like systemd does.
    wait_for_listener(ports[0], Duration::from_secs(10));
    child
}

/// Environment that keeps the binary away from the machine's real config and state.
/// An empty config file is written into `data_dir` so an installed /etc config never leaks in.
pub fn isolated_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    let config = data_dir.join("config.toml");
    std::fs::write(&config, "# test: defaults only\n").unwrap();
    vec![
        ("WHATSAPP_MCP_CONFIG", config.display().to_string()),
        ("WHATSAPP_MCP_DATA_DIR", data_dir.display().to_string()),
        ("WHATSAPP_MCP_LOG_TARGET", "stderr".to_owned()),
        // No WhatsApp connection attempts from tests that are about the service itself.
        ("WHATSAPP_MCP_ENGINE", "none".to_owned()),
    ]
}

/// `serve` with the test's isolation (see [`isolated_env`]) and the two ports on loopback;
/// stdin and stdout closed, stderr passed through. Callers add their own environment.
pub fn serve_command(data: &Path, bridge: u16, mcp: u16) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .envs(isolated_env(data))
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        .env("WHATSAPP_MCP_LISTEN", format!("127.0.0.1:{mcp}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// Starts `serve` on the archive at `database_url` with no WhatsApp engine, on ports of its
/// own; returns it and its bridge and MCP ports once it answers.
pub fn serve_archive(data: &Path, database_url: &str) -> (KillOnDrop, u16, u16) {
    let (bridge, mcp) = (free_port(), free_port());
    let child = serve_command(data, bridge, mcp)
        .env("DATABASE_URL", database_url)
        .env("WHATSAPP_MCP_LOG", "warn")
        .spawn()
        .map(KillOnDrop)
        .expect("serve starts");
    assert!(
        wait_for_http(
            &format!("http://127.0.0.1:{mcp}/health"),
            Duration::from_secs(60)
        ),
        "serve never answered"
    );
    (child, bridge, mcp)
}

/// Starts `serve` with the demo archive on `database_url`; returns it once `READY=1` was sent.
pub fn serve_demo(
    data: &Path,
    database_url: &str,
    notify: &NotifySocket,
    bridge: u16,
    mcp: u16,
) -> KillOnDrop {
    let child = serve_command(data, bridge, mcp)
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_FAKE_SEED", "demo")
        .env("DATABASE_URL", database_url)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WHATSAPP_MCP_LOG", "warn")
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let lines = notify.collect_until(Duration::from_secs(60), |line| line == "READY=1");
    assert!(
        lines.iter().any(|l| l == "READY=1"),
        "no READY=1: {lines:?}"
    );
    child
}

/// Whether Nagle's algorithm is off (`TCP_NODELAY`) on the TCP connection that process `pid`
/// holds from its own port `local` to port `peer`, read from that very socket by
/// tests/common/sockopt.py. Panics when the process holds no such connection.
pub fn tcp_nodelay(pid: u32, local: u16, peer: u16) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/sockopt.py");
    let out = Command::new("python3")
        .arg(script)
        .args([pid.to_string(), local.to_string(), peer.to_string()])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "no connection {local} -> {peer} in process {pid} ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim() != "0"
}
