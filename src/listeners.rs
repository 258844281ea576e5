//! The listening sockets of both ports and of the local Unix socket: taken from systemd socket
//! activation, or bound from the config.
//!
//! systemd names its sockets with `FileDescriptorName=`; every socket named `bridge` serves the
//! bridge, every one named `mcp` the MCP endpoint and every one named `local` (a Unix socket)
//! the bridge for local users, so a socket unit with several `ListenStream=` lines (say IPv4 and
//! IPv6) has each of its addresses served. Two sockets whose names say nothing are taken by
//! position: first the bridge, then MCP.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why the listeners could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} for the {role}: {source}")]
    Bind {
        role: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on the local socket {path}: {source}")]
    BindLocal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket activation passed {0}")]
    Activation(String),
}

/// The listening sockets of both ports, ready to hand to [`crate::server::run`].
#[derive(Debug)]
pub struct Listeners {
    /// At least one.
    pub bridge: Vec<TcpListener>,
    /// At least one.
    pub mcp: Vec<TcpListener>,
    /// Unix sockets serving the bridge to local users; none unless configured or passed.
    pub local: Vec<UnixListener>,
    /// True when systemd (or `systemd-socket-activate`) supplied the sockets.
    pub activated: bool,
}

/// What each passed descriptor is for, by position.
#[derive(Debug, PartialEq, Eq)]
struct Roles {
    bridge: Vec<usize>,
    mcp: Vec<usize>,
    local: Vec<usize>,
}

