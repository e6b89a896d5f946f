//! A minimal HTTP/1.1 client over std TcpStream for the admin API, and a reader
//! for Prometheus text exposition.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends one request to 127.0.0.1:`port` with `Connection: close` and returns (status, body).
/// Without an `Authorization` header among `headers`, it carries the admin token a sidecar
/// on that port made at start (as `pgflip ctl` does), when there is one.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    request_to(SocketAddr::from(([127, 0, 0, 1], port)), method, path, headers, body)
}

/// [`request`] to any address.
pub fn request_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) {
        return request_without_token(addr, method, path, headers, body);
    }
    let made = pgflip::admin_token::read_default(addr.port()).map_err(std::io::Error::other)?;
    let auth = made.map(|token| format!("Bearer {token}"));
    let mut all = headers.to_vec();
    all.extend(auth.as_deref().map(|auth| ("Authorization", auth)));
    request_without_token(addr, method, path, &all, body)
}

/// [`request_to`] with exactly `headers`: no admin token unless they carry one.
pub fn request_without_token(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let port = addr.port();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        addr.ip(),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no header end in {:?}", String::from_utf8_lossy(raw))))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line in {head:?}")))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end =
            data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size =
            usize::from_str_radix(&size_text, 16).map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(invalid("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

/// Samples of one metric in Prometheus text format: (label text, value) for every
/// line whose name is exactly `name`, e.g. `("direction=\"in\"", 42.0)`.
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
                let end = rest.find('}')?;
                (rest[..end].to_string(), rest[end + 1..].trim())
            } else if rest.starts_with(' ') {
                (String::new(), rest.trim())
            } else {
                return None;
            };
            let value = value.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((labels, value))
        })
        .collect()
}

/// Sum of all samples of `name` whose labels contain `label_filter` (empty: all).
pub fn metric_sum(text: &str, name: &str, label_filter: &str) -> f64 {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| labels.contains(label_filter))
        .map(|(_, value)| value)
        .sum()
}
