//! Validated identifiers that reach URLs, queries, storage keys and matching: an Ecwid store
//! id and a SKU. A value of these types has been checked once, where it entered; the code
//! that puts it into a path or compares it does not check again.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An Ecwid store id: a positive integer (`/api/v3/{storeId}/...`, the webhook's `storeId`).
/// Zero is refused: it is what a missing or mistyped value becomes, and no store has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct StoreId(u64);

/// Why a store id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not an Ecwid store id: use the number shown in Ecwid's admin under My Profile (a positive integer)"
)]
pub struct InvalidStoreId(pub String);

impl StoreId {
    pub fn new(value: u64) -> Result<Self, InvalidStoreId> {
        if value == 0 {
            Err(InvalidStoreId(value.to_string()))
        } else {
            Ok(Self(value))
        }
    }

    /// A store id written in the source (tests, examples). Checked at compile time in a
    /// `const`; panics on 0 elsewhere.
    pub const fn literal(value: u64) -> Self {
        assert!(value != 0, "a store id is a positive integer");
        Self(value)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for StoreId {
    type Error = InvalidStoreId;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StoreId> for u64 {
    fn from(value: StoreId) -> Self {
        value.0
    }
}

impl std::str::FromStr for StoreId {
    type Err = InvalidStoreId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refused = || InvalidStoreId(s.chars().take(40).collect());
        // Only ASCII digits: `u64::from_str` would also take a leading '+'.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        s.parse::<u64>()
            .map_err(|_| refused())
            .and_then(|v| Self::new(v).map_err(|_| refused()))
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest SKU we accept, in bytes. Neither API documents a limit (ASSUMPTION); this one
/// keeps a storage key (`STORE#{id}/SKU#{sku}`) well under DynamoDB's 1,024-byte sort-key
/// limit, so a link can always be written.
pub const MAX_SKU_BYTES: usize = 512;

/// A product SKU as products are matched by (rule P1): trimmed, not blank, no control
/// characters, at most [`MAX_SKU_BYTES`]. Two SKUs are the same product when their
/// [`Sku::key`]s are equal (case is ignored).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

/// Why a SKU cannot be used to match products.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSku {
    #[error("the SKU is blank")]
    Blank,
    #[error("the SKU contains control characters (a tab or a line break)")]
    ControlCharacters,
    #[error("the SKU is longer than {MAX_SKU_BYTES} bytes")]
    TooLong,
}

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, InvalidSku> {
        let sku = raw.trim();
        if sku.is_empty() {
            Err(InvalidSku::Blank)
        } else if sku.chars().any(char::is_control) {
            Err(InvalidSku::ControlCharacters)
        } else if sku.len() > MAX_SKU_BYTES {
            Err(InvalidSku::TooLong)
        } else {
            Ok(Self(sku.to_string()))
        }
    }

    /// The SKU as the merchant wrote it, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key SKUs are compared and indexed by: lower-cased.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The key of a raw SKU field, as products are indexed by; `None` for a SKU that can
    /// match nothing (blank, or not a valid [`Sku`]).
    pub fn key_of(raw: &str) -> Option<String> {
        Sku::parse(raw).ok().map(|s| s.key())
    }

    /// Whether a product's raw SKU field names this SKU (trimmed, case ignored). A blank or
    /// absent field matches nothing.
    pub fn matches(&self, other: Option<&str>) -> bool {
        other
            .and_then(|o| Sku::parse(o).ok())
            .is_some_and(|o| o.key() == self.key())
    }
}

impl TryFrom<String> for Sku {
    type Error = InvalidSku;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Sku> for String {
    fn from(value: Sku) -> Self {
        value.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_are_positive_integers() {
        assert_eq!("1003".parse::<StoreId>().unwrap().get(), 1003);
        for bad in ["0", "", "-1", "+5", "12a", " 7", "18446744073709551616"] {
            let err = bad.parse::<StoreId>().unwrap_err();
            assert!(err.to_string().contains("Ecwid store id"), "{bad}: {err}");
        }
        assert!(StoreId::new(0).is_err());
        assert!(serde_json::from_str::<StoreId>("0").is_err());
        assert_eq!(
            serde_json::to_string(&serde_json::from_str::<StoreId>("42").unwrap()).unwrap(),
            "42"
        );
    }

    #[test]
    fn skus_are_trimmed_and_compared_without_case() {
        let sku = Sku::parse("  Mug-001 ").unwrap();
        assert_eq!(sku.as_str(), "Mug-001");
        assert_eq!(sku.key(), "mug-001");
        assert!(sku.matches(Some(" MUG-001")));
        assert!(Sku::parse("MÜG").unwrap().matches(Some("müg")));
        assert!(!sku.matches(Some("Mug-0011")));
        assert!(!sku.matches(None));
        assert!(!sku.matches(Some("  ")));
        assert_eq!(Sku::key_of("  Mug-001 "), Some("mug-001".into()));
        assert_eq!(Sku::key_of("   "), None);
        assert_eq!(Sku::key_of("a\tb"), None);
    }

    #[test]
    fn unusable_skus_are_refused() {
        assert_eq!(Sku::parse("   "), Err(InvalidSku::Blank));
        assert_eq!(Sku::parse(""), Err(InvalidSku::Blank));
        assert_eq!(Sku::parse("A\tB"), Err(InvalidSku::ControlCharacters));
        assert_eq!(Sku::parse("A\nB"), Err(InvalidSku::ControlCharacters));
        assert_eq!(Sku::parse(&"x".repeat(513)), Err(InvalidSku::TooLong));
        assert!(Sku::parse(&"x".repeat(512)).is_ok());
        assert!(serde_json::from_str::<Sku>("\" \"").is_err());
        // Characters that matter in URLs and keys are fine: they are encoded where used.
        assert!(Sku::parse("A/B?c=d#e&f").is_ok());
    }
}
