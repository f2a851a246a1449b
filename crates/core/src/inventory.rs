//! The inventory mirror: Lightspeed stock → Ecwid stock (rules S1–S4, invariant 6).
//!
//! This module holds the rules, pure; [`mirror::InventoryMirror`] is the service that runs
//! them against the ports, and [`reconcile`] the full comparison behind `els reconcile`.
//!
//! # The rules
//! - **One direction (S2).** Levels flow from Lightspeed to Ecwid only. Nothing here, and no
//!   port, writes Lightspeed stock; Ecwid `product.*` webhooks (which our own writes cause)
//!   are ignored by ingest.
//! - **The outlet (S3).** Only inventory records at the outlet of the connection's register
//!   count; records at other outlets are read (the feed has them all) and dropped.
//! - **The setting (S4).** With `sync_inventory` off a run makes no Ecwid call at all and
//!   leaves the cursors where they are; switched back on, the next run catches up from them.
//! - **The level to publish** ([`level_to_publish`]): the Lightspeed level at that outlet
//!   minus the *pending web quantity* of the SKU (lines of ledger entries that are paid but
//!   not yet POSTED: [`crate::LedgerEntry::is_pending_web_sale`]), rounded down to a whole
//!   unit and floored at 0. Ecwid already took those units off at checkout; without the
//!   subtraction the mirror would hand them back until the sale reached Lightspeed.
//! - **Untracked products.** A Lightspeed product with `has_inventory == false` is published
//!   as `unlimited` in Ecwid (`{"unlimited": true}`), whatever its level.
//! - **Write only changes.** The last level written to (or seen on) each Ecwid product or
//!   combination is kept per Lightspeed product ([`PushedStock`]); an equal level is not
//!   written again.
//! - **Links (P1).** A Lightspeed product is mirrored only when its SKU (trimmed, compared
//!   without case) is non-blank, no other live Lightspeed product has it, and exactly one
//!   Ecwid product or combination has it. A blank combination SKU never matches (Ecwid would
//!   let it inherit the product SKU; we do not guess). Missing and ambiguous links are never
//!   written, and are counted in the run's report.
//! - **Cursor.** Changes are read with `GET /api/2.0/inventory?after=<cursor>` (and
//!   `/api/2.0/products?after=` for the catalog). Pages are applied in order, and the cursor
//!   moves to a page's `version.max` only after every write of that page succeeded (or was
//!   classified as permanently impossible, such as a product deleted in Ecwid). A failure
//!   part way leaves the cursor on the last complete page: the next run reads the page again;
//!   levels written before the failure are already recorded and are not written twice.
//!
//! # Pending web quantities, and the oversell window that remains
//! The pending quantities are read once per run, *before* the feeds. A sale the poster
//! records as POSTED before that read has its Lightspeed decrement in the feed read after
//! it; one recorded later is still counted as pending, so the run can only under-state
//! stock, never over-state it. When the pending quantity of a SKU drops between runs (its
//! sale was posted), a run that drained the feed re-publishes that product from the level it
//! last read, so an under-stated level does not stay behind.
//!
//! **The window:** the ledger learns an order's lines only when the poster fetches the order
//! from Ecwid. An order that is paid but still waiting in the queue for its first attempt is
//! not counted as pending. If the same product's Lightspeed level changes in that window (a
//! POS sale), the mirror publishes the Lightspeed level without subtracting that order, and
//! Ecwid shows up to the order's quantity too much until the sale is posted (the next run
//! after that publishes the right level). With the poster working normally the window is the
//! queue latency: seconds.

mod batch;
pub mod mirror;
pub mod reconcile;

pub use batch::{
    BatchResponse, BatchState, BatchStatus, WriteOutcome, batch_dedup_key, classify_batch_response,
};

use crate::ids::{Sku, StoreId};
use crate::ledger::{LedgerEntry, LedgerLine, OrderState};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

// ---------------------------------------------------------------------------------------
// Levels and targets
// ---------------------------------------------------------------------------------------

/// A stock level as Ecwid holds it: a whole quantity, or not tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    Quantity(u64),
    Unlimited,
}

