//! Unit tests of the upstream authentication exchange, against the proxy's own SCRAM server.

use super::*;
use crate::proxy::auth::{ScramServer, ScramVerifier};
use crate::proxy::upstream::UpstreamUrl;

const PASSWORD: &str = "s3cret";

fn upstream(url: &str) -> Upstream {
    Upstream::new("blue", UpstreamUrl::parse(url).unwrap()).unwrap()
}

fn login() -> Login {
    Login { user: "app".to_owned(), password: Some(PASSWORD.to_owned()) }
}

/// The body of the one PasswordMessage-family message in `out`.
fn body(out: &[u8]) -> &[u8] {
    assert_eq!(out[0], b'p', "{out:?}");
    let len = i32::from_be_bytes(out[1..5].try_into().unwrap()) as usize;
    assert_eq!(out.len(), 1 + len);
    &out[5..]
}

/// The data of a SASLInitialResponse body (mechanism, length, data).
fn initial_data(body: &[u8]) -> &[u8] {
    let nul = body.iter().position(|&b| b == 0).unwrap();
    assert_eq!(&body[..nul], b"SCRAM-SHA-256");
    &body[nul + 5..]
}

/// A SCRAM exchange run as far as the server-final-message, which `finish` gets to alter.
fn scram_until_final(verifier: ScramVerifier, finish: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Result<(), UpstreamError> {
    let (upstream, login) = (upstream("postgres://h"), login());
    let mut auth = Authenticator::new(&upstream, &login, false);
    let mut server = ScramServer::new(verifier);
    let mut out = Vec::new();
    auth.answer(AuthRequest::Sasl { mechanisms: vec!["SCRAM-SHA-256"] }, &mut out)?;
    let server_first = server.client_first(initial_data(body(&out))).unwrap();
    out.clear();
    auth.answer(AuthRequest::SaslContinue(&server_first), &mut out)?;
    let server_final = server.client_final(body(&out)).expect("the proxy's proof is right");
    auth.answer(AuthRequest::SaslFinal(&finish(server_final)), &mut Vec::new())?;
    auth.answer(AuthRequest::Ok, &mut Vec::new())?;
    assert!(auth.is_done());
    Ok(())
}

fn refusal(result: Result<(), UpstreamError>) -> AuthRefusal {
    match result {
        Err(UpstreamError::AuthRefused { reason, .. }) => reason,
        other => panic!("expected the login to be broken off, got {other:?}"),
    }
}

#[test]
fn scram_with_a_verified_signature_logs_in() {
    let verifier = ScramVerifier::from_password(PASSWORD.as_bytes(), b"0123456789abcdef", 4096);
    scram_until_final(verifier, |server_final| server_final).expect("login");
}

#[test]
fn scram_signature_that_does_not_verify_is_refused() {
    // One base64 digit of the signature changed on the way, as a relay could.
    let verifier = ScramVerifier::from_password(PASSWORD.as_bytes(), b"salt", 16);
    let err = scram_until_final(verifier, |mut server_final| {
        server_final[2] = if server_final[2] == b'A' { b'B' } else { b'A' };
        server_final
    });
    assert_eq!(refusal(err), AuthRefusal::BadSignature);
    let verifier = ScramVerifier::from_password(PASSWORD.as_bytes(), b"salt", 16);
    let err = scram_until_final(verifier, |_| b"v=AAAA".to_vec());
    assert_eq!(refusal(err), AuthRefusal::BadSignature);
    let verifier = ScramVerifier::from_password(PASSWORD.as_bytes(), b"salt", 16);
    let err = scram_until_final(verifier, |_| b"e=invalid-proof".to_vec());
    assert_eq!(refusal(err), AuthRefusal::ServerError("invalid-proof".into()));
}

#[test]
fn authentication_ok_without_server_signature_is_refused() {
    let (upstream, login) = (upstream("postgres://h"), login());
    // Right after SASL start, and right after our proof.
    for steps in [0, 1] {
        let mut auth = Authenticator::new(&upstream, &login, true);
        let mut server = ScramServer::new(ScramVerifier::from_plain(PASSWORD));
        let mut out = Vec::new();
        auth.answer(AuthRequest::Sasl { mechanisms: vec!["SCRAM-SHA-256"] }, &mut out).unwrap();
        if steps == 1 {
            let server_first = server.client_first(initial_data(body(&out))).unwrap();
            auth.answer(AuthRequest::SaslContinue(&server_first), &mut Vec::new()).unwrap();
        }
        let err = auth.answer(AuthRequest::Ok, &mut Vec::new()).map(|_| ());
        assert_eq!(refusal(err), AuthRefusal::OkWithoutSignature, "after {steps} steps");
        assert!(!auth.is_done());
    }
}

#[test]
fn sasl_messages_outside_an_exchange_are_refused() {
    let (upstream, login) = (upstream("postgres://h"), login());
    for request in [AuthRequest::SaslFinal(b"v=AAAA"), AuthRequest::SaslContinue(b"r=x,s=AAAA,i=1")] {
        let mut auth = Authenticator::new(&upstream, &login, false);
        let err = auth.answer(request, &mut Vec::new()).map(|_| ());
        assert!(matches!(refusal(err), AuthRefusal::OutOfOrder(_)));
    }
    // A second method after a password went out, and a request after AuthenticationOk.
    let mut auth = Authenticator::new(&upstream, &login, true);
    auth.answer(AuthRequest::Cleartext, &mut Vec::new()).unwrap();
    let err = auth.answer(AuthRequest::Sasl { mechanisms: vec!["SCRAM-SHA-256"] }, &mut Vec::new());
    assert!(matches!(refusal(err), AuthRefusal::OutOfOrder(_)));
    let mut auth = Authenticator::new(&upstream, &login, true);
    auth.answer(AuthRequest::Ok, &mut Vec::new()).unwrap();
    let err = auth.answer(AuthRequest::Cleartext, &mut Vec::new());
    assert!(matches!(refusal(err), AuthRefusal::OutOfOrder(_)));
}

#[test]
fn server_first_message_is_checked_before_any_work() {
    let client = "n,,n=,r=abcdef";
    let nonce = client_nonce(client.as_bytes());
    assert_eq!(nonce, "abcdef");
    let check = |msg: &str| check_server_first(msg.as_bytes(), nonce);
    assert_eq!(check("r=abcdefXYZ,s=c2FsdA==,i=4096"), Ok(()));
    assert_eq!(check(&format!("r=abcdefXYZ,s=c2FsdA==,i={MAX_SCRAM_ITERATIONS}")), Ok(()));
    assert_eq!(check("r=zbcdefXYZ,s=c2FsdA==,i=4096"), Err(AuthRefusal::Nonce));
    assert_eq!(check("r=abcdef,s=c2FsdA==,i=4096"), Err(AuthRefusal::Nonce), "the server must add its part");
    assert_eq!(check("r=abcdefXYZ,s=,i=4096"), Err(AuthRefusal::Salt));
    assert_eq!(check("r=abcdefXYZ,s=***,i=4096"), Err(AuthRefusal::Salt));
    for count in ["0", "100001", "4294967296", "-1", "x"] {
        let err = check(&format!("r=abcdefXYZ,s=c2FsdA==,i={count}")).unwrap_err();
        assert_eq!(err, AuthRefusal::Iterations(count.into()));
        assert!(err.to_string().contains("100000"), "{err}");
    }
    assert!(matches!(check("s=c2FsdA==,r=abcdefXYZ,i=1"), Err(AuthRefusal::Malformed(_))));
    assert!(matches!(check("r=abcdefXYZ,s=c2FsdA=="), Err(AuthRefusal::Malformed(_))));
}

#[test]
fn cleartext_and_md5_need_tls_or_the_opt_in() {
    let login = login();
    let requests = || [("cleartext", AuthRequest::Cleartext), ("md5", AuthRequest::Md5 { salt: [1, 2, 3, 4] })];
    let plain = upstream("postgres://h");
    for (method, request) in requests() {
        let mut out = Vec::new();
        let err = Authenticator::new(&plain, &login, false).answer(request, &mut out).unwrap_err();
        assert!(matches!(err, UpstreamError::PlaintextPassword { method: m, .. } if m == method), "{err}");
        assert!(err.to_string().contains("allow_plaintext_passwords=true"), "{err}");
        assert_eq!((err.sqlstate(), err.kind()), ("28000", "auth"));
        assert!(out.is_empty(), "nothing may go out");
    }
    let opted_in = upstream("postgres://h?allow_plaintext_passwords=true");
    for (upstream, encrypted) in [(&plain, true), (&opted_in, false)] {
        for (_, request) in requests() {
            let mut auth = Authenticator::new(upstream, &login, encrypted);
            let mut out = Vec::new();
            auth.answer(request, &mut out).unwrap();
            assert!(!body(&out).is_empty());
            auth.answer(AuthRequest::Ok, &mut Vec::new()).unwrap();
            assert!(auth.is_done());
        }
    }
    let mut out = Vec::new();
    Authenticator::new(&plain, &login, true).answer(AuthRequest::Cleartext, &mut out).unwrap();
    assert_eq!(body(&out), b"s3cret\0");
}

#[test]
fn trust_logs_in_and_refusals_are_connection_failures() {
    let (upstream, login) = (upstream("postgres://h"), login());
    let mut auth = Authenticator::new(&upstream, &login, false);
    auth.answer(AuthRequest::Ok, &mut Vec::new()).unwrap();
    assert!(auth.is_done());
    let err = UpstreamError::AuthRefused { upstream: "blue".into(), reason: AuthRefusal::BadSignature };
    assert_eq!((err.sqlstate(), err.kind()), ("08006", "auth"));
    assert!(err.to_string().contains("\"blue\""), "{err}");
}
