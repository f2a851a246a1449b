//! The money of returns (R2, R3): pure functions from the posted sale, as Lightspeed reports
//! it, and an amount to pay back, to the body that is sent. Every body reconciles to the
//! minor unit: its lines sum to minus the amount, and so do its payments.
//!
//! - A **restock** return (referenced) returns every line of the sale at its quantity. When
//!   less money is paid back than the lines are worth (money-only refunds came before), the
//!   amount is spread over the lines in proportion to their value and each unit's price is
//!   lowered; a line whose share does not divide by its quantity is split in two (units at
//!   one price, and the rest one minor unit dearer), so the sum is exact.
//! - A **money-only** return (unreferenced) has one line per tax of the sale on the refund
//!   product, quantity −1, the amount split in proportion to those taxes' totals.
//!
//! In both, the amount is paid back to the sale's own payment types in proportion to what
//! each paid; every remainder unit goes to the largest share.

use crate::ledger::{EditUnits, Reason, ReasonCode};
use crate::lightspeed::{LsSale, LsSaleLine, STATUS_CLOSED, SaleDraft, SaleLine, SalePayment};
use rust_decimal::{Decimal, RoundingStrategy};

/// What every return body carries besides its lines.
#[derive(Debug, Clone)]
pub struct ReturnHeader<'a> {
    pub register_id: &'a str,
    pub user_id: &'a str,
    pub customer_id: Option<String>,
    /// RFC 3339, as sales are dated.
    pub date: String,
    pub invoice_number: String,
    /// Names the Ecwid order.
    pub note: String,
    /// Decimals of the currency's minor unit.
    pub scale: u32,
    /// What earlier returns paid back, per payment type (positive amounts).
    pub refunded_by_type: Vec<(String, Decimal)>,
}

impl ReturnHeader<'_> {
    /// A closed sale body with this header's register, user, date, note and invoice number.
    fn draft(&self, lines: Vec<SaleLine>, payments: Vec<SalePayment>) -> SaleDraft {
        SaleDraft {
            register_id: self.register_id.to_string(),
            user_id: self.user_id.to_string(),
            customer_id: self.customer_id.clone(),
            sale_date: self.date.clone(),
            status: STATUS_CLOSED.into(),
            note: self.note.clone(),
            invoice_number: self.invoice_number.clone(),
            source: "ecwid".into(),
            source_id: self.invoice_number.clone(),
            return_for: None,
            register_sale_products: lines,
            register_sale_payments: payments,
        }
    }
}

/// A referenced return of every line of `original`, paying back `amount` (positive).
pub fn restock_return(
    original: &LsSale,
    amount: Decimal,
    head: &ReturnHeader<'_>,
) -> Result<SaleDraft, Reason> {
    let sold: Vec<&LsSaleLine> = original
        .lines
        .iter()
        .filter(|l| l.quantity > Decimal::ZERO)
        .collect();
    let worth: Decimal = sold.iter().map(|l| l.total()).sum();
    if sold.is_empty() {
        return Err(park(format!(
            "Lightspeed sale {} has no lines to return",
            original.id
        )));
    }
    if amount > worth {
        return Err(park(format!(
            "the refund {amount} is more than the sale's lines are worth ({worth})"
        )));
    }
    let unit = minor(head.scale);
    let shares = if amount == worth {
        sold.iter().map(|l| l.total()).collect()
    } else {
        allocate(
            amount,
            &sold.iter().map(|l| l.total()).collect::<Vec<_>>(),
            unit,
        )
    };
    let mut lines = Vec::new();
    for (line, share) in sold.iter().zip(shares) {
        if share == line.total() {
            lines.push(returned(line, line.quantity, line.price, line.tax));
            continue;
        }
        if line.quantity.fract() != Decimal::ZERO {
            return Err(park(format!(
                "a line of product {} has a fractional quantity {}; its refund cannot be spread exactly",
                line.product_id, line.quantity
            )));
        }
        // `share` over `quantity` units: `low` each, `extra` units one minor unit dearer.
        let units = line.quantity;
        let low = (share / units).round_dp_with_strategy(head.scale, RoundingStrategy::ToZero);
        let extra = ((share - low * units) / unit).round();
        for (qty, gross) in [(units - extra, low), (extra, low + unit)] {
            if qty > Decimal::ZERO {
                let (price, tax) = split_gross(gross, line, head.scale);
                lines.push(returned(line, qty, price, tax));
            }
        }
    }
    finish(original, amount, lines, head)
}

