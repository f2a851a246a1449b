//! The Lightspeed API generation as a merchant or an operator sets it (issue #14): the
//! deployment's `LIGHTSPEED_API_VERSION`, a store's own `els settings
//! --lightspeed-api-version`, validated, checked against the retailer before it is saved, and
//! shown by `els doctor`.

mod common;

use common::{Merchant, connect_by_name, els, saved};
use els_core::lightspeed::LsApiVersion;
use els_sandbox::{Fault, FaultKind, Route, Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_between_generations_with_els_settings_and_the_doctor_says_which() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let m = Merchant::of(&sb);
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    // Everything below runs as a legacy deployment, so the store's setting shows against it.
    let run = |args: &[&str]| {
        let mut c = common::command(&sb, &m.token);
        c.env("LIGHTSPEED_API_VERSION", "legacy").args(args);
        let out = c.output().expect("els runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    connect_by_name(&sb, &m, db);
    assert_eq!(
        saved(&db_path, m.store_id)
            .await
            .unwrap()
            .settings
            .lightspeed_api_version,
        None,
        "a new connection follows the deployment"
    );

    let (_, out, err) = run(&["doctor", "--db", db, "--store", &m.store]);
    let line = out
        .lines()
        .find(|l| l.contains("Lightspeed API"))
        .unwrap_or_else(|| panic!("{out}\n{err}"));
    assert!(
        line.contains("legacy") && line.contains("els settings") && line.contains("2026-07"),
        "{line}"
    );

    // An unknown version is refused with the supported ones; nothing is saved.
    let before = saved(&db_path, m.store_id).await.unwrap().version;
    let (ok, _, err) = run(&[
        "settings",
        "--db",
        db,
        "--store",
        &m.store,
        "--lightspeed-api-version",
        "2026-04",
    ]);
    assert!(!ok && err.contains("2026-07, legacy"), "{err}");
    assert_eq!(saved(&db_path, m.store_id).await.unwrap().version, before);

    // A retailer that does not answer on the chosen generation keeps the store where it is.
    sb.inject(Fault::once(Route::LsAny, FaultKind::Status(503)));
    let (ok, _, err) = run(&[
        "settings",
        "--db",
        db,
        "--store",
        &m.store,
        "--lightspeed-api-version",
        "2026-07",
    ]);
    assert!(
        !ok && err.contains("could not be read on Lightspeed API 2026-07")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(saved(&db_path, m.store_id).await.unwrap().version, before);

    // Then it moves.
    let (ok, out, err) = run(&[
        "settings",
        "--db",
        db,
        "--store",
        &m.store,
        "--lightspeed-api-version",
        "2026-07",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("Lightspeed API") && l.contains("2026-07")),
        "{out}"
    );
    assert_eq!(
        saved(&db_path, m.store_id)
            .await
            .unwrap()
            .settings
            .lightspeed_api_version,
        Some(LsApiVersion::LATEST)
    );
    let (_, out, _) = run(&["doctor", "--db", db, "--store", &m.store]);
    let line = out.lines().find(|l| l.contains("Lightspeed API")).unwrap();
    assert!(
        line.contains("2026-07 (this store's setting; LIGHTSPEED_API_VERSION here is legacy)"),
        "{line}"
    );

    // `default` hands it back to the deployment.
    let (ok, out, err) = run(&[
        "settings",
        "--db",
        db,
        "--store",
        &m.store,
        "--lightspeed-api-version",
        "default",
    ]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        saved(&db_path, m.store_id)
            .await
            .unwrap()
            .settings
            .lightspeed_api_version,
        None
    );

    // A deployment variable that names no version stops the command and says why.
    let (ok, _, err) = els(
        &sb,
        &["settings", "--db", db, "--store", &m.store],
        &m.token,
    );
    assert!(
        ok,
        "the default deployment (2026-07) reads the settings: {err}"
    );
    let mut c = common::command(&sb, &m.token);
    c.env("LIGHTSPEED_API_VERSION", "2.0")
        .args(["settings", "--db", db, "--store", &m.store]);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("2026-07, legacy"),
        "{err}"
    );
}
