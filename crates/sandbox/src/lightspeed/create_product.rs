//! `POST /api/2.0/products`: CreateProduct of Lightspeed's X-Series 2.0 OpenAPI file, for a
//! standalone product (no variants). The body is `ProductCreateBody`; the answer is 200
//! `{"data": ["<new product id>"]}`.
//!
//! Strict, as the rest of the sandbox: a field of the wrong JSON type, a field the body does
//! not have, or one the sandbox does not model (variants, images, suppliers...) is a 400
//! naming the field, and a refused request creates nothing. Where the spec is silent:
//!
//! - ASSUMPTION: `has_inventory` (boolean) is accepted although `ProductCreateBody` does not
//!   list it: it is the `Product` read schema's field ("Indicates whether inventory is being
//!   tracked for the Product") and the only way to create a product that tracks no inventory
//!   (shipping, fees). It defaults to true, as a product created with `inventory` entries
//!   tracks stock; `has_inventory: false` together with `inventory` entries is refused.
//! - ASSUMPTION: a SKU already used by another live product is accepted (the spec says the
//!   SKU "Should be unique", which does not say the API refuses a repeat).
//! - ASSUMPTION: fields outside `ProductCreateBody` (and `has_inventory`) are refused, so a
//!   misspelt or read-only field (`active`, `version`) cannot pass unnoticed.
//! - ASSUMPTION: without `outlet_taxes` the product takes the outlets' default tax
//!   (`default_tax_id` of `GET /api/2.0/outlets`); without a price it costs 0; without a SKU
//!   its SKU is empty (the retailer's `sku_sequence` is off); `is_active` defaults to true;
//!   `handle` defaults to the name lower-cased with every character but letters and digits
//!   made `-`.
//! - ASSUMPTION: `all_outlets_tax` is refused: the spec says it is "Only used for tax inclusive
//!   stores" and the sandbox's retailer is tax exclusive (`outlet_taxes` is the one to use).
//! - Sandbox limit: a product has one tax, so `outlet_taxes` naming different taxes for
//!   different outlets is refused.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::bad;
use crate::endpoint::{JsonBody, Op};
use crate::server::ApiResponse;
use crate::state::{NewLsProduct, State};
use crate::util::{json_dec, round_dp};

/// A field's JSON type, as `ProductCreateBody` gives it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Num,
    Bool,
    Arr,
    Obj,
}

use Kind::{Arr, Bool, Num, Obj, Str};

/// The fields of `ProductCreateBody`, and `has_inventory` (see the module doc).
const BODY: &[(&str, Kind)] = &[
    ("name", Str),
    ("description", Str),
    ("handle", Str),
    ("sku", Str),
    ("product_codes", Arr),
    ("source", Str),
    ("source_id", Str),
    ("source_variant_id", Str),
    ("is_active", Bool),
    ("price_including_tax", Num),
    ("price_excluding_tax", Num),
    ("supply_price", Num),
    ("supplier_id", Str),
    ("supplier_code", Str),
    ("product_suppliers", Arr),
    ("product_type_id", Str),
    ("product_category_id", Str),
    ("brand_id", Str),
    ("tag_ids", Arr),
    ("attributes", Obj),
    ("images", Arr),
    ("inventory", Arr),
    ("account_code_sale", Str),
    ("account_code_purchase", Str),
    ("loyalty_amount", Num),
    ("weight", Num),
    ("weight_unit", Str),
    ("length", Num),
    ("width", Num),
    ("height", Num),
    ("dimensions_unit", Str),
    ("variants", Arr),
    ("all_outlets_tax", Obj),
    ("outlet_taxes", Arr),
    ("composite", Arr),
    ("has_inventory", Bool),
];

/// `ProductAddInventoryPayload`.
const INVENTORY: &[(&str, Kind)] = &[
    ("outlet_id", Str),
    ("current_amount", Num),
    ("reorder_amount", Num),
    ("reorder_point", Num),
];

/// `ProductAddOutletTax`.
const OUTLET_TAX: &[(&str, Kind)] = &[("outlet_id", Str), ("tax_id", Str)];

