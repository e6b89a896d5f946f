//! The Unix-domain socket listener's keys: `listen_unix` (a directory) and
//! `unix_socket_mode` (a string of octal digits, like PostgreSQL's `unix_socket_permissions`).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{err, ConfigError};

/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// PostgreSQL's default `unix_socket_permissions`: anyone on the host may connect; the
/// clients still authenticate.
const DEFAULT_MODE: u32 = 0o777;

/// The Unix-domain socket listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListenConfig {
    /// `DIR/.s.PGSQL.PORT`, PORT being the `listen` port, as PostgreSQL names its socket:
    /// libpq's `host=DIR port=PORT` finds it.
    pub path: PathBuf,
    /// The socket file's permission bits.
    pub mode: u32,
}

/// The socket's settings; `unix_socket_mode` needs `listen_unix`.
pub(super) fn unix_config(m: &super::Merged, listen: SocketAddr) -> Result<Option<UnixListenConfig>, ConfigError> {
    let mode = match m.unix_socket_mode.as_deref() {
        None => DEFAULT_MODE,
        Some(text) => parse_mode(text).ok_or_else(|| {
            err("unix_socket_mode", format!("{text:?} is not a permission mode in octal, like 0777 or 0770"))
        })?,
    };
    let Some(dir) = &m.listen_unix else {
        if m.unix_socket_mode.is_some() {
            return Err(err("unix_socket_mode", "needs listen_unix"));
        }
        return Ok(None);
    };
    if dir.as_os_str().is_empty() {
        return Err(err("listen_unix", "is empty: name the directory the socket goes in"));
    }
    let path = dir.join(format!(".s.PGSQL.{}", listen.port()));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(err(
            "listen_unix",
            format!("{} is longer than the {MAX_SOCKET_PATH} bytes a socket path may have", path.display()),
        ));
    }
    Ok(Some(UnixListenConfig { path, mode }))
}

/// `0777`, `777`, `0o770`: permission bits in octal.
fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|bits| *bits <= 0o777)
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("0777"), Some(0o777));
        assert_eq!(parse_mode("770"), Some(0o770));
        assert_eq!(parse_mode("0o700"), Some(0o700));
        assert_eq!(parse_mode("0"), Some(0));
        for bad in ["", "0888", "1777", "rwx", "0o", "07777"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }
}
