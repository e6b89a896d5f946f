//! The sidecars' durable target in Kubernetes: the ConfigMap the sidecar pods mount their
//! config from, patched through the Kubernetes API at every flip so that a pod that
//! starts or restarts comes up on the database that serves (running sidecars are switched
//! through their admin API; the ConfigMap is for the ones that are not running yet).
//!
//! A thin client: one `GET` of the ConfigMap, its sidecar config rewritten with
//! [`super::durable::with_target`], one JSON merge `PATCH` carrying the `resourceVersion`
//! read, so that a concurrent change makes it fail with 409 and the read is done again.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::durable::with_target;
use super::error::CutoverError;
use super::plan::KubernetesSection;
use crate::ctl::{read_response, Response};

/// Longest wait for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts when another writer changed the ConfigMap between the read and the patch.
const ATTEMPTS: usize = 5;

/// Sets `active` and `generation` in the ConfigMap's sidecar config.
pub async fn write_target(section: &KubernetesSection, active: &str, generation: u64) -> Result<(), CutoverError> {
    let client = Client::new(section)?;
    let path = format!("/api/v1/namespaces/{}/configmaps/{}", section.namespace, section.configmap);
    for attempt in 1..=ATTEMPTS {
        let read = client.call("GET", &path, None).await?;
        let configmap: Value = client.json(read, "reading")?;
        let version = configmap["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
        let Some(text) = configmap["data"][section.key.as_str()].as_str() else {
            return Err(client.refused(format!("has no data key {:?}", section.key)));
        };
        let patch = json!({
            "metadata": {"resourceVersion": version},
            "data": {section.key.as_str(): with_target(text, active, generation)},
        });
        let answer = client.call("PATCH", &path, Some(patch.to_string())).await?;
        if answer.status == 409 {
            warn!(attempt, configmap = %section.configmap, "the ConfigMap changed meanwhile; reading it again");
            continue;
        }
        client.json(answer, "patching")?;
        info!(namespace = %section.namespace, configmap = %section.configmap, active, generation, "ConfigMap updated");
        return Ok(());
    }
    Err(client.refused(format!("kept changing under us: {ATTEMPTS} attempts ended in 409 Conflict")))
}

/// One API server and how to authenticate to it.
struct Client<'a> {
    section: &'a KubernetesSection,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
}

impl<'a> Client<'a> {
    fn new(section: &'a KubernetesSection) -> Result<Client<'a>, CutoverError> {
        let refused = |why: String| CutoverError::Refused(format!("[kubernetes] {why}"));
        let (https, rest) = match section.api.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => return Err(refused(format!("api {:?} is not an http(s) URL", section.api))),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port.parse().map_err(|_| refused(format!("api {:?}: bad port", section.api)))?;
                (host.trim_start_matches('[').trim_end_matches(']').to_owned(), port)
            }
            _ => (authority.trim_start_matches('[').trim_end_matches(']').to_owned(), if https { 443 } else { 80 }),
        };
        let tls = if https {
            let config = crate::tls::verify_full(&section.ca_file)
                .map_err(|e| refused(format!("ca_file {}: {e}", section.ca_file.display())))?;
            Some(config)
        } else {
            None
        };
        let token = match &section.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| refused(format!("token_file {}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Client { section, host, port, tls, token })
    }

    fn refused(&self, why: String) -> CutoverError {
        CutoverError::Refused(format!(
            "ConfigMap {}/{} at {}: {why}",
            self.section.namespace, self.section.configmap, self.section.api
        ))
    }

    /// The answer's JSON when it is a 2xx, else an error with the API's message.
    fn json(&self, answer: Response, doing: &str) -> Result<Value, CutoverError> {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !(200..300).contains(&answer.status) {
            let message = body["message"].as_str().map(str::to_owned).unwrap_or_else(|| answer.reason.clone());
            return Err(self.refused(format!("{doing} it answered {}: {message}", answer.status)));
        }
        Ok(body)
    }

    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Response, CutoverError> {
        let exchange = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            match &self.tls {
                Some(config) => {
                    let name = crate::tls::server_name(&self.host)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    let stream = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await?;
                    self.exchange(stream, method, path, body.as_deref()).await
                }
                None => self.exchange(tcp, method, path, body.as_deref()).await,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.refused(format!("{method} {path}: {e}"))),
            Err(_) => Err(self.refused(format!("{method} {path}: no answer within {CALL_TIMEOUT:?}"))),
        }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if method == "PATCH" {
            head.push_str("Content-Type: application/merge-patch+json\r\n");
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await?;
        read_response(&mut BufReader::new(stream))
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}
