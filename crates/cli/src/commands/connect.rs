//! `els connect`: create or update the connection of one Ecwid store to a Lightspeed
//! register.

use super::backend::{BackendArgs, open_backend, with_backend};
use clap::Args;
use els_cli::ops;
use els_core::StoreId;
use els_core::{Connection, DomainPrefix, LightspeedAccount, Secret, Settings};

#[derive(Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    backend: BackendArgs,
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
    #[arg(long)]
    register_id: String,
    #[arg(long)]
    outlet_id: String,
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    payment_type_id: String,
    /// Turn "Post Ecwid Sales to Lightspeed Retail" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    post_sales: bool,
    /// Turn "Update Ecwid with inventory changes" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sync_inventory: bool,
}

pub async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    let conn = Connection {
        store_id: args.store,
        ecwid_token: Secret::new(args.ecwid_token),
        lightspeed: LightspeedAccount {
            domain_prefix: args.domain_prefix,
            access_token: Secret::new(args.lightspeed_token),
            refresh_token: args.lightspeed_refresh_token.map(Secret::new),
            expires_at: args.lightspeed_token_expires_at,
            refresh_lease_until: None,
        },
        register_id: args.register_id,
        outlet_id: args.outlet_id,
        user_id: args.user_id,
        payment_type_id: args.payment_type_id,
        shipping_product_id: None,
        discount_product_id: None,
        fees_product_id: None,
        gift_card_payment_type_id: None,
        settings: Settings {
            post_sales: args.post_sales,
            sync_inventory: args.sync_inventory,
        },
        version: 0,
    };
    let saved = with_backend!(backend, |store, _queue| ops::upsert_connection(store, conn)
        .await?);
    println!(
        "connection of store {} saved (version {})",
        saved.store_id, saved.version
    );
    Ok(())
}
