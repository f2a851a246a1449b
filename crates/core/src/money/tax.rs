//! Which tax each amount of an Ecwid order carries, per Ecwid's documented semantics.
//!
//! Ecwid reports the tax on shipping (and on the handling fee) **twice**: inside each item's
//! `taxes[].total` (documented as `taxOnDiscountedSubtotal + taxOnShipping`) and again, summed
//! per tax, in the order's `taxesOnShipping` (documented as `(shippingRate + handlingFee) ×
//! value / 100`). The order's `tax` is the sum of the item taxes, so it holds the shipping tax
//! once. We post the shipping tax on the shipping line and each item's own tax on its line,
//! so each is counted exactly once.
//!
//! Two points the documents leave open are [`Reading`]s; the mapper tries each and the
//! order's `total` and `tax` decide which one the order follows (or it parks):
//! - old orders whose item taxes carry no `taxOnDiscountedSubtotal` / `taxOnShipping`: does
//!   the item `total` contain the shipping share (documented today) or not?
//! - is a handling fee's tax inside `taxesOnShipping` (the documented formula) or only in
//!   `handlingFee.taxes`?
//! - does a tax's own `includeInPrice` hold when it differs from the order's
//!   `pricesIncludeTax`? Ecwid's own "State tax / TVA" example marks its 20% TVA
//!   `includeInPrice: true` yet computes it on the net and adds it to the total.

use crate::ecwid::{EcwidOrder, ItemTax, OrderItem};
use rust_decimal::Decimal;

/// One way of reading the parts of Ecwid's tax reporting that its documents leave open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    /// For item taxes without a `taxOnDiscountedSubtotal`/`taxOnShipping` breakdown: their
    /// `total` contains the item's share of the shipping tax (the documented meaning).
    pub legacy_items_include_shipping: bool,
    /// The handling fee's tax is inside `taxesOnShipping` (and the items' shares of it).
    pub fee_tax_in_shipping: bool,
    /// A tax's `includeInPrice` says whether the amount it taxes includes it (the documented
    /// meaning); otherwise the order's `pricesIncludeTax` says it for every tax.
    pub honour_include_in_price: bool,
}

impl Reading {
    /// The readings worth trying for this order, the documented one first. Only the open
    /// points that can change this order's figures are varied.
    pub(crate) fn candidates(order: &EcwidOrder) -> Vec<Reading> {
        let shipping_taxed = shipping_tax_source(order)
            .iter()
            .any(|t| !t.total.is_zero());
        let legacy = shipping_taxed
            && order.items.iter().any(|i| {
                i.taxes.iter().any(|t| {
                    !t.total.is_zero()
                        && t.tax_on_discounted_subtotal.is_none()
                        && t.tax_on_shipping.is_none()
                })
            });
        let fee_taxed = order
            .handling_fee
            .as_ref()
            .is_some_and(|f| f.taxes.iter().any(|t| !t.total.is_zero()));
        let order_inclusive = order.prices_include_tax.unwrap_or(false);
        let own_inclusion = order
            .items
            .iter()
            .flat_map(|i| i.taxes.iter())
            .chain(order.taxes_on_shipping.iter())
            .chain(order.handling_fee.iter().flat_map(|f| f.taxes.iter()))
            .chain(order.custom_surcharges.iter().flat_map(|c| c.taxes.iter()))
            .any(|t| t.include_in_price.is_some_and(|i| i != order_inclusive));
        let both = |open: bool| if open { vec![true, false] } else { vec![true] };
        let mut out = Vec::new();
        for legacy_items_include_shipping in both(legacy) {
            for fee_tax_in_shipping in both(fee_taxed) {
                for honour_include_in_price in both(own_inclusion) {
                    out.push(Reading {
                        legacy_items_include_shipping,
                        fee_tax_in_shipping,
                        honour_include_in_price,
                    });
                }
            }
        }
        out
    }
}

