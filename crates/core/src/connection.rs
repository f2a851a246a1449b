//! A connection joins one Ecwid store to one Lightspeed retailer and register.

use crate::ids::StoreId;
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

/// A Lightspeed retailer's domain prefix: the `{prefix}` of
/// `https://{prefix}.retail.lightspeed.app`. It becomes part of the host our bearer tokens are
/// sent to, so only a DNS label is accepted (`^[a-z0-9-]+$`, 1 to 63 characters, no leading
/// or trailing hyphen): a crafted value (`evil.com/x?`, `a@evil.com`, `shop.evil`) cannot
/// change the host. Stored connections are checked again when read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainPrefix(String);

/// Why a domain prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a Lightspeed domain prefix: use the part before .retail.lightspeed.app (lower-case letters, digits and hyphens)"
)]
pub struct InvalidDomainPrefix(pub String);

impl DomainPrefix {
    pub fn parse(value: &str) -> Result<Self, InvalidDomainPrefix> {
        let ok = (1..=63).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if ok {
            Ok(Self(value.to_string()))
        } else {
            Err(InvalidDomainPrefix(value.chars().take(80).collect()))
        }
    }

    /// What a merchant may type or paste: `MyShop`, `myshop.retail.lightspeed.app` or
    /// `https://myshop.retail.lightspeed.app/`. Trimmed and lower-cased, the scheme, path
    /// and Lightspeed's host suffix dropped; what is left must be a valid prefix.
    pub fn from_input(input: &str) -> Result<Self, InvalidDomainPrefix> {
        let lower = input.trim().to_ascii_lowercase();
        let no_scheme = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .unwrap_or(&lower);
        let host = no_scheme.split('/').next().unwrap_or_default();
        let prefix = host
            .strip_suffix(".retail.lightspeed.app")
            .or_else(|| host.strip_suffix(".vendhq.com"))
            .unwrap_or(host);
        Self::parse(prefix).map_err(|_| InvalidDomainPrefix(input.chars().take(80).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DomainPrefix {
    type Error = InvalidDomainPrefix;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DomainPrefix> for String {
    fn from(value: DomainPrefix) -> Self {
        value.0
    }
}

impl std::str::FromStr for DomainPrefix {
    type Err = InvalidDomainPrefix;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DomainPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Lightspeed side of a connection: which retailer, and how to authenticate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightspeedAccount {
    /// `{domain_prefix}.retail.lightspeed.app`.
    pub domain_prefix: DomainPrefix,
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
    /// "Post Ecwid refunds to Lightspeed" (R5): refunds and cancellations of posted orders
    /// become Lightspeed returns. Off: they are recorded as skipped, replayable.
    #[serde(default = "default_true")]
    pub post_refunds: bool,
    /// "Restock refunded items" (R2): a full refund is a referenced return that puts the
    /// items back at the register's outlet. Off: a money-only return (R3). A cancellation
    /// always restocks (Ecwid restocks a cancelled order itself).
    #[serde(default = "default_true")]
    pub restock_refunds: bool,
    /// The Lightspeed API generation this store speaks, overriding the deployment's
    /// `LIGHTSPEED_API_VERSION`; `None`: the deployment's.
    /// A stored name this release does not know (written by a newer one, before a rollback)
    /// reads as `None`, so the connection still loads.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_version"
    )]
    pub lightspeed_api_version: Option<crate::lightspeed::LsApiVersion>,
}

fn lenient_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::lightspeed::LsApiVersion>, D::Error> {
    let name: Option<String> = Option::deserialize(d)?;
    Ok(name.and_then(|n| match crate::lightspeed::LsApiVersion::parse(&n) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "stored Lightspeed API version ignored; the deployment's is used");
            None
        }
    }))
}

fn default_true() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            post_sales: true,
            sync_inventory: true,
            post_refunds: true,
            restock_refunds: true,
            lightspeed_api_version: None,
        }
    }
}

