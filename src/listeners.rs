//! The two listening sockets: taken from systemd socket activation, or bound from the config.
//!
//! systemd names its sockets with `FileDescriptorName=`; we look for `bridge` and `mcp` and fall
//! back to position (first bridge, second mcp) when the names say nothing.

use std::net::{SocketAddr, TcpListener};

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
    #[error("socket activation passed {0}")]
    Activation(String),
}

/// Both listening sockets, ready to hand to [`crate::server::run`].
#[derive(Debug)]
pub struct Listeners {
    pub bridge: TcpListener,
    pub mcp: TcpListener,
    /// True when systemd (or `systemd-socket-activate`) supplied the sockets.
    pub activated: bool,
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
        let (bridge_idx, mcp_idx) = pick_indices(&names, fds.len())?;
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
        Ok(Self {
            bridge: take(bridge_idx, "bridge")?,
            mcp: take(mcp_idx, "MCP endpoint")?,
            activated: true,
        })
    }

    /// Binds both configured addresses.
    pub fn bind(config: &Config) -> Result<Self, ListenError> {
        let bind = |role, addr| {
            TcpListener::bind(addr).map_err(|source| ListenError::Bind { role, addr, source })
        };
        Ok(Self {
            bridge: bind("bridge", config.bridge_listen)?,
            mcp: bind("MCP endpoint", config.mcp_listen)?,
            activated: false,
        })
    }

    /// The addresses actually held, which systemd may have chosen differently from the config.
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.bridge.local_addr()?, self.mcp.local_addr()?))
    }
}

/// Chooses which passed descriptor serves which role.
fn pick_indices(names: &[&str], count: usize) -> Result<(usize, usize), ListenError> {
    let position = |wanted: &str| names.iter().position(|name| *name == wanted);
    match (position("bridge"), position("mcp")) {
        (Some(bridge), Some(mcp)) if bridge < count && mcp < count => Ok((bridge, mcp)),
        _ if count >= 2 => Ok((0, 1)),
        _ => Err(ListenError::Activation(format!(
            "{count} socket(s) but two are needed (the bridge, e.g. port 8080, and MCP, e.g. port 3000)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::pick_indices;

    #[test]
    fn names_win_over_position() {
        assert_eq!(pick_indices(&["mcp", "bridge"], 2).unwrap(), (1, 0));
        assert_eq!(pick_indices(&["bridge", "mcp"], 2).unwrap(), (0, 1));
    }

    #[test]
    fn unnamed_sockets_are_taken_in_order() {
        assert_eq!(pick_indices(&[""], 2).unwrap(), (0, 1));
        assert_eq!(
            pick_indices(&["whatsapp-mcp", "whatsapp-mcp"], 2).unwrap(),
            (0, 1)
        );
    }

    #[test]
    fn one_socket_is_not_enough() {
        let err = pick_indices(&["bridge"], 1).unwrap_err();
        assert!(err.to_string().contains("two are needed"), "{err}");
    }
}
