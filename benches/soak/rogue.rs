//! Misbehaving clients of the sidecar, on raw sockets: one that hangs up in the middle of
//! a message, one that asks for a large result and stops reading.

use crate::support::wire::{frame, query_packet, startup_packet, RawConn};
use std::time::Duration;

/// The application name of these clients, so that their backends can be found.
pub const APPLICATION: &str = "pgflip-soak-rogue";
/// Rows of 1 KiB each in the slow reader's result: about 50 MiB.
const SLOW_ROWS: usize = 50_000;
/// How long the slow reader reads nothing.
const STALLED_FOR: Duration = Duration::from_secs(2);

fn logged_in(port: u16) -> Result<RawConn, String> {
    let mut conn = RawConn::connect(port).map_err(|e| format!("connect: {e}"))?;
    conn.startup_with(&[("user", "postgres"), ("database", "postgres"), ("application_name", APPLICATION)])
        .map_err(|e| format!("log in: {}", e.message()))?;
    Ok(conn)
}

/// Sends part of a message and hangs up: variant 0 a startup packet, 1 a query, 2 a Parse
/// inside an open transaction.
pub fn gone_mid_message(port: u16, variant: usize) -> Result<String, String> {
    match variant % 3 {
        0 => {
            let mut conn = RawConn::connect(port).map_err(|e| format!("connect: {e}"))?;
            let packet = startup_packet(&[("user", "postgres"), ("database", "postgres")]);
            conn.send(&packet[..packet.len() / 2]).map_err(|e| format!("send: {e}"))?;
            Ok("half a startup packet".into())
        }
        1 => {
            let mut conn = logged_in(port)?;
            let packet = query_packet("SELECT pg_sleep(0), 'a query cut in two'");
            conn.send(&packet[..packet.len() / 2]).map_err(|e| format!("send: {e}"))?;
            Ok("half a query".into())
        }
        _ => {
            let mut conn = logged_in(port)?;
            conn.simple_query("BEGIN; INSERT INTO soak_accounts VALUES (-1, 0)")
                .map_err(|e| format!("BEGIN: {}", e.message()))?;
            let mut body = b"\0SELECT 1\0".to_vec();
            body.extend_from_slice(&0u16.to_be_bytes());
            let packet = frame(b'P', &body);
            conn.send(&packet[..packet.len() - 3]).map_err(|e| format!("send: {e}"))?;
            Ok("half a Parse in an open transaction".into())
        }
    }
}

/// Asks for about 50 MiB and reads nothing for a while; then variant 0 hangs up and
/// variant 1 reads it all and checks every row came.
pub fn slow_reader(port: u16, variant: usize) -> Result<String, String> {
    let mut conn = logged_in(port)?;
    let sql = format!("SELECT repeat('x', 1024) FROM generate_series(1, {SLOW_ROWS})");
    conn.send(&query_packet(&sql)).map_err(|e| format!("send: {e}"))?;
    std::thread::sleep(STALLED_FOR);
    if variant % 2 == 0 {
        return Ok("hung up with the result unread".into());
    }
    conn.set_read_timeout(Duration::from_secs(60));
    let mut rows = 0;
    loop {
        match conn.read_message().map_err(|e| format!("read: {e}"))? {
            Some(message) if message.tag == b'D' => rows += 1,
            Some(message) if message.tag == b'Z' => break,
            Some(message) if message.tag == b'E' => {
                return Err(format!("the query failed: {}", String::from_utf8_lossy(&message.body)))
            }
            Some(_) => {}
            None => return Err(format!("the connection ended after {rows} rows")),
        }
    }
    if rows != SLOW_ROWS {
        return Err(format!("{rows} rows came, not {SLOW_ROWS}"));
    }
    conn.terminate();
    Ok(format!("read all {rows} rows late"))
}
