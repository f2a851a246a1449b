//! The feeds of one run: the Lightspeed products feed (catalog links, Ecwid lookups by SKU
//! or one catalog scan, untracked products) and the inventory feed (levels at the outlet),
//! page by page, the cursor saved after each page.

use super::{
    Candidate, Fail, InventoryMirror, Run, RunOutcome, System, chrono_duration, next_after,
};
use crate::connection::Connection;
use crate::ids::Sku;
use crate::inventory::{
    CatalogLink, CatalogLinkUpdate, EcwidCatalogIndex, EcwidProductPage, FeedPage, InventoryRecord,
    LinkStatus, PushedStock, Resolution, StockLevel, pending_by_sku,
};
use crate::lightspeed::LsProduct;
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use rust_decimal::Decimal;
use std::collections::HashMap;

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// Both feeds, then the pending re-publish. `Ok(true)` when both feeds were drained.
    pub(super) async fn run_feeds(&self, conn: &Connection, run: &mut Run) -> Result<bool, Fail> {
        let pending = self
            .store
            .list_pending_web_sales(run.store_id)
            .await
            .map_err(|e| Fail::store("reading pending web sales", e))?;
        run.pending = pending_by_sku(&pending);
        run.report.pending_skus = run.pending.len() as u64;

        loop {
            if self.stop_early(run) {
                return Ok(false);
            }
            let after = run.cursor.products_version;
            let page: FeedPage<LsProduct> = self
                .call(run, System::Lightspeed, || {
                    self.lightspeed
                        .product_changes(conn, after, self.config.page_size)
                })
                .await
                .map_err(|e| Fail::api("reading Lightspeed product changes", e))?;
            run.report.lightspeed_rate_remaining = page
                .rate_limit_remaining
                .or(run.report.lightspeed_rate_remaining);
            if page.items.is_empty() {
                break;
            }
            let max = next_after(after, page.max_version, "products")?;
            self.apply_products(conn, run, page.items, &format!("products:{after}:{max}"))
                .await?;
            self.save_cursor(run, false, |c| c.products_version = max)
                .await?;
            run.report.product_pages += 1;
        }

        loop {
            if self.stop_early(run) {
                return Ok(false);
            }
            let after = run.cursor.inventory_version;
            let page: FeedPage<InventoryRecord> = self
                .call(run, System::Lightspeed, || {
                    self.lightspeed
                        .inventory_changes(conn, after, self.config.page_size)
                })
                .await
                .map_err(|e| Fail::api("reading Lightspeed inventory changes", e))?;
            run.report.lightspeed_rate_remaining = page
                .rate_limit_remaining
                .or(run.report.lightspeed_rate_remaining);
            if page.items.is_empty() {
                break;
            }
            let max = next_after(after, page.max_version, "inventory")?;
            self.apply_inventory(conn, run, page.items, &format!("inventory:{after}:{max}"))
                .await?;
            self.save_cursor(run, false, |c| c.inventory_version = max)
                .await?;
            run.report.inventory_pages += 1;
        }

        self.republish_pending_drops(conn, run).await?;
        Ok(true)
    }

    /// Whether the run should stop before the next page (and why, in the report).
    fn stop_early(&self, run: &mut Run) -> bool {
        let why = if self.clock.now() >= run.deadline {
            Some("time budget of the run used up".to_string())
        } else {
            run.report
                .lightspeed_rate_remaining
                .filter(|r| *r <= self.config.lightspeed_reserve)
                .map(|r| {
                    format!("Lightspeed rate limit nearly used ({r} requests left in the window)")
                })
        };
        match why {
            Some(why) => {
                tracing::info!(store_id = run.store_id.get(), reason = %why, "inventory run deferred");
                run.report.outcome = RunOutcome::Deferred;
                run.report.deferred_reason = Some(why);
                true
            }
            None => false,
        }
    }

    /// One page of the products feed.
    async fn apply_products(
        &self,
        conn: &Connection,
        run: &mut Run,
        rows: Vec<LsProduct>,
        context: &str,
    ) -> Result<(), Fail> {
        let now = self.clock.now();
        run.report.products_seen += rows.len() as u64;
        // The newest row of each product (a page is in version order).
        let mut latest: Vec<LsProduct> = Vec::with_capacity(rows.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for p in rows {
            match at.get(&p.id) {
                Some(&i) => latest[i] = p,
                None => {
                    at.insert(p.id.clone(), latest.len());
                    latest.push(p);
                }
            }
        }
        let ids: Vec<String> = latest.iter().map(|p| p.id.clone()).collect();
        let stored = self.links_by_id(run.store_id, &ids).await?;
        let mut links: Vec<CatalogLink> = latest
            .iter()
            .map(|p| CatalogLink::observe(stored.get(&p.id), p, now))
            .collect();
        let observed = self.resolve(conn, run, &mut links).await?;
        let updates: Vec<CatalogLinkUpdate> = links
            .iter()
            .filter(|l| stored.get(&l.lightspeed_product_id) != Some(*l))
            .map(|l| CatalogLinkUpdate {
                link: l.clone(),
                previous_sku_key: stored
                    .get(&l.lightspeed_product_id)
                    .map(|p| p.sku_key.clone()),
            })
            .collect();
        self.put_links(run.store_id, &updates).await?;
        self.seed_baselines(run, &links, &observed).await?;

        // Products whose level must be published now: untracked ones that are new or
        // changed, and tracked ones whose link or tracking changed (their inventory records
        // may be older than the cursor, so their level is read directly).
        let mut candidates = Vec::new();
        for link in &links {
            let before = stored.get(&link.lightspeed_product_id);
            let changed = before.is_none_or(|b| {
                b.target != link.target
                    || b.status != link.status
                    || b.has_inventory != link.has_inventory
                    || b.live != link.live
            });
            if !changed || !link.live {
                continue;
            }
            if !link.has_inventory {
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: None,
                });
            } else if before.is_some() && link.status == LinkStatus::Linked {
                let records = self
                    .call(run, System::Lightspeed, || {
                        self.lightspeed
                            .product_inventory(conn, &link.lightspeed_product_id)
                    })
                    .await
                    .map_err(|e| Fail::api("reading a product's Lightspeed inventory", e))?;
                let level = records
                    .iter()
                    .filter(|r| r.outlet_id == run.outlet_id)
                    .max_by_key(|r| r.version)
                    .map(|r| r.inventory_level)
                    .unwrap_or_default();
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: Some(level),
                });
            }
        }
        self.publish(conn, run, candidates, context).await
    }

    /// One page of the inventory feed.
    async fn apply_inventory(
        &self,
        conn: &Connection,
        run: &mut Run,
        records: Vec<InventoryRecord>,
        context: &str,
    ) -> Result<(), Fail> {
        let now = self.clock.now();
        run.report.records += records.len() as u64;
        // S3: only the outlet of the connection's register; the newest record per product.
        let mut levels: Vec<(String, Decimal)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for r in records {
            if r.outlet_id != run.outlet_id {
                run.report.other_outlet += 1;
                continue;
            }
            match at.get(&r.product_id) {
                Some(&i) => levels[i].1 = r.inventory_level,
                None => {
                    at.insert(r.product_id.clone(), levels.len());
                    levels.push((r.product_id, r.inventory_level));
                }
            }
        }
        if levels.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = levels.iter().map(|(id, _)| id.clone()).collect();
        let stored = self.links_by_id(run.store_id, &ids).await?;
        let mut links: Vec<CatalogLink> = Vec::with_capacity(ids.len());
        for id in &ids {
            match stored.get(id) {
                Some(l) => links.push(l.clone()),
                None => {
                    // A product newer than the products cursor: read it once.
                    let product = self
                        .call(run, System::Lightspeed, || {
                            self.lightspeed.get_product(conn, id)
                        })
                        .await
                        .map_err(|e| Fail::api("reading a Lightspeed product", e))?;
                    if let Some(p) = product {
                        links.push(CatalogLink::observe(None, &p, now));
                    } else {
                        run.report.deleted += 1;
                    }
                }
            }
        }
        let observed = self.resolve(conn, run, &mut links).await?;
        let updates: Vec<CatalogLinkUpdate> = links
            .iter()
            .filter(|l| stored.get(&l.lightspeed_product_id) != Some(*l))
            .map(|l| CatalogLinkUpdate {
                link: l.clone(),
                previous_sku_key: stored
                    .get(&l.lightspeed_product_id)
                    .map(|p| p.sku_key.clone()),
            })
            .collect();
        self.put_links(run.store_id, &updates).await?;
        self.seed_baselines(run, &links, &observed).await?;
        let level_of: HashMap<&str, Decimal> =
            levels.iter().map(|(id, l)| (id.as_str(), *l)).collect();
        let candidates = links
            .into_iter()
            .map(|link| {
                let ls_level = level_of.get(link.lightspeed_product_id.as_str()).copied();
                Candidate { link, ls_level }
            })
            .collect();
        self.publish(conn, run, candidates, context).await
    }

    /// Looks up the Ecwid side of every link that needs it, in place. Returns the level
    /// Ecwid shows for each newly linked product.
    async fn resolve(
        &self,
        conn: &Connection,
        run: &mut Run,
        links: &mut [CatalogLink],
    ) -> Result<HashMap<String, Option<StockLevel>>, Fail> {
        let mut observed = HashMap::new();
        let now = self.clock.now();
        let recheck = chrono_duration(self.config.recheck_unlinked_after);
        let due = |l: &CatalogLink| {
            l.needs_lookup()
                || (l.live
                    && !l.sku_key.is_empty()
                    && matches!(l.status, LinkStatus::Missing | LinkStatus::Ambiguous)
                    && l.checked_at.is_none_or(|at| now - at >= recheck))
        };
        let need: Vec<usize> = (0..links.len()).filter(|&i| due(&links[i])).collect();
        if need.is_empty() {
            return Ok(observed);
        }
        if run.catalog.is_none() && !run.scan_declined && need.len() >= self.config.catalog_scan_min
        {
            self.maybe_scan_catalog(conn, run, need.len()).await?;
        }
        for i in need {
            let key = links[i].sku_key.clone();
            let resolution = match &run.catalog {
                Some(catalog) => catalog.lookup(&key),
                None => {
                    // Links with an unusable SKU have an empty key and are never due.
                    let Ok(sku) = Sku::parse(&links[i].sku) else {
                        continue;
                    };
                    let found = self
                        .call(run, System::Ecwid, || {
                            self.ecwid.find_products_by_sku(conn, &sku)
                        })
                        .await
                        .map_err(|e| Fail::api("looking a SKU up in Ecwid", e))?;
                    run.report.ecwid_sku_lookups += 1;
                    EcwidCatalogIndex::from_products(&found).lookup(&key)
                }
            };
            if let Resolution::Linked { level, .. } = &resolution {
                observed.insert(links[i].lightspeed_product_id.clone(), *level);
            }
            links[i] = links[i].resolved(&resolution, now);
            run.report.links_resolved += 1;
        }
        Ok(observed)
    }

    /// Reads the whole Ecwid catalog into the run when that costs fewer requests than
    /// `lookups` single SKU lookups.
    async fn maybe_scan_catalog(
        &self,
        conn: &Connection,
        run: &mut Run,
        lookups: usize,
    ) -> Result<(), Fail> {
        let limit = self.config.ecwid_page_size.clamp(1, 100);
        let first = self
            .call(run, System::Ecwid, || {
                self.ecwid.list_products(conn, 0, limit)
            })
            .await
            .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
        let pages = first.total.div_ceil(limit);
        if pages as usize > lookups {
            run.scan_declined = true;
            return Ok(());
        }
        // The scan may outlast the run's budget (it cannot be resumed); the lease is renewed.
        let budget = run.deadline;
        run.deadline = budget.max(self.clock.now() + chrono_duration(self.config.max_catalog_scan));
        let scanned = self.scan_rest(conn, run, first, limit).await;
        run.deadline = budget;
        run.catalog = Some(scanned?);
        run.report.catalog_scans += 1;
        Ok(())
    }

    async fn scan_rest(
        &self,
        conn: &Connection,
        run: &mut Run,
        first: EcwidProductPage,
        limit: u64,
    ) -> Result<EcwidCatalogIndex, Fail> {
        let mut index = EcwidCatalogIndex::new();
        let mut page = first;
        let mut offset = 0u64;
        loop {
            let n = page.items.len() as u64;
            for p in &page.items {
                index.add(p);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
            self.renew_if_due(run).await?;
            page = self
                .call(run, System::Ecwid, || {
                    self.ecwid.list_products(conn, offset, limit)
                })
                .await
                .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
        }
        Ok(index)
    }

    /// For newly linked products without a pushed level for that target, records the level
    /// Ecwid shows now, so a level Ecwid already has is not written again.
    async fn seed_baselines(
        &self,
        run: &mut Run,
        links: &[CatalogLink],
        observed: &HashMap<String, Option<StockLevel>>,
    ) -> Result<(), Fail> {
        let seen: Vec<(&CatalogLink, StockLevel)> = links
            .iter()
            .filter_map(|l| {
                let level = (*observed.get(&l.lightspeed_product_id)?)?;
                Some((l, level))
            })
            .collect();
        if seen.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = seen
            .iter()
            .map(|(l, _)| l.lightspeed_product_id.clone())
            .collect();
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;
        let now = self.clock.now();
        let baselines: Vec<PushedStock> = seen
            .into_iter()
            .filter_map(|(l, level)| {
                let target = l.target?;
                let known = pushed
                    .get(&l.lightspeed_product_id)
                    .is_some_and(|p| p.target == target);
                (!known).then(|| PushedStock {
                    lightspeed_product_id: l.lightspeed_product_id.clone(),
                    target,
                    level,
                    ls_level: None,
                    pending: Decimal::ZERO,
                    updated_at: now,
                })
            })
            .collect();
        if baselines.is_empty() {
            return Ok(());
        }
        self.store
            .put_pushed_stock(run.store_id, &baselines)
            .await
            .map_err(|e| Fail::store("recording the levels Ecwid shows", e))
    }
}