impl StockLevel {
    /// The level an Ecwid product or combination shows; `None` when it shows neither a
    /// quantity nor `unlimited`.
    pub fn from_ecwid(unlimited: bool, quantity: Option<i64>) -> Option<Self> {
        if unlimited {
            return Some(StockLevel::Unlimited);
        }
        quantity.map(|q| StockLevel::Quantity(q.max(0) as u64))
    }
}

impl fmt::Display for StockLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StockLevel::Quantity(q) => write!(f, "{q}"),
            StockLevel::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Where a level goes in Ecwid: a product, or one combination (variation) of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EcwidTarget {
    pub product_id: u64,
    #[serde(default)]
    pub combination_id: Option<u64>,
}

impl EcwidTarget {
    pub fn product(product_id: u64) -> Self {
        Self {
            product_id,
            combination_id: None,
        }
    }

    pub fn combination(product_id: u64, combination_id: u64) -> Self {
        Self {
            product_id,
            combination_id: Some(combination_id),
        }
    }
}

impl fmt::Display for EcwidTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.combination_id {
            None => write!(f, "product {}", self.product_id),
            Some(cid) => write!(f, "product {} combination {cid}", self.product_id),
        }
    }
}

/// The level to publish to Ecwid (invariant 6): untracked products are unlimited; tracked
/// ones get the Lightspeed level minus the pending web quantity, rounded down to a whole
/// unit, never below 0.
pub fn level_to_publish(has_inventory: bool, ls_level: Decimal, pending: Decimal) -> StockLevel {
    if !has_inventory {
        return StockLevel::Unlimited;
    }
    let v = (ls_level - pending).floor();
    if v <= Decimal::ZERO {
        StockLevel::Quantity(0)
    } else {
        StockLevel::Quantity(v.to_u64().unwrap_or(u64::MAX))
    }
}

// ---------------------------------------------------------------------------------------
// State items
// ---------------------------------------------------------------------------------------

/// The mirror's cursor of one store (`STORE#{id}` / `CURSOR#inventory`). It doubles as the
/// run lease: a run claims it with a version-conditioned write, so two runs (an overlapping
/// schedule, `reconcile --fix`) never mirror one store at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryCursor {
    pub store_id: StoreId,
    /// The last Lightspeed inventory `version` fully applied (0: none yet).
    #[serde(default)]
    pub inventory_version: u64,
    /// The outlet `inventory_version` was read at. When the connection's register (and so
    /// its outlet, S3) changes, the next run starts the inventory feed again and writes every
    /// level it reads. `None`: not recorded yet (a first run, or a cursor from before).
    #[serde(default)]
    pub outlet_id: Option<String>,
    /// The Lightspeed API generation the versions were read on (`legacy`, `2026-07`). When
    /// the connection moves to another, the next run reads both feeds from the start (levels
    /// equal to Ecwid's are not written again). `None`: not recorded yet.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The last Lightspeed product `version` fully applied (0: none yet).
    #[serde(default)]
    pub products_version: u64,
    /// A run holds the cursor until then.
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
    /// Pending web quantities by SKU key that recent runs subtracted; a drop since then
    /// makes the next drained run re-publish those products.
    #[serde(default)]
    pub pending_snapshot: BTreeMap<String, Decimal>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version of the stored item.
    pub version: u64,
}

/// What a run may do with the cursor.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorClaim {
    /// Write `cursor` with the condition `expected_version`, then run.
    Claim {
        cursor: InventoryCursor,
        expected_version: Option<u64>,
    },
    /// Another run holds the lease until then.
    Busy { until: DateTime<Utc> },
}

