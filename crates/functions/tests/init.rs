//! The functions' cold start, on the real binaries: a missing variable or secret fails init
//! with a message that names it, and the Ecwid client_secret is read from an SSM
//! SecureString (on the moto server) with the real aws-sdk client.

use els_functions::config::ClientSecretSource;
use els_functions::secrets::{SecretError, load_client_secret, read_secure_string};
use els_tests::moto::{aws_config, moto_endpoint};
use std::process::Command;
use std::time::Duration;

/// The variables each binary needs, complete; tests take one away.
fn complete_env(function: &str) -> Vec<(&'static str, &'static str)> {
    match function {
        "webhook-ingest" => vec![
            ("TABLE_NAME", "state"),
            ("QUEUE_URL", "http://127.0.0.1:1/123456789012/orders.fifo"),
            (
                "ECWID_CLIENT_SECRET_PARAMETER",
                "/ecwid-lightspeed-sync/ecwid-client-secret",
            ),
        ],
        "sale-poster" => vec![
            ("TABLE_NAME", "state"),
            ("QUEUE_URL", "http://127.0.0.1:1/123456789012/orders.fifo"),
            ("MAX_RECEIVE_COUNT", "5"),
            ("TOKEN_KMS_KEY_ID", "alias/els-tokens"),
        ],
        "inventory-sync" => vec![
            ("TABLE_NAME", "state"),
            (
                "STORE_JOBS_QUEUE_URL",
                "http://127.0.0.1:1/123456789012/store-jobs.fifo",
            ),
        ],
        "store-worker" => vec![
            ("TABLE_NAME", "state"),
            ("QUEUE_URL", "http://127.0.0.1:1/123456789012/orders.fifo"),
            (
                "STORE_JOBS_QUEUE_URL",
                "http://127.0.0.1:1/123456789012/store-jobs.fifo",
            ),
            ("TOKEN_KMS_KEY_ID", "alias/els-tokens"),
        ],
        "order-sweep" => vec![
            ("TABLE_NAME", "state"),
            (
                "STORE_JOBS_QUEUE_URL",
                "http://127.0.0.1:1/123456789012/store-jobs.fifo",
            ),
        ],
        other => panic!("no function {other}"),
    }
}

fn binary(function: &str) -> &'static str {
    match function {
        "webhook-ingest" => env!("CARGO_BIN_EXE_webhook-ingest"),
        "sale-poster" => env!("CARGO_BIN_EXE_sale-poster"),
        "inventory-sync" => env!("CARGO_BIN_EXE_inventory-sync"),
        "store-worker" => env!("CARGO_BIN_EXE_store-worker"),
        "order-sweep" => env!("CARGO_BIN_EXE_order-sweep"),
        other => panic!("no function {other}"),
    }
}

/// Runs the binary with only `env` (no Lambda runtime API: it must fail before needing one)
/// and returns its exit success and everything it printed.
fn run_init(function: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(binary(function));
    child.env_clear().envs(env.iter().copied());
    let out = child.output().expect("the binary runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[test]
fn a_missing_variable_fails_init_with_its_name() {
    for function in [
        "webhook-ingest",
        "sale-poster",
        "inventory-sync",
        "store-worker",
        "order-sweep",
    ] {
        let complete = complete_env(function);
        for (i, (name, _)) in complete.iter().enumerate() {
            let mut env = complete.clone();
            env.remove(i);
            let (ok, printed) = run_init(function, &env);
            assert!(!ok, "{function} without {name} must not start:\n{printed}");
            assert!(
                printed.contains(&format!("environment variable {name} is not set")),
                "{function} without {name} must say so:\n{printed}"
            );
        }
    }
}

#[tokio::test]
async fn a_missing_ssm_parameter_fails_init_with_its_name() {
    let endpoint: &'static str = moto_endpoint().await.leak();
    let mut env = complete_env("webhook-ingest");
    env.retain(|(k, _)| *k != "ECWID_CLIENT_SECRET_PARAMETER");
    env.extend([
        (
            "ECWID_CLIENT_SECRET_PARAMETER",
            "/els-init-test/no-such-parameter",
        ),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ]);

    let (ok, printed) = tokio::task::spawn_blocking(move || run_init("webhook-ingest", &env))
        .await
        .expect("run");

    assert!(!ok, "{printed}");
    assert!(
        printed.contains("SSM parameter /els-init-test/no-such-parameter does not exist"),
        "{printed}"
    );
}

#[tokio::test]
async fn client_secret_is_read_from_an_ssm_secure_string() {
    let config = aws_config(&moto_endpoint().await).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let name = format!("/els-test/{}/ecwid-client-secret", uuid_like());
    ssm.put_parameter()
        .name(&name)
        .value("test-client-secret-3f9a")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");

    let source = ClientSecretSource::SsmParameter(name.clone());
    let secret = load_client_secret(&source, || ssm.clone())
        .await
        .expect("secret loaded");

    assert_eq!(secret.expose(), "test-client-secret-3f9a");
    assert_eq!(format!("{secret:?}"), "Secret(***)");
}

#[tokio::test]
async fn plain_string_and_missing_parameters_are_refused_by_name() {
    let config = aws_config(&moto_endpoint().await).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let plain = format!("/els-test/{}/plain", uuid_like());
    ssm.put_parameter()
        .name(&plain)
        .value("not-protected")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("put parameter");

    let err = read_secure_string(&ssm, &plain).await.unwrap_err();
    assert!(
        matches!(&err, SecretError::NotSecureString { name, kind } if *name == plain && kind == "String"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-protected"), "{err}");

    let missing = format!("/els-test/{}/missing", uuid_like());
    let err = read_secure_string(&ssm, &missing).await.unwrap_err();
    assert!(
        matches!(&err, SecretError::NotFound { name } if *name == missing),
        "{err}"
    );
}

#[tokio::test]
async fn the_local_override_needs_no_ssm() {
    let source = ClientSecretSource::Plain(els_core::Secret::new("local-secret"));
    let secret = load_client_secret(&source, || panic!("no SSM client for a local secret"))
        .await
        .expect("secret");
    assert_eq!(secret.expose(), "local-secret");
}

/// A name part unique to this test run (moto is shared by the whole suite).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}