/// One Ecwid store linked to one Lightspeed register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub store_id: StoreId,
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
    /// Lightspeed product for money-only refunds (R3): it must not track stock. Unset: such
    /// refunds park asking for it (`els settings --refund-product SKU`).
    #[serde(default)]
    pub refund_product_id: Option<String>,
    /// `retailer_payment_type_id` for the part of an order paid with an Ecwid gift card.
    #[serde(default)]
    pub gift_card_payment_type_id: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    /// Only orders created at or after this moment are posted (`els connect` sets it to the
    /// moment of connecting), so a store's history, perhaps posted by another connector
    /// before, is never posted again. `None` (connections saved before it existed): no limit.
    #[serde(default)]
    pub go_live_at: Option<DateTime<Utc>>,
    /// Set by `els restore-check` after the state was restored from a backup: an order
    /// created before this moment may have been posted after the backup was taken, so its
    /// first attempt searches Lightspeed by invoice number before posting (and adopts what it
    /// finds). `None`: never restored.
    #[serde(default)]
    pub restored_at: Option<DateTime<Utc>>,
    /// The Lightspeed webhooks `els connect --public-url` registered for this store (stock
    /// moves in seconds instead of on the minute): the SHA-256 of their URL's secret and
    /// their ids. `None`: none registered; the schedule alone mirrors stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightspeed_webhooks: Option<crate::ls_webhooks::LsWebhooks>,
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
    fn only_a_dns_label_is_a_domain_prefix() {
        for good in ["shop", "my-shop-2", "a", &"x".repeat(63)] {
            assert_eq!(DomainPrefix::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "evil.com/x?",
            "a@evil.com",
            "shop.evil",
            "evil.com#",
            "Shop",
            "-shop",
            "shop-",
            "sh op",
            "shop\n",
            "%2e",
            &"x".repeat(64),
        ] {
            assert!(DomainPrefix::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for (typed, prefix) in [
            (" MyShop ", "myshop"),
            ("myshop.retail.lightspeed.app", "myshop"),
            ("https://myshop.retail.lightspeed.app/", "myshop"),
            ("https://myshop.vendhq.com", "myshop"),
        ] {
            assert_eq!(DomainPrefix::from_input(typed).unwrap().as_str(), prefix);
        }
        for crafted in [
            "evil.com/x?",
            "https://evil.com/.retail.lightspeed.app",
            "myshop.retail.lightspeed.app.evil.com",
            "a@evil.com.retail.lightspeed.app",
        ] {
            assert!(DomainPrefix::from_input(crafted).is_err(), "{crafted:?}");
        }
        // A stored connection with a crafted prefix does not load.
        let stored = r#"{"domain_prefix": "evil.com/x?", "access_token": "t"}"#;
        let err = serde_json::from_str::<LightspeedAccount>(stored).unwrap_err();
        assert!(
            err.to_string().contains("not a Lightspeed domain prefix"),
            "{err}"
        );
        let ok: LightspeedAccount =
            serde_json::from_str(r#"{"domain_prefix": "shop", "access_token": "t"}"#).unwrap();
        assert_eq!(ok.domain_prefix.as_str(), "shop");
        assert_eq!(
            serde_json::to_value(&ok).unwrap()["domain_prefix"],
            serde_json::json!("shop")
        );
    }

    #[test]
    fn settings_default_on_when_absent() {
        let s: Settings = serde_json::from_str("{}").unwrap();
        assert!(s.post_sales && s.sync_inventory);
        assert_eq!(s.lightspeed_api_version, None);
        let s: Settings = serde_json::from_str(r#"{"lightspeed_api_version": "legacy"}"#).unwrap();
        assert_eq!(
            s.lightspeed_api_version,
            Some(crate::lightspeed::LsApiVersion::Legacy)
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap()["lightspeed_api_version"],
            "legacy"
        );
        // A version from a newer release does not stop the connection from loading.
        let s: Settings = serde_json::from_str(r#"{"lightspeed_api_version": "2099-01"}"#).unwrap();
        assert_eq!(s.lightspeed_api_version, None);
    }
}
