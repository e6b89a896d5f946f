//! The sidecars of a cutover: found from the plan's list and DNS name, and called through
//! their admin API all at once (bounded), each call with its own deadline.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::debug;

use crate::api::{PauseRequest, PauseResponse, ResumeResponse, StandbyReport, Status, SwitchRequest, SwitchResponse};
use crate::ctl::{self, AdminTls, AdminUrl, Call, Scheme};

use super::error::CutoverError;
use super::plan::CutoverSection;

/// One sidecar's admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    pub url: AdminUrl,
    /// The name its certificate is checked for when it is not the URL's host: the DNS
    /// name a sidecar found by `sidecars_dns` was found by.
    pub tls_name: Option<String>,
}

impl std::fmt::Display for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.url.fmt(f)
    }
}

/// Why one sidecar call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sidecar {sidecar}: {message}")]
pub struct SidecarError {
    pub sidecar: String,
    pub message: String,
}

/// The admin token the sidecars are called with.
#[derive(Debug, Clone)]
enum Token {
    /// `[cutover] admin_token_file`: one token for every sidecar.
    Plan(String),
    /// No token file in the plan: each sidecar on this host is called with the token it
    /// made at start ([`crate::admin_token`]), read at every call (a restarted sidecar has
    /// a new one); others with none.
    MadeBySidecars,
}

/// Every sidecar of the plan and how to call them.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub sidecars: Vec<Sidecar>,
    token: Token,
    /// The CA of `https` admin APIs (`[cutover] sidecar_ca_file`).
    tls: Option<AdminTls>,
    parallel: usize,
}

impl Fleet {
    /// The plan's sidecars: the static list plus every address `sidecars_dns` resolves to.
    pub async fn discover(section: &CutoverSection) -> Result<Fleet, CutoverError> {
        let mut sidecars: Vec<Sidecar> = Vec::new();
        for text in &section.sidecars {
            let url = text
                .parse::<AdminUrl>()
                .map_err(|e| CutoverError::Refused(format!("[cutover] sidecars: {text:?}: {e}")))?;
            sidecars.push(Sidecar { url, tls_name: None });
        }
        if let Some(dns) = &section.sidecars_dns {
            let (name, port) =
                dns.rsplit_once(':').and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?))).ok_or_else(|| {
                    CutoverError::Refused(format!("[cutover] sidecars_dns: must be NAME:PORT, got {dns:?}"))
                })?;
            // With a CA file, the sidecars found by name speak HTTPS and are checked for that name.
            let (scheme, tls_name) = match section.sidecar_ca_file {
                Some(_) => (Scheme::Https, Some(name.trim_end_matches('.').to_owned())),
                None => (Scheme::Http, None),
            };
            for ip in super::discovery::resolve(name, section.sidecars_dns_server).await? {
                let url = AdminUrl { scheme, host: ip.to_string(), port };
                sidecars.push(Sidecar { url, tls_name: tls_name.clone() });
            }
        }
        sidecars.sort_by_key(|s| s.url.to_string());
        sidecars.dedup_by(|a, b| a.url == b.url);
        let token = match &section.admin_token_file {
            Some(path) => Token::Plan(
                ctl::read_token(path).map_err(|e| CutoverError::Refused(format!("[cutover] admin_token_file: {e}")))?,
            ),
            None => Token::MadeBySidecars,
        };
        let tls = match &section.sidecar_ca_file {
            Some(path) => Some(
                AdminTls::from_ca_file(path)
                    .map_err(|e| CutoverError::Refused(format!("[cutover] sidecar_ca_file: {e}")))?,
            ),
            None => None,
        };
        Ok(Fleet { sidecars, token, tls, parallel: section.parallel })
    }

    /// The same fleet narrowed to `sidecars`.
    pub fn only(&self, sidecars: Vec<Sidecar>) -> Fleet {
        Fleet { sidecars, token: self.token.clone(), tls: self.tls.clone(), parallel: self.parallel }
    }

    /// `GET /v1/status` of every sidecar.
    pub async fn status(&self, deadline: Duration) -> Vec<Result<Status, SidecarError>> {
        self.each(|s| call_json::<(), Status>(s, "GET", "/v1/status".into(), None, deadline)).await
    }

    /// `POST /v1/pause` on every sidecar.
    pub async fn pause(&self, request: &PauseRequest, deadline: Duration) -> Vec<Result<PauseResponse, SidecarError>> {
        self.each(|s| call_json(s, "POST", "/v1/pause".into(), Some(request), deadline)).await
    }

    /// `POST /v1/resume` on every sidecar.
    pub async fn resume(&self, deadline: Duration) -> Vec<Result<ResumeResponse, SidecarError>> {
        let body = serde_json::json!({});
        self.each(|s| call_json(s, "POST", "/v1/resume".into(), Some(&body), deadline)).await
    }

    /// `POST /v1/switch` on every sidecar.
    pub async fn switch(&self, to: &str, deadline: Duration) -> Vec<Result<SwitchResponse, SidecarError>> {
        let request = SwitchRequest { to: to.to_owned(), ..SwitchRequest::default() };
        self.each(|s| call_json(s, "POST", "/v1/switch".into(), Some(&request), deadline)).await
    }

    /// `PUT /v1/upstreams/{name}` on every sidecar.
    pub async fn put_upstream(&self, name: &str, url: &str, deadline: Duration) -> Vec<Result<(), SidecarError>> {
        let body = serde_json::json!({ "url": url });
        let path = format!("/v1/upstreams/{name}");
        self.each(|s| {
            let path = path.clone();
            let body = &body;
            async move { call_json::<_, serde_json::Value>(s, "PUT", path, Some(body), deadline).await.map(|_| ()) }
        })
        .await
    }

    /// `PUT /v1/standby` on every sidecar: the controller's report on the upstream that is
    /// not active. The answer is kept as plain JSON: a sidecar with a standby listener
    /// answers its [`crate::api::StandbyStatus`], one without answers that it ignored the report.
    pub async fn report_standby(
        &self,
        report: &StandbyReport,
        deadline: Duration,
    ) -> Vec<Result<serde_json::Value, SidecarError>> {
        self.each(|s| call_json(s, "PUT", "/v1/standby".into(), Some(report), deadline)).await
    }

    /// The text of every sidecar's `/metrics`.
    pub async fn metrics(&self, deadline: Duration) -> Vec<Result<String, SidecarError>> {
        self.each(|s| async move {
            let answer = send(s, "GET", "/metrics".into(), None, deadline).await?;
            Ok(String::from_utf8_lossy(&answer).into_owned())
        })
        .await
    }

    fn bound<'a>(&'a self, sidecar: &'a Sidecar) -> Bound<'a> {
        Bound { sidecar, token: &self.token, tls: self.tls.as_ref() }
    }

    /// Runs `call` on every sidecar, at most `parallel` at once; results in sidecar order.
    async fn each<'a, T, F, Fut>(&'a self, call: F) -> Vec<Result<T, SidecarError>>
    where
        F: Fn(Bound<'a>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SidecarError>> + 'a,
    {
        let slots = Arc::new(Semaphore::new(self.parallel));
        let calls = self.sidecars.iter().map(|sidecar| {
            let slots = slots.clone();
            let call = call(self.bound(sidecar));
            async move {
                let _slot = slots.acquire().await;
                call.await
            }
        });
        join_all(calls).await
    }
}

