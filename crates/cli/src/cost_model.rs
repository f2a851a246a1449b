//! The AWS cost model behind `els cost`: list prices, and the arithmetic from counts to
//! dollars. Pure: the counts come from [`measure`] (a run on moto and the sandbox), or from
//! anywhere else.
//!
//! Each [`Line`] is one quantity of one billed unit, **per order** or **per store-minute**,
//! with its [`Basis`]: measured, computed from measured item sizes, derived from the design
//! (one Lambda invocation per webhook), or an estimate. [`price_lines`] turns them into
//! dollars per million orders and per store-month (43,200 store-minutes), and into a
//! deployment's month ([`Scenario`]: the goal is $15 of AWS per million orders with 10,000
//! stores mirrored every minute), and names the line that costs the most.

pub mod lines;
pub mod measure;

use rust_decimal::Decimal;
use serde::Serialize;

/// When the prices below were taken.
pub const PRICES_TAKEN: &str = "2026-12-06";
/// Store-minutes in a 30-day month.
pub const STORE_MINUTES_PER_MONTH: u64 = 43_200;
/// The goal of the issue: AWS dollars per million orders (with [`Scenario::goal`]).
pub const GOAL_PER_MILLION_ORDERS: Decimal = Decimal::from_parts(15, 0, 0, false, 0);
/// Bytes in the GB CloudWatch Logs bills (AWS data sizes are binary gigabytes).
pub const BYTES_PER_GB: u64 = 1 << 30;

const fn d(mantissa: u32, scale: u32) -> Decimal {
    Decimal::from_parts(mantissa, 0, 0, false, scale)
}

/// A billed unit of an AWS service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// One SQS FIFO request (per started 64 KB chunk of its payload).
    SqsFifoRequest,
    /// One DynamoDB on-demand write request unit.
    DynamoWriteUnit,
    /// One DynamoDB on-demand read request unit.
    DynamoReadUnit,
    /// One Lambda invocation.
    LambdaRequest,
    /// One GB-second of Lambda duration, arm64 (the template's architecture).
    LambdaGbSecondArm64,
    /// One GB-second of Lambda duration, x86_64.
    LambdaGbSecondX86,
    /// One API Gateway HTTP API request (first 300 million a month).
    HttpApiRequest,
    /// One KMS request (Encrypt, Decrypt) on a symmetric key.
    KmsRequest,
    /// One GB of CloudWatch Logs ingested (standard class).
    LogsGb,
}

/// A us-east-1 list price: `dollars` for `per` units.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Price {
    pub unit: Unit,
    pub dollars: Decimal,
    pub per: u64,
    /// Where it is published.
    pub source: &'static str,
    /// How it was checked on [`PRICES_TAKEN`].
    pub checked: &'static str,
}

const CHECKED: &str = "checked on third-party summaries of the AWS page (2025-2026); \
                       the AWS page itself was not reachable from here: to check";

/// The list prices the model uses (us-east-1, on-demand, no free tier).
pub const PRICES: [Price; 9] = [
    Price {
        unit: Unit::SqsFifoRequest,
        dollars: d(50, 2),
        per: 1_000_000,
        source: "https://aws.amazon.com/sqs/pricing/ (FIFO requests; each 64 KB chunk is a request)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::DynamoWriteUnit,
        dollars: d(625, 3),
        per: 1_000_000,
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/ (write request units)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::DynamoReadUnit,
        dollars: d(125, 3),
        per: 1_000_000,
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/ (read request units)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::LambdaRequest,
        dollars: d(20, 2),
        per: 1_000_000,
        source: "https://aws.amazon.com/lambda/pricing/ (requests)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::LambdaGbSecondArm64,
        dollars: d(133_334, 10),
        per: 1,
        source: "https://aws.amazon.com/lambda/pricing/ (duration, Arm, first 7.5 billion GB-s)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::LambdaGbSecondX86,
        dollars: d(166_667, 10),
        per: 1,
        source: "https://aws.amazon.com/lambda/pricing/ (duration, x86, first 6 billion GB-s)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::HttpApiRequest,
        dollars: d(100, 2),
        per: 1_000_000,
        source: "https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::KmsRequest,
        dollars: d(3, 2),
        per: 10_000,
        source: "https://aws.amazon.com/kms/pricing/ (symmetric key requests)",
        checked: CHECKED,
    },
    Price {
        unit: Unit::LogsGb,
        dollars: d(50, 2),
        per: 1,
        source: "https://aws.amazon.com/cloudwatch/pricing/ (Logs, standard ingestion)",
        checked: CHECKED,
    },
];

impl Unit {
    pub fn price(self) -> &'static Price {
        PRICES
            .iter()
            .find(|p| p.unit == self)
            .expect("every unit has a price")
    }

    /// Dollars for one unit.
    pub fn dollars_each(self) -> Decimal {
        let p = self.price();
        p.dollars / Decimal::from(p.per)
    }
}

/// Where a quantity comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Counted on the real code path (requests, wall time, log bytes).
    Measured,
    /// DynamoDB units computed from the measured items' sizes by the documented rules.
    Computed,
    /// From the design, not from a count (one API Gateway request per webhook).
    Derived,
    /// Assumed; the note says what.
    Estimate,
}

