//! The client's returns against the sandbox, on both API generations: a sale read back, a
//! return started and completed, the refusals, and the unknown outcomes of dropped answers.

use std::time::Duration;

use els_core::lightspeed::{LsApiVersion, SaleDraft, SaleLine, SalePayment};
use els_core::{ApiError, Connection, LightspeedApi};
use els_lightspeed::LightspeedClient;
use els_sandbox::{Fault, FaultKind, Route, Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const VERSIONS: [LsApiVersion; 2] = [LsApiVersion::Legacy, LsApiVersion::LATEST];

fn connection(sb: &Sandbox) -> Connection {
    let ids = sb.ids();
    serde_json::from_value(serde_json::json!({
        "store_id": sb.config().ecwid_store_id,
        "ecwid_token": sb.config().ecwid_token,
        "lightspeed": {"domain_prefix": sb.config().ls_domain_prefix,
                       "access_token": sb.config().ls_token},
        "register_id": ids.register_id, "outlet_id": ids.outlet_id, "user_id": ids.user_id,
        "payment_type_id": ids.payment_type_id, "version": 1
    }))
    .expect("a connection")
}

fn client(sb: &Sandbox, version: LsApiVersion) -> LightspeedClient {
    LightspeedClient::new(
        format!("{}/lightspeed/{{domain_prefix}}", sb.base_url()),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_api_version(version)
}

/// A closed draft of `qty` (negative: a return) mugs at 12 + 1.20 tax, paid in full.
fn draft(sb: &Sandbox, invoice: &str, qty: Decimal, return_for: Option<&str>) -> SaleDraft {
    let ids = sb.ids();
    let date = "2026-11-27T10:00:00Z".to_string();
    SaleDraft {
        register_id: ids.register_id.clone(),
        user_id: ids.user_id.clone(),
        customer_id: None,
        sale_date: date.clone(),
        status: "CLOSED".into(),
        note: format!("Ecwid order {invoice}"),
        invoice_number: invoice.into(),
        source: "ecwid".into(),
        source_id: invoice.into(),
        return_for: return_for.map(str::to_string),
        register_sale_products: vec![SaleLine {
            product_id: ids.mug.ls_id().to_string(),
            quantity: qty,
            price: dec!(12),
            tax: dec!(1.2),
            tax_id: ids.tax_10_id.clone(),
            discount: Decimal::ZERO,
            price_set: 1,
            status: "CONFIRMED".into(),
            sku: String::new(),
        }],
        register_sale_payments: vec![SalePayment {
            register_id: ids.register_id.clone(),
            retailer_payment_type_id: ids.payment_type_id.clone(),
            payment_date: date,
            amount: qty * dec!(13.2),
        }],
    }
}

async fn sandbox(cfg: SandboxConfig) -> Sandbox {
    Sandbox::start(cfg).await.expect("sandbox starts")
}

#[tokio::test]
async fn a_return_is_started_completed_and_read_back_on_both_generations() {
    for version in VERSIONS {
        let sb = sandbox(SandboxConfig::default()).await;
        let (ls, conn) = (client(&sb, version), connection(&sb));
        let ids = sb.ids();
        let mug = ids.mug.ls_id().to_string();
        let posted = ls
            .post_sale(&conn, &draft(&sb, "ECWID-1003-7", dec!(2), None))
            .await
            .unwrap();

        let sale = ls.get_sale(&conn, &posted.id).await.unwrap().unwrap();
        assert_eq!(sale.status, "CLOSED", "{version:?}");
        assert!(sale.is_closed());
        assert_eq!(sale.return_for, None);
        assert_eq!(sale.total(), dec!(26.4));
        assert_eq!(sale.payments[0].amount, dec!(26.4));
        assert_eq!(sale.register_id.as_deref(), Some(ids.register_id.as_str()));
        assert_eq!(ls.get_sale(&conn, "no-such-sale").await.unwrap(), None);

        let started = ls.start_return(&conn, &posted.id).await.unwrap();
        assert_eq!(started.status, "SAVED", "{version:?}");
        assert_eq!(started.return_for.as_deref(), Some(posted.id.as_str()));
        assert_eq!(started.lines[0].product_id, mug);
        assert_eq!(started.lines[0].quantity, dec!(-2));
        assert_eq!(started.total(), dec!(-26.4));

        let ret = draft(&sb, "ECWID-1003-7-R1", dec!(-1), Some(&posted.id));
        let done = ls.complete_return(&conn, &started.id, &ret).await.unwrap();
        assert_eq!(done.id, started.id);
        assert_eq!(done.total, Some(dec!(-13.2)));
        let read = ls.get_sale(&conn, &started.id).await.unwrap().unwrap();
        assert!(read.is_closed(), "{version:?}: {read:?}");
        assert_eq!(read.return_for.as_deref(), Some(posted.id.as_str()));
        assert_eq!(read.total(), dec!(-13.2));
        assert_eq!(read.payments[0].amount, dec!(-13.2));
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(29));
        assert_eq!(sb.returns_for(&posted.id)[0].status, "CLOSED");

        // A closed return is not completed twice; a parked sale is not returned.
        match ls.complete_return(&conn, &started.id, &ret).await {
            Err(ApiError::Rejected { status: 409, .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        match ls.start_return(&conn, &started.id).await {
            Err(ApiError::Rejected { status: 422, .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        // Returning more than is left: 422.
        let again = ls.start_return(&conn, &posted.id).await.unwrap();
        let too_many = draft(&sb, "ECWID-1003-7-R2", dec!(-2), Some(&posted.id));
        match ls.complete_return(&conn, &again.id, &too_many).await {
            Err(ApiError::Rejected { status: 422, .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(29));
    }
}

#[tokio::test]
async fn dropped_answers_are_unknown_outcomes() {
    for version in VERSIONS {
        let sb = sandbox(SandboxConfig::default()).await;
        let (ls, conn) = (client(&sb, version), connection(&sb));
        let posted = ls
            .post_sale(&conn, &draft(&sb, "ECWID-1003-8", dec!(1), None))
            .await
            .unwrap();

        sb.inject(Fault::once(
            Route::LsStartReturn,
            FaultKind::DropAfterCommit,
        ));
        match ls.start_return(&conn, &posted.id).await {
            Err(ApiError::OutcomeUnknown { .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        let started = sb.returns_for(&posted.id)[0].id.clone();

        let ret = draft(&sb, "ECWID-1003-8-R1", dec!(-1), Some(&posted.id));
        sb.inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
        match ls.complete_return(&conn, &started, &ret).await {
            Err(ApiError::OutcomeUnknown { .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        sb.inject(Fault::once(Route::LsPostSale, FaultKind::Status(503)));
        match ls.complete_return(&conn, &started, &ret).await {
            Err(ApiError::OutcomeUnknown { .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        // The first attempt committed: the return is closed once, and says so.
        let returns = sb.returns_for(&posted.id);
        assert_eq!(returns.len(), 1);
        assert_eq!(returns[0].status, "CLOSED");
        let read = ls.get_sale(&conn, &started).await.unwrap().unwrap();
        assert!(read.is_closed());
    }
}

#[tokio::test]
async fn the_published_example_shape_of_a_dated_start_reads_too() {
    let sb = sandbox(SandboxConfig {
        ls_dated_return_example_shape: true,
        ..SandboxConfig::default()
    })
    .await;
    let (ls, conn) = (client(&sb, LsApiVersion::LATEST), connection(&sb));
    let posted = ls
        .post_sale(&conn, &draft(&sb, "ECWID-1003-9", dec!(1), None))
        .await
        .unwrap();
    let started = ls.start_return(&conn, &posted.id).await.unwrap();
    assert_eq!(started.status, "SAVED");
    assert_eq!(started.return_for.as_deref(), Some(posted.id.as_str()));
    assert_eq!(started.total(), dec!(-13.2));
}