/// Fields the sandbox does not model: refused unless null or empty (`""`, `[]`, `{}`).
const NOT_MODELLED: &[&str] = &[
    "product_codes",
    "source_variant_id",
    "supplier_id",
    "supplier_code",
    "product_suppliers",
    "product_type_id",
    "product_category_id",
    "brand_id",
    "tag_ids",
    "attributes",
    "images",
    "account_code_sale",
    "account_code_purchase",
    "loyalty_amount",
    "weight",
    "weight_unit",
    "length",
    "width",
    "height",
    "dimensions_unit",
    "variants",
    "composite",
    "inventory[].reorder_amount",
    "inventory[].reorder_point",
];

/// "Indicates the origin of the product. Can be USER, SHOPIFY."
const SOURCES: &[&str] = &["USER", "SHOPIFY"];

pub(super) async fn post_products(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| match parse(st, body.as_ref()) {
        Ok(product) => {
            let id = st.create_ls_product(product);
            // The spec types `data`'s items as objects ("An array containing the ID or IDs of
            // the new products") but its example shows the ids as strings: the answer is the
            // example's.
            ApiResponse::ok(json!({ "data": [id] }))
        }
        Err(refused) => refused,
    })
}

/// The product a body asks for, or the 400 that refuses it.
fn parse(st: &State, body: Option<&Value>) -> Result<NewLsProduct, ApiResponse> {
    let Some(Value::Object(b)) = body else {
        return Err(bad("The request body must be a JSON object"));
    };
    check_fields(b, "", BODY)?;
    let name = string(b, "name").unwrap_or_default();
    if name.trim().is_empty() {
        return Err(bad("name is required"));
    }
    for field in NOT_MODELLED.iter().filter(|f| !f.contains('.')) {
        refuse_unmodelled(b, "", field)?;
    }
    if given(b, "all_outlets_tax") {
        return Err(bad(
            "all_outlets_tax is only used for tax inclusive stores and this retailer is tax \
             exclusive: use outlet_taxes",
        ));
    }
    let source = string(b, "source").unwrap_or("USER");
    if !SOURCES.contains(&source) {
        return Err(bad(format!(
            "source {source:?} is not one of {}",
            SOURCES.join(", ")
        )));
    }
    let tax_id = tax_of(st, b)?.unwrap_or_else(|| st.default_ls_tax_id());
    let price_excl = match (
        number(b, "price_excluding_tax"),
        number(b, "price_including_tax"),
    ) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "price_including_tax and price_excluding_tax cannot both be given",
            ));
        }
        (Some(excl), None) => excl,
        (None, Some(incl)) => {
            let rate = st.ls_tax_rate(&tax_id).unwrap_or_default();
            round_dp(incl / (Decimal::ONE + rate), 5)
        }
        (None, None) => Decimal::ZERO,
    };
    let has_inventory = boolean(b, "has_inventory").unwrap_or(true);
    let stock = stock_of(st, b)?;
    if !has_inventory && !stock.is_empty() {
        return Err(bad(
            "inventory cannot be given for a product that does not track inventory \
             (has_inventory false)",
        ));
    }
    Ok(NewLsProduct {
        handle: string(b, "handle").unwrap_or_default().to_string(),
        description: string(b, "description").unwrap_or_default().to_string(),
        source: source.to_string(),
        source_id: string(b, "source_id").map(str::to_string),
        supply_price: number(b, "supply_price").unwrap_or_default(),
        has_inventory,
        active: boolean(b, "is_active").unwrap_or(true),
        stock,
        ..NewLsProduct::new(
            name,
            string(b, "sku").unwrap_or_default(),
            price_excl,
            tax_id,
        )
    })
}

/// Every key of `obj` is one of `fields` and has its JSON type (null counts as absent).
fn check_fields(
    obj: &Map<String, Value>,
    ctx: &str,
    fields: &[(&str, Kind)],
) -> Result<(), ApiResponse> {
    for (key, value) in obj {
        let Some((_, kind)) = fields.iter().find(|(f, _)| f == key) else {
            return Err(bad(format!("{ctx}{key} is not a field of a new product")));
        };
        let ok = match (kind, value) {
            (_, Value::Null) => true,
            (Str, Value::String(_)) | (Bool, Value::Bool(_)) => true,
            (Arr, Value::Array(_)) | (Obj, Value::Object(_)) => true,
            (Num, Value::Number(_)) => json_dec(value).is_some(),
            _ => false,
        };
        if !ok {
            let what = match kind {
                Str => "a string",
                Num => "a number",
                Bool => "a boolean",
                Arr => "an array",
                Obj => "an object",
            };
            return Err(bad(format!("{ctx}{key} must be {what}")));
        }
    }
    Ok(())
}

