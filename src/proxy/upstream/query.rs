//! Running the proxy's own statements on a server connection that no client is using at
//! that moment (a parked session's): simple queries with text rows, and Parse.
//!
//! Every call reads through the caller's buffer of the connection (`buf`): it may hold
//! bytes the server sent before (a notification not yet passed on) and keeps whatever
//! follows the last answer, so that nothing the server sent is lost.

use bytes::BytesMut;

use crate::proxy::io::{read_message, write_all, MAX_HANDSHAKE_MESSAGE};
use crate::proxy::stream::ServerStream;
use crate::proxy::upstream::UpstreamError;
use crate::wire::backend::{self, put_message, ErrorFields};
use crate::wire::{frontend, read_cstr, WireError};

/// Largest message accepted in an answer to the proxy's own statements.
const MAX_ANSWER: usize = 64 << 20;

/// What a server answered to the proxy's own statements.
#[derive(Debug, Default)]
pub struct Answer {
    /// Text rows of every result, in order.
    pub rows: Vec<Vec<Option<String>>>,
    /// ParameterStatus messages seen meanwhile.
    pub params: Vec<(String, String)>,
    /// NotificationResponse messages that arrived meanwhile, whole, for the client.
    pub notifications: Vec<u8>,
    /// Parameter type OIDs of every ParameterDescription, in order.
    pub param_descriptions: Vec<Vec<u32>>,
    /// The body of every RowDescription, and `None` for every NoData, in order.
    pub row_descriptions: Vec<Option<Vec<u8>>>,
}

/// Where the proxy's statements run: a server connection and its read buffer.
pub struct Conn<'a> {
    pub stream: &'a mut ServerStream,
    /// Bytes read from the server and not yet used; what follows an answer stays here.
    pub buf: &'a mut BytesMut,
    /// The upstream's name, for errors.
    pub upstream: &'a str,
}

/// Sends `sql` as one simple Query and reads up to its ReadyForQuery. An ErrorResponse
/// makes it fail (after the ReadyForQuery, so the connection stays usable).
pub async fn simple_query(conn: &mut Conn<'_>, sql: &str) -> Result<Answer, UpstreamError> {
    let mut out = Vec::with_capacity(sql.len() + 6);
    put_query(&mut out, sql);
    pipeline(conn, &out, 1).await
}

/// Appends a simple Query message: one unit of a [`pipeline`].
pub fn put_query(out: &mut Vec<u8>, sql: &str) {
    put_message(out, frontend::QUERY, |b| {
        b.extend_from_slice(sql.as_bytes());
        b.push(0);
    });
}

/// Appends Parse + Sync of a named statement: one unit of a [`pipeline`].
pub fn put_parse(out: &mut Vec<u8>, name: &str, query: &str, param_types: &[u32]) {
    put_message(out, frontend::PARSE, |b| put_parse_body(b, name, query, param_types));
    put_message(out, frontend::SYNC, |_| {});
}

/// Appends Describe of a statement + Sync: one unit of a [`pipeline`], answered by a
/// ParameterDescription and a RowDescription or NoData.
pub fn put_describe(out: &mut Vec<u8>, name: &str) {
    put_message(out, frontend::DESCRIBE, |b| {
        b.push(b'S');
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    });
    put_message(out, frontend::SYNC, |_| {});
}

/// Appends Close of a named statement + Sync: one unit of a [`pipeline`].
pub fn put_close(out: &mut Vec<u8>, name: &str) {
    put_message(out, frontend::CLOSE, |b| {
        b.push(b'S');
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    });
    put_message(out, frontend::SYNC, |_| {});
}

fn put_parse_body(b: &mut Vec<u8>, name: &str, query: &str, param_types: &[u32]) {
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(query.as_bytes());
    b.push(0);
    b.extend_from_slice(&(param_types.len() as i16).to_be_bytes());
    for oid in param_types {
        b.extend_from_slice(&oid.to_be_bytes());
    }
}

