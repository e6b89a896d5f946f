use super::*;

fn client(t: &mut Tracker, tags: &[u8]) {
    for &tag in tags {
        t.client_message(tag);
    }
}

fn ready(t: &mut Tracker, status: u8) -> Option<Instant> {
    t.server_message(b'Z', &[status])
}

#[test]
fn simple_query_returns_to_boundary() {
    let mut t = Tracker::default();
    client(&mut t, b"Q");
    assert!(!t.at_boundary());
    assert!(ready(&mut t, b'I').is_some());
    assert!(t.at_boundary());
}

#[test]
fn pipelined_syncs_are_counted() {
    let mut t = Tracker::default();
    client(&mut t, b"PBDES");
    client(&mut t, b"BES");
    client(&mut t, b"BES");
    ready(&mut t, b'I');
    ready(&mut t, b'I');
    assert!(!t.at_boundary());
    ready(&mut t, b'I');
    assert!(t.at_boundary());
}

#[test]
fn open_extended_batch_is_not_a_boundary() {
    let mut t = Tracker::default();
    client(&mut t, b"PD");
    client(&mut t, b"H");
    assert!(!t.at_boundary());
    client(&mut t, b"S");
    ready(&mut t, b'I');
    assert!(t.at_boundary());
}

#[test]
fn explicit_transaction_holds_until_commit() {
    let mut t = Tracker::default();
    client(&mut t, b"Q");
    assert!(ready(&mut t, b'T').is_none());
    assert_eq!(t.state(), SessionState::InTransaction);
    assert!(!t.at_boundary());
    client(&mut t, b"Q");
    ready(&mut t, b'E');
    assert_eq!(t.state(), SessionState::FailedTransaction);
    client(&mut t, b"Q");
    assert!(ready(&mut t, b'I').is_some(), "the transaction's time is reported at its end");
    assert!(t.at_boundary());
}

#[test]
fn extended_copy_in_ignores_the_sync_sent_with_execute() {
    // tokio-postgres: Bind, Execute, Sync; CopyInResponse; CopyData..., CopyDone, Sync.
    let mut t = Tracker::default();
    client(&mut t, b"BES");
    t.server_message(b'G', &[]);
    assert_eq!(t.state(), SessionState::Copy);
    client(&mut t, b"dddc");
    client(&mut t, b"S");
    assert!(!t.at_boundary());
    ready(&mut t, b'I');
    assert!(t.at_boundary());
}

#[test]
fn simple_copy_out_ends_at_ready_for_query() {
    let mut t = Tracker::default();
    client(&mut t, b"Q");
    t.server_message(b'H', &[]);
    assert!(!t.at_boundary());
    ready(&mut t, b'I');
    assert!(t.at_boundary());
}
