//! The admin API's bearer token when no `admin_token_file` is configured: the sidecar
//! makes one at start and keeps it in a file only its user can read, at a path per admin
//! port, where `pgflip ctl`, the controller and the demo on the same host find it.
//!
//! The path is `$XDG_RUNTIME_DIR/pgflip/admin-PORT.token` when `XDG_RUNTIME_DIR` is set
//! (to an absolute path), else `/tmp/pgflip-UID/admin-PORT.token`, UID being the effective
//! user id. The directory is made with mode 0700; one that is a symlink, belongs to another
//! user or lets others in is refused, so that nobody else can read or plant the token.
//! The sidecar writes the file only once it holds the port, and removes it when it stops.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the token file could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot make the directory {} for the admin token: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is not a directory of this user's (uid {uid}) that only it can enter ({found}); \
         remove it, set XDG_RUNTIME_DIR, or give --admin-token-file FILE",
        path.display()
    )]
    UnsafeDir { path: PathBuf, uid: u32, found: String },
    #[error("cannot write the admin token file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the admin token file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no random bytes for the admin token: {0}")]
    Random(String),
}

/// Where the token of the admin API on `port` is kept when the sidecar made it.
pub fn default_path(port: u16) -> PathBuf {
    default_dir().join(format!("admin-{port}.token"))
}

fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|dir| dir.is_absolute()) {
        Some(runtime) => runtime.join("pgflip"),
        None => PathBuf::from(format!("/tmp/pgflip-{}", uid())),
    }
}

fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// True for `localhost` and loopback addresses: callers on the same host as the sidecar,
/// which may look for its token file.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The token a sidecar made for `port`, when its file is there: `None` when there is no
/// such file (the sidecar has a configured token, or runs as another user, or elsewhere).
pub fn read_default(port: u16) -> Result<Option<String>, TokenFileError> {
    let path = default_path(port);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|token| !token.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenFileError::Read { path, source }),
    }
}

/// A token made at start, and its file; the file is removed on drop.
#[derive(Debug)]
pub struct MadeToken {
    pub token: String,
    pub path: PathBuf,
}

impl MadeToken {
    /// Makes a random token for the admin API on `port` and writes it to
    /// [`default_path`], replacing a file a stopped sidecar left there.
    pub fn create(port: u16) -> Result<MadeToken, TokenFileError> {
        let dir = default_dir();
        private_dir(&dir)?;
        let token = random_token()?;
        let path = dir.join(format!("admin-{port}.token"));
        // Written whole under another name, then renamed: a reader never sees half a token.
        let temp = dir.join(format!(".admin-{port}.token.{}", std::process::id()));
        let write_err = |source| TokenFileError::Write { path: path.clone(), source };
        let _ = std::fs::remove_file(&temp);
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(write_err)?;
        file.write_all(format!("{token}\n").as_bytes()).map_err(write_err)?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(write_err)?;
        Ok(MadeToken { token, path })
    }
}

impl Drop for MadeToken {
    fn drop(&mut self) {
        // Only our own: a sidecar started since on the same port wrote its own.
        if read_default_at(&self.path).as_deref() == Some(self.token.as_str()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_default_at(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| text.trim().to_owned())
}

/// Removes a token file a stopped sidecar left for `port`: the sidecar that now holds the
/// port has a configured token, and clients must not send the stale one.
pub fn remove_stale(port: u16) {
    let dir = default_dir();
    if check_private(&dir).is_ok() {
        let _ = std::fs::remove_file(dir.join(format!("admin-{port}.token")));
    }
}

/// Makes `dir` (mode 0700) unless it exists, then checks that it is safe to keep a secret in.
fn private_dir(dir: &Path) -> Result<(), TokenFileError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(TokenFileError::CreateDir { path: dir.to_owned(), source }),
    }
    check_private(dir)
}

/// A real directory (not a symlink), owned by this user, that no other user may enter.
fn check_private(dir: &Path) -> Result<(), TokenFileError> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(|source| TokenFileError::CreateDir { path: dir.to_owned(), source })?;
    let unsafe_dir = |found: String| TokenFileError::UnsafeDir { path: dir.to_owned(), uid: uid(), found };
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("not a directory".to_owned()));
    }
    if meta.uid() != uid() {
        return Err(unsafe_dir(format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_dir(format!("mode {:04o}", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// 32 bytes from the operating system's generator, as 64 hex digits.
fn random_token() -> Result<String, TokenFileError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| TokenFileError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "0.0.0.0", "::"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_directory_others_can_enter_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("pgflip");
        private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let e = private_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("mode 0755"), "{e}");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = check_private(&link).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
