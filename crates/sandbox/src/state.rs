//! The sandbox's in-memory world: an Ecwid store and a Lightspeed X-Series retailer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;

use crate::config::SandboxConfig;
use crate::faults::{Chaos, Fault, FaultKind, FaultTally, Route};
use crate::lightspeed::webhook_delivery::{Touched, touch};
use crate::lightspeed::webhooks::LsWebhook;
use crate::specs::{Counters, ProductIds, ProductSpec, SeedIds, VariantIds, VariantSpec};
use crate::util::{new_uuid, random_code, round_dp, seed_uuid};

// ---------------------------------------------------------------------------------------------
// Ecwid

#[derive(Clone, Debug)]
pub(crate) struct EcwidTax {
    pub id: u64,
    pub name: String,
    /// Percent (10 = 10%).
    pub value: Decimal,
}

#[derive(Clone, Debug)]
pub(crate) struct EcwidProduct {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub price_excl: Decimal,
    pub tax_percent: Option<Decimal>,
    pub tax_id: Option<u64>,
    /// `None` = unlimited.
    pub quantity: Option<i64>,
    pub enabled: bool,
    pub combinations: Vec<EcwidCombination>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub(crate) struct EcwidCombination {
    pub id: u64,
    pub number: u32,
    pub sku: String,
    pub option_name: String,
    pub option_value: String,
    pub price_excl: Option<Decimal>,
    pub quantity: Option<i64>,
}

pub(crate) struct Batch {
    pub ticket: String,
    /// What `GET /batch` answers.
    pub result: Value,
    /// A queued batch's sub-requests, until it runs.
    pub queued: Option<crate::ecwid::QueuedBatch>,
}

// ---------------------------------------------------------------------------------------------
// Lightspeed

#[derive(Clone, Debug)]
pub(crate) struct LsOutlet {
    pub id: String,
    pub name: String,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsRegister {
    pub id: String,
    pub name: String,
    pub outlet_id: String,
    pub invoice_prefix: String,
    pub invoice_suffix: String,
    pub invoice_sequence: u64,
    pub opened_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsUser {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsPaymentType {
    pub id: String,
    pub name: String,
    pub type_id: i64,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsTax {
    pub id: String,
    pub name: String,
    pub rate_id: String,
    /// Fraction (0.1 = 10%). For a tax group, the sum of its component rates.
    pub rate: Decimal,
    pub is_default: bool,
    pub version: u64,
    /// A tax group's component rates `(rate id, name, rate)`; empty for a single-rate tax,
    /// whose one rate is `(rate_id, name, rate)`.
    pub components: Vec<(String, String, Decimal)>,
}

impl LsTax {
    /// The tax's rates as `GET /api/2.0/taxes` lists them: `(rate id, name, rate)`.
    pub fn rates(&self) -> Vec<(String, String, Decimal)> {
        if self.components.is_empty() {
            vec![(self.rate_id.clone(), self.name.clone(), self.rate)]
        } else {
            self.components.clone()
        }
    }

    /// Splits a tax amount over the rates, in proportion to each rate (the last rate takes
    /// what rounding leaves, so the parts sum exactly to `amount`).
    pub fn split_amount(&self, amount: Decimal) -> Vec<(String, String, Decimal, Decimal)> {
        let rates = self.rates();
        let mut left = amount;
        let n = rates.len();
        rates
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, rate))| {
                let part = if i + 1 == n || self.rate.is_zero() {
                    left
                } else {
                    round_dp(amount * rate / self.rate, 5)
                };
                left -= part;
                (id, name, rate, part)
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct LsProduct {
    pub id: String,
    pub name: String,
    pub variant_name: String,
    pub handle: String,
    pub sku: String,
    pub description: String,
    /// `USER` or `SHOPIFY`.
    pub source: String,
    pub source_id: Option<String>,
    pub price_excl: Decimal,
    pub supply_price: Decimal,
    pub tax_id: Option<String>,
    pub has_inventory: bool,
    pub has_variants: bool,
    pub variant_parent_id: Option<String>,
    pub variant_options: Vec<(String, String)>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// A Lightspeed product to create ([`State::create_ls_product`]). Empty `handle` and
/// `variant_name` are derived from the name.
#[derive(Clone, Debug)]
pub(crate) struct NewLsProduct {
    pub name: String,
    pub variant_name: String,
    pub handle: String,
    pub sku: String,
    pub description: String,
    pub source: String,
    pub source_id: Option<String>,
    pub price_excl: Decimal,
    pub supply_price: Decimal,
    pub tax_id: String,
    pub has_inventory: bool,
    pub active: bool,
    pub has_variants: bool,
    pub variant_parent_id: Option<String>,
    pub variant_options: Vec<(String, String)>,
    /// Starting stock per outlet id (an outlet not listed starts at 0); only for a product
    /// that tracks inventory.
    pub stock: Vec<(String, Decimal)>,
}

impl NewLsProduct {
    /// An active, tracked, standalone product made by a user (`source` `USER`), stock 0.
    pub fn new(name: &str, sku: &str, price_excl: Decimal, tax_id: String) -> NewLsProduct {
        NewLsProduct {
            name: name.into(),
            variant_name: String::new(),
            handle: String::new(),
            sku: sku.into(),
            description: String::new(),
            source: "USER".into(),
            source_id: None,
            price_excl,
            supply_price: Decimal::ZERO,
            tax_id,
            has_inventory: true,
            active: true,
            has_variants: false,
            variant_parent_id: None,
            variant_options: Vec::new(),
            stock: Vec::new(),
        }
    }
}

/// A product's handle from its name: lower-cased, every character but ASCII letters and
/// digits made `-`.
fn handle_of(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[derive(Clone, Debug)]
pub(crate) struct LsInventory {
    pub id: String,
    pub product_id: String,
    pub outlet_id: String,
    pub level: Decimal,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsCustomer {
    pub id: String,
    pub customer_code: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// Other optional fields as given on creation (phone, company_name, note, ...).
    pub extra: serde_json::Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LsSaleLine {
    pub id: String,
    pub product_id: String,
    pub register_id: String,
    pub sequence: u32,
    pub quantity: Decimal,
    pub price: Decimal,
    pub cost: Decimal,
    pub discount: Decimal,
    pub loyalty_value: Decimal,
    pub tax: Decimal,
    pub tax_id: String,
    pub price_set: bool,
    pub status: String,
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct LsPayment {
    pub id: String,
    pub register_id: String,
    pub retailer_payment_type_id: String,
    pub payment_date: DateTime<Utc>,
    pub amount: Decimal,
}

#[derive(Clone, Debug)]
pub(crate) struct LsSale {
    pub id: String,
    pub register_id: String,
    pub outlet_id: String,
    pub user_id: String,
    pub customer_id: Option<String>,
    pub status: String,
    pub invoice_number: String,
    pub invoice_sequence: u64,
    pub source: String,
    pub source_id: String,
    pub note: String,
    pub short_code: String,
    pub sale_date: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the sale becomes visible to `/api/2.0/search`.
    pub searchable_at: Instant,
    pub version: u64,
    pub lines: Vec<LsSaleLine>,
    pub payments: Vec<LsPayment>,
    /// Whether this sale's lines were taken off inventory.
    pub stock_taken: bool,
    /// The original sale, when this sale is a referenced return (started by the return
    /// action; `lightspeed::returns`).
    pub return_for: Option<String>,
}

impl LsSale {
    pub fn total_price(&self) -> Decimal {
        self.lines.iter().map(|l| l.quantity * l.price).sum()
    }

    pub fn total_tax(&self) -> Decimal {
        self.lines.iter().map(|l| l.quantity * l.tax).sum()
    }

    pub fn total_payment(&self) -> Decimal {
        self.payments.iter().map(|p| p.amount).sum()
    }
}

/// A legacy sale `status` and its 2026-07 `state` and attribute: the "States and attributes
/// mapping" table of Lightspeed's `docs/sales_states_and_attributes`, as
/// `tests/fixtures/lightspeed/2026-07/MAPPING.md` §4 quotes it. A sale is stored with its
/// legacy status; both generations read and write it through this one table.
const STATES: &[(&str, &str, Option<&str>)] = &[
    ("SAVED", "parked", None),
    ("OPEN", "pending", None),
    ("VOIDED", "voided", None),
    ("CLOSED", "closed", None),
    ("ONACCOUNT", "pending", Some("onaccount")),
    ("ONACCOUNT_CLOSED", "closed", Some("onaccount")),
    ("LAYBY", "pending", Some("layby")),
    ("LAYBY_CLOSED", "closed", Some("layby")),
    ("AWAITING_DISPATCH", "pending", Some("delivery")),
    ("DISPATCHED_CLOSED", "closed", Some("delivery")),
    ("AWAITING_PICKUP", "pending", Some("pickup")),
    ("PICKED_UP_CLOSED", "closed", Some("pickup")),
    ("SERVICE", "pending", Some("service")),
    ("SERVICE_CLOSED", "closed", Some("service")),
];

/// The 2026-07 `state` and attribute of a legacy status (MAPPING.md §4); `None` for a status
/// the table does not have.
pub(crate) fn state_of(status: &str) -> Option<(&'static str, Option<&'static str>)> {
    STATES
        .iter()
        .find(|(s, _, _)| *s == status)
        .map(|(_, state, attribute)| (*state, *attribute))
}

/// The legacy status of a 2026-07 `state` with at most one attribute (MAPPING.md §4); `None`
/// for a pair the table does not have.
pub(crate) fn status_of(state: &str, attribute: Option<&str>) -> Option<&'static str> {
    STATES
        .iter()
        .find(|(_, st, attr)| *st == state && *attr == attribute)
        .map(|(status, _, _)| *status)
}

/// Statuses that take stock off: a completed sale, whose state is `closed` ("Is this sale
/// closed?" is `state == "closed"`, MAPPING.md §4).
pub(crate) fn status_takes_stock(status: &str) -> bool {
    state_of(status).is_some_and(|(state, _)| state == "closed")
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

/// A sliding-log rate limiter: at most `limit` accepted requests in any `window`.
#[derive(Debug, Default)]
pub(crate) struct SlidingWindow {
    hits: VecDeque<Instant>,
}

pub(crate) struct RateOk {
    pub remaining: u32,
    /// When the oldest counted request leaves the window.
    pub reset_in: Duration,
}

impl SlidingWindow {
    /// Count a request. `Err(wait)` when over the limit: the time until a slot frees.
    pub fn hit(&mut self, limit: u32, window: Duration, now: Instant) -> Result<RateOk, Duration> {
        while let Some(front) = self.hits.front() {
            if now.duration_since(*front) >= window {
                self.hits.pop_front();
            } else {
                break;
            }
        }
        if self.hits.len() >= limit as usize {
            let front = *self.hits.front().expect("limit > 0 when full");
            return Err(window.saturating_sub(now.duration_since(front)));
        }
        self.hits.push_back(now);
        Ok(self.peek(limit, window, now))
    }

    /// The current state without counting a request.
    pub fn peek(&self, limit: u32, window: Duration, now: Instant) -> RateOk {
        let mut live = self
            .hits
            .iter()
            .filter(|h| now.duration_since(**h) < window);
        let first = live.next();
        let count = usize::from(first.is_some()) + live.count();
        let reset_in = first
            .map(|front| window.saturating_sub(now.duration_since(*front)))
            .unwrap_or(window);
        RateOk {
            remaining: limit.saturating_sub(count as u32),
            reset_in,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The world

pub(crate) struct State {
    pub cfg: SandboxConfig,
    version: u64,

    // Ecwid
    pub ecwid_taxes: Vec<EcwidTax>,
    pub ecwid_products: BTreeMap<u64, EcwidProduct>,
    /// Orders by internalId (insertion order = creation order).
    pub ecwid_orders: BTreeMap<u64, Value>,
    next_ecwid_product_id: u64,
    next_ecwid_combination_id: u64,
    pub next_order_internal_id: u64,
    pub next_order_item_id: u64,
    pub batches: HashMap<String, Batch>,
    pub batch_dedup: HashMap<String, (String, Instant)>,
    pub ecwid_rate: SlidingWindow,

    // Lightspeed
    pub retailer_id: String,
    pub retailer_created: DateTime<Utc>,
    pub no_tax_group_id: String,
    pub discount_product_id: String,
    pub customer_group_id: String,
    pub outlets: Vec<LsOutlet>,
    pub registers: Vec<LsRegister>,
    pub users: Vec<LsUser>,
    pub payment_types: Vec<LsPaymentType>,
    pub taxes: Vec<LsTax>,
    pub products: Vec<LsProduct>,
    pub inventory: Vec<LsInventory>,
    pub customers: Vec<LsCustomer>,
    pub sales: Vec<LsSale>,
    pub ls_rate: SlidingWindow,
    /// Webhook registrations (`lightspeed::webhooks`), oldest first.
    pub ls_webhooks: Vec<LsWebhook>,
    /// Records changed under the current lock that registrations will hear of
    /// (`lightspeed::webhook_delivery`); emptied when the lock is released.
    pub(crate) ls_webhook_outbox: Vec<Touched>,

    /// Lightspeed OAuth mode (`None`: the personal token of the config works).
    pub ls_oauth: Option<crate::oauth::OAuthState>,
    pub counters: Counters,
    pub faults: Vec<Fault>,
    /// Random faults (drawn when no armed fault matches) and the per-kind fired counts.
    pub(crate) chaos: Option<Chaos>,
    /// Orders whose next reads by id still say `AWAITING_PAYMENT` (see
    /// `Sandbox::lag_payment_status`), and how many reads are left.
    pub payment_lag: std::collections::HashMap<String, u32>,
    pub fault_tally: FaultTally,
    pub seed: SeedIds,
    /// While seeding: the next deterministic id number (stable demo ids across runs).
    seeding: Option<u128>,
}

impl State {
    pub fn new(cfg: SandboxConfig) -> State {
        let now = Utc::now();
        let mut st = State {
            cfg,
            version: 1_000,
            ecwid_taxes: Vec::new(),
            ecwid_products: BTreeMap::new(),
            ecwid_orders: BTreeMap::new(),
            next_ecwid_product_id: 700_000_001,
            next_ecwid_combination_id: 300_000_001,
            next_order_internal_id: 516_483_488,
            next_order_item_id: 1_828_115_521,
            batches: HashMap::new(),
            batch_dedup: HashMap::new(),
            ecwid_rate: SlidingWindow::default(),
            retailer_id: seed_uuid(1),
            retailer_created: now,
            no_tax_group_id: String::new(),
            discount_product_id: String::new(),
            customer_group_id: seed_uuid(2),
            outlets: Vec::new(),
            registers: Vec::new(),
            users: Vec::new(),
            payment_types: Vec::new(),
            taxes: Vec::new(),
            products: Vec::new(),
            inventory: Vec::new(),
            customers: Vec::new(),
            sales: Vec::new(),
            ls_rate: SlidingWindow::default(),
            ls_webhooks: Vec::new(),
            ls_webhook_outbox: Vec::new(),
            ls_oauth: None,
            counters: Counters::default(),
            faults: Vec::new(),
            chaos: None,
            fault_tally: FaultTally::default(),
            payment_lag: Default::default(),
            seed: SeedIds::default(),
            seeding: None,
        };
        st.seed_fixed();
        if st.cfg.seed_demo {
            st.seeding = Some(1000);
            st.seed_demo().expect("demo seed is consistent");
            st.seeding = None;
        }
        st
    }

    /// A new object id: random, or deterministic while seeding.
    pub fn fresh_id(&mut self) -> String {
        match &mut self.seeding {
            Some(n) => {
                *n += 1;
                seed_uuid(*n)
            }
            None => new_uuid(),
        }
    }

    pub fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    // -----------------------------------------------------------------------------------------
    // Seeds

    fn seed_fixed(&mut self) {
        let now = Utc::now();
        let main = seed_uuid(10);
        let warehouse = seed_uuid(11);
        for (id, name) in [(&main, "Main Outlet"), (&warehouse, "Warehouse")] {
            let version = self.next_version();
            self.outlets.push(LsOutlet {
                id: id.clone(),
                name: name.into(),
                version,
            });
        }
        for (id, name, outlet, prefix) in [
            (seed_uuid(20), "Web Store Register", &main, "WEB-"),
            (seed_uuid(21), "Warehouse Register", &warehouse, "WH-"),
        ] {
            let version = self.next_version();
            self.registers.push(LsRegister {
                id,
                name: name.into(),
                outlet_id: outlet.clone(),
                invoice_prefix: prefix.into(),
                invoice_suffix: String::new(),
                invoice_sequence: 1000,
                opened_at: now,
                version,
            });
        }
        let version = self.next_version();
        self.users.push(LsUser {
            id: seed_uuid(30),
            username: "sandbox.api".into(),
            display_name: "Sandbox API User".into(),
            email: "api.user@sandbox.example.com".into(),
            created_at: now,
            version,
        });
        for (id, name, type_id) in [
            (seed_uuid(40), "Cash", 1),
            (seed_uuid(41), "Ecwid Online", 7),
            (seed_uuid(42), "Gift Card", 7),
        ] {
            let version = self.next_version();
            self.payment_types.push(LsPaymentType {
                id,
                name: name.into(),
                type_id,
                version,
            });
        }
        for (n, name, rate, is_default) in [
            (50u128, "No Tax", Decimal::ZERO, false),
            (51, "GST 10%", Decimal::new(1, 1), true),
            (52, "VAT 20%", Decimal::new(2, 1), false),
        ] {
            let version = self.next_version();
            self.taxes.push(LsTax {
                id: seed_uuid(n),
                name: name.into(),
                rate_id: seed_uuid(n + 100),
                rate,
                is_default,
                version,
                components: Vec::new(),
            });
        }
        // A tax group: two rates charged together (as in Canada's GST + PST).
        let version = self.next_version();
        self.taxes.push(LsTax {
            id: seed_uuid(53),
            name: "GST + PST".into(),
            rate_id: seed_uuid(153),
            rate: Decimal::new(12, 2),
            is_default: false,
            version,
            components: vec![
                (seed_uuid(153), "GST 5%".into(), Decimal::new(5, 2)),
                (seed_uuid(154), "PST 7%".into(), Decimal::new(7, 2)),
            ],
        });
        self.no_tax_group_id = seed_uuid(50);
        self.discount_product_id = seed_uuid(60);
        for (id, name, sku) in [
            (seed_uuid(60), "Discount", "vend-discount"),
            (seed_uuid(61), "Shipping", "shipping"),
        ] {
            let version = self.next_version();
            self.products.push(LsProduct {
                id,
                name: name.into(),
                variant_name: name.into(),
                handle: sku.into(),
                sku: sku.into(),
                description: String::new(),
                source: "USER".into(),
                source_id: None,
                price_excl: Decimal::ZERO,
                supply_price: Decimal::ZERO,
                tax_id: Some(self.no_tax_group_id.clone()),
                has_inventory: false,
                has_variants: false,
                variant_parent_id: None,
                variant_options: Vec::new(),
                active: true,
                created_at: now,
                updated_at: now,
                deleted_at: None,
                version,
            });
        }
        self.ecwid_taxes = vec![
            EcwidTax {
                id: 947_976_181,
                name: "10% Tax".into(),
                value: Decimal::from(10),
            },
            EcwidTax {
                id: 947_976_182,
                name: "20% Tax".into(),
                value: Decimal::from(20),
            },
        ];
        self.seed = SeedIds {
            ecwid_store_id: self.cfg.ecwid_store_id,
            retailer_id: self.retailer_id.clone(),
            outlet_id: main,
            register_id: seed_uuid(20),
            second_outlet_id: warehouse,
            second_register_id: seed_uuid(21),
            user_id: seed_uuid(30),
            payment_type_id: seed_uuid(41),
            cash_payment_type_id: seed_uuid(40),
            gift_card_payment_type_id: seed_uuid(42),
            tax_10_id: seed_uuid(51),
            tax_20_id: seed_uuid(52),
            tax_gst_pst_id: seed_uuid(53),
            no_tax_group_id: seed_uuid(50),
            discount_product_id: seed_uuid(60),
            shipping_product_id: seed_uuid(61),
            customer_group_id: self.customer_group_id.clone(),
            ecwid_tax_10_id: 947_976_181,
            ecwid_tax_20_id: 947_976_182,
            ..SeedIds::default()
        };
    }

    fn seed_demo(&mut self) -> anyhow::Result<()> {
        let d = |s: &str| crate::util::parse_dec(s).expect("literal");
        // Ecwid's example product: "Toys", 10.00 including 10% tax.
        self.next_ecwid_product_id = 692_730_761;
        let toys = self.add_product(
            &ProductSpec {
                sku: "123123".into(),
                name: "Toys".into(),
                price_excl_tax: d("9.09091"),
                tax_percent: Some(d("10")),
                ecwid_stock: Some(d("50")),
                ls_stock: d("50"),
                ls_stock_other: d("100"),
                ..ProductSpec::default()
            },
            true,
            true,
        )?;
        self.next_ecwid_product_id = 700_000_001;
        let mug = self.add_product(
            &ProductSpec {
                sku: "MUG-001".into(),
                name: "Coffee Mug".into(),
                price_excl_tax: d("12.00"),
                tax_percent: Some(d("10")),
                ecwid_stock: Some(d("30")),
                ls_stock: d("30"),
                ls_stock_other: d("50"),
                ..ProductSpec::default()
            },
            true,
            true,
        )?;
        let tote = self.add_product(
            &ProductSpec {
                sku: "TOTE-001".into(),
                name: "Tote Bag".into(),
                price_excl_tax: d("15.00"),
                tax_percent: Some(d("20")),
                ecwid_stock: Some(d("25")),
                ls_stock: d("25"),
                ls_stock_other: d("40"),
                ..ProductSpec::default()
            },
            true,
            true,
        )?;
        let sticker = self.add_product(
            &ProductSpec {
                sku: "STICKER-01".into(),
                name: "Sticker".into(),
                price_excl_tax: d("1.50"),
                tax_percent: None,
                ecwid_stock: Some(d("200")),
                ls_stock: d("200"),
                ls_stock_other: d("500"),
                ..ProductSpec::default()
            },
            true,
            true,
        )?;
        let variant = |size: &str, stock: &str| VariantSpec {
            sku: format!("TSHIRT-{size}"),
            option_name: "Size".into(),
            option_value: size.into(),
            price_excl_tax: None,
            ecwid_stock: Some(d(stock)),
            ls_stock: d(stock),
            ls_stock_other: d("20"),
        };
        let tshirt = self.add_product(
            &ProductSpec {
                sku: "TSHIRT".into(),
                name: "T-Shirt".into(),
                price_excl_tax: d("20.00"),
                tax_percent: Some(d("20")),
                ecwid_stock: None,
                ls_stock: Decimal::ZERO,
                ls_stock_other: Decimal::ZERO,
                variants: vec![variant("S", "10"), variant("M", "12"), variant("L", "8")],
                has_inventory: true,
            },
            true,
            true,
        )?;
        let customer = self.add_customer("Jane", "Doe", Some("jane@example.com"));
        self.seed.toys = toys;
        self.seed.mug = mug;
        self.seed.tote = tote;
        self.seed.sticker = sticker;
        self.seed.tshirt = tshirt;
        self.seed.customer_id = customer;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Catalog

    pub fn ls_tax_for_percent(&mut self, pct: Option<Decimal>) -> String {
        let Some(pct) = pct.filter(|p| !p.is_zero()) else {
            return self.no_tax_group_id.clone();
        };
        let rate = (pct / Decimal::from(100)).normalize();
        if let Some(t) = self.taxes.iter().find(|t| t.rate == rate) {
            return t.id.clone();
        }
        let version = self.next_version();
        let id = new_uuid();
        self.taxes.push(LsTax {
            id: id.clone(),
            name: format!("Tax {}%", pct.normalize()),
            rate_id: new_uuid(),
            rate,
            is_default: false,
            version,
            components: Vec::new(),
        });
        id
    }

    fn ecwid_tax_for_percent(&mut self, pct: Option<Decimal>) -> Option<u64> {
        let pct = pct.filter(|p| !p.is_zero())?.normalize();
        if let Some(t) = self.ecwid_taxes.iter().find(|t| t.value == pct) {
            return Some(t.id);
        }
        let id = 947_976_181 + self.ecwid_taxes.len() as u64;
        self.ecwid_taxes.push(EcwidTax {
            id,
            name: format!("{pct}% Tax"),
            value: pct,
        });
        Some(id)
    }

    pub fn ls_tax_rate(&self, tax_id: &str) -> Option<Decimal> {
        self.taxes.iter().find(|t| t.id == tax_id).map(|t| t.rate)
    }

    /// Create a product in Ecwid and/or Lightspeed.
    pub fn add_product(
        &mut self,
        spec: &ProductSpec,
        ecwid: bool,
        ls: bool,
    ) -> anyhow::Result<ProductIds> {
        if spec.name.trim().is_empty() {
            bail!("product name is required");
        }
        let now = Utc::now();
        let mut ids = ProductIds {
            sku: spec.sku.clone(),
            ecwid_product_id: None,
            ls_product_id: None,
            variants: spec
                .variants
                .iter()
                .map(|v| VariantIds {
                    sku: v.sku.clone(),
                    option_value: v.option_value.clone(),
                    ecwid_combination_id: None,
                    ls_product_id: None,
                })
                .collect(),
        };
        if ecwid {
            let tax_id = self.ecwid_tax_for_percent(spec.tax_percent);
            let id = self.next_ecwid_product_id;
            self.next_ecwid_product_id += 1;
            let mut combinations = Vec::new();
            for (i, v) in spec.variants.iter().enumerate() {
                let cid = self.next_ecwid_combination_id;
                self.next_ecwid_combination_id += 1;
                combinations.push(EcwidCombination {
                    id: cid,
                    number: i as u32 + 1,
                    sku: v.sku.clone(),
                    option_name: v.option_name.clone(),
                    option_value: v.option_value.clone(),
                    price_excl: v.price_excl_tax,
                    quantity: ecwid_qty(v.ecwid_stock)?,
                });
                ids.variants[i].ecwid_combination_id = Some(cid);
            }
            self.ecwid_products.insert(
                id,
                EcwidProduct {
                    id,
                    sku: spec.sku.clone(),
                    name: spec.name.clone(),
                    price_excl: spec.price_excl_tax,
                    tax_percent: spec.tax_percent.filter(|p| !p.is_zero()),
                    tax_id,
                    quantity: ecwid_qty(spec.ecwid_stock)?,
                    enabled: true,
                    combinations,
                    created: now,
                    updated: now,
                },
            );
            ids.ecwid_product_id = Some(id);
        }
        if ls {
            let tax_id = self.ls_tax_for_percent(spec.tax_percent);
            let family = NewLsProduct {
                has_inventory: spec.has_inventory,
                ..NewLsProduct::new(&spec.name, &spec.sku, spec.price_excl_tax, tax_id)
            };
            if spec.variants.is_empty() {
                let stock = self.stock_split(spec.ls_stock, spec.ls_stock_other);
                ids.ls_product_id = Some(self.create_ls_product(NewLsProduct { stock, ..family }));
            } else {
                // X-Series: every variant is its own product row sharing the family name; the
                // first variant is the parent (variant_parent_id null, has_variants true), the
                // others point to it.
                let mut parent: Option<String> = None;
                for (i, v) in spec.variants.iter().enumerate() {
                    let id = self.create_ls_product(NewLsProduct {
                        variant_name: format!("{} / {}", spec.name, v.option_value),
                        sku: v.sku.clone(),
                        price_excl: v.price_excl_tax.unwrap_or(spec.price_excl_tax),
                        has_variants: parent.is_none(),
                        variant_parent_id: parent.clone(),
                        variant_options: vec![(v.option_name.clone(), v.option_value.clone())],
                        stock: self.stock_split(v.ls_stock, v.ls_stock_other),
                        ..family.clone()
                    });
                    ids.variants[i].ls_product_id = Some(id.clone());
                    if parent.is_none() {
                        parent = Some(id);
                    }
                }
                ids.ls_product_id = parent;
            }
        }
        Ok(ids)
    }

    /// Create a Lightspeed product (one row: a standalone product or one variant): a new id,
    /// the next version, and for a tracked product an inventory record at every outlet, each
    /// with its version. The one way products are made after the fixed seeds: the admin API
    /// and seeds through [`State::add_product`], `POST /api/2.0/products` directly.
    pub fn create_ls_product(&mut self, new: NewLsProduct) -> String {
        let now = Utc::now();
        let id = self.fresh_id();
        let handle = if new.handle.is_empty() {
            handle_of(&new.name)
        } else {
            new.handle
        };
        let variant_name = if new.variant_name.is_empty() {
            new.name.clone()
        } else {
            new.variant_name
        };
        let version = self.next_version();
        self.products.push(LsProduct {
            id: id.clone(),
            name: new.name,
            variant_name,
            handle,
            sku: new.sku,
            description: new.description,
            source: new.source,
            source_id: new.source_id,
            price_excl: new.price_excl,
            supply_price: new.supply_price,
            tax_id: Some(new.tax_id),
            has_inventory: new.has_inventory,
            has_variants: new.has_variants,
            variant_parent_id: new.variant_parent_id,
            variant_options: new.variant_options,
            active: new.active,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            version,
        });
        if new.has_inventory {
            let outlets: Vec<String> = self.outlets.iter().map(|o| o.id.clone()).collect();
            for outlet in outlets {
                let level = new
                    .stock
                    .iter()
                    .find(|(o, _)| *o == outlet)
                    .map(|(_, level)| *level)
                    .unwrap_or_default();
                let version = self.next_version();
                let record = self.fresh_id();
                self.inventory.push(LsInventory {
                    id: record.clone(),
                    product_id: id.clone(),
                    outlet_id: outlet,
                    level,
                    version,
                });
                touch(self, Touched::Inventory(record));
            }
        }
        touch(self, Touched::Product(id.clone()));
        id
    }

    /// Stock of `main` at the main outlet (the web register's) and `other` at every other one.
    fn stock_split(&self, main: Decimal, other: Decimal) -> Vec<(String, Decimal)> {
        self.outlets
            .iter()
            .map(|o| {
                let level = if o.id == self.seed.outlet_id {
                    main
                } else {
                    other
                };
                (o.id.clone(), level)
            })
            .collect()
    }

    /// The tax a product gets when none is named: the default tax, as `GET /api/2.0/outlets`
    /// reports it (`default_tax_id`), else "No Tax".
    pub fn default_ls_tax_id(&self) -> String {
        self.taxes
            .iter()
            .find(|t| t.is_default)
            .map(|t| t.id.clone())
            .unwrap_or_else(|| self.no_tax_group_id.clone())
    }

    pub fn ls_product(&self, id: &str) -> Option<&LsProduct> {
        self.products.iter().find(|p| p.id == id)
    }

    pub fn register(&self, id: &str) -> Option<&LsRegister> {
        self.registers.iter().find(|r| r.id == id)
    }

    /// A new register at an outlet, opened now, with its own invoice prefix (`R3-`, `R4-`...;
    /// its invoice numbers start where the seeded ones do). Names need not be unique (two
    /// registers may both be called "Main", as in the real back office). Returns its id.
    pub fn add_register(&mut self, name: &str, outlet_id: &str) -> anyhow::Result<String> {
        if name.trim().is_empty() {
            bail!("a register needs a name");
        }
        if !self.outlets.iter().any(|o| o.id == outlet_id) {
            bail!("unknown outlet {outlet_id}");
        }
        let id = self.fresh_id();
        let version = self.next_version();
        let prefix = format!("R{}-", self.registers.len() + 1);
        self.registers.push(LsRegister {
            id: id.clone(),
            name: name.into(),
            outlet_id: outlet_id.into(),
            invoice_prefix: prefix,
            invoice_suffix: String::new(),
            invoice_sequence: 1000,
            opened_at: Utc::now(),
            version,
        });
        Ok(id)
    }

    pub fn inventory_level(&self, product_id: &str, outlet_id: &str) -> Decimal {
        self.inventory
            .iter()
            .find(|i| i.product_id == product_id && i.outlet_id == outlet_id)
            .map(|i| i.level)
            .unwrap_or(Decimal::ZERO)
    }

    /// Set a Lightspeed inventory level (a manual stock change): bumps the record's version.
    pub fn set_ls_inventory(
        &mut self,
        product_id: &str,
        outlet_id: &str,
        level: Decimal,
    ) -> anyhow::Result<()> {
        let p = self
            .ls_product(product_id)
            .ok_or_else(|| anyhow!("unknown Lightspeed product {product_id}"))?;
        if !p.has_inventory {
            bail!("product {product_id} does not track inventory");
        }
        if !self.outlets.iter().any(|o| o.id == outlet_id) {
            bail!("unknown outlet {outlet_id}");
        }
        let version = self.next_version();
        let record = match self
            .inventory
            .iter_mut()
            .find(|i| i.product_id == product_id && i.outlet_id == outlet_id)
        {
            Some(rec) => {
                rec.level = level;
                rec.version = version;
                rec.id.clone()
            }
            None => {
                let id = new_uuid();
                self.inventory.push(LsInventory {
                    id: id.clone(),
                    product_id: product_id.into(),
                    outlet_id: outlet_id.into(),
                    level,
                    version,
                });
                id
            }
        };
        // Every stock change ends here (sales, returns, voids, POS sales, helpers).
        touch(self, Touched::Inventory(record));
        Ok(())
    }

    /// Move stock by `delta` for a product at an outlet (no-op when not tracked).
    pub fn adjust_inventory(&mut self, product_id: &str, outlet_id: &str, delta: Decimal) {
        let tracked = self.ls_product(product_id).is_some_and(|p| p.has_inventory);
        if !tracked || delta.is_zero() {
            return;
        }
        let level = self.inventory_level(product_id, outlet_id) + delta;
        let _ = self.set_ls_inventory(product_id, outlet_id, level);
    }

    pub fn add_customer(&mut self, first: &str, last: &str, email: Option<&str>) -> String {
        let now = Utc::now();
        let id = self.fresh_id();
        let code = self.new_customer_code(first);
        let version = self.next_version();
        self.customers.push(LsCustomer {
            id: id.clone(),
            customer_code: code,
            first_name: first.into(),
            last_name: last.into(),
            email: email.map(str::to_string),
            extra: serde_json::Map::new(),
            created_at: now,
            updated_at: now,
            version,
        });
        id
    }

    pub fn new_customer_code(&self, first: &str) -> String {
        let stem: String = first
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let stem = if stem.is_empty() {
            "Customer".into()
        } else {
            stem
        };
        loop {
            let code = format!(
                "{stem}-{}",
                random_code(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 4)
            );
            if !self.customers.iter().any(|c| c.customer_code == code) {
                return code;
            }
        }
    }

    /// Next invoice number of a register (bumps its sequence and version).
    pub fn next_invoice(&mut self, register_id: &str) -> (String, u64) {
        let version = self.next_version();
        let r = self
            .registers
            .iter_mut()
            .find(|r| r.id == register_id)
            .expect("register checked by caller");
        r.invoice_sequence += 1;
        r.version = version;
        (
            format!(
                "{}{}{}",
                r.invoice_prefix, r.invoice_sequence, r.invoice_suffix
            ),
            r.invoice_sequence,
        )
    }

    /// Take a sale's lines off (or put them back on) stock at its register's outlet.
    pub fn apply_sale_stock(&mut self, sale_idx: usize, take: bool) {
        let sale = &self.sales[sale_idx];
        if sale.stock_taken == take {
            return;
        }
        let outlet = sale.outlet_id.clone();
        let moves: Vec<(String, Decimal)> = sale
            .lines
            .iter()
            .filter(|l| l.status != "VOIDED")
            .map(|l| (l.product_id.clone(), l.quantity))
            .collect();
        for (product, qty) in moves {
            let delta = if take { -qty } else { qty };
            self.adjust_inventory(&product, &outlet, delta);
        }
        self.sales[sale_idx].stock_taken = take;
    }

    /// A sale rung up in the POS: one line at the product's price, paid in cash, CLOSED.
    pub fn pos_sale(
        &mut self,
        product_id: &str,
        qty: Decimal,
        register_id: &str,
    ) -> anyhow::Result<String> {
        let product = self
            .ls_product(product_id)
            .cloned()
            .ok_or_else(|| anyhow!("unknown Lightspeed product {product_id}"))?;
        let register = self
            .register(register_id)
            .cloned()
            .ok_or_else(|| anyhow!("unknown register {register_id}"))?;
        let tax_id = product
            .tax_id
            .clone()
            .unwrap_or_else(|| self.no_tax_group_id.clone());
        let rate = self.ls_tax_rate(&tax_id).unwrap_or_default();
        let tax = round_dp(product.price_excl * rate, 5);
        let now = Utc::now();
        let (invoice_number, invoice_sequence) = self.next_invoice(register_id);
        let version = self.next_version();
        let user_id = self.users[0].id.clone();
        let cash = self.seed.cash_payment_type_id.clone();
        let line = LsSaleLine {
            id: new_uuid(),
            product_id: product.id.clone(),
            register_id: register.id.clone(),
            sequence: 0,
            quantity: qty,
            price: product.price_excl,
            cost: Decimal::ZERO,
            discount: Decimal::ZERO,
            loyalty_value: Decimal::ZERO,
            tax,
            tax_id,
            price_set: false,
            status: "CONFIRMED".into(),
            note: None,
        };
        let amount = round_dp(qty * (line.price + line.tax), 2);
        let id = new_uuid();
        self.sales.push(LsSale {
            id: id.clone(),
            register_id: register.id.clone(),
            outlet_id: register.outlet_id.clone(),
            user_id,
            customer_id: None,
            status: "CLOSED".into(),
            invoice_number,
            invoice_sequence,
            source: "USER".into(),
            source_id: String::new(),
            note: String::new(),
            short_code: random_code(b"abcdefghijklmnopqrstuvwxyz0123456789", 6),
            sale_date: now,
            created_at: now,
            updated_at: now,
            searchable_at: Instant::now() + self.cfg.ls_search_lag,
            version,
            lines: vec![line],
            payments: vec![LsPayment {
                id: new_uuid(),
                register_id: register.id.clone(),
                retailer_payment_type_id: cash,
                payment_date: now,
                amount,
            }],
            stock_taken: false,
            return_for: None,
        });
        let idx = self.sales.len() - 1;
        self.apply_sale_stock(idx, true);
        Ok(id)
    }

    // -----------------------------------------------------------------------------------------
    // Ecwid orders

    pub fn ecwid_order_by_id(&self, order_id: &str) -> Option<(u64, &Value)> {
        self.ecwid_orders
            .iter()
            .find(|(_, o)| o.get("id").and_then(Value::as_str) == Some(order_id))
            .map(|(k, v)| (*k, v))
    }

    pub fn ecwid_order_mut(&mut self, order_id: &str) -> Option<&mut Value> {
        self.ecwid_orders
            .values_mut()
            .find(|o| o.get("id").and_then(Value::as_str) == Some(order_id))
    }

    /// Store an order JSON as given (it must have a string `id`; `internalId` is assigned when
    /// missing). Replaces an order with the same `id`.
    pub fn insert_order(&mut self, mut order: Value) -> anyhow::Result<String> {
        let obj = order
            .as_object_mut()
            .context("an Ecwid order must be a JSON object")?;
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .context("an Ecwid order needs a string `id`")?;
        let internal = match obj.get("internalId").and_then(Value::as_u64) {
            Some(n) => n,
            None => {
                let n = self.next_order_internal_id;
                self.next_order_internal_id += 1;
                obj.insert("internalId".into(), Value::from(n));
                n
            }
        };
        self.next_order_internal_id = self.next_order_internal_id.max(internal + 1);
        let existing: Vec<u64> = self
            .ecwid_orders
            .iter()
            .filter(|(k, o)| {
                **k == internal || o.get("id").and_then(Value::as_str) == Some(id.as_str())
            })
            .map(|(k, _)| *k)
            .collect();
        for k in existing {
            self.ecwid_orders.remove(&k);
        }
        self.ecwid_orders.insert(internal, order);
        Ok(id)
    }

    pub fn new_order_id(&self) -> String {
        loop {
            let id = random_code(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 5);
            if self.ecwid_order_by_id(&id).is_none() {
                return id;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Faults

    /// Take one firing of the first armed fault matching `matches`, else draw a random one.
    pub fn take_fault(&mut self, matches: impl Fn(Route) -> bool) -> Option<FaultKind> {
        let (route, kind) = match self
            .faults
            .iter()
            .position(|f| f.times > 0 && matches(f.route))
        {
            Some(idx) => {
                let f = &mut self.faults[idx];
                f.times -= 1;
                let fired = (f.route, f.kind.clone());
                if f.times == 0 {
                    self.faults.remove(idx);
                }
                fired
            }
            None => self.chaos.as_mut()?.draw(&matches)?,
        };
        self.fault_tally.record(route, &kind);
        self.counters.faults_fired += 1;
        Some(kind)
    }

    /// Put back one firing of a fault (a DropAfterCommit that did not fire).
    pub fn rearm(&mut self, route: Route, kind: FaultKind) {
        self.fault_tally.unrecord(route, &kind);
        self.faults.insert(0, Fault::once(route, kind));
        self.counters.faults_fired = self.counters.faults_fired.saturating_sub(1);
    }
}

fn ecwid_qty(d: Option<Decimal>) -> anyhow::Result<Option<i64>> {
    match d {
        None => Ok(None),
        Some(d) if d.fract().is_zero() => Ok(Some(d.to_i64().context("stock out of range")?)),
        Some(d) => bail!("Ecwid stock must be a whole number, got {d}"),
    }
}