/// Sends `out`, which holds `units` messages that each end in a ReadyForQuery (Query, or
/// Parse + Sync), in one write, and reads every answer: one round trip for all. Rows and
/// parameters are gathered in order. The first ErrorResponse makes it fail, once every
/// unit is answered, so that the connection stays usable; later units still ran.
pub async fn pipeline(conn: &mut Conn<'_>, out: &[u8], units: usize) -> Result<Answer, UpstreamError> {
    match pipeline_answer(conn, out, units).await? {
        (_, Some(err)) => Err(err),
        (answer, None) => Ok(answer),
    }
}

/// Like [`pipeline`], but a server's ErrorResponse comes back beside the answer (whose
/// notifications and parameter changes are still for the client); only a connection that
/// is no longer usable is an `Err`.
pub async fn pipeline_answer(
    conn: &mut Conn<'_>,
    out: &[u8],
    units: usize,
) -> Result<(Answer, Option<UpstreamError>), UpstreamError> {
    let upstream = conn.upstream;
    write_all(conn.stream, out).await.map_err(|source| UpstreamError::Io { upstream: upstream.to_owned(), source })?;
    let mut answer = Answer::default();
    let mut failure = None;
    for _ in 0..units {
        read_answer(conn, &mut answer, &mut failure).await?;
    }
    Ok((answer, failure))
}

/// Like [`pipeline_answer`], with each unit's answer and error apart.
pub async fn pipeline_each(
    conn: &mut Conn<'_>,
    out: &[u8],
    units: usize,
) -> Result<Vec<(Answer, Option<UpstreamError>)>, UpstreamError> {
    let upstream = conn.upstream;
    write_all(conn.stream, out).await.map_err(|source| UpstreamError::Io { upstream: upstream.to_owned(), source })?;
    let mut answers = Vec::with_capacity(units);
    for _ in 0..units {
        let (mut answer, mut failure) = (Answer::default(), None);
        read_answer(conn, &mut answer, &mut failure).await?;
        answers.push((answer, failure));
    }
    Ok(answers)
}

/// Resolves type names (`pg_catalog.int4`, `"My Schema"."Mood"[]`) to the OIDs they have on
/// this server, in one round trip.
pub async fn type_oids(conn: &mut Conn<'_>, names: &[String]) -> Result<Vec<u32>, UpstreamError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = names
        .iter()
        .map(|name| format!("{}::pg_catalog.regtype::pg_catalog.oid", crate::proxy::capture::quote_literal(name)))
        .collect();
    let answer = simple_query(conn, &format!("SELECT {}", columns.join(", "))).await?;
    let upstream = conn.upstream;
    let protocol = |what| UpstreamError::Protocol { upstream: upstream.to_owned(), source: WireError::Malformed(what) };
    let row = answer.rows.first().ok_or_else(|| protocol("no row for the type lookup"))?;
    row.iter()
        .map(|oid| oid.as_deref().and_then(|o| o.parse().ok()).ok_or_else(|| protocol("type lookup returned no OID")))
        .collect()
}

/// Prepares named statements (name, query, parameter types), each with Parse, Describe
/// and Sync, all in one round trip. For each: the parameter types the server settled
/// on, or `None` when it refused the statement.
pub async fn prepare_all(
    conn: &mut Conn<'_>,
    statements: &[(&str, &str, &[u32])],
) -> Result<Vec<Option<Vec<u32>>>, UpstreamError> {
    let upstream = conn.upstream;
    let mut out = Vec::new();
    for (name, query, types) in statements {
        put_message(&mut out, frontend::PARSE, |b| put_parse_body(b, name, query, types));
        put_message(&mut out, frontend::DESCRIBE, |b| {
            b.push(b'S');
            b.extend_from_slice(name.as_bytes());
            b.push(0);
        });
        put_message(&mut out, frontend::SYNC, |_| {});
    }
    write_all(conn.stream, &out).await.map_err(|source| UpstreamError::Io { upstream: upstream.to_owned(), source })?;
    let mut results = Vec::with_capacity(statements.len());
    for _ in statements {
        let (mut answer, mut failure) = (Answer::default(), None);
        read_answer(conn, &mut answer, &mut failure).await?;
        results.push(if failure.is_some() { None } else { answer.param_descriptions.pop() });
    }
    Ok(results)
}