/// An unreferenced return of `amount` (positive) on `refund_product_id`: one line per tax.
pub fn money_only_return(
    original: &LsSale,
    amount: Decimal,
    refund_product_id: &str,
    head: &ReturnHeader<'_>,
) -> Result<SaleDraft, Reason> {
    // The sale's taxes, in the order they first appear, with their totals.
    let mut groups: Vec<(Option<String>, Decimal, Decimal)> = Vec::new();
    for l in original.lines.iter().filter(|l| l.quantity > Decimal::ZERO) {
        let (price, tax) = (l.quantity * l.price, l.quantity * l.tax);
        match groups.iter_mut().find(|g| g.0 == l.tax_id) {
            Some(g) => {
                g.1 += price;
                g.2 += tax;
            }
            None => groups.push((l.tax_id.clone(), price, tax)),
        }
    }
    groups.retain(|g| !(g.1 + g.2).is_zero());
    if groups.is_empty() {
        return Err(park(format!(
            "Lightspeed sale {} has no value to refund against",
            original.id
        )));
    }
    let weights: Vec<Decimal> = groups.iter().map(|g| g.1 + g.2).collect();
    let shares = allocate_rest_on_largest(amount, &weights, minor(head.scale));
    let mut lines = Vec::new();
    for ((tax_id, price, tax), share) in groups.into_iter().zip(shares) {
        if share.is_zero() {
            continue;
        }
        let tax_part = if (price + tax).is_zero() {
            Decimal::ZERO
        } else {
            (share * tax / (price + tax)).round_dp(head.scale)
        };
        lines.push(SaleLine {
            product_id: refund_product_id.to_string(),
            quantity: Decimal::NEGATIVE_ONE,
            price: share - tax_part,
            tax: tax_part,
            tax_id: tax_id.unwrap_or_default(),
            discount: Decimal::ZERO,
            price_set: 1,
            status: LINE_STATUS.into(),
            sku: String::new(),
        });
    }
    finish(original, amount, lines, head)
}

/// The unit price and tax the sale charged for `product_id` (its first line of it).
pub fn sold_at<'a>(original: &'a LsSale, product_id: &str) -> Option<&'a LsSaleLine> {
    original
        .lines
        .iter()
        .find(|l| l.product_id == product_id && l.quantity > Decimal::ZERO)
}

/// An edit's return (R7): `units` of the sale's own products back, at the prices sold.
pub fn edit_return(
    original: &LsSale,
    units: &[EditUnits],
    head: &ReturnHeader<'_>,
) -> Result<SaleDraft, Reason> {
    let mut lines = Vec::new();
    for u in units {
        let line = sold_at(original, &u.product_id).ok_or_else(|| {
            park(format!(
                "SKU {} is not on Lightspeed sale {}",
                u.sku, original.id
            ))
        })?;
        lines.push(returned(line, u.quantity, line.price, line.tax));
    }
    let amount = -lines.iter().map(SaleLine::total).sum::<Decimal>();
    finish(original, amount, lines, head)
}

/// An edit's sale (R7): `units` more of the sale's own products, at the prices sold, paid
/// with `payment_type_id`.
pub fn edit_sale(
    original: &LsSale,
    units: &[EditUnits],
    head: &ReturnHeader<'_>,
    payment_type_id: &str,
) -> Result<SaleDraft, Reason> {
    let mut lines = Vec::new();
    for u in units {
        let line = sold_at(original, &u.product_id).ok_or_else(|| {
            park(format!(
                "SKU {} is not on Lightspeed sale {}",
                u.sku, original.id
            ))
        })?;
        let mut sold = returned(line, u.quantity, line.price, line.tax);
        sold.quantity = u.quantity;
        lines.push(sold);
    }
    let amount: Decimal = lines.iter().map(SaleLine::total).sum();
    Ok(head.draft(
        lines,
        vec![SalePayment {
            register_id: head.register_id.to_string(),
            retailer_payment_type_id: payment_type_id.to_string(),
            payment_date: head.date.clone(),
            amount,
        }],
    ))
}

