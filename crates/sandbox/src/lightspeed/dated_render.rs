//! The 2026-07 shapes of the retailer's objects: what `/api/2026-07/*` answers, built from the
//! same state as the legacy answers. Each renderer names the component of
//! `tests/fixtures/lightspeed/2026-07/` it follows and the section of that folder's
//! `MAPPING.md` that says what changed; `tests/openapi_2026_07.rs` validates every one against
//! its component with formats on. Where the legacy object already has the 2026-07 fields and
//! types, the legacy renderer is reused and only the new fields are added.

use serde_json::{Map, Value, json};

use super::{
    Generation, render_customer, render_outlet, render_product, retailer, sale_state,
    sale_tax_parts, tax_parts,
};
use crate::state::{LsCustomer, LsInventory, LsProduct, LsSale, State};
use crate::util::{dec_json, ls_date};

/// The 2026-07 generation: its shapes of a product, a sale and a customer; its version
/// envelope (an empty page has `"version": {"min": null, "max": null}`) and its search's
/// `state` parameter (search.json, MAPPING.md §6).
pub(crate) const API_2026_07: Generation = Generation {
    product,
    sale,
    customer,
    dated: true,
};

/// `Sale` (sales.json; MAPPING.md §2, "The answer to a sale create or update"): `state` and
/// `attributes` from the legacy status (§4), `source {id, type, register_id, outlet_id,
/// author {id}}`, `totals {price, tax, price_incl_tax}` ("tax exclusive" / "tax inclusive"),
/// lines with `product {id}`, `pricing {price, total, discount...}` and `tax {id, amount,
/// total}`, payments with `type {config_id, id, name}`, `_metadata {version}`. No field of
/// `Sale` is required; every one the state can fill is given. `customer_id` (a uuid, not
/// nullable) is left out when the sale has no customer. ASSUMPTION: `taxes[]`
/// (`SaleResponseTax {id, tax}`) lists the tax by rate, as API 2.0's `taxes` does (the rate ids
/// are uuids).
pub(crate) fn sale(st: &State, s: &LsSale) -> Value {
    let (state, attributes) = sale_state(s);
    let lines: Vec<Value> = s
        .lines
        .iter()
        .map(|l| {
            let tax_total = l.tax * l.quantity;
            let components: Vec<Value> = tax_parts(st, &l.tax_id, tax_total)
                .into_iter()
                .map(|(rate_id, _, _, part)| json!({"rate_id": rate_id, "total_tax": dec_json(part)}))
                .collect();
            let mut line = json!({
                "id": l.id,
                "product": {"id": l.product_id},
                "quantity": dec_json(l.quantity),
                "pricing": {
                    "price": dec_json(l.price),
                    "total": dec_json(l.price * l.quantity),
                    "discount": dec_json(l.discount),
                    "discount_total": dec_json(l.discount * l.quantity),
                    "cost": dec_json(l.cost),
                    "cost_total": dec_json(l.cost * l.quantity),
                    "loyalty_amount": dec_json(l.loyalty_value),
                    "loyalty_amount_total": dec_json(l.loyalty_value * l.quantity),
                },
                "tax": {"id": l.tax_id, "amount": dec_json(l.tax), "total": dec_json(tax_total)},
                "status": l.status,
                "source": {"register_id": l.register_id},
                "return": {"is_return": l.quantity.is_sign_negative()},
                "_metadata": {
                    "is_price_override": l.price_set,
                    "sequence": l.sequence,
                    "tax_components": components,
                },
            });
            if let Some(note) = &l.note {
                line["note"] = note.clone().into();
            }
            line
        })
        .collect();
    let payments: Vec<Value> = s
        .payments
        .iter()
        .map(|p| {
            let pt = st
                .payment_types
                .iter()
                .find(|t| t.id == p.retailer_payment_type_id);
            json!({
                "id": p.id,
                "amount": dec_json(p.amount),
                "date": ls_date(p.payment_date),
                "type": {
                    "config_id": p.retailer_payment_type_id,
                    "id": pt.map(|t| t.type_id.to_string()).unwrap_or_default(),
                    "name": pt.map(|t| t.name.clone()).unwrap_or_default(),
                },
                "source": {"register_id": p.register_id, "outlet_id": s.outlet_id},
            })
        })
        .collect();
    let taxes: Vec<Value> = sale_tax_parts(st, s)
        .into_iter()
        .map(|(rate_id, _, _, amount)| json!({"id": rate_id, "tax": dec_json(amount)}))
        .collect();
    let (price, tax) = (s.total_price(), s.total_tax());
    let mut m = Map::new();
    m.insert("id".into(), s.id.clone().into());
    m.insert("invoice_number".into(), s.invoice_number.clone().into());
    m.insert("receipt_number".into(), s.invoice_number.clone().into());
    m.insert("short_code".into(), s.short_code.clone().into());
    m.insert("state".into(), state.into());
    m.insert("attributes".into(), json!(attributes));
    m.insert("date".into(), ls_date(s.sale_date).into());
    m.insert("note".into(), s.note.clone().into());
    if let Some(c) = &s.customer_id {
        m.insert("customer_id".into(), c.clone().into());
    }
    m.insert(
        "source".into(),
        json!({
            "id": s.source_id,
            "type": s.source,
            "register_id": s.register_id,
            "outlet_id": s.outlet_id,
            "author": {"id": s.user_id},
        }),
    );
    m.insert(
        "totals".into(),
        json!({
            "price": dec_json(price),
            "tax": dec_json(tax),
            "price_incl_tax": dec_json(price + tax),
            "loyalty": 0,
            "surcharge": 0,
        }),
    );
    m.insert("line_items".into(), Value::Array(lines));
    m.insert("payments".into(), Value::Array(payments));
    m.insert("taxes".into(), Value::Array(taxes));
    m.insert("adjustments".into(), json!([]));
    m.insert("return".into(), sale_return(st, s));
    m.insert("_metadata".into(), json!({"version": s.version}));
    m.insert("created_at".into(), ls_date(s.created_at).into());
    m.insert("updated_at".into(), ls_date(s.updated_at).into());
    Value::Object(m)
}

