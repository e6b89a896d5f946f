//! Micro-benchmarks of the wire framer: `Scanner::scan` over realistic read buffers in
//! both directions, and `startup::parse` of a StartupMessage.
//!
//! Run with `cargo bench --bench framer`; measurement times are short so it ends in well
//! under a minute. Throughput is in bytes of wire input.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgflip::wire::backend::{self, put_message};
use pgflip::wire::frontend;
use pgflip::wire::startup::{self, StartupMessage};
use pgflip::wire::{Frame, Scanner, WireError, DEFAULT_MAX_MESSAGE, DEFAULT_MAX_STARTUP, PROTOCOL_3_0};

/// Size of one socket read in the proxy.
const READ_SIZE: usize = 16 * 1024;

/// Largest message the benches let the scanner hold whole.
const MAX_WHOLE: usize = 1 << 20;

/// Server messages the proxy inspects whole; everything else streams.
fn server_whole(tag: u8) -> bool {
    matches!(
        tag,
        backend::READY_FOR_QUERY | backend::ERROR_RESPONSE | backend::PARAMETER_STATUS | backend::BACKEND_KEY_DATA
    )
}

/// Client messages the proxy decodes (DESIGN 2.1); everything else streams.
fn client_whole(tag: u8) -> bool {
    matches!(
        tag,
        frontend::QUERY
            | frontend::PARSE
            | frontend::SYNC
            | frontend::CLOSE
            | frontend::TERMINATE
            | frontend::COPY_DONE
            | frontend::COPY_FAIL
            | frontend::FUNCTION_CALL
    )
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Repeats `unit` as often as it fits in one read, so the buffer ends on a message boundary.
fn fill_read(unit: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(READ_SIZE);
    while buf.len() + unit.len() <= READ_SIZE {
        buf.extend_from_slice(unit);
    }
    buf
}

/// The server's answer to one `pgbench -S` query in the simple protocol.
fn select_only_response() -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, b'T', |b| {
        b.extend_from_slice(&1i16.to_be_bytes());
        put_cstr(b, "abalance");
        b.extend_from_slice(&16_397i32.to_be_bytes()); // table OID
        b.extend_from_slice(&3i16.to_be_bytes()); // column number
        b.extend_from_slice(&23i32.to_be_bytes()); // int4
        b.extend_from_slice(&4i16.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put_message(&mut out, backend::DATA_ROW, |b| {
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&5i32.to_be_bytes());
        b.extend_from_slice(b"-4321");
    });
    put_message(&mut out, backend::COMMAND_COMPLETE, |b| put_cstr(b, "SELECT 1"));
    backend::ready_for_query(&mut out, b'I');
    out
}

/// One `pgbench -S` query in the simple protocol.
fn select_only_query() -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, frontend::QUERY, |b| {
        put_cstr(b, "SELECT abalance FROM pgbench_accounts WHERE aid = 481516;")
    });
    out
}

/// One `pgbench -S -M prepared` execution: Bind, Execute, Sync.
fn select_only_execute() -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, frontend::BIND, |b| {
        b.push(0); // unnamed portal
        put_cstr(b, "P0_1");
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&6i32.to_be_bytes());
        b.extend_from_slice(b"481516");
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put_message(&mut out, frontend::EXECUTE, |b| {
        b.push(0);
        b.extend_from_slice(&0i32.to_be_bytes());
    });
    put_message(&mut out, frontend::SYNC, |_| {});
    out
}

/// A StartupMessage as libpq sends it.
fn startup_message() -> Vec<u8> {
    let params = [
        ("user", "app"),
        ("database", "orders"),
        ("application_name", "checkout-api"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("TimeZone", "UTC"),
        ("extra_float_digits", "3"),
    ];
    let msg = StartupMessage {
        version: PROTOCOL_3_0,
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let mut out = Vec::new();
    msg.encode(&mut out);
    out
}

/// Scans one read buffer that ends on a message boundary; returns the messages seen.
fn scan_read(scanner: &mut Scanner, buf: &[u8], whole: fn(u8) -> bool) -> usize {
    let mut seen = 0;
    let ready = scanner
        .scan(buf, whole, |frame| {
            if let Frame::Whole { body, .. } = &frame {
                black_box(body.first());
            }
            seen += 1;
            Ok::<(), WireError>(())
        })
        .expect("benchmark input is valid");
    assert_eq!(ready, buf.len(), "benchmark input ends on a message boundary");
    seen
}

fn scan_buffers(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    let cases = [
        ("server_select_only_16k", fill_read(&select_only_response()), server_whole as fn(u8) -> bool),
        ("client_query_16k", fill_read(&select_only_query()), client_whole),
        ("client_bind_execute_sync_16k", fill_read(&select_only_execute()), client_whole),
    ];
    for (name, buf, whole) in cases {
        group.throughput(Throughput::Bytes(buf.len() as u64));
        let mut scanner = Scanner::new(DEFAULT_MAX_MESSAGE, MAX_WHOLE);
        group.bench_function(name, |b| b.iter(|| scan_read(&mut scanner, black_box(&buf), whole)));
    }

    const BIG_VALUE: i32 = 1 << 20;
    let mut big_row = Vec::new();
    put_message(&mut big_row, backend::DATA_ROW, |b| {
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&BIG_VALUE.to_be_bytes());
        b.resize(b.len() + BIG_VALUE as usize, b'x');
    });
    group.throughput(Throughput::Bytes(big_row.len() as u64));
    group.bench_function("server_datarow_1m_in_16k_reads", |b| {
        let mut scanner = Scanner::new(DEFAULT_MAX_MESSAGE, MAX_WHOLE);
        b.iter(|| {
            for read in black_box(&big_row).chunks(READ_SIZE) {
                scan_read(&mut scanner, read, server_whole);
            }
            assert!(scanner.at_message_start());
        })
    });
    group.finish();
}

fn parse_startup(c: &mut Criterion) {
    let packet = startup_message();
    let mut group = c.benchmark_group("startup");
    group.throughput(Throughput::Bytes(packet.len() as u64));
    group.bench_function("parse_startup_message", |b| {
        b.iter(|| startup::parse(black_box(&packet), DEFAULT_MAX_STARTUP).expect("valid packet").expect("complete"))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = scan_buffers, parse_startup
}
criterion_main!(benches);
