//! Sandbox configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::duration_ms;

/// How the sandbox's fake Ecwid store and Lightspeed retailer behave.
///
/// Durations are (de)serialized as whole milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// The Ecwid store id in `/api/v3/{storeId}` (default 1003, the store of Ecwid's examples).
    pub ecwid_store_id: u64,
    /// The Ecwid secret token expected in `Authorization: Bearer ...`.
    pub ecwid_token: String,
    /// The Ecwid app's client_secret: the key of the webhook signatures.
    pub webhook_client_secret: String,
    /// The Lightspeed retailer's domain prefix in `/lightspeed/{prefix}`.
    pub ls_domain_prefix: String,
    /// The Lightspeed token expected in `Authorization: Bearer ...`.
    pub ls_token: String,
    /// Lightspeed requests allowed per window (default 350 = 300 x 1 register + 50).
    pub ls_rate_limit: u32,
    /// Lightspeed's rate-limit window (default 300 s; tests scale it down).
    #[serde(with = "duration_ms")]
    pub ls_rate_window: Duration,
    /// Ecwid requests allowed per window (default 600).
    pub ecwid_rate_limit: u32,
    /// Ecwid's rate-limit window (default 60 s).
    #[serde(with = "duration_ms")]
    pub ecwid_rate_window: Duration,
    /// How long a new Lightspeed sale takes to show up in `/api/2.0/search` (default 0: at
    /// once). The real search is an index that may lag; set this to model it.
    #[serde(with = "duration_ms")]
    pub ls_search_lag: Duration,
    /// Seed the demo catalog (products, stock, a customer). The retailer's fixed setup
    /// (outlets, registers, user, payment types, taxes, discount product) always exists.
    pub seed_demo: bool,
    /// ASSUMPTION, off by default: also send `X-RateLimit-Reset` (an RFC 1123 date) on
    /// Lightspeed responses. Lightspeed documents only `X-RateLimit-Limit`,
    /// `X-RateLimit-Remaining` and, on a 429, `Retry-After` (README, "The sandbox").
    pub ls_rate_limit_reset_header: bool,
    /// ASSUMPTION (Ecwid leaves it open, README "The sandbox"): a taxed handling fee's tax is
    /// also inside each item's `taxes[].taxOnShipping` and in `taxesOnShipping` (true, the
    /// default, Ecwid's documented formula), or only in `handlingFee.taxes` (false).
    pub handling_fee_tax_in_items: bool,
    /// The currency of the store and the retailer (ISO 4217, default "USD"): Ecwid's
    /// `/profile` `formatsAndUnits.currency` (unless [`Self::ecwid_currency`] is set) and
    /// Lightspeed's retailer and outlet `currency`.
    pub currency: String,
    /// A test option: a store whose Ecwid currency differs from the retailer's (real pairs can
    /// differ, which connect refuses). Ecwid's `/profile` `formatsAndUnits.currency` (and its
    /// `currencyPrecision`) then say this one; `None` (the default) = [`Self::currency`].
    pub ecwid_currency: Option<String>,
    /// ASSUMPTION (undocumented, `tests/fixtures/lightspeed/2026-07/MAPPING.md` §5): what a
    /// second `POST /api/2026-07/sales` with the `id` of an existing sale does. Default
    /// [`RepeatSaleId::Refuse`].
    pub ls_repeat_sale_id: RepeatSaleId,
    /// Which of its two published shapes `POST /api/2026-07/sales/{id}/actions/return`
    /// (initReturnSale) answers: false (the default) the operation's declared schema
    /// (`SaleResponse {data: Sale}`, the link in `return.original_sale_id`); true the
    /// operation's own example and the tutorial's (docs `sales_returns`), legacy-shaped
    /// (`status`, `return_for`, `total_price`, lines with `product_id` and a numeric `tax`),
    /// which fails that schema (MAPPING.md §11). A client must read both.
    pub ls_dated_return_example_shape: bool,
    /// Lightspeed webhooks: how many times a delivery without a 2xx answer is retried (default
    /// 3). Lightspeed retries "up to 20 times over 48h ... with exponential back-off" (docs
    /// `webhooks`, "Request timeout and retries"); the sandbox scales that down.
    pub ls_webhook_retries: u32,
    /// Lightspeed webhooks: the wait before the first retry, doubled before each next one
    /// (default 100 ms).
    #[serde(with = "duration_ms")]
    pub ls_webhook_retry_delay: Duration,
    /// Lightspeed webhooks: how long an attempt waits for the answer (default 5 s: "5 seconds
    /// to respond with a 2xx", docs `webhooks`).
    #[serde(with = "duration_ms")]
    pub ls_webhook_timeout: Duration,
    /// Lightspeed webhooks: send `X-Signature` (default true). ASSUMPTION: the docs sign the
    /// webhooks of OAuth-authorised apps; off models an unsigned delivery.
    pub ls_webhook_signed: bool,
}

/// What `POST /api/2026-07/sales` does with a client-supplied `id` (`SaleRequest.id`, "User-
/// provided sale ID. If not included, one will be generated.") that an existing sale already
/// has. Lightspeed does not document it (MAPPING.md §5: no 409 or 422 is declared, and no
/// de-duplication is stated); the sandbox models both readings, and a client must survive
/// either.
///
/// JSON: `"Refuse"`, `"Update"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RepeatSaleId {
    /// ASSUMPTION: answer 409 `{"error": "Conflict", "details": "A sale with id ... already
    /// exists"}` and change nothing.
    #[default]
    Refuse,
    /// ASSUMPTION: the body replaces the sale, as a legacy `register_sales` body with an `id`
    /// does (its lines and payments replace the sale's, its stock moves accordingly).
    Update,
}

impl SandboxConfig {
    /// The currency Ecwid reports: [`Self::ecwid_currency`], else [`Self::currency`].
    pub fn effective_ecwid_currency(&self) -> &str {
        self.ecwid_currency.as_deref().unwrap_or(&self.currency)
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            ecwid_store_id: 1003,
            ecwid_token: "secret_sandbox_ecwid_token".into(),
            webhook_client_secret: "sandbox-client-secret".into(),
            ls_domain_prefix: "sandbox".into(),
            ls_token: "lsxs_pt_sandbox_token".into(),
            ls_rate_limit: 350,
            ls_rate_window: Duration::from_secs(300),
            ecwid_rate_limit: 600,
            ecwid_rate_window: Duration::from_secs(60),
            ls_search_lag: Duration::ZERO,
            seed_demo: true,
            ls_rate_limit_reset_header: false,
            handling_fee_tax_in_items: true,
            currency: "USD".into(),
            ecwid_currency: None,
            ls_repeat_sale_id: RepeatSaleId::Refuse,
            ls_dated_return_example_shape: false,
            ls_webhook_retries: 3,
            ls_webhook_retry_delay: Duration::from_millis(100),
            ls_webhook_timeout: Duration::from_secs(5),
            ls_webhook_signed: true,
        }
    }
}
