//! Reading money from JSON exactly. Ecwid sends JSON numbers; Lightspeed's older payloads
//! send numeric strings (`"13.00000"`). Both become exact [`Decimal`]s, never f64 values.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

/// A decimal from a JSON number, a numeric string, or null/absent (zero).
pub fn decimal_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Ok(Option::<DecimalValue>::deserialize(d)?
        .map(|v| v.0)
        .unwrap_or_default())
}

/// An optional decimal from a JSON number or numeric string.
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<DecimalValue>::deserialize(d)?.map(|v| v.0))
}

/// A decimal that accepts a JSON number or a numeric string.
#[derive(Debug, Clone, Copy)]
struct DecimalValue(Decimal);

impl<'de> Deserialize<'de> for DecimalValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }
}

struct DecimalVisitor;

impl serde::de::Visitor<'_> for DecimalVisitor {
    type Value = DecimalValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a decimal number or numeric string")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(DecimalValue(Decimal::from(v)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(DecimalValue(Decimal::from(v)))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Rust prints an f64 in its shortest round-trip form, which is the decimal text the
        // JSON carried (for any value with at most 15 significant digits, money included).
        parse_decimal(&v.to_string()).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_decimal(v.trim()).map_err(E::custom)
    }
}

fn parse_decimal(s: &str) -> Result<DecimalValue, String> {
    use std::str::FromStr;
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map(DecimalValue)
        .map_err(|e| format!("'{s}' is not a decimal number: {e}"))
}