/// Decides a claim of the cursor at `now` for `lease`.
pub fn claim_cursor(
    existing: Option<&InventoryCursor>,
    store_id: StoreId,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> CursorClaim {
    match existing {
        Some(c) if c.lease_until.is_some_and(|u| u > now) => CursorClaim::Busy {
            until: c.lease_until.unwrap_or(now),
        },
        Some(c) => {
            let mut next = c.clone();
            next.lease_until = Some(now + lease);
            next.updated_at = now;
            next.version = c.version + 1;
            CursorClaim::Claim {
                cursor: next,
                expected_version: Some(c.version),
            }
        }
        None => CursorClaim::Claim {
            cursor: InventoryCursor {
                store_id,
                inventory_version: 0,
                outlet_id: None,
                api_version: None,
                products_version: 0,
                lease_until: Some(now + lease),
                pending_snapshot: BTreeMap::new(),
                updated_at: now,
                version: 1,
            },
            expected_version: None,
        },
    }
}

/// How a Lightspeed product's SKU maps to the Ecwid catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkStatus {
    /// Not looked up yet, or the link went stale (Ecwid said 404).
    Unresolved,
    /// Exactly one Ecwid product or combination has the SKU: `target`.
    Linked,
    /// No Ecwid product or combination has the SKU.
    Missing,
    /// Several Ecwid products or combinations have the SKU.
    Ambiguous,
    /// The Lightspeed SKU is blank.
    BlankSku,
}

/// The catalog link of one Lightspeed product (`STORE#{id}` / `LSPRODUCT#{lsProductId}`):
/// what the mirror knows of it, and its Ecwid side. It follows the Lightspeed products feed,
/// so a run does not look SKUs up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogLink {
    pub lightspeed_product_id: String,
    /// The SKU as Lightspeed has it.
    pub sku: String,
    /// [`sku_key`] of `sku`; empty for a blank SKU.
    pub sku_key: String,
    pub has_inventory: bool,
    /// Not deleted in Lightspeed.
    pub live: bool,
    pub status: LinkStatus,
    /// The Ecwid side when `status` is `Linked`.
    #[serde(default)]
    pub target: Option<EcwidTarget>,
    /// How many Ecwid products/combinations had the SKU at the last lookup.
    #[serde(default)]
    pub ecwid_matches: u32,
    /// When the Ecwid side was last looked up.
    #[serde(default)]
    pub checked_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl CatalogLink {
    /// The link after Lightspeed reported `product` (from the products feed or a direct
    /// read). A new product, or a changed SKU, must be looked up in Ecwid again.
    pub fn observe(
        previous: Option<&CatalogLink>,
        product: &crate::lightspeed::LsProduct,
        now: DateTime<Utc>,
    ) -> CatalogLink {
        let sku = product.sku.clone().unwrap_or_default();
        let key = Sku::key_of(&sku);
        let has_inventory = product.has_inventory.unwrap_or(true);
        let live = product.is_live();
        let mut link = match previous {
            Some(p)
                if Some(p.sku_key.as_str()) == key.as_deref()
                    || (key.is_none() && p.sku_key.is_empty()) =>
            {
                p.clone()
            }
            _ => CatalogLink {
                lightspeed_product_id: product.id.clone(),
                sku: sku.clone(),
                sku_key: key.clone().unwrap_or_default(),
                has_inventory,
                live,
                status: LinkStatus::Unresolved,
                target: None,
                ecwid_matches: 0,
                checked_at: None,
                updated_at: now,
            },
        };
        link.sku = sku;
        link.has_inventory = has_inventory;
        link.live = live;
        if key.is_none() {
            link.status = LinkStatus::BlankSku;
            link.target = None;
        }
        link.updated_at = now;
        link
    }

    /// The link with the Ecwid side found by a lookup.
    pub fn resolved(&self, resolution: &Resolution, now: DateTime<Utc>) -> CatalogLink {
        let mut next = self.clone();
        next.checked_at = Some(now);
        next.updated_at = now;
        match resolution {
            Resolution::Linked { target, .. } => {
                next.status = LinkStatus::Linked;
                next.target = Some(*target);
                next.ecwid_matches = 1;
            }
            Resolution::Missing => {
                next.status = LinkStatus::Missing;
                next.target = None;
                next.ecwid_matches = 0;
            }
            Resolution::Ambiguous { candidates } => {
                next.status = LinkStatus::Ambiguous;
                next.target = None;
                next.ecwid_matches = *candidates;
            }
        }
        next
    }

    /// The link marked for a new lookup (Ecwid answered 404 for its target).
    pub fn stale(&self, now: DateTime<Utc>) -> CatalogLink {
        let mut next = self.clone();
        next.status = LinkStatus::Unresolved;
        next.target = None;
        next.updated_at = now;
        next
    }

    /// Whether the Ecwid side must be looked up.
    pub fn needs_lookup(&self) -> bool {
        self.live && !self.sku_key.is_empty() && self.status == LinkStatus::Unresolved
    }
}

