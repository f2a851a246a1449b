//! The embedded state file holds every merchant's tokens: `els connect` and `els serve`
//! create it, and its `-wal` and `-shm` files, readable by their owner only (`0600`), and an
//! existing file open to others is tightened with a warning (issue #17).
#![cfg(unix)]

mod common;

use common::{
    Merchant, Serving, command, connect_by_name, els, file_mode, free_listen_addr, state_files,
    wait_listening,
};
use els_sandbox::{Sandbox, SandboxConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn companion(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

fn assert_owner_only(files: &[PathBuf], after: &str) {
    for f in files {
        assert_eq!(
            file_mode(f),
            0o600,
            "{} after {after}: mode {:04o}",
            f.display(),
            file_mode(f)
        );
    }
}

/// `els serve` on `db` (the built-in sandbox), once it listens.
async fn serving(sb: &Sandbox, db: &str) -> Serving {
    let listen = free_listen_addr();
    let child = command(sb, &sb.config().ecwid_token)
        .args(["serve", "--db", db, "--listen", &listen])
        .args([
            "--inventory-interval-secs",
            "0",
            "--sweep-interval-secs",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("els serve starts");
    let serving = Serving(child);
    wait_listening(&listen).await;
    serving
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_serve_create_the_state_file_and_its_companions_owner_only() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();

    // `els connect` creates the file.
    let connected = dir.path().join("connected.sqlite");
    connect_by_name(&sb, &Merchant::of(&sb), connected.to_str().unwrap());
    let files = state_files(&connected);
    assert_owner_only(&files, "els connect");

    // `els serve` creates it; while it runs, WAL mode keeps all three files.
    let served = dir.path().join("served.sqlite");
    let running = serving(&sb, served.to_str().unwrap()).await;
    let files = state_files(&served);
    assert_eq!(files.len(), 3, "the -wal and -shm files exist: {files:?}");
    assert_owner_only(&files, "els serve (running)");
    drop(running);
    assert_owner_only(&state_files(&served), "els serve (killed)");

    // The demo, start to end.
    let demo = dir.path().join("demo.sqlite");
    let out = command(&sb, &sb.config().ecwid_token)
        .args(["serve", "--demo", "--exit-after-demo", "--db"])
        .arg(&demo)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("els serve --demo runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_owner_only(&state_files(&demo), "els serve --demo --exit-after-demo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_open_to_others_is_tightened_with_a_warning_naming_it() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    connect_by_name(&sb, &Merchant::of(&sb), db);

    // As an older version, or a careless copy, left it.
    std::fs::set_permissions(&db_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out, err) = els(&sb, &["status", "--db", db], &sb.config().ecwid_token);
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains(&format!("{db} was open to other users (mode 0644)")),
        "{err}"
    );
    assert!(
        err.contains("WARN") && err.contains("now 0600"),
        "a warning: {err}"
    );
    assert_owner_only(&state_files(&db_path), "els status on a 0644 file");
    // Tightened once: the next command says nothing.
    let (ok, out, err) = els(&sb, &["status", "--db", db], &sb.config().ecwid_token);
    assert!(ok && !err.contains("open to other users"), "{out}\n{err}");

    // A process killed mid-run leaves its -wal and -shm files, with content (SQLite itself
    // fixes the mode of an empty companion only). Opened to others, all three are tightened.
    let running = serving(&sb, db).await;
    drop(running); // SIGKILL
    let wal = companion(&db_path, "-wal");
    let shm = companion(&db_path, "-shm");
    assert!(wal.exists() && shm.exists(), "a killed serve left them");
    for f in [&db_path, &wal, &shm] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (ok, out, err) = els(&sb, &["status", "--db", db], &sb.config().ecwid_token);
    assert!(ok, "{out}\n{err}");
    for f in [&db_path, &wal, &shm] {
        assert!(
            err.contains(&format!(
                "{} was open to other users (mode 0644)",
                f.display()
            )),
            "{}: {err}",
            f.display()
        );
    }
    assert_owner_only(&state_files(&db_path), "els status after a crash");
}
