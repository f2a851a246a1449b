//! Fuzz harnesses: the functions `crates/fuzz` (cargo-fuzz, nightly) feeds random inputs to.
//! They live here, in a normal crate, so the committed seed corpus also runs on stable
//! (`tests/tests/fuzz_corpus.rs`). Each one panics only when a property is broken; any
//! input at all is allowed.
//!
//! * [`webhook`] / [`webhook_ingest`]: body bytes and a signature header through
//!   [`verify_and_parse`] and the [`Ingestor`]. Property: nothing is accepted or enqueued
//!   unless the signature is Ecwid's HMAC of the body's own `eventCreated.eventId`.
//! * [`order_mapping`]: bytes as an Ecwid order (JSON, or a compact binary description)
//!   through [`map_order_to_sale`] with a realistic context. Property: no panic, and a sale
//!   that is returned is worth exactly what Ecwid charged, to the cent.

use crate::connection::{Connection, Secret};
use crate::ecwid::EcwidOrder;
use crate::ids::{Sku, StoreId};
use crate::ingest::{IngestConfig, IngestOutcome, IngestResponse, Ingestor};
use crate::ledger::OrderKey;
use crate::lightspeed::{LsTax, SaleSetup};
use crate::money::{MappingContext, ledger_lines, map_order_to_sale};
use crate::ports::{Clock, OrderMessage, StateStore, WorkQueue};
use crate::webhook::{WebhookError, sign, signature_matches, verify_and_parse};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// The webhook secret the harnesses sign and verify with (that of Ecwid's signed example).
pub const WEBHOOK_SECRET: &str = "test-client-secret-3f9a";
/// The store the harness connection belongs to (that of Ecwid's examples).
pub const STORE_ID: StoreId = StoreId::literal(1003);

/// How a webhook input is read: byte 0 picks the mode, the rest is `signature \n body`
/// (mode 0) or the body alone (modes 1 and 2).
///
/// * 0: the signature is the input's (a forgery, unless the fuzzer found an HMAC);
/// * 1: the harness signs the body's own `eventCreated.eventId` correctly, so the parsing
///   behind the signature check is reached;
/// * 2: as 1, then one character of the signature is changed: it must be refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInput {
    pub body: Vec<u8>,
    pub signature: Option<String>,
    /// The correct signature for the body, when its signed fields can be read at all.
    pub expected: Option<String>,
}

/// The signed fields as an independent reader sees them: `eventId` and `eventCreated`.
/// serde_json skips the fields a struct ignores without checking their UTF-8, so a body
/// with invalid UTF-8 outside the signed fields is read here lossily as well.
fn signed_fields(body: &[u8]) -> Option<(i64, String)> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .or_else(|_| serde_json::from_str(&String::from_utf8_lossy(body)))
        .ok()?;
    let id = v.get("eventId")?.as_str()?.to_string();
    let created = v.get("eventCreated")?.as_i64()?;
    Some((created, id))
}

impl WebhookInput {
    pub fn from_bytes(data: &[u8]) -> Self {
        let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m % 3, r));
        let (signature, body) = if mode == 0 {
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (
                    Some(String::from_utf8_lossy(&rest[..i]).into_owned()),
                    &rest[i + 1..],
                ),
                None => (None, rest),
            }
        } else {
            (None, rest)
        };
        let expected =
            signed_fields(body).map(|(created, id)| sign(WEBHOOK_SECRET.as_bytes(), created, &id));
        let signature = match (mode, &expected) {
            (0, _) => signature,
            (1, Some(e)) => Some(e.clone()),
            (_, Some(e)) => {
                // Change one character, picked by the body's length, to another base64 one.
                let mut chars: Vec<char> = e.chars().collect();
                let i = body.len() % chars.len();
                chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
                Some(chars.into_iter().collect())
            }
            (_, None) => None,
        };
        Self {
            body: body.to_vec(),
            signature,
            expected,
        }
    }

    /// Whether the signature is the right one for the body's `eventCreated.eventId`.
    pub fn is_authentic(&self) -> bool {
        match (&self.signature, &self.expected) {
            (Some(s), Some(e)) => s.trim() == e,
            _ => false,
        }
    }
}

