//! Authenticating the application client: trust (local clients only: loopback or the
//! Unix-domain socket), or SCRAM-SHA-256 and md5 against the auth file. The proxy plays the
//! server here.

use bytes::BytesMut;

use crate::proxy::auth::{AuthError, Challenge, ScramServer, SCRAM_SHA_256};
use crate::proxy::context::ProxyContext;
use crate::proxy::io::{read_message, write_all, MAX_HANDSHAKE_MESSAGE};
use crate::proxy::peer::Peer;
use crate::proxy::session::SessionError;
use crate::proxy::stream::ClientStream;
use crate::wire::backend::{self, auth_code};
use crate::wire::frontend;

/// Authenticates `user`; returns once the client has proven itself. AuthenticationOk is
/// sent later, once the upstream has accepted the session too.
pub async fn authenticate(
    stream: &mut ClientStream,
    buf: &mut BytesMut,
    user: &str,
    peer: Peer,
    ctx: &ProxyContext,
) -> Result<(), SessionError> {
    let Some(auth_file) = &ctx.auth else {
        if peer.is_local() {
            return Ok(());
        }
        return Err(SessionError::Refused {
            code: "28000",
            message: format!("trust authentication is only for local clients; {peer} needs an auth file (--auth-file)"),
        });
    };
    let failed = |reason| SessionError::AuthFailed { user: user.to_owned(), reason };
    match auth_file.challenge(user) {
        Challenge::Md5(check) => {
            let salt: [u8; 4] = rand::random();
            let mut out = Vec::new();
            backend::authentication(&mut out, auth_code::MD5, &salt);
            write_all(stream, &out).await.map_err(SessionError::ClientIo)?;
            let body = read_password(stream, buf).await?;
            let answer = frontend::parse_password(&body).map_err(SessionError::ClientProtocol)?;
            check.verify(user, salt, answer.as_bytes()).map_err(failed)
        }
        Challenge::Scram(server) => scram(stream, buf, server).await.map_err(|e| lift(e, user)),
    }
}

enum ScramFailure {
    Session(SessionError),
    Auth(AuthError),
}

fn lift(failure: ScramFailure, user: &str) -> SessionError {
    match failure {
        ScramFailure::Session(e) => e,
        ScramFailure::Auth(reason) => SessionError::AuthFailed { user: user.to_owned(), reason },
    }
}

async fn scram(stream: &mut ClientStream, buf: &mut BytesMut, mut server: ScramServer) -> Result<(), ScramFailure> {
    let mut out = Vec::new();
    backend::authentication_sasl(&mut out, &[SCRAM_SHA_256]);
    write_all(stream, &out).await.map_err(|e| ScramFailure::Session(SessionError::ClientIo(e)))?;

    let body = read_password(stream, buf).await.map_err(ScramFailure::Session)?;
    let initial =
        frontend::parse_sasl_initial(&body).map_err(|e| ScramFailure::Session(SessionError::ClientProtocol(e)))?;
    if initial.mechanism != SCRAM_SHA_256 {
        return Err(ScramFailure::Auth(AuthError::Unsupported("SASL mechanism other than SCRAM-SHA-256")));
    }
    let server_first = server.client_first(initial.data).map_err(ScramFailure::Auth)?;
    out.clear();
    backend::authentication(&mut out, auth_code::SASL_CONTINUE, &server_first);
    write_all(stream, &out).await.map_err(|e| ScramFailure::Session(SessionError::ClientIo(e)))?;

    let body = read_password(stream, buf).await.map_err(ScramFailure::Session)?;
    let server_final = server.client_final(&body).map_err(ScramFailure::Auth)?;
    out.clear();
    backend::authentication(&mut out, auth_code::SASL_FINAL, &server_final);
    write_all(stream, &out).await.map_err(|e| ScramFailure::Session(SessionError::ClientIo(e)))
}

/// Reads the client's next authentication message (tag `p`).
async fn read_password(stream: &mut ClientStream, buf: &mut BytesMut) -> Result<BytesMut, SessionError> {
    let (tag, body) = read_message(stream, buf, MAX_HANDSHAKE_MESSAGE).await.map_err(SessionError::from_client_read)?;
    if tag != frontend::PASSWORD {
        return Err(SessionError::ClientProtocol(crate::wire::WireError::UnexpectedTag(tag as char)));
    }
    Ok(body)
}