fn given(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

fn refuse_unmodelled(obj: &Map<String, Value>, ctx: &str, key: &str) -> Result<(), ApiResponse> {
    if given(obj, key) {
        return Err(bad(format!(
            "{ctx}{key} is not modelled by the sandbox: leave it out"
        )));
    }
    Ok(())
}

// Readers of fields whose type `check_fields` has checked.

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn number(obj: &Map<String, Value>, key: &str) -> Option<Decimal> {
    obj.get(key).filter(|v| v.is_number()).and_then(json_dec)
}

fn boolean(obj: &Map<String, Value>, key: &str) -> Option<bool> {
    obj.get(key).and_then(Value::as_bool)
}

/// An item of an array field: its place, as messages name it (`inventory[0].`), and itself.
type Item<'a> = (String, &'a Map<String, Value>);

/// The items of an array field, each an object of `fields` (`{key}[{i}].` in messages).
fn items<'a>(
    b: &'a Map<String, Value>,
    key: &str,
    fields: &[(&str, Kind)],
) -> Result<Vec<Item<'a>>, ApiResponse> {
    let list = b.get(key).and_then(Value::as_array).map(Vec::as_slice);
    let mut out = Vec::new();
    for (i, item) in list.unwrap_or_default().iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(bad(format!("{key}[{i}] must be an object")));
        };
        let ctx = format!("{key}[{i}].");
        check_fields(obj, &ctx, fields)?;
        out.push((ctx, obj));
    }
    Ok(out)
}

/// A required string of an item, naming an outlet the retailer has; given once in the list.
fn outlet_of<'a>(
    st: &State,
    ctx: &str,
    obj: &'a Map<String, Value>,
    seen: &mut Vec<&'a str>,
) -> Result<&'a str, ApiResponse> {
    let Some(outlet) = string(obj, "outlet_id") else {
        return Err(bad(format!("{ctx}outlet_id is required")));
    };
    if !st.outlets.iter().any(|o| o.id == outlet) {
        return Err(bad(format!(
            "{ctx}outlet_id {outlet} is not a valid outlet"
        )));
    }
    if seen.contains(&outlet) {
        return Err(bad(format!("{ctx}outlet_id {outlet} is given twice")));
    }
    seen.push(outlet);
    Ok(outlet)
}

/// The one tax `outlet_taxes` names, if it names any.
fn tax_of(st: &State, b: &Map<String, Value>) -> Result<Option<String>, ApiResponse> {
    let mut seen = Vec::new();
    let mut tax: Option<&str> = None;
    for (ctx, obj) in items(b, "outlet_taxes", OUTLET_TAX)? {
        outlet_of(st, &ctx, obj, &mut seen)?;
        let Some(tax_id) = string(obj, "tax_id") else {
            return Err(bad(format!("{ctx}tax_id is required")));
        };
        if st.ls_tax_rate(tax_id).is_none() {
            return Err(bad(format!("{ctx}tax_id {tax_id} is not a valid tax")));
        }
        if tax.is_some_and(|t| t != tax_id) {
            return Err(bad(
                "outlet_taxes name different taxes: the sandbox keeps one tax per product",
            ));
        }
        tax = Some(tax_id);
    }
    Ok(tax.map(str::to_string))
}

/// The starting stock `inventory` gives, per outlet.
fn stock_of(st: &State, b: &Map<String, Value>) -> Result<Vec<(String, Decimal)>, ApiResponse> {
    let mut seen = Vec::new();
    let mut stock = Vec::new();
    for (ctx, obj) in items(b, "inventory", INVENTORY)? {
        let outlet = outlet_of(st, &ctx, obj, &mut seen)?;
        let Some(level) = number(obj, "current_amount") else {
            return Err(bad(format!("{ctx}current_amount is required")));
        };
        for field in NOT_MODELLED
            .iter()
            .filter_map(|f| f.strip_prefix("inventory[]."))
        {
            refuse_unmodelled(obj, &ctx, field)?;
        }
        stock.push((outlet.to_string(), level));
    }
    Ok(stock)
}
