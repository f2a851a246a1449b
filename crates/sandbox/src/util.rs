//! Small helpers: exact money <-> JSON, dates, ids.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Render a decimal as a JSON number.
///
/// Arithmetic is always done on `Decimal`. `serde_json::Number` can only hold an integer or an
/// `f64`, so a fractional amount is written through its shortest round-trip `f64` form, whose
/// text is exactly the decimal's digits (money here has at most a handful of decimals).
pub fn dec_json(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    let text = d.to_string();
    match text
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => Value::Number(n),
        None => Value::String(text),
    }
}

/// Parse a decimal from its text (plain or scientific notation).
pub fn parse_dec(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str_exact(s)
        .or_else(|_| Decimal::from_str(s))
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// A JSON number or numeric string as a decimal (never via an f64 value: the number's text is
/// parsed).
pub fn json_dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => parse_dec(&n.to_string()),
        Value::String(s) => parse_dec(s),
        _ => None,
    }
}

/// Round to cents, half away from zero ("half-up" for positive amounts).
pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Round to `dp` decimals, half away from zero.
pub fn round_dp(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// `2024-09-04 07:22:09 +0000`, Ecwid's date format.
pub fn ecwid_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000").to_string()
}

/// `2024-09-04T07:22:09+00:00`, Lightspeed 2.0's date format.
pub fn ls_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// `2024-09-04 07:22:09`, the register_sales (0.9) date format (UTC).
pub fn ls09_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Parse an RFC 3339 date or `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn parse_ls_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    None
}

/// Parse an Ecwid search date: unix seconds, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` with an
/// optional ` +0000` offset.
pub fn parse_ecwid_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.timestamp());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc().timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    None
}

/// The wall-clock time `d` from now, rounded UP to a whole second, as an RFC 1123 HTTP date.
/// Rounding up means a client that waits until that date is never early.
pub fn http_date_after(d: Duration) -> String {
    let t = SystemTime::now() + d;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whole seconds, rounded up, at least 1.
pub fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// A fresh random UUID (v4) as a string.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A deterministic UUID for seed objects, so that the demo store's ids are stable across runs.
pub fn seed_uuid(n: u128) -> String {
    uuid::Uuid::from_u128(0x5a4d_b0c5_0000_4000_8000_0000_0000_0000 | n).to_string()
}

/// `n` random characters from `alphabet`.
pub fn random_code(alphabet: &[u8], n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() == n {
                break;
            }
            out.push(alphabet[*b as usize % alphabet.len()] as char);
        }
    }
    out
}

/// Serde helpers: a `Duration` as whole milliseconds.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Serde helpers: a `Decimal` written as a JSON number, read from a number or numeric string.
pub mod dec_serde {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        super::dec_json(*d).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        super::json_dec(&v).ok_or_else(|| serde::de::Error::custom(format!("not a number: {v}")))
    }
}

/// Serde helpers: an optional `Decimal` (null = none), as [`dec_serde`].
pub mod dec_serde_opt {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        d.map(super::dec_json).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        super::json_dec(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a number: {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_round_trips_exactly() {
        for s in ["9.09", "0.91", "25.3", "9.09091", "-3.3", "13.00000", "0"] {
            let d = parse_dec(s).unwrap();
            let v = dec_json(d);
            assert_eq!(json_dec(&v).unwrap(), d.normalize(), "{s}");
        }
        assert_eq!(json_dec(&Value::from("13.00000")), Some(Decimal::from(13)));
        assert_eq!(dec_json(Decimal::from(13)), Value::from(13));
    }

    #[test]
    fn half_up_rounding() {
        assert_eq!(
            round2(parse_dec("0.905").unwrap()),
            parse_dec("0.91").unwrap()
        );
        assert_eq!(
            round2(parse_dec("2.72727").unwrap()),
            parse_dec("2.73").unwrap()
        );
    }
}
