//! From a [`Measurement`] to the model's [`Line`]s: which quantity is measured, computed,
//! derived or estimated, and why.

use super::measure::{MeasureOptions, Measurement, operations};
use super::{
    BYTES_PER_GB, Basis, CostTable, Line, PRICES, Price, Scenario, Scope, Unit, decimal,
    price_lines,
};
use els_store_aws::metering::{DYNAMODB, KMS, Metered, OperationCount, SQS};
use rust_decimal::Decimal;
use serde::Serialize;

/// What the model assumes beyond the measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Assumptions {
    /// Memory of each function, MB (template.yaml `MemorySize`: 256 for all).
    pub memory_mb: u32,
    /// template.yaml `Architectures: [arm64]`; false: x86_64.
    pub arm64: bool,
    /// Bytes Lambda writes per invocation itself (JSON `platform.start`,
    /// `platform.report` and the like). Estimate.
    pub platform_log_bytes: u64,
    /// Bytes of one API Gateway access-log line (template.yaml `AccessLogSettings`).
    /// Estimate.
    pub access_log_bytes: u64,
    /// Minutes a decrypted token stays cached (`TokenCipher::DEFAULT_CACHE_TTL`).
    pub token_cache_minutes: u32,
    pub scenario: Scenario,
}

impl Default for Assumptions {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            arm64: true,
            platform_log_bytes: 700,
            access_log_bytes: 250,
            token_cache_minutes: 15,
            scenario: Scenario::goal(),
        }
    }
}

/// Everything `els cost` reports (and prints as JSON with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub orders: usize,
    pub store_minutes: usize,
    pub options: OptionsOut,
    pub assumptions: Assumptions,
    pub prices: Vec<Price>,
    pub prices_taken: &'static str,
    /// Per phase, every AWS operation counted.
    pub ingest: Vec<OperationCount>,
    pub poster: Vec<OperationCount>,
    pub tick: Vec<OperationCount>,
    pub worker: Vec<OperationCount>,
    pub ingest_secs: f64,
    pub poster_secs: f64,
    pub tick_secs: f64,
    pub worker_secs: f64,
    pub poster_invocations: u64,
    pub worker_invocations: u64,
    pub cold_decrypts_per_store: f64,
    pub posted: usize,
    pub ledger_saves: u64,
    pub table: CostTable,
}

/// The run's options, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct OptionsOut {
    pub batch_size: usize,
    pub worker_batch_size: usize,
    pub stores: usize,
    pub minutes: usize,
    pub changes_per_minute: usize,
    pub cold_token_cache: bool,
}

impl From<&MeasureOptions> for OptionsOut {
    fn from(o: &MeasureOptions) -> Self {
        Self {
            batch_size: o.batch_size,
            worker_batch_size: o.worker_batch_size,
            stores: o.stores,
            minutes: o.minutes,
            changes_per_minute: o.changes_per_minute,
            cold_token_cache: o.cold_token_cache,
        }
    }
}

/// The per-operation lines of one service in `m`, divided by `per`.
fn service_lines(scope: Scope, m: &Metered, per: f64, function: &str, out: &mut Vec<Line>) {
    for c in m.operations() {
        let q = |v: f64| decimal(v / per);
        let r = |v: f64| format!("{:.2}", v / per);
        match c.service.as_str() {
            SQS => out.push(
                Line::new(
                    scope,
                    SQS,
                    &c.operation,
                    q(c.billed_requests as f64),
                    Unit::SqsFifoRequest,
                    Basis::Measured,
                )
                .note(format!("{function}; 64 KB chunks")),
            ),
            KMS => out.push(
                Line::new(
                    scope,
                    KMS,
                    &c.operation,
                    q(c.requests as f64),
                    Unit::KmsRequest,
                    Basis::Measured,
                )
                .note(function.to_string()),
            ),
            DYNAMODB => {
                if c.write_units > 0.0 {
                    let classes: Vec<String> = c
                        .writes_by_class
                        .iter()
                        .map(|(k, w)| format!("{k} {}", r(w.units)))
                        .collect();
                    out.push(
                        Line::new(
                            scope,
                            DYNAMODB,
                            format!("{} writes", c.operation),
                            q(c.write_units),
                            Unit::DynamoWriteUnit,
                            Basis::Computed,
                        )
                        .note(format!(
                            "{function}; {} request(s); units by item: {}",
                            r(c.requests as f64),
                            classes.join(", ")
                        )),
                    );
                }
                if c.read_units > 0.0 {
                    out.push(
                        Line::new(
                            scope,
                            DYNAMODB,
                            format!("{} reads", c.operation),
                            q(c.read_units),
                            Unit::DynamoReadUnit,
                            Basis::Computed,
                        )
                        .note(format!("{function}; {} request(s)", r(c.requests as f64))),
                    );
                }
            }
            _ => {}
        }
    }
}

fn gb_seconds(secs: f64, memory_mb: u32) -> f64 {
    secs * f64::from(memory_mb) / 1024.0
}

