//! `els cost`: the measurement on moto and the sandbox counts what each order and each
//! store-minute does on AWS, and the dollars follow from those counts and the list prices.

use els_cli::cost_model::lines::{Assumptions, report};
use els_cli::cost_model::measure::{self, MeasureOptions};
use els_cli::cost_model::{Basis, Line, Scenario, Scope, Unit, price_lines};
use els_store_aws::metering::{DYNAMODB, KMS, SQS};
use els_tests::moto::moto_endpoint;
use rust_decimal::Decimal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_order_and_store_minute_is_counted_on_the_real_path() {
    let orders = 6;
    let m = measure::run(MeasureOptions {
        moto_endpoint: moto_endpoint().await,
        orders,
        batch_size: 1,
        worker_batch_size: 10,
        stores: 2,
        minutes: 2,
        changes_per_minute: 2,
        cold_token_cache: true,
    })
    .await
    .expect("the measurement runs");
    assert_eq!(m.posted, orders, "every order was posted");
    let n = orders as u64;
    let sqs = |op: &str| m.ingest.requests(SQS, op) + m.poster.requests(SQS, op);
    assert!(sqs("SendMessage") >= n, "a SendMessage per order");
    assert!(sqs("DeleteMessage") >= n, "a DeleteMessage per order");

    // The ledger's writes: as many as the saves the table's versions show, and they cost.
    let ledger = m.poster.item_writes("ORDER");
    assert!(ledger.units > 0.0 && m.poster.write_units() > 0.0);
    assert_eq!(
        ledger.items, m.ledger_saves,
        "ledger writes counted = ledger saves"
    );
    assert_eq!(
        m.ingest.item_writes("ORDER").items,
        0,
        "ingest writes no ledger"
    );
    assert!(
        m.ingest.item_writes("EVENT").items >= n,
        "ingest records each event"
    );
    // The order path's two cuts: a typical order's ledger saves (claim, renewal, posted)
    // leave its PENDING# item alone, so none is a transaction; and a cold token cache
    // costs one Decrypt per order (the connection's tokens are one ciphertext).
    assert_eq!(m.poster.requests(DYNAMODB, "TransactWriteItems"), 0);
    assert_eq!(m.poster.item_writes("PENDING").items, 0);
    assert_eq!(
        m.poster.requests(KMS, "Decrypt"),
        n,
        "one Decrypt per order"
    );
    assert_eq!(m.ingest.service_requests(KMS), 0, "ingest has no key");

    // The inventory schedule reads connections through the index, never by Scan.
    for phase in [&m.tick, &m.worker] {
        assert_eq!(phase.requests(DYNAMODB, "Scan"), 0);
    }
    assert!(
        m.tick.requests(DYNAMODB, "Query") >= 2,
        "one index Query per tick"
    );
    assert!(
        m.worker.requests(SQS, "ReceiveMessage") >= 2,
        "jobs received each minute"
    );

    // The report's dollars are the counts times the prices.
    let r = report(&m, &Assumptions::default());
    let send = r
        .table
        .per_order
        .iter()
        .find(|p| p.line.service == SQS && p.line.item == "SendMessage")
        .expect("a SendMessage line");
    assert_eq!(send.line.basis, Basis::Measured);
    let billed = m.ingest.get(SQS, "SendMessage").unwrap().billed_requests;
    let expected = Decimal::from(billed) / Decimal::from(n) * Decimal::new(50, 2);
    assert_eq!(send.dollars.round_dp(6), expected.round_dp(6));
    assert!(
        r.table
            .per_order
            .iter()
            .filter(|p| p.line.service == DYNAMODB)
            .all(|p| p.line.basis == Basis::Computed),
        "moto's capacity is a placeholder: DynamoDB units are computed from item sizes"
    );
    assert!(!r.table.dominant.is_empty());
}

#[test]
fn dollars_follow_from_counts_and_list_prices() {
    let d = |m: i64, s: u32| Decimal::new(m, s);
    let lines = vec![
        // 3 × $0.50 per million = $1.50 per million orders.
        Line::new(
            Scope::PerOrder,
            "SQS",
            "SendMessage",
            d(3, 0),
            Unit::SqsFifoRequest,
            Basis::Measured,
        ),
        // 12 × $0.625 per million = $7.50.
        Line::new(
            Scope::PerOrder,
            "DynamoDB",
            "writes",
            d(12, 0),
            Unit::DynamoWriteUnit,
            Basis::Computed,
        ),
        // 2 × $0.03 per 10,000 = $6.00 per million.
        Line::new(
            Scope::PerOrder,
            "KMS",
            "Decrypt",
            d(2, 0),
            Unit::KmsRequest,
            Basis::Measured,
        ),
        // 3 × $0.625 per million × 43,200 = $0.081 per store-month.
        Line::new(
            Scope::PerStoreMinute,
            "DynamoDB",
            "cursor writes",
            d(3, 0),
            Unit::DynamoWriteUnit,
            Basis::Computed,
        ),
        // 0.01 GB-s × $0.0000133334 × 43,200 = $0.0057600288.
        Line::new(
            Scope::PerStoreMinute,
            "Lambda",
            "duration",
            d(1, 2),
            Unit::LambdaGbSecondArm64,
            Basis::Measured,
        ),
    ];
    let t = price_lines(
        lines,
        Scenario {
            orders_per_month: 2_000_000,
            stores: 100,
            goal_per_million_orders: d(15, 0),
        },
    );
    let dollars: Vec<Decimal> = t.per_order.iter().map(|p| p.dollars.normalize()).collect();
    assert_eq!(dollars, vec![d(150, 2), d(750, 2), d(600, 2)]);
    assert_eq!(t.dollars_per_million_orders.normalize(), d(15, 0));
    assert_eq!(t.per_store_minute[0].dollars.normalize(), d(81, 3));
    assert_eq!(t.per_store_minute[1].dollars.normalize(), d(57_600_288, 10));
    assert_eq!(t.dollars_per_store_month.normalize(), d(867_600_288, 10));
    // A month: 2 million orders ($30) and 100 stores ($8.67600288).
    assert_eq!(t.monthly_orders_dollars.normalize(), d(30, 0));
    assert_eq!(t.monthly_dollars.normalize(), d(3_867_600_288, 8));
    assert_eq!(t.all_in_per_million_orders.normalize(), d(1_933_800_144, 8));
    assert!(!t.within_goal);
    assert_eq!(t.dominant, "DynamoDB writes (per order)");
}
