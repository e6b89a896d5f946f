//! Reads one HTTP/1.1 answer: status line, headers, and a body framed by
//! `Content-Length`, by `Transfer-Encoding: chunked`, or by the end of the connection.
//! Generic over the reader so it is tested on byte slices.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

use super::error::ResponseError;

/// Longest status, header or chunk-size line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines accepted in one answer.
const MAX_HEADERS: usize = 100;
/// Largest body accepted; a status report is a few KiB.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// An answer from the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The reason phrase, possibly empty.
    pub reason: String,
    pub body: Vec<u8>,
}

impl Response {
    /// `409 Conflict`, or just `409` without a reason phrase.
    pub fn status_line(&self) -> String {
        if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        }
    }
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
    Empty,
}

/// Reads the answer to a request that was not `HEAD`, skipping `1xx` interim answers.
pub async fn read_response<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Response, ResponseError> {
    loop {
        let line = read_line(reader).await?.ok_or_else(|| malformed("the connection closed before any answer"))?;
        let (status, reason) = parse_status_line(&line)?;
        let framing = read_headers(reader, status).await?;
        if (100..200).contains(&status) {
            continue;
        }
        let body = match framing {
            Framing::Empty => Vec::new(),
            Framing::Length(length) => read_sized(reader, length).await?,
            Framing::Chunked => read_chunked(reader).await?,
            Framing::UntilClose => read_to_close(reader).await?,
        };
        return Ok(Response { status, reason, body });
    }
}

fn malformed(reason: impl Into<String>) -> ResponseError {
    ResponseError::Malformed(reason.into())
}

/// `HTTP/1.1 200 OK` -> (200, "OK").
fn parse_status_line(line: &str) -> Result<(u16, String), ResponseError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!("status line {line:?} is not HTTP/1.x")));
    }
    let code = parts.next().unwrap_or_default();
    let status = match code.parse::<u16>() {
        Ok(status) if code.len() == 3 && (100..600).contains(&status) => status,
        _ => return Err(malformed(format!("status line {line:?} has no status code"))),
    };
    Ok((status, parts.next().unwrap_or_default().trim().to_owned()))
}

/// Reads header lines up to the blank line and returns how the body is framed.
async fn read_headers<R: AsyncBufRead + Unpin>(reader: &mut R, status: u16) -> Result<Framing, ResponseError> {
    let mut length = None;
    let mut chunked = false;
    for _ in 0..=MAX_HEADERS {
        let line = read_line(reader).await?.ok_or_else(|| malformed("the connection closed inside the headers"))?;
        if line.is_empty() {
            return Ok(if status == 204 || status == 304 || (100..200).contains(&status) {
                Framing::Empty
            } else if chunked {
                Framing::Chunked
            } else {
                length.map_or(Framing::UntilClose, Framing::Length)
            });
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| malformed(format!("header line {line:?} has no colon")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value.parse::<usize>().map_err(|_| malformed(format!("Content-Length {value:?}")))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(malformed("two different Content-Length headers"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = last.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(malformed(format!("unsupported Transfer-Encoding {value:?}")));
            }
        }
    }
    Err(malformed(format!("more than {MAX_HEADERS} header lines")))
}

/// One line without its CRLF (or bare LF); `None` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Option<String>, ResponseError> {
    let mut buf = Vec::new();
    let read = (&mut *reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await?;
    if read == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() > MAX_LINE {
            malformed(format!("a line longer than {MAX_LINE} bytes"))
        } else {
            malformed("the connection closed in the middle of a line")
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map(Some).map_err(|_| malformed("a status or header line is not UTF-8"))
}

async fn read_sized<R: AsyncRead + Unpin>(reader: &mut R, length: usize) -> Result<Vec<u8>, ResponseError> {
    if length > MAX_BODY {
        return Err(ResponseError::TooLarge { limit: MAX_BODY });
    }
    let mut body = vec![0; length];
    read_exact(reader, &mut body, length).await?;
    Ok(body)
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    expected: usize,
) -> Result<(), ResponseError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(malformed(format!("the connection closed before the end of a {expected}-byte body")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn read_chunked<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?.ok_or_else(|| malformed("the connection closed before the last chunk"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed(format!("chunk size {line:?}")))?;
        if size == 0 {
            // Trailer fields, if any, up to the blank line that ends the message.
            for _ in 0..=MAX_HEADERS {
                match read_line(reader).await? {
                    Some(trailer) if !trailer.is_empty() => continue,
                    _ => return Ok(body),
                }
            }
            return Err(malformed(format!("more than {MAX_HEADERS} trailer lines")));
        }
        if size > MAX_BODY - body.len() {
            return Err(ResponseError::TooLarge { limit: MAX_BODY });
        }
        let start = body.len();
        body.resize(start + size, 0);
        read_exact(reader, &mut body[start..], size).await?;
        match read_line(reader).await? {
            Some(end) if end.is_empty() => {}
            _ => return Err(malformed("a chunk is not followed by CRLF")),
        }
    }
}

async fn read_to_close<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    (&mut *reader).take(MAX_BODY as u64 + 1).read_to_end(&mut body).await?;
    if body.len() > MAX_BODY {
        return Err(ResponseError::TooLarge { limit: MAX_BODY });
    }
    Ok(body)
}