/// Webhook verification on its own. Panics if a forged or altered signature is accepted,
/// or an authentic one refused as a forgery.
pub fn webhook(data: &[u8]) {
    let input = WebhookInput::from_bytes(data);
    let secret = WEBHOOK_SECRET.as_bytes();
    let result = verify_and_parse(secret, &input.body, input.signature.as_deref());
    match &result {
        Ok(event) => {
            assert!(input.is_authentic(), "accepted an unauthentic webhook");
            let sig = input.signature.as_deref().unwrap_or_default();
            assert!(signature_matches(
                secret,
                event.event_created,
                &event.event_id,
                sig
            ));
            assert_eq!(
                signed_fields(&input.body),
                Some((event.event_created, event.event_id.clone())),
                "the parsed event is not the one that was signed"
            );
        }
        Err(WebhookError::BadSignature) => {
            assert!(!input.is_authentic(), "refused an authentic signature");
        }
        Err(WebhookError::MissingSignature) => {
            assert!(
                input
                    .signature
                    .as_deref()
                    .is_none_or(|s| s.trim().is_empty())
            );
        }
        Err(WebhookError::Malformed(_)) => {}
    }
    let _ = result.map(|e| crate::ingest::classify(&e));
}

/// A connection for [`STORE_ID`] with every product and payment type set, built from JSON
/// so that fields added later take their defaults.
pub fn connection() -> Connection {
    serde_json::from_value(serde_json::json!({
        "store_id": STORE_ID,
        "ecwid_token": "secret_fuzz",
        "lightspeed": {"domain_prefix": "fuzz", "access_token": "lsat_fuzz"},
        "register_id": "reg",
        "outlet_id": "out",
        "user_id": "usr",
        "payment_type_id": "pay",
        "shipping_product_id": "p-ship",
        "fees_product_id": "p-fees",
        "gift_card_payment_type_id": "pay-gift",
        "version": 1
    }))
    .expect("the harness connection is valid")
}

/// The [`Ingestor`] configuration of [`webhook_ingest`].
pub fn ingest_config() -> IngestConfig {
    IngestConfig::new(Secret::new(WEBHOOK_SECRET))
}

/// The system time; a wait returns at once (the ingestor never waits).
#[derive(Debug, Clone, Copy)]
pub struct HarnessClock;

impl Clock for HarnessClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, _: Duration) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// The [`Ingestor`] of [`webhook_ingest`]: `store` holds the connections, the webhook
/// records and the queue (a SQLite or in-memory store is all three).
pub fn ingestor<S: StateStore + WorkQueue + Clone>(store: &S) -> Ingestor<S, S, HarnessClock> {
    Ingestor::new(store.clone(), store.clone(), ingest_config(), HarnessClock)
}

/// Stores [`connection`] so that paid-order webhooks for [`STORE_ID`] are work.
pub async fn prepare_store<S: StateStore>(store: &S) {
    if store
        .get_connection(STORE_ID)
        .await
        .expect("store works")
        .is_none()
    {
        store
            .put_connection(&connection(), None)
            .await
            .expect("store works");
    }
}

/// Webhook verification, then one delivery through a real [`Ingestor`] whose store holds
/// [`connection`] (see [`prepare_store`]) and whose queue is `queue`, empty beforehand.
/// Panics if anything is queued, or answered as queued, for an unauthentic delivery. The
/// queue is emptied again afterwards. Returns the answer and the messages queued.
pub async fn webhook_ingest<S: StateStore, Q: WorkQueue, C: Clock>(
    ingestor: &Ingestor<S, Q, C>,
    queue: &Q,
    data: &[u8],
) -> (IngestResponse, Vec<OrderMessage>) {
    webhook(data);
    let input = WebhookInput::from_bytes(data);
    let response = ingestor
        .handle_webhook(&input.body, input.signature.as_deref())
        .await;
    let queued = queue
        .receive(10, Duration::from_secs(60))
        .await
        .expect("queue works");
    for d in &queued {
        queue.ack(&d.receipt).await.expect("queue works");
    }
    if !input.is_authentic() {
        assert!(
            queued.is_empty(),
            "an unauthentic webhook was enqueued: {queued:?}"
        );
        assert_ne!(response.outcome, IngestOutcome::Queued, "{response:?}");
        assert!(
            matches!(response.status(), 401 | 400 | 413),
            "an unauthentic webhook was answered {response:?}"
        );
    }
    assert!(queued.len() <= 1, "one delivery queued {}", queued.len());
    if !queued.is_empty() {
        assert_eq!(response.outcome, IngestOutcome::Queued);
        assert_eq!(queued[0].message.store_id, STORE_ID);
    }
    (response, queued.into_iter().map(|d| d.message).collect())
}

