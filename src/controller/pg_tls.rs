//! rustls under tokio-postgres: the `MakeTlsConnect` the controller's SQL connections use,
//! with `tls-server-end-point` channel binding, so that SCRAM-SHA-256-PLUS ties the login
//! to the TLS session.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;
use tokio_rustls::TlsConnector;

/// Makes a TLS connector per host, with one rustls configuration; `None` for a
/// connection that never asks for TLS.
#[derive(Clone)]
pub struct RustlsMaker(pub Option<Arc<ClientConfig>>);

impl MakeTlsConnect<Socket> for RustlsMaker {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    /// Called for every host, whether the connection asks for TLS or not: a missing
    /// configuration or a name unfit for TLS fails only a handshake that is tried.
    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, io::Error> {
        let setup = match (&self.0, ServerName::try_from(host.to_owned())) {
            (Some(config), Ok(name)) => Ok((TlsConnector::from(config.clone()), name)),
            (None, _) => Err("no TLS configuration for this connection".to_owned()),
            (Some(_), Err(e)) => Err(format!("TLS server name {host:?}: {e}")),
        };
        Ok(RustlsConnect { setup })
    }
}

/// The handshake with one host, or why there can be none.
pub struct RustlsConnect {
    setup: Result<(TlsConnector, ServerName<'static>), String>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let (connector, name) = self.setup.map_err(io::Error::other)?;
            Ok(RustlsStream(Box::new(connector.connect(name, stream).await?)))
        })
    }
}

/// A TLS connection to the server.
pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, connection) = self.0.get_ref();
        match connection.peer_certificates().and_then(|certs| certs.first()) {
            Some(cert) => ChannelBinding::tls_server_end_point(end_point_hash(cert.as_ref())),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929's `tls-server-end-point`: the certificate hashed with the hash of its
/// signature algorithm, SHA-256 for MD5, SHA-1 and SHA-256 alike.
fn end_point_hash(der: &[u8]) -> Vec<u8> {
    // sha384/sha512 with RSA (1.2.840.113549.1.1.12/13) and ECDSA (1.2.840.10045.4.3.3/4).
    const SHA384: [&[u8]; 2] =
        [&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]];
    const SHA512: [&[u8]; 2] =
        [&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]];
    match signature_algorithm(der) {
        Some(oid) if SHA384.contains(&oid) => Sha384::digest(der).to_vec(),
        Some(oid) if SHA512.contains(&oid) => Sha512::digest(der).to_vec(),
        _ => Sha256::digest(der).to_vec(),
    }
}

/// The OID of a DER certificate's `signatureAlgorithm` (after `tbsCertificate`).
fn signature_algorithm(der: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = der_element(der, 0x30)?;
    let (_, after_tbs) = der_element(certificate, 0x30)?;
    let (algorithm, _) = der_element(after_tbs, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    Some(oid)
}

/// The contents of the DER element at the start of `der` when its tag is `tag`, and what follows it.
fn der_element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = der.split_first()?;
    if first != tag {
        return None;
    }
    let (&length, rest) = rest.split_first()?;
    let (length, rest) = if length < 0x80 {
        (usize::from(length), rest)
    } else {
        let octets = usize::from(length & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let value = rest[..octets].iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (value, &rest[octets..])
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

impl AsyncRead for RustlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_algorithm_is_found_after_the_tbs_certificate() {
        // SEQUENCE { SEQUENCE { INTEGER 1 }, SEQUENCE { OID ecdsa-with-SHA384 }, BIT STRING }
        let der = [
            0x30, 0x14, 0x30, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03,
            0x03, 0x03, 0x01, 0x00,
        ];
        assert_eq!(super::signature_algorithm(&der), Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..]));
        assert_eq!(super::end_point_hash(&der).len(), 48);
        assert_eq!(super::end_point_hash(&[0x30, 0x00]).len(), 32);
    }
}
