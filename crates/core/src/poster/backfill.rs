//! `els backfill`: paid orders created in a date range, posted through the same queue,
//! claim and ledger as any other, whatever the connection's go-live moment.
//!
//! [`SalePoster::plan_backfill`] decides what would happen to each order and changes
//! nothing: already posted (the ledger says so), already in Lightspeed under our invoice
//! number (a sale the ledger does not know, e.g. from a restored backup: never posted again),
//! in progress, parked, would park (and why), or post. [`BackfillPlan::messages`] are then
//! what a real run enqueues: the orders to post and those that would park (so they are parked
//! in the ledger with their reason, and can be replayed once fixed).

use super::SalePoster;
use crate::connection::Connection;
use crate::ecwid::{OrderQuery, PAID};
use crate::ledger::{OrderKey, OrderState, Reason};
use crate::ports::Clock;
use crate::ports::{
    ConnectionStore, EcwidApi, LedgerStore, LightspeedApi, LinkStore, OrderMessage,
};
use crate::sweep::search_all;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// What a backfill would do with one order.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillAction {
    /// Post it: the sale that would be posted has this total.
    Post { total: Decimal },
    /// The ledger has it posted.
    AlreadyPosted { sale_id: String },
    /// Lightspeed has a sale with its invoice number that the ledger does not know.
    InLightspeed { sale_id: String },
    /// Queued or being posted right now.
    InProgress(OrderState),
    /// Parked in the ledger: `els replay` posts it once the cause is fixed.
    Parked(Reason),
    /// It would park, for this reason.
    WouldPark(Reason),
}

impl BackfillAction {
    /// A real run enqueues the orders to post and those that would park.
    pub fn enqueues(&self) -> bool {
        matches!(self, Self::Post { .. } | Self::WouldPark(_))
    }

    /// One line for an operator.
    pub fn describe(&self) -> String {
        match self {
            Self::Post { total } => format!("post (total {total})"),
            Self::AlreadyPosted { sale_id } => format!("already posted (sale {sale_id})"),
            Self::InLightspeed { sale_id } => {
                format!(
                    "already in Lightspeed under our invoice number (sale {sale_id}); not posted"
                )
            }
            Self::InProgress(state) => format!("in progress ({state})"),
            Self::Parked(reason) => format!("parked: {reason}; replay it with els replay"),
            Self::WouldPark(reason) => format!("would park: {reason}"),
        }
    }
}

/// One order of a backfill.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillItem {
    pub order_id: String,
    pub created: Option<DateTime<Utc>>,
    pub action: BackfillAction,
}

/// Every paid order of the range, oldest first, with what would happen to it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillPlan {
    pub store_id: crate::ids::StoreId,
    pub items: Vec<BackfillItem>,
}

impl BackfillPlan {
    /// The messages a real run enqueues (`nonce` names the run).
    pub fn messages(&self, nonce: &str) -> Vec<OrderMessage> {
        self.items
            .iter()
            .filter(|i| i.action.enqueues())
            .map(|i| {
                OrderMessage::backfill(&OrderKey::new(self.store_id, i.order_id.clone()), nonce)
            })
            .collect()
    }
}

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + LinkStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// What a backfill of the paid orders created in `[since, until]` would do. Changes
    /// nothing (product links found on the way are cached, as a post would).
    pub async fn plan_backfill(
        &self,
        conn: &Connection,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BackfillPlan, String> {
        let query = OrderQuery {
            payment_status: Some(PAID.to_string()),
            created_from: Some(since.timestamp()),
            created_to: Some(until.timestamp()),
            limit: 100,
            ..OrderQuery::default()
        };
        let found = search_all(&self.ecwid, conn, &query, u32::MAX)
            .await
            .result
            .map_err(|e| format!("searching Ecwid's orders: {e}"))?
            .ok_or("Ecwid's order search kept changing while it was read; try again")?;
        let mut items = Vec::new();
        for summary in found {
            let key = OrderKey::new(conn.store_id, summary.id.clone());
            let action = self.backfill_action(conn, &key).await?;
            items.push(BackfillItem {
                created: summary
                    .create_timestamp
                    .and_then(|t| DateTime::from_timestamp(t, 0)),
                order_id: summary.id,
                action,
            });
        }
        items.sort_by(|a, b| (a.created, &a.order_id).cmp(&(b.created, &b.order_id)));
        Ok(BackfillPlan {
            store_id: conn.store_id,
            items,
        })
    }

    async fn backfill_action(
        &self,
        conn: &Connection,
        key: &OrderKey,
    ) -> Result<BackfillAction, String> {
        let entry = self
            .store
            .load_order(key)
            .await
            .map_err(|e| format!("reading the ledger: {e}"))?;
        if let Some(entry) = &entry {
            match entry.state {
                OrderState::Posted => {
                    return Ok(BackfillAction::AlreadyPosted {
                        sale_id: entry.sale_id.clone().unwrap_or_default(),
                    });
                }
                OrderState::Parked => {
                    return Ok(BackfillAction::Parked(entry.reason.clone().unwrap_or_else(
                        || Reason::new(crate::ledger::ReasonCode::InvalidOrder, "no reason kept"),
                    )));
                }
                OrderState::Queued | OrderState::Posting => {
                    return Ok(BackfillAction::InProgress(entry.state));
                }
                OrderState::Skipped => {}
            }
        }
        let sales = self
            .lightspeed
            .find_sales_by_invoice(conn, &key.invoice_number())
            .await
            .map_err(|e| format!("order {}: searching Lightspeed: {e}", key.order_id))?;
        if let Some(sale) = sales.first() {
            return Ok(BackfillAction::InLightspeed {
                sale_id: sale.id.clone(),
            });
        }
        let order = self
            .ecwid
            .get_order(conn, &key.order_id)
            .await
            .map_err(|e| format!("order {}: fetching it from Ecwid: {e}", key.order_id))?;
        Ok(match self.preview(conn, &order).await? {
            Ok(sale) => BackfillAction::Post {
                total: sale.total(),
            },
            Err(reason) => BackfillAction::WouldPark(reason),
        })
    }
}
