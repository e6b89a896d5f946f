//! Moving a parked session to another server: open a connection with the client's own
//! startup packet, replay its session state, tell the client which server parameters
//! changed, and swap the connection in. The client keeps its connection and its
//! BackendKeyData; its cancel requests now reach the new server.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::proxy::cancel::CancelTarget;
use crate::proxy::capture::{self, Baseline, PreparedStatement, SessionSnapshot, SettingNeeds};
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::oids::Translator;
use crate::proxy::session::setup::{self, CaptureSetup, Opened, Prepared};
use crate::proxy::session::shapes::{self, Described, Moving};
use crate::proxy::session::{Established, HeldGauge, SessionError};
use crate::proxy::upstream::query::{self, Answer, Conn};
use crate::proxy::upstream::{ServerConn, Upstream, UpstreamError};

/// True when losing the server now costs the client nothing: it is parked (every answer
/// delivered, its next request held) and its state was captured.
pub(super) fn can_reconnect(s: &Established) -> bool {
    s.pump.is_parked() && s.snapshot.is_some()
}

/// Reads the parked session's state from its server, in one round trip the client never
/// sees (two for a session with a temporary schema or a prepared statement whose
/// parameter types must be named, and one more to parse the client's unnamed statement
/// again, which the capture's simple Query destroyed). Notifications that arrive meanwhile
/// are passed on to the client; parameter changes wait for its next request's answer.
pub(super) async fn capture(s: &mut Established, ctx: &ProxyContext) -> Result<(), SessionError> {
    // Nothing reached the server since the last capture on this connection: its session
    // state cannot have changed (only the client changes it).
    let began = Instant::now();
    let mark = (s.pump.info().server_pid(), s.pump.forwarded());
    if s.snapshot.is_some() && s.captured_at == Some(mark) {
        debug!(server.pid = mark.0, "session ran nothing since its last capture: the capture stands");
        return Ok(());
    }
    let baseline = match &s.capture_setup {
        CaptureSetup::Ready { baseline } => baseline.clone(),
        CaptureSetup::Failed(reason) => {
            return Err(SessionError::State(format!("state capture could not be set up on its connection: {reason}")))
        }
    };
    let mut names = ctx.track_settings.clone();
    names.extend(s.pump.custom_settings().iter().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>());
    let result = read_state(s, &names, &baseline).await;
    // Whatever came of it, the client's unnamed statement is as it was.
    restore_unnamed(s).await?;
    s.snapshot = Some(result?);
    s.captured_at = Some(mark);
    debug!(server.pid = mark.0, capture_us = began.elapsed().as_micros() as u64, "session captured");
    Ok(())
}

/// The capture's questions: the state, then the details some sessions need. The
/// client's unnamed statement goes into the snapshot from the proxy's record, since the
/// server lists it nowhere.
async fn read_state(
    s: &mut Established,
    names: &[String],
    baseline: &Baseline,
) -> Result<SessionSnapshot, SessionError> {
    let answer = ask(s, &capture::capture_query(names, baseline)).await?;
    let columns: Vec<Option<&str>> = answer.iter().flatten().map(|c| c.as_deref()).collect();
    let mut snapshot =
        capture::parse_capture_row(&columns, baseline).map_err(|e| SessionError::State(e.to_string()))?;
    if let Some(unnamed) = s.pump.unnamed() {
        snapshot.prepared.push(PreparedStatement {
            name: String::new(),
            statement: unnamed.query.clone(),
            from_sql: false,
            param_types: Vec::new(),
            param_oids: unnamed.param_types.clone(),
        });
    }
    if let Some((type_oids, temp_schema)) = snapshot.details_wanted() {
        let answer = ask(s, &capture::details_query(&type_oids, temp_schema)).await?;
        let columns: Vec<Option<&str>> = answer.iter().flatten().map(|c| c.as_deref()).collect();
        snapshot.apply_details(&columns).map_err(|e| SessionError::State(e.to_string()))?;
    }
    Ok(snapshot)
}

