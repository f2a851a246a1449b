//! The findings of `els doctor`: whether a store is ready to post, and if not, why. The
//! checks that need the APIs are made by the CLI; what can be judged from data alone (the
//! catalog link report, the tax rates seen in recent orders) is here.

use crate::ecwid::EcwidOrder;
use crate::ids::Sku;
use crate::inventory::EcwidCatalogProduct;
use crate::lightspeed::{LsProduct, SaleSetup};
use crate::money::applied_taxes;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How a check came out. `Fail` blocks posting (some or all orders would park).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Whether the checks let the store post: no `Fail`.
pub fn ready(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// The catalog as rule P1 sees it: what an Ecwid order line could not be matched by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogReport {
    /// Ecwid products without variations, and variations (what an order line can name).
    pub ecwid_items: u64,
    pub lightspeed_products: u64,
    /// Ecwid items whose SKU no live Lightspeed product has: `SKU (where)`.
    pub unmatched: Vec<String>,
    /// Ecwid items with a blank (or unusable) SKU: where.
    pub blank: Vec<String>,
    /// SKUs several Ecwid items share: `SKU (n items)`.
    pub shared_in_ecwid: Vec<String>,
    /// SKUs several live Lightspeed products share: `SKU (n products)`.
    pub shared_in_lightspeed: Vec<String>,
}

impl CatalogReport {
    pub fn is_clean(&self) -> bool {
        self.unmatched.is_empty()
            && self.blank.is_empty()
            && self.shared_in_ecwid.is_empty()
            && self.shared_in_lightspeed.is_empty()
    }
}

/// Compares the Ecwid catalog with the live Lightspeed products by SKU (P1: trimmed, case
/// ignored, blank never matches). A product with variations is sold as its variations, so
/// only those are looked at for it.
pub fn catalog_report(ecwid: &[EcwidCatalogProduct], lightspeed: &[LsProduct]) -> CatalogReport {
    let mut ls_keys: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut live = 0;
    for p in lightspeed.iter().filter(|p| p.is_live()) {
        live += 1;
        if let Some(sku) = p.sku.as_deref().and_then(|s| Sku::parse(s).ok()) {
            ls_keys.entry(sku.key()).or_insert((sku.to_string(), 0)).1 += 1;
        }
    }
    let mut items: Vec<(Option<Sku>, String)> = Vec::new();
    for p in ecwid {
        if p.combinations.is_empty() {
            items.push((
                p.sku.as_deref().and_then(|s| Sku::parse(s).ok()),
                format!("product {}", p.id),
            ));
        }
        for c in &p.combinations {
            items.push((
                c.sku.as_deref().and_then(|s| Sku::parse(s).ok()),
                format!("product {} variation {}", p.id, c.id),
            ));
        }
    }
    let mut report = CatalogReport {
        ecwid_items: items.len() as u64,
        lightspeed_products: live,
        ..CatalogReport::default()
    };
    let mut ecwid_keys: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (sku, at) in &items {
        match sku {
            None => report.blank.push(at.clone()),
            Some(sku) => {
                ecwid_keys
                    .entry(sku.key())
                    .or_insert((sku.to_string(), 0))
                    .1 += 1;
                if !ls_keys.contains_key(&sku.key()) {
                    report.unmatched.push(format!("{sku} ({at})"));
                }
            }
        }
    }
    let shared = |keys: &BTreeMap<String, (String, u64)>, what: &str| -> Vec<String> {
        keys.values()
            .filter(|(_, n)| *n > 1)
            .map(|(sku, n)| format!("{sku} ({n} {what})"))
            .collect()
    };
    report.shared_in_ecwid = shared(&ecwid_keys, "items");
    report.shared_in_lightspeed = shared(&ls_keys, "products");
    report
}

