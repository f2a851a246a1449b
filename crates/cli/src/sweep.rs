//! What `els sweep`, `els backfill` and the embedded sweep timer print.

use els_core::poster::BackfillPlan;
use els_core::sweep::{StoreSweepReport, SweepOutcome};
use std::fmt::Write;

/// One line about a store's sweep run.
pub fn describe_sweep_run(r: &StoreSweepReport) -> String {
    let mut out = format!("store {}: ", r.store_id);
    match r.outcome {
        SweepOutcome::Off => {
            out.push_str("posting is off; not swept (O5)");
            return out;
        }
        SweepOutcome::Busy => {
            out.push_str("another sweep holds the store; skipped");
            return out;
        }
        SweepOutcome::Completed => out.push_str("completed"),
        SweepOutcome::Deferred => out.push_str("deferred (budget; the next run resumes)"),
    }
    let _ = write!(
        out,
        "; {} order(s) read, {} enqueued ({} missed by webhooks, {} paid since skipped as unpaid, {} stuck, {} refunded since posted), {} before go-live; swept to {}; {} Ecwid request(s)",
        r.orders_seen,
        r.found(),
        r.missed,
        r.unpaid,
        r.stuck,
        r.refunds,
        r.before_floor,
        r.swept_to
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into()),
        r.requests,
    );
    if let Some(problem) = r.health.as_ref().and_then(|h| h.problem.as_ref()) {
        let _ = write!(out, "\n  unhealthy: {problem}");
    }
    out
}

/// The table of a backfill plan; `dry_run` says whether anything was enqueued.
pub fn describe_backfill(plan: &BackfillPlan, dry_run: bool, enqueued: usize) -> String {
    let mut out = String::new();
    for item in &plan.items {
        let _ = writeln!(
            out,
            "{:<12} {:<25} {}",
            item.order_id,
            item.created
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            item.action.describe()
        );
    }
    let to_post = plan
        .items
        .iter()
        .filter(|i| matches!(i.action, els_core::poster::BackfillAction::Post { .. }))
        .count();
    let _ = writeln!(
        out,
        "{} paid order(s) in the range; {to_post} to post",
        plan.items.len()
    );
    if dry_run {
        let _ = writeln!(out, "dry run: nothing was changed");
    } else {
        let _ = writeln!(
            out,
            "{enqueued} order(s) enqueued; the poster (els serve, or the sale-poster function) posts them"
        );
    }
    out
}