/// Lightspeed's side of the mapping: the 10 %, 20 %, 5 %, and 12 % (GST + PST group)
/// taxes; 7 % alone is deliberately missing (`TAX_NOT_MAPPED`).
pub fn sale_setup() -> SaleSetup {
    let tax = |id: &str, name: &str, rate: Decimal| LsTax {
        id: id.into(),
        name: name.into(),
        rate,
    };
    SaleSetup {
        no_tax_group_id: "notax".into(),
        taxes: vec![
            tax("gst10", "10% Tax", Decimal::new(10, 2)),
            tax("vat20", "20% Tax", Decimal::new(20, 2)),
            tax("gst5", "GST", Decimal::new(5, 2)),
            tax("gst-pst", "GST + PST", Decimal::new(12, 2)),
        ],
        currency: None,
    }
}

/// The SKUs of the order fixtures (and of [`order_from_bytes`]), each linked to a product.
/// `DUP-001` (ambiguous in the fixtures) and `NOT-IN-LS-999` are not linked.
pub const LINKED_SKUS: [&str; 10] = [
    "123123",
    "MUG-001",
    "TOTE-001",
    "TSHIRT-S",
    "TSHIRT-M",
    "TSHIRT-L",
    "STICKER-01",
    "MAPLE-SYRUP",
    "PENCIL-01",
    "FREE-GIFT",
];

pub fn linked_products() -> HashMap<Sku, String> {
    LINKED_SKUS
        .iter()
        .map(|s| {
            (
                Sku::parse(s).expect("a valid SKU"),
                format!("p-{}", s.to_lowercase()),
            )
        })
        .collect()
}

/// An order from the input: JSON when it parses as an order, otherwise the compact binary
/// form of [`order_from_bytes`] (random bytes rarely make a valid order).
pub fn order_input(data: &[u8]) -> Option<EcwidOrder> {
    match serde_json::from_slice::<EcwidOrder>(data) {
        Ok(o) => Some(o),
        Err(_) if data.first() == Some(&b'{') => None,
        Err(_) => order_from_bytes(data),
    }
}

/// Reads bytes as a small order: each item takes 8 bytes (SKU, quantity, price, tax rate,
/// discount, inclusive), then shipping, a gift card and a skew of the total. The total is
/// what the parts add up to with the taxes rounded to cents, plus the skew.
pub fn order_from_bytes(data: &[u8]) -> Option<EcwidOrder> {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let header = next()?;
    let n_items = 1 + usize::from(header % 5);
    let inclusive = header & 0x80 != 0;
    let rates = [0u32, 10, 20, 5, 12, 7, 10, 20];
    let cents = |hi: u8, lo: u8| Decimal::new(i64::from(u16::from_be_bytes([hi, lo])), 2);
    let tax_of = |amount: Decimal, rate: u32| -> Decimal {
        let r = Decimal::new(i64::from(rate), 2);
        if inclusive {
            (amount - amount / (Decimal::ONE + r)).round_dp(2)
        } else {
            (amount * r).round_dp(2)
        }
    };
    let mut items = Vec::new();
    let mut worth = Decimal::ZERO;
    for _ in 0..n_items {
        let (s, q, p1, p2, r, d1, d2, flags) = (
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
        );
        let sku = match s % 16 {
            12 => "  ".to_string(),
            13 => "NOT-LINKED".to_string(),
            14 => String::new(),
            i => LINKED_SKUS[usize::from(i) % LINKED_SKUS.len()].to_string(),
        };
        let qty = Decimal::from(q % 12);
        let price = cents(p1, p2);
        let rate = rates[usize::from(r % 8)];
        let discount = cents(d1, d2).min(price * qty);
        let amount = price * qty - discount;
        let tax = if rate == 0 {
            Decimal::ZERO
        } else {
            tax_of(amount, rate)
        };
        worth += if inclusive { amount } else { amount + tax };
        let mut item = serde_json::json!({
            "sku": sku, "quantity": qty, "price": price.to_string(), "tax": tax.to_string(),
            "couponAmount": if flags & 1 != 0 { discount.to_string() } else { "0".into() },
            "discounts": if flags & 1 == 0 && !discount.is_zero() {
                serde_json::json!([{"total": discount.to_string()}])
            } else {
                serde_json::json!([])
            },
            "taxes": if rate == 0 { serde_json::json!([]) } else {
                serde_json::json!([{"name": format!("{rate}%"), "value": rate,
                    "total": tax.to_string(), "includeInPrice": inclusive}])
            },
        });
        if flags & 2 != 0 {
            item["selectedOptions"] = serde_json::json!([{"name": "Size", "value": "M"}]);
        }
        items.push(item);
    }
    let mut order = serde_json::json!({
        "id": format!("FZ{header}"), "paymentStatus": "PAID", "pricesIncludeTax": inclusive,
        "email": "fuzz@example.com", "createTimestamp": 1_767_250_800, "items": items,
    });
    let (s1, s2, sr) = (
        next().unwrap_or(0),
        next().unwrap_or(0),
        next().unwrap_or(0),
    );
    if s1 != 0 || s2 != 0 {
        let rate = rates[usize::from(sr % 8)];
        let ship = cents(s1, s2);
        let tax = if rate == 0 {
            Decimal::ZERO
        } else {
            tax_of(ship, rate)
        };
        worth += if inclusive { ship } else { ship + tax };
        order["shippingOption"] = serde_json::json!({
            "shippingMethodName": "Post", "shippingRate": ship.to_string(),
            "isPickup": sr & 0x80 != 0,
        });
        if rate != 0 {
            order["taxesOnShipping"] = serde_json::json!([{"name": format!("{rate}%"),
                "value": rate, "total": tax.to_string()}]);
        }
    }
    let (g1, g2) = (next().unwrap_or(0), next().unwrap_or(0));
    let gift = cents(g1, g2).min(worth.max(Decimal::ZERO));
    let skew = Decimal::new(i64::from(next().unwrap_or(0) as i8 % 3), 2);
    order["giftCardRedemption"] = serde_json::json!(gift.to_string());
    order["total"] = serde_json::json!((worth - gift + skew).to_string());
    serde_json::from_value(order).ok()
}

