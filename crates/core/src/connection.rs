//! A connection joins one Ecwid store to one Lightspeed retailer and register.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret string (token, client secret). It serialises as-is, for storage, but never shows
/// in `Debug` or `Display`, so it cannot leak through a log line by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value, for the one place that needs it (an `Authorization` header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The Lightspeed side of a connection: which retailer, and how to authenticate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightspeedAccount {
    /// `{domain_prefix}.retail.lightspeed.app`.
    pub domain_prefix: String,
    pub access_token: Secret,
    /// Absent for a personal token. OAuth refresh tokens rotate: the old one dies when a new
    /// one is issued, so the pair is stored with a version-conditioned write.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// When the access token expires; `None` when unknown (a personal token, or a token
    /// endpoint that did not say): then only a 401 triggers a refresh.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Set while one worker refreshes the pair: the others wait for its result instead of
    /// spending the refresh token a second time (see `crate::auth`). A crashed refresher's
    /// lease simply runs out.
    #[serde(default)]
    pub refresh_lease_until: Option<DateTime<Utc>>,
}

/// Per-connection switches. Both are on by default (rules O5 and S4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// "Post Ecwid Sales to Lightspeed Retail" (O5).
    #[serde(default = "default_true")]
    pub post_sales: bool,
    /// "Update Ecwid with inventory changes from Lightspeed Retail" (S4).
    #[serde(default = "default_true")]
    pub sync_inventory: bool,
}

fn default_true() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            post_sales: true,
            sync_inventory: true,
        }
    }
}

/// One Ecwid store linked to one Lightspeed register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub store_id: u64,
    /// Ecwid's per-store `secret_...` token. It does not expire.
    pub ecwid_token: Secret,
    pub lightspeed: LightspeedAccount,
    /// The register sales are posted to; stock leaves its outlet (S3).
    pub register_id: String,
    /// The outlet `register_id` belongs to; the inventory mirror reads stock there (S3).
    pub outlet_id: String,
    pub user_id: String,
    /// `retailer_payment_type_id` of the payment that settles each sale.
    pub payment_type_id: String,
    /// Lightspeed product for shipping lines.
    #[serde(default)]
    pub shipping_product_id: Option<String>,
    /// The retailer's discount product (kept for reference; discounts are posted per line).
    #[serde(default)]
    pub discount_product_id: Option<String>,
    /// Lightspeed product for handling fees and custom surcharges; falls back to the
    /// shipping product when unset.
    #[serde(default)]
    pub fees_product_id: Option<String>,
    /// `retailer_payment_type_id` for the part of an order paid with an Ecwid gift card.
    #[serde(default)]
    pub gift_card_payment_type_id: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    /// Optimistic-concurrency version of the stored item; 0 before the first write.
    #[serde(default)]
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("secret_abc");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "secret_abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"secret_abc\"");
    }

    #[test]
    fn settings_default_on_when_absent() {
        let s: Settings = serde_json::from_str("{}").unwrap();
        assert!(s.post_sales && s.sync_inventory);
    }
}
