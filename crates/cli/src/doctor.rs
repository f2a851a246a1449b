//! `els doctor`: whether a connection is ready to post, and if not, why. It reads the APIs
//! (tokens, register, user, payment types, products, recent orders' tax rates, the catalog)
//! and the state (ledger, inventory cursor); it writes nothing.

use crate::ops;
use els_core::doctor::{self, CatalogReport, Check, Status};
use els_core::inventory::EcwidCatalogProduct;
use els_core::ledger::OrderState;
use els_core::lightspeed::LsApiVersion;
use els_core::setup;
use els_core::{ApiError, Connection, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi};
use els_ecwid::EcwidClient;
use els_lightspeed::LightspeedClient;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the doctor found for one connection.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub store_id: u64,
    /// No check failed: orders can post.
    pub ready: bool,
    pub checks: Vec<Check>,
    pub catalog: Option<CatalogReport>,
    /// Ledger entries by state.
    pub ledger: BTreeMap<&'static str, usize>,
    /// Parked orders by reason code.
    pub parked_by_reason: BTreeMap<String, usize>,
}

/// Recent orders looked at for their tax rates: the last 30 days, at most 100.
const RECENT_DAYS: i64 = 30;
const RECENT_ORDERS: u32 = 100;
const CATALOG_PAGE: u64 = 100;

fn failed(what: &str, e: &ApiError) -> Check {
    let status = Status::Fail;
    match e {
        ApiError::Unauthorized { status: code, .. } => Check::new(
            what,
            status,
            format!("refused the token (HTTP {code}): reconnect with a valid token (els connect)"),
        ),
        other => Check::new(what, status, format!("could not be read: {other}")),
    }
}

