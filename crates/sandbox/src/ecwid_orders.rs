//! The Ecwid checkout simulation: builds full, internally consistent Ecwid orders and changes
//! their payment status, as the store would.

use anyhow::{anyhow, bail};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::ecwid::{gross, merge_order};
use crate::specs::{OrderSpec, TaxSpec};
use crate::state::{EcwidCombination, EcwidTax, State};
use crate::util::{dec_json, ecwid_date, json_dec, round2};

/// One Ecwid tax on one order line (`items[].taxes[]`).
struct LineTax {
    id: u64,
    name: String,
    /// Percent (10 = 10%).
    value: Decimal,
    /// `taxOnDiscountedSubtotal`.
    on_subtotal: Decimal,
    /// `taxOnShipping`: this line's share of the shipping (and handling-fee) tax.
    on_shipping: Decimal,
}

struct Line {
    product_id: u64,
    combination: Option<EcwidCombination>,
    name: String,
    sku: String,
    quantity: u32,
    price: Decimal,
    price_without_tax: Decimal,
    product_price: Decimal,
    /// `price x quantity`: gross with `pricesIncludeTax`, else net.
    amount: Decimal,
    /// `couponAmount`: this line's share of the coupon.
    coupon: Decimal,
    /// `shipping`: this line's share of the shipping rate.
    shipping: Decimal,
    taxes: Vec<LineTax>,
    tracked: bool,
}

impl Line {
    /// The line subtotal after discounts, the base of its taxes.
    fn discounted(&self) -> Decimal {
        self.amount - self.coupon
    }

    /// The sum of the line's tax rates, in percent.
    fn rates(&self) -> Decimal {
        self.taxes.iter().map(|t| t.value).sum()
    }

    /// Item `tax`: the sum of its taxes' totals (`taxOnDiscountedSubtotal + taxOnShipping`).
    fn tax(&self) -> Decimal {
        self.taxes
            .iter()
            .map(|t| t.on_subtotal + t.on_shipping)
            .sum()
    }
}

/// A resolved Ecwid tax: (`sourceTaxRateId`, name, percent).
type Tax = (u64, String, Decimal);

/// The store's tax for a spec: by name, or by percent when the name is empty. A tax the store
/// does not have yet is added to `pending` (stored with the order). A 0% tax is no tax.
fn resolve_tax(
    st: &State,
    pending: &mut Vec<EcwidTax>,
    t: &TaxSpec,
) -> anyhow::Result<Option<Tax>> {
    if t.percent < Decimal::ZERO {
        bail!("tax {:?}: the percent must not be negative", t.name);
    }
    if t.percent.is_zero() {
        return Ok(None);
    }
    let pct = t.percent.normalize();
    let name = t.name.trim();
    let mut known = st.ecwid_taxes.iter().chain(pending.iter());
    let found = if name.is_empty() {
        known.find(|x| x.value == pct)
    } else {
        known.find(|x| x.name == name)
    };
    if let Some(x) = found {
        // A named tax may have another rate here (Ecwid taxes have rates per zone).
        return Ok(Some((x.id, x.name.clone(), pct)));
    }
    let name = if name.is_empty() {
        format!("{pct}% Tax")
    } else {
        name.to_string()
    };
    let id = 947_976_181 + (st.ecwid_taxes.len() + pending.len()) as u64;
    pending.push(EcwidTax {
        id,
        name: name.clone(),
        value: pct,
    });
    Ok(Some((id, name, pct)))
}

/// Resolve a list of taxes; a name may appear once.
fn resolve_taxes(
    st: &State,
    pending: &mut Vec<EcwidTax>,
    specs: &[TaxSpec],
    what: &str,
) -> anyhow::Result<Vec<Tax>> {
    let mut out: Vec<Tax> = Vec::new();
    for t in specs {
        if let Some(x) = resolve_tax(st, pending, t)? {
            if out.iter().any(|y| y.1 == x.1) {
                bail!("{what}: tax {:?} is listed twice", x.1);
            }
            out.push(x);
        }
    }
    Ok(out)
}

