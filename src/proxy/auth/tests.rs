//! Unit tests of client authentication, run against rust-postgres's client side.

use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::password;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;

/// Runs a whole SCRAM exchange; returns the client's verdict on the server-final-message.
fn scram_exchange(
    server: &mut ScramServer,
    client_password: &str,
    binding: ChannelBinding,
) -> Result<std::io::Result<()>, AuthError> {
    let mut client = ScramSha256::new(client_password.as_bytes(), binding);
    let server_first = server.client_first(client.message())?;
    client.update(&server_first).expect("client accepts server-first");
    let server_final = server.client_final(client.message())?;
    Ok(client.finish(&server_final))
}

#[test]
fn scram_round_trip_with_right_password() {
    for binding in [ChannelBinding::unsupported, ChannelBinding::unrequested] {
        let verifier = ScramVerifier::from_password(b"s3cret", b"0123456789abcdef", 4096);
        let mut server = ScramServer::new(verifier);
        let verdict = scram_exchange(&mut server, "s3cret", binding()).expect("server accepts");
        verdict.expect("client accepts the server signature");
    }
}

#[test]
fn scram_wrong_password_is_a_mismatch() {
    for binding in [ChannelBinding::unsupported, ChannelBinding::unrequested] {
        let mut server = ScramServer::new(ScramVerifier::from_plain("s3cret"));
        let err = scram_exchange(&mut server, "guess", binding()).unwrap_err();
        assert_eq!(err, AuthError::PasswordMismatch);
        assert_eq!(err.sqlstate(), "28P01");
    }
}

#[test]
fn scram_with_verifier_from_postgres_protocol() {
    let text = password::scram_sha_256(b"pw");
    let verifier = ScramVerifier::parse(&text).unwrap();
    assert_eq!(verifier.iterations, 4096);
    assert_eq!(verifier.salt.len(), 16);
    let mut server = ScramServer::new(verifier.clone());
    scram_exchange(&mut server, "pw", ChannelBinding::unsupported()).unwrap().unwrap();
    let mut server = ScramServer::new(verifier);
    let err = scram_exchange(&mut server, "pW", ChannelBinding::unsupported()).unwrap_err();
    assert_eq!(err, AuthError::PasswordMismatch);
}

#[test]
fn from_plain_applies_saslprep_for_non_ascii() {
    // U+00A0 (no-break space) maps to a plain space under SASLprep, on both sides.
    let mut server = ScramServer::new(ScramVerifier::from_plain("p\u{a0}w\u{e9}"));
    scram_exchange(&mut server, "p\u{a0}w\u{e9}", ChannelBinding::unsupported()).unwrap().unwrap();
}

#[test]
fn unknown_user_runs_to_the_end_and_fails() {
    let mock = |user: &str| ScramVerifier::mock(user, &[7; 32], 4096, 16);
    let mut server = ScramServer::unknown_user(mock("nobody"));
    let err = scram_exchange(&mut server, "anything", ChannelBinding::unsupported()).unwrap_err();
    assert_eq!(err, AuthError::PasswordMismatch);
    // Same salt for the same user within the process, different for another user.
    assert_eq!(mock("nobody"), mock("nobody"));
    assert_ne!(mock("nobody").salt, mock("other").salt);
    // The shape asked for: a salt longer than one HMAC block too.
    let long = ScramVerifier::mock("nobody", &[7; 32], 10_000, 40);
    assert_eq!((long.iterations, long.salt.len()), (10_000, 40));
}

/// What a client is shown first: the challenge kind, and for SCRAM the salt and count.
fn shown(challenge: Challenge) -> (&'static str, Vec<u8>, u32) {
    match challenge {
        Challenge::Md5(_) => ("md5", Vec::new(), 0),
        Challenge::Scram(mut server) => {
            let first = String::from_utf8(server.client_first(b"n,,n=,r=abc").unwrap()).unwrap();
            let salt = first.split(",s=").nth(1).unwrap().split(',').next().unwrap();
            let count = first.rsplit_once(",i=").unwrap().1.parse().unwrap();
            ("scram", STANDARD.decode(salt).unwrap(), count)
        }
    }
}

