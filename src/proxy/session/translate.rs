//! A translated session's messages rewritten as they pass (see [`crate::proxy::oids`]):
//! the pump hands each direction's new bytes here before it frames them, and frames only
//! what has been walked. Sessions on their home side have no [`Translation`] and pay nothing.

use std::collections::HashSet;

use crate::proxy::oids::messages::{self, Column};
use crate::proxy::oids::shapes::Shapes;
use crate::proxy::oids::Translator;
use crate::proxy::session::half::Half;
use crate::wire::backend::{self, ErrorFields, Severity};
use crate::wire::frame::HEADER_LEN;
use crate::wire::{frontend, WireError};

/// The statement name a Bind to a statement whose results changed shape is sent with: the
/// server answers 26000 for it, which the client gets as 0A000.
const CHANGED_STATEMENT: &str = "pgflip_result_shape_changed";

/// How far one direction has been walked, past what the pump has framed.
#[derive(Debug, Default)]
struct Walker {
    /// Bytes after the pump's framed ones that are walked (and rewritten where needed).
    walked: usize,
    /// Body bytes of a message streaming through, still to pass.
    skip: usize,
}

/// A session's translation between its home side and the side serving it.
#[derive(Debug)]
pub(super) struct Translation {
    tr: Translator,
    shapes: Shapes,
    client: Walker,
    server: Walker,
    /// Statements whose results differ in shape on the serving side from what the client was
    /// told on the side it prepared them on: their Binds fail with 0A000 until parsed again.
    changed: HashSet<String>,
    /// Binds sent as Binds of [`CHANGED_STATEMENT`] whose errors are still to come.
    changed_binds: usize,
    /// The columns of the DataRows coming now, when some need rewriting; `None` when not
    /// known yet for the current answer.
    plan: Option<Option<Vec<Column>>>,
}

impl Translation {
    pub fn new(tr: Translator, shapes: Shapes, changed: HashSet<String>) -> Translation {
        Translation {
            tr,
            shapes,
            client: Walker::default(),
            server: Walker::default(),
            changed,
            changed_binds: 0,
            plan: None,
        }
    }

    /// The session's translator.
    pub fn translator(&mut self) -> &mut Translator {
        &mut self.tr
    }

    /// True when statement `name`'s results changed shape since the client was told.
    #[cfg(test)]
    pub fn is_changed(&self, name: &str) -> bool {
        self.changed.contains(name)
    }

    /// True when there is nothing left to do: a session at home whose changed statements
    /// were all prepared again, with nothing half walked.
    pub fn is_done(&self) -> bool {
        let idle = |w: &Walker| w.walked == 0 && w.skip == 0;
        self.tr.is_identity()
            && self.changed.is_empty()
            && self.changed_binds == 0
            && idle(&self.client)
            && idle(&self.server)
    }

