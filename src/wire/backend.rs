//! Server-to-client messages: the tags the proxy watches, builders for the messages it
//! sends as a server, and decoders for the ones it reads from its upstream.

use crate::wire::{read_cstr, read_i16, read_i32, WireError};

pub const AUTHENTICATION: u8 = b'R';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const COMMAND_COMPLETE: u8 = b'C';
pub const COPY_BOTH_RESPONSE: u8 = b'W';
pub const COPY_DONE: u8 = b'c';
pub const COPY_IN_RESPONSE: u8 = b'G';
pub const COPY_OUT_RESPONSE: u8 = b'H';
pub const DATA_ROW: u8 = b'D';
pub const ERROR_RESPONSE: u8 = b'E';
pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const NOTIFICATION_RESPONSE: u8 = b'A';
pub const PARAMETER_DESCRIPTION: u8 = b't';
pub const PARAMETER_STATUS: u8 = b'S';
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ROW_DESCRIPTION: u8 = b'T';
pub const NO_DATA: u8 = b'n';
pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
pub const PORTAL_SUSPENDED: u8 = b's';

/// Appends a message with `tag` whose body `fill` writes, fixing up the length.
pub fn put_message(out: &mut Vec<u8>, tag: u8, fill: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    fill(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Severity of an ErrorResponse the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// Appends an ErrorResponse with severity, SQLSTATE and message.
pub fn error_response(out: &mut Vec<u8>, severity: Severity, code: &str, message: &str) {
    put_message(out, ERROR_RESPONSE, |b| {
        for (field, value) in [(b'S', severity.as_str()), (b'V', severity.as_str()), (b'C', code), (b'M', message)] {
            b.push(field);
            put_cstr(b, value);
        }
        b.push(0);
    });
}

/// Appends an Authentication message with sub-code `code` and `data`.
pub fn authentication(out: &mut Vec<u8>, code: i32, data: &[u8]) {
    put_message(out, AUTHENTICATION, |b| {
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(data);
    });
}

/// Authentication sub-codes.
pub mod auth_code {
    pub const OK: i32 = 0;
    pub const CLEARTEXT: i32 = 3;
    pub const MD5: i32 = 5;
    pub const SASL: i32 = 10;
    pub const SASL_CONTINUE: i32 = 11;
    pub const SASL_FINAL: i32 = 12;
}

/// Appends AuthenticationSASL offering the given mechanisms.
pub fn authentication_sasl(out: &mut Vec<u8>, mechanisms: &[&str]) {
    let mut data = Vec::new();
    for m in mechanisms {
        put_cstr(&mut data, m);
    }
    data.push(0);
    authentication(out, auth_code::SASL, &data);
}

/// Appends a ParameterStatus.
pub fn parameter_status(out: &mut Vec<u8>, name: &str, value: &str) {
    put_message(out, PARAMETER_STATUS, |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

/// Appends a BackendKeyData.
pub fn backend_key_data(out: &mut Vec<u8>, pid: i32, key: i32) {
    put_message(out, BACKEND_KEY_DATA, |b| {
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&key.to_be_bytes());
    });
}

/// Appends a ReadyForQuery with transaction status `status` (`I`, `T` or `E`).
pub fn ready_for_query(out: &mut Vec<u8>, status: u8) {
    put_message(out, READY_FOR_QUERY, |b| b.push(status));
}

/// Appends a NegotiateProtocolVersion naming the newest minor version supported and the
/// protocol options (`_pq_.*`) not recognised.
pub fn negotiate_protocol_version(out: &mut Vec<u8>, minor: i32, unrecognised: &[&str]) {
    put_message(out, NEGOTIATE_PROTOCOL_VERSION, |b| {
        b.extend_from_slice(&minor.to_be_bytes());
        b.extend_from_slice(&(unrecognised.len() as i32).to_be_bytes());
        for o in unrecognised {
            put_cstr(b, o);
        }
    });
}

/// The fields of an ErrorResponse or NoticeResponse that the proxy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl ErrorFields {
    /// Decodes an ErrorResponse body.
    pub fn parse(mut body: &[u8]) -> Result<ErrorFields, WireError> {
        let mut out = ErrorFields::default();
        while let Some((&field, rest)) = body.split_first() {
            if field == 0 {
                break;
            }
            let (value, rest) = read_cstr(rest)?;
            match field {
                b'V' => out.severity = value.to_owned(),
                b'S' if out.severity.is_empty() => out.severity = value.to_owned(),
                b'C' => out.code = value.to_owned(),
                b'M' => out.message = value.to_owned(),
                _ => {}
            }
            body = rest;
        }
        Ok(out)
    }

    /// True for FATAL and PANIC: the server closes the connection after it.
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

/// Reads only the SQLSTATE of an ErrorResponse body, without allocating.
pub fn error_code(mut body: &[u8]) -> Option<&str> {
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            return None;
        }
        let (value, rest) = read_cstr(rest).ok()?;
        if field == b'C' {
            return Some(value);
        }
        body = rest;
    }
    None
}

/// An Authentication request from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    Ok,
    Cleartext,
    Md5 { salt: [u8; 4] },
    Sasl { mechanisms: Vec<&'a str> },
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    Unsupported(i32),
}

impl<'a> AuthRequest<'a> {
    /// Decodes an Authentication message body.
    pub fn parse(body: &'a [u8]) -> Result<AuthRequest<'a>, WireError> {
        let (code, rest) = read_i32(body)?;
        Ok(match code {
            auth_code::OK => AuthRequest::Ok,
            auth_code::CLEARTEXT => AuthRequest::Cleartext,
            auth_code::MD5 => {
                let salt: [u8; 4] = rest.try_into().map_err(|_| WireError::Malformed("md5 salt must be 4 bytes"))?;
                AuthRequest::Md5 { salt }
            }
            auth_code::SASL => {
                let mut mechanisms = Vec::new();
                let mut rest = rest;
                loop {
                    let (m, after) = read_cstr(rest)?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m);
                    rest = after;
                }
                AuthRequest::Sasl { mechanisms }
            }
            auth_code::SASL_CONTINUE => AuthRequest::SaslContinue(rest),
            auth_code::SASL_FINAL => AuthRequest::SaslFinal(rest),
            other => AuthRequest::Unsupported(other),
        })
    }
}

/// Decodes a ParameterStatus body.
pub fn parse_parameter_status(body: &[u8]) -> Result<(&str, &str), WireError> {
    let (name, rest) = read_cstr(body)?;
    let (value, _) = read_cstr(rest)?;
    Ok((name, value))
}

/// Decodes a BackendKeyData body.
pub fn parse_backend_key_data(body: &[u8]) -> Result<(i32, i32), WireError> {
    let (pid, rest) = read_i32(body)?;
    let (key, _) = read_i32(rest)?;
    Ok((pid, key))
}

/// Decodes a DataRow body into its text columns (`None` for NULL).
pub fn parse_data_row(body: &[u8]) -> Result<Vec<Option<String>>, WireError> {
    let (count, mut rest) = read_i16(body)?;
    // Every column takes at least its 4-byte length: the count cannot claim more.
    let mut row = Vec::with_capacity((count.max(0) as usize).min(rest.len() / 4));
    for _ in 0..count {
        let (len, after) = read_i32(rest)?;
        if len < 0 {
            row.push(None);
            rest = after;
            continue;
        }
        let len = len as usize;
        if after.len() < len {
            return Err(WireError::Malformed("DataRow column runs past the message"));
        }
        let text = std::str::from_utf8(&after[..len]).map_err(|_| WireError::Malformed("column is not UTF-8"))?;
        row.push(Some(text.to_owned()));
        rest = &after[len..];
    }
    Ok(row)
}

/// Decodes a ParameterDescription body into its type OIDs.
pub fn parse_parameter_description(body: &[u8]) -> Result<Vec<u32>, WireError> {
    let (count, mut rest) = read_i16(body)?;
    let mut oids = Vec::with_capacity((count.max(0) as usize).min(rest.len() / 4));
    for _ in 0..count {
        let (oid, after) = read_i32(rest)?;
        oids.push(oid as u32);
        rest = after;
    }
    Ok(oids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_round_trips() {
        let mut out = Vec::new();
        error_response(&mut out, Severity::Fatal, "08006", "upstream gone");
        assert_eq!(out[0], ERROR_RESPONSE);
        let body = &out[5..];
        let f = ErrorFields::parse(body).unwrap();
        assert_eq!((f.severity.as_str(), f.code.as_str(), f.message.as_str()), ("FATAL", "08006", "upstream gone"));
        assert!(f.is_fatal());
        assert_eq!(error_code(body), Some("08006"));
    }

    #[test]
    fn auth_requests_decode() {
        let mut out = Vec::new();
        authentication_sasl(&mut out, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let req = AuthRequest::parse(&out[5..]).unwrap();
        assert_eq!(req, AuthRequest::Sasl { mechanisms: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"] });
        let mut out = Vec::new();
        authentication(&mut out, auth_code::MD5, &[1, 2, 3, 4]);
        assert_eq!(AuthRequest::parse(&out[5..]).unwrap(), AuthRequest::Md5 { salt: [1, 2, 3, 4] });
    }
}
