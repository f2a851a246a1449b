//! `els settings`: show a connection, or change it without touching its tokens. Each
//! choice is checked against the APIs like `els connect` checks it; switches need no API.

use super::api::ApiArgs;
use super::backend::{BackendArgs, open_backend, with_backend};
use super::connect::ChoiceArgs;
use anyhow::bail;
use clap::Args;
use els_cli::connect::{self, Ask, ConnectRequest};
use els_cli::ops;
use els_core::lightspeed::LsApiVersion;
use els_core::{Connection, ConnectionStore, LightspeedApi, StoreId};

#[derive(Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long)]
    store: StoreId,
    /// "Post Ecwid Sales to Lightspeed Retail" (true or false).
    #[arg(long)]
    post_sales: Option<bool>,
    /// "Update Ecwid with inventory changes" (true or false).
    #[arg(long)]
    sync_inventory: Option<bool>,
    /// "Post Ecwid refunds to Lightspeed" (true or false): refunds and cancellations of
    /// posted orders become Lightspeed returns (R5).
    #[arg(long)]
    post_refunds: Option<bool>,
    /// "Restock refunded items" (true or false): a full refund puts the items back at the
    /// register's outlet; off, it is a money-only return (R2, R3).
    #[arg(long)]
    restock_refunds: Option<bool>,
    #[command(flatten)]
    choices: ChoiceArgs,
    /// Post only orders created at or after this moment (RFC 3339).
    #[arg(long)]
    go_live: Option<chrono::DateTime<chrono::Utc>>,
    /// The Lightspeed API generation of this store (`2026-07` or `legacy`), or `default` for
    /// the deployment's LIGHTSPEED_API_VERSION. Sales posted under either generation are
    /// found after a switch (the search by invoice number reads both).
    #[arg(long, value_parser = parse_version_choice)]
    lightspeed_api_version: Option<VersionChoice>,
}

/// A store's API generation, or the deployment's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VersionChoice {
    Default,
    Version(LsApiVersion),
}

fn parse_version_choice(value: &str) -> Result<VersionChoice, String> {
    if value.trim().eq_ignore_ascii_case("default") {
        return Ok(VersionChoice::Default);
    }
    LsApiVersion::parse(value)
        .map(VersionChoice::Version)
        .map_err(|e| format!("{e}, or default"))
}

impl SettingsArgs {
    fn changes_anything(&self) -> bool {
        self.choices.any()
            || self.post_sales.is_some()
            || self.sync_inventory.is_some()
            || self.post_refunds.is_some()
            || self.restock_refunds.is_some()
            || self.go_live.is_some()
            || self.lightspeed_api_version.is_some()
    }
}

pub async fn settings(args: SettingsArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    with_backend!(backend, |store, _queue| run(store, &args).await)
}

