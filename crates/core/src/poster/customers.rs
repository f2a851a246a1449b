//! Which Lightspeed customer an order's sale is assigned to (rules C1–C4). The rules
//! themselves are pure, in [`crate::customers`]; this is their I/O: the link cache, the claim,
//! the search and the one create.

use super::claim::Raced;
use super::{Attempt, SalePoster};
use crate::connection::Connection;
use crate::customers::{self, CustomerLink, Email, LinkDecision, OrderEmail};
use crate::ecwid::EcwidOrder;
use crate::error::StoreError;
use crate::ledger::{OrderKey, Outcome};
use crate::ports::{Clock, LightspeedApi, LinkStore};
use crate::retry::retry;
use std::time::Duration;

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: LinkStore,
    L: LightspeedApi,
    C: Clock,
{
    /// The Lightspeed customer the order's sale is assigned to: the customer link if it is
    /// linked (no Lightspeed call), else a claim on the link, a search and, with no match,
    /// one create. `Ok(None)`: the order has no usable email and posts with no customer.
    /// `Err`: the attempt's outcome (a retry while another order holds the claim, or an
    /// API failure as [`Self::api_failure`] classifies it).
    pub(super) async fn resolve_customer(
        &self,
        conn: &Connection,
        key: &OrderKey,
        order: &EcwidOrder,
    ) -> Result<Option<String>, Attempt> {
        let email = match customers::order_email(order) {
            OrderEmail::Valid(email) => email,
            OrderEmail::Missing => {
                tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, "order has no email; posting it with no customer");
                return Ok(None);
            }
            OrderEmail::NotAnEmail(raw) => {
                tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, email = %crate::mask::mask_email(&raw), "order email is not an email address; posting it with no customer");
                return Ok(None);
            }
        };
        let masked = crate::mask::mask_email(email.normalised());
        let linked = retry(
            &self.clock,
            || self.try_link_customer(conn, key, order, &email, &masked),
            Raced::retry_after,
        )
        .await;
        match linked {
            Ok(customer_id) => Ok(Some(customer_id)),
            Err(Raced::Lost) => Err(Attempt {
                outcome: Outcome::Released {
                    error: format!("the customer link for {masked} kept losing races"),
                    post_may_exist: false,
                },
                retry_delay: Some(Duration::from_millis(100)),
                facts: None,
                refunded_already: false,
            }),
            Err(Raced::Failed(attempt)) => Err(attempt),
        }
    }

    /// One try of [`Self::resolve_customer`] for a valid `email`: the link, or the customer
    /// found or created under a claim on it.
    async fn try_link_customer(
        &self,
        conn: &Connection,
        key: &OrderKey,
        order: &EcwidOrder,
        email: &Email,
        masked: &str,
    ) -> Result<String, Raced<Attempt>> {
        let existing = self
            .store
            .get_customer_link(conn.store_id, email.normalised())
            .await
            .map_err(|e| Raced::Failed(Self::customer_link_failure(masked, "reading", e)))?;
        match customers::decide_link(
            existing.as_ref(),
            conn.store_id,
            email.normalised(),
            self.clock.now(),
            self.lease(),
        ) {
            LinkDecision::Use { customer_id } => Ok(customer_id),
            LinkDecision::Wait { retry_in } => {
                // The holder needs one search and at most one create: look again soon.
                Err(Raced::Failed(Attempt {
                    outcome: Outcome::Released {
                        error: format!(
                            "another order is finding or creating the Lightspeed customer for {masked}"
                        ),
                        post_may_exist: false,
                    },
                    retry_delay: Some(retry_in.max(Duration::from_millis(50))),
                    facts: None,
                    refunded_already: false,
                }))
            }
            LinkDecision::Claim {
                link,
                expected_version,
            } => match self.store.put_customer_link(&link, expected_version).await {
                Ok(()) => self
                    .find_or_create_customer(conn, key, order, email, masked, &link)
                    .await
                    .map_err(Raced::Failed),
                // Another order claimed or linked it first: read it again.
                Err(StoreError::Conflict(_)) => Err(Raced::Lost),
                Err(e) => Err(Raced::Failed(Self::customer_link_failure(
                    masked, "claiming", e,
                ))),
            },
        }
    }

    /// Under the claim `claim`: search (re-checking every hit), create if nothing matches,
    /// then record the link. A matched customer is never changed (C2).
    async fn find_or_create_customer(
        &self,
        conn: &Connection,
        key: &OrderKey,
        order: &EcwidOrder,
        email: &Email,
        masked: &str,
        claim: &CustomerLink,
    ) -> Result<String, Attempt> {
        // Whether Lightspeed's email search ignores case is not documented: search the
        // lower-cased email, and if that finds no exact match, the email as the buyer typed
        // it. Hits are re-checked case-insensitively either way.
        let mut queries = vec![email.normalised().to_string()];
        if email.as_given() != email.normalised() {
            queries.push(email.as_given().to_string());
        }
        let mut hits = Vec::new();
        for query in queries {
            match self
                .lightspeed
                .search_customers_by_email(conn, &query)
                .await
            {
                Ok(found) => hits.extend(found),
                Err(e) => {
                    self.release_customer_claim(claim).await;
                    return Err(self.api_failure(
                        key,
                        &format!("searching Lightspeed customers for {masked}"),
                        e,
                        false,
                        "Lightspeed",
                    ));
                }
            }
            if customers::choose_customer(&hits, email.normalised()).is_some() {
                break;
            }
        }
        let customer_id = match customers::choose_customer(&hits, email.normalised()) {
            Some((customer, count)) => {
                if count > 1 {
                    tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, email = %masked, count, customer_id = %customer.id, "several Lightspeed customers have this email; using the one with the smallest id");
                }
                tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, email = %masked, customer_id = %customer.id, "matched an existing Lightspeed customer");
                customer.id.clone()
            }
            None => {
                let new = customers::new_customer(order, email);
                match self.lightspeed.create_customer(conn, &new).await {
                    Ok(created) => {
                        tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, email = %masked, customer_id = %created.id, "created a Lightspeed customer");
                        created.id
                    }
                    Err(e) => {
                        // After a timeout the customer may exist: whoever claims next
                        // searches before creating, so it is found, not duplicated.
                        self.release_customer_claim(claim).await;
                        return Err(self.api_failure(
                            key,
                            &format!("creating a Lightspeed customer for {masked}"),
                            e,
                            false,
                            "Lightspeed",
                        ));
                    }
                }
            }
        };
        let linked = claim.linked(&customer_id, self.clock.now());
        if let Err(e) = self
            .store
            .put_customer_link(&linked, Some(claim.version))
            .await
        {
            // The sale can still carry the customer. A claim left behind expires, and its
            // taker searches first and finds this customer.
            tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, email = %masked, error = %e, "could not record the customer link");
        }
        Ok(customer_id)
    }

    /// Gives the claim up after a failure, so the next order need not wait for its lease.
    /// Best effort: if this fails too, the claim simply expires.
    async fn release_customer_claim(&self, claim: &CustomerLink) {
        let released = claim.released(self.clock.now());
        if let Err(e) = self
            .store
            .put_customer_link(&released, Some(claim.version))
            .await
        {
            tracing::debug!(store_id = claim.store_id.get(), error = %e, "could not release the customer claim");
        }
    }

    fn customer_link_failure(masked: &str, doing: &str, e: StoreError) -> Attempt {
        Attempt {
            outcome: Outcome::Released {
                error: format!("{doing} the customer link for {masked}: {e}"),
                post_may_exist: false,
            },
            retry_delay: None,
            facts: None,
            refunded_already: false,
        }
    }
}