/// Maps any order and checks the money invariants of a sale it returns. True when the
/// order became a sale (false: parked).
pub fn check_order(order: &EcwidOrder) -> bool {
    let connection = connection();
    let setup = sale_setup();
    let products = linked_products();
    let ctx = MappingContext {
        connection: &connection,
        setup: &setup,
        products: &products,
        paid_at: DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time"),
        customer_id: Some("cust-1".into()),
    };
    let _ = order.is_paid();
    let _ = ledger_lines(order);
    let key = OrderKey::new(STORE_ID, order.id.clone());
    let Ok(sale) = map_order_to_sale(order, &key, &ctx) else {
        return false;
    };
    let worth = order.total + order.gift_card_redemption;
    assert_eq!(sale.total(), worth, "the sale is not worth the order");
    assert_eq!(
        sale.payments_total(),
        worth,
        "the payments are not the order"
    );
    let main: Decimal = sale
        .register_sale_payments
        .iter()
        .filter(|p| p.retailer_payment_type_id == "pay")
        .map(|p| p.amount)
        .sum();
    assert_eq!(
        main, order.total,
        "the main payment is not the order's total"
    );
    assert!(!sale.register_sale_products.is_empty());
    for l in &sale.register_sale_products {
        assert!(l.quantity > Decimal::ZERO, "{l:?}");
        assert!(l.quantity.fract().is_zero(), "{l:?}");
        assert!(l.price >= Decimal::ZERO && l.tax >= Decimal::ZERO, "{l:?}");
        assert!(l.discount >= Decimal::ZERO, "{l:?}");
        assert!(l.price.scale() <= 2 && l.tax.scale() <= 2, "{l:?}");
        assert!(
            products.values().any(|p| *p == l.product_id)
                || l.product_id == "p-ship"
                || l.product_id == "p-fees",
            "{l:?}"
        );
        assert!(
            l.tax_id == setup.no_tax_group_id || setup.taxes.iter().any(|t| t.id == l.tax_id),
            "{l:?}"
        );
    }
    for p in &sale.register_sale_payments {
        assert!(p.amount >= Decimal::ZERO, "{p:?}");
    }
    true
}

/// The order-mapping harness: [`order_input`] then [`check_order`]. True when the input
/// became a sale.
pub fn order_mapping(data: &[u8]) -> bool {
    order_input(data).is_some_and(|order| check_order(&order))
}
