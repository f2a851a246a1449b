//! Which Lightspeed product each line of an order is sold as (P1): the SKU link cache, then
//! a Lightspeed lookup of the SKU.

use super::{Attempt, SalePoster};
use crate::connection::Connection;
use crate::ecwid::EcwidOrder;
use crate::ids::Sku;
use crate::ledger::{OrderKey, Outcome, Reason, ReasonCode};
use crate::money;
use crate::ports::{Clock, LightspeedApi, LinkStore, ProductLink};
use std::collections::HashMap;

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: LinkStore,
    L: LightspeedApi,
    C: Clock,
{
    /// Resolves every item's SKU to exactly one live Lightspeed product (P1), from the link
    /// cache first (unless `bypass_cache`), then by a Lightspeed lookup that is cached for
    /// next time. Also says whether any link came from the cache.
    pub(super) async fn resolve_products(
        &self,
        conn: &Connection,
        key: &OrderKey,
        order: &EcwidOrder,
        bypass_cache: bool,
    ) -> Result<(HashMap<Sku, String>, bool), Attempt> {
        let mut found = HashMap::new();
        let mut used_cache = false;
        for item in &order.items {
            let sku =
                money::item_sku(&order.id, item).map_err(|r| Attempt::done(Outcome::Parked(r)))?;
            if found.contains_key(&sku) {
                continue;
            }
            let cached = if bypass_cache {
                Ok(None)
            } else {
                self.store.get_product_link(conn.store_id, &sku).await
            };
            match cached {
                Ok(Some(link)) => {
                    found.insert(sku, link.lightspeed_product_id);
                    used_cache = true;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Attempt {
                        outcome: Outcome::Released {
                            error: format!("reading the product link of SKU {sku}: {e}"),
                            post_may_exist: false,
                        },
                        retry_delay: None,
                        facts: None,
                        refunded_already: false,
                    });
                }
            }
            let candidates = self
                .lightspeed
                .find_products_by_sku(conn, &sku)
                .await
                .map_err(|e| {
                    self.api_failure(
                        key,
                        &format!("looking up SKU {sku}"),
                        e,
                        false,
                        "Lightspeed",
                    )
                })?;
            let matching: Vec<_> = candidates
                .into_iter()
                .filter(|p| p.is_live() && sku.matches(p.sku.as_deref()))
                .collect();
            match matching.as_slice() {
                [] => {
                    return Err(Attempt::done(Outcome::Parked(Reason::new(
                        ReasonCode::UnknownSku,
                        format!(
                            "order {}: no Lightspeed product has SKU {sku}; add it in Lightspeed, then replay the order",
                            order.id
                        ),
                    ))));
                }
                [one] => {
                    let link = ProductLink {
                        sku: sku.clone(),
                        lightspeed_product_id: one.id.clone(),
                        ecwid_product_id: item.product_id,
                        ecwid_combination_id: item.combination_id,
                        updated_at: self.clock.now(),
                    };
                    if let Err(e) = self.store.put_product_link(conn.store_id, &link).await {
                        tracing::warn!(%sku, error = %e, "could not cache the product link");
                    }
                    found.insert(sku, one.id.clone());
                }
                several => {
                    let ids: Vec<_> = several.iter().map(|p| p.id.as_str()).collect();
                    return Err(Attempt::done(Outcome::Parked(Reason::new(
                        ReasonCode::AmbiguousSku,
                        format!(
                            "order {}: SKU {sku} matches {} Lightspeed products ({}); make SKUs unique, then replay",
                            order.id,
                            several.len(),
                            ids.join(", ")
                        ),
                    ))));
                }
            }
        }
        Ok((found, used_cache))
    }
}
