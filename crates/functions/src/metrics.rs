//! Custom CloudWatch metrics as **Embedded Metric Format** (EMF) lines on stdout.
//!
//! Lambda sends every stdout line to the function's log group, and CloudWatch Logs turns a
//! line that is an EMF document into metric data points: no `PutMetricData` call, no extra
//! permission, no latency on the request path. One line is one JSON object:
//!
//! ```json
//! {"_aws":{"Timestamp":1764237601000,"CloudWatchMetrics":[{"Namespace":"EcwidLightspeedSync",
//!   "Dimensions":[["Reason"]],"Metrics":[{"Name":"OrdersParked","Unit":"Count"}]}]},
//!  "OrdersParked":2,"Reason":"UNKNOWN_SKU"}
//! ```
//!
//! (on one line). The namespace is `METRICS_NAMESPACE` (the template sets it from its
//! `MetricsNamespace` parameter, which its alarms and dashboard read too), by default
//! [`DEFAULT_NAMESPACE`].
//!
//! **Dimensions.** CloudWatch bills every distinct combination of name and dimension values
//! as its own metric, so no metric is ever split by store, order or anything unbounded. The
//! only dimension is [`Dimension::Reason`], a parked order's [`ReasonCode`] (a fixed set),
//! and the type allows no other.
//!
//! **Using it.** One call writes one line; every value in it shares the dimensions:
//!
//! ```no_run
//! use els_functions::metrics::{self, Unit};
//!
//! // What store-worker reports after a batch of sweep jobs (no dimension):
//! metrics::emit(
//!     &[
//!         (metrics::SWEEP_FINDS, 3.0, Unit::Count),
//!         (metrics::SWEEP_RUN_DURATION, 8_250.0, Unit::Milliseconds),
//!         (metrics::STORES_UNHEALTHY, 0.0, Unit::Count),
//!     ],
//!     &[],
//! );
//! ```
//!
//! [`emit`] writes to stdout; [`emit_to`] writes the same line to any [`Write`] (tests), and
//! [`document`] builds it as a [`serde_json::Value`]. Metrics are best effort: a line that
//! cannot be written is logged and dropped, never an error of the invocation.
//!
//! Who emits what (the alarms in `template.yaml` name these, and
//! `crates/functions/tests/template.rs` checks every name they use is in [`ALL`]):
//!
//! | metric | unit | dimension | emitted by |
//! |---|---|---|---|
//! | [`ORDERS_POSTED`] | Count | | sale-poster: orders posted or adopted, per invocation (0 too) |
//! | [`ORDERS_PARKED`] | Count | `Reason` | sale-poster: orders answered parked, and refunds held, per reason |
//! | [`ORDERS_DEAD_LETTERED`] | Count | | sale-poster: records settled on their last receive (0 too) |
//! | [`OLDEST_QUEUED_ORDER_AGE`] | Seconds | | sale-poster: the oldest record of the batch |
//! | [`MIRROR_JOBS_ENQUEUED`] | Count | | inventory-sync: store jobs the tick enqueued |
//! | [`MIRROR_TICKS_COMPLETED`] | Count | | inventory-sync: 1 when every store with inventory on got its job |
//! | [`STOCK_LEVELS_WRITTEN`] | Count | | store-worker: levels written to Ecwid by the invocation's runs |
//! | [`MIRROR_RUN_DURATION`] | Milliseconds | | store-worker: the invocation's longest store run |
//! | [`MIRROR_STORES_FAILED`] | Count | | store-worker: store runs that failed (retried alone) |
//! | [`MIRROR_JOB_LAG`] | Milliseconds | | store-worker: the longest wait from enqueued to run |
//! | [`SWEEP_JOBS_ENQUEUED`] | Count | | order-sweep: store jobs the tick enqueued |
//! | [`SWEEP_TICKS_COMPLETED`] | Count | | order-sweep: 1 when every store that posts got its job |
//! | [`SWEEP_FINDS`] | Count | | store-worker: orders its sweeps found and queued |
//! | [`SWEEP_RUN_DURATION`] | Milliseconds | | store-worker: the invocation's longest store sweep |
//! | [`STORES_UNHEALTHY`] | Count | | store-worker: stores its sweeps judged unhealthy |

