//! The client's response parsers, reachable without HTTP: each takes the body (and headers)
//! of one Lightspeed answer and returns what the client returns. [`LightspeedClient`]
//! calls these same functions, and the fuzz target `lightspeed_responses` (`crates/fuzz`)
//! feeds them arbitrary bytes through [`fuzz`].
//!
//! [`LightspeedClient`]: crate::LightspeedClient

use crate::{
    DataList, DataOne, RawPage, RawRetailer, RawSale, RawTax, RegisterSaleEnvelope,
    parse_retry_after, status_error,
};
use els_core::ApiError;
use els_core::inventory::FeedPage;
use els_core::lightspeed::{LsTax, PostedSale, SaleSetup};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime};

/// Decodes a 2xx body; `what` names the request in the error.
pub fn decode<T: DeserializeOwned>(body: &str, what: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| ApiError::Decode {
        detail: format!("{what}: {e}"),
    })
}

/// `POST /api/register_sales`: the posted sale.
pub fn sale_response(body: &str) -> Result<PostedSale, ApiError> {
    let envelope: RegisterSaleEnvelope = decode(body, "POST /api/register_sales")?;
    Ok(envelope.register_sale.into())
}

/// The sales of a search answer that are ours: whose `source_id` (2026-07: `source.id`) or
/// invoice number is the invoice number, or whose invoice number holds it followed by no
/// letter or digit (a register may add a prefix or suffix; `ECWID-1-7` is not in
/// `ECWID-1-70`, another order's).
pub(crate) fn sales_matching(sales: Vec<RawSale>, invoice_number: &str) -> Vec<PostedSale> {
    sales
        .into_iter()
        .filter(|s| {
            s.source_id() == Some(invoice_number)
                || s.invoice_number
                    .as_deref()
                    .is_some_and(|n| holds_invoice(n, invoice_number))
        })
        .map(PostedSale::from)
        .collect()
}

