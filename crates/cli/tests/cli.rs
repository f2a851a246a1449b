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
        out.contains("Lightspeed return ") && out.contains("(CLOSED) for sale"),
        "the demo's refund becomes a closed return:\n{out}"
    );
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
            && out.contains("posted as Lightspeed sale")
            && out.contains("return     1")
            && out.contains("restock"),
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
    let (ok, _, err) = els(&["status", "--db", db, "--store", "0"]);
    assert!(!ok && err.contains("is not an Ecwid store id"), "{err}");
    let (ok, _, err) = els(&["replay", "--db", db, "--store", "12ab", "--order", "X"]);
    assert!(!ok && err.contains("is not an Ecwid store id"), "{err}");
    let (ok, _, err) = els(&["status", "--backend", "aws"]);
    assert!(!ok && err.contains("--table"), "{err}");

    std::fs::remove_dir_all(&dir).ok();
}

/// The long help of `els <command>`, one entry per flag: its name and its whole text (help,
/// env name, default), with no API variables set so no values show.
fn flag_help(command: &str) -> std::collections::BTreeMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_els"))
        .args([command, "--help"])
        .env_clear()
        .output()
        .expect("els runs");
    assert!(out.status.success());
    let mut flags = std::collections::BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let trimmed = line.trim_start();
        if line.starts_with("  ") && (trimmed.starts_with("--") || trimmed.starts_with("-h")) {
            flags.extend(current.take());
            let name = trimmed.split([' ', ',']).find(|w| w.starts_with("--"));
            current = Some((name.unwrap().to_string(), String::new()));
        }
        if let Some((_, text)) = &mut current {
            text.push_str(line.trim());
            text.push('\n');
        }
    }
    flags.extend(current);
    flags
}

#[test]
fn every_command_that_talks_to_the_apis_has_the_same_api_flags() {
    let api_flags = [
        "--ecwid-api-url",
        "--lightspeed-url-template",
        "--http-timeout-ms",
        "--max-rate-wait-ms",
        "--lightspeed-client-id",
        "--lightspeed-client-secret",
        "--default-lightspeed-api-version",
    ];
    let sync = flag_help("sync-inventory");
    for command in ["serve", "reconcile", "connect"] {
        let flags = flag_help(command);
        for flag in api_flags {
            assert_eq!(flags.get(flag), sync.get(flag), "{command} {flag}");
        }
    }
    let serve = flag_help("serve");
    for (flag, env_and_default) in [
        (
            "--ecwid-api-url",
            "[env: ECWID_API_URL=]\n[default: https://app.ecwid.com/api/v3]",
        ),
        (
            "--http-timeout-ms",
            "[env: HTTP_TIMEOUT_MS=]\n[default: 10000]",
        ),
        (
            "--max-rate-wait-ms",
            "[env: LIGHTSPEED_MAX_RATE_WAIT_MS=]\n[default: 20000]",
        ),
        (
            "--lightspeed-client-secret",
            "[env: LIGHTSPEED_CLIENT_SECRET]",
        ),
        (
            "--default-lightspeed-api-version",
            "[env: LIGHTSPEED_API_VERSION=]\n[default: 2026-07]",
        ),
    ] {
        assert!(serve[flag].contains(env_and_default), "{}", serve[flag]);
    }
    // The whole surface of `serve`: its own flags, the backend's and the API's, once each.
    let names: Vec<_> = serve.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "--backend",
            "--db",
            "--default-lightspeed-api-version",
            "--demo",
            "--ecwid-api-url",
            "--ecwid-client-secret",
            "--exit-after-demo",
            "--help",
            "--http-timeout-ms",
            "--inventory-interval-secs",
            "--lease-seconds",
            "--lightspeed-client-id",
            "--lightspeed-client-secret",
            "--lightspeed-url-template",
            "--listen",
            "--live",
            "--max-rate-wait-ms",
            "--queue-url",
            "--sandbox-port",
            "--search-delay-seconds",
            "--sweep-interval-secs",
            "--table",
            "--token-kms-key",
        ]
    );
}

#[test]
fn benchmarks_run_and_leave_no_scratch_directory_behind() {
    let tmp = std::env::temp_dir().join(format!("els-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for args in [
        &[
            "bench",
            "--webhooks",
            "20",
            "--concurrency",
            "4",
            "--orders",
            "3",
        ][..],
        &["bench-inventory", "--catalog", "50", "--changes", "5"],
        &[
            "bench-rate-limit",
            "--orders",
            "10",
            "--limit",
            "40",
            "--window-ms",
            "1000",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_els"))
            .args(args)
            .env("TMPDIR", &tmp)
            .env_remove("RUST_LOG")
            .output()
            .expect("els runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.is_empty(), "{args:?} printed its report");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}
