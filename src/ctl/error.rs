//! Errors of `pgflip ctl`: a bad admin URL, an unreadable token file, and the ways a call
//! to the sidecar can fail before it has a JSON answer.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Why an `--admin-url` was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("unsupported scheme {0:?}: give http://HOST:PORT or https://HOST:PORT")]
    Scheme(String),
    #[error("no scheme: give http://HOST:PORT")]
    NoScheme,
    #[error("no port: give http://HOST:PORT (the sidecar's --admin-listen, 9187 by default)")]
    NoPort,
    #[error("bad port {0:?}: give a number from 1 to 65535")]
    BadPort(String),
    #[error("no host: give http://HOST:PORT")]
    NoHost,
    #[error("put an IPv6 host in brackets: http://[::1]:9187")]
    Ipv6Brackets,
    #[error("a user or password in the URL is not supported: pass the admin token with --token-file")]
    UserInfo,
    #[error("a path, query or fragment is not supported: give only http://HOST:PORT")]
    Path,
}

/// Why the bytes the sidecar sent back are not a usable HTTP answer.
#[derive(Debug, Error)]
pub enum ResponseError {
    #[error("reading the answer failed: {0}")]
    Io(#[from] io::Error),
    #[error("the answer is not valid HTTP/1.1: {0}")]
    Malformed(String),
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Everything that keeps `pgflip ctl` from printing an answer; the process exits with 2.
#[derive(Debug, Error)]
pub enum CtlError {
    #[error("cannot read the admin token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: io::Error },
    #[error("the admin token file {} is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("the admin token file {} holds more than one line; it must hold only the token", path.display())]
    MultilineToken { path: PathBuf },
    #[error("{0}")]
    DefaultToken(#[from] crate::admin_token::TokenFileError),
    #[error("encoding JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("starting the async runtime: {0}")]
    Runtime(io::Error),
    #[error(
        "cannot reach the sidecar's admin API at {url}: {source}; is `pgflip proxy` running with --admin-listen there?"
    )]
    Connect { url: String, source: io::Error },
    #[error("cannot reach the sidecar's admin API at {url}: no connection within {} s", after.as_secs())]
    ConnectTimeout { url: String, after: Duration },
    #[error("{url} is https: give the CA file that signs the sidecar's admin certificate (--ca-file, or the plan's [cutover] sidecar_ca_file)")]
    NoCaFile { url: String },
    #[error("cannot read the CA file: {0}")]
    CaFile(#[from] crate::tls::TlsConfigError),
    #[error("TLS with the sidecar's admin API at {url} failed: {source}")]
    Tls { url: String, source: io::Error },
    #[error("{request}: sending the request failed: {source}")]
    Send { request: String, source: io::Error },
    #[error("{request}: no complete answer within {} s", after.as_secs())]
    Timeout { request: String, after: Duration },
    #[error("{request}: {source}")]
    Answer { request: String, source: ResponseError },
    #[error("{request} answered {status} with a body that is not JSON ({source}): {excerpt:?}")]
    NotJson { request: String, status: u16, source: serde_json::Error, excerpt: String },
}