/// `amount` split in proportion to `weights`: each share rounded to cents, the remainder cents
/// on the largest weight (the first of equals). All weights zero: everything on the first.
///
/// ASSUMPTION: Ecwid does not document how it splits an order amount (coupon, shipping,
/// shipping tax) over items; this is the sandbox's rule.
fn split(amount: Decimal, weights: &[Decimal]) -> Vec<Decimal> {
    let mut shares = vec![Decimal::ZERO; weights.len()];
    if weights.is_empty() {
        return shares;
    }
    let mut largest = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > weights[largest] {
            largest = i;
        }
    }
    let sum: Decimal = weights.iter().sum();
    if sum.is_zero() {
        shares[largest] = amount;
        return shares;
    }
    for (s, w) in shares.iter_mut().zip(weights) {
        *s = round2(amount * *w / sum);
    }
    let rest = amount - shares.iter().copied().sum::<Decimal>();
    shares[largest] += rest;
    shares
}

/// Build and store a full, internally consistent Ecwid order, lowering Ecwid stock like a real
/// checkout.
///
/// Money: every amount is a `Decimal` rounded to cents half-up. `R` is the sum of a line's tax
/// rates (one tax, or GST + PST...).
/// - Item `price` is the unit price (gross with `pricesIncludeTax`, else net; a gross price is
///   `round(excl x (1 + R/100))`, `priceWithoutTax = round(price x 100 / (100 + R))`).
/// - Coupon (`coupon_amount`): split onto the items' `couponAmount` in proportion to their
///   line amounts (`price x qty`), remainder cents on the largest line (ASSUMPTION, see
///   [`split`]). The discounted line subtotal `D = price x qty - couponAmount`.
/// - Per tax `r` on a line: `taxOnDiscountedSubtotal = round(D x r / 100)` (exclusive) or
///   `round(D x r / (100 + R))` (inclusive).
/// - Shipping and handling fee, per tax `r` on them (Ecwid: `taxesOnShipping` is
///   `(shippingRate + handlingFee) * value / 100`): exclusive `round((S + H) x r / 100)`,
///   where S counts when `r` taxes shipping and H when it taxes the fee and
///   `handling_fee_tax_in_items` is set. ASSUMPTION (tax-inclusive stores, not documented):
///   the shipping rate and the fee include their taxes, so their tax is
///   `round(S x r / (100 + R_S) + H x r / (100 + R_H))` and
///   `shippingRateWithoutTax = shippingRate - its tax`.
/// - That shipping tax is listed in `taxesOnShipping[]{name, value, total}` (`[]` when
///   shipping and fee are free or untaxed) and split over the items carrying that tax in
///   proportion to their `D` (ASSUMPTION: Ecwid does not document the split), as their
///   `taxes[].taxOnShipping`. The items' `shipping` is the shipping rate split the same way
///   over all items.
/// - Item `taxes[].total = taxOnDiscountedSubtotal + taxOnShipping`; item `tax` = the sum of
///   its taxes' totals; order `tax` = the sum of item taxes (so it contains the shipping tax,
///   counted once in `total`).
/// - `subtotal` = sum of `price x qty` (before the coupon). `total = subtotal - coupon + S + H`
///   (inclusive) or `+ tax` too (exclusive). With `handling_fee_tax_in_items = false` the fee's
///   tax is only in `handlingFee.taxes`: not in the items, not in `taxesOnShipping`, not in
///   `tax`, and an exclusive `total` adds it separately.
/// - `totalWithoutTax = total - every tax` (= `total - tax` unless the fee's tax is outside
///   the items).
///
/// Choice (Ecwid's docs leave it open): item `tax` and `taxes[].total` are LINE totals (all
/// units), not per-unit taxes.
pub(crate) fn place_order(st: &mut State, spec: &OrderSpec) -> anyhow::Result<String> {
    if spec.items.is_empty() {
        bail!("an order needs at least one item");
    }
    let include = spec.prices_include_tax;
    let hundred = Decimal::ONE_HUNDRED;
    let mut pending_taxes = Vec::new();
    let mut lines = Vec::new();
    for item in &spec.items {
        if item.quantity == 0 {
            bail!("item {}: quantity must be positive", item.sku);
        }
        let found = st.ecwid_products.values().find_map(|p| {
            if let Some(c) = p.combinations.iter().find(|c| c.sku == item.sku) {
                return Some((p.clone(), Some(c.clone())));
            }
            (p.sku == item.sku).then(|| (p.clone(), None))
        });
        let Some((p, combination)) = found else {
            bail!("no Ecwid product or variation has SKU {:?}", item.sku);
        };
        if !p.enabled {
            bail!("product {} is disabled", p.sku);
        }
        if combination.is_none() && !p.combinations.is_empty() {
            bail!("product {} has variations: order one of their SKUs", p.sku);
        }
        let available = match &combination {
            Some(c) => c.quantity,
            None => p.quantity,
        };
        if let Some(avail) = available {
            let already: u32 = lines
                .iter()
                .filter(|l: &&Line| {
                    l.product_id == p.id
                        && l.combination.as_ref().map(|c| c.id)
                            == combination.as_ref().map(|c| c.id)
                })
                .map(|l| l.quantity)
                .sum();
            if i64::from(already + item.quantity) > avail {
                bail!("SKU {} is out of stock ({avail} left)", item.sku);
            }
        }
        let excl = combination
            .as_ref()
            .and_then(|c| c.price_excl)
            .unwrap_or(p.price_excl);
        let taxes: Vec<Tax> = match &item.taxes {
            Some(list) => resolve_taxes(st, &mut pending_taxes, list, &item.sku)?,
            None => match (p.tax_percent, p.tax_id) {
                (Some(r), Some(id)) => {
                    let name = st
                        .ecwid_taxes
                        .iter()
                        .find(|t| t.id == id)
                        .map(|t| t.name.clone())
                        .unwrap_or_else(|| format!("{r}% Tax"));
                    vec![(id, name, r)]
                }
                _ => Vec::new(),
            },
        };
        let rates: Decimal = taxes.iter().map(|t| t.2).sum();
        let (price, price_without_tax) = if include && !rates.is_zero() {
            let price = gross(excl, Some(rates));
            (price, round2(price * hundred / (hundred + rates)))
        } else {
            (round2(excl), round2(excl))
        };
        lines.push(Line {
            product_id: p.id,
            name: p.name.clone(),
            sku: combination
                .as_ref()
                .map(|c| c.sku.clone())
                .unwrap_or_else(|| p.sku.clone()),
            tracked: available.is_some(),
            combination,
            quantity: item.quantity,
            price,
            price_without_tax,
            product_price: price,
            amount: price * Decimal::from(item.quantity),
            coupon: Decimal::ZERO,
            shipping: Decimal::ZERO,
            taxes: taxes
                .into_iter()
                .map(|(id, name, value)| LineTax {
                    id,
                    name,
                    value,
                    on_subtotal: Decimal::ZERO,
                    on_shipping: Decimal::ZERO,
                })
                .collect(),
        });
    }

    // Coupon, then the taxes on the discounted line subtotals.
    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    let coupon = round2(spec.coupon_amount);
    if coupon < Decimal::ZERO || coupon > subtotal {
        bail!("coupon_amount {coupon} must be between 0 and the subtotal {subtotal}");
    }
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    for (l, c) in lines.iter_mut().zip(split(coupon, &amounts)) {
        l.coupon = c;
    }
    // Tax-inclusive: the tax the undiscounted lines contain (for `subtotalWithoutTax`).
    let mut undiscounted_tax = Decimal::ZERO;
    for l in &mut lines {
        let (d, amount, rates) = (l.discounted(), l.amount, l.rates());
        for t in &mut l.taxes {
            if include {
                t.on_subtotal = round2(d * t.value / (hundred + rates));
                undiscounted_tax += round2(amount * t.value / (hundred + rates));
            } else {
                t.on_subtotal = round2(d * t.value / hundred);
            }
        }
    }
    let discounted: Vec<Decimal> = lines.iter().map(Line::discounted).collect();

    // Shipping, the handling fee and their taxes.
    let ship_rate = spec
        .shipping
        .as_ref()
        .map(|s| round2(s.rate))
        .unwrap_or_default();
    let fee_value = spec
        .handling_fee
        .as_ref()
        .map(|f| round2(f.value))
        .unwrap_or_default();
    if ship_rate < Decimal::ZERO || fee_value < Decimal::ZERO {
        bail!("the shipping rate and the handling fee must not be negative");
    }
    for (l, s) in lines.iter_mut().zip(split(ship_rate, &discounted)) {
        l.shipping = s;
    }
    let fee_in_items = st.cfg.handling_fee_tax_in_items;
    let ship_taxes = resolve_taxes(st, &mut pending_taxes, &spec.shipping_taxes, "shipping")?;
    let fee_taxes = match &spec.handling_fee {
        Some(f) => resolve_taxes(st, &mut pending_taxes, &f.taxes, "handling fee")?,
        None => Vec::new(),
    };
    let ship_rates: Decimal = ship_taxes.iter().map(|t| t.2).sum();
    let fee_rates: Decimal = fee_taxes.iter().map(|t| t.2).sum();
    // The (unrounded) tax at rate `r` of an amount taxed at `all` percent in total.
    let tax_of = |amount: Decimal, r: Decimal, all: Decimal| {
        if include {
            amount * r / (hundred + all)
        } else {
            amount * r / hundred
        }
    };
    let mut charge_taxes: Vec<&Tax> = ship_taxes.iter().collect();
    for t in &fee_taxes {
        match ship_taxes.iter().find(|s| s.1 == t.1) {
            Some(s) if s.2 != t.2 => bail!(
                "tax {:?} is {}% on shipping but {}% on the handling fee",
                t.1,
                s.2,
                t.2
            ),
            Some(_) => {}
            None => charge_taxes.push(t),
        }
    }
    let mut taxes_on_shipping = Vec::new();
    let mut fee_tax_json = Vec::new();
    // The tax inside the shipping rate and the fee's taxes.
    let mut shipping_tax = Decimal::ZERO;
    let mut fee_tax_total = Decimal::ZERO;
    for (_, name, r) in charge_taxes {
        let (r, name) = (*r, name.as_str());
        let on_ship = ship_taxes.iter().any(|t| t.1 == name);
        let on_fee = fee_taxes.iter().any(|t| t.1 == name);
        let ship_part = if on_ship {
            tax_of(ship_rate, r, ship_rates)
        } else {
            Decimal::ZERO
        };
        let fee_part = if on_fee {
            tax_of(fee_value, r, fee_rates)
        } else {
            Decimal::ZERO
        };
        let fee_tax = round2(fee_part);
        if on_fee {
            fee_tax_json
                .push(json!({"name": name, "value": dec_json(r), "total": dec_json(fee_tax)}));
            fee_tax_total += fee_tax;
        }
        let ship_base = if on_ship { ship_rate } else { Decimal::ZERO };
        let fee_base = if on_fee { fee_value } else { Decimal::ZERO };
        let (pool, base, fee_share) = if fee_in_items {
            (round2(ship_part + fee_part), ship_base + fee_base, fee_tax)
        } else {
            (round2(ship_part), ship_base, Decimal::ZERO)
        };
        shipping_tax += pool - fee_share;
        if base.is_zero() {
            continue;
        }
        let carriers: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].taxes.iter().any(|t| t.name == name))
            .collect();
        if carriers.is_empty() {
            bail!(
                "tax {name:?} on shipping or handling: no item carries it (Ecwid reports the \
                 shipping tax inside the items' taxes)"
            );
        }
        if let Some(i) = carriers.iter().find(|&&i| {
            lines[i]
                .taxes
                .iter()
                .any(|t| t.name == name && t.value != r)
        }) {
            bail!(
                "tax {name:?} is {r}% on shipping or handling but not on item {}",
                lines[*i].sku
            );
        }
        let weights: Vec<Decimal> = carriers.iter().map(|&i| discounted[i]).collect();
        for (&i, share) in carriers.iter().zip(split(pool, &weights)) {
            if let Some(t) = lines[i].taxes.iter_mut().find(|t| t.name == name) {
                t.on_shipping = share;
            }
        }
        taxes_on_shipping
            .push(json!({"name": name, "value": dec_json(r), "total": dec_json(pool)}));
    }

    // Totals.
    let tax: Decimal = lines.iter().map(Line::tax).sum();
    // The fee's tax when it is not inside the items' taxes.
    let fee_tax_outside = if fee_in_items {
        Decimal::ZERO
    } else {
        fee_tax_total
    };
    let (subtotal_without_tax, total) = if include {
        (
            subtotal - undiscounted_tax,
            subtotal - coupon + ship_rate + fee_value,
        )
    } else {
        (
            subtotal,
            subtotal - coupon + ship_rate + fee_value + tax + fee_tax_outside,
        )
    };
    let total_without_tax = total - tax - fee_tax_outside;
    let (ship_without_tax, fee_without_tax) = if include {
        (ship_rate - shipping_tax, fee_value - fee_tax_total)
    } else {
        (ship_rate, fee_value)
    };

    let id = match &spec.order_id {
        Some(id) if !id.is_empty() => {
            if st.ecwid_order_by_id(id).is_some() {
                bail!("order {id} already exists");
            }
            id.clone()
        }
        _ => st.new_order_id(),
    };
    st.ecwid_taxes.append(&mut pending_taxes);

    // Lower stock.
    let mut remaining = Vec::new();
    for l in &lines {
        let p = st
            .ecwid_products
            .get_mut(&l.product_id)
            .ok_or_else(|| anyhow!("product vanished"))?;
        let slot = match &l.combination {
            Some(c) => {
                &mut p
                    .combinations
                    .iter_mut()
                    .find(|x| x.id == c.id)
                    .ok_or_else(|| anyhow!("combination vanished"))?
                    .quantity
            }
            None => &mut p.quantity,
        };
        if let Some(q) = slot {
            *q -= i64::from(l.quantity);
        }
        remaining.push(slot.unwrap_or(0));
        p.updated = Utc::now();
    }

    let now = Utc::now();
    let internal = st.next_order_internal_id;
    st.next_order_internal_id += 1;

    let mut items = Vec::new();
    for (l, left) in lines.iter().zip(remaining) {
        let item_id = st.next_order_item_id;
        st.next_order_item_id += 1;
        let mut m = Map::new();
        m.insert("id".into(), item_id.into());
        m.insert("productId".into(), l.product_id.into());
        m.insert("categoryId".into(), 0.into());
        m.insert("price".into(), dec_json(l.price));
        m.insert("priceWithoutTax".into(), dec_json(l.price_without_tax));
        m.insert("productPrice".into(), dec_json(l.product_price));
        m.insert("sku".into(), l.sku.clone().into());
        m.insert("quantity".into(), l.quantity.into());
        m.insert("shortDescription".into(), "".into());
        m.insert("tax".into(), dec_json(l.tax()));
        m.insert("shipping".into(), dec_json(l.shipping));
        m.insert("quantityInStock".into(), left.into());
        m.insert("name".into(), l.name.clone().into());
        m.insert("nameTranslated".into(), json!({"en": l.name}));
        m.insert("isShippingRequired".into(), true.into());
        m.insert("trackQuantity".into(), l.tracked.into());
        m.insert("fixedShippingRateOnly".into(), false.into());
        m.insert("fixedShippingRate".into(), 0.into());
        m.insert("digital".into(), false.into());
        m.insert("productAvailable".into(), true.into());
        m.insert("couponApplied".into(), (!l.coupon.is_zero()).into());
        m.insert("couponAmount".into(), dec_json(l.coupon));
        m.insert(
            "taxes".into(),
            l.taxes
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "value": dec_json(t.value),
                        "total": dec_json(t.on_subtotal + t.on_shipping),
                        "taxOnDiscountedSubtotal": dec_json(t.on_subtotal),
                        "taxOnShipping": dec_json(t.on_shipping),
                        "includeInPrice": include,
                        "sourceTaxRateId": t.id,
                        "sourceTaxRateType": "MANUAL",
                        "taxClassName": "Standard rate",
                        "taxClassCode": "default",
                    })
                })
                .collect(),
        );
        m.insert(
            "dimensions".into(),
            json!({"length": 0, "width": 0, "height": 0}),
        );
        m.insert("discounts".into(), json!([]));
        m.insert("discountsAllowed".into(), true.into());
        m.insert("taxable".into(), (!l.taxes.is_empty()).into());
        m.insert("giftCard".into(), false.into());
        m.insert("recurringTaxIds".into(), json!([]));
        m.insert("isCustomerSetPrice".into(), false.into());
        m.insert("attributes".into(), json!([]));
        m.insert("files".into(), json!([]));
        if let Some(c) = &l.combination {
            m.insert("combinationId".into(), c.id.into());
            m.insert(
                "selectedOptions".into(),
                json!([{
                    "name": c.option_name,
                    "nameTranslated": {"en": c.option_name},
                    "value": c.option_value,
                    "valueTranslated": {"en": c.option_value},
                    "valuesArray": [c.option_value],
                    "selections": [{"selectionTitle": c.option_value, "selectionModifier": 0, "selectionModifierType": "ABSOLUTE"}],
                    "type": "CHOICE",
                }]),
            );
        }
        items.push(Value::Object(m));
    }

    let name = format!("{} {}", spec.first_name.trim(), spec.last_name.trim())
        .trim()
        .to_string();
    let person = json!({
        "name": name,
        "firstName": spec.first_name,
        "lastName": spec.last_name,
        "companyName": "",
        "street": "1 Sandbox Street",
        "city": "Springfield",
        "countryCode": "US",
        "countryName": "United States",
        "postalCode": "12345",
        "stateOrProvinceCode": "IL",
        "stateOrProvinceName": "Illinois",
        "phone": "",
    });
    let mut o = Map::new();
    o.insert("id".into(), id.clone().into());
    o.insert("internalId".into(), internal.into());
    o.insert("refundedAmount".into(), 0.into());
    o.insert("subtotal".into(), dec_json(subtotal));
    o.insert("subtotalWithoutTax".into(), dec_json(subtotal_without_tax));
    o.insert("total".into(), dec_json(total));
    o.insert("totalWithoutTax".into(), dec_json(total_without_tax));
    o.insert("giftCardRedemption".into(), 0.into());
    o.insert("totalBeforeGiftCardRedemption".into(), dec_json(total));
    o.insert("giftCardDoubleSpending".into(), false.into());
    o.insert("email".into(), spec.email.clone().into());
    o.insert(
        "paymentMethod".into(),
        if spec.payment_status == "PAID" {
            "Credit or debit card"
        } else {
            "Offline"
        }
        .into(),
    );
    o.insert("tax".into(), dec_json(tax));
    o.insert("customerTaxExempt".into(), false.into());
    o.insert("customerTaxId".into(), "".into());
    o.insert("customerTaxIdValid".into(), false.into());
    o.insert("b2b_b2c".into(), "b2c".into());
    o.insert("reversedTaxApplied".into(), false.into());
    o.insert("couponDiscount".into(), dec_json(coupon));
    if !coupon.is_zero() {
        o.insert(
            "discountCoupon".into(),
            json!({
                "name": "Sandbox coupon",
                "code": "SANDBOX",
                "discountType": "ABS",
                "status": "ACTIVE",
                "discount": dec_json(coupon),
            }),
        );
    }
    o.insert("paymentStatus".into(), spec.payment_status.clone().into());
    o.insert(
        "fulfillmentStatus".into(),
        spec.fulfillment_status.clone().into(),
    );
    o.insert("orderNumber".into(), internal.into());
    o.insert("vendorOrderNumber".into(), id.clone().into());
    o.insert("publicUid".into(), id.clone().into());
    o.insert("orderComments".into(), "".into());
    o.insert("volumeDiscount".into(), 0.into());
    if let Some(c) = spec.customer_id {
        o.insert("customerId".into(), c.into());
    }
    o.insert("membershipBasedDiscount".into(), 0.into());
    o.insert("totalAndMembershipBasedDiscount".into(), 0.into());
    o.insert("customDiscount".into(), json!([]));
    o.insert("customSurcharges".into(), json!([]));
    o.insert("discount".into(), 0.into());
    o.insert("discountInfo".into(), json!([]));
    o.insert("usdTotal".into(), dec_json(total));
    o.insert("createDate".into(), ecwid_date(now).into());
    o.insert("updateDate".into(), ecwid_date(now).into());
    o.insert("createTimestamp".into(), now.timestamp().into());
    o.insert("updateTimestamp".into(), now.timestamp().into());
    o.insert("items".into(), Value::Array(items));
    o.insert("refunds".into(), json!([]));
    o.insert("billingPerson".into(), person.clone());
    o.insert("shippingPerson".into(), person);
    if spec.shipping.is_some() || spec.pickup {
        let method = match &spec.shipping {
            Some(s) => s.method_name.clone(),
            None => "In-store pickup".into(),
        };
        o.insert(
            "shippingOption".into(),
            json!({
                "shippingMethodName": method,
                "shippingRate": dec_json(ship_rate),
                "shippingRateWithoutTax": dec_json(ship_without_tax),
                "isPickup": spec.pickup,
                "fulfillmentType": if spec.pickup { "PICKUP" } else { "SHIPPING" },
            }),
        );
    }
    if let Some(f) = &spec.handling_fee {
        o.insert(
            "handlingFee".into(),
            json!({
                "name": f.name,
                "value": dec_json(fee_value),
                "valueWithoutTax": dec_json(fee_without_tax),
                "description": "",
                "taxes": fee_tax_json,
            }),
        );
    }
    o.insert("predictedPackage".into(), json!([]));
    o.insert("shipments".into(), json!([]));
    o.insert("additionalInfo".into(), json!({}));
    o.insert("paymentParams".into(), json!({}));
    o.insert("extraFields".into(), json!({}));
    o.insert("hidden".into(), false.into());
    o.insert("taxesOnShipping".into(), Value::Array(taxes_on_shipping));
    o.insert("disableAllCustomerNotifications".into(), false.into());
    o.insert("externalFulfillment".into(), false.into());
    o.insert("utmDataSets".into(), json!([]));
    o.insert("invoices".into(), json!([]));
    o.insert("pricesIncludeTax".into(), include.into());
    st.ecwid_orders.insert(internal, Value::Object(o));
    Ok(id)
}

