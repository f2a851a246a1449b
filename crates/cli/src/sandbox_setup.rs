//! Wiring the embedded app to the built-in sandbox: no AWS account, no shop credentials.
//! The one place that knows the sandbox's connection and URLs: `els serve`, the benchmarks,
//! `tests/` and the functions' tests all use it.

use els_core::{Connection, LightspeedAccount, Secret, Settings, StoreId};
use els_sandbox::Sandbox;

/// The URL template for the sandbox's Lightspeed: like the real
/// `https://{domain_prefix}.retail.lightspeed.app`, with the prefix in the path.
pub fn lightspeed_url_template(sandbox: &Sandbox) -> String {
    format!("{}/lightspeed/{{domain_prefix}}", sandbox.base_url())
}

/// The sandbox's Ecwid store id.
pub fn sandbox_store_id(sandbox: &Sandbox) -> StoreId {
    StoreId::new(sandbox.config().ecwid_store_id).expect("the sandbox's store id is positive")
}

/// The connection of the sandbox's demo store to its "Web Store Register".
pub fn sandbox_connection(sandbox: &Sandbox) -> Connection {
    let cfg = sandbox.config();
    let ids = sandbox.ids();
    Connection {
        store_id: sandbox_store_id(sandbox),
        ecwid_token: Secret::new(cfg.ecwid_token.clone()),
        lightspeed: LightspeedAccount {
            domain_prefix: cfg
                .ls_domain_prefix
                .parse()
                .expect("the sandbox's domain prefix is valid"),
            access_token: Secret::new(cfg.ls_token.clone()),
            refresh_token: None,
            expires_at: None,
            refresh_lease_until: None,
        },
        register_id: ids.register_id.clone(),
        outlet_id: ids.outlet_id.clone(),
        user_id: ids.user_id.clone(),
        payment_type_id: ids.payment_type_id.clone(),
        shipping_product_id: Some(ids.shipping_product_id.clone()),
        discount_product_id: Some(ids.discount_product_id.clone()),
        fees_product_id: None,
        gift_card_payment_type_id: Some(ids.gift_card_payment_type_id.clone()),
        refund_product_id: None,
        go_live_at: None,
        restored_at: None,
        lightspeed_webhooks: None,
        settings: Settings::default(),
        version: 0,
    }
}
