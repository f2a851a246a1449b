//! The Ecwid checkout simulation: builds full, internally consistent Ecwid orders and changes
//! their payment status, as the store would.

use anyhow::{anyhow, bail};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::ecwid::{gross, merge_order};
use crate::specs::OrderSpec;
use crate::state::{EcwidCombination, State};
use crate::util::{dec_json, ecwid_date, round2};

struct Line {
    product_id: u64,
    combination: Option<EcwidCombination>,
    name: String,
    sku: String,
    quantity: u32,
    price: Decimal,
    price_without_tax: Decimal,
    product_price: Decimal,
    line_tax: Decimal,
    tax: Option<(u64, String, Decimal)>,
    tracked: bool,
}

/// Build and store a full, internally consistent Ecwid order, lowering Ecwid stock like a real
/// checkout.
///
/// Money: every amount is a `Decimal` rounded to cents half-up.
/// - `pricesIncludeTax = true`: item `price` is the gross unit price; the LINE tax is
///   `round(price x qty x r / (100 + r))`; `priceWithoutTax = round(price x 100 / (100 + r))`;
///   `subtotal` = sum of gross lines; `total = subtotal + shipping`.
/// - `pricesIncludeTax = false`: item `price` is the net unit price; the LINE tax is
///   `round(price x qty x r / 100)`; `subtotal` = sum of net lines;
///   `total = subtotal + tax + shipping`.
///
/// Choice (Ecwid's docs leave it open): item `tax` and `taxes[].total` are both the LINE total
/// (all units), not the per-unit tax. `tax` (order) = sum of line taxes;
/// `totalWithoutTax = total - tax`.
pub(crate) fn place_order(st: &mut State, spec: &OrderSpec) -> anyhow::Result<String> {
    if spec.items.is_empty() {
        bail!("an order needs at least one item");
    }
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
        let q = Decimal::from(item.quantity);
        let hundred = Decimal::from(100);
        let rate = p.tax_percent;
        let (price, price_without_tax, line_tax) = if spec.prices_include_tax {
            let price = gross(excl, rate);
            match rate {
                Some(r) => (
                    price,
                    round2(price * hundred / (hundred + r)),
                    round2(price * q * r / (hundred + r)),
                ),
                None => (price, price, Decimal::ZERO),
            }
        } else {
            let price = round2(excl);
            let tax = rate
                .map(|r| round2(price * q * r / hundred))
                .unwrap_or_default();
            (price, price, tax)
        };
        let tax = match (rate, p.tax_id) {
            (Some(r), Some(id)) => {
                let name = st
                    .ecwid_taxes
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| format!("{r}% Tax"));
                Some((id, name, r))
            }
            _ => None,
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
            line_tax,
            tax,
        });
    }

    // Totals.
    let gross_or_net: Decimal = lines
        .iter()
        .map(|l| l.price * Decimal::from(l.quantity))
        .sum();
    let tax: Decimal = lines.iter().map(|l| l.line_tax).sum();
    let shipping = spec.shipping.as_ref().map(|s| round2(s.rate));
    let ship = shipping.unwrap_or_default();
    let (subtotal, subtotal_without_tax, total) = if spec.prices_include_tax {
        (gross_or_net, gross_or_net - tax, gross_or_net + ship)
    } else {
        (gross_or_net, gross_or_net, gross_or_net + tax + ship)
    };
    let total_without_tax = total - tax;

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
    let id = match &spec.order_id {
        Some(id) if !id.is_empty() => {
            if st.ecwid_order_by_id(id).is_some() {
                bail!("order {id} already exists");
            }
            id.clone()
        }
        _ => st.new_order_id(),
    };
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
        m.insert("tax".into(), dec_json(l.line_tax));
        m.insert("shipping".into(), 0.into());
        m.insert("quantityInStock".into(), left.into());
        m.insert("name".into(), l.name.clone().into());
        m.insert("nameTranslated".into(), json!({"en": l.name}));
        m.insert("isShippingRequired".into(), true.into());
        m.insert("trackQuantity".into(), l.tracked.into());
        m.insert("fixedShippingRateOnly".into(), false.into());
        m.insert("fixedShippingRate".into(), 0.into());
        m.insert("digital".into(), false.into());
        m.insert("productAvailable".into(), true.into());
        m.insert("couponApplied".into(), false.into());
        m.insert("couponAmount".into(), 0.into());
        m.insert(
            "taxes".into(),
            match &l.tax {
                Some((tid, name, r)) => json!([{
                    "name": name,
                    "value": dec_json(*r),
                    "total": dec_json(l.line_tax),
                    "taxOnDiscountedSubtotal": dec_json(l.line_tax),
                    "taxOnShipping": 0,
                    "includeInPrice": spec.prices_include_tax,
                    "sourceTaxRateId": tid,
                    "sourceTaxRateType": "MANUAL",
                    "taxClassName": "Standard rate",
                    "taxClassCode": "default",
                }]),
                None => json!([]),
            },
        );
        m.insert(
            "dimensions".into(),
            json!({"length": 0, "width": 0, "height": 0}),
        );
        m.insert("discounts".into(), json!([]));
        m.insert("discountsAllowed".into(), true.into());
        m.insert("taxable".into(), l.tax.is_some().into());
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
    o.insert("couponDiscount".into(), 0.into());
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
    if let (Some(s), Some(rate)) = (&spec.shipping, shipping) {
        o.insert(
            "shippingOption".into(),
            json!({
                "shippingMethodName": s.method_name,
                "shippingRate": dec_json(rate),
                "shippingRateWithoutTax": dec_json(rate),
                "isPickup": false,
                "fulfillmentType": "SHIPPING",
            }),
        );
    }
    o.insert("predictedPackage".into(), json!([]));
    o.insert("shipments".into(), json!([]));
    o.insert("additionalInfo".into(), json!({}));
    o.insert("paymentParams".into(), json!({}));
    o.insert("extraFields".into(), json!({}));
    o.insert("hidden".into(), false.into());
    o.insert("taxesOnShipping".into(), json!([]));
    o.insert("disableAllCustomerNotifications".into(), false.into());
    o.insert("externalFulfillment".into(), false.into());
    o.insert("utmDataSets".into(), json!([]));
    o.insert("invoices".into(), json!([]));
    o.insert("pricesIncludeTax".into(), spec.prices_include_tax.into());
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
