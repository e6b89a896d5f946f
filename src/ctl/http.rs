//! One admin API call over a fresh TCP connection (TLS for `https`): write an HTTP/1.1
//! request with `Connection: close`, read the answer, all within a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::CtlError;
use super::response::{read_response, Response};
use super::url::{AdminUrl, Scheme};
use crate::tls::{MaybeTls, ServerStream};

/// How `https` admin URLs are checked: the CA that signs the sidecars' admin certificates,
/// and the name to check them for when it is not the URL's host (sidecars found by DNS
/// are called by address and checked for the name they were found by).
#[derive(Debug, Clone)]
pub struct AdminTls {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl AdminTls {
    /// Checks certificates against the CA file at `ca_file`, and their name.
    pub fn from_ca_file(ca_file: &Path) -> Result<AdminTls, CtlError> {
        Ok(AdminTls { config: crate::tls::verify_full(ca_file)?, server_name: None })
    }

    /// The same CA, checking certificates for `name` instead of the URL's host.
    pub fn for_name(&self, name: &str) -> AdminTls {
        AdminTls { config: self.config.clone(), server_name: Some(name.to_owned()) }
    }
}

/// Longest wait for the TCP connection itself.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request to the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    /// JSON, for `POST`.
    pub body: Option<Vec<u8>>,
    /// Longest wait for the whole answer once connected.
    pub deadline: Duration,
}

impl Call {
    /// `POST http://127.0.0.1:9187/v1/switch`, for messages.
    pub fn describe(&self, url: &AdminUrl) -> String {
        format!("{} {url}{}", self.method, self.path)
    }

    /// The request bytes: request line, headers, body.
    pub fn encode(&self, url: &AdminUrl, token: Option<&str>) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pgflip-ctl/{}\r\nAccept: application/json\r\n",
            self.method,
            self.path,
            url.authority(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = &self.body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_deref().unwrap_or_default());
        bytes
    }
}

/// Connects to `url`, sends `call` and reads the answer, whatever its status. An `https`
/// URL needs `tls`.
pub async fn send(
    url: &AdminUrl,
    token: Option<&str>,
    tls: Option<&AdminTls>,
    call: &Call,
) -> Result<Response, CtlError> {
    let connect = connect(url, tls);
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(stream) => stream?,
        Err(_) => return Err(CtlError::ConnectTimeout { url: url.to_string(), after: CONNECT_TIMEOUT }),
    };
    let request = call.encode(url, token);
    let exchange = async {
        stream.write_all(&request).await.map_err(|source| CtlError::Send { request: call.describe(url), source })?;
        stream.flush().await.map_err(|source| CtlError::Send { request: call.describe(url), source })?;
        let mut reader = BufReader::new(&mut stream);
        read_response(&mut reader).await.map_err(|source| CtlError::Answer { request: call.describe(url), source })
    };
    match tokio::time::timeout(call.deadline, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(CtlError::Timeout { request: call.describe(url), after: call.deadline }),
    }
}

/// TCP to `url`, and the TLS handshake for `https`.
async fn connect(url: &AdminUrl, tls: Option<&AdminTls>) -> Result<ServerStream, CtlError> {
    let tls = match (url.scheme, tls) {
        (Scheme::Http, _) => None,
        (Scheme::Https, Some(tls)) => Some(tls),
        (Scheme::Https, None) => return Err(CtlError::NoCaFile { url: url.to_string() }),
    };
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|source| CtlError::Connect { url: url.to_string(), source })?;
    let Some(tls) = tls else { return Ok(MaybeTls::Plain(tcp)) };
    let tls_err = |source| CtlError::Tls { url: url.to_string(), source };
    let name = tls.server_name.as_deref().unwrap_or(&url.host);
    let name = crate::tls::server_name(name)
        .map_err(|reason| tls_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)))?;
    let stream = TlsConnector::from(tls.config.clone()).connect(name, tcp).await.map_err(tls_err)?;
    Ok(MaybeTls::Tls(Box::new(stream)))
}