/// `SaleReturn {is_return, original_sale_id, return_sale_ids}` (sales.json; MAPPING.md §11):
/// a referenced return names its original ("Reference ID to a different sale if this sale
/// was created as a return"), a sale the returns started on it ("IDs of return sales created
/// from this sale", voided ones too). ASSUMPTION: `is_return` is also true on an unreferenced
/// return (a sale whose every line has a negative quantity); `original_sale_id` (a string, not
/// nullable) is left out when there is none.
fn sale_return(st: &State, s: &LsSale) -> Value {
    let unreferenced = !s.lines.is_empty() && s.lines.iter().all(|l| l.quantity.is_sign_negative());
    let mut m = Map::new();
    m.insert(
        "is_return".into(),
        (s.return_for.is_some() || unreferenced).into(),
    );
    if let Some(original) = &s.return_for {
        m.insert("original_sale_id".into(), original.clone().into());
    }
    let returns: Vec<Value> = st
        .sales
        .iter()
        .filter(|r| r.return_for.as_deref() == Some(s.id.as_str()))
        .map(|r| r.id.clone().into())
        .collect();
    m.insert("return_sale_ids".into(), Value::Array(returns));
    Value::Object(m)
}

/// `Product` (products.json; MAPPING.md §7): its `required` list grew to `id, handle, name,
/// sku, active, is_composite, has_inventory, has_variants, version, variant_options,
/// categories, tag_ids, images, skuImages, attributes, product_codes, product_suppliers,
/// packaging, customizations, price_including_tax, price_excluding_tax`. The API 2.0 product
/// has all but `skuImages`, `packaging` and `customizations` ("empty arrays and `packaging:
/// {}` satisfy the schema"); its `attributes` are empty, so their new item shape
/// (`ProductAttribute {name, value}`) holds.
pub(crate) fn product(st: &State, p: &LsProduct) -> Value {
    let mut out = render_product(st, p);
    if let Value::Object(m) = &mut out {
        m.insert("skuImages".into(), json!([]));
        m.insert("packaging".into(), json!({}));
        m.insert("customizations".into(), json!([]));
    }
    out
}

/// `Customer` (customers.json; MAPPING.md §10): the API 2.0 customer and the two new fields,
/// `enable_promotional_sms` (default false, as published) and `tax_id` (null unless given).
pub(crate) fn customer(c: &LsCustomer) -> Value {
    let mut out = render_customer(c);
    if let Value::Object(m) = &mut out {
        m.entry("enable_promotional_sms").or_insert(false.into());
        m.entry("tax_id").or_insert(Value::Null);
    }
    out
}

/// `Inventory` (inventory.json; MAPPING.md §8): the level is `current_inventory_level`
/// (`inventory_level` is gone). ASSUMPTION: a record of a deleted product is deleted with it
/// (`deleted_at` is the product's), as `include_deleted` ("Whether to include inventory
/// records for deleted products") implies. The sandbox models no reorder method: the reorder
/// fields are null ("Null if no reorder method is configured"); cost and procurement are 0.
pub(crate) fn inventory(st: &State, i: &LsInventory) -> Value {
    let deleted_at = st
        .ls_product(&i.product_id)
        .and_then(|p| p.deleted_at)
        .map(ls_date);
    json!({
        "id": i.id,
        "product_id": i.product_id,
        "outlet_id": i.outlet_id,
        "current_inventory_level": dec_json(i.level),
        "average_cost": 0,
        "quantity_to_procure": 0,
        "reorder_method": null,
        "reorder_point": null,
        "reorder_amount": null,
        "reorder_target": null,
        "deleted_at": deleted_at,
        "version": i.version,
    })
}

/// `PaymentType` (setup.json; MAPPING.md §9): `required` now has `disabled` and `internal`
/// too. ASSUMPTION: the retailer's payment types are neither disabled nor internal (they are
/// the ones sales may use).
pub(crate) fn payment_types(st: &State) -> Vec<(u64, Value)> {
    super::payment_types(st)
        .into_iter()
        .map(|(version, mut p)| {
            p["disabled"] = false.into();
            p["internal"] = false.into();
            (version, p)
        })
        .collect()
}

/// `Outlet` (setup.json; MAPPING.md §9): the API 2.0 outlet has every required field; the new
/// `latitude`, `longitude` and `phone` are null (the sandbox's outlets have none).
pub(crate) fn outlet(st: &State, id: &str) -> Value {
    let mut out = render_outlet(st, id);
    for key in ["latitude", "longitude", "phone"] {
        out[key] = Value::Null;
    }
    out
}

/// `Retailer` (setup.json; MAPPING.md §9): the fields we read are unchanged; `timezone` is now
/// a string (the outlets' zone), and the new `embedded_barcode_option`,
/// `enable_line_item_consolidation`, `on_account` and `sso_enabled` are given as off.
pub(crate) fn retailer_2026_07(st: &State) -> Value {
    let mut out = retailer(st);
    out["timezone"] = "America/New_York".into();
    out["embedded_barcode_option"] = "none".into();
    out["enable_line_item_consolidation"] = false.into();
    out["on_account"] = json!({"default_limit": null});
    out["sso_enabled"] = false.into();
    out
}