/// Parses the client's unnamed statement again on its server, as the client last parsed
/// it: the capture's simple Query destroyed it. If the server refuses it now, it refused it
/// the first time too; that error was the client's to see then, and is not shown again.
async fn restore_unnamed(s: &mut Established) -> Result<(), SessionError> {
    let Some(unnamed) = s.pump.unnamed().cloned() else { return Ok(()) };
    let mut out = Vec::new();
    query::put_parse(&mut out, "", &unnamed.query, &unnamed.param_types);
    match run(s, &out).await {
        Ok(_) => Ok(()),
        Err(SessionError::Upstream(UpstreamError::Server { fields, .. })) if !fields.is_fatal() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sends `sql` as one Query to the parked session's server and returns the rows.
async fn ask(s: &mut Established, sql: &str) -> Result<Vec<Vec<Option<String>>>, SessionError> {
    let mut out = Vec::with_capacity(sql.len() + 6);
    query::put_query(&mut out, sql);
    Ok(run(s, &out).await?.rows)
}

/// Sends `out`, one unit of a [`query::pipeline`], to the parked session's server, through
/// the pump's buffer of that connection (which may hold a notification already, and keeps
/// what follows). The statements before the capture lifts the client's statement_timeout
/// run under it: a timeout of a millisecond or so can cancel one, and asking again is
/// harmless. What the server sent for the client meanwhile is passed on.
async fn run(s: &mut Established, out: &[u8]) -> Result<Answer, SessionError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut conn = Conn { stream: &mut s.server, buf: s.pump.server_buf(), upstream: &s.upstream.name };
        let (answer, failure) = query::pipeline_answer(&mut conn, out, 1).await?;
        pass_on(s, &answer).await?;
        match failure {
            Some(UpstreamError::Server { fields, .. }) if fields.code == "57014" && attempts < 4 => continue,
            Some(e) => return Err(e.into()),
            None => return Ok(answer),
        }
    }
}

/// Passes on to the client what the server sent it while the proxy's own statements ran:
/// notifications now (an idle client gets them as PostgreSQL sends them), parameter
/// changes with the answer to its next request.
async fn pass_on(s: &mut Established, answer: &Answer) -> Result<(), SessionError> {
    for (name, value) in &answer.params {
        s.pump.tell_client_later(name, value);
    }
    if !answer.notifications.is_empty() {
        write_all(&mut s.client, &answer.notifications).await.map_err(SessionError::ClientIo)?;
    }
    Ok(())
}

/// Groups replay statements into as few Query messages as keep each PREPARE in a Query
/// of its own: PostgreSQL stores the whole Query text as the statement's text, and the
/// next move reads the PREPARE back out of it.
fn round_trips(statements: &[String]) -> Vec<String> {
    let mut queries = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    for statement in statements {
        if statement.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("PREPARE ")) {
            if !batch.is_empty() {
                queries.push(batch.join(";\n"));
                batch.clear();
            }
            queries.push(statement.clone());
        } else {
            batch.push(statement);
        }
    }
    if !batch.is_empty() {
        queries.push(batch.join(";\n"));
    }
    queries
}