/// Prepares a statement (named, or the unnamed one with `""`) with Parse + Sync.
pub async fn parse(conn: &mut Conn<'_>, name: &str, query: &str, param_types: &[u32]) -> Result<Answer, UpstreamError> {
    let mut out = Vec::with_capacity(query.len() + name.len() + 32);
    put_parse(&mut out, name, query, param_types);
    pipeline(conn, &out, 1).await
}

/// Reads one unit's answer, up to its ReadyForQuery, into `answer`; the first
/// ErrorResponse is kept in `failure`. Fails at once only when the connection is unusable.
async fn read_answer(
    conn: &mut Conn<'_>,
    answer: &mut Answer,
    failure: &mut Option<UpstreamError>,
) -> Result<(), UpstreamError> {
    let upstream = conn.upstream;
    let protocol = |source| UpstreamError::Protocol { upstream: upstream.to_owned(), source };
    loop {
        let (tag, body) = read_message(conn.stream, conn.buf, MAX_ANSWER.max(MAX_HANDSHAKE_MESSAGE))
            .await
            .map_err(|e| UpstreamError::from_read(upstream, e))?;
        match tag {
            backend::DATA_ROW => answer.rows.push(backend::parse_data_row(&body).map_err(protocol)?),
            backend::PARAMETER_STATUS => {
                let (k, v) = backend::parse_parameter_status(&body).map_err(protocol)?;
                answer.params.push((k.to_owned(), v.to_owned()));
            }
            backend::ERROR_RESPONSE => {
                let fields = ErrorFields::parse(&body).map_err(protocol)?;
                let mut raw = Vec::with_capacity(body.len() + 5);
                put_message(&mut raw, tag, |b| b.extend_from_slice(&body));
                if fields.is_fatal() {
                    return Err(UpstreamError::Server { upstream: upstream.to_owned(), fields, raw });
                }
                failure.get_or_insert(UpstreamError::Server { upstream: upstream.to_owned(), fields, raw });
            }
            backend::READY_FOR_QUERY => return Ok(()),
            backend::PARAMETER_DESCRIPTION => {
                answer.param_descriptions.push(backend::parse_parameter_description(&body).map_err(protocol)?)
            }
            backend::ROW_DESCRIPTION => answer.row_descriptions.push(Some(body.to_vec())),
            backend::NO_DATA => answer.row_descriptions.push(None),
            backend::NOTIFICATION_RESPONSE => {
                put_message(&mut answer.notifications, tag, |b| b.extend_from_slice(&body))
            }
            backend::COPY_IN_RESPONSE | backend::COPY_OUT_RESPONSE | backend::COPY_BOTH_RESPONSE => {
                return Err(protocol(WireError::UnexpectedTag(tag as char)));
            }
            // RowDescription, CommandComplete, ParseComplete, notices, notifications.
            _ => {}
        }
    }
}

/// Reads the name and query text of a Parse body, and its parameter type OIDs.
pub fn parse_body(body: &[u8]) -> Result<(&str, &str, Vec<u32>), WireError> {
    let (name, rest) = read_cstr(body)?;
    let (query, rest) = read_cstr(rest)?;
    let (count, mut rest) = crate::wire::read_i16(rest)?;
    let mut types = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let (oid, after) = crate::wire::read_i32(rest)?;
        types.push(oid as u32);
        rest = after;
    }
    Ok((name, query, types))
}