use els_core::ledger::ReasonCode;
use serde_json::{Map, Value, json};
use std::io::{self, Write};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that names the CloudWatch namespace.
pub const NAMESPACE_VAR: &str = "METRICS_NAMESPACE";
/// The namespace when [`NAMESPACE_VAR`] is unset or blank (the template's default too).
pub const DEFAULT_NAMESPACE: &str = "EcwidLightspeedSync";

/// The one dimension's name: a parked order's reason code.
pub const REASON: &str = "Reason";

/// sale-poster: orders posted as a Lightspeed sale, or adopted (an earlier attempt's sale
/// found by its invoice number).
pub const ORDERS_POSTED: &str = "OrdersPosted";
/// sale-poster: orders answered "parked", by [`Dimension::Reason`].
pub const ORDERS_PARKED: &str = "OrdersParked";
/// sale-poster: records whose last receive failed: the order is parked `DEAD_LETTERED` and
/// the message goes on to the dead-letter queue.
pub const ORDERS_DEAD_LETTERED: &str = "OrdersDeadLettered";
/// sale-poster: the age of the oldest message of a batch when the invocation started
/// (now − its `SentTimestamp`).
pub const OLDEST_QUEUED_ORDER_AGE: &str = "OldestQueuedOrderAge";
/// store-worker: stock levels written to Ecwid by one invocation (its stores' runs).
pub const STOCK_LEVELS_WRITTEN: &str = "StockLevelsWritten";
/// store-worker: the longest store run of one invocation.
pub const MIRROR_RUN_DURATION: &str = "MirrorRunDuration";
/// store-worker: store runs that failed (their jobs come back and are retried alone).
pub const MIRROR_STORES_FAILED: &str = "MirrorStoresFailed";
/// store-worker: the longest wait of one invocation's jobs, from enqueued to run.
pub const MIRROR_JOB_LAG: &str = "MirrorJobLag";
/// inventory-sync: store jobs one tick enqueued.
pub const MIRROR_JOBS_ENQUEUED: &str = "MirrorJobsEnqueued";
/// inventory-sync: 1 per tick that enqueued a job for every store with inventory on.
pub const MIRROR_TICKS_COMPLETED: &str = "MirrorTicksCompleted";
/// order-sweep: store jobs one tick enqueued.
pub const SWEEP_JOBS_ENQUEUED: &str = "SweepJobsEnqueued";
/// order-sweep: 1 per tick that enqueued a job for every store that posts sales or refunds.
pub const SWEEP_TICKS_COMPLETED: &str = "SweepTicksCompleted";
/// store-worker: orders the sweep found missing and queued.
pub const SWEEP_FINDS: &str = "SweepFinds";
/// store-worker: the longest store sweep of one invocation.
pub const SWEEP_RUN_DURATION: &str = "SweepRunDuration";
/// store-worker: how many stores its sweeps judged unhealthy.
pub const STORES_UNHEALTHY: &str = "StoresUnhealthy";

/// Every metric name the functions emit.
pub const ALL: &[&str] = &[
    ORDERS_POSTED,
    ORDERS_PARKED,
    ORDERS_DEAD_LETTERED,
    OLDEST_QUEUED_ORDER_AGE,
    STOCK_LEVELS_WRITTEN,
    MIRROR_RUN_DURATION,
    MIRROR_STORES_FAILED,
    MIRROR_JOB_LAG,
    MIRROR_JOBS_ENQUEUED,
    MIRROR_TICKS_COMPLETED,
    SWEEP_JOBS_ENQUEUED,
    SWEEP_TICKS_COMPLETED,
    SWEEP_FINDS,
    SWEEP_RUN_DURATION,
    STORES_UNHEALTHY,
];

/// A CloudWatch unit (the ones these metrics use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A dimension of a line. Only bounded sets are allowed: never a store or an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// `Reason` = a parked order's reason code, e.g. `UNKNOWN_SKU`.
    Reason(ReasonCode),
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Reason(_) => REASON,
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Dimension::Reason(code) => code.as_str(),
        }
    }
}

