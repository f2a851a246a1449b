//! Lightspeed OAuth: keeping a connection's access token alive when refresh tokens rotate.
//!
//! [`AuthenticatedLightspeed`] wraps any [`LightspeedApi`] and is one itself, so the poster and
//! the inventory mirror do not know about tokens. Before a call it uses the newest pair it
//! knows (its own cache or the store) and refreshes a token that is about to expire; a 401
//! on a refreshable token is refreshed once and the call repeated (a 401 means Lightspeed did
//! not act on the request, so even a sale POST is safe to repeat).
//!
//! Refresh tokens rotate: spending one kills it, so two workers must never both spend it.
//! * In one process, one async mutex per store: concurrent tasks do one refresh.
//! * Across processes (Lambda instances), the refresher first claims a short lease on the
//!   connection item with a version-conditioned write
//!   ([`LightspeedAccount::refresh_lease_until`]). Losers re-read until the stored access
//!   token changes, and use it. The winner stores the new pair with another conditioned
//!   write, retried on transient store errors: losing the newest refresh token locks the
//!   store out until an operator reconnects.
//!
//! Personal tokens (no refresh token) pass straight through.

use crate::connection::{Connection, LightspeedAccount, Secret};
use crate::deadline::Deadline;
use crate::error::{ApiError, StoreError};
use crate::ids::{Sku, StoreId};
use crate::inventory::{FeedPage, InventoryRecord};
use crate::lightspeed::{
    LsCustomer, LsProduct, LsSale, NewCustomer, PostedSale, SaleDraft, SaleSetup,
};
use crate::ports::{Clock, ConnectionStore, LightspeedApi};
use crate::retry::{Backoff, NoJitter};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A new token pair from the token endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// `None` when the answer carried no refresh token: the old one stays in use.
    pub refresh_token: Option<Secret>,
    /// `None` when the answer said nothing usable about the lifetime.
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenGrant {
    /// Puts the pair into an account (keeping the old refresh token when none came back) and
    /// ends any refresh lease.
    pub fn apply_to(&self, account: &mut LightspeedAccount) {
        account.access_token = self.access_token.clone();
        if let Some(r) = &self.refresh_token {
            account.refresh_token = Some(r.clone());
        }
        account.expires_at = self.expires_at;
        account.refresh_lease_until = None;
    }
}

/// The token endpoint's JSON answer, read defensively: the lifetime may come as `expires`
/// (epoch seconds) and/or `expires_in` (seconds), as numbers or numeric strings (the
/// reference marks the lifetime UNCERTAIN).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Epoch seconds (milliseconds and plain lifetimes are recognised too).
    #[serde(default)]
    pub expires: Option<serde_json::Value>,
    /// Seconds from now.
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
}

/// Epoch values below this are not dates (before 2001-09-09): read them as a lifetime.
const EPOCH_FLOOR: i64 = 1_000_000_000;
/// Epoch values above this are milliseconds.
const EPOCH_MS_FLOOR: i64 = 100_000_000_000;

fn number(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

impl TokenResponse {
    /// The grant, given the time the answer arrived. When both `expires` and `expires_in`
    /// are present the earlier instant wins: refreshing early costs one call, late a 401.
    pub fn into_grant(self, now: DateTime<Utc>) -> Result<TokenGrant, ApiError> {
        let access_token = self
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ApiError::Decode {
                detail: "token endpoint: the answer has no access_token".into(),
            })?;
        let after = |secs: i64| (secs > 0).then(|| now + chrono::Duration::seconds(secs));
        let from_expires = self.expires.as_ref().and_then(number).and_then(|e| {
            if e >= EPOCH_MS_FLOOR {
                Utc.timestamp_millis_opt(e).single()
            } else if e >= EPOCH_FLOOR {
                Utc.timestamp_opt(e, 0).single()
            } else {
                after(e)
            }
        });
        let from_expires_in = self.expires_in.as_ref().and_then(number).and_then(after);
        let expires_at = match (from_expires, from_expires_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(TokenGrant {
            access_token: Secret::new(access_token),
            refresh_token: self
                .refresh_token
                .filter(|t| !t.trim().is_empty())
                .map(Secret::new),
            expires_at,
        })
    }
}

/// The token endpoint, as a port.
pub trait LightspeedTokens: Send + Sync {
    /// `POST /api/1.0/token` with `grant_type=refresh_token`: the answer as sent (the
    /// service reads it with [`TokenResponse::into_grant`]). A refused refresh token (or
    /// refused client credentials) is [`ApiError::Unauthorized`] or [`ApiError::Rejected`].
    fn refresh(
        &self,
        connection: &Connection,
        refresh_token: &Secret,
    ) -> impl Future<Output = Result<TokenResponse, ApiError>> + Send;
}

/// Timings of token refresh.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Refresh a token this long before it expires.
    pub refresh_margin: Duration,
    /// How long a refresher holds the claim; a crashed refresher's claim ends after it. It
    /// must outlast the token request (the HTTP timeout) plus every attempt to store the new
    /// pair, or a second worker could spend the same refresh token.
    pub lease: Duration,
    /// How often a worker waiting for another's refresh re-reads the store.
    pub poll_interval: Duration,
    /// How long a worker waits for another's refresh before giving up (a retryable error).
    pub max_wait: Duration,
    /// Attempts to store a new pair before giving up on the store (the pair is then only
    /// in this process's memory, and an error is logged).
    pub store_attempts: u32,
    /// The time a refresh needs before the invocation's deadline ([`Deadline`]): twice the
    /// token request's timeout. A refresh killed after Lightspeed rotated the pair would
    /// lose the only usable refresh token, so with less left none starts.
    pub refresh_time_needed: Duration,
}