/// A catalog link to write, with the SKU key it had before (the SKU index drops the old
/// membership).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogLinkUpdate {
    pub link: CatalogLink,
    /// `sku_key` of the stored link this one replaces (None: there was none).
    pub previous_sku_key: Option<String>,
}

/// The last level written to (or seen on) the Ecwid side of a Lightspeed product
/// (`STORE#{id}` / `STOCK#{lsProductId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedStock {
    pub lightspeed_product_id: String,
    pub target: EcwidTarget,
    pub level: StockLevel,
    /// The Lightspeed level at the outlet that `level` was computed from (None: not known,
    /// e.g. the level was seen on Ecwid when the link was made, or the product is untracked).
    #[serde(default)]
    pub ls_level: Option<Decimal>,
    /// The pending web quantity that was subtracted.
    #[serde(default)]
    pub pending: Decimal,
    pub updated_at: DateTime<Utc>,
}

/// The web quantities of one order that is paid but not yet in Lightspeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWebSale {
    pub order_id: String,
    pub lines: Vec<LedgerLine>,
    /// The ledger state (QUEUED, POSTING or PARKED); absent on items written before it was
    /// kept. The order sweep's per-store health reads it.
    #[serde(default)]
    pub state: Option<OrderState>,
    /// Since when the order waits: first seen paid (or, without that, first in the ledger).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

impl PendingWebSale {
    /// The pending sale of a ledger entry ([`LedgerEntry::is_pending_web_sale`]).
    pub fn of(entry: &LedgerEntry) -> Self {
        Self {
            order_id: entry.key.order_id.clone(),
            lines: entry.lines.clone(),
            state: Some(entry.state),
            since: Some(entry.paid_at.unwrap_or(entry.created_at)),
        }
    }
}

/// Pending web quantities summed by SKU key.
pub fn pending_by_sku(sales: &[PendingWebSale]) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for sale in sales {
        for line in &sale.lines {
            if let Some(key) = Sku::key_of(&line.sku)
                && line.quantity > Decimal::ZERO
            {
                *out.entry(key).or_default() += line.quantity;
            }
        }
    }
    out
}

/// SKU keys whose pending quantity is lower now than in `before` (their sale was posted,
/// parked orders were replayed...): products to re-publish.
pub fn pending_dropped(
    before: &BTreeMap<String, Decimal>,
    now: &BTreeMap<String, Decimal>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(k, v)| now.get(*k).copied().unwrap_or_default() < **v)
        .map(|(k, _)| k.clone())
        .collect()
}

/// The snapshot a run leaves for the next one: the current one after a drained run, the
/// larger of both per SKU otherwise (so a drop is still noticed later).
pub fn next_pending_snapshot(
    before: &BTreeMap<String, Decimal>,
    now: &BTreeMap<String, Decimal>,
    drained: bool,
) -> BTreeMap<String, Decimal> {
    if drained {
        return now.clone();
    }
    let mut out = before.clone();
    for (k, v) in now {
        let e = out.entry(k.clone()).or_default();
        if *v > *e {
            *e = *v;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The wire shapes the ports exchange
// ---------------------------------------------------------------------------------------

/// A whole number from a JSON number or numeric string (Ecwid stock is an integer).
fn opt_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(crate::decimal::opt_decimal(d)?.and_then(|v| v.floor().to_i64()))
}

/// A Lightspeed inventory record (legacy `/api/2.0/inventory`, 2026-07 `POST /inventory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawInventoryRecord")]
pub struct InventoryRecord {
    pub product_id: String,
    pub outlet_id: String,
    /// Legacy `inventory_level`, 2026-07 `current_inventory_level` (MAPPING.md §8); a record
    /// with neither (or null) reads as 0, as the legacy feed always did.
    pub inventory_level: Decimal,
    pub version: u64,
}

/// The wire form of [`InventoryRecord`]: either generation's level field, or both.
#[derive(Deserialize)]
struct RawInventoryRecord {
    product_id: String,
    outlet_id: String,
    #[serde(default, deserialize_with = "crate::decimal::opt_decimal")]
    inventory_level: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::decimal::opt_decimal")]
    current_inventory_level: Option<Decimal>,
    #[serde(default)]
    version: u64,
}

impl From<RawInventoryRecord> for InventoryRecord {
    fn from(r: RawInventoryRecord) -> Self {
        InventoryRecord {
            product_id: r.product_id,
            outlet_id: r.outlet_id,
            inventory_level: r
                .current_inventory_level
                .or(r.inventory_level)
                .unwrap_or_default(),
            version: r.version,
        }
    }
}

/// One page of a version-paginated Lightspeed feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage<T> {
    pub items: Vec<T>,
    /// `version.max` of the page: the `after` of the next page. None on an empty page.
    pub max_version: Option<u64>,
    /// `X-RateLimit-Remaining` of the answer, when it carried one.
    pub rate_limit_remaining: Option<u32>,
}

/// An Ecwid product as the product search returns it (the stock fields).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcwidCatalogProduct {
    pub id: u64,
    pub sku: Option<String>,
    pub unlimited: bool,
    #[serde(deserialize_with = "opt_whole")]
    pub quantity: Option<i64>,
    pub combinations: Vec<EcwidCatalogCombination>,
}

