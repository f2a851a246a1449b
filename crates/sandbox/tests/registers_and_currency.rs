//! Test options for connect's refusals: registers added with any name (two called "Main" make
//! an ambiguous name) and an Ecwid currency that differs from the Lightspeed retailer's.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use els_sandbox::{Sandbox, SandboxConfig};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// `GET /api/2.0/registers` (or with a query), its `data`.
async fn registers(sb: &Sandbox, query: &str) -> Vec<Value> {
    let (status, body) = ls_get(sb, &format!("/api/2.0/registers{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

fn named<'a>(regs: &'a [Value], name: &str) -> Vec<&'a Value> {
    regs.iter().filter(|r| r["name"] == name).collect()
}

#[tokio::test]
async fn a_register_added_twice_with_one_name_shows_twice() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let before = registers(&sb, "").await;
    let newest = before
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .max()
        .unwrap();

    let a = sb.add_register("Main", &ids.outlet_id);
    let b = sb.add_register("Main", &ids.second_outlet_id);
    assert_ne!(a, b);

    let regs = registers(&sb, "").await;
    assert_eq!(regs.len(), before.len() + 2);
    let mains = named(&regs, "Main");
    assert_eq!(mains.len(), 2, "both, under the same name");
    let by_id = |id: &str| *mains.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(by_id(&a)["outlet_id"], json!(ids.outlet_id));
    assert_eq!(by_id(&b)["outlet_id"], json!(ids.second_outlet_id));
    assert_eq!(by_id(&a)["deleted_at"], Value::Null);

    // New versions, as any write: a client that synced the registers before sees just these.
    let (va, vb) = (
        by_id(&a)["version"].as_u64().unwrap(),
        by_id(&b)["version"].as_u64().unwrap(),
    );
    assert!(newest < va && va < vb, "{newest} < {va} < {vb}");
    let changed = registers(&sb, &format!("?after={newest}")).await;
    let changed: Vec<&str> = changed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(changed, vec![a.as_str(), b.as_str()]);

    // And one by id.
    let (status, one) = ls_get(&sb, &format!("/api/2.0/registers/{a}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["name"], "Main");

    // A blank name or an unknown outlet is refused.
    assert!(sb.try_add_register("  ", &ids.outlet_id).is_err());
    let err = sb.try_add_register("Main", "no-such-outlet").unwrap_err();
    assert!(err.to_string().contains("no-such-outlet"), "{err}");
    assert_eq!(registers(&sb, "").await.len(), before.len() + 2);
}

#[tokio::test]
async fn a_sale_at_an_added_register_is_accepted() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let reg = sb.add_register("Main", &ids.second_outlet_id);
    let mug = ids.mug.ls_id();
    let stock = sb.inventory_level(mug, &ids.second_outlet_id);

    let mut body = closed_sale(&sb, mug, 1, "12", "1.2", &ids.tax_10_id);
    body["register_id"] = json!(reg);
    body["register_sale_payments"][0]["register_id"] = json!(reg);
    let (status, sale) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["register_sale"]["register_id"], json!(reg));
    assert_eq!(sb.sale_count(), 1);
    // Stock leaves the added register's outlet.
    assert_eq!(
        sb.inventory_level(mug, &ids.second_outlet_id),
        stock - Decimal::ONE
    );

    // Its invoice sequence is its own.
    let (_, one) = ls_get(&sb, &format!("/api/2.0/registers/{reg}")).await;
    let prefix = one["data"]["invoice_prefix"].as_str().unwrap().to_string();
    let sale_id = sb.pos_sale(mug, 1, &reg);
    let pos = sb
        .sales()
        .into_iter()
        .find(|s| s["id"] == sale_id.as_str())
        .unwrap();
    assert_eq!(pos["invoice_number"], json!(format!("{prefix}1001")));
}