/// The return's payments and body; checks that it reconciles.
fn finish(
    original: &LsSale,
    amount: Decimal,
    lines: Vec<SaleLine>,
    head: &ReturnHeader<'_>,
) -> Result<SaleDraft, Reason> {
    let paid: Vec<_> = original
        .payments
        .iter()
        .filter(|p| p.amount > Decimal::ZERO)
        .collect();
    if paid.is_empty() {
        return Err(park(format!(
            "Lightspeed sale {} has no payment to refund to",
            original.id
        )));
    }
    // Paid back in the sale's payment order (the order's own payment type first, a gift
    // card last: Ecwid's refunds are of what was charged), each up to what it paid minus
    // what earlier returns gave back to it.
    let mut left = amount;
    let mut shares = Vec::new();
    for p in &paid {
        let before: Decimal = head
            .refunded_by_type
            .iter()
            .filter(|(t, _)| *t == p.retailer_payment_type_id)
            .map(|(_, a)| *a)
            .sum();
        let share = left.min((p.amount - before).max(Decimal::ZERO));
        shares.push(share);
        left -= share;
    }
    if left > Decimal::ZERO {
        return Err(park(format!(
            "the sale's payments cannot take {left} more back (paid {}, returned before {})",
            paid.iter().map(|p| p.amount).sum::<Decimal>(),
            head.refunded_by_type
                .iter()
                .map(|(_, a)| *a)
                .sum::<Decimal>()
        )));
    }
    let payments = paid
        .iter()
        .zip(shares)
        .filter(|(_, s)| !s.is_zero())
        .map(|(p, share)| SalePayment {
            register_id: head.register_id.to_string(),
            retailer_payment_type_id: p.retailer_payment_type_id.clone(),
            payment_date: head.date.clone(),
            amount: -share,
        })
        .collect();
    let sale = head.draft(lines, payments);
    if sale.total() != -amount || sale.payments_total() != -amount {
        return Err(Reason::new(
            ReasonCode::TotalsMismatch,
            format!(
                "the return's lines sum to {} and its payments to {}, not -{amount}",
                sale.total(),
                sale.payments_total()
            ),
        ));
    }
    Ok(sale)
}

/// `line` returned: `qty` units (positive) at `price` + `tax` each.
fn returned(line: &LsSaleLine, qty: Decimal, price: Decimal, tax: Decimal) -> SaleLine {
    SaleLine {
        product_id: line.product_id.clone(),
        quantity: -qty,
        price,
        tax,
        tax_id: line.tax_id.clone().unwrap_or_default(),
        discount: Decimal::ZERO,
        price_set: 1,
        status: LINE_STATUS.into(),
        sku: String::new(),
    }
}

/// A unit's gross amount split into price and tax at the line's own rate.
fn split_gross(gross: Decimal, line: &LsSaleLine, scale: u32) -> (Decimal, Decimal) {
    let unit = line.price + line.tax;
    if unit.is_zero() {
        return (gross, Decimal::ZERO);
    }
    let tax = (gross * line.tax / unit).round_dp(scale);
    (gross - tax, tax)
}

/// `amount` spread over `weights` in proportion, in whole `unit`s (largest remainder): each
/// share is its proportional part rounded down, and the units left go one each to the
/// largest remainders (the larger weight first among equals). A share never exceeds its
/// proportional part by a unit, so when `amount` is at most the weights' sum, no share
/// exceeds its weight (for weights in whole units).
pub fn allocate(amount: Decimal, weights: &[Decimal], unit: Decimal) -> Vec<Decimal> {
    let total: Decimal = weights.iter().sum();
    if total.is_zero() || weights.is_empty() {
        let mut out = vec![Decimal::ZERO; weights.len()];
        if let Some(first) = out.first_mut() {
            *first = amount;
        }
        return out;
    }
    let exact: Vec<Decimal> = weights.iter().map(|w| amount * w / total / unit).collect();
    let mut out: Vec<Decimal> = exact.iter().map(|e| e.floor() * unit).collect();
    let mut left = ((amount - out.iter().sum::<Decimal>()) / unit).round();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .cmp(&(exact[a] - exact[a].floor()))
            .then(weights[b].cmp(&weights[a]))
            .then(a.cmp(&b))
    });
    for i in order.iter().cycle() {
        if left <= Decimal::ZERO {
            break;
        }
        out[*i] += unit;
        left -= Decimal::ONE;
    }
    out
}

