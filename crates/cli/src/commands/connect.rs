//! `els connect`: check both tokens, resolve the register, user, payment types and
//! products by name or id, and save the connection of one Ecwid store to a Lightspeed
//! register. Nothing is saved when a check fails.

use super::api::ApiArgs;
use super::backend::{BackendArgs, open_backend, with_backend};
use clap::Args;
use els_cli::connect::{self, Ask, ConnectRequest};
use els_cli::embedded::WEBHOOK_PATH;
use els_cli::ops;
use els_core::{ConnectionStore, DomainPrefix, LightspeedAccount, Secret, Settings, StoreId};

#[derive(Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// The Ecwid store id (Ecwid admin, My Profile); the token must be this store's.
    #[arg(long)]
    store: StoreId,
    #[arg(long, env = "ECWID_TOKEN", hide_env_values = true)]
    ecwid_token: String,
    /// The Lightspeed store's domain prefix (`myshop` of myshop.retail.lightspeed.app; the
    /// store URL is accepted too).
    #[arg(long, value_parser = DomainPrefix::from_input)]
    domain_prefix: DomainPrefix,
    #[arg(long, env = "LIGHTSPEED_TOKEN", hide_env_values = true)]
    lightspeed_token: String,
    /// The OAuth refresh token that came with `--lightspeed-token` (none: a personal token).
    #[arg(long, env = "LIGHTSPEED_REFRESH_TOKEN", hide_env_values = true)]
    lightspeed_refresh_token: Option<String>,
    /// When the OAuth access token expires (RFC 3339); unknown: refreshed after a 401.
    #[arg(long, requires = "lightspeed_refresh_token")]
    lightspeed_token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    choices: ChoiceArgs,
    /// Post only orders created at or after this moment (RFC 3339). Default: the moment of
    /// the first connect (a reconnect keeps the saved one). Older orders are skipped
    /// BEFORE_GO_LIVE, so history another connector posted is never posted twice.
    #[arg(long)]
    go_live: Option<chrono::DateTime<chrono::Utc>>,
    /// Where this app is reachable over HTTPS (e.g. https://sync.example.com; on AWS the
    /// stack's ApiUrl output): prints the webhook URL to register in Ecwid, and registers
    /// Lightspeed's stock webhooks to it (inventory on), so stock moves in seconds.
    #[arg(long, env = "ELS_PUBLIC_URL", value_parser = public_url)]
    public_url: Option<String>,
    /// Turn "Post Ecwid Sales to Lightspeed Retail" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    post_sales: bool,
    /// Turn "Update Ecwid with inventory changes" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sync_inventory: bool,
}

/// What a connection points at, each by name or id; `connect` and `settings` share them.
#[derive(Args)]
pub struct ChoiceArgs {
    /// The register web sales are posted to, by name or id (connect's default: the only
    /// one; settings keeps the current one). Stock is read at and leaves from its outlet.
    #[arg(long)]
    pub register: Option<String>,
    /// The Lightspeed user sales are made by, by name or id (default: the primary user).
    #[arg(long)]
    pub user: Option<String>,
    /// The payment type that settles each sale, by name or id (default: the only one).
    #[arg(long)]
    pub payment_type: Option<String>,
    /// The product shipping is posted on, by name, SKU or id (default: a product called
    /// "Shipping").
    #[arg(long)]
    pub shipping_product: Option<String>,
    /// The product handling fees and surcharges are posted on, by name, SKU or id (default:
    /// a product called "Fees and surcharges", "Handling fee" or "Fees"; none: the shipping
    /// product).
    #[arg(long)]
    pub fees_product: Option<String>,
    /// The product money-only refunds are posted on (R3), by name, SKU or id; it must not
    /// track stock (default: a product called "Refund").
    #[arg(long)]
    pub refund_product: Option<String>,
    /// The payment type for the part of an order paid with an Ecwid gift card, by name or
    /// id (default: one called "Gift Card").
    #[arg(long)]
    pub gift_card_payment_type: Option<String>,
    /// Create the shipping, fees and refund products (not tracking inventory) when none is
    /// named or found.
    #[arg(long)]
    pub create_missing: bool,
}

impl ChoiceArgs {
    pub fn any(&self) -> bool {
        self.register.is_some()
            || self.user.is_some()
            || self.payment_type.is_some()
            || self.shipping_product.is_some()
            || self.fees_product.is_some()
            || self.refund_product.is_some()
            || self.gift_card_payment_type.is_some()
            || self.create_missing
    }
}