/// The model's lines for `m` under `a`.
pub fn lines(m: &Measurement, a: &Assumptions) -> Vec<Line> {
    let n = m.options.orders as f64;
    let sm = m.store_minutes() as f64;
    let gbs = if a.arm64 {
        Unit::LambdaGbSecondArm64
    } else {
        Unit::LambdaGbSecondX86
    };
    let gb = BYTES_PER_GB as f64;
    let mut out = Vec::new();
    let o = Scope::PerOrder;
    let s = Scope::PerStoreMinute;

    // Per order.
    service_lines(o, &m.ingest, n, "webhook-ingest", &mut out);
    service_lines(o, &m.poster, n, "sale-poster", &mut out);
    out.push(
        Line::new(
            o,
            "API Gateway",
            "HTTP API request",
            Decimal::ONE,
            Unit::HttpApiRequest,
            Basis::Derived,
        )
        .note("one per webhook delivery (Ecwid retries would add more)"),
    );
    out.push(
        Line::new(
            o,
            "Lambda",
            "webhook-ingest invocations",
            Decimal::ONE,
            Unit::LambdaRequest,
            Basis::Derived,
        )
        .note("one per webhook"),
    );
    let poster_invocations = m.poster_invocations as f64 / n;
    out.push(
        Line::new(
            o,
            "Lambda",
            "sale-poster invocations",
            decimal(poster_invocations),
            Unit::LambdaRequest,
            Basis::Derived,
        )
        .note(format!(
            "one per SQS batch of up to {} (receives that returned messages)",
            m.options.batch_size
        )),
    );
    for (function, secs) in [
        ("webhook-ingest", m.ingest_secs),
        ("sale-poster", m.poster_secs),
    ] {
        out.push(
            Line::new(o, "Lambda", format!("{function} duration"), decimal(gb_seconds(secs, a.memory_mb) / n), gbs, Basis::Measured)
                .note(format!("floor: local wall time {:.1} ms per order x {} MB (flag; template.yaml MemorySize); the real APIs are slower than the sandbox", 1000.0 * secs / n, a.memory_mb)),
        );
    }
    let order_logs = (m.ingest_log_bytes + m.poster_log_bytes) as f64 / n;
    out.push(
        Line::new(
            o,
            "CloudWatch Logs",
            "function log lines",
            decimal(order_logs / gb),
            Unit::LogsGb,
            Basis::Measured,
        )
        .note(format!(
            "{order_logs:.0} bytes per order in the functions' JSON format at info"
        )),
    );
    let platform =
        (1.0 + poster_invocations) * a.platform_log_bytes as f64 + a.access_log_bytes as f64;
    out.push(
        Line::new(
            o,
            "CloudWatch Logs",
            "Lambda platform and API access lines",
            decimal(platform / gb),
            Unit::LogsGb,
            Basis::Estimate,
        )
        .note(format!(
            "{} bytes per invocation, {} per access-log line",
            a.platform_log_bytes, a.access_log_bytes
        )),
    );

    // Per store-minute.
    service_lines(s, &m.tick, sm, "inventory-sync tick", &mut out);
    service_lines(
        s,
        &m.worker,
        sm,
        "store-worker (and its SQS event source)",
        &mut out,
    );
    out.push(
        Line::new(s, KMS, "Decrypt on token cache expiry", decimal(m.cold_decrypts_per_store / f64::from(a.token_cache_minutes)), Unit::KmsRequest, Basis::Estimate)
            .note(format!("{:.1} Decrypts per store when cold (measured) every {} minutes, if warm workers keep serving the store", m.cold_decrypts_per_store, a.token_cache_minutes)),
    );
    let stores = a.scenario.stores.max(1) as f64;
    out.push(
        Line::new(
            s,
            "Lambda",
            "inventory-sync tick invocations",
            decimal(1.0 / stores),
            Unit::LambdaRequest,
            Basis::Derived,
        )
        .note(format!("one a minute, shared by {stores} stores")),
    );
    let worker_invocations = m.worker_invocations as f64 / sm;
    out.push(
        Line::new(
            s,
            "Lambda",
            "store-worker invocations",
            decimal(worker_invocations),
            Unit::LambdaRequest,
            Basis::Derived,
        )
        .note(format!(
            "one per received batch of up to {} jobs",
            m.options.worker_batch_size
        )),
    );
    for (function, secs) in [
        ("inventory-sync tick", m.tick_secs),
        ("store-worker", m.worker_secs),
    ] {
        out.push(
            Line::new(
                s,
                "Lambda",
                format!("{function} duration"),
                decimal(gb_seconds(secs, a.memory_mb) / sm),
                gbs,
                Basis::Measured,
            )
            .note(format!(
                "floor: local wall time {:.2} ms per store-minute x {} MB",
                1000.0 * secs / sm,
                a.memory_mb
            )),
        );
    }
    let store_logs = (m.tick_log_bytes + m.worker_log_bytes) as f64 / sm;
    out.push(
        Line::new(
            s,
            "CloudWatch Logs",
            "function log lines",
            decimal(store_logs / gb),
            Unit::LogsGb,
            Basis::Measured,
        )
        .note(format!("{store_logs:.0} bytes per store-minute at info")),
    );
    let platform = (worker_invocations + 1.0 / stores) * a.platform_log_bytes as f64;
    out.push(
        Line::new(
            s,
            "CloudWatch Logs",
            "Lambda platform lines",
            decimal(platform / gb),
            Unit::LogsGb,
            Basis::Estimate,
        )
        .note(format!("{} bytes per invocation", a.platform_log_bytes)),
    );
    out
}

/// The whole report of a measurement.
pub fn report(m: &Measurement, a: &Assumptions) -> CostReport {
    CostReport {
        orders: m.options.orders,
        store_minutes: m.store_minutes(),
        options: (&m.options).into(),
        assumptions: *a,
        prices: PRICES.to_vec(),
        prices_taken: super::PRICES_TAKEN,
        ingest: operations(&m.ingest),
        poster: operations(&m.poster),
        tick: operations(&m.tick),
        worker: operations(&m.worker),
        ingest_secs: m.ingest_secs,
        poster_secs: m.poster_secs,
        tick_secs: m.tick_secs,
        worker_secs: m.worker_secs,
        poster_invocations: m.poster_invocations,
        worker_invocations: m.worker_invocations,
        cold_decrypts_per_store: m.cold_decrypts_per_store,
        posted: m.posted,
        ledger_saves: m.ledger_saves,
        table: price_lines(lines(m, a), a.scenario),
    }
}