/// Recreates the captured state on a new connection, whose settings before the client
/// are `target` (when known) and on which `prepared` statements were made ahead, in one
/// round trip (two when a protocol-level statement has a parameter of a type that is not
/// built in, whose OID must be looked up). `source_user` is the user the captured
/// connection logged in as. Returns what the server said meanwhile that is for the client
/// (parameter changes, notifications), and how it describes each protocol-level statement.
async fn replay(
    on: &mut Conn<'_>,
    snapshot: &SessionSnapshot,
    source_user: &str,
    target: Option<&Baseline>,
    prepared: &[Prepared],
) -> Result<(Answer, Vec<Option<Described>>), SessionError> {
    if !snapshot.unmovable.is_empty() {
        return Err(SessionError::State(format!("holds state that cannot move: {}", snapshot.unmovable.describe())));
    }
    let plan = capture::replay_statements(snapshot, source_user, target);
    if let Some(first) = plan.not_replayable.first() {
        return Err(SessionError::State(format!(
            "prepared statement {:?} cannot be recreated: {}",
            first.name, first.reason
        )));
    }
    let lookup: Vec<String> = snapshot
        .protocol_statements()
        .filter(|statement| statement.stable_oids().is_none())
        .flat_map(|statement| statement.param_types.iter().cloned())
        .collect();
    let mut looked_up = query::type_oids(on, &lookup).await?.into_iter();

    let (settings, timeouts) = plan.statements.split_at(plan.statements.len() - plan.timeouts);
    let mut out = Vec::new();
    let mut units = 0;
    for sql in round_trips(settings) {
        query::put_query(&mut out, &sql);
        units += 1;
    }
    // Statements made ahead were parsed under the connection's own settings: they are
    // the session's only when the replay changes no setting that parsing reads.
    let ahead = if plan.affects_parsing { &[][..] } else { prepared };
    // The unit that parses the unnamed statement: the new side may refuse it (it names
    // something only the old side has); the client's next Parse replaces it anyway.
    let mut unnamed = None;
    for statement in snapshot.protocol_statements() {
        let oids = match statement.stable_oids() {
            Some(oids) => oids.to_vec(),
            None => looked_up.by_ref().take(statement.param_types.len()).collect(),
        };
        let same = |p: &&Prepared| p.query == statement.statement && p.param_types == oids;
        if ahead.iter().filter(|p| p.name == statement.name).find(same).is_some() {
            continue;
        }
        if prepared.iter().any(|p| p.name == statement.name) {
            query::put_close(&mut out, &statement.name);
            units += 1;
        }
        if statement.name.is_empty() {
            unnamed = Some(units);
        }
        query::put_parse(&mut out, &statement.name, &statement.statement, &oids);
        units += 1;
    }
    for extra in prepared.iter().filter(|p| !snapshot.protocol_statements().any(|s| s.name == p.name)) {
        query::put_close(&mut out, &extra.name);
        units += 1;
    }
    // How the new side describes each statement: its translation's starting point, and
    // whether its results still have the shape the client was told.
    let describes = units;
    for statement in snapshot.protocol_statements() {
        query::put_describe(&mut out, &statement.name);
        units += 1;
    }
    if !timeouts.is_empty() {
        query::put_query(&mut out, &timeouts.join(";\n"));
        units += 1;
    }
    if units == 0 {
        return Ok((Answer::default(), Vec::new()));
    }
    let answers = query::pipeline_each(on, &out, units).await?;
    let statements = snapshot.protocol_statements().count();
    let unnamed_describe =
        unnamed.map(|_| describes + snapshot.protocol_statements().position(|s| s.name.is_empty()).unwrap_or(0));
    let mut answer = Answer::default();
    let mut described = Vec::with_capacity(statements);
    for (unit, (each, failure)) in answers.into_iter().enumerate() {
        match failure {
            Some(_) if Some(unit) == unnamed || Some(unit) == unnamed_describe => {
                debug!(upstream = on.upstream, "the unnamed statement cannot be parsed on the new side: dropped");
            }
            Some(e) => return Err(e.into()),
            None => {}
        }
        if (describes..describes + statements).contains(&unit) {
            described.push(shapes::described(&each));
        }
        answer.params.extend(each.params);
        answer.notifications.extend(each.notifications);
    }
    Ok((answer, described))
}