#[tokio::test]
async fn the_admin_route_adds_registers() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let c = client();
    let url = format!("{}/registers", sb.admin_url());
    let post = |body: Value| {
        let req = c.post(&url).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    let (status, a) = post(json!({"name": "Main", "outlet_id": ids.outlet_id})).await;
    assert_eq!(status, 200, "{a}");
    let (status, b) = post(json!({"name": "Main", "outlet_id": ids.outlet_id})).await;
    assert_eq!(status, 200, "{b}");
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_ne!(a, b);
    let regs = registers(&sb, "").await;
    let mains: Vec<&str> = named(&regs, "Main")
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(mains, vec![a, b]);

    let (status, err) = post(json!({"name": "Main", "outlet_id": "no-such-outlet"})).await;
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("no-such-outlet"),
        "{err}"
    );
    for blank in ["", "   "] {
        let (status, err) = post(json!({"name": blank, "outlet_id": ids.outlet_id})).await;
        assert_eq!(status, 400);
        assert!(err["error"].as_str().unwrap().contains("name"), "{err}");
    }
    assert_eq!(registers(&sb, "").await.len(), regs.len());
}

async fn ecwid_currency(sb: &Sandbox) -> (Value, Value) {
    let (status, prof) = ecwid(sb, Method::GET, "/profile", None).await;
    assert_eq!(status, 200);
    let f = &prof["formatsAndUnits"];
    (f["currency"].clone(), f["currencyPrecision"].clone())
}

async fn retailer_currency(sb: &Sandbox) -> Value {
    let (status, body) = ls_get(sb, "/api/2.0/retailer").await;
    assert_eq!(status, 200);
    body["data"]["currency"]["code"].clone()
}

#[tokio::test]
async fn the_ecwid_currency_can_differ_from_the_retailers() {
    // By default both sides say the one currency.
    let sb = sandbox().await;
    assert_eq!(sb.config().ecwid_currency, None);
    assert_eq!(ecwid_currency(&sb).await, (json!("USD"), json!(2)));
    assert_eq!(retailer_currency(&sb).await, "USD");

    let sb = sandbox_with(SandboxConfig {
        currency: "USD".into(),
        ecwid_currency: Some("CAD".into()),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(ecwid_currency(&sb).await, (json!("CAD"), json!(2)));
    assert_eq!(retailer_currency(&sb).await, "USD");
    let (_, outlets) = ls_get(&sb, "/api/2.0/outlets").await;
    assert_eq!(outlets["data"][0]["currency"], "USD");

    // The precision is the Ecwid currency's, not the retailer's.
    let sb = sandbox_with(SandboxConfig {
        currency: "USD".into(),
        ecwid_currency: Some("JPY".into()),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(ecwid_currency(&sb).await, (json!("JPY"), json!(0)));
    assert_eq!(retailer_currency(&sb).await, "USD");
}

#[test]
fn the_config_reads_ecwid_currency_as_optional() {
    let cfg: SandboxConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(cfg.ecwid_currency, None);
    assert_eq!(cfg.effective_ecwid_currency(), "USD");
    let cfg: SandboxConfig = serde_json::from_value(json!({"ecwid_currency": "CAD"})).unwrap();
    assert_eq!(cfg.ecwid_currency.as_deref(), Some("CAD"));
    assert_eq!(cfg.effective_ecwid_currency(), "CAD");
    assert_eq!(cfg.currency, "USD");
}

#[test]
fn the_binary_takes_an_ecwid_currency() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_els-sandbox"))
        .args(["--port", "0", "--ecwid-currency", "CAD"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn els-sandbox");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    let get = |url: String, token: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let profile = get(
        format!(
            "{}/{}/profile",
            info["ecwid_api_url"].as_str().unwrap(),
            info["ecwid_store_id"]
        ),
        info["ecwid_token"].as_str().unwrap(),
    );
    let retailer = get(
        format!(
            "{}/api/2.0/retailer",
            info["lightspeed_url"].as_str().unwrap()
        ),
        info["ls_token"].as_str().unwrap(),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(profile["formatsAndUnits"]["currency"], "CAD");
    assert_eq!(retailer["data"]["currency"]["code"], "USD");
}