impl Basis {
    pub fn label(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::Computed => "computed from item sizes",
            Self::Derived => "derived",
            Self::Estimate => "estimate",
        }
    }
}

/// What a line is counted per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    PerOrder,
    PerStoreMinute,
}

/// One quantity of one unit, per order or per store-minute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub scope: Scope,
    pub service: String,
    pub item: String,
    pub quantity: Decimal,
    pub unit: Unit,
    pub basis: Basis,
    pub note: String,
}

impl Line {
    pub fn new(
        scope: Scope,
        service: &str,
        item: impl Into<String>,
        quantity: Decimal,
        unit: Unit,
        basis: Basis,
    ) -> Self {
        Self {
            scope,
            service: service.into(),
            item: item.into(),
            quantity,
            unit,
            basis,
            note: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Dollars per million orders (per-order lines) or per store-month (per-store-minute
    /// lines).
    pub fn dollars(&self) -> Decimal {
        let scale = match self.scope {
            Scope::PerOrder => Decimal::from(1_000_000u64),
            Scope::PerStoreMinute => Decimal::from(STORE_MINUTES_PER_MONTH),
        };
        self.quantity * self.unit.dollars_each() * scale
    }
}

/// A deployment's month: how many orders and stores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub orders_per_month: u64,
    pub stores: u64,
    pub goal_per_million_orders: Decimal,
}

impl Scenario {
    /// The goal: a million orders a month, 10,000 stores mirrored every minute,
    /// at most $15 per million orders.
    pub fn goal() -> Self {
        Self {
            orders_per_month: 1_000_000,
            stores: 10_000,
            goal_per_million_orders: GOAL_PER_MILLION_ORDERS,
        }
    }
}

/// A line with its dollars.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedLine {
    #[serde(flatten)]
    pub line: Line,
    /// Per million orders, or per store-month.
    pub dollars: Decimal,
    /// In the scenario's month.
    pub monthly_dollars: Decimal,
}

/// The priced table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostTable {
    pub per_order: Vec<PricedLine>,
    pub per_store_minute: Vec<PricedLine>,
    pub dollars_per_million_orders: Decimal,
    pub dollars_per_store_month: Decimal,
    pub scenario: Scenario,
    /// The scenario's month: orders, stores, both.
    pub monthly_orders_dollars: Decimal,
    pub monthly_stores_dollars: Decimal,
    pub monthly_dollars: Decimal,
    /// The month divided by its millions of orders, against the goal.
    pub all_in_per_million_orders: Decimal,
    pub within_goal: bool,
    /// The line that costs the most in the scenario's month, and its share of the month.
    pub dominant: String,
    pub dominant_share: Decimal,
}

/// Prices `lines` and totals them for `scenario`.
pub fn price_lines(lines: Vec<Line>, scenario: Scenario) -> CostTable {
    let orders_millions = Decimal::from(scenario.orders_per_month) / Decimal::from(1_000_000u64);
    let priced = |l: Line| {
        let dollars = l.dollars();
        let monthly = match l.scope {
            Scope::PerOrder => dollars * orders_millions,
            Scope::PerStoreMinute => dollars * Decimal::from(scenario.stores),
        };
        PricedLine {
            line: l,
            dollars,
            monthly_dollars: monthly,
        }
    };
    let (per_order, per_store_minute): (Vec<_>, Vec<_>) = lines
        .into_iter()
        .map(priced)
        .partition(|p| p.line.scope == Scope::PerOrder);
    let sum = |v: &[PricedLine], f: fn(&PricedLine) -> Decimal| v.iter().map(f).sum::<Decimal>();
    let monthly_orders_dollars = sum(&per_order, |p| p.monthly_dollars);
    let monthly_stores_dollars = sum(&per_store_minute, |p| p.monthly_dollars);
    let monthly_dollars = monthly_orders_dollars + monthly_stores_dollars;
    let all_in_per_million_orders = if orders_millions.is_zero() {
        Decimal::ZERO
    } else {
        monthly_dollars / orders_millions
    };
    let top = per_order
        .iter()
        .chain(&per_store_minute)
        .max_by(|a, b| a.monthly_dollars.cmp(&b.monthly_dollars));
    let (dominant, dominant_share) = match top {
        Some(p) if !monthly_dollars.is_zero() => (
            format!(
                "{} {} ({})",
                p.line.service,
                p.line.item,
                match p.line.scope {
                    Scope::PerOrder => "per order",
                    Scope::PerStoreMinute => "per store-minute",
                }
            ),
            p.monthly_dollars / monthly_dollars,
        ),
        _ => (String::new(), Decimal::ZERO),
    };
    CostTable {
        dollars_per_million_orders: sum(&per_order, |p| p.dollars),
        dollars_per_store_month: sum(&per_store_minute, |p| p.dollars),
        per_order,
        per_store_minute,
        scenario,
        monthly_orders_dollars,
        monthly_stores_dollars,
        monthly_dollars,
        all_in_per_million_orders,
        within_goal: all_in_per_million_orders <= scenario.goal_per_million_orders,
        dominant,
        dominant_share,
    }
}

/// `value` (a count or a duration) as a decimal, to 9 places.
pub fn decimal(value: f64) -> Decimal {
    Decimal::from_f64_retain(value)
        .unwrap_or_default()
        .round_dp(9)
}
