//! Nothing prints a token (issue #17): every operator command, run on a connection made with
//! recognisable tokens (an Ecwid token, a Lightspeed OAuth pair that rotates while the test
//! runs, and the OAuth app's client secret), writes none of them, nor any 8-character piece
//! of one, to stdout or stderr.

mod common;

use common::{Serving, command, connect_args, free_listen_addr, sale_of, saved, wait_listening};
use els_sandbox::{OAuthMode, OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::str::FromStr;

/// The shortest piece of a token that must not appear anywhere.
const WINDOW: usize = 8;

/// What one command printed.
struct Printed {
    command: String,
    stdout: String,
    stderr: String,
}

/// The first piece of a secret that `text` contains, if any.
fn leaked_piece<'a>(text: &str, secret: &'a str) -> Option<&'a str> {
    let n = secret.len().min(WINDOW);
    (0..=secret.len() - n)
        .map(|i| &secret[i..i + n])
        .find(|piece| text.contains(piece))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_prints_a_token_or_a_piece_of_one() {
    let config = SandboxConfig {
        ecwid_token: "secret_EcTok7Qz9Wx4Lp2Mv".into(),
        ls_token: "lsxs_pt_PeTok8Vb5Nm1Kd6Jc".into(),
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(config).await.expect("sandbox");
    let mode = OAuthMode {
        access_token: "lsxs_at_AcTok3Rt7Yu2Hg4".into(),
        refresh_token: "lsxs_rt_ReTok9Ea1Sd5Fq8".into(),
        client_secret: "app_CsTok2Hj8Gf3Lk7".into(),
        ..OAuthMode::default()
    };
    sb.enable_ls_oauth(mode.clone());
    let ecwid_token = sb.config().ecwid_token.clone();
    let mut secrets: BTreeSet<String> = [
        ecwid_token.clone(),
        sb.config().ls_token.clone(),
        mode.access_token.clone(),
        mode.refresh_token.clone(),
        mode.client_secret.clone(),
    ]
    .into();
    let store = sb.ids().ecwid_store_id.to_string();
    let store_id = els_core::StoreId::from_str(&store).unwrap();
    let prefix = sb.config().ls_domain_prefix.clone();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap().to_string();

    assert_eq!(
        leaked_piece("... EcTok7Qz ...", "secret_EcTok7Qz9Wx4Lp2Mv"),
        Some("EcTok7Qz")
    );

    // Orders for every command to find: two from three days ago (one of them parks: its SKU
    // is only in Ecwid), one today.
    sb.add_ecwid_product_only(ProductSpec {
        sku: "ECWID-ONLY".into(),
        name: "Only in Ecwid".into(),
        ..ProductSpec::default()
    });
    let order = |sku: &str| {
        sb.place_order(OrderSpec {
            items: vec![OrderItemSpec::new(sku, 1)],
            ..OrderSpec::default()
        })
    };
    let three_days_ago = chrono::Utc::now().timestamp() - 3 * 86_400;
    let (old, old_parks) = (order("MUG-001"), order("ECWID-ONLY"));
    for id in [&old, &old_parks] {
        sb.update_order(
            id,
            serde_json::json!({"createTimestamp": three_days_ago, "updateTimestamp": three_days_ago}),
        )
        .unwrap();
    }

    // A merchant exports the tokens and the OAuth app, then runs the commands.
    let first = sb.ls_oauth_tokens().unwrap();
    let base = || {
        let mut c = command(&sb, &ecwid_token);
        c.env("LIGHTSPEED_TOKEN", &first.access_token)
            .env("LIGHTSPEED_REFRESH_TOKEN", &first.refresh_token)
            .env("LIGHTSPEED_CLIENT_ID", &mode.client_id)
            .env("LIGHTSPEED_CLIENT_SECRET", &mode.client_secret);
        c
    };
    let printed_of = |command: &str, out: std::process::Output| Printed {
        command: command.to_string(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let mut printed: Vec<Printed> = Vec::new();
    let run = |args: &[&str], must_succeed: bool| {
        let out = base().args(args).output().expect("els runs");
        let ok = out.status.success();
        let p = printed_of(&args.join(" "), out);
        assert!(
            ok || !must_succeed,
            "els {}\n{}\n{}",
            p.command,
            p.stdout,
            p.stderr
        );
        p
    };
    let issued = |secrets: &mut BTreeSet<String>| {
        let now = sb.ls_oauth_tokens().unwrap();
        secrets.insert(now.access_token);
        secrets.insert(now.refresh_token);
    };

    let expires = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let mut connect = connect_args(&db, &store, &prefix);
    connect.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
        "--create-missing",
        "--lightspeed-token-expires-at",
        &expires,
    ]);
    printed.push(run(&connect, true));
    // A refused token is reported without echoing it.
    let wrong_ecwid = "secret_WrTok4Zx6Cv1Bn3";
    secrets.insert(wrong_ecwid.into());
    {
        let out = base()
            .env("ECWID_TOKEN", wrong_ecwid)
            .args(&connect)
            .output()
            .unwrap();
        assert!(!out.status.success());
        printed.push(printed_of("connect (refused Ecwid token)", out));
    }

    // Help shows which variables are read, never their values.
    for command in ["connect", "serve", "sync-inventory", "doctor"] {
        printed.push(run(&[command, "--help"], true));
    }
    printed.push(run(&["settings", "--db", &db, "--store", &store], true));
    printed.push(run(
        &[
            "settings",
            "--db",
            &db,
            "--store",
            &store,
            "--register",
            "Warehouse Register",
        ],
        true,
    ));
    printed.push(run(
        &[
            "settings",
            "--db",
            &db,
            "--store",
            &store,
            "--register",
            "Web Store Register",
        ],
        true,
    ));

    // Lightspeed revokes the access token: the doctor refreshes the pair (and stores it).
    sb.revoke_ls_access_token();
    printed.push(run(&["doctor", "--db", &db, "--store", &store], false));
    issued(&mut secrets);
    printed.push(run(&["doctor", "--db", &db, "--json"], false));

    // The embedded mode posts today's order after another revocation, and logs as it goes.
    sb.revoke_ls_access_token();
    let today = order("MUG-001");
    let listen = free_listen_addr();
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let serving = Serving(
        base()
            .args(["serve", "--live", "--db", &db, "--listen", &listen])
            .env("ECWID_CLIENT_SECRET", &sb.config().webhook_client_secret)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::from(log("serve.out")))
            .stderr(Stdio::from(log("serve.err")))
            .spawn()
            .expect("els serve starts"),
    );
    wait_listening(&listen).await;
    let hook = sb.order_webhook("order.created", &today, None, "PAID");
    let status = sb
        .deliver(&format!("http://{listen}/webhooks/ecwid"), &hook)
        .await
        .unwrap();
    assert!(status.is_success(), "{status}");
    sale_of(&sb, &today).await;
    drop(serving);
    issued(&mut secrets);
    printed.push(Printed {
        command: "serve --live (RUST_LOG=trace)".into(),
        stdout: std::fs::read_to_string(dir.path().join("serve.out")).unwrap(),
        stderr: std::fs::read_to_string(dir.path().join("serve.err")).unwrap(),
    });

    printed.push(run(&["sweep", "--db", &db, "--store", &store], true));
    let since = (chrono::Utc::now() - chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    printed.push(run(
        &[
            "backfill",
            "--db",
            &db,
            "--store",
            &store,
            "--since",
            &since,
            "--dry-run",
        ],
        true,
    ));
    printed.push(run(
        &[
            "backfill",
            "--db",
            &db,
            "--store",
            &store,
            "--since",
            &since,
            "--wait-secs",
            "60",
        ],
        true,
    ));
    printed.push(run(&["status", "--db", &db, "--store", &store], true));
    printed.push(run(
        &["status", "--db", &db, "--store", &store, "--order", &today],
        true,
    ));
    printed.push(run(
        &[
            "status", "--db", &db, "--store", &store, "--order", &old_parks,
        ],
        true,
    ));
    for state in ["POSTED", "PARKED"] {
        printed.push(run(
            &["status", "--db", &db, "--store", &store, "--state", state],
            true,
        ));
    }
    sb.revoke_ls_access_token();
    printed.push(run(
        &["sync-inventory", "--db", &db, "--store", &store],
        true,
    ));
    issued(&mut secrets);
    printed.push(run(&["reconcile", "--db", &db, "--store", &store], true));
    printed.push(run(
        &["doctor", "--db", &db, "--store", &store, "--json"],
        false,
    ));
    issued(&mut secrets);

    // The tokens were real: the file holds the pair Lightspeed accepts now.
    let stored = saved(&db_path, store_id).await.expect("connected");
    let now = sb.ls_oauth_tokens().unwrap();
    assert_eq!(stored.lightspeed.access_token.expose(), now.access_token);
    assert_eq!(stored.ecwid_token.expose(), ecwid_token);
    assert!(
        secrets.len() >= 9,
        "the pair was refreshed at least twice: {}",
        secrets.len()
    );
    // And every command said something.
    for p in &printed {
        assert!(
            !(p.stdout.trim().is_empty() && p.stderr.trim().is_empty()),
            "els {} printed nothing",
            p.command
        );
        for secret in &secrets {
            for (stream, text) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
                if let Some(piece) = leaked_piece(text, secret) {
                    panic!(
                        "els {} printed {piece:?}, a piece of a token, on {stream}:\n{text}",
                        p.command
                    );
                }
            }
        }
    }
    eprintln!(
        "{} commands, {} secrets, no piece of {WINDOW} characters printed",
        printed.len(),
        secrets.len()
    );
}
