//! The moto server (DynamoDB, SQS and KMS) for the AWS adapter tests.
//!
//! `ELS_MOTO_ENDPOINT` points at a running server (the test script starts one). Without it,
//! the first caller in a test process starts `.venv/bin/moto_server` on a free loopback port;
//! every test in the process shares it and uses its own table and queue names.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

static ENDPOINT: OnceCell<String> = OnceCell::const_new();
/// The watchdog shell and the write end of its stdin. Never dropped: the pipe closes when
/// this process exits, however it exits, and the watchdog then kills moto.
static WATCHDOG: OnceLock<Mutex<(Child, ChildStdin)>> = OnceLock::new();

const NOT_AVAILABLE: &str = "moto is not available: run tests/run.sh, or set ELS_MOTO_ENDPOINT";

/// Runs moto and exits with it; a background reader kills moto when our end of the stdin
/// pipe closes. (Asynchronous commands get /dev/null as stdin, hence the copy on fd 3.)
const WATCHDOG_SCRIPT: &str = r#"
"$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
moto=$!
exec 3<&0
(cat <&3 >/dev/null; kill "$moto" 2>/dev/null) &
exec 3<&-
wait "$moto"
"#;

/// The endpoint of a moto server for this test process.
pub async fn moto_endpoint() -> String {
    if let Ok(endpoint) = std::env::var("ELS_MOTO_ENDPOINT")
        && !endpoint.is_empty()
    {
        return endpoint;
    }
    ENDPOINT.get_or_init(start_moto).await.clone()
}

fn moto_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
}

async fn start_moto() -> String {
    let server = moto_server_path();
    if !server.exists() {
        panic!("{NOT_AVAILABLE} ({} not found)", server.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let log = std::env::temp_dir().join(format!("els-moto-{port}.log"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg(&server)
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{NOT_AVAILABLE} (cannot start {}: {e})", server.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let watchdog = WATCHDOG.get_or_init(|| Mutex::new((child, stdin)));

    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            break;
        }
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let exited = watchdog
            .lock()
            .map(|mut w| !matches!(w.0.try_wait(), Ok(None)))
            .unwrap_or(true);
        if exited || output.contains("Traceback") || started.elapsed() > Duration::from_secs(60) {
            panic!("{NOT_AVAILABLE} (moto_server did not start on {address}):\n{output}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    format!("http://{address}")
}

/// SDK configuration for moto: region us-east-1, static test credentials, the endpoint,
/// and nothing from the host's environment or profile.
pub async fn aws_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new("us-east-1"))
        .test_credentials()
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A new symmetric encryption key in moto's KMS: its ARN. moto binds a ciphertext to its
/// encryption context (it is the AES-GCM additional data), as KMS does; it does not refuse a
/// disabled key's Decrypt.
pub async fn kms_key(config: &SdkConfig) -> String {
    aws_sdk_kms::Client::new(config)
        .create_key()
        .description("els test: connection tokens")
        .send()
        .await
        .expect("CreateKey on moto")
        .key_metadata
        .expect("key metadata")
        .arn
        .expect("key ARN")
}

/// A token cipher under a new moto KMS key.
pub async fn token_cipher(config: &SdkConfig) -> els_store_aws::TokenCipher {
    els_store_aws::TokenCipher::new(aws_sdk_kms::Client::new(config), kms_key(config).await)
}

/// A new table named `{prefix}-{uuid}` on moto, its connections' tokens encrypted under a
/// new KMS key.
pub async fn encrypted_table(prefix: &str) -> els_store_aws::DynamoStore {
    let config = aws_config(&moto_endpoint().await).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    els_store_aws::DynamoStore::create_table(&client, &table)
        .await
        .expect("create table on moto");
    els_store_aws::DynamoStore::new(client, table).with_token_cipher(token_cipher(&config).await)
}
