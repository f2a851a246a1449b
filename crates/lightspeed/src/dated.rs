//! The 2026-07 calls that differ from legacy in more than their path prefix: sale creation
//! with a client-supplied id, the sale lookup by that id, and the inventory feed (a POST
//! that reads, answering a bare array). Sources: `crates/sandbox/tests/fixtures/lightspeed/
//! 2026-07/MAPPING.md` (§1, §2, §5 and §8).

use crate::{AnyPage, DataOne, LightspeedClient, RawSale, parse, remaining_of};
use els_core::inventory::{FeedPage, InventoryRecord};
use els_core::lightspeed::{PostedSale, SaleDraft, dated};
use els_core::{ApiError, Connection};

/// `InventoryRequest.size` is at most 5000.
const MAX_INVENTORY_PAGE: usize = 5000;

impl LightspeedClient {
    /// `POST /api/<version>/sales` with our client-supplied id (`dated::sale_id`).
    ///
    /// What a second POST of the same id does is not documented (MAPPING.md §5): it may be
    /// refused. A refusal is therefore checked once against `GET /sales/{id}`: if our sale is
    /// there (an earlier attempt whose answer was lost), it is the answer. A 409 whose sale
    /// cannot be read yet is an unknown outcome (the poster searches again before any repost),
    /// never a park. The ledger and the search before a repost stay the guarantee.
    pub(crate) async fn post_dated_sale(
        &self,
        conn: &Connection,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        let body = dated::sale_request(sale).map_err(|e| ApiError::Rejected {
            status: 400,
            detail: format!("not sent: {e}"),
        })?;
        let path = self.path(conn, "/sales");
        match self
            .post_unsafe::<_, DataOne<RawSale>>(conn, &path, &body)
            .await
        {
            Ok(created) => Ok(created.data.into()),
            Err(refused @ ApiError::Rejected { .. }) => {
                let conflict = matches!(refused, ApiError::Rejected { status: 409, .. });
                match self.our_dated_sale(conn, &sale.invoice_number).await {
                    Ok(Some(existing)) => {
                        tracing::info!(
                            sale_id = %existing.id,
                            "the sale POST was refused but our sale exists: adopted"
                        );
                        Ok(existing)
                    }
                    // A conflict on our own id means a sale with it exists even if it cannot
                    // be read yet: never a reason to park, always one to look again later.
                    _ if conflict => Err(ApiError::OutcomeUnknown {
                        detail: format!(
                            "{refused}; a sale with our id may exist but was not readable yet"
                        ),
                    }),
                    _ => Err(refused),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The sale created under our id for `invoice_number`, if there is one and it is ours
    /// (`GET /sales/{id}`; its invoice number or `source.id` is checked like a search hit).
    /// Sales posted through the legacy API have Lightspeed's ids and are found by the
    /// invoice-number search instead.
    pub(crate) async fn our_dated_sale(
        &self,
        conn: &Connection,
        invoice_number: &str,
    ) -> Result<Option<PostedSale>, ApiError> {
        let path = self.path(conn, &format!("/sales/{}", dated::sale_id(invoice_number)));
        match self.get::<DataOne<RawSale>>(conn, &path, &[]).await {
            Ok(one) => Ok(parse::sales_matching(vec![one.data], invoice_number)
                .into_iter()
                .next()),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `POST /api/<version>/inventory` (`ListInventoryRecords`), oldest change
    /// first. `sort_direction` is sent as `asc`: its default is `desc`, under which a page
    /// above `after` would hold the newest records and paging by the highest version would
    /// skip the rest (MAPPING.md §8). The answer is a bare array (an enveloped page is read
    /// too); the next `after` is the items' highest `version`.
    pub(crate) async fn dated_inventory_page(
        &self,
        conn: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<InventoryRecord>, ApiError> {
        let path = self.path(conn, "/inventory");
        let body = serde_json::json!({
            "after": after,
            "size": page_size.clamp(1, MAX_INVENTORY_PAGE),
            "sort_direction": "asc",
        });
        let resp = self
            .send_read(conn, reqwest::Method::POST, &path, &[], Some(&body))
            .await?;
        let remaining = remaining_of(&resp);
        let page: AnyPage = Self::read(resp, &path).await?;
        parse::feed_page(page.into(), remaining, &path)
    }
}