/// A sidecar with the token to call it with.
#[derive(Clone, Copy)]
struct Bound<'a> {
    sidecar: &'a Sidecar,
    token: &'a Token,
    tls: Option<&'a AdminTls>,
}

impl Bound<'_> {
    /// The token for this sidecar: the plan's, or the one it made, when it is on this host.
    fn token(&self) -> Result<Option<String>, String> {
        match self.token {
            Token::Plan(token) => Ok(Some(token.clone())),
            Token::MadeBySidecars => ctl::default_token(&self.sidecar.url).map_err(|e| e.to_string()),
        }
    }
}

/// Awaits every future concurrently, keeping their order.
async fn join_all<T, Fut: std::future::Future<Output = T>>(futures: impl Iterator<Item = Fut>) -> Vec<T> {
    let mut pinned: Vec<std::pin::Pin<Box<Fut>>> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in pinned.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *result = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future finished")).collect()
}

/// Sends one call; a status other than 2xx is an error carrying the answer's `error`.
async fn send(
    s: Bound<'_>,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<Vec<u8>, SidecarError> {
    let call = Call { method, path, body, deadline };
    let fail = |message: String| SidecarError { sidecar: s.sidecar.to_string(), message };
    let tls = match (s.tls, &s.sidecar.tls_name) {
        (Some(tls), Some(name)) => Some(tls.for_name(name)),
        (tls, _) => tls.cloned(),
    };
    let token = s.token().map_err(fail)?;
    let answer =
        ctl::send(&s.sidecar.url, token.as_deref(), tls.as_ref(), &call).await.map_err(|e| fail(e.to_string()))?;
    debug!(sidecar = %s.sidecar, method, path = %call.path, status = answer.status, "sidecar answered");
    if !(200..300).contains(&answer.status) {
        let reason = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        return Err(fail(format!("{method} {} answered {}: {reason}", call.path, answer.status_line())));
    }
    Ok(answer.body)
}

async fn call_json<B: Serialize, T: DeserializeOwned>(
    s: Bound<'_>,
    method: &'static str,
    path: String,
    body: Option<&B>,
    deadline: Duration,
) -> Result<T, SidecarError> {
    let fail = |message: String| SidecarError { sidecar: s.sidecar.to_string(), message };
    let body = body.map(serde_json::to_vec).transpose().map_err(|e| fail(e.to_string()))?;
    let shown = path.clone();
    let bytes = send(s, method, path, body, deadline).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| fail(format!("{method} {shown}: the answer is not the expected JSON: {e}")))
}