/// Whether `number` holds `ours` with no letter or digit right after it.
fn holds_invoice(number: &str, ours: &str) -> bool {
    number.match_indices(ours).any(|(at, _)| {
        number[at + ours.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// `GET /api/2.0/search?type=sales&invoice_number=…`: the matching sales.
pub fn sales_search(body: &str, invoice_number: &str) -> Result<Vec<PostedSale>, ApiError> {
    let page: DataList<RawSale> = decode(body, "/api/2.0/search")?;
    Ok(sales_matching(page.data, invoice_number))
}

/// A `{"data": [...], "version": {...}}` list page: its items and `version.max`.
pub fn list_page<T: DeserializeOwned>(body: &str) -> Result<(Vec<T>, Option<i64>), ApiError> {
    let page: DataList<T> = decode(body, "list")?;
    Ok((page.data, page.version.and_then(|v| v.max)))
}

/// A `{"data": {...}}` answer (a product, a created customer, the retailer).
pub fn one<T: DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    let one: DataOne<T> = decode(body, "one")?;
    Ok(one.data)
}

/// One page of a version-paginated 2.0 feed. The page's `version.max` comes from the
/// envelope, or from the items' own `version` fields; an empty page has none.
pub(crate) fn feed_page<T: DeserializeOwned>(
    page: RawPage,
    rate_limit_remaining: Option<u32>,
    path: &str,
) -> Result<FeedPage<T>, ApiError> {
    let item_max = page
        .data
        .iter()
        .filter_map(|v| v.get("version").and_then(serde_json::Value::as_u64))
        .max();
    let envelope_max = page
        .version
        .and_then(|v| v.max)
        .and_then(|m| u64::try_from(m).ok());
    let max_version = match (envelope_max, item_max) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let items = page
        .data
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| ApiError::Decode {
            detail: format!("{path}: {e}"),
        })?;
    Ok(FeedPage {
        max_version: if items.is_empty() { None } else { max_version },
        items,
        rate_limit_remaining,
    })
}

/// A feed page from its body and `X-RateLimit-Remaining` header.
pub fn feed_page_body<T: DeserializeOwned>(
    body: &str,
    rate_limit_remaining: Option<&str>,
) -> Result<FeedPage<T>, ApiError> {
    let remaining = rate_limit_remaining.and_then(|v| v.trim().parse::<u32>().ok());
    feed_page(decode(body, "feed")?, remaining, "feed")
}

/// The sale setup from the retailer and its taxes. A tax group's rate is the sum of its
/// component rates.
pub(crate) fn sale_setup(retailer: RawRetailer, taxes: Vec<RawTax>) -> Result<SaleSetup, ApiError> {
    let currency = retailer.currency_code();
    let no_tax_group_id = retailer.no_tax_group_id.ok_or_else(|| ApiError::Decode {
        detail: "retailer has no no_tax_group_id".into(),
    })?;
    let taxes = taxes
        .into_iter()
        .map(|t| {
            let rate = if t.rates.is_empty() {
                Ok(t.rate.unwrap_or_default())
            } else {
                t.rates
                    .iter()
                    .filter_map(|r| r.rate)
                    .try_fold(rust_decimal::Decimal::ZERO, |sum, r| sum.checked_add(r))
                    .ok_or_else(|| ApiError::Decode {
                        detail: format!("tax {}: the rates of the group overflow", t.id),
                    })
            }?;
            Ok(LsTax {
                name: t.name.unwrap_or_default(),
                id: t.id,
                rate,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(SaleSetup {
        no_tax_group_id,
        currency,
        taxes,
    })
}

/// The sale setup from the bodies of `GET /api/2.0/retailer` and of the taxes pages.
pub fn sale_setup_bodies(retailer: &str, taxes_pages: &[&str]) -> Result<SaleSetup, ApiError> {
    let retailer: RawRetailer = one(retailer)?;
    let mut taxes = Vec::new();
    for page in taxes_pages {
        taxes.extend(list_page::<RawTax>(page)?.0);
    }
    sale_setup(retailer, taxes)
}

/// A non-2xx answer: status, `Retry-After` and body.
pub fn error(status: u16, retry_after: Option<&str>, body: &str) -> ApiError {
    status_error(status, retry_after, body)
}

/// `Retry-After` against a fixed "now".
pub fn retry_after(value: &str) -> Option<Duration> {
    parse_retry_after(
        value,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
}

/// The fuzz harness. Byte 0 picks the parser, the rest is the body (for a feed page and an
/// error: `header \n body`). Panics only if a parser does, or a property below breaks.
/// Only with the `fuzzing` feature (the fuzz target and the corpus test).
#[cfg(feature = "fuzzing")]
pub fn fuzz(data: &[u8]) {
    use els_core::inventory::InventoryRecord;
    use els_core::lightspeed::{LsCustomer, LsProduct};

    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let body = text.as_ref();
    match kind % 9 {
        0 => {
            let _ = sale_response(body);
        }
        1 => {
            let _ = sales_search(body, "ECWID-1003-K8XTQ");
        }
        2 => {
            let _ =
                list_page::<LsProduct>(body).map(|(p, _)| p.iter().filter(|p| p.is_live()).count());
            let _ = one::<LsProduct>(body);
        }
        3 => {
            let _ = list_page::<LsCustomer>(body);
            let _ = one::<LsCustomer>(body);
        }
        4 => {
            let (header, body) = body.split_once('\n').unwrap_or(("", body));
            if let Ok(page) = feed_page_body::<InventoryRecord>(body, Some(header)) {
                // The next `after` never goes back behind a record of the page. A page whose
                // records carry no version has none (the mirror then stops with an error).
                let newest = page.items.iter().map(|r| r.version).max();
                match (page.max_version, newest) {
                    (Some(v), Some(m)) => assert!(v >= m, "{page:?}"),
                    (Some(_), None) => panic!("an empty page has a version: {page:?}"),
                    (None, m) => assert!(m.unwrap_or(0) == 0, "{page:?}"),
                }
            }
        }
        5 => {
            if let Ok(page) = feed_page_body::<LsProduct>(body, None) {
                assert!(!page.items.is_empty() || page.max_version.is_none());
            }
        }
        6 => {
            let _ = sale_setup_bodies(body, &[body]);
            let _ = sale_setup_bodies(r#"{"data":{"no_tax_group_id":"n"}}"#, &[body]);
        }
        7 => {
            let (header, body) = body.split_once('\n').unwrap_or((body, ""));
            for status in [400, 401, 404, 409, 429, 500, 503] {
                let e = error(status, Some(header), body);
                assert_eq!(matches!(e, ApiError::RateLimited { .. }), status == 429);
            }
        }
        _ => {
            if let Some(d) = retry_after(body) {
                // A date never means "now": at least a second.
                assert!(d >= Duration::from_secs(1) || body.trim().parse::<u64>().is_ok());
            }
            // A delay from a header can always be added to the clock.
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            for d in [retry_after(body), crate::parse_reset(body, now)]
                .into_iter()
                .flatten()
            {
                assert!(d <= crate::MAX_HEADER_DELAY);
                let _ = std::time::Instant::now() + d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_totals_that_overflow_a_decimal_are_absent_not_a_panic() {
        let body = r#"{"register_sale":{"id":"s1","total_price":"79228162514264337593543950335","total_tax":"1"}}"#;
        let sale = sale_response(body).unwrap();
        assert_eq!((sale.id.as_str(), sale.total), ("s1", None));
    }

    #[test]
    fn header_delays_that_overflow_the_clock_are_capped_not_a_panic() {
        // Found by the `lightspeed_responses` fuzz target: `X-RateLimit-Reset: u64::MAX`.
        let huge = u64::MAX.to_string();
        let now = SystemTime::now();
        assert_eq!(
            crate::parse_reset(&huge, now),
            Some(crate::MAX_HEADER_DELAY)
        );
        assert_eq!(
            crate::parse_retry_after(&huge, now),
            Some(crate::MAX_HEADER_DELAY)
        );
        let past = (now - Duration::from_secs(60))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(
            crate::parse_reset(&past.to_string(), now),
            Some(Duration::ZERO)
        );
        assert_eq!(crate::parse_reset("30", now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn tax_group_rates_that_overflow_are_a_decode_error() {
        let retailer = r#"{"data":{"no_tax_group_id":"n"}}"#;
        let taxes = r#"{"data":[{"id":"g","rates":[{"rate":"79228162514264337593543950335"},{"rate":1}]}]}"#;
        assert!(matches!(
            sale_setup_bodies(retailer, &[taxes]),
            Err(ApiError::Decode { .. })
        ));
        let fine = r#"{"data":[{"id":"g","rates":[{"rate":"0.05"},{"rate":0.07}]}]}"#;
        let setup = sale_setup_bodies(retailer, &[fine]).unwrap();
        assert_eq!(setup.taxes[0].rate, rust_decimal::Decimal::new(12, 2));
    }

    #[test]
    fn the_retailer_currency_is_read_from_its_code() {
        let taxes = r#"{"data":[]}"#;
        let setup = |retailer: &str| sale_setup_bodies(retailer, &[taxes]).unwrap().currency;
        assert_eq!(
            setup(r#"{"data":{"no_tax_group_id":"n","currency":{"code":"JPY","symbol":"¥"}}}"#),
            Some("JPY".into())
        );
        assert_eq!(
            setup(r#"{"data":{"no_tax_group_id":"n","currency":"KWD"}}"#),
            Some("KWD".into())
        );
        assert_eq!(setup(r#"{"data":{"no_tax_group_id":"n"}}"#), None);
    }
}