/// One combination (variation) of an Ecwid product.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcwidCatalogCombination {
    pub id: u64,
    pub sku: Option<String>,
    pub unlimited: bool,
    #[serde(deserialize_with = "opt_whole")]
    pub quantity: Option<i64>,
}

/// One page of `GET /products` (offset paging).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EcwidProductPage {
    pub total: u64,
    pub count: u64,
    pub offset: u64,
    pub limit: u64,
    pub items: Vec<EcwidCatalogProduct>,
}

// ---------------------------------------------------------------------------------------
// Matching SKUs to the Ecwid catalog
// ---------------------------------------------------------------------------------------

/// The Ecwid side of a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Exactly one product or combination has it; `level` is what it shows now.
    Linked {
        target: EcwidTarget,
        level: Option<StockLevel>,
    },
    Missing,
    Ambiguous {
        candidates: u32,
    },
}

/// Ecwid products and combinations by SKU key.
#[derive(Debug, Clone, Default)]
pub struct EcwidCatalogIndex {
    by_sku: HashMap<String, Vec<(EcwidTarget, Option<StockLevel>)>>,
    products: usize,
}

impl EcwidCatalogIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_products<'a>(products: impl IntoIterator<Item = &'a EcwidCatalogProduct>) -> Self {
        let mut index = Self::new();
        for p in products {
            index.add(p);
        }
        index
    }

    /// Adds a product and its combinations. A blank SKU is not indexed.
    pub fn add(&mut self, p: &EcwidCatalogProduct) {
        self.products += 1;
        if let Some(key) = p.sku.as_deref().and_then(Sku::key_of) {
            self.by_sku.entry(key).or_default().push((
                EcwidTarget::product(p.id),
                StockLevel::from_ecwid(p.unlimited, p.quantity),
            ));
        }
        for c in &p.combinations {
            if let Some(key) = c.sku.as_deref().and_then(Sku::key_of) {
                self.by_sku.entry(key).or_default().push((
                    EcwidTarget::combination(p.id, c.id),
                    StockLevel::from_ecwid(c.unlimited, c.quantity),
                ));
            }
        }
    }

    /// Products added.
    pub fn products(&self) -> usize {
        self.products
    }

    pub fn lookup(&self, key: &str) -> Resolution {
        match self.by_sku.get(key).map(Vec::as_slice) {
            None | Some([]) => Resolution::Missing,
            Some([(target, level)]) => Resolution::Linked {
                target: *target,
                level: *level,
            },
            Some(several) => Resolution::Ambiguous {
                candidates: several.len() as u32,
            },
        }
    }

    /// The level an Ecwid target shows, if it is in the index.
    pub fn level_of(&self, target: &EcwidTarget) -> Option<StockLevel> {
        self.by_sku
            .values()
            .flatten()
            .find(|(t, _)| t == target)
            .and_then(|(_, l)| *l)
    }
}

/// Why a Lightspeed product is not mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Deleted in Lightspeed.
    Deleted,
    /// Blank SKU, or no Ecwid product/combination has it.
    Unlinked,
    /// Several Ecwid products/combinations, or several live Lightspeed products, have it.
    Ambiguous,
}

