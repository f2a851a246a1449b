//! Publishing levels (invariant 6): which candidates are eligible (P1), the level each gets
//! (pending web quantities subtracted), writing only changes, recording what was written;
//! and re-publishing products whose pending quantity dropped.

use super::{Candidate, Fail, InventoryMirror, Run, System, Write};
use crate::connection::Connection;
use crate::error::ApiError;
use crate::inventory::{
    CatalogLinkUpdate, EcwidTarget, PushedStock, StockLevel, WriteOutcome, eligibility,
    level_to_publish, pending_dropped,
};
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// Re-publishes products whose pending web quantity dropped since the last runs, from
    /// the Lightspeed level they were last published with (see the parent module).
    pub(super) async fn republish_pending_drops(
        &self,
        conn: &Connection,
        run: &mut Run,
    ) -> Result<(), Fail> {
        let dropped = pending_dropped(&run.snapshot_before, &run.pending);
        if dropped.is_empty() {
            return Ok(());
        }
        let owners = self
            .store
            .lightspeed_products_with_sku(run.store_id, &dropped)
            .await
            .map_err(|e| Fail::store("reading the SKU index", e))?;
        let ids: Vec<String> = owners.into_values().flatten().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let links = self.links_by_id(run.store_id, &ids).await?;
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;
        let mut candidates = Vec::new();
        for (id, p) in &pushed {
            let Some(link) = links.get(id) else { continue };
            let now_pending = run.pending.get(&link.sku_key).copied().unwrap_or_default();
            if p.ls_level.is_some() && p.pending > now_pending {
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: p.ls_level,
                });
            }
        }
        run.report.pending_republished += candidates.len() as u64;
        let context = format!(
            "pending:{}:{}",
            run.cursor.inventory_version, run.cursor.version
        );
        self.publish(conn, run, candidates, &context).await
    }

    /// Decides, writes and records the levels of `candidates` (invariant 6).
    pub(super) async fn publish(
        &self,
        conn: &Connection,
        run: &mut Run,
        candidates: Vec<Candidate>,
        context: &str,
    ) -> Result<(), Fail> {
        if candidates.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let keys: Vec<String> = candidates
            .iter()
            .filter(|c| c.link.live && !c.link.sku_key.is_empty())
            .map(|c| c.link.sku_key.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let owners = if keys.is_empty() {
            HashMap::new()
        } else {
            self.store
                .lightspeed_products_with_sku(run.store_id, &keys)
                .await
                .map_err(|e| Fail::store("reading the SKU index", e))?
        };
        let ids: Vec<String> = candidates
            .iter()
            .map(|c| c.link.lightspeed_product_id.clone())
            .collect();
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;

        let mut writes: Vec<Write> = Vec::new();
        let mut refresh: Vec<PushedStock> = Vec::new();
        for c in candidates {
            let link = c.link;
            let n_owners = owners.get(&link.sku_key).map_or(1, Vec::len);
            let target = match eligibility(&link, n_owners) {
                Ok(t) => t,
                Err(skip) => {
                    run.report.note_skip(skip, &link.sku);
                    continue;
                }
            };
            let pending = if link.has_inventory {
                run.pending.get(&link.sku_key).copied().unwrap_or_default()
            } else {
                Decimal::ZERO
            };
            let level = match (link.has_inventory, c.ls_level) {
                (false, _) => StockLevel::Unlimited,
                (true, Some(l)) => level_to_publish(true, l, pending),
                (true, None) => continue,
            };
            let record = PushedStock {
                lightspeed_product_id: link.lightspeed_product_id.clone(),
                target,
                level,
                ls_level: c.ls_level.filter(|_| link.has_inventory),
                pending,
                updated_at: now,
            };
            match pushed.get(&link.lightspeed_product_id) {
                Some(p) if !run.rewrite_all && p.target == target && p.level == level => {
                    run.report.unchanged += 1;
                    if p.ls_level != record.ls_level || p.pending != record.pending {
                        refresh.push(record);
                    }
                }
                _ => writes.push(Write { record, link }),
            }
        }

        let outcomes = self.write_levels(conn, run, &writes, context).await?;
        let mut done = refresh;
        let mut stale: Vec<CatalogLinkUpdate> = Vec::new();
        let mut retry: Option<String> = None;
        for (w, outcome) in writes.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Written => {
                    run.report.written += 1;
                    if w.record.level == StockLevel::Unlimited {
                        run.report.set_unlimited += 1;
                    }
                    done.push(w.record);
                }
                WriteOutcome::Gone => {
                    run.report.stale_links += 1;
                    tracing::warn!(store_id = run.store_id.get(), sku = %w.link.sku, target = %w.record.target, "Ecwid has no such product or combination any more; the link is looked up again next time");
                    stale.push(CatalogLinkUpdate {
                        previous_sku_key: Some(w.link.sku_key.clone()),
                        link: w.link.stale(now),
                    });
                }
                WriteOutcome::Rejected(detail) => {
                    run.report.rejected += 1;
                    tracing::error!(store_id = run.store_id.get(), sku = %w.link.sku, target = %w.record.target, %detail, "Ecwid refused a stock write");
                }
                WriteOutcome::Retry(detail) => {
                    retry.get_or_insert(detail);
                }
            }
        }
        // What succeeded is recorded even when the page fails, so its repeat does not
        // write it again.
        if !done.is_empty() {
            self.store
                .put_pushed_stock(run.store_id, &done)
                .await
                .map_err(|e| Fail::store("recording pushed stock", e))?;
        }
        self.put_links(run.store_id, &stale).await?;
        match retry {
            None => Ok(()),
            Some(detail) => Err(Fail::api(
                "writing stock to Ecwid",
                ApiError::Unavailable { detail },
            )),
        }
    }

    /// Writes levels to Ecwid: single PUTs for a few, batches of up to `batch_max` for many.
    /// Returns one outcome per write, in order.
    pub(super) async fn write_levels(
        &self,
        conn: &Connection,
        run: &mut Run,
        writes: &[Write],
        context: &str,
    ) -> Result<Vec<WriteOutcome>, Fail> {
        let mut outcomes = Vec::with_capacity(writes.len());
        if writes.is_empty() {
            return Ok(outcomes);
        }
        if writes.len() <= self.config.batch_threshold {
            for w in writes {
                let result = self
                    .call(run, System::Ecwid, || {
                        self.ecwid.set_stock(conn, &w.record.target, w.record.level)
                    })
                    .await;
                let outcome = match result {
                    Ok(()) => {
                        run.report.written_by_put += 1;
                        WriteOutcome::Written
                    }
                    Err(ApiError::NotFound { .. }) => WriteOutcome::Gone,
                    Err(e @ ApiError::Unauthorized { .. }) => {
                        return Err(Fail::api("writing stock to Ecwid", e));
                    }
                    Err(e) if e.is_retryable() => WriteOutcome::Retry(e.to_string()),
                    Err(e) => WriteOutcome::Rejected(e.to_string()),
                };
                outcomes.push(outcome);
            }
            return Ok(outcomes);
        }
        for (i, chunk) in writes
            .chunks(self.config.batch_max.clamp(1, 500))
            .enumerate()
        {
            let pairs: Vec<(EcwidTarget, StockLevel)> = chunk
                .iter()
                .map(|w| (w.record.target, w.record.level))
                .collect();
            let batch_context = format!("{context}:{i}");
            outcomes.extend(self.write_batch(conn, run, &pairs, &batch_context).await?);
        }
        Ok(outcomes)
    }
}
