//! Why a session ended early, which side caused it, and what the client is told.

use crate::proxy::auth::AuthError;
use crate::proxy::io::ReadError;
use crate::proxy::upstream::UpstreamError;
use crate::wire::WireError;

/// A session failure before or during forwarding.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client connection failed: {0}")]
    ClientIo(std::io::Error),
    #[error("protocol violation by client: {0}")]
    ClientProtocol(WireError),
    #[error("TLS handshake with client failed: {0}")]
    ClientTls(std::io::Error),
    /// A request the proxy declines, with the SQLSTATE to answer.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// A limit on clients turned the client away (too long logging in, too many clients).
    #[error("{message}")]
    Shed { code: &'static str, message: String },
    #[error("password authentication failed for user \"{user}\"")]
    AuthFailed { user: String, reason: AuthError },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The session's state could not be captured or replayed.
    #[error("session state: {0}")]
    State(String),
    /// Moving the session to another server failed; the client gets FATAL.
    #[error("moving the session to another server failed: {0}")]
    MoveFailed(Box<SessionError>),
}

impl SessionError {
    /// Maps a failed read from the client.
    pub fn from_client_read(err: ReadError) -> SessionError {
        match err {
            ReadError::Closed => SessionError::ClientClosed,
            ReadError::Io(e) => SessionError::ClientIo(e),
            ReadError::Wire(e) => SessionError::ClientProtocol(e),
        }
    }

    /// The SQLSTATE and message for the client's ErrorResponse, when one can be sent.
    pub fn client_response(&self) -> Option<(&str, String)> {
        match self {
            SessionError::ClientClosed | SessionError::ClientIo(_) | SessionError::ClientTls(_) => None,
            SessionError::ClientProtocol(e) => Some(("08P01", format!("pgflip: {e}"))),
            SessionError::Refused { code, message } | SessionError::Shed { code, message } => {
                Some((code, format!("pgflip: {message}")))
            }
            SessionError::AuthFailed { reason, .. } => Some((reason.sqlstate(), self.to_string())),
            SessionError::Upstream(e) => Some((e.sqlstate(), format!("pgflip: {e}"))),
            SessionError::MoveFailed(_) => Some(("08006", format!("pgflip: {self}"))),
            SessionError::State(_) => Some(("08006", format!("pgflip: {self}"))),
        }
    }

    /// Which side caused the failure, for logs: `client`, `upstream` or `proxy`.
    pub fn side(&self) -> &'static str {
        match self {
            SessionError::Upstream(_) | SessionError::MoveFailed(_) => "upstream",
            SessionError::Refused { .. } | SessionError::Shed { .. } | SessionError::State(_) => "proxy",
            _ => "client",
        }
    }
}