/// Whether a link may be written: `Ok(target)` or why not. `lightspeed_owners` is the number
/// of live Lightspeed products with the link's SKU.
pub fn eligibility(link: &CatalogLink, lightspeed_owners: usize) -> Result<EcwidTarget, Skip> {
    if !link.live {
        return Err(Skip::Deleted);
    }
    if link.sku_key.is_empty() {
        return Err(Skip::Unlinked);
    }
    if lightspeed_owners > 1 {
        return Err(Skip::Ambiguous);
    }
    match (link.status, link.target) {
        (LinkStatus::Linked, Some(t)) => Ok(t),
        (LinkStatus::Ambiguous, _) => Err(Skip::Ambiguous),
        _ => Err(Skip::Unlinked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    use crate::fakes::ls_product as ls;

    #[test]
    fn level_is_lightspeed_minus_pending_floored_at_zero() {
        assert_eq!(
            level_to_publish(true, dec!(10), dec!(2)),
            StockLevel::Quantity(8)
        );
        assert_eq!(
            level_to_publish(true, dec!(1), dec!(3)),
            StockLevel::Quantity(0)
        );
        assert_eq!(
            level_to_publish(true, dec!(-4), dec!(0)),
            StockLevel::Quantity(0)
        );
        // Fractional levels (weighed goods) round down: never promise a unit not there.
        assert_eq!(
            level_to_publish(true, dec!(7.9), dec!(0.5)),
            StockLevel::Quantity(7)
        );
        assert_eq!(
            level_to_publish(false, dec!(3), dec!(1)),
            StockLevel::Unlimited
        );
    }

    #[test]
    fn ecwid_levels_read_as_quantity_or_unlimited() {
        assert_eq!(
            StockLevel::from_ecwid(false, Some(-2)),
            Some(StockLevel::Quantity(0))
        );
        assert_eq!(
            StockLevel::from_ecwid(true, Some(5)),
            Some(StockLevel::Unlimited)
        );
        assert_eq!(StockLevel::from_ecwid(false, None), None);
    }

    #[test]
    fn skus_compare_trimmed_and_without_case_and_blank_never_matches() {
        let catalog = EcwidCatalogIndex::from_products(&[
            EcwidCatalogProduct {
                id: 1,
                sku: Some("MUG-001".into()),
                quantity: Some(3),
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 2,
                sku: Some("TSHIRT".into()),
                unlimited: true,
                combinations: vec![
                    EcwidCatalogCombination {
                        id: 21,
                        sku: Some("TSHIRT-S".into()),
                        quantity: Some(4),
                        ..Default::default()
                    },
                    EcwidCatalogCombination {
                        id: 22,
                        sku: Some("".into()),
                        quantity: Some(1),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 3,
                sku: Some("dup".into()),
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 4,
                sku: Some("DUP".into()),
                ..Default::default()
            },
        ]);
        assert_eq!(
            catalog.lookup("mug-001"),
            Resolution::Linked {
                target: EcwidTarget::product(1),
                level: Some(StockLevel::Quantity(3))
            }
        );
        assert_eq!(
            catalog.lookup("tshirt-s"),
            Resolution::Linked {
                target: EcwidTarget::combination(2, 21),
                level: Some(StockLevel::Quantity(4))
            }
        );
        assert_eq!(
            catalog.lookup("dup"),
            Resolution::Ambiguous { candidates: 2 }
        );
        assert_eq!(catalog.lookup("nope"), Resolution::Missing);
        assert_eq!(
            catalog.level_of(&EcwidTarget::product(2)),
            Some(StockLevel::Unlimited)
        );
    }

    #[test]
    fn links_follow_lightspeed_and_a_changed_sku_is_looked_up_again() {
        let first = CatalogLink::observe(None, &ls("p1", "MUG-001", true), t(0));
        assert!(first.needs_lookup());
        let linked = first.resolved(
            &Resolution::Linked {
                target: EcwidTarget::product(7),
                level: None,
            },
            t(1),
        );
        assert_eq!(eligibility(&linked, 1), Ok(EcwidTarget::product(7)));
        assert_eq!(eligibility(&linked, 2), Err(Skip::Ambiguous));

        // has_inventory changes keep the link; a SKU change drops it.
        let untracked = CatalogLink::observe(Some(&linked), &ls("p1", " mug-001", false), t(2));
        assert_eq!(untracked.status, LinkStatus::Linked);
        assert!(!untracked.has_inventory);
        let renamed = CatalogLink::observe(Some(&linked), &ls("p1", "MUG-002", true), t(3));
        assert_eq!(renamed.status, LinkStatus::Unresolved);
        assert_eq!(renamed.target, None);

        let mut deleted = ls("p1", "MUG-001", true);
        deleted.deleted_at = Some("2026-01-01T00:00:00Z".into());
        let gone = CatalogLink::observe(Some(&linked), &deleted, t(4));
        assert_eq!(eligibility(&gone, 1), Err(Skip::Deleted));

        let blank = CatalogLink::observe(None, &ls("p2", "  ", true), t(5));
        assert_eq!(blank.status, LinkStatus::BlankSku);
        assert!(!blank.needs_lookup());
        assert_eq!(eligibility(&blank, 0), Err(Skip::Unlinked));

        let missing = first.resolved(&Resolution::Missing, t(6));
        assert_eq!(eligibility(&missing, 1), Err(Skip::Unlinked));
        let ambiguous = first.resolved(&Resolution::Ambiguous { candidates: 3 }, t(6));
        assert_eq!(eligibility(&ambiguous, 1), Err(Skip::Ambiguous));
        assert_eq!(linked.stale(t(7)).status, LinkStatus::Unresolved);
    }

    #[test]
    fn the_cursor_is_a_lease() {
        let lease = chrono::Duration::seconds(60);
        let CursorClaim::Claim {
            cursor,
            expected_version,
        } = claim_cursor(None, StoreId::literal(9), t(0), lease)
        else {
            panic!("a first claim")
        };
        assert_eq!(expected_version, None);
        assert_eq!(cursor.version, 1);
        assert_eq!(
            claim_cursor(Some(&cursor), StoreId::literal(9), t(30), lease),
            CursorClaim::Busy { until: t(60) }
        );
        let CursorClaim::Claim {
            cursor: again,
            expected_version,
        } = claim_cursor(Some(&cursor), StoreId::literal(9), t(61), lease)
        else {
            panic!("an expired lease is taken over")
        };
        assert_eq!(expected_version, Some(1));
        assert_eq!(again.version, 2);
    }

    #[test]
    fn pending_quantities_sum_by_sku_and_drops_are_noticed() {
        let sales = vec![
            PendingWebSale {
                order_id: "A".into(),
                lines: vec![
                    LedgerLine {
                        sku: "MUG-001".into(),
                        quantity: dec!(2),
                    },
                    LedgerLine {
                        sku: "TOTE".into(),
                        quantity: dec!(1),
                    },
                ],
                state: None,
                since: None,
            },
            PendingWebSale {
                order_id: "B".into(),
                lines: vec![LedgerLine {
                    sku: " mug-001".into(),
                    quantity: dec!(1),
                }],
                state: None,
                since: None,
            },
        ];
        let p = pending_by_sku(&sales);
        assert_eq!(p.get("mug-001"), Some(&dec!(3)));
        assert_eq!(p.get("tote"), Some(&dec!(1)));

        let mut later = p.clone();
        later.insert("mug-001".into(), dec!(1));
        later.remove("tote");
        assert_eq!(pending_dropped(&p, &later), vec!["mug-001", "tote"]);
        assert_eq!(next_pending_snapshot(&p, &later, true), later);
        assert_eq!(next_pending_snapshot(&p, &later, false), p);
    }

    #[test]
    fn batch_keys_are_stable_per_content_and_context() {
        let writes = [
            (EcwidTarget::product(1), StockLevel::Quantity(3)),
            (EcwidTarget::combination(2, 5), StockLevel::Unlimited),
        ];
        let k = batch_dedup_key(StoreId::literal(1), "inv:0:10", &writes);
        assert_eq!(k.len(), 36);
        let groups: Vec<usize> = k.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{k}");
        assert!(k.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()), "{k}");
        assert_eq!(k, batch_dedup_key(StoreId::literal(1), "inv:0:10", &writes));
        assert_ne!(
            k,
            batch_dedup_key(StoreId::literal(1), "inv:10:20", &writes)
        );
        assert_ne!(k, batch_dedup_key(StoreId::literal(2), "inv:0:10", &writes));
        assert_ne!(
            k,
            batch_dedup_key(StoreId::literal(1), "inv:0:10", &writes[..1])
        );
        let other = [
            (EcwidTarget::product(1), StockLevel::Quantity(4)),
            writes[1],
        ];
        assert_ne!(k, batch_dedup_key(StoreId::literal(1), "inv:0:10", &other));
    }

    #[test]
    fn a_batch_status_without_responses_is_not_done_yet() {
        let parse = |v: serde_json::Value| serde_json::from_value::<BatchStatus>(v).unwrap();
        let queued = parse(serde_json::json!({"status": "QUEUED", "responses": null}));
        assert_eq!(
            (queued.state(), queued.responses.len()),
            (BatchState::Pending, 0)
        );
        let running = parse(serde_json::json!({"status": "IN_PROGRESS", "totalRequests": 3}));
        assert_eq!(running.state(), BatchState::Pending);
        assert!(!running.is_completed());
        let done = parse(serde_json::json!({"status": "COMPLETED", "responses": [
            {"id": "0", "status": "COMPLETED", "httpStatusCode": 200, "httpBody": {"updateCount": 1}}
        ]}));
        assert!(done.is_completed());
        assert_eq!(done.responses[0].http_status_code, Some(200));
        assert_eq!(
            parse(serde_json::json!({"status": "FAILED", "responses": null})).state(),
            BatchState::Failed("FAILED".into())
        );
    }

    #[test]
    fn batch_sub_responses_are_each_checked() {
        let r = |code: Option<u16>, status: &str| BatchResponse {
            id: "0".into(),
            status: status.into(),
            http_status_code: code,
            http_body: None,
        };
        assert_eq!(
            classify_batch_response(Some(&r(Some(200), "COMPLETED"))),
            WriteOutcome::Written
        );
        assert_eq!(
            classify_batch_response(Some(&r(Some(404), "FAILED"))),
            WriteOutcome::Gone
        );
        assert!(matches!(
            classify_batch_response(Some(&r(Some(503), "FAILED"))),
            WriteOutcome::Retry(_)
        ));
        assert!(matches!(
            classify_batch_response(Some(&r(Some(400), "FAILED"))),
            WriteOutcome::Rejected(_)
        ));
        assert!(matches!(
            classify_batch_response(Some(&r(None, "NOT_EXECUTED"))),
            WriteOutcome::Retry(_)
        ));
        assert!(matches!(
            classify_batch_response(None),
            WriteOutcome::Retry(_)
        ));
    }

    #[test]
    fn ecwid_products_parse_with_lenient_numbers() {
        let p: EcwidCatalogProduct = serde_json::from_value(serde_json::json!({
            "id": 5, "sku": "A", "quantity": 3.0, "unlimited": false, "inStock": true,
            "combinations": [{"id": 9, "sku": "A-1", "quantity": "2", "unlimited": false}]
        }))
        .unwrap();
        assert_eq!(p.quantity, Some(3));
        assert_eq!(p.combinations[0].quantity, Some(2));
        let r: InventoryRecord = serde_json::from_value(serde_json::json!({
            "id": "x", "product_id": "p", "outlet_id": "o", "inventory_level": "4.00000", "version": 12
        }))
        .unwrap();
        assert_eq!(r.inventory_level, dec!(4));
        let dated: InventoryRecord = serde_json::from_value(serde_json::json!({
            "id": "x", "product_id": "p", "outlet_id": "o", "current_inventory_level": 6, "version": 13
        }))
        .unwrap();
        assert_eq!(dated.inventory_level, dec!(6));
        let both: InventoryRecord = serde_json::from_value(serde_json::json!({
            "product_id": "p", "outlet_id": "o", "inventory_level": 1, "current_inventory_level": "7.0"
        }))
        .unwrap();
        assert_eq!(both.inventory_level, dec!(7));
    }
}