pub async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let ecwid = args.api.ecwid_client()?;
    let lightspeed = args.api.lightspeed_on(&args.api.lightspeed_url_template)?;
    // A reconnect keeps the go-live moment and the store's own API generation (which the
    // checks below then use); `els settings` changes the latter. Nothing is written yet.
    let backend = open_backend(&args.backend).await?;
    // The refund settings and product (`els settings`) are kept the same way.
    let (stored_go_live, stored) = with_backend!(&backend, |store, _queue| {
        match store.get_connection(args.store).await {
            Ok(existing) => existing.map_or((None, None), |c| {
                (
                    c.go_live_at,
                    Some((c.settings, c.refund_product_id, c.lightspeed_webhooks)),
                )
            }),
            // Stored tokens that cannot be decrypted are replaced; the rest stays.
            Err(els_core::StoreError::Undecryptable { go_live_at, .. }) => (go_live_at, None),
            Err(e) => return Err(e.into()),
        }
    });
    let (stored_settings, stored_refund_product, stored_webhooks) = stored.unwrap_or_default();
    let stored_version = stored_settings.lightspeed_api_version;
    let request = ConnectRequest {
        store_id: args.store,
        ecwid_token: Secret::new(args.ecwid_token),
        lightspeed: LightspeedAccount {
            domain_prefix: args.domain_prefix,
            access_token: Secret::new(args.lightspeed_token),
            refresh_token: args.lightspeed_refresh_token.map(Secret::new),
            expires_at: args.lightspeed_token_expires_at,
            refresh_lease_until: None,
        },
        register: args.choices.register,
        user: args.choices.user,
        payment_type: args.choices.payment_type,
        shipping_product: args.choices.shipping_product,
        fees_product: args.choices.fees_product,
        refund_product: args.choices.refund_product.or(stored_refund_product),
        gift_card_payment_type: args.choices.gift_card_payment_type,
        create_missing: args.choices.create_missing,
        settings: Settings {
            post_sales: args.post_sales,
            sync_inventory: args.sync_inventory,
            lightspeed_api_version: stored_version,
            post_refunds: stored_settings.post_refunds,
            restock_refunds: stored_settings.restock_refunds,
        },
    };
    let ask = terminal_ask();
    let mut plan = connect::plan(
        &ecwid,
        &lightspeed,
        request,
        ask.as_ref().map(|a| a as &dyn Ask),
    )
    .await?;
    // Only now, with every check passed, is anything written.
    let saved = with_backend!(backend, |store, _queue| {
        let go_live = args
            .go_live
            .or(stored_go_live)
            .unwrap_or_else(chrono::Utc::now);
        plan.connection.go_live_at = Some(go_live);
        plan.summary.push((
            "Posts orders created",
            format!(
                "from {}",
                go_live.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
        let width = plan.summary.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (what, chosen) in &plan.summary {
            println!("{what:<width$}  {chosen}");
        }
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
        let mut conn = connect::apply(&lightspeed, plan).await?;
        match &args.public_url {
            Some(base) if conn.settings.sync_inventory => {
                match els_cli::stock_webhooks::register(&lightspeed, &mut conn, base).await {
                    Ok(hooks) => println!(
                        "{:<width$}  {} ({} webhooks: stock reaches Ecwid in seconds)",
                        "Lightspeed webhooks",
                        hooks.url_base,
                        hooks.ids.len()
                    ),
                    Err(e) => eprintln!(
                        "warning: {e:#}; stock is mirrored on the schedule alone (every minute)"
                    ),
                }
            }
            _ => {
                // Registrations of an earlier connect would only ever be refused now.
                let earlier = stored_webhooks.iter().flat_map(|h| h.ids.iter());
                for id in earlier {
                    if let Err(e) = lightspeed.delete_webhook(&conn, id).await {
                        eprintln!("warning: deleting an earlier Lightspeed webhook: {e}");
                    }
                }
                println!(
                    "{:<width$}  none (stock is mirrored every minute; give --public-url to have Lightspeed report changes at once)",
                    "Lightspeed webhooks"
                )
            }
        }
        ops::upsert_connection(store, conn).await?
    });
    println!(
        "\nconnection of store {} saved (version {}); post sales: {}, update Ecwid stock: {}",
        saved.store_id,
        saved.version,
        on_off(saved.settings.post_sales),
        on_off(saved.settings.sync_inventory)
    );
    match args.public_url {
        Some(url) => println!(
            "register this webhook URL in your Ecwid app: {}{WEBHOOK_PATH}",
            url.trim_end_matches('/')
        ),
        None => println!(
            "register https://<where els serve is reachable>{WEBHOOK_PATH} as your Ecwid app's webhook URL (on AWS: the stack's WebhookUrl output)"
        ),
    }
    Ok(())
}

/// Asks at the terminal with a list to pick from, when `els` runs in one (stdin and stderr
/// both terminals); unattended runs (scripts, CI) get the refusal with the list instead.
pub struct TerminalAsk;

impl Ask for TerminalAsk {
    fn pick(&self, prompt: &str, options: &[String]) -> Option<usize> {
        dialoguer::Select::new()
            .with_prompt(prompt)
            .items(options)
            .default(0)
            .interact_opt()
            .ok()
            .flatten()
    }
}

pub fn terminal_ask() -> Option<TerminalAsk> {
    use std::io::IsTerminal;
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal()).then_some(TerminalAsk)
}

/// An absolute http(s) URL with a host and no query: what webhook URLs are built on.
fn public_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host, e.g. https://sync.example.com".into());
    }
    // The Lightspeed webhook URL carries the store's secret: in clear only on this machine.
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.scheme() == "http" && !loopback {
        return Err(
            "must be https (the webhook URLs carry a secret); http only for localhost".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn a_public_url_is_https_or_local_http_without_a_query() {
        assert_eq!(
            public_url("https://sync.example.com/").unwrap(),
            "https://sync.example.com"
        );
        assert_eq!(
            public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "http://sync.example.com",
            "ftp://sync.example.com",
            "https://sync.example.com/?a=1",
            "sync.example.com",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }
}
