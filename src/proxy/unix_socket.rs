//! The Unix-domain socket clients can connect to beside TCP: `DIR/.s.PGSQL.PORT`, the name
//! PostgreSQL and PgBouncer give theirs, so `psql "host=DIR port=PORT"` and every
//! libpq-based driver find it. A socket file left by a run that crashed is replaced; one
//! that a live process still listens on is not. The file is removed when the socket is
//! dropped, unless something else has replaced it meanwhile.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::proxy::peer::Peer;

/// Why the socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UnixSocketError {
    #[error("{}: another process is listening on this socket (a second pgflip, or PostgreSQL?)", path.display())]
    InUse { path: PathBuf },
    #[error("{}: exists and is not a socket; remove it or choose another listen_unix directory", path.display())]
    NotASocket { path: PathBuf },
    #[error("{}: {what}: {source}", path.display())]
    Io { path: PathBuf, what: &'static str, source: io::Error },
}

/// A bound, listening Unix-domain socket; its file is removed on drop.
#[derive(Debug)]
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The file's device and inode, to remove only the file this socket made.
    file: (u64, u64),
}

impl UnixSocket {
    /// Binds `path` with permission bits `mode`, replacing a stale socket file.
    pub fn bind(path: &Path, mode: u32) -> Result<UnixSocket, UnixSocketError> {
        let io_err = |what| move |source| UnixSocketError::Io { path: path.to_owned(), what, source };
        remove_stale(path)?;
        let listener = UnixListener::bind(path).map_err(io_err("cannot listen"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("cannot set the socket's permissions"))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("cannot read the socket file"))?;
        Ok(UnixSocket { listener, path: path.to_owned(), file: (meta.dev(), meta.ino()) })
    }

    /// The next client, with its pid when the kernel tells it.
    pub async fn accept(&self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = self.listener.accept().await?;
        let pid = stream.peer_cred().ok().and_then(|cred| cred.pid());
        Ok((stream, Peer::Unix { pid }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket file nobody listens on; refuses a live socket or another kind of file.
fn remove_stale(path: &Path) -> Result<(), UnixSocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(UnixSocketError::Io { path: path.to_owned(), what: "cannot read", source }),
    };
    if !meta.file_type().is_socket() {
        return Err(UnixSocketError::NotASocket { path: path.to_owned() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(UnixSocketError::InUse { path: path.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path).map_err(|source| {
            UnixSocketError::Io { path: path.to_owned(), what: "cannot remove the stale socket", source }
        }),
        Err(source) => {
            Err(UnixSocketError::Io { path: path.to_owned(), what: "cannot tell whether it is in use", source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_is_not_and_drop_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.6432");
        // A stale socket: bound by a listener that is gone, its file left behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let socket = UnixSocket::bind(&path, 0o770).expect("replaces the stale file");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o770);
        let second = UnixSocket::bind(&path, 0o777).expect_err("in use");
        assert!(matches!(second, UnixSocketError::InUse { .. }), "{second}");
        let client = UnixStream::connect(&path).await.expect("connect");
        let (_stream, peer) = socket.accept().await.expect("accept");
        assert_eq!(peer, Peer::Unix { pid: Some(std::process::id() as i32) });
        drop(client);
        drop(socket);
        assert!(!path.exists(), "removed on drop");

        std::fs::write(&path, "not a socket").unwrap();
        let refused = UnixSocket::bind(&path, 0o777).expect_err("a regular file");
        assert!(matches!(refused, UnixSocketError::NotASocket { .. }), "{refused}");
        assert!(path.exists(), "a file that is not a socket is left alone");
    }
}