/// The status of every line, as the sale mapping sends it.
const LINE_STATUS: &str = "CONFIRMED";

/// `amount` spread over `weights` in proportion, each share rounded down to whole `unit`s,
/// and what rounding leaves on the largest weight (R3's rule for money-only lines).
fn allocate_rest_on_largest(amount: Decimal, weights: &[Decimal], unit: Decimal) -> Vec<Decimal> {
    let total: Decimal = weights.iter().sum();
    if total.is_zero() {
        return allocate(amount, weights, unit);
    }
    let mut out: Vec<Decimal> = weights
        .iter()
        .map(|w| (amount * w / total / unit).floor() * unit)
        .collect();
    let rest = amount - out.iter().sum::<Decimal>();
    let largest = (0..weights.len())
        .rev()
        .max_by(|&a, &b| weights[a].cmp(&weights[b]))
        .unwrap_or(0);
    out[largest] += rest;
    out
}

fn minor(scale: u32) -> Decimal {
    Decimal::new(1, scale)
}

fn park(message: String) -> Reason {
    Reason::new(ReasonCode::RefundNotPostable, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightspeed::LsSalePayment;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn line(product: &str, qty: &str, price: &str, tax: &str, tax_id: &str) -> LsSaleLine {
        LsSaleLine {
            id: None,
            product_id: product.into(),
            quantity: d(qty),
            price: d(price),
            tax: d(tax),
            tax_id: Some(tax_id.into()),
        }
    }

    /// Two mugs at 10.00 + 1.00 tax, a book at 5.00 untaxed, shipping 4.00 + 0.40; paid
    /// 30.00 by card and 0.40 by gift card.
    fn sale() -> LsSale {
        LsSale {
            id: "s1".into(),
            status: "CLOSED".into(),
            invoice_number: Some("ECWID-1-7".into()),
            return_for: None,
            register_id: Some("reg".into()),
            lines: vec![
                line("mug", "2", "10.00", "1.00", "gst"),
                line("book", "1", "5.00", "0", "none"),
                line("ship", "1", "4.00", "0.40", "gst"),
            ],
            payments: vec![
                LsSalePayment {
                    retailer_payment_type_id: "card".into(),
                    amount: d("30.00"),
                },
                LsSalePayment {
                    retailer_payment_type_id: "gift".into(),
                    amount: d("1.40"),
                },
            ],
        }
    }

    fn head() -> ReturnHeader<'static> {
        ReturnHeader {
            register_id: "reg",
            user_id: "user",
            customer_id: None,
            date: "2027-01-15T08:00:00Z".into(),
            invoice_number: "ECWIDR-1-7-1".into(),
            note: "Ecwid order 7: refund".into(),
            scale: 2,
            refunded_by_type: Vec::new(),
        }
    }

    #[test]
    fn a_full_restock_returns_every_line_as_sold_and_pays_each_type_back() {
        let r = restock_return(&sale(), d("31.40"), &head()).unwrap();
        let got: Vec<_> = r
            .register_sale_products
            .iter()
            .map(|l| (l.product_id.as_str(), l.quantity, l.price, l.tax))
            .collect();
        assert_eq!(
            got,
            vec![
                ("mug", d("-2"), d("10.00"), d("1.00")),
                ("book", d("-1"), d("5.00"), d("0")),
                ("ship", d("-1"), d("4.00"), d("0.40")),
            ]
        );
        let pays: Vec<_> = r
            .register_sale_payments
            .iter()
            .map(|p| (p.retailer_payment_type_id.as_str(), p.amount))
            .collect();
        assert_eq!(pays, vec![("card", d("-30.00")), ("gift", d("-1.40"))]);
        assert_eq!(r.total(), d("-31.40"));
    }

    #[test]
    fn a_restock_of_less_than_the_lines_lowers_unit_prices_exactly() {
        // 10.01 over a sale worth 31.40.
        let r = restock_return(&sale(), d("10.01"), &head()).unwrap();
        assert_eq!(r.total(), d("-10.01"));
        assert_eq!(r.payments_total(), d("-10.01"));
        let mugs: Decimal = r
            .register_sale_products
            .iter()
            .filter(|l| l.product_id == "mug")
            .map(|l| l.quantity)
            .sum();
        assert_eq!(mugs, d("-2"), "every unit goes back");
        for l in &r.register_sale_products {
            assert!(l.price >= Decimal::ZERO && l.tax >= Decimal::ZERO, "{l:?}");
            assert_eq!(l.price.scale().max(2), 2);
        }
        // The mug's 11/1 split of price and tax is kept per unit (to the cent).
        let mug = &r.register_sale_products[0];
        assert_eq!(mug.tax, ((mug.price + mug.tax) / d("11")).round_dp(2));
    }

    #[test]
    fn a_restock_worth_more_than_the_sale_is_refused() {
        let e = restock_return(&sale(), d("31.41"), &head()).unwrap_err();
        assert_eq!(e.code, ReasonCode::RefundNotPostable);
    }

    #[test]
    fn money_only_has_one_line_per_tax_in_proportion_with_the_rest_on_the_largest() {
        // Taxed (gst): 22.00 + 4.40 = 26.40; untaxed: 5.00. 10.00 split 26.40 : 5.00.
        let r = money_only_return(&sale(), d("10.00"), "refund", &head()).unwrap();
        let got: Vec<_> = r
            .register_sale_products
            .iter()
            .map(|l| (l.tax_id.as_str(), l.quantity, l.price, l.tax))
            .collect();
        // 10 × 26.40 / 31.40 = 8.407 → 8.40 (+0.01 remainder on the largest) = 8.41;
        // 10 × 5 / 31.40 = 1.592 → 1.59. Tax of 8.41 at 2.40/26.40 = 0.7645 → 0.76.
        assert_eq!(
            got,
            vec![
                ("gst", d("-1"), d("7.65"), d("0.76")),
                ("none", d("-1"), d("1.59"), d("0")),
            ]
        );
        assert!(
            r.register_sale_products
                .iter()
                .all(|l| l.product_id == "refund")
        );
        assert_eq!(r.total(), d("-10.00"));
        let pays: Vec<_> = r.register_sale_payments.iter().map(|p| p.amount).collect();
        // The order's own payment type first.
        assert_eq!(pays, vec![d("-10.00")]);
        assert_eq!(r.invoice_number, "ECWIDR-1-7-1");
        assert_eq!(r.source_id, "ECWIDR-1-7-1");
    }

    #[test]
    fn payments_go_back_in_the_sale_order_up_to_what_each_paid() {
        let mut h = head();
        h.refunded_by_type = vec![("card".into(), d("25.00"))];
        let r = restock_return(&sale(), d("6.40"), &h).unwrap();
        let pays: Vec<_> = r
            .register_sale_payments
            .iter()
            .map(|p| (p.retailer_payment_type_id.as_str(), p.amount))
            .collect();
        assert_eq!(pays, vec![("card", d("-5.00")), ("gift", d("-1.40"))]);
        h.refunded_by_type = vec![("card".into(), d("30")), ("gift".into(), d("1"))];
        let e = money_only_return(&sale(), d("0.41"), "refund", &h).unwrap_err();
        assert_eq!(e.code, ReasonCode::RefundNotPostable);
    }

    #[test]
    fn no_share_exceeds_its_weight() {
        assert_eq!(
            allocate(d("2.99"), &[d("1"), d("1"), d("1")], d("0.01")),
            vec![d("1.00"), d("1.00"), d("0.99")]
        );
        for amount in ["0.01", "1.99", "2.98", "2.99", "3.00"] {
            let shares = allocate(d(amount), &[d("1"), d("1.00"), d("1")], d("0.01"));
            assert!(shares.iter().all(|s| *s <= d("1")), "{amount}: {shares:?}");
            assert_eq!(shares.iter().sum::<Decimal>(), d(amount));
        }
    }

    #[test]
    fn allocation_is_exact_for_awkward_amounts() {
        for amount in ["0.01", "0.03", "1.00", "7.77", "31.39"] {
            let shares = allocate(d(amount), &[d("1"), d("1"), d("1")], d("0.01"));
            assert_eq!(shares.iter().sum::<Decimal>(), d(amount));
            let r = restock_return(&sale(), d(amount), &head()).unwrap();
            assert_eq!(r.total(), -d(amount), "{amount}");
            let m = money_only_return(&sale(), d(amount), "refund", &head()).unwrap();
            assert_eq!(m.total(), -d(amount), "{amount}");
        }
    }
}