    /// Walks the client's bytes after those framed, rewriting Parse and Bind; returns how
    /// many bytes after the framed ones may be framed now. With `one_request` (the gate is
    /// closed) it stops after the first request: what the closed gate holds may yet go to
    /// another server, under another translation.
    pub fn walk_client(&mut self, half: &mut Half, one_request: bool) -> Result<usize, WireError> {
        let Translation { tr, shapes, client, changed, changed_binds, plan, .. } = self;
        let whole = |tag| {
            matches!(
                tag,
                frontend::PARSE
                    | frontend::BIND
                    | frontend::DESCRIBE
                    | frontend::EXECUTE
                    | frontend::QUERY
                    | frontend::CLOSE
            )
        };
        let stop = |tag| one_request && frontend::ends_request(tag);
        walk(client, half, whole, stop, |tag, body| match (tag, body) {
            (frontend::PARSE, Some(body)) => {
                if let Some(parsed) = messages::parse_to_serving(body, tr) {
                    changed.remove(&parsed.name);
                    shapes.parse(&parsed.name, &parsed.query, parsed.param_types);
                }
                None
            }
            (frontend::BIND, Some(body)) => {
                let statement = bind_statement(body)?;
                if changed.contains(&statement) {
                    *changed_binds += 1;
                    return Some(rename_bind(body, CHANGED_STATEMENT));
                }
                let (types, introspection) = match shapes.bound_statement(&statement) {
                    Some(s) => (s.param_types.clone(), s.introspection),
                    None => (Vec::new(), false),
                };
                let bound = messages::bind_to_serving(body, &types, introspection, tr)?;
                shapes.bind(&bound.portal, &bound.statement, bound.result_formats);
                bound.rewritten
            }
            (frontend::DESCRIBE, Some(body)) => {
                if let (Some(&kind), Some(name)) = (body.first(), cstr(body.get(1..)?)) {
                    shapes.describe(kind, &name);
                }
                None
            }
            (frontend::EXECUTE, Some(body)) => {
                shapes.execute(&cstr(body)?);
                *plan = None;
                None
            }
            (frontend::QUERY, Some(body)) => {
                shapes.query(&cstr(body).unwrap_or_default());
                *plan = None;
                None
            }
            (frontend::CLOSE, Some(body)) => {
                if let (Some(&kind), Some(name)) = (body.first(), cstr(body.get(1..)?)) {
                    if kind == b'S' {
                        changed.remove(&name);
                    }
                    shapes.close(kind, &name);
                }
                None
            }
            (frontend::SYNC, None) => {
                shapes.sync();
                None
            }
            (frontend::FUNCTION_CALL, None) => {
                shapes.function_call();
                None
            }
            _ => None,
        })
    }

    /// Walks the server's bytes after those framed, rewriting descriptions, rows and the
    /// errors of changed statements; returns how many bytes may be framed now.
    pub fn walk_server(&mut self, half: &mut Half) -> Result<usize, WireError> {
        let Translation { tr, shapes, server, changed_binds, plan, .. } = self;
        let plan = std::cell::RefCell::new(plan);
        let shapes = std::cell::RefCell::new(shapes);
        let map = tr.map().clone();
        let whole = |tag: u8| match tag {
            backend::DATA_ROW => {
                let mut plan = plan.borrow_mut();
                let columns = plan.get_or_insert_with(|| {
                    let columns = shapes.borrow().columns();
                    columns.filter(|columns| columns.iter().any(|c| c.needs_rewrite(&map.serving)))
                });
                columns.is_some()
            }
            backend::ROW_DESCRIPTION
            | backend::PARAMETER_DESCRIPTION
            | backend::ERROR_RESPONSE
            | backend::READY_FOR_QUERY => true,
            _ => false,
        };
        walk(
            server,
            half,
            whole,
            |_| false,
            |tag, body| {
                let mut shapes = shapes.borrow_mut();
                if tag != backend::DATA_ROW {
                    **plan.borrow_mut() = None;
                }
                match (tag, body) {
                    (backend::DATA_ROW, Some(body)) => {
                        let plan = plan.borrow();
                        let columns = plan.as_ref().and_then(|p| p.as_ref())?;
                        messages::data_row_to_home(body, columns, tr)
                    }
                    (backend::ROW_DESCRIPTION, Some(body)) => {
                        if let Some(fields) = messages::row_description_to_home(body, tr) {
                            shapes.row_description(fields);
                        }
                        None
                    }
                    (backend::PARAMETER_DESCRIPTION, Some(body)) => {
                        if let Some(types) = messages::parameter_description_to_home(body, tr) {
                            shapes.parameter_description(types);
                        }
                        None
                    }
                    (backend::ERROR_RESPONSE, Some(body)) => {
                        shapes.error();
                        if *changed_binds > 0 {
                            let fields = ErrorFields::parse(body).ok()?;
                            if fields.code == "26000" && fields.message.contains(CHANGED_STATEMENT) {
                                *changed_binds -= 1;
                                let mut out = Vec::new();
                                backend::error_response(
                                    &mut out,
                                    Severity::Error,
                                    "0A000",
                                    "cached plan must not change result type",
                                );
                                return Some(out[HEADER_LEN..].to_vec());
                            }
                        }
                        None
                    }
                    (backend::READY_FOR_QUERY, Some(body)) => {
                        shapes.ready_for_query(body.first().copied().unwrap_or(b'I'));
                        None
                    }
                    (backend::NO_DATA, None) => {
                        shapes.no_data();
                        None
                    }
                    (backend::COMMAND_COMPLETE | backend::EMPTY_QUERY_RESPONSE | backend::PORTAL_SUSPENDED, None) => {
                        shapes.result_done();
                        None
                    }
                    _ => None,
                }
            },
        )
    }

