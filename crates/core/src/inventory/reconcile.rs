//! The drift report behind `els reconcile`: every Lightspeed product matched to the Ecwid
//! catalog by SKU, its expected Ecwid level (the mirror's rule) against what Ecwid shows.
//!
//! The comparison here is pure; [`super::mirror::InventoryMirror::reconcile`] reads both
//! catalogs and, with `fix`, writes the expected levels.

use super::{EcwidCatalogIndex, EcwidTarget, Resolution, StockLevel, level_to_publish};
use crate::ids::{Sku, StoreId};
use crate::lightspeed::LsProduct;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How many SKUs a report lists per kind of problem.
pub const SAMPLE: usize = 20;

/// One linked product whose Ecwid level differs from the expected one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRow {
    pub sku: String,
    pub lightspeed_product_id: String,
    pub target: EcwidTarget,
    /// Lightspeed's level at the connection's outlet (None: the product is untracked).
    pub ls_level: Option<Decimal>,
    pub pending: Decimal,
    /// The level the mirror publishes: `ls_level − pending`, floored at 0, or unlimited.
    pub expected: StockLevel,
    /// What Ecwid shows (None: neither a quantity nor unlimited).
    pub actual: Option<StockLevel>,
    /// Written by `--fix`.
    pub fixed: bool,
}

/// The result of a reconcile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// A report is output only (a [`StoreId`]'s number).
    pub store_id: u64,
    /// Live Lightspeed products compared.
    pub lightspeed_products: u64,
    /// Ecwid products read.
    pub ecwid_products: u64,
    /// Products with exactly one Ecwid product or combination.
    pub linked: u64,
    pub in_sync: u64,
    pub drift: Vec<DriftRow>,
    /// Blank SKU, or no Ecwid product/combination has it.
    pub unlinked: u64,
    /// Several Ecwid products/combinations, or several Lightspeed products, have the SKU.
    pub ambiguous: u64,
    pub unlinked_skus: Vec<String>,
    pub ambiguous_skus: Vec<String>,
    /// Drift rows written by `--fix`, and those whose write failed.
    pub fixed: u64,
    pub fix_failed: u64,
}

/// A live Lightspeed product and what the comparison found for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    InSync,
    Drift(DriftRow),
    Unlinked,
    Ambiguous,
}

/// Compares every live Lightspeed product with the Ecwid catalog. `levels` holds Lightspeed
/// levels at the connection's outlet by product id (a tracked product without a record
/// counts as 0); `pending` the pending web quantities by SKU key.
pub fn compare(
    store_id: StoreId,
    products: &[LsProduct],
    levels: &HashMap<String, Decimal>,
    catalog: &EcwidCatalogIndex,
    pending: &BTreeMap<String, Decimal>,
) -> ReconcileReport {
    let live: Vec<&LsProduct> = products.iter().filter(|p| p.is_live()).collect();
    let mut owners: HashMap<String, usize> = HashMap::new();
    for p in &live {
        if let Some(k) = p.sku.as_deref().and_then(Sku::key_of) {
            *owners.entry(k).or_default() += 1;
        }
    }
    let mut report = ReconcileReport {
        store_id: store_id.get(),
        lightspeed_products: live.len() as u64,
        ecwid_products: catalog.products() as u64,
        ..ReconcileReport::default()
    };
    for p in live {
        let sku = p.sku.clone().unwrap_or_default();
        let verdict = match Sku::key_of(&sku) {
            None => Verdict::Unlinked,
            Some(key) if owners.get(&key).copied().unwrap_or(0) > 1 => Verdict::Ambiguous,
            Some(key) => match catalog.lookup(&key) {
                Resolution::Missing => Verdict::Unlinked,
                Resolution::Ambiguous { .. } => Verdict::Ambiguous,
                Resolution::Linked { target, level } => {
                    let has_inventory = p.has_inventory.unwrap_or(true);
                    let ls_level =
                        has_inventory.then(|| levels.get(&p.id).copied().unwrap_or_default());
                    let pend = if has_inventory {
                        pending.get(&key).copied().unwrap_or_default()
                    } else {
                        Decimal::ZERO
                    };
                    let expected =
                        level_to_publish(has_inventory, ls_level.unwrap_or_default(), pend);
                    if level == Some(expected) {
                        Verdict::InSync
                    } else {
                        Verdict::Drift(DriftRow {
                            sku: sku.clone(),
                            lightspeed_product_id: p.id.clone(),
                            target,
                            ls_level,
                            pending: pend,
                            expected,
                            actual: level,
                            fixed: false,
                        })
                    }
                }
            },
        };
        match verdict {
            Verdict::InSync => {
                report.linked += 1;
                report.in_sync += 1;
            }
            Verdict::Drift(row) => {
                report.linked += 1;
                report.drift.push(row);
            }
            Verdict::Unlinked => {
                report.unlinked += 1;
                if report.unlinked_skus.len() < SAMPLE {
                    report.unlinked_skus.push(sku);
                }
            }
            Verdict::Ambiguous => {
                report.ambiguous += 1;
                if report.ambiguous_skus.len() < SAMPLE {
                    report.ambiguous_skus.push(sku);
                }
            }
        }
    }
    report
        .drift
        .sort_by(|a, b| a.sku.cmp(&b.sku).then(a.target.cmp(&b.target)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{EcwidCatalogCombination, EcwidCatalogProduct};
    use rust_decimal_macros::dec;

    use crate::fakes::ls_product as ls;

    #[test]
    fn drift_is_reported_against_the_mirror_rule() {
        let catalog = EcwidCatalogIndex::from_products(&[
            EcwidCatalogProduct {
                id: 1,
                sku: Some("A".into()),
                quantity: Some(5),
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 2,
                sku: Some("B".into()),
                quantity: Some(9),
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 3,
                sku: Some("SHIRT".into()),
                unlimited: true,
                combinations: vec![EcwidCatalogCombination {
                    id: 31,
                    sku: Some("C".into()),
                    quantity: Some(2),
                    ..Default::default()
                }],
                ..Default::default()
            },
            EcwidCatalogProduct {
                id: 4,
                sku: Some("U".into()),
                quantity: Some(1),
                ..Default::default()
            },
        ]);
        let products = vec![
            ls("a", "A", true),
            ls("b", "B", true),
            ls("c", "C", true),
            ls("u", "U", false),
            ls("x", "X", true),
            ls("d1", "D", true),
            ls("d2", "d", true),
        ];
        let levels: HashMap<String, Decimal> = [
            ("a".to_string(), dec!(7)),
            ("b".to_string(), dec!(9)),
            ("c".to_string(), dec!(2)),
        ]
        .into();
        let pending: BTreeMap<String, Decimal> = [("a".to_string(), dec!(2))].into();
        let r = compare(
            StoreId::literal(1003),
            &products,
            &levels,
            &catalog,
            &pending,
        );
        assert_eq!(r.lightspeed_products, 7);
        assert_eq!(r.linked, 4);
        assert_eq!(r.in_sync, 3, "A (7-2=5), B and C agree");
        assert_eq!(r.drift.len(), 1);
        assert_eq!(r.drift[0].sku, "U");
        assert_eq!(r.drift[0].expected, StockLevel::Unlimited);
        assert_eq!(r.drift[0].actual, Some(StockLevel::Quantity(1)));
        assert_eq!(r.unlinked, 1);
        assert_eq!(r.ambiguous, 2);
    }
}