impl AuthConfig {
    /// Retries of storing a new pair: `store_attempts` in all, waiting 100 ms, then twice
    /// as long each time, at most 2 s.
    pub fn store_backoff(&self) -> Backoff {
        Backoff::exponential(
            self.store_attempts.max(1),
            Duration::from_millis(100),
            Duration::from_secs(2),
        )
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            max_wait: Duration::from_secs(25),
            store_attempts: 5,
            refresh_time_needed: Duration::from_secs(20),
        }
    }
}

/// Whether an account's access token should be refreshed before use: it has a refresh
/// token, and it expires within `margin` of `now` (an unknown expiry waits for a 401).
pub fn needs_refresh(account: &LightspeedAccount, now: DateTime<Utc>, margin: Duration) -> bool {
    if account.refresh_token.is_none() {
        return false;
    }
    match account.expires_at {
        Some(at) => at - chrono::Duration::from_std(margin).unwrap_or_default() <= now,
        None => false,
    }
}

/// Whether the access token is still inside its lifetime (or its lifetime is unknown).
fn still_valid(account: &LightspeedAccount, now: DateTime<Utc>) -> bool {
    account.expires_at.is_none_or(|at| at > now)
}

/// What one process knows about one store's tokens.
#[derive(Default)]
struct Slot {
    /// Held by the task refreshing this store's pair.
    refreshing: futures::lock::Mutex<()>,
    /// The newest connection this process has seen or written, by version.
    newest: Mutex<Option<Connection>>,
    /// A refreshed pair the store did not take (the connection as it should be stored, and
    /// the version it replaces, the refresh token it spent): stored again before the
    /// connection is used.
    unsaved: Mutex<Option<(Connection, u64, Secret)>>,
}

