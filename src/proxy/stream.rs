//! The proxy's connections: a client's (TCP, TCP upgraded to TLS, or a Unix-domain
//! socket) and a server's (TCP, or TCP upgraded to TLS).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub use crate::tls::{MaybeTls, ServerStream};

/// The connection from an application client.
#[derive(Debug)]
pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A Unix-domain socket: local by nature, never upgraded to TLS (libpq asks for none
    /// there, and PostgreSQL answers `N` to one).
    Unix(UnixStream),
}

/// A client connection on its way from the accepting runtime to a worker's: the socket
/// must be registered with the I/O driver of the runtime that serves it.
#[derive(Debug)]
pub enum Handover {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Handover {
    pub fn from_tcp(stream: TcpStream) -> io::Result<Handover> {
        stream.into_std().map(Handover::Tcp)
    }

    pub fn from_unix(stream: UnixStream) -> io::Result<Handover> {
        stream.into_std().map(Handover::Unix)
    }

    /// Registers the socket with the current runtime (the worker's).
    pub fn register(self) -> io::Result<ClientStream> {
        match self {
            Handover::Tcp(stream) => TcpStream::from_std(stream).map(ClientStream::Tcp),
            Handover::Unix(stream) => UnixStream::from_std(stream).map(ClientStream::Unix),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
