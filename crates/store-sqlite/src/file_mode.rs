//! Only the owner may read the state file: it holds every merchant's tokens.
//!
//! The database file is created by us with mode `0600` before SQLite opens it (SQLite's own
//! default is `0644` less the umask, readable by every local user). SQLite creates the `-wal`,
//! `-shm` and `-journal` files beside it with the database file's permissions (on unix,
//! whatever the umask), so they are `0600` too. A file or companion that already exists with
//! wider permissions (group or other bits) is tightened to its owner's bits, with a warning
//! naming the path; one we may not change (another user's) is left as it is, with a warning.
//!
//! On other targets nothing is done.

use std::path::Path;

/// What SQLite keeps beside the database file, by suffix.
#[cfg_attr(not(unix), allow(dead_code))]
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Whether `path` names a file on disk: not `:memory:`, not `""` (a temporary database) and
/// not a `file:` URI (whose options we do not parse).
#[cfg_attr(not(unix), allow(dead_code))]
fn is_plain_file(path: &Path) -> bool {
    let s = path.as_os_str();
    !(s.is_empty() || s == ":memory:" || path.to_string_lossy().starts_with("file:"))
}

/// Before SQLite opens `path`: creates the file with mode `0600` if there is none, else
/// tightens it and any companion left from an earlier run.
pub(crate) fn before_open(path: &Path) {
    #[cfg(unix)]
    unix::before_open(path);
    #[cfg(not(unix))]
    let _ = path;
}

/// After SQLite opened `path` (and created its companions): tightens whatever is wider than
/// `0600`, which SQLite should not have done.
pub(crate) fn after_open(path: &Path) {
    #[cfg(unix)]
    unix::after_open(path);
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(unix)]
mod unix {
    use super::{COMPANIONS, is_plain_file};
    use std::ffi::OsString;
    use std::fs::{self, OpenOptions, Permissions};
    use std::io::ErrorKind;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// The owner's read and write bits.
    const OWNER_ONLY: u32 = 0o600;

    pub(super) fn before_open(path: &Path) {
        if !is_plain_file(path) {
            return;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OWNER_ONLY)
            .open(path)
        {
            // The umask may only have removed bits; say exactly what we mean anyway.
            Ok(file) => {
                if let Err(e) = file.set_permissions(Permissions::from_mode(OWNER_ONLY)) {
                    tracing::warn!(
                        "cannot set the permissions of {} to 0600: {e}",
                        path.display()
                    );
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten(path),
            // A missing directory and the like: SQLite's open reports it.
            Err(_) => {}
        }
        for companion in companions(path) {
            tighten(&companion);
        }
    }

    pub(super) fn after_open(path: &Path) {
        if !is_plain_file(path) {
            return;
        }
        tighten(path);
        for companion in companions(path) {
            tighten(&companion);
        }
    }

    fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
        COMPANIONS.iter().map(move |suffix| {
            let mut name = OsString::from(path.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        })
    }

    /// Removes the group and other bits of `path`, if it exists, with a warning.
    fn tighten(path: &Path) {
        let mode = match fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta.permissions().mode() & 0o7777,
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!("cannot read the permissions of {}: {e}", path.display());
                return;
            }
        };
        if mode & 0o077 == 0 {
            return;
        }
        let tightened = mode & 0o700;
        match fs::set_permissions(path, Permissions::from_mode(tightened)) {
            Ok(()) => tracing::warn!(
                "{} was open to other users (mode {mode:04o}); its mode is now \
                 {tightened:04o}, because it holds merchant tokens",
                path.display()
            ),
            // Deleted meanwhile (SQLite removes its -wal and -shm files on close).
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                "{} is open to other users (mode {mode:04o}) and holds merchant tokens, \
                 but its permissions cannot be changed: {e}",
                path.display()
            ),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", path.display()))
    }

    #[test]
    fn a_new_file_and_its_companions_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.sqlite");
        let store = SqliteStore::open(&db).unwrap();
        // WAL mode keeps -wal and -shm while a connection is open.
        for p in [
            db.clone(),
            with_suffix(&db, "-wal"),
            with_suffix(&db, "-shm"),
        ] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(store);
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn an_existing_wide_file_and_companions_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.sqlite");
        drop(SqliteStore::open(&db).unwrap());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&db).unwrap();
        for p in [
            db.clone(),
            with_suffix(&db, "-wal"),
            with_suffix(&db, "-shm"),
        ] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(store);

        // Companions left behind by a crash of an older version, with content (SQLite itself
        // only fixes the mode of a companion it finds empty).
        let wal = with_suffix(&db, "-wal");
        let shm = with_suffix(&db, "-shm");
        for p in [&db, &wal, &shm] {
            std::fs::write(p, b"not empty").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        before_open(&db);
        for p in [&db, &wal, &shm] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
    }

    #[test]
    fn the_owner_bits_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.sqlite");
        drop(SqliteStore::open(&db).unwrap());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
        before_open(&db);
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o440)).unwrap();
        before_open(&db);
        assert_eq!(mode(&db), 0o400, "a read-only file stays read-only");
    }

    #[test]
    fn memory_and_uri_names_are_left_alone() {
        assert!(!is_plain_file(Path::new(":memory:")));
        assert!(!is_plain_file(Path::new("")));
        assert!(!is_plain_file(Path::new("file:x.db?mode=ro")));
        assert!(is_plain_file(Path::new("els.sqlite")));
    }
}