/// Diagnoses `conn`. `on_page` is told of each catalog page read (a progress bar).
pub async fn diagnose<S: LedgerStore + InventoryStateStore>(
    store: &S,
    conn: &Connection,
    ecwid: &EcwidClient,
    lightspeed: &LightspeedClient,
    on_page: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<Diagnosis> {
    let now = chrono::Utc::now();
    let mut checks = Vec::new();
    let mut catalog = None;

    // Tokens and currency.
    let profile = ecwid.profile(conn).await;
    match &profile {
        Ok(p) => checks.push(match setup::check_store(conn.store_id, p.store_id) {
            Ok(()) => Check::new("Ecwid token", Status::Ok, format!("store {}", p.store_id)),
            Err(e) => Check::new("Ecwid token", Status::Fail, e.to_string()),
        }),
        Err(e) => checks.push(failed("Ecwid token", e)),
    }
    checks.push(api_version(conn, lightspeed));
    let retailer = lightspeed.retailer(conn).await;
    match &retailer {
        Ok(r) => checks.push(lightspeed_token(conn, &r.name, now)),
        Err(e) => checks.push(failed("Lightspeed token", e)),
    }
    if let (Ok(p), Ok(r)) = (&profile, &retailer) {
        checks.push(
            match setup::check_currency(p.currency.as_deref(), r.currency.as_deref()) {
                Ok(()) => Check::new(
                    "Currency",
                    Status::Ok,
                    p.currency
                        .clone()
                        .or(r.currency.clone())
                        .unwrap_or_default(),
                ),
                Err(e) => Check::new("Currency", Status::Fail, e.to_string()),
            },
        );
    }
    let lightspeed_ok = retailer.is_ok();

    if lightspeed_ok {
        checks.extend(choices(conn, lightspeed).await);
        // Tax rates of recent orders.
        let since = (now - chrono::Duration::days(RECENT_DAYS)).timestamp();
        match (
            ecwid.recent_orders(conn, since, RECENT_ORDERS).await,
            lightspeed.sale_setup(conn).await,
        ) {
            (Ok(orders), Ok(setup)) => {
                let unmapped = doctor::unmapped_tax_rates(&orders, &setup);
                checks.push(if unmapped.is_empty() {
                    Check::new(
                        "Tax rates",
                        Status::Ok,
                        format!(
                            "every rate of the last {} order(s) ({RECENT_DAYS} days) has a Lightspeed tax",
                            orders.len()
                        ),
                    )
                } else {
                    Check::new(
                        "Tax rates",
                        Status::Fail,
                        format!(
                            "no Lightspeed tax has {}: create taxes with these rates, or orders with them park TAX_NOT_MAPPED",
                            unmapped
                                .iter()
                                .map(|(rate, names, n)| format!("{rate}% ({names}, {n} line(s))"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                });
            }
            (Err(e), _) => checks.push(failed("Tax rates", &e)),
            (_, Err(e)) => checks.push(failed("Tax rates", &e)),
        }
        // The catalog link report.
        match read_catalog(conn, ecwid, on_page).await {
            Ok(products) => match lightspeed.products(conn).await {
                Ok(ls) => {
                    let report = doctor::catalog_report(&products, &ls);
                    checks.push(Check::new(
                        "Catalog links",
                        if report.is_clean() { Status::Ok } else { Status::Warn },
                        format!(
                            "{} Ecwid item(s), {} Lightspeed product(s): {} unmatched, {} blank, {} shared in Ecwid, {} shared in Lightspeed (orders with those SKUs park)",
                            report.ecwid_items,
                            report.lightspeed_products,
                            report.unmatched.len(),
                            report.blank.len(),
                            report.shared_in_ecwid.len(),
                            report.shared_in_lightspeed.len()
                        ),
                    ));
                    catalog = Some(report);
                }
                Err(e) => checks.push(failed("Catalog links", &e)),
            },
            Err(e) => checks.push(failed("Catalog links", &e)),
        }
    }

    // Switches and state.
    if !conn.settings.post_sales {
        checks.push(Check::new(
            "Post sales",
            Status::Warn,
            "off: paid orders are skipped POST_SALES_OFF (els settings --post-sales true)",
        ));
    }
    let entries = store.list_orders(conn.store_id, None, usize::MAX).await?;
    let ledger = ops::count_states(&entries);
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let last_received = entries.iter().map(|e| e.created_at).max();
    let last_posted = entries
        .iter()
        .filter(|e| e.state == OrderState::Posted)
        .map(|e| e.updated_at)
        .max();
    checks.push(Check::new(
        "Activity",
        if last_received.is_some() {
            Status::Ok
        } else {
            Status::Warn
        },
        match (last_received, last_posted) {
            (None, _) => {
                "no order received yet: is the webhook URL registered in Ecwid?".to_string()
            }
            (Some(r), None) => format!("last order received {}; no sale posted yet", stamp(r)),
            (Some(r), Some(p)) => format!(
                "last order received {}, last sale posted {}",
                stamp(r),
                stamp(p)
            ),
        },
    ));
    let mut parked_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.state == OrderState::Parked) {
        let code = e
            .reason
            .as_ref()
            .map_or("?".into(), |r| r.code.as_str().to_string());
        *parked_by_reason.entry(code).or_default() += 1;
    }
    checks.push(if parked_by_reason.is_empty() {
        Check::new("Parked orders", Status::Ok, "none")
    } else {
        Check::new(
            "Parked orders",
            Status::Warn,
            format!(
                "{} (els status --state PARKED; els replay --reason … once fixed)",
                parked_by_reason
                    .iter()
                    .map(|(code, n)| format!("{n} {code}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    });
    let held: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            e.returns
                .held
                .as_ref()
                .map(|r| format!("{} {}", e.key.order_id, r.code))
        })
        .collect();
    checks.push(match (conn.settings.post_refunds, held.is_empty()) {
        (false, _) => Check::new(
            "Refunds",
            Status::Warn,
            format!(
                "not posted to Lightspeed (els settings --post-refunds true){}",
                if held.is_empty() {
                    String::new()
                } else {
                    format!("; {} held", held.len())
                }
            ),
        ),
        (true, true) => Check::new(
            "Refunds",
            Status::Ok,
            format!(
                "posted as Lightspeed returns; full refunds {}",
                if conn.settings.restock_refunds {
                    "restock the items"
                } else {
                    "are money only"
                }
            ),
        ),
        (true, false) => Check::new(
            "Refunds",
            Status::Warn,
            format!(
                "{} held: {} (els status --order …; els replay once fixed)",
                held.len(),
                held.join(", ")
            ),
        ),
    });
    checks.push(
        match (
            conn.settings.sync_inventory,
            store.get_inventory_cursor(conn.store_id).await?,
        ) {
            (false, _) => Check::new(
                "Inventory",
                Status::Warn,
                "sync is off (els settings --sync-inventory true)",
            ),
            (true, None) => Check::new("Inventory", Status::Warn, "no inventory run yet"),
            (true, Some(c)) => Check::new(
                "Inventory",
                Status::Ok,
                format!(
                    "last run {}",
                    c.updated_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ),
        },
    );
    Ok(Diagnosis {
        store_id: conn.store_id.get(),
        ready: doctor::ready(&checks),
        checks,
        catalog,
        ledger,
        parked_by_reason,
    })
}

/// Which Lightspeed API generation the store speaks, and where the choice comes from (a
/// store's own setting, or this command's default, which should be the stack's). Legacy
/// works but is a warning: Lightspeed lists its paths as Legacy, and dated versions are
/// supported for 12 months each.
pub fn api_version(conn: &Connection, lightspeed: &LightspeedClient) -> Check {
    let version = lightspeed.version_for(conn);
    let whence = match conn.settings.lightspeed_api_version {
        Some(_) => format!(
            "this store's setting; LIGHTSPEED_API_VERSION here is {}",
            lightspeed.api_version()
        ),
        // The command's own default: the functions use the stack's `LightspeedApiVersion`.
        None => "LIGHTSPEED_API_VERSION of this command; the functions use the stack's".to_string(),
    };
    match version {
        LsApiVersion::Dated(v) => {
            Check::new("Lightspeed API", Status::Ok, format!("{v} ({whence})"))
        }
        LsApiVersion::Legacy => Check::new(
            "Lightspeed API",
            Status::Warn,
            format!(
                "legacy ({whence}): Lightspeed lists these paths as Legacy; move with `els settings --store {} --lightspeed-api-version {}`",
                conn.store_id,
                LsApiVersion::LATEST
            ),
        ),
    }
}

fn lightspeed_token(
    conn: &Connection,
    retailer: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Check {
    let account = &conn.lightspeed;
    match (account.expires_at, account.refresh_token.is_some()) {
        (Some(at), false) if at <= now => Check::new(
            "Lightspeed token",
            Status::Fail,
            format!("expired at {at} and there is no refresh token: reconnect (els connect)"),
        ),
        (Some(at), true) => Check::new(
            "Lightspeed token",
            Status::Ok,
            format!("retailer {retailer}; OAuth, expires {at}, refreshed automatically"),
        ),
        _ => Check::new(
            "Lightspeed token",
            Status::Ok,
            format!("retailer {retailer}"),
        ),
    }
}

/// The register (and its outlet), user, payment types and products still exist.
async fn choices(conn: &Connection, lightspeed: &LightspeedClient) -> Vec<Check> {
    let mut out = Vec::new();
    match lightspeed.registers(conn).await {
        Ok(registers) => out.push(match registers.iter().find(|r| r.id == conn.register_id) {
            None => Check::new(
                "Register",
                Status::Fail,
                format!(
                    "{} no longer exists: choose another (els settings --register)",
                    conn.register_id
                ),
            ),
            Some(r) if r.outlet_id.as_deref() != Some(conn.outlet_id.as_str()) => Check::new(
                "Register",
                Status::Fail,
                format!(
                    "\"{}\" now sells from another outlet: run els settings --register \"{}\"",
                    r.name, r.name
                ),
            ),
            Some(r) => Check::new("Register", Status::Ok, format!("\"{}\"", r.name)),
        }),
        Err(e) => out.push(failed("Register", &e)),
    }
    match lightspeed.users(conn).await {
        Ok(users) => out.push(match users.iter().find(|u| u.id == conn.user_id) {
            Some(u) => Check::new("User", Status::Ok, format!("\"{}\"", u.name())),
            None => Check::new(
                "User",
                Status::Fail,
                "no longer exists: els settings --user",
            ),
        }),
        Err(e) => out.push(failed("User", &e)),
    }
    match lightspeed.payment_types(conn).await {
        Ok(types) => {
            let name = |id: &str| types.iter().find(|p| p.id == id).map(|p| p.name.clone());
            out.push(match name(&conn.payment_type_id) {
                Some(n) => Check::new("Payment type", Status::Ok, format!("\"{n}\"")),
                None => Check::new(
                    "Payment type",
                    Status::Fail,
                    "no longer exists: els settings --payment-type",
                ),
            });
            out.push(match conn.gift_card_payment_type_id.as_deref() {
                None => Check::new(
                    "Gift-card payment type",
                    Status::Warn,
                    "not set: orders paid partly with a gift card park",
                ),
                Some(id) => match name(id) {
                    Some(n) => Check::new("Gift-card payment type", Status::Ok, format!("\"{n}\"")),
                    None => Check::new(
                        "Gift-card payment type",
                        Status::Fail,
                        "no longer exists: els settings --gift-card-payment-type",
                    ),
                },
            });
        }
        Err(e) => out.push(failed("Payment type", &e)),
    }
    for (what, id, unset) in [
        (
            "Shipping product",
            &conn.shipping_product_id,
            (
                Status::Warn,
                "not set: orders with shipping park (els settings --shipping-product or --create-missing)",
            ),
        ),
        (
            "Fees product",
            &conn.fees_product_id,
            (Status::Ok, "not set: fees go on the shipping product"),
        ),
        (
            "Refund product",
            &conn.refund_product_id,
            (
                Status::Warn,
                "not set: money-only refunds (partial, or without restocking) are held (els settings --refund-product or --create-missing)",
            ),
        ),
    ] {
        out.push(match id {
            None => Check::new(what, unset.0, unset.1),
            Some(id) => match lightspeed.get_product(conn, id).await {
                Ok(Some(p)) if p.is_live() => {
                    let name = p.name.clone().unwrap_or_else(|| p.id.clone());
                    if what == "Refund product" && p.has_inventory != Some(false) {
                        Check::new(
                            what,
                            Status::Fail,
                            format!("\"{name}\" tracks inventory: a money-only refund would put stock back; choose another (els settings --refund-product)"),
                        )
                    } else if p.has_inventory == Some(true) {
                        Check::new(
                            what,
                            Status::Warn,
                            format!("\"{name}\" tracks inventory: each sale lowers its stock"),
                        )
                    } else {
                        Check::new(what, Status::Ok, format!("\"{name}\""))
                    }
                }
                Ok(_) => Check::new(
                    what,
                    Status::Fail,
                    format!("{id} no longer exists: els settings"),
                ),
                Err(e) => failed(what, &e),
            },
        });
    }
    out
}

/// Every Ecwid product, page by page.
async fn read_catalog(
    conn: &Connection,
    ecwid: &EcwidClient,
    on_page: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<EcwidCatalogProduct>, ApiError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = ecwid.list_products(conn, offset, CATALOG_PAGE).await?;
        let n = page.items.len() as u64;
        out.extend(page.items);
        offset += n;
        on_page(offset, page.total);
        if n == 0 || offset >= page.total {
            return Ok(out);
        }
    }
}