async fn run<S: ConnectionStore + Clone>(store: &S, args: &SettingsArgs) -> anyhow::Result<()> {
    let Some(current) = store.get_connection(args.store).await? else {
        bail!(
            "store {} has no connection: run `els connect --store {}` first",
            args.store,
            args.store
        );
    };
    if !args.changes_anything() {
        print(&current);
        return Ok(());
    }
    // Choices are resolved (and products created) before anything is written.
    let chosen = if args.choices.any() {
        // One client (one rate gate): it refreshes OAuth tokens, and its inner client reads.
        let client = args.api.lightspeed_client(store.clone())?;
        let lightspeed = client.inner();
        let current = args
            .api
            .fresh_connection(&client, store, current.clone())
            .await?;
        let ecwid = args.api.ecwid_client()?;
        let keep = |given: &Option<String>, now: &str| given.clone().or(Some(now.to_string()));
        let request = ConnectRequest {
            store_id: current.store_id,
            ecwid_token: current.ecwid_token.clone(),
            lightspeed: current.lightspeed.clone(),
            register: keep(&args.choices.register, &current.register_id),
            user: keep(&args.choices.user, &current.user_id),
            payment_type: keep(&args.choices.payment_type, &current.payment_type_id),
            shipping_product: args
                .choices
                .shipping_product
                .clone()
                .or(current.shipping_product_id.clone()),
            fees_product: args
                .choices
                .fees_product
                .clone()
                .or(current.fees_product_id.clone()),
            refund_product: args
                .choices
                .refund_product
                .clone()
                .or(current.refund_product_id.clone()),
            gift_card_payment_type: args
                .choices
                .gift_card_payment_type
                .clone()
                .or(current.gift_card_payment_type_id.clone()),
            create_missing: args.choices.create_missing,
            settings: current.settings.clone(),
        };
        let ask = super::connect::terminal_ask();
        let plan = connect::plan(
            &ecwid,
            lightspeed,
            request,
            ask.as_ref().map(|a| a as &dyn Ask),
        )
        .await?;
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
        Some(connect::apply(lightspeed, plan).await?)
    } else {
        None
    };
    if let Some(choice) = args.lightspeed_api_version {
        check_version(store, args, &current, choice).await?;
    }
    let updated = ops::update_connection(store, args.store, |c| {
        if let Some(new) = &chosen {
            c.register_id = new.register_id.clone();
            c.outlet_id = new.outlet_id.clone();
            c.user_id = new.user_id.clone();
            c.payment_type_id = new.payment_type_id.clone();
            c.shipping_product_id = new.shipping_product_id.clone();
            c.fees_product_id = new.fees_product_id.clone();
            c.refund_product_id = new.refund_product_id.clone();
            c.gift_card_payment_type_id = new.gift_card_payment_type_id.clone();
        }
        if let Some(on) = args.post_sales {
            c.settings.post_sales = on;
        }
        if let Some(on) = args.sync_inventory {
            c.settings.sync_inventory = on;
        }
        if let Some(on) = args.post_refunds {
            c.settings.post_refunds = on;
        }
        if let Some(on) = args.restock_refunds {
            c.settings.restock_refunds = on;
        }
        if let Some(at) = args.go_live {
            c.go_live_at = Some(at);
        }
        match args.lightspeed_api_version {
            Some(VersionChoice::Default) => c.settings.lightspeed_api_version = None,
            Some(VersionChoice::Version(v)) => c.settings.lightspeed_api_version = Some(v),
            None => {}
        }
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("the connection of store {} was removed", args.store))?;
    if updated.outlet_id != current.outlet_id {
        println!(
            "the register's outlet changed: the next inventory run reads and writes every level of outlet {}",
            updated.outlet_id
        );
    }
    println!(
        "saved (version {}); the next order uses it",
        updated.version
    );
    print(&updated);
    Ok(())
}

/// Reads the retailer's setup on the chosen generation before anything is saved, so a
/// store that cannot speak it (a token without the scope, a path the account lacks) is
/// refused with Lightspeed's answer and keeps its current setting.
async fn check_version<S: ConnectionStore + Clone>(
    store: &S,
    args: &SettingsArgs,
    current: &Connection,
    choice: VersionChoice,
) -> anyhow::Result<()> {
    let client = args.api.lightspeed_client(store.clone())?;
    let mut probe = args
        .api
        .fresh_connection(&client, store, current.clone())
        .await?;
    probe.settings.lightspeed_api_version = match choice {
        VersionChoice::Default => None,
        VersionChoice::Version(v) => Some(v),
    };
    let version = client.inner().version_for(&probe);
    if let Err(e) = client.inner().sale_setup(&probe).await {
        bail!(
            "store {} could not be read on Lightspeed API {version}: {e}; nothing was changed",
            current.store_id
        );
    }
    Ok(())
}

fn print(c: &Connection) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
    let rows = [
        ("store", c.store_id.to_string()),
        (
            "Lightspeed",
            format!("{}.retail.lightspeed.app", c.lightspeed.domain_prefix),
        ),
        ("post sales", c.settings.post_sales.to_string()),
        ("sync inventory", c.settings.sync_inventory.to_string()),
        ("post refunds", c.settings.post_refunds.to_string()),
        ("restock refunds", c.settings.restock_refunds.to_string()),
        (
            "Lightspeed API",
            c.settings
                .lightspeed_api_version
                .map_or_else(|| "(the deployment's)".into(), |v| v.to_string()),
        ),
        ("register", c.register_id.clone()),
        ("outlet", c.outlet_id.clone()),
        ("user", c.user_id.clone()),
        ("payment type", c.payment_type_id.clone()),
        ("gift-card payment type", opt(&c.gift_card_payment_type_id)),
        ("shipping product", opt(&c.shipping_product_id)),
        ("fees product", opt(&c.fees_product_id)),
        ("refund product", opt(&c.refund_product_id)),
        (
            "posts orders created",
            c.go_live_at.map_or_else(
                || "(any time)".into(),
                |t| format!("from {}", t.to_rfc3339()),
            ),
        ),
        ("version", c.version.to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<24}{v}");
    }
}
