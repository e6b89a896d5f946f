//! The installations of PostgreSQL's client programs on this machine: every directory on
//! PATH and every `/usr/lib/postgresql/*/bin` (Debian's layout) that holds both pg_dump
//! and pg_restore, each asked its version.
//!
//! A pg_dump that is a link to a program of another name is a dispatcher (Debian's
//! `pg_wrapper` in /usr/bin picks a version at each run, by cluster and environment): its
//! version cannot be known beforehand, so its directory is left out. The installations it
//! dispatches to are the `/usr/lib/postgresql/*/bin` ones, which are considered themselves.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::choice::Installation;
use super::version::ProgramVersion;

/// Where Debian and Ubuntu install each major version's programs (`<root>/<major>/bin`).
pub const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Every installation on this machine (PATH's, then Debian's), with their versions.
pub async fn find() -> Vec<Installation> {
    let path = std::env::var_os("PATH");
    probe(candidate_dirs(path.as_deref(), Path::new(DEBIAN_ROOT))).await
}

/// Asks each directory's pg_dump and pg_restore their versions.
pub async fn probe(dirs: Vec<PathBuf>) -> Vec<Installation> {
    let mut found = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let pg_dump = ProgramVersion::probe(dir.join("pg_dump")).await;
        let pg_restore = ProgramVersion::probe(dir.join("pg_restore")).await;
        found.push(Installation { dir, pg_dump, pg_restore });
    }
    found
}

/// The directories holding both programs, in order of preference: those on `path` in its
/// order, then `<debian_root>/*/bin` from the newest version down; each installation once
/// (a directory reached twice, by a link say, counts where it is first met).
pub fn candidate_dirs(path: Option<&OsStr>, debian_root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    dirs.retain(|dir| dir.is_absolute());
    dirs.extend(debian_bin_dirs(debian_root).into_iter().rev().map(|(_, bin)| bin));
    let mut seen = HashSet::new();
    dirs.into_iter()
        .filter(|dir| match (real_program(dir, "pg_dump"), real_program(dir, "pg_restore")) {
            (Some(dump), Some(_)) => seen.insert(dump),
            _ => false,
        })
        .collect()
}

/// `<root>/<major>/bin` for every major version installed there, oldest first.
pub fn debian_bin_dirs(root: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    dirs.sort();
    dirs
}

/// Where `dir/name` really is, links followed, when it is a file still called `name`.
fn real_program(dir: &Path, name: &str) -> Option<PathBuf> {
    let real = std::fs::canonicalize(dir.join(name)).ok()?;
    (real.is_file() && real.file_name() == Some(OsStr::new(name))).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn programs(dir: &Path, names: &[&str]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for name in names {
            std::fs::write(dir.join(name), "").unwrap();
        }
        dir.to_path_buf()
    }

    #[test]
    fn path_comes_first_then_debians_newest_down_each_once_and_no_dispatcher() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let local = programs(&r.join("local/bin"), &["pg_dump", "pg_restore"]);
        let dump_only = programs(&r.join("dump-only"), &["pg_dump"]);
        let debian = r.join("usr/lib/postgresql");
        let v15 = programs(&debian.join("15/bin"), &["pg_dump", "pg_restore", "pg_dumpall"]);
        let v17 = programs(&debian.join("17/bin"), &["pg_dump", "pg_restore"]);
        programs(&debian.join("not-a-version/bin"), &["pg_dump", "pg_restore"]);
        // A dispatcher, as Debian's /usr/bin has: both names link to one program of another name.
        let wrapper = programs(&r.join("share"), &["pg_wrapper"]).join("pg_wrapper");
        let usr_bin = r.join("usr/bin");
        std::fs::create_dir_all(&usr_bin).unwrap();
        symlink(&wrapper, usr_bin.join("pg_dump")).unwrap();
        symlink(&wrapper, usr_bin.join("pg_restore")).unwrap();
        // A link to a real installation's directory is that installation.
        let alias = r.join("alias");
        symlink(&v15, &alias).unwrap();

        let path = std::env::join_paths([&usr_bin, &alias, &local, &dump_only, Path::new("relative")]).unwrap();
        let dirs = candidate_dirs(Some(&path), &debian);
        assert_eq!(dirs, [alias, local, v17]);
        assert_eq!(candidate_dirs(None, &r.join("nothing")), Vec::<PathBuf>::new());
    }
}