#[test]
fn unknown_users_are_asked_like_listed_ones() {
    // Only SCRAM users, with PostgreSQL's default shape and another one.
    let odd = password::scram_sha_256(b"pw").replacen("$4096:", "$10000:", 1);
    let file = AuthFile::parse(&format!("\"alice\" \"{odd}\"\n\"carol\" \"carol-pw\"\n")).unwrap();
    let mut counts = std::collections::BTreeSet::new();
    for i in 0..64 {
        let user = format!("nobody{i}");
        let (kind, salt, count) = shown(file.challenge(&user));
        assert_eq!((kind, salt.len()), ("scram", 16), "{user}");
        assert_eq!(shown(file.challenge(&user)).1, salt, "{user}: the salt must not change between attempts");
        counts.insert(count);
    }
    assert_eq!(counts, [4096, 10000].into(), "unknown users take the counts of the listed ones");
    let (_, alice_salt, alice_count) = shown(file.challenge("alice"));
    assert_eq!((alice_salt.len(), alice_count), (16, 10000));

    // md5 and SCRAM users: unknown names get both kinds, each name always the same one.
    let md5 = password::md5(b"pw", "bob");
    let file = AuthFile::parse(&format!("\"alice\" \"{odd}\"\n\"bob\" \"{md5}\"\n")).unwrap();
    assert_eq!(shown(file.challenge("bob")).0, "md5");
    let kinds: std::collections::BTreeSet<_> = (0..64)
        .map(|i| {
            let user = format!("nobody{i}");
            let kind = shown(file.challenge(&user)).0;
            assert_eq!(shown(file.challenge(&user)).0, kind, "{user}");
            kind
        })
        .collect();
    assert_eq!(kinds, ["md5", "scram"].into());

    // An empty file still runs SCRAM to the end.
    let (kind, salt, count) = shown(AuthFile::parse("").unwrap().challenge("nobody"));
    assert_eq!((kind, salt.len(), count), ("scram", 16, 4096));
}

#[test]
fn unknown_users_fail_like_a_wrong_password() {
    let md5 = password::md5(b"pw", "bob");
    let file = AuthFile::parse(&format!("\"bob\" \"{md5}\"\n\"carol\" \"pw\"\n")).unwrap();
    let salt = [1, 2, 3, 4];
    for i in 0..16 {
        let user = format!("nobody{i}");
        let err = match file.challenge(&user) {
            Challenge::Md5(check) => check.verify(&user, salt, md5_hash(user.as_bytes(), b"pw", salt).as_bytes()),
            Challenge::Scram(mut server) => {
                scram_exchange(&mut server, "pw", ChannelBinding::unsupported()).map(|_| ())
            }
        };
        assert_eq!(err, Err(AuthError::PasswordMismatch), "{user}");
    }
    let Challenge::Md5(check) = file.challenge("bob") else { panic!("bob has an md5 secret") };
    assert_eq!(check.verify("bob", salt, md5_hash(b"bob", b"pw", salt).as_bytes()), Ok(()));
    assert_eq!(check.verify("bob", salt, md5_hash(b"bob", b"pW", salt).as_bytes()), Err(AuthError::PasswordMismatch));
}