/// One value of a line: the metric's name (one of [`ALL`]), the value, its unit.
pub type Sample = (&'static str, f64, Unit);

/// The namespace: [`NAMESPACE_VAR`], read once, else [`DEFAULT_NAMESPACE`].
pub fn namespace() -> &'static str {
    static NAMESPACE: OnceLock<String> = OnceLock::new();
    NAMESPACE.get_or_init(|| namespace_from(std::env::var(NAMESPACE_VAR).ok()))
}

fn namespace_from(value: Option<String>) -> String {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// Milliseconds since the Unix epoch, now: an EMF `Timestamp`.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes one EMF line to stdout, in [`namespace`], stamped now. Nothing is written for no
/// samples. A failed write is logged, not returned.
pub fn emit(samples: &[Sample], dimensions: &[Dimension]) {
    let written = emit_to(
        &mut io::stdout().lock(),
        namespace(),
        now_millis(),
        samples,
        dimensions,
    );
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not write a metrics line");
    }
}

/// Writes one EMF line (the [`document`] and a newline, in a single write so that it is
/// never interleaved with a log line) to `out`.
pub fn emit_to(
    out: &mut impl Write,
    namespace: &str,
    timestamp_ms: u64,
    samples: &[Sample],
    dimensions: &[Dimension],
) -> io::Result<()> {
    let Some(document) = document(namespace, timestamp_ms, samples, dimensions) else {
        return Ok(());
    };
    let mut line = serde_json::to_vec(&document).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// The EMF document of one line; `None` when there is nothing to write. Values that are not
/// finite are left out (JSON has no NaN), and so is a second value for a name, or a second
/// dimension of the same name: EMF allows each member once.
pub fn document(
    namespace: &str,
    timestamp_ms: u64,
    samples: &[Sample],
    dimensions: &[Dimension],
) -> Option<Value> {
    let mut root = Map::new();
    let mut definitions = Vec::new();
    let mut keys = Vec::new();
    for dimension in dimensions {
        if root.contains_key(dimension.name()) {
            continue;
        }
        root.insert(dimension.name().into(), dimension.value().into());
        keys.push(dimension.name());
    }
    for &(name, value, unit) in samples {
        debug_assert!(ALL.contains(&name), "metric {name} is not in metrics::ALL");
        if !value.is_finite() || root.contains_key(name) {
            continue;
        }
        root.insert(name.into(), json!(value));
        definitions.push(json!({ "Name": name, "Unit": unit.as_str() }));
    }
    if definitions.is_empty() {
        return None;
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [keys],
                "Metrics": definitions,
            }],
        }),
    );
    Some(Value::Object(root))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The lines written to `out`, each parsed back.
    pub(crate) fn parse_lines(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).expect("UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    /// Checks that `line` is a valid EMF document in `namespace` (every declared metric and
    /// dimension is a member of the root) and returns its metrics as name → (value, unit),
    /// and its dimensions as name → value.
    pub(crate) fn read_emf(
        line: &Value,
        namespace: &str,
    ) -> (
        std::collections::BTreeMap<String, (f64, String)>,
        std::collections::BTreeMap<String, String>,
    ) {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1, "{line}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], namespace, "{line}");
        let sets = directive["Dimensions"].as_array().expect("dimension sets");
        assert_eq!(sets.len(), 1, "{line}");
        let dimensions: std::collections::BTreeMap<String, String> = sets[0]
            .as_array()
            .expect("a dimension set")
            .iter()
            .map(|k| {
                let k = k.as_str().expect("a dimension name");
                let v = line[k].as_str().expect("a dimension value is a string");
                (k.to_string(), v.to_string())
            })
            .collect();
        let metrics: std::collections::BTreeMap<String, (f64, String)> = directive["Metrics"]
            .as_array()
            .expect("metric definitions")
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().expect("Name");
                let value = line[name].as_f64().expect("a value for each metric");
                (
                    name.to_string(),
                    (value, m["Unit"].as_str().expect("Unit").to_string()),
                )
            })
            .collect();
        // Nothing else in the root: every other member is a metric or a dimension.
        let members: std::collections::BTreeSet<&str> = line
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "_aws")
            .collect();
        let declared: std::collections::BTreeSet<&str> = metrics
            .keys()
            .chain(dimensions.keys())
            .map(String::as_str)
            .collect();
        assert_eq!(members, declared, "{line}");
        (metrics, dimensions)
    }

    #[test]
    fn a_line_without_dimensions_names_each_value_it_carries() {
        let mut out = Vec::new();
        emit_to(
            &mut out,
            DEFAULT_NAMESPACE,
            1_764_237_601_000,
            &[
                (SWEEP_FINDS, 3.0, Unit::Count),
                (SWEEP_RUN_DURATION, 8250.0, Unit::Milliseconds),
            ],
            &[],
        )
        .expect("written");

        let lines = parse_lines(&out);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["_aws"]["Timestamp"], 1_764_237_601_000u64);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        let (metrics, dimensions) = read_emf(line, "EcwidLightspeedSync");
        assert!(dimensions.is_empty());
        assert_eq!(
            metrics,
            [
                ("SweepFinds".to_string(), (3.0, "Count".to_string())),
                (
                    "SweepRunDuration".to_string(),
                    (8250.0, "Milliseconds".to_string())
                ),
            ]
            .into()
        );
    }

    #[test]
    fn the_reason_dimension_is_the_reason_code() {
        let mut out = Vec::new();
        emit_to(
            &mut out,
            "Custom/Space",
            1,
            &[(ORDERS_PARKED, 2.0, Unit::Count)],
            &[Dimension::Reason(ReasonCode::UnknownSku)],
        )
        .expect("written");

        let line = &parse_lines(&out)[0];
        let (metrics, dimensions) = read_emf(line, "Custom/Space");
        assert_eq!(
            dimensions,
            [("Reason".to_string(), "UNKNOWN_SKU".to_string())].into()
        );
        assert_eq!(metrics["OrdersParked"], (2.0, "Count".to_string()));
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Reason"]])
        );
    }

    #[test]
    fn nothing_to_write_writes_nothing_and_bad_values_are_left_out() {
        let mut out = Vec::new();
        emit_to(&mut out, DEFAULT_NAMESPACE, 1, &[], &[]).expect("written");
        emit_to(
            &mut out,
            DEFAULT_NAMESPACE,
            1,
            &[(ORDERS_POSTED, f64::NAN, Unit::Count)],
            &[],
        )
        .expect("written");
        assert!(out.is_empty());

        let doc = document(
            DEFAULT_NAMESPACE,
            1,
            &[
                (ORDERS_POSTED, 1.0, Unit::Count),
                (ORDERS_POSTED, 5.0, Unit::Count),
                (OLDEST_QUEUED_ORDER_AGE, f64::INFINITY, Unit::Seconds),
            ],
            &[
                Dimension::Reason(ReasonCode::TaxNotMapped),
                Dimension::Reason(ReasonCode::BlankSku),
            ],
        )
        .expect("a document");
        let (metrics, dimensions) = read_emf(&doc, DEFAULT_NAMESPACE);
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics["OrdersPosted"].0, 1.0);
        assert_eq!(dimensions["Reason"], "TAX_NOT_MAPPED");
    }

    #[test]
    fn the_namespace_defaults_when_unset_or_blank() {
        assert_eq!(namespace_from(None), "EcwidLightspeedSync");
        assert_eq!(namespace_from(Some("  ".into())), "EcwidLightspeedSync");
        assert_eq!(namespace_from(Some(" Staging/Els ".into())), "Staging/Els");
    }

    #[test]
    fn metric_names_are_distinct_and_never_a_dimension_or_reserved_member() {
        let names: std::collections::BTreeSet<_> = ALL.iter().collect();
        assert_eq!(names.len(), ALL.len());
        for name in ALL {
            assert!(*name != REASON && *name != "_aws", "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}: plain names only"
            );
        }
    }
}