impl Listeners {
    /// Uses the sockets systemd passed, or binds the configured addresses.
    pub fn acquire(config: &Config) -> Result<Self, ListenError> {
        // Read the names before listenfd consumes the activation variables.
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Self::bind(config);
        }
        let names: Vec<&str> = names.split(':').collect();
        let roles = assign_roles(&names, fds.len())?;
        let mut take = |idx: usize, role: &str| -> Result<TcpListener, ListenError> {
            fds.take_tcp_listener(idx)
                .map_err(|err| {
                    ListenError::Activation(format!(
                        "fd {} for the {role} is unusable: {err}",
                        idx + 3
                    ))
                })?
                .ok_or_else(|| {
                    ListenError::Activation(format!(
                        "no TCP socket at position {idx} for the {role}"
                    ))
                })
        };
        let bridge = roles
            .bridge
            .iter()
            .map(|&idx| take(idx, "bridge"))
            .collect::<Result<_, _>>()?;
        let mcp = roles
            .mcp
            .iter()
            .map(|&idx| take(idx, "MCP endpoint"))
            .collect::<Result<_, _>>()?;
        let local = roles
            .local
            .iter()
            .map(|&idx| {
                fds.take_unix_listener(idx)
                    .map_err(|err| {
                        ListenError::Activation(format!(
                            "fd {} for the local socket is unusable: {err}",
                            idx + 3
                        ))
                    })?
                    .ok_or_else(|| {
                        ListenError::Activation(format!(
                            "no Unix socket at position {idx} for the local socket"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            bridge,
            mcp,
            local,
            activated: true,
        })
    }

    /// Binds both configured addresses, and the local socket when one is configured.
    pub fn bind(config: &Config) -> Result<Self, ListenError> {
        let bind = |role, addr| {
            TcpListener::bind(addr).map_err(|source| ListenError::Bind { role, addr, source })
        };
        let local = match config.local_socket.serve_path() {
            Some(path) => vec![bind_local(path)?],
            None => Vec::new(),
        };
        Ok(Self {
            bridge: vec![bind("bridge", config.bridge_listen)?],
            mcp: vec![bind("MCP endpoint", config.mcp_listen)?],
            local,
            activated: false,
        })
    }

    /// Every address held, with its role; systemd may have chosen them differently from the
    /// config.
    pub fn local_addrs(&self) -> std::io::Result<Vec<(&'static str, SocketAddr)>> {
        let bridge = self
            .bridge
            .iter()
            .map(|l| Ok(("bridge socket", l.local_addr()?)));
        let mcp = self.mcp.iter().map(|l| Ok(("MCP socket", l.local_addr()?)));
        bridge.chain(mcp).collect()
    }

    /// The paths of the local sockets held.
    pub fn local_paths(&self) -> Vec<PathBuf> {
        self.local
            .iter()
            .filter_map(|l| l.local_addr().ok()?.as_pathname().map(Path::to_path_buf))
            .collect()
    }
}

/// Binds the local socket at `path`, readable and writable by owner and group only (0660).
///
/// A socket file left by a process that is gone is replaced; one that still answers is not,
/// so two services never share a path.
fn bind_local(path: &Path) -> Result<UnixListener, ListenError> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let failed = |source| ListenError::BindLocal {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
        && std::os::unix::net::UnixStream::connect(path).is_err()
    {
        std::fs::remove_file(path).map_err(failed)?;
    }
    let listener = UnixListener::bind(path).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(failed)?;
    Ok(listener)
}

/// Chooses which passed descriptors serve which role.
fn assign_roles(names: &[&str], count: usize) -> Result<Roles, ListenError> {
    let named = |wanted: &str| -> Vec<usize> {
        (0..count)
            .filter(|&idx| names.get(idx) == Some(&wanted))
            .collect()
    };
    let (bridge, mcp, local) = (named("bridge"), named("mcp"), named("local"));
    if !bridge.is_empty() && !mcp.is_empty() {
        for (idx, name) in names.iter().enumerate().take(count) {
            if !matches!(*name, "bridge" | "mcp" | "local") {
                tracing::warn!(
                    fd = idx + 3,
                    name,
                    "ignoring a passed socket that is neither `bridge`, `mcp` nor `local`"
                );
            }
        }
        return Ok(Roles { bridge, mcp, local });
    }
    match count {
        2 => Ok(Roles {
            bridge: vec![0],
            mcp: vec![1],
            local: Vec::new(),
        }),
        0 | 1 => Err(ListenError::Activation(format!(
            "{count} socket(s) but two are needed (the bridge, e.g. port 8080, and MCP, e.g. port 3000)"
        ))),
        _ => Err(ListenError::Activation(format!(
            "{count} sockets, but not named for their roles: give them FileDescriptorName=bridge \
             and FileDescriptorName=mcp"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{Roles, assign_roles};

    fn roles(bridge: &[usize], mcp: &[usize]) -> Roles {
        Roles {
            bridge: bridge.to_vec(),
            mcp: mcp.to_vec(),
            local: Vec::new(),
        }
    }

    #[test]
    fn the_local_socket_is_found_by_name() {
        let found = assign_roles(&["bridge", "local", "mcp"], 3).unwrap();
        assert_eq!(
            found,
            Roles {
                bridge: vec![0],
                mcp: vec![2],
                local: vec![1],
            }
        );
    }

    #[test]
    fn names_win_over_position() {
        assert_eq!(
            assign_roles(&["mcp", "bridge"], 2).unwrap(),
            roles(&[1], &[0])
        );
        assert_eq!(
            assign_roles(&["bridge", "mcp"], 2).unwrap(),
            roles(&[0], &[1])
        );
    }

    #[test]
    fn every_socket_of_a_name_is_served() {
        // One socket unit with two ListenStream= lines per port: two fds with one name each.
        assert_eq!(
            assign_roles(&["bridge", "bridge", "mcp", "mcp"], 4).unwrap(),
            roles(&[0, 1], &[2, 3])
        );
        assert_eq!(
            assign_roles(&["mcp", "bridge", "mcp"], 3).unwrap(),
            roles(&[1], &[0, 2])
        );
    }

    #[test]
    fn unnamed_sockets_are_taken_in_order() {
        assert_eq!(assign_roles(&[""], 2).unwrap(), roles(&[0], &[1]));
        assert_eq!(
            assign_roles(&["whatsapp-mcp", "whatsapp-mcp"], 2).unwrap(),
            roles(&[0], &[1])
        );
    }

    #[test]
    fn unnamed_sockets_beyond_two_are_refused() {
        let err = assign_roles(&["a", "a", "a"], 3).unwrap_err();
        assert!(
            err.to_string().contains("FileDescriptorName=bridge"),
            "{err}"
        );
    }

    #[test]
    fn one_socket_is_not_enough() {
        let err = assign_roles(&["bridge"], 1).unwrap_err();
        assert!(err.to_string().contains("two are needed"), "{err}");
    }
}
