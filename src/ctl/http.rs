//! One admin API call over a fresh TCP connection: write an HTTP/1.1 request with
//! `Connection: close`, read the answer, all within a deadline.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::error::CtlError;
use super::response::{read_response, Response};
use super::url::AdminUrl;

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

/// Connects to `url`, sends `call` and reads the answer, whatever its status.
pub async fn send(url: &AdminUrl, token: Option<&str>, call: &Call) -> Result<Response, CtlError> {
    let connect = TcpStream::connect((url.host.as_str(), url.port));
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(CtlError::Connect { url: url.to_string(), source }),
        Err(_) => return Err(CtlError::ConnectTimeout { url: url.to_string(), after: CONNECT_TIMEOUT }),
    };
    let request = call.encode(url, token);
    let exchange = async {
        stream.write_all(&request).await.map_err(|source| CtlError::Send { request: call.describe(url), source })?;
        let mut reader = BufReader::new(&mut stream);
        read_response(&mut reader).await.map_err(|source| CtlError::Answer { request: call.describe(url), source })
    };
    match tokio::time::timeout(call.deadline, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(CtlError::Timeout { request: call.describe(url), after: call.deadline }),
    }
}