/// Change an order's payment status; cancelling restocks its items like Ecwid does.
pub(crate) fn set_payment_status(
    st: &mut State,
    order_id: &str,
    status: &str,
) -> anyhow::Result<()> {
    let order = st
        .ecwid_order_mut(order_id)
        .ok_or_else(|| anyhow!("no Ecwid order {order_id}"))?;
    let old = order
        .get("paymentStatus")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut patch = Map::new();
    patch.insert("paymentStatus".into(), status.into());
    merge_order(order, &patch);
    if status == "CANCELLED" && old != "CANCELLED" {
        let items: Vec<(u64, Option<u64>, i64)> = order
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        Some((
                            i.get("productId")?.as_u64()?,
                            i.get("combinationId").and_then(Value::as_u64),
                            i.get("quantity")?.as_i64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (pid, cid, qty) in items {
            if let Some(p) = st.ecwid_products.get_mut(&pid) {
                let slot = match cid {
                    Some(cid) => p
                        .combinations
                        .iter_mut()
                        .find(|c| c.id == cid)
                        .map(|c| &mut c.quantity),
                    None => Some(&mut p.quantity),
                };
                if let Some(Some(q)) = slot {
                    *q += qty;
                }
            }
        }
    }
    Ok(())
}

/// A refund of `amount` as Ecwid records one (ecwid.md, "Refunds and cancellations"):
/// `refunds[]` gains `{date, source, reason, amount}`, `refundedAmount` is their sum, and
/// `paymentStatus` becomes `REFUNDED` once the whole `total` is refunded, else
/// `PARTIALLY_REFUNDED`. Stock is not touched: Ecwid restocks a refund only for some payment
/// processors (the help center: a full refund through Lightspeed Payments restocks, a partial
/// one needs a manual restock); the sandbox models the manual case (ASSUMPTION, the stricter
/// reading for the connector, which restocks in Lightspeed on its own). With
/// `with_amount: false` the refund is recorded without `refunds[]`/`refundedAmount`, as the
/// docs allow for other processors.
pub(crate) fn refund_order(
    st: &mut State,
    order_id: &str,
    amount: Decimal,
    with_amount: bool,
) -> anyhow::Result<()> {
    let order = st
        .ecwid_order_mut(order_id)
        .ok_or_else(|| anyhow!("no Ecwid order {order_id}"))?;
    let total = order.get("total").and_then(json_dec).unwrap_or_default();
    let before = order
        .get("refundedAmount")
        .and_then(json_dec)
        .unwrap_or_default();
    if amount <= Decimal::ZERO || before + amount > total {
        bail!(
            "order {order_id}: a refund of {amount} does not fit (total {total}, refunded {before})"
        );
    }
    let refunded = before + amount;
    let mut patch = Map::new();
    let status = if refunded == total {
        "REFUNDED"
    } else {
        "PARTIALLY_REFUNDED"
    };
    patch.insert("paymentStatus".into(), status.into());
    if with_amount {
        let mut refunds = order
            .get("refunds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        refunds.push(serde_json::json!({
            "date": ecwid_date(Utc::now()),
            "source": "API",
            "reason": "Refund",
            "amount": dec_json(amount),
        }));
        patch.insert("refunds".into(), Value::Array(refunds));
        patch.insert("refundedAmount".into(), dec_json(refunded));
    }
    merge_order(order, &patch);
    Ok(())
}
