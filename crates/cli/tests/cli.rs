//! The `els` binary as an operator runs it: the demo, then status and replay on its SQLite file.

use std::process::Command;

fn els(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_els"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("els runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_then_status_and_replay_on_the_embedded_file() {
    let dir = std::env::temp_dir().join(format!("els-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("els.sqlite");
    let db = db.to_str().unwrap();

    let (ok, out, err) = els(&[
        "serve",
        "--db",
        db,
        "--listen",
        "127.0.0.1:0",
        "--demo",
        "--exit-after-demo",
    ]);
    assert!(ok, "demo failed:\n{out}\n{err}");
    assert!(out.contains("(CLOSED), invoice ECWID-1003-"), "{out}");
    assert!(out.contains("state      POSTED"), "{out}");
    assert!(out.contains("\"POSTED\": 2"), "{out}");
    assert!(
        out.contains("Ecwid order writes by the connector: 0"),
        "{out}"
    );
    let order_id = out
        .split("Ecwid order ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .expect("the demo names its order")
        .to_string();

    let (ok, out, err) = els(&["status", "--db", db]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["POSTED", "2"]),
        "{out}"
    );

    let (ok, out, err) = els(&["status", "--db", db, "--order", &order_id]);
    assert!(ok, "{err}");
    assert!(
        out.contains("state      POSTED")
            && out.contains("history")
            && out.contains("posted as Lightspeed sale"),
        "{out}"
    );

    // Replaying a posted order does nothing; replay by reason finds nothing parked.
    let (ok, out, _) = els(&["replay", "--db", db, "--order", &order_id]);
    assert!(ok && out.contains("NotReplayable(Posted)"), "{out}");
    let (ok, out, _) = els(&["replay", "--db", db, "--reason", "UNKNOWN_SKU"]);
    assert!(ok && out.contains("requeued 0 order(s)"), "{out}");

    // Bad input gets a clear error.
    let (ok, _, err) = els(&["replay", "--db", db, "--reason", "NOT_A_CODE"]);
    assert!(
        !ok && err.contains("unknown reason code NOT_A_CODE"),
        "{err}"
    );
    let (ok, _, err) = els(&["status", "--db", db, "--order", "NOPE"]);
    assert!(!ok && err.contains("not in the ledger"), "{err}");
    let (ok, _, err) = els(&["status", "--backend", "aws"]);
    assert!(!ok && err.contains("--table"), "{err}");

    std::fs::remove_dir_all(&dir).ok();
}
