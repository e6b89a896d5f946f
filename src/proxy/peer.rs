//! Who is at the other end of a client connection: a TCP address, or a process on this
//! host through the Unix-domain socket.

use std::fmt;
use std::net::SocketAddr;

/// A client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A local process, by its pid when the kernel tells it (`SO_PEERCRED`).
    Unix {
        pid: Option<i32>,
    },
}

impl Peer {
    /// True for a client on this host: a loopback address or the Unix-domain socket.
    /// Only such clients may be trusted without an auth file.
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Tcp(addr) => addr.ip().is_loopback(),
            Peer::Unix { .. } => true,
        }
    }
}

/// `127.0.0.1:50432`, or `[local]` as PostgreSQL logs a Unix-socket client, with its pid.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix { pid: Some(pid) } => write!(f, "[local] pid {pid}"),
            Peer::Unix { pid: None } => f.write_str("[local]"),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::Tcp(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_clients_and_how_they_are_shown() {
        let loopback = Peer::from("127.0.0.1:5000".parse::<SocketAddr>().unwrap());
        let remote = Peer::from("10.1.2.3:5000".parse::<SocketAddr>().unwrap());
        assert!(loopback.is_local() && !remote.is_local() && Peer::Unix { pid: None }.is_local());
        assert_eq!(loopback.to_string(), "127.0.0.1:5000");
        assert_eq!(Peer::Unix { pid: Some(42) }.to_string(), "[local] pid 42");
        assert_eq!(Peer::Unix { pid: None }.to_string(), "[local]");
    }
}