    /// The pump framed `n` more of the client's walked bytes.
    pub fn framed_client(&mut self, n: usize) {
        self.client.walked -= n.min(self.client.walked);
    }

    /// The pump framed `n` more of the server's walked bytes.
    pub fn framed_server(&mut self, n: usize) {
        self.server.walked -= n.min(self.server.walked);
    }

    /// The server's unframed bytes were read by the proxy's own statements: walk afresh.
    pub fn restart_server(&mut self) {
        self.server = Walker::default();
        self.plan = None;
    }
}

/// Walks whole messages (for tags `whole` says) or their headers after the framed bytes of
/// `half`, handing each to `visit`, which may return a new body, and stopping after one for
/// which `stop` says so; returns the walked length. Lengths are checked as the framer checks
/// them, so that a bad one is an error here.
fn walk(
    walker: &mut Walker,
    half: &mut Half,
    whole: impl Fn(u8) -> bool,
    stop: impl Fn(u8) -> bool,
    mut visit: impl FnMut(u8, Option<&mut [u8]>) -> Option<Vec<u8>>,
) -> Result<usize, WireError> {
    let max = half.scanner.max_len();
    loop {
        let pos = half.ready + walker.walked;
        let available = half.buf.len() - pos;
        if walker.skip > 0 {
            let take = walker.skip.min(available);
            walker.skip -= take;
            walker.walked += take;
            if walker.skip > 0 {
                break;
            }
            continue;
        }
        if available < HEADER_LEN {
            break;
        }
        let tag = half.buf[pos];
        let len = u32::from_be_bytes([half.buf[pos + 1], half.buf[pos + 2], half.buf[pos + 3], half.buf[pos + 4]]);
        if len < 4 {
            return Err(WireError::LengthTooSmall { tag: tag as char, len });
        }
        if len as usize > max {
            return Err(WireError::LengthTooLarge { tag: tag as char, len: len as usize, max });
        }
        let total = 1 + len as usize;
        if whole(tag) {
            if available < total {
                break;
            }
            match visit(tag, Some(&mut half.buf[pos + HEADER_LEN..pos + total])) {
                Some(body) => {
                    let mut message = Vec::with_capacity(body.len() + HEADER_LEN);
                    backend::put_message(&mut message, tag, |b| b.extend_from_slice(&body));
                    let tail = half.buf.split_off(pos + total);
                    half.buf.truncate(pos);
                    half.buf.extend_from_slice(&message);
                    half.buf.unsplit(tail);
                    walker.walked += message.len();
                }
                None => walker.walked += total,
            }
        } else {
            visit(tag, None);
            let here = total.min(available);
            walker.walked += here;
            walker.skip = total - here;
        }
        if stop(tag) {
            break;
        }
    }
    Ok(walker.walked)
}

/// The statement name of a Bind body.
fn bind_statement(body: &[u8]) -> Option<String> {
    let portal_end = body.iter().position(|&b| b == 0)?;
    cstr(body.get(portal_end + 1..)?)
}

/// A Bind body naming `statement` instead.
fn rename_bind(body: &[u8], statement: &str) -> Vec<u8> {
    let portal_end = body.iter().position(|&b| b == 0).unwrap_or(0);
    let statement_end = portal_end + 1 + body[portal_end + 1..].iter().position(|&b| b == 0).unwrap_or(0);
    let mut out = Vec::with_capacity(body.len() + statement.len());
    out.extend_from_slice(&body[..=portal_end]);
    out.extend_from_slice(statement.as_bytes());
    out.extend_from_slice(&body[statement_end..]);
    out
}

/// A NUL-terminated string at the start of `body`.
fn cstr(body: &[u8]) -> Option<String> {
    let end = body.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}