#[test]
fn scram_rejects_channel_binding_and_bad_messages() {
    let verifier = || ScramVerifier::from_password(b"pw", b"salt", 1);
    let first = |msg: &[u8]| ScramServer::new(verifier()).client_first(msg).unwrap_err();
    assert_eq!(first(b"p=tls-server-end-point,,n=,r=abc"), AuthError::ChannelBindingUnsupported);
    assert!(matches!(first(b"n,a=admin,n=,r=abc"), AuthError::Unsupported(_)));
    assert!(matches!(first(b"n,,m=ext,n=,r=abc"), AuthError::Unsupported(_)));
    assert!(matches!(first(b"x,,n=,r=abc"), AuthError::Malformed(_)));
    assert!(matches!(first(b"n,,n=,r="), AuthError::Malformed(_)));
    assert_eq!(first(b"n,,n=").sqlstate(), "08P01");

    // Out of order: final before first, and first twice.
    let mut server = ScramServer::new(verifier());
    assert!(matches!(server.client_final(b"c=biws,r=x,p=AA=="), Err(AuthError::OutOfOrder(_))));
    let mut server = ScramServer::new(verifier());
    server.client_first(b"n,,n=,r=abc").unwrap();
    assert!(matches!(server.client_first(b"n,,n=,r=abc"), Err(AuthError::OutOfOrder(_))));
}

#[test]
fn scram_checks_nonce_and_binding_echo() {
    let proof = "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let start = |gs2: &str| {
        let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 1));
        let reply = server.client_first(format!("{gs2}n=user,r=abc").as_bytes()).unwrap();
        let reply = String::from_utf8(reply).unwrap();
        let nonce = reply.split(',').next().unwrap().strip_prefix("r=").unwrap().to_owned();
        assert!(nonce.starts_with("abc") && nonce.len() >= 3 + 24);
        (server, nonce)
    };
    let (mut server, _) = start("n,,");
    let msg = format!("c=biws,r=abcWRONG,{proof}");
    assert_eq!(server.client_final(msg.as_bytes()), Err(AuthError::NonceMismatch));
    // `y,,` must be echoed as `eSws`, not `biws`.
    let (mut server, nonce) = start("y,,");
    let msg = format!("c=biws,r={nonce},{proof}");
    assert_eq!(server.client_final(msg.as_bytes()), Err(AuthError::ChannelBindingMismatch));
    let (mut server, nonce) = start("y,,");
    let msg = format!("c=eSws,r={nonce},{proof}");
    assert_eq!(server.client_final(msg.as_bytes()), Err(AuthError::PasswordMismatch));
    let (mut server, nonce) = start("n,,");
    let msg = format!("c=biws,r={nonce},p=short");
    assert!(matches!(server.client_final(msg.as_bytes()), Err(AuthError::Malformed(_))));
}

#[test]
fn verifier_parse_errors_do_not_echo_the_text() {
    let good = password::scram_sha_256(b"pw");
    let truncated = &good[..good.len() - 4];
    for bad in [
        "SCRAM-SHA-256$4096:c2FsdA==",
        "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-1$4096:c2FsdA==$AAAA:AAAA",
        truncated,
    ] {
        let err = ScramVerifier::parse(bad).unwrap_err();
        assert!(matches!(err, AuthError::InvalidVerifier(_)), "{bad}");
        assert!(!err.to_string().contains("c2FsdA"), "{err}");
    }
}

#[test]
fn md5_matches_the_postgresql_computation() {
    let salt = [0x2a, 0x3d, 0x8f, 0xe0];
    let stored = password::md5(b"pw", "alice");
    let secret = Secret::parse(&stored).unwrap();
    assert!(matches!(secret, Secret::Md5(_)));
    let response = md5_hash(b"alice", b"pw", salt);
    assert!(md5_response_matches(&secret, "alice", salt, response.as_bytes()));
    let mut with_nul = response.clone().into_bytes();
    with_nul.push(0);
    assert!(md5_response_matches(&secret, "alice", salt, &with_nul));
    // Plain secrets work too; wrong password, user or salt do not.
    let plain = Secret::Plain("pw".to_owned());
    assert!(md5_response_matches(&plain, "alice", salt, response.as_bytes()));
    let wrong = md5_hash(b"alice", b"pW", salt);
    assert!(!md5_response_matches(&secret, "alice", salt, wrong.as_bytes()));
    assert!(!md5_response_matches(&plain, "bob", salt, response.as_bytes()));
    assert!(!md5_response_matches(&secret, "alice", [0; 4], response.as_bytes()));
    // A SCRAM verifier cannot answer md5.
    let scram = Secret::Scram(ScramVerifier::from_plain("pw"));
    assert!(!md5_response_matches(&scram, "alice", salt, response.as_bytes()));
    assert!(scram.scram_verifier().is_some() && secret.scram_verifier().is_none());
}