/// Whether two tax entries name the same tax: the same rate, and the same name when both
/// have one (`taxesOnShipping` entries may come without a name).
fn same_tax(a: &ItemTax, b: &ItemTax) -> bool {
    let name = |t: &ItemTax| {
        t.name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_lowercase)
    };
    a.value == b.value
        && match (name(a), name(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

fn label(t: &ItemTax) -> String {
    format!(
        "{} ({}%)",
        t.name.as_deref().unwrap_or("tax"),
        t.value.normalize()
    )
}

/// The shipping taxes as Ecwid lists them: `taxesOnShipping`, or, when that is empty or
/// null, the items' `taxOnShipping` shares summed per tax.
fn shipping_tax_source(order: &EcwidOrder) -> Vec<ItemTax> {
    if order
        .taxes_on_shipping
        .iter()
        .any(|t| !t.total.is_zero() || !t.value.is_zero())
    {
        return order.taxes_on_shipping.clone();
    }
    let mut summed: Vec<ItemTax> = Vec::new();
    for t in order.items.iter().flat_map(|i| i.taxes.iter()) {
        let Some(share) = t.tax_on_shipping.filter(|s| !s.is_zero()) else {
            continue;
        };
        match summed.iter_mut().find(|s| same_tax(s, t)) {
            Some(s) => s.total += share,
            None => summed.push(ItemTax {
                total: share,
                tax_on_discounted_subtotal: None,
                tax_on_shipping: None,
                ..t.clone()
            }),
        }
    }
    summed
}

/// An item's taxes on its own discounted subtotal: each tax's `total` less the item's share
/// of the shipping tax.
pub(crate) fn item_own_taxes(
    order: &EcwidOrder,
    item: &OrderItem,
    reading: Reading,
) -> Result<Vec<ItemTax>, String> {
    item.taxes
        .iter()
        .map(|t| {
            let own = match (t.tax_on_discounted_subtotal, t.tax_on_shipping) {
                (Some(own), _) => own,
                (None, Some(share)) => t.total - share,
                (None, None) if reading.legacy_items_include_shipping => {
                    t.total - legacy_shipping_share(order, t)?
                }
                (None, None) => t.total,
            };
            Ok(ItemTax {
                total: own,
                ..t.clone()
            })
        })
        .collect()
}

/// On an old order without per-item breakdown, an item's share of a shipping tax is known
/// only when that item is the one item carrying the tax: then it is the whole of it.
fn legacy_shipping_share(order: &EcwidOrder, tax: &ItemTax) -> Result<Decimal, String> {
    let Some(shipping) = shipping_tax_source(order)
        .into_iter()
        .find(|s| same_tax(s, tax) && !s.total.is_zero())
    else {
        return Ok(Decimal::ZERO);
    };
    let carriers = order
        .items
        .iter()
        .filter(|i| {
            i.taxes
                .iter()
                .any(|t| same_tax(t, tax) && !t.total.is_zero())
        })
        .count();
    if carriers == 1 {
        Ok(shipping.total)
    } else {
        Err(format!(
            "the shipping tax {} of {} may be inside the item taxes, and the order does not say each item's share (no taxOnShipping)",
            label(&shipping),
            shipping.total
        ))
    }
}

/// The taxes on the shipping charge alone: the shipping taxes Ecwid lists, less the
/// handling fee's tax when the reading puts it inside them. Entries that held only the
/// fee's tax are dropped, so the shipping line is not given a rate it was not taxed at.
///
/// Where a taxed handling fee makes the two readings possible, the shipping's own tax must
/// be the tax on the shipping charge at its rate, within what Ecwid's rounding explains
/// (`unit` is one minor unit): inside `taxesOnShipping` the fee's tax comes out of one
/// rounded sum, so one unit; alone, the shipping's tax is rounded once, so half a unit.
/// Otherwise the reading is refused: a total that reconciles only by giving the fee's tax
/// to the shipping, or the shipping's to the fee, is a coincidence of the figures, not a
/// reading of them (with the other reading refused too, the order parks).
pub(crate) fn shipping_taxes(
    order: &EcwidOrder,
    reading: Reading,
    unit: Decimal,
) -> Result<Vec<ItemTax>, String> {
    let mut taxes = shipping_tax_source(order);
    // `taxesOnShipping` entries may not say whether they were included in the price; the
    // same tax on an item does.
    for t in &mut taxes {
        if t.include_in_price.is_none() {
            t.include_in_price = order
                .items
                .iter()
                .flat_map(|i| i.taxes.iter())
                .find(|i| same_tax(i, t))
                .and_then(|i| i.include_in_price);
        }
    }
    let fee_taxes: Vec<&ItemTax> = order
        .handling_fee
        .iter()
        .flat_map(|f| f.taxes.iter())
        .filter(|t| !t.total.is_zero())
        .collect();
    if fee_taxes.is_empty() {
        return Ok(taxes);
    }
    if !reading.fee_tax_in_shipping {
        // Rounded once only when Ecwid lists it once (the items' shares are each rounded).
        if !order.taxes_on_shipping.is_empty() {
            for t in &taxes {
                shipping_own_tax(order, reading, t, unit / Decimal::TWO)?;
            }
        }
        return Ok(taxes);
    }
    let mut emptied = Vec::new();
    let mut reduced = Vec::new();
    for fee_tax in fee_taxes {
        let Some((i, t)) = taxes
            .iter_mut()
            .enumerate()
            .find(|(_, t)| same_tax(t, fee_tax))
        else {
            return Err(format!(
                "the handling fee's tax {} is not among the shipping taxes",
                label(fee_tax)
            ));
        };
        t.total -= fee_tax.total;
        if t.total < Decimal::ZERO {
            return Err(format!(
                "the handling fee's tax {} exceeds the shipping tax",
                label(fee_tax)
            ));
        }
        if t.total.is_zero() {
            emptied.push(i);
        }
        reduced.push(i);
    }
    for &i in &reduced {
        shipping_own_tax(order, reading, &taxes[i], unit)?;
    }
    Ok(taxes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !emptied.contains(i))
        .map(|(_, t)| t)
        .collect())
}

/// Checks that `t` is the tax on the shipping charge at `t`'s rate, within `tolerance`.
fn shipping_own_tax(
    order: &EcwidOrder,
    reading: Reading,
    t: &ItemTax,
    tolerance: Decimal,
) -> Result<(), String> {
    let shipping = order
        .shipping_option
        .as_ref()
        .map_or(Decimal::ZERO, |s| s.shipping_rate);
    let included = match t.include_in_price {
        Some(own) if reading.honour_include_in_price => own,
        _ => order.prices_include_tax.unwrap_or(false),
    };
    let rate = t.value / Decimal::ONE_HUNDRED;
    let own = if included {
        shipping - shipping / (Decimal::ONE + rate)
    } else {
        shipping * rate
    };
    if (t.total - own).abs() > tolerance {
        let what = if reading.fee_tax_in_shipping {
            "with the handling fee's tax taken out, the shipping tax"
        } else {
            "the shipping tax, the handling fee's tax apart,"
        };
        return Err(format!(
            "{what} {} is {} for a shipping charge of {shipping}, whose tax at that rate is {}",
            label(t),
            t.total,
            own.round_dp(tolerance.scale().max(2))
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn order(json: serde_json::Value) -> EcwidOrder {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_documented_breakdown_splits_item_and_shipping_tax() {
        // Ecwid's worked case: item 10.00 + 10%, shipping 5.00 taxed 10%.
        let o = order(serde_json::json!({
            "id": "W", "total": 16.5, "tax": 1.5,
            "items": [{"sku": "A", "quantity": 1, "price": 10, "taxes": [
                {"name": "Tax", "value": 10, "total": 1.5, "taxOnDiscountedSubtotal": 1, "taxOnShipping": 0.5}]}],
            "shippingOption": {"shippingRate": 5},
            "taxesOnShipping": [{"name": "Tax", "value": 10, "total": 0.5}]
        }));
        let reading = Reading::candidates(&o);
        assert_eq!(reading.len(), 1);
        let own = item_own_taxes(&o, &o.items[0], reading[0]).unwrap();
        assert_eq!(own[0].total, dec!(1));
        let ship = shipping_taxes(&o, reading[0], dec!(0.01)).unwrap();
        assert_eq!(ship[0].total, dec!(0.5));
    }

    #[test]
    fn shipping_tax_is_taken_from_the_items_when_taxes_on_shipping_is_null() {
        let o = order(serde_json::json!({
            "id": "N", "taxesOnShipping": null,
            "items": [
                {"taxes": [{"name": "GST", "value": 5, "total": 1.25, "taxOnDiscountedSubtotal": 1, "taxOnShipping": 0.25}]},
                {"taxes": [{"name": "GST", "value": 5, "total": 0.75, "taxOnDiscountedSubtotal": 0.5, "taxOnShipping": 0.25}]}
            ]
        }));
        let ship = shipping_taxes(&o, Reading::candidates(&o)[0], dec!(0.01)).unwrap();
        assert_eq!(ship.len(), 1);
        assert_eq!(ship[0].total, dec!(0.5));
    }

    #[test]
    fn a_fee_tax_inside_taxes_on_shipping_is_taken_out_of_the_shipping_line() {
        let o = order(serde_json::json!({
            "id": "F",
            "items": [{"taxes": [{"name": "T", "value": 10, "total": 2.7, "taxOnDiscountedSubtotal": 2, "taxOnShipping": 0.7}]}],
            "shippingOption": {"shippingRate": 5},
            "handlingFee": {"name": "Wrap", "value": 2, "taxes": [{"name": "T", "value": 10, "total": 0.2}]},
            "taxesOnShipping": [{"name": "T", "value": 10, "total": 0.7}]
        }));
        let readings = Reading::candidates(&o);
        assert_eq!(readings.len(), 2);
        assert_eq!(
            shipping_taxes(&o, readings[0], dec!(0.01)).unwrap()[0].total,
            dec!(0.5)
        );
        // The other reading would tax the 5.00 shipping 0.70 at 10%: refused.
        let err = shipping_taxes(&o, readings[1], dec!(0.01)).unwrap_err();
        assert!(err.contains("is 0.7 for a shipping charge of 5"), "{err}");
    }

    #[test]
    fn with_the_fee_tax_apart_the_shipping_tax_stands_when_its_rate_explains_it() {
        // Shipping 5.00 and a 2.00 fee at 10%: 0.50 and 0.20, listed apart.
        let o = order(serde_json::json!({
            "id": "G",
            "items": [{"taxes": [{"name": "T", "value": 10, "total": 2.5, "taxOnDiscountedSubtotal": 2, "taxOnShipping": 0.5}]}],
            "shippingOption": {"shippingRate": 5},
            "handlingFee": {"name": "Wrap", "value": 2, "taxes": [{"name": "T", "value": 10, "total": 0.2}]},
            "taxesOnShipping": [{"name": "T", "value": 10, "total": 0.5}]
        }));
        let readings = Reading::candidates(&o);
        assert_eq!(
            shipping_taxes(&o, readings[1], dec!(0.01)).unwrap()[0].total,
            dec!(0.5)
        );
        // Taking the fee's 0.20 out of it instead would leave 0.30 on 5.00 at 10%: refused.
        assert!(shipping_taxes(&o, readings[0], dec!(0.01)).is_err());
    }

    #[test]
    fn old_orders_give_the_shipping_share_to_the_one_item_carrying_the_tax_or_say_why_not() {
        let one = order(serde_json::json!({
            "id": "L1", "shippingOption": {"shippingRate": 5},
            "items": [{"taxes": [{"name": "T", "value": 10, "total": 1.5}]}, {"taxes": []}],
            "taxesOnShipping": [{"name": "T", "value": 10, "total": 0.5}]
        }));
        let readings = Reading::candidates(&one);
        assert_eq!(readings.len(), 2);
        assert_eq!(
            item_own_taxes(&one, &one.items[0], readings[0]).unwrap()[0].total,
            dec!(1)
        );
        assert_eq!(
            item_own_taxes(&one, &one.items[0], readings[1]).unwrap()[0].total,
            dec!(1.5)
        );
        let two = order(serde_json::json!({
            "id": "L2", "shippingOption": {"shippingRate": 5},
            "items": [{"taxes": [{"name": "T", "value": 10, "total": 1.3}]},
                      {"taxes": [{"name": "T", "value": 10, "total": 1.2}]}],
            "taxesOnShipping": [{"name": "T", "value": 10, "total": 0.5}]
        }));
        let err = item_own_taxes(&two, &two.items[0], Reading::candidates(&two)[0]).unwrap_err();
        assert!(err.contains("does not say each item's share"), "{err}");
    }
}
