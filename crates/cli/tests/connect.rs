//! `els connect` as a merchant runs it: tokens and names only, against the sandbox's APIs on
//! loopback; then `els serve --live` on the saved connection posts a real-looking order.

mod common;

use common::{Merchant, command, connect_args, dec, els, sale_of, saved, serve_live};
use els_sandbox::{
    HandlingFeeSpec, OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig, ShippingSpec,
    TaxSpec,
};
use rust_decimal::Decimal;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_connects_by_name_posts_exactly_moves_the_register_and_history_stays_put() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    let ids = sb.ids();
    let Merchant {
        store,
        store_id,
        prefix,
        token,
    } = Merchant::of(&sb);

    // Refusals: each says what is wrong, and nothing is written.
    let mut args = connect_args(db, &store, &prefix);
    args.extend(["--register", "Kiosk", "--payment-type", "Ecwid Online"]);
    let (ok, _, err) = els(&sb, &args, &token);
    assert!(!ok, "{err}");
    assert!(
        err.contains("no register is called or has the id 'Kiosk'. The registers are: \"Web Store Register\" (outlet Main Outlet)")
            && err.contains("\"Warehouse Register\" (outlet Warehouse)"),
        "{err}"
    );
    let mut args = connect_args(db, &store, &prefix);
    args.extend(["--register", "Web Store Register"]);
    let (ok, _, err) = els(&sb, &args, &token);
    assert!(
        !ok && err
            .contains("choose a payment type with --payment-type. The payment types are: \"Cash\""),
        "{err}"
    );
    let mut args = connect_args(db, &store, &prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
    ]);
    let (ok, _, err) = els(&sb, &args, "secret_not-the-token");
    assert!(
        !ok && err.contains("Ecwid refused the token") && err.contains("Check ECWID_TOKEN"),
        "{err}"
    );
    let mut args = connect_args(db, "999", &prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
    ]);
    let (ok, _, err) = els(&sb, &args, &token);
    assert!(
        !ok && err.contains("Ecwid has no store 999 for this token: check --store"),
        "{err}"
    );
    let mut args = connect_args(db, &store, &prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
        "--shipping-product",
        "Freight",
    ]);
    let (ok, _, err) = els(&sb, &args, &token);
    assert!(
        !ok && err.contains("no product is called or has the id 'Freight'"),
        "{err}"
    );
    assert_eq!(
        saved(&db_path, store_id).await,
        None,
        "a refused connect saved something"
    );

    // Names only; the user, gift-card payment type and shipping product are the retailer's
    // obvious ones, and the fees product is created.
    let mut args = connect_args(db, &store, &prefix);
    args.extend([
        "--register",
        "web store register",
        "--payment-type",
        "Ecwid Online",
        "--create-missing",
        "--public-url",
        "https://sync.example.com/",
    ]);
    let (ok, out, err) = els(&sb, &args, &token);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Register") && out.contains("\"Web Store Register\" (outlet Main Outlet)"),
        "{out}"
    );
    assert!(
        out.contains("\"Fees and surcharges\" (SKU ELS-FEES), to be created"),
        "{out}"
    );
    assert!(
        out.contains("https://sync.example.com/webhooks/ecwid"),
        "{out}"
    );
    let conn = saved(&db_path, store_id).await.expect("saved");
    assert_eq!(conn.register_id, ids.register_id);
    assert_eq!(conn.outlet_id, ids.outlet_id, "the register's outlet (S3)");
    assert_eq!(conn.user_id, ids.user_id);
    assert_eq!(conn.payment_type_id, ids.payment_type_id);
    assert_eq!(
        conn.gift_card_payment_type_id.as_deref(),
        Some(ids.gift_card_payment_type_id.as_str())
    );
    assert_eq!(
        conn.shipping_product_id.as_deref(),
        Some(ids.shipping_product_id.as_str())
    );
    let fees_id = conn.fees_product_id.clone().expect("the fees product");
    let created = sb
        .ls_product(&fees_id)
        .expect("the fees product exists in Lightspeed");
    assert_eq!(created["sku"], "ELS-FEES");
    assert_eq!(created["has_inventory"], false);

    // The doctor says the store is ready, and reports the catalog as rule P1 sees it: a
    // product only Ecwid has, one with a blank SKU, and a SKU two Lightspeed products share.
    let (ok, out, err) = els(&sb, &["doctor", "--db", db, "--store", &store], &token);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("store {store}: ready")), "{out}");
    assert!(
        out.contains("\"Web Store Register\"") && out.contains("Catalog links"),
        "{out}"
    );
    let ecwid_only = sb.add_ecwid_product_only(ProductSpec {
        sku: "ECWID-ONLY".into(),
        name: "Only in Ecwid".into(),
        ..ProductSpec::default()
    });
    let blank = sb.add_ecwid_product_only(ProductSpec {
        sku: "".into(),
        name: "No SKU".into(),
        ..ProductSpec::default()
    });
    sb.add_ls_product_only(ProductSpec {
        sku: "tote-001".into(),
        name: "Second tote".into(),
        ..ProductSpec::default()
    });
    let (ok, out, err) = els(
        &sb,
        &["doctor", "--db", db, "--store", &store, "--json"],
        &token,
    );
    assert!(ok, "warnings do not block posting: {out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let catalog = &report[0]["catalog"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strings(&catalog["unmatched"]),
        vec![format!(
            "ECWID-ONLY (product {})",
            ecwid_only.ecwid_product_id.unwrap()
        )]
    );
    assert_eq!(
        strings(&catalog["blank"]),
        vec![format!("product {}", blank.ecwid_product_id.unwrap())]
    );
    assert_eq!(
        strings(&catalog["shared_in_lightspeed"]),
        vec!["TOTE-001 (2 products)".to_string()]
    );
    assert_eq!(strings(&catalog["shared_in_ecwid"]), Vec::<String>::new());
    assert_eq!(report[0]["ready"], true);

    // A second connect finds the product it created instead of making another.
    let (ok, out, err) = els(&sb, &args, &token);
    assert!(ok, "{out}\n{err}");
    let again = saved(&db_path, store_id).await.expect("saved");
    assert_eq!(again.fees_product_id, Some(fees_id.clone()));
    assert_eq!(again.version, 2);

    // The saved connection posts: 2 mugs at 12.00 + 10%, shipping 5.00 + 10%, a handling
    // fee 2.00 + 10%, tax-exclusive: 34.10, of which a gift card paid 10.00.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_serving, webhook_url) = serve_live(&sb, &Merchant::of(&sb), db, &[]).await;
    let ten = TaxSpec::percent(Decimal::from(10));
    let order_id = sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 2)],
        shipping: Some(ShippingSpec {
            method_name: "Standard".into(),
            rate: Decimal::from(5),
        }),
        shipping_taxes: vec![ten.clone()],
        handling_fee: Some(HandlingFeeSpec {
            value: Decimal::from(2),
            taxes: vec![ten],
            ..HandlingFeeSpec::default()
        }),
        ..OrderSpec::default()
    });
    let order = sb.ecwid_order(&order_id).unwrap();
    assert_eq!(dec(&order["total"]), Decimal::new(3410, 2), "{order}");
    sb.update_order(
        &order_id,
        serde_json::json!({"giftCardRedemption": 10, "totalBeforeGiftCardRedemption": 34.1, "total": 24.1, "giftCardCode": "GC-1"}),
    )
    .unwrap();
    let hook = sb.order_webhook("order.created", &order_id, None, "PAID");
    let status = sb.deliver(&webhook_url, &hook).await.unwrap();
    assert!(status.is_success(), "{status}");

    let sale = sale_of(&sb, &order_id).await;
    let lines = sale["register_sale_products"].as_array().unwrap();
    let total: Decimal = lines
        .iter()
        .map(|l| dec(&l["quantity"]) * (dec(&l["price"]) + dec(&l["tax"])))
        .sum();
    assert_eq!(total, Decimal::new(3410, 2), "{sale}");
    let products: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["product_id"].as_str())
        .collect();
    assert!(
        products.contains(&ids.shipping_product_id.as_str()),
        "{sale}"
    );
    assert!(products.contains(&fees_id.as_str()), "{sale}");
    let payments = sale["register_sale_payments"].as_array().unwrap();
    let paid = |type_id: &str| {
        payments
            .iter()
            .filter(|p| p["retailer_payment_type_id"] == type_id)
            .map(|p| dec(&p["amount"]))
            .sum::<Decimal>()
    };
    assert_eq!(paid(&ids.payment_type_id), Decimal::new(2410, 2), "{sale}");
    assert_eq!(
        paid(&ids.gift_card_payment_type_id),
        Decimal::from(10),
        "{sale}"
    );
    assert_eq!(sb.sales().len(), 1);

    // `els settings` moves the connection to the other register without its tokens: the
    // next order is sold there; the posted one stays where it was.
    let (ok, out, err) = els(
        &sb,
        &[
            "settings",
            "--db",
            db,
            "--store",
            &store,
            "--register",
            "Warehouse Register",
        ],
        &token,
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("the register's outlet changed") && out.contains(&ids.second_outlet_id),
        "{out}"
    );
    let moved = saved(&db_path, store_id).await.unwrap();
    assert_eq!(
        (moved.register_id.as_str(), moved.outlet_id.as_str()),
        (
            ids.second_register_id.as_str(),
            ids.second_outlet_id.as_str()
        )
    );
    assert_eq!(moved.lightspeed.access_token, again.lightspeed.access_token);
    assert_eq!(moved.fees_product_id, Some(fees_id.clone()));
    let (ok, _, err) = els(
        &sb,
        &[
            "settings",
            "--db",
            db,
            "--store",
            &store,
            "--register",
            "Nowhere",
        ],
        &token,
    );
    assert!(
        !ok && err.contains("no register is called or has the id 'Nowhere'"),
        "{err}"
    );
    assert_eq!(
        saved(&db_path, store_id).await.unwrap().version,
        moved.version,
        "a refused change saved something"
    );
    // A product that tracks inventory is accepted for shipping, with a warning.
    let settings = |product: &'static str| {
        let args = vec![
            "settings",
            "--db",
            db,
            "--store",
            &store,
            "--shipping-product",
            product,
        ];
        els(&sb, &args, &token)
    };
    let (ok, out, err) = settings("Coffee Mug");
    assert!(
        ok && err.contains("warning: the shipping product \"Coffee Mug\" tracks inventory"),
        "{out}\n{err}"
    );
    let (ok, out, err) = settings("shipping");
    assert!(ok && !err.contains("warning"), "{out}\n{err}");
    assert_eq!(
        saved(&db_path, store_id)
            .await
            .unwrap()
            .shipping_product_id
            .as_deref(),
        Some(ids.shipping_product_id.as_str())
    );
    let next = sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        ..OrderSpec::default()
    });
    let hook = sb.order_webhook("order.created", &next, None, "PAID");
    sb.deliver(&webhook_url, &hook).await.unwrap();
    let second = sale_of(&sb, &next).await;
    assert_eq!(second["register_id"], ids.second_register_id.as_str());
    let first = sb
        .sales()
        .into_iter()
        .find(|s| s["id"] == sale["id"])
        .unwrap();
    assert_eq!(first["register_id"], ids.register_id.as_str());
    // The mirror now reads the new register's outlet: the Warehouse's mugs (50, one sold
    // there just now) are what Ecwid shows.
    let warehouse = sb.inventory_level(
        &ids.mug.ls_product_id.clone().unwrap(),
        &ids.second_outlet_id,
    );
    assert_eq!(warehouse, Decimal::from(49));
    let (ok, out, err) = els(
        &sb,
        &["sync-inventory", "--db", db, "--store", &store],
        &token,
    );
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        sb.ecwid_stock(ids.mug.ecwid_product_id.unwrap(), None),
        Some(warehouse),
        "{out}"
    );

    // An order created before the connection went live is not posted (history stays put).
    let old = sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        ..OrderSpec::default()
    });
    sb.update_order(&old, serde_json::json!({"createTimestamp": 1_700_000_000}))
        .unwrap();
    let hook = sb.order_webhook("order.created", &old, None, "PAID");
    sb.deliver(&webhook_url, &hook).await.unwrap();
    loop {
        let (_, out, _) = els(
            &sb,
            &["status", "--db", db, "--store", &store, "--order", &old],
            &token,
        );
        if out.contains("SKIPPED") {
            assert!(
                out.contains("BEFORE_GO_LIVE") && out.contains("els backfill --since"),
                "{out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "not skipped: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sb.sales().len(), 2, "the old order was not posted");

    // A rate no Lightspeed tax has, seen in a recent order, blocks: the doctor says which,
    // and exits non-zero.
    let taxed = sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("STICKER-01", 1)],
        ..OrderSpec::default()
    });
    sb.update_order(
        &taxed,
        serde_json::json!({"items": [{"sku": "STICKER-01", "quantity": 1, "price": 1.5,
            "taxes": [{"name": "HST", "value": 15, "total": 0.23}]}]}),
    )
    .unwrap();
    let (ok, out, err) = els(&sb, &["doctor", "--db", db, "--store", &store], &token);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("store {store}: NOT READY")), "{out}");
    assert!(
        out.contains("last sale posted") && out.contains("ok    Dead letters"),
        "{out}"
    );
    assert!(
        out.contains("waiting,") && out.contains("being posted (all stores)"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  Tax rates")
            && out.contains("no Lightspeed tax has 15% (HST, 1 line(s))"),
        "{out}"
    );
    assert!(
        err.contains(&format!("not ready to post: store {store}")),
        "{err}"
    );
    let (ok, _, err) = els(&sb, &["doctor", "--db", db, "--store", "42"], &token);
    assert!(!ok && err.contains("store 42 has no connection"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_register_name_and_a_currency_mismatch_are_refused_and_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();

    // Two registers called "Main": the name is refused, listing both ids; an id works.
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let ids = sb.ids();
    let a = sb.add_register("Main", &ids.outlet_id);
    let b = sb.add_register("Main", &ids.second_outlet_id);
    let Merchant {
        store,
        store_id,
        prefix,
        token,
    } = Merchant::of(&sb);
    let mut args = connect_args(db, &store, &prefix);
    args.extend(["--register", "main", "--payment-type", "Ecwid Online"]);
    let (ok, _, err) = els(&sb, &args, &token);
    assert!(!ok, "{err}");
    assert!(
        err.contains("several registers are called 'main'")
            && err.contains(&format!("[id {a}]"))
            && err.contains(&format!("[id {b}]"))
            && err.contains("Give the id instead"),
        "{err}"
    );
    assert_eq!(saved(&db_path, store_id).await, None);
    let mut args = connect_args(db, &store, &prefix);
    args.extend(["--register", &b, "--payment-type", "Ecwid Online"]);
    let (ok, out, err) = els(&sb, &args, &token);
    assert!(ok, "{out}\n{err}");
    let conn = saved(&db_path, store_id).await.expect("saved");
    assert_eq!(
        (conn.register_id.as_str(), conn.outlet_id.as_str()),
        (b.as_str(), ids.second_outlet_id.as_str())
    );

    // A store that sells in CAD cannot be joined to a retailer that counts in USD.
    let cad = Sandbox::start(SandboxConfig {
        ecwid_currency: Some("CAD".into()),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let other = tempfile::tempdir().unwrap();
    let other_db = other.path().join("els.sqlite");
    let mut args = connect_args(other_db.to_str().unwrap(), &store, &prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
    ]);
    let (ok, _, err) = els(&cad, &args, &token);
    assert!(
        !ok && err.contains("the Ecwid store sells in CAD but the Lightspeed retailer in USD"),
        "{err}"
    );
    assert_eq!(saved(&other_db, store_id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_refreshes_a_revoked_oauth_token_before_judging_it() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let mode = els_sandbox::OAuthMode::default();
    sb.enable_ls_oauth(mode.clone());
    let first = sb.ls_oauth_tokens().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    let Merchant {
        store,
        store_id,
        prefix,
        token,
    } = Merchant::of(&sb);
    let run = |args: &[&str], app: bool| {
        let mut c = command(&sb, &token);
        c.env("LIGHTSPEED_TOKEN", &first.access_token)
            .env("LIGHTSPEED_REFRESH_TOKEN", &first.refresh_token);
        if app {
            c.env("LIGHTSPEED_CLIENT_ID", &mode.client_id)
                .env("LIGHTSPEED_CLIENT_SECRET", &mode.client_secret);
        } else {
            c.env_remove("LIGHTSPEED_CLIENT_ID")
                .env_remove("LIGHTSPEED_CLIENT_SECRET");
        }
        let out = c.args(args).output().expect("els runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let mut args = connect_args(db, &store, &prefix);
    args.extend([
        "--register",
        "Web Store Register",
        "--payment-type",
        "Ecwid Online",
    ]);
    let (ok, out) = run(&args, true);
    assert!(ok, "{out}");

    // Lightspeed revokes the access token. Without the OAuth app nothing can refresh it,
    // and the doctor says so; with it, the token is refreshed (and stored) first.
    sb.revoke_ls_access_token();
    let doctor = ["doctor", "--db", db, "--store", &store];
    let (ok, out) = run(&doctor, false);
    assert!(
        !ok && out.contains("FAIL  Lightspeed token") && out.contains("refused the token"),
        "{out}"
    );
    let (ok, out) = run(&doctor, true);
    assert!(
        ok && out.contains(&format!("store {store}: ready")),
        "{out}"
    );
    let stored = saved(&db_path, store_id).await.unwrap();
    let now = sb.ls_oauth_tokens().unwrap();
    assert_ne!(now.access_token, first.access_token);
    assert_eq!(stored.lightspeed.access_token.expose(), now.access_token);
    assert_eq!(
        stored.lightspeed.refresh_token.unwrap().expose(),
        now.refresh_token
    );
}
