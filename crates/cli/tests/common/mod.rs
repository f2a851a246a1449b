//! What the CLI's end-to-end tests share: `els` run as a merchant runs it, against the
//! sandbox's APIs on loopback.
#![allow(dead_code)]

use els_core::{ConnectionStore, StoreId};
use els_sandbox::Sandbox;
use els_store_sqlite::SqliteStore;
use rust_decimal::Decimal;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// `els <args>` with the sandbox's API addresses and tokens in the environment, as a merchant
/// would export them.
pub fn els(sb: &Sandbox, args: &[&str], ecwid_token: &str) -> (bool, String, String) {
    let out = command(sb, ecwid_token)
        .args(args)
        .output()
        .expect("els runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn command(sb: &Sandbox, ecwid_token: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_els"));
    c.env_remove("RUST_LOG")
        .env("ECWID_API_URL", sb.ecwid_api_url())
        .env(
            "LIGHTSPEED_URL_TEMPLATE",
            format!("{}/lightspeed/{{domain_prefix}}", sb.base_url()),
        )
        .env("ECWID_TOKEN", ecwid_token)
        .env("LIGHTSPEED_TOKEN", &sb.config().ls_token)
        .env_remove("LIGHTSPEED_REFRESH_TOKEN")
        .env_remove("ELS_BACKEND");
    c
}

pub fn connect_args<'a>(db: &'a str, store: &'a str, prefix: &'a str) -> Vec<&'a str> {
    vec![
        "connect",
        "--db",
        db,
        "--store",
        store,
        "--domain-prefix",
        prefix,
    ]
}

pub async fn saved(db: &Path, store: StoreId) -> Option<els_core::Connection> {
    if !db.exists() {
        return None;
    }
    let s = SqliteStore::open(db).expect("the file opens");
    s.get_connection(store).await.expect("readable")
}

pub fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).expect("a decimal"),
        other => Decimal::from_str(&other.to_string()).expect("a decimal"),
    }
}

/// The sale posted for an Ecwid order, waiting up to 30 s for it.
pub async fn sale_of(sb: &Sandbox, order_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let invoice = |s: &Value| {
            s["invoice_number"]
                .as_str()
                .is_some_and(|n| n.contains(order_id))
        };
        if let Some(s) = sb.sales().into_iter().find(invoice) {
            return s;
        }
        assert!(Instant::now() < deadline, "no sale for order {order_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a merchant has in hand: the store id, the Lightspeed domain prefix and the Ecwid
/// token (the Lightspeed token is in the environment, see [`command`]).
pub struct Merchant {
    pub store: String,
    pub store_id: StoreId,
    pub prefix: String,
    pub token: String,
}

impl Merchant {
    pub fn of(sb: &Sandbox) -> Self {
        let store = sb.ids().ecwid_store_id.to_string();
        Merchant {
            store_id: StoreId::from_str(&store).unwrap(),
            store,
            prefix: sb.config().ls_domain_prefix.clone(),
            token: sb.config().ecwid_token.clone(),
        }
    }
}

pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The permission bits of a file (`0o600`).
#[cfg(unix)]
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The state file and those of its `-wal` and `-shm` companions that exist.
pub fn state_files(db: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            files.push(p);
        }
    }
    files
}

/// A loopback address nothing listens on yet.
pub fn free_listen_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// Waits until something listens on `addr` (at most 30 s).
pub async fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `els connect` into `db` by names, as a merchant types them (the sandbox's web register,
/// its online payment type; missing products created).
pub fn connect_by_name(sb: &Sandbox, m: &Merchant, db: &str) {
    connect_by_name_with(sb, m, db, &[]);
}

/// [`connect_by_name`] with `extra` flags; its output.
pub fn connect_by_name_with(sb: &Sandbox, m: &Merchant, db: &str, extra: &[&str]) -> String {
    let mut args = connect_args(db, &m.store, &m.prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
        "--create-missing",
    ]);
    args.extend(extra);
    let (ok, out, err) = els(sb, &args, &m.token);
    assert!(ok, "{out}\n{err}");
    out
}

/// `els serve --live` on `db` with the sandbox's APIs and `extra` flags, once it listens;
/// with its webhook URL.
pub async fn serve_live(sb: &Sandbox, m: &Merchant, db: &str, extra: &[&str]) -> (Serving, String) {
    let listen = free_listen_addr();
    let serving = serve_live_on(sb, m, db, &listen, extra).await;
    (serving, format!("http://{listen}/webhooks/ecwid"))
}

/// [`serve_live`] on `listen`, once it listens.
pub async fn serve_live_on(
    sb: &Sandbox,
    m: &Merchant,
    db: &str,
    listen: &str,
    extra: &[&str],
) -> Serving {
    let serving = Serving(
        command(sb, &m.token)
            .args(["serve", "--live", "--db", db, "--listen", listen])
            .args(extra)
            .env("ECWID_CLIENT_SECRET", &sb.config().webhook_client_secret)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("els serve starts"),
    );
    wait_listening(listen).await;
    serving
}