#[test]
fn auth_file_parses_quotes_comments_and_all_secret_kinds() {
    let scram = password::scram_sha_256(b"pw");
    let md5 = password::md5(b"pw", "bob");
    let text = format!(
        "; pgbouncer style comment\n\
         # another comment\n\
         \n\
         \"alice\" \"{scram}\"\n\
         \t\"bob\"   \"{md5}\"  trailing fields are ignored\r\n\
         \"we\"\"ird\" \"pa\"\"ss word\"\n"
    );
    let file = AuthFile::parse(&text).unwrap();
    assert_eq!(file.len(), 3);
    assert!(!file.is_empty());
    assert!(matches!(file.get("alice"), Some(Secret::Scram(_))));
    assert!(matches!(file.get("bob"), Some(Secret::Md5(_))));
    assert_eq!(file.get("we\"ird"), Some(&Secret::Plain("pa\"ss word".to_owned())));
    assert_eq!(file.get("carol"), None);
    assert!(AuthFile::parse("# nothing\n").unwrap().is_empty());
}

#[test]
fn auth_file_errors_carry_line_numbers_and_no_secret() {
    let cases = [
        ("\"a\" \"x\"\nalice \"hunter2\"\n", 2),
        ("\n\n\"alice\" \"hunter2\n", 3),
        ("\"alice\"\n", 1),
        ("\"alice\" hunter2\n", 1),
        ("\"\" \"hunter2\"\n", 1),
        ("\"alice\" \"\"\n", 1),
        ("\"alice\" \"md5hunter2hunter2hunter2hunter2hunt\"\n", 1),
        ("\"alice\" \"SCRAM-SHA-256$4096:hunter2\"\n", 1),
        ("\"alice\" \"hunter2\"\n# c\n\"alice\" \"hunter2\"\n", 3),
    ];
    for (text, line) in cases {
        let err = AuthFile::parse(text).unwrap_err();
        assert_eq!(err.line(), Some(line), "{text:?}: {err}");
        let message = err.to_string();
        assert!(message.contains(&format!("line {line}")), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn auth_file_load_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("userlist.txt");
    let err = AuthFile::load(&path).unwrap_err();
    assert!(err.to_string().contains("userlist.txt"), "{err}");
    std::fs::write(&path, "\"alice\" \"pw\"\n\"bob\"\n").unwrap();
    let err = AuthFile::load(&path).unwrap_err();
    assert!(err.to_string().contains("userlist.txt line 2"), "{err}");
    std::fs::write(&path, "\"alice\" \"pw\"\n").unwrap();
    assert_eq!(AuthFile::load(&path).unwrap().len(), 1);
}

#[test]
fn debug_output_hides_secret_material() {
    let plain = Secret::Plain("hunter2".to_owned());
    assert_eq!(format!("{plain:?}"), "Secret::Plain(..)");
    let verifier = ScramVerifier::parse(&password::scram_sha_256(b"pw")).unwrap();
    let shown = format!("{:?}", Secret::Scram(verifier.clone()));
    assert_eq!(shown, "Secret::Scram(..)");
    assert!(!format!("{verifier:?}").contains("stored_key"));
    let file = AuthFile::parse("\"alice\" \"hunter2\"\n").unwrap();
    assert!(!format!("{file:?}").contains("hunter2"));
    assert!(!format!("{:?}", ScramServer::new(verifier)).contains("key"));
    let Challenge::Md5(check) = file_with_md5().challenge("bob") else { panic!("md5 challenge") };
    assert_eq!(format!("{check:?}"), "Md5Check { .. }");
}

fn file_with_md5() -> AuthFile {
    AuthFile::parse(&format!("\"bob\" \"{}\"\n", password::md5(b"pw", "bob"))).unwrap()
}