/// The tax rates of recent orders that no Lightspeed tax has (each would park the order
/// `TAX_NOT_MAPPED`), with the Ecwid tax names seen at that rate, and how many order lines
/// used it.
pub fn unmapped_tax_rates(orders: &[EcwidOrder], setup: &SaleSetup) -> Vec<(Decimal, String, u64)> {
    let mut out: BTreeMap<Decimal, (BTreeSet<String>, u64)> = BTreeMap::new();
    for order in orders {
        for item in &order.items {
            let (applied, percent) = applied_taxes(&item.taxes);
            if applied.is_empty() || setup.tax_for_percent(percent).is_some() {
                continue;
            }
            let entry = out.entry(percent.normalize()).or_default();
            entry.0.insert(
                applied
                    .iter()
                    .map(|t| t.name.clone().unwrap_or_else(|| "?".into()))
                    .collect::<Vec<_>>()
                    .join(" + "),
            );
            entry.1 += 1;
        }
    }
    out.into_iter()
        .map(|(rate, (names, n))| (rate, names.into_iter().collect::<Vec<_>>().join(", "), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::EcwidCatalogCombination;
    use crate::lightspeed::LsTax;

    fn ecwid(id: u64, sku: Option<&str>, combos: &[(u64, Option<&str>)]) -> EcwidCatalogProduct {
        EcwidCatalogProduct {
            id,
            sku: sku.map(Into::into),
            unlimited: false,
            quantity: Some(1),
            combinations: combos
                .iter()
                .map(|(cid, s)| EcwidCatalogCombination {
                    id: *cid,
                    sku: s.map(Into::into),
                    ..EcwidCatalogCombination::default()
                })
                .collect(),
        }
    }

    fn ls(id: &str, sku: &str, deleted: bool) -> LsProduct {
        LsProduct {
            deleted_at: deleted.then(|| "2026-01-01T00:00:00Z".into()),
            ..crate::fakes::ls_product(id, sku, true)
        }
    }

    #[test]
    fn the_link_report_lists_unmatched_blank_and_shared_skus() {
        let report = catalog_report(
            &[
                ecwid(1, Some("MUG"), &[]),
                ecwid(2, Some(" mug "), &[]),
                ecwid(3, Some("GONE"), &[]),
                ecwid(4, Some("  "), &[]),
                // Sold as its variations: the base SKU is not looked at.
                ecwid(5, None, &[(51, Some("TEE-S")), (52, None)]),
            ],
            &[
                ls("a", "MUG", false),
                ls("b", "tee-s", false),
                ls("c", "TEE-S", false),
                ls("d", "GONE", true),
            ],
        );
        assert_eq!(report.ecwid_items, 6);
        assert_eq!(report.lightspeed_products, 3);
        assert_eq!(report.unmatched, vec!["GONE (product 3)"]);
        assert_eq!(report.blank, vec!["product 4", "product 5 variation 52"]);
        assert_eq!(report.shared_in_ecwid, vec!["MUG (2 items)"]);
        assert_eq!(report.shared_in_lightspeed, vec!["tee-s (2 products)"]);
        assert!(!report.is_clean());
    }

    #[test]
    fn rates_no_lightspeed_tax_has_are_listed_once_with_their_names() {
        let setup = SaleSetup {
            no_tax_group_id: "none".into(),
            taxes: vec![LsTax {
                id: "t10".into(),
                name: "GST".into(),
                rate: Decimal::new(1, 1),
            }],
            currency: None,
        };
        let order: EcwidOrder = serde_json::from_value(serde_json::json!({
            "id": "A", "total": 1,
            "items": [
                {"sku": "X", "quantity": 1, "price": 1, "taxes": [{"name": "GST", "value": 10, "total": 0.1}]},
                {"sku": "Y", "quantity": 1, "price": 1, "taxes": [{"name": "GST", "value": 5, "total": 0.05}, {"name": "PST", "value": 7, "total": 0.07}]},
                {"sku": "Z", "quantity": 1, "price": 1, "taxes": [{"name": "GST", "value": 5, "total": 0.05}, {"name": "PST", "value": 7, "total": 0.07}]},
                {"sku": "W", "quantity": 1, "price": 1, "taxes": [{"name": "Zero", "value": 0, "total": 0}]}
            ]
        }))
        .unwrap();
        assert_eq!(
            unmapped_tax_rates(&[order], &setup),
            vec![(Decimal::from(12), "GST + PST".to_string(), 2)]
        );
    }

    #[test]
    fn a_failed_check_means_not_ready() {
        let ok = Check::new("a", Status::Ok, "");
        let warn = Check::new("b", Status::Warn, "");
        assert!(ready(&[ok.clone(), warn.clone()]));
        assert!(!ready(&[ok, warn, Check::new("c", Status::Fail, "")]));
    }
}