impl Slot {
    fn newest(&self) -> Option<Connection> {
        self.newest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn unsaved(&self) -> Option<(Connection, u64, Secret)> {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_unsaved(&self, pair: Option<(Connection, u64, Secret)>) {
        *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = pair;
    }

    fn remember(&self, conn: &Connection) {
        let mut n = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        if n.as_ref().is_none_or(|old| conn.version >= old.version) {
            *n = Some(conn.clone());
        }
    }
}

/// A [`LightspeedApi`] that keeps OAuth tokens fresh around an inner one.
pub struct AuthenticatedLightspeed<L, S, T, C> {
    inner: L,
    store: S,
    tokens: T,
    clock: C,
    config: AuthConfig,
    slots: Mutex<HashMap<StoreId, Arc<Slot>>>,
    deadline: Deadline,
}

fn store_error(doing: &str, e: StoreError) -> ApiError {
    ApiError::Unavailable {
        detail: format!("{doing}: {e}"),
    }
}

impl<L, S, T, C> AuthenticatedLightspeed<L, S, T, C>
where
    L: LightspeedApi,
    S: ConnectionStore,
    T: LightspeedTokens,
    C: Clock,
{
    pub fn new(inner: L, store: S, tokens: T, clock: C, config: AuthConfig) -> Self {
        Self {
            inner,
            store,
            tokens,
            clock,
            config,
            slots: Mutex::new(HashMap::new()),
            deadline: Deadline::none(),
        }
    }

    /// Starts no refresh with less than [`AuthConfig::refresh_time_needed`] left before
    /// `deadline` (the Lambda function sets it per invocation).
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets [`AuthConfig::refresh_time_needed`] (twice the token request's timeout).
    pub fn with_refresh_time_needed(mut self, needed: Duration) -> Self {
        self.config.refresh_time_needed = needed;
        self
    }

    pub fn inner(&self) -> &L {
        &self.inner
    }

    fn slot(&self, store_id: StoreId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(store_id).or_default().clone()
    }

    /// The connection with the newest account known: the caller's, or this process's cached
    /// one when that is at least as new (it may hold a pair the store failed to keep).
    fn newest(&self, slot: &Slot, conn: &Connection) -> Connection {
        match slot.newest() {
            Some(cached) if cached.version >= conn.version => {
                let mut c = conn.clone();
                c.lightspeed = cached.lightspeed;
                c
            }
            _ => conn.clone(),
        }
    }

    /// Runs `op` with a fresh token: refreshes first when the token is about to expire, and
    /// once more after a 401.
    async fn call<R, F, Fut>(&self, conn: &Connection, op: F) -> Result<R, ApiError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<R, ApiError>>,
    {
        if conn.lightspeed.refresh_token.is_none() && !self.has_slot(conn.store_id) {
            return op(conn.clone()).await;
        }
        let slot = self.slot(conn.store_id);
        if let Some((unsaved, expected, spent)) = slot.unsaved() {
            // The last refresh's pair is only in memory: store it before anything else.
            self.store_unsaved(&slot, unsaved, expected, &spent).await?;
        }
        let mut current = self.newest(&slot, conn);
        if current.lightspeed.refresh_token.is_none() {
            return op(current).await;
        }
        if needs_refresh(
            &current.lightspeed,
            self.clock.now(),
            self.config.refresh_margin,
        ) {
            match self.refreshed(&slot, &current).await {
                Ok(fresh) => current = fresh,
                // The old token still works for a while: use it rather than fail now.
                Err(e) if still_valid(&current.lightspeed, self.clock.now()) => {
                    tracing::warn!(store_id = conn.store_id.get(), error = %e, "refreshing the Lightspeed token failed; using the current one while it lasts");
                }
                Err(e) => return Err(e),
            }
        }
        match op(current.clone()).await {
            Err(ApiError::Unauthorized { status: 401, .. })
                if current.lightspeed.refresh_token.is_some() =>
            {
                tracing::info!(
                    store_id = conn.store_id.get(),
                    "Lightspeed answered 401; refreshing the token"
                );
                let fresh = self.refreshed(&slot, &current).await?;
                op(fresh).await
            }
            other => other,
        }
    }

    fn has_slot(&self, store_id: StoreId) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&store_id)
    }

    /// A connection whose token is newer than `seen`'s: another worker's result, or a pair
    /// this worker refreshed itself. Exactly one worker spends the refresh token.
    async fn refreshed(&self, slot: &Slot, seen: &Connection) -> Result<Connection, ApiError> {
        let _one_per_process = slot.refreshing.lock().await;
        let usable = |c: &Connection, now| {
            c.lightspeed.access_token != seen.lightspeed.access_token
                && !needs_refresh(&c.lightspeed, now, self.config.refresh_margin)
        };
        if let Some(cached) = slot.newest()
            && usable(&cached, self.clock.now())
        {
            return Ok(cached);
        }
        let store_id = seen.store_id;
        let started = self.clock.now();
        let max_wait = chrono::Duration::from_std(self.config.max_wait).unwrap_or_default();
        // Bounded: each turn either sleeps or follows a write that changed the item.
        for _ in 0..10_000 {
            let stored = self
                .store
                .get_connection(store_id)
                .await
                .map_err(|e| store_error("reading the connection for a token refresh", e))?
                .ok_or_else(|| ApiError::Unauthorized {
                    status: 401,
                    detail: format!("store {store_id} has no connection any more"),
                })?;
            let now = self.clock.now();
            if usable(&stored, now) {
                slot.remember(&stored);
                return Ok(stored);
            }
            let Some(refresh_token) = stored.lightspeed.refresh_token.clone() else {
                return Err(ApiError::Unauthorized {
                    status: 401,
                    detail: "the stored Lightspeed token has expired and there is no refresh token; reconnect the Lightspeed account".into(),
                });
            };
            if now - started > max_wait {
                return Err(ApiError::Unavailable {
                    detail: format!(
                        "waited {}s for another worker to refresh the Lightspeed token",
                        self.config.max_wait.as_secs()
                    ),
                });
            }
            if stored
                .lightspeed
                .refresh_lease_until
                .is_some_and(|t| t > now)
            {
                self.clock.sleep(self.config.poll_interval).await;
                continue;
            }
            if !self.deadline.allows(now, self.config.refresh_time_needed) {
                return Err(ApiError::Unavailable {
                    detail: "too little time left in this invocation to refresh the Lightspeed token safely".into(),
                });
            }
            let mut claimed = stored.clone();
            claimed.lightspeed.refresh_lease_until =
                Some(now + chrono::Duration::from_std(self.config.lease).unwrap_or_default());
            claimed.version = stored.version + 1;
            match self
                .store
                .put_connection(&claimed, Some(stored.version))
                .await
            {
                Ok(()) => {
                    return self
                        .refresh_as_leaseholder(slot, claimed, refresh_token)
                        .await;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_error("claiming the token refresh", e)),
            }
        }
        Err(ApiError::Unavailable {
            detail: "the connection kept changing during a token refresh".into(),
        })
    }

    /// Spends the refresh token (this worker holds the lease) and stores the new pair.
    async fn refresh_as_leaseholder(
        &self,
        slot: &Slot,
        claimed: Connection,
        refresh_token: Secret,
    ) -> Result<Connection, ApiError> {
        let store_id = claimed.store_id;
        let answer = self
            .tokens
            .refresh(&claimed, &refresh_token)
            .await
            .and_then(|r| r.into_grant(self.clock.now()));
        match answer {
            Ok(grant) => {
                tracing::info!(
                    store_id = store_id.get(),
                    "refreshed the Lightspeed access token"
                );
                let stored = match self
                    .store_pair(claimed.clone(), &grant, &refresh_token)
                    .await
                {
                    Ok(stored) => stored,
                    Err(unsaved) => {
                        slot.set_unsaved(Some((
                            unsaved.clone(),
                            claimed.version,
                            refresh_token.clone(),
                        )));
                        unsaved
                    }
                };
                slot.remember(&stored);
                Ok(stored)
            }
            Err(e) => {
                // A refusal may mean another worker spent this refresh token after our lease
                // ran out: then its stored pair is the answer, not "reconnect".
                if let Ok(Some(current)) = self.store.get_connection(store_id).await
                    && current.lightspeed.refresh_token.as_ref() != Some(&refresh_token)
                {
                    if still_valid(&current.lightspeed, self.clock.now()) {
                        slot.remember(&current);
                        return Ok(current);
                    }
                    return Err(ApiError::Unavailable {
                        detail: "another worker refreshed the Lightspeed token meanwhile".into(),
                    });
                }
                let mut released = claimed.clone();
                released.lightspeed.refresh_lease_until = None;
                released.version = claimed.version + 1;
                if let Err(se) = self
                    .store
                    .put_connection(&released, Some(claimed.version))
                    .await
                {
                    tracing::warn!(store_id = store_id.get(), error = %se, "could not release the token refresh lease; it runs out by itself");
                }
                Err(match e {
                    ApiError::Unauthorized { status, detail }
                    | ApiError::Rejected { status, detail } => ApiError::Unauthorized {
                        status,
                        detail: format!(
                            "Lightspeed refused the refresh token ({detail}); reconnect the Lightspeed account"
                        ),
                    },
                    other => other,
                })
            }
        }
    }

    /// Stores the new pair, conditioned on the lease write. Retries transient failures; on
    /// a conflict (someone edited the connection meanwhile) merges the pair into theirs when
    /// it still holds the token just spent. Returns the connection to use; Err: the store
    /// did not take the pair (the connection as it should be stored).
    async fn store_pair(
        &self,
        claimed: Connection,
        grant: &TokenGrant,
        spent: &Secret,
    ) -> Result<Connection, Connection> {
        let store_id = claimed.store_id;
        let mut fresh = claimed.clone();
        grant.apply_to(&mut fresh.lightspeed);
        fresh.version = claimed.version + 1;
        let mut expected = claimed.version;
        let mut tries = self.config.store_backoff().start(NoJitter);
        loop {
            // A merged pair is stored again at once; a failed write after a wait.
            let at_once = match self.store.put_connection(&fresh, Some(expected)).await {
                Ok(()) => return Ok(fresh),
                Err(StoreError::Conflict(_)) => match self.store.get_connection(store_id).await {
                    Ok(Some(current)) if current.lightspeed.access_token == grant.access_token => {
                        // An earlier attempt did land.
                        return Ok(current);
                    }
                    Ok(Some(current))
                        if current.lightspeed.refresh_token.as_ref() == Some(spent) =>
                    {
                        let mut merged = current.clone();
                        grant.apply_to(&mut merged.lightspeed);
                        merged.version = current.version + 1;
                        expected = current.version;
                        fresh = merged;
                        true
                    }
                    Ok(Some(current)) => {
                        tracing::warn!(
                            store_id = store_id.get(),
                            "the Lightspeed account was replaced during a token refresh; keeping the stored one"
                        );
                        return Ok(current);
                    }
                    Ok(None) => return Ok(fresh),
                    Err(e) => {
                        tracing::warn!(store_id = store_id.get(), error = %e, "re-reading the connection after a conflict failed");
                        false
                    }
                },
                Err(e) => {
                    tracing::warn!(store_id = store_id.get(), error = %e, "storing the refreshed Lightspeed token failed; retrying");
                    false
                }
            };
            let again = if at_once {
                tries.next_wait().is_some()
            } else {
                tries.pause(&self.clock).await
            };
            if !again {
                break;
            }
        }
        tracing::error!(
            store_id = store_id.get(),
            "could not store the refreshed Lightspeed token pair: the old refresh token is spent; it is stored again before the connection is used, and the connection must be reconnected if this process stops first"
        );
        Err(fresh)
    }

    /// Stores a pair the last refresh could not: Ok once stored (or superseded), else a
    /// retryable error, so nothing uses the connection while only memory holds its tokens.
    async fn store_unsaved(
        &self,
        slot: &Slot,
        unsaved: Connection,
        expected: u64,
        spent: &Secret,
    ) -> Result<(), ApiError> {
        let store_id = unsaved.store_id;
        let mut claimed = unsaved.clone();
        claimed.version = expected;
        let grant = TokenGrant {
            access_token: unsaved.lightspeed.access_token.clone(),
            refresh_token: unsaved.lightspeed.refresh_token.clone(),
            expires_at: unsaved.lightspeed.expires_at,
        };
        match self.store_pair(claimed, &grant, spent).await {
            Ok(stored) => {
                tracing::info!(
                    store_id = store_id.get(),
                    "stored the refreshed Lightspeed token pair on a later try"
                );
                slot.set_unsaved(None);
                slot.remember(&stored);
                Ok(())
            }
            Err(_) => Err(ApiError::Unavailable {
                detail: "the refreshed Lightspeed token pair is not stored yet; retrying".into(),
            }),
        }
    }
}

impl<L, S, T, C> LightspeedApi for AuthenticatedLightspeed<L, S, T, C>
where
    L: LightspeedApi,
    S: ConnectionStore,
    T: LightspeedTokens,
    C: Clock,
{
    fn generation_for(&self, connection: &Connection) -> Option<crate::lightspeed::LsApiVersion> {
        self.inner.generation_for(connection)
    }

    async fn post_sale(
        &self,
        connection: &Connection,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        let inner = &self.inner;
        self.call(
            connection,
            |c| async move { inner.post_sale(&c, sale).await },
        )
        .await
    }

    async fn find_sales_by_invoice(
        &self,
        connection: &Connection,
        invoice_number: &str,
    ) -> Result<Vec<PostedSale>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.find_sales_by_invoice(&c, invoice_number).await
        })
        .await
    }

    async fn get_sale(
        &self,
        connection: &Connection,
        sale_id: &str,
    ) -> Result<Option<LsSale>, ApiError> {
        let inner = &self.inner;
        self.call(
            connection,
            |c| async move { inner.get_sale(&c, sale_id).await },
        )
        .await
    }

    async fn start_return(
        &self,
        connection: &Connection,
        sale_id: &str,
    ) -> Result<LsSale, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.start_return(&c, sale_id).await
        })
        .await
    }

    async fn complete_return(
        &self,
        connection: &Connection,
        return_id: &str,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.complete_return(&c, return_id, sale).await
        })
        .await
    }

    async fn find_products_by_sku(
        &self,
        connection: &Connection,
        sku: &Sku,
    ) -> Result<Vec<LsProduct>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.find_products_by_sku(&c, sku).await
        })
        .await
    }

    async fn sale_setup(&self, connection: &Connection) -> Result<SaleSetup, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move { inner.sale_setup(&c).await })
            .await
    }

    async fn search_customers_by_email(
        &self,
        connection: &Connection,
        email: &str,
    ) -> Result<Vec<LsCustomer>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.search_customers_by_email(&c, email).await
        })
        .await
    }

    async fn create_customer(
        &self,
        connection: &Connection,
        customer: &NewCustomer,
    ) -> Result<LsCustomer, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.create_customer(&c, customer).await
        })
        .await
    }

    async fn inventory_changes(
        &self,
        connection: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<InventoryRecord>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.inventory_changes(&c, after, page_size).await
        })
        .await
    }

    async fn product_changes(
        &self,
        connection: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<LsProduct>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.product_changes(&c, after, page_size).await
        })
        .await
    }

    async fn get_product(
        &self,
        connection: &Connection,
        product_id: &str,
    ) -> Result<Option<LsProduct>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.get_product(&c, product_id).await
        })
        .await
    }

    async fn product_inventory(
        &self,
        connection: &Connection,
        product_id: &str,
    ) -> Result<Vec<InventoryRecord>, ApiError> {
        let inner = &self.inner;
        self.call(connection, |c| async move {
            inner.product_inventory(&c, product_id).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    fn grant(v: serde_json::Value) -> Result<TokenGrant, ApiError> {
        serde_json::from_value::<TokenResponse>(v)
            .unwrap()
            .into_grant(now())
    }

    fn account(refresh: bool, expires_in: Option<i64>) -> LightspeedAccount {
        LightspeedAccount {
            domain_prefix: "shop".parse().unwrap(),
            access_token: Secret::new("a1"),
            refresh_token: refresh.then(|| Secret::new("r1")),
            expires_at: expires_in.map(|s| now() + chrono::Duration::seconds(s)),
            refresh_lease_until: None,
        }
    }

    #[test]
    fn expires_is_an_epoch_and_expires_in_a_lifetime() {
        let g =
            grant(json!({"access_token": "a2", "refresh_token": "r2", "expires": 1_800_003_600}))
                .unwrap();
        assert_eq!(g.expires_at, Some(now() + chrono::Duration::seconds(3600)));
        assert_eq!(g.refresh_token, Some(Secret::new("r2")));
        let g = grant(json!({"access_token": "a2", "expires_in": "600"})).unwrap();
        assert_eq!(g.expires_at, Some(now() + chrono::Duration::seconds(600)));
    }

    #[test]
    fn both_lifetimes_take_the_earlier_and_odd_values_are_tolerated() {
        let g = grant(json!({"access_token": "a", "expires": 1_800_086_400, "expires_in": 1800}))
            .unwrap();
        assert_eq!(g.expires_at, Some(now() + chrono::Duration::seconds(1800)));
        // Milliseconds, and a small `expires` that can only be a lifetime.
        let g = grant(json!({"access_token": "a", "expires": 1_800_000_060_000_i64})).unwrap();
        assert_eq!(g.expires_at, Some(now() + chrono::Duration::seconds(60)));
        let g = grant(json!({"access_token": "a", "expires": 120})).unwrap();
        assert_eq!(g.expires_at, Some(now() + chrono::Duration::seconds(120)));
        let g = grant(json!({"access_token": "a", "expires": null, "expires_in": "soon"})).unwrap();
        assert_eq!(g.expires_at, None);
    }

    #[test]
    fn a_missing_refresh_token_keeps_the_old_one() {
        let g =
            grant(json!({"access_token": "a2", "refresh_token": "", "expires_in": 60})).unwrap();
        assert_eq!(g.refresh_token, None);
        let mut acc = account(true, Some(5));
        acc.refresh_lease_until = Some(now());
        g.apply_to(&mut acc);
        assert_eq!(acc.access_token, Secret::new("a2"));
        assert_eq!(acc.refresh_token, Some(Secret::new("r1")));
        assert_eq!(acc.refresh_lease_until, None);
    }

    #[test]
    fn an_answer_without_access_token_is_a_decode_error() {
        assert!(matches!(
            grant(json!({"refresh_token": "r2"})),
            Err(ApiError::Decode { .. })
        ));
    }

    #[test]
    fn refresh_is_due_within_the_margin_and_never_for_personal_tokens() {
        let margin = Duration::from_secs(60);
        assert!(needs_refresh(&account(true, Some(59)), now(), margin));
        assert!(needs_refresh(&account(true, Some(-10)), now(), margin));
        assert!(!needs_refresh(&account(true, Some(61)), now(), margin));
        assert!(!needs_refresh(&account(true, None), now(), margin));
        assert!(!needs_refresh(&account(false, Some(-10)), now(), margin));
    }
}
