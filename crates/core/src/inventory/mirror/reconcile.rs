//! The run behind `els reconcile`: both catalogs read in full, compared by the mirror's rule
//! ([`crate::inventory::reconcile::compare`]) and, with `fix`, the drift written to Ecwid.

use super::{
    Fail, InventoryMirror, MirrorError, MirrorFailure, MirrorReport, Run, System, Write, next_after,
};
use crate::connection::Connection;
use crate::inventory::reconcile::{self as drift, ReconcileReport};
use crate::inventory::{
    CatalogLink, CatalogLinkUpdate, CursorClaim, EcwidCatalogIndex, PushedStock, Resolution,
    WriteOutcome, claim_cursor, pending_by_sku,
};
use crate::lightspeed::LsProduct;
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// What `reconcile` reports while it reads (for a progress bar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileProgress {
    /// A new phase starts; `total` items are expected when known.
    Phase {
        name: &'static str,
        total: Option<u64>,
    },
    /// `n` more items of the current phase are done.
    Advance(u64),
}

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// Compares every Lightspeed product's expected Ecwid level (the mirror's rule) with
    /// what Ecwid shows, reading both catalogs in full. With `fix`, writes the expected
    /// level of every drifted product (under the cursor's lease, so no mirror run races
    /// it) and records it as pushed. Nothing is ever written to Lightspeed (S2).
    pub async fn reconcile(
        &self,
        conn: &Connection,
        fix: bool,
        progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
    ) -> Result<ReconcileReport, MirrorError> {
        let store_id = conn.store_id;
        let started = self.clock.now();
        let fail = |f: Fail, report: MirrorReport| MirrorError {
            store_id,
            doing: f.doing,
            failure: f.failure,
            report: Box::new(report),
        };
        let (cursor, claimed) = if fix {
            match self.claim(store_id).await {
                Ok(Ok(c)) => (c, true),
                Ok(Err(until)) => {
                    return Err(fail(
                        Fail {
                            doing: "claiming the inventory cursor".into(),
                            failure: MirrorFailure::Busy { until },
                        },
                        MirrorReport::new(store_id),
                    ));
                }
                Err(e) => {
                    return Err(fail(
                        Fail::store("claiming the inventory cursor", e),
                        MirrorReport::new(store_id),
                    ));
                }
            }
        } else {
            let c = match claim_cursor(None, store_id, started, chrono::Duration::zero()) {
                CursorClaim::Claim { cursor, .. } => cursor,
                CursorClaim::Busy { .. } => unreachable!("a fresh cursor is never busy"),
            };
            (c, false)
        };
        // Reads are not bound by the schedule's budget: a reconcile of a large catalog
        // takes as long as the rate limits make it.
        let deadline = started + chrono::Duration::days(1);
        let report = MirrorReport::new(store_id);
        let mut run = Run::new(conn, cursor, claimed, report, started, deadline);
        let result = self.reconcile_run(conn, &mut run, fix, progress).await;
        let released = if run.claimed {
            self.save_cursor(&mut run, true, |_| {}).await
        } else {
            Ok(())
        };
        match (result, released) {
            (Ok(report), Ok(())) => Ok(report),
            (Err(f), _) | (Ok(_), Err(f)) => Err(fail(f, run.report)),
        }
    }

    async fn reconcile_run(
        &self,
        conn: &Connection,
        run: &mut Run,
        fix: bool,
        progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
    ) -> Result<ReconcileReport, Fail> {
        // Lightspeed products, every page.
        progress(ReconcileProgress::Phase {
            name: "Lightspeed products",
            total: None,
        });
        let mut products: HashMap<String, LsProduct> = HashMap::new();
        let mut after = 0u64;
        loop {
            let page = self
                .call(run, System::Lightspeed, || {
                    self.lightspeed
                        .product_changes(conn, after, self.config.page_size)
                })
                .await
                .map_err(|e| Fail::api("reading Lightspeed products", e))?;
            if page.items.is_empty() {
                break;
            }
            progress(ReconcileProgress::Advance(page.items.len() as u64));
            self.renew_if_due(run).await?;
            after = next_after(after, page.max_version, "products")?;
            for p in page.items {
                products.insert(p.id.clone(), p);
            }
        }
        // Lightspeed levels at the connection's outlet.
        progress(ReconcileProgress::Phase {
            name: "Lightspeed inventory",
            total: None,
        });
        let mut levels: HashMap<String, (u64, Decimal)> = HashMap::new();
        let mut after = 0u64;
        loop {
            let page = self
                .call(run, System::Lightspeed, || {
                    self.lightspeed
                        .inventory_changes(conn, after, self.config.page_size)
                })
                .await
                .map_err(|e| Fail::api("reading Lightspeed inventory", e))?;
            if page.items.is_empty() {
                break;
            }
            progress(ReconcileProgress::Advance(page.items.len() as u64));
            self.renew_if_due(run).await?;
            after = next_after(after, page.max_version, "inventory")?;
            for r in page.items {
                if r.outlet_id == run.outlet_id {
                    let e = levels.entry(r.product_id).or_insert((0, Decimal::ZERO));
                    if r.version >= e.0 {
                        *e = (r.version, r.inventory_level);
                    }
                }
            }
        }
        // The Ecwid catalog.
        let limit = self.config.ecwid_page_size.clamp(1, 100);
        let mut catalog = EcwidCatalogIndex::new();
        let mut offset = 0u64;
        let mut phase_started = false;
        loop {
            let page = self
                .call(run, System::Ecwid, || {
                    self.ecwid.list_products(conn, offset, limit)
                })
                .await
                .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
            if !phase_started {
                progress(ReconcileProgress::Phase {
                    name: "Ecwid products",
                    total: Some(page.total),
                });
                phase_started = true;
            }
            let n = page.items.len() as u64;
            progress(ReconcileProgress::Advance(n));
            self.renew_if_due(run).await?;
            for p in &page.items {
                catalog.add(p);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        let pending = self
            .store
            .list_pending_web_sales(run.store_id)
            .await
            .map_err(|e| Fail::store("reading pending web sales", e))?;
        let pending = pending_by_sku(&pending);
        let mut products: Vec<LsProduct> = products.into_values().collect();
        products.sort_by(|a, b| a.id.cmp(&b.id));
        let levels: HashMap<String, Decimal> =
            levels.into_iter().map(|(k, (_, l))| (k, l)).collect();
        let mut report = drift::compare(run.store_id, &products, &levels, &catalog, &pending);

        if fix && !report.drift.is_empty() {
            progress(ReconcileProgress::Phase {
                name: "writing Ecwid stock",
                total: Some(report.drift.len() as u64),
            });
            let now = self.clock.now();
            let by_id: HashMap<&str, &LsProduct> =
                products.iter().map(|p| (p.id.as_str(), p)).collect();
            let ids: Vec<String> = report
                .drift
                .iter()
                .map(|d| d.lightspeed_product_id.clone())
                .collect();
            let stored = self.links_by_id(run.store_id, &ids).await?;
            let mut writes = Vec::with_capacity(report.drift.len());
            let mut link_updates = Vec::new();
            for d in &report.drift {
                let Some(p) = by_id.get(d.lightspeed_product_id.as_str()) else {
                    continue;
                };
                let before = stored.get(&d.lightspeed_product_id);
                let link = CatalogLink::observe(before, p, now).resolved(
                    &Resolution::Linked {
                        target: d.target,
                        level: d.actual,
                    },
                    now,
                );
                if before != Some(&link) {
                    link_updates.push(CatalogLinkUpdate {
                        link: link.clone(),
                        previous_sku_key: before.map(|b| b.sku_key.clone()),
                    });
                }
                writes.push(Write {
                    record: PushedStock {
                        lightspeed_product_id: d.lightspeed_product_id.clone(),
                        target: d.target,
                        level: d.expected,
                        ls_level: d.ls_level,
                        pending: d.pending,
                        updated_at: now,
                    },
                    link,
                });
            }
            self.put_links(run.store_id, &link_updates).await?;
            let context = format!("reconcile:{}", now.timestamp_nanos_opt().unwrap_or(0));
            let outcomes = self.write_levels(conn, run, &writes, &context).await?;
            let mut done = Vec::new();
            for (w, outcome) in writes.into_iter().zip(outcomes) {
                let ok = outcome == WriteOutcome::Written;
                if let Some(row) = report
                    .drift
                    .iter_mut()
                    .find(|d| d.lightspeed_product_id == w.record.lightspeed_product_id)
                {
                    row.fixed = ok;
                }
                if ok {
                    report.fixed += 1;
                    done.push(w.record);
                } else {
                    report.fix_failed += 1;
                }
                progress(ReconcileProgress::Advance(1));
            }
            if !done.is_empty() {
                self.store
                    .put_pushed_stock(run.store_id, &done)
                    .await
                    .map_err(|e| Fail::store("recording pushed stock", e))?;
            }
        }
        Ok(report)
    }
}