/// How the session's current server describes its protocol-level statements `names`: what
/// their clients were told. Any failure leaves them unknown (they are then not compared).
async fn describe_here(s: &mut Established, names: &[String]) -> Result<Vec<Option<Described>>, SessionError> {
    if names.is_empty() || !s.server_alive {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names {
        query::put_describe(&mut out, name);
    }
    let mut conn = Conn { stream: &mut s.server, buf: s.pump.server_buf(), upstream: &s.upstream.name };
    let answers = query::pipeline_each(&mut conn, &out, names.len()).await?;
    for (answer, _) in &answers {
        pass_on(s, answer).await?;
    }
    Ok(answers.iter().map(|(answer, _)| shapes::described(answer)).collect())
}

/// The translator of a session moving to `to`: `None` at home. Its home side's catalog is
/// the one read at the first switch that took it away from home, kept for its whole life.
fn translator_for(s: &mut Established, ctx: &ProxyContext, to: &Upstream) -> Option<Translator> {
    if to.name == s.home {
        return None;
    }
    let home = match &s.home_catalog {
        Some(catalog) => catalog.clone(),
        None => {
            let catalog = ctx.catalogs.latest(&s.home)?;
            s.home_catalog = Some(catalog.clone());
            catalog
        }
    };
    let Some(serving) = ctx.catalogs.latest(&to.name) else {
        warn!(upstream = %to.name, "no catalog of the new side: this session's OIDs are not translated");
        return None;
    };
    Some(Translator::new(ctx.catalogs.map(&home, &serving)))
}

/// Moves the session to `to`, which is at registry generation `generation`. A session that
/// sets a setting `to` lacks (its settings as read at the switch) does not try.
pub(super) async fn migrate(
    s: &mut Established,
    ctx: &ProxyContext,
    to: Arc<Upstream>,
    generation: u64,
) -> Result<(), SessionError> {
    let started = Instant::now();
    if let (Some(snapshot), Some(known)) = (&s.snapshot, ctx.catalogs.settings(&to.name)) {
        if let Some(missing) = known.missing(&SettingNeeds::of(&s.startup, snapshot)) {
            return Err(SessionError::State(format!("cannot move to {}: {missing}", to.name)));
        }
    }
    let login = ctx.login_for(&to, &s.user);
    let opened = match s.warm.take() {
        Some((warm_for, opened)) if warm_for.name == to.name && Arc::ptr_eq(&warm_for, &to) => opened,
        _ => setup::open(&to, &s.startup, &login, ctx.limits.connect_timeout, Vec::new(), &ctx.baselines)
            .await
            .inspect_err(|e| {
                ctx.metrics.upstream_error(&to.name, e.kind());
            })?,
    };
    let Opened { mut conn, setup: capture_setup, prepared } = opened;
    let statements: Vec<(String, String)> = match &s.snapshot {
        Some(snapshot) => snapshot.protocol_statements().map(|p| (p.name.clone(), p.statement.clone())).collect(),
        None => Vec::new(),
    };
    let names: Vec<String> = statements.iter().map(|(name, _)| name.clone()).collect();
    let before = describe_here(s, &names).await?;
    let snapshot =
        s.snapshot.as_ref().ok_or_else(|| SessionError::State("it was not captured when the session parked".into()))?;
    let target = match &capture_setup {
        CaptureSetup::Ready { baseline } => Some(baseline.as_ref()),
        CaptureSetup::Failed(_) => None,
    };
    let source_user = ctx.login_for(&s.upstream, &s.user).user;
    let (answer, after) = replay(&mut conn.query(&to.name), snapshot, &source_user, target, &prepared).await?;
    let moving: Vec<Moving> = statements.iter().map(|(name, query)| Moving { name, query }).collect();
    let new = translator_for(s, ctx, &to);
    // Home OIDs compare exactly when each side is home or translated.
    let exact = (s.upstream.name == s.home || s.pump.translation().is_some_and(|t| !t.translator().is_identity()))
        && (to.name == s.home || new.is_some());
    let old = s.pump.translation().map(|t| t.translator());
    let translation = shapes::after_move(&moving, &before, old, &after, new, exact);
    let ServerConn { stream, mut params, backend_key, leftover } = conn;
    params.extend(answer.params.iter().cloned());

    // ParameterStatus the client has not seen with these values (server_version, ...): with
    // the answer to its next request, as a server reports a change, never to an idle client.
    for (name, value) in &params {
        s.pump.tell_client_later(name, value);
    }
    if !answer.notifications.is_empty() {
        write_all(&mut s.client, &answer.notifications).await.map_err(SessionError::ClientIo)?;
    }

    let old = std::mem::replace(&mut s.server, stream);
    if s.server_alive {
        crate::proxy::switch::retire(old, ctx, s.pump.info().server_pid());
    }
    // The snapshot still describes the session (it has run nothing since): a switch that
    // follows before it unparks can move it again without a new capture.
    let from = std::mem::replace(&mut s.upstream, to.clone());
    s.server_alive = true;
    s.capture_setup = capture_setup;
    s.generation = generation;
    s.pump.reset_server(leftover);
    s.pump.set_translation(translation);
    let translated = to.name != s.home && s.pump.translation().is_some_and(|t| !t.translator().is_identity());
    s.translated_gauge = translated.then(|| HeldGauge::new(ctx.metrics.translated_sessions.clone()));
    s.cancel.retarget(CancelTarget { upstream: to.clone(), pid: backend_key.0, key: backend_key.1 });
    s.server_gauge = HeldGauge::new(ctx.metrics.server_connections(&to.name));
    let info = s.pump.info();
    info.set_server_pid(backend_key.0);
    info.set_generation(generation);
    info!(
        from = %from.name,
        to = %to.name,
        server.pid = backend_key.0,
        duration_ms = started.elapsed().as_millis() as u64,
        "session moved"
    );
    Ok(())
}
