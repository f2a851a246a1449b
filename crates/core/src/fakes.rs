//! Small fakes of Ecwid, Lightspeed and the clock for the services' unit tests (the state is
//! [`crate::memory::MemoryStore`]). Each fake answers from what the test put in it, keeps
//! what it was sent, and fails when told to. Clones share one fake, so a test keeps a clone
//! to look at after handing one to the service.

use crate::connection::Connection;
use crate::ecwid::{EcwidOrder, OrderQuery, OrderSearchPage, OrderSummary};
use crate::error::ApiError;
use crate::error::QueueError;
use crate::ids::{Sku, StoreId};
use crate::inventory::{
    BatchStatus, EcwidCatalogProduct, EcwidProductPage, EcwidTarget, FeedPage, InventoryRecord,
    StockLevel,
};
use crate::lightspeed::{
    LsCustomer, LsProduct, LsSale, LsSaleLine, LsSalePayment, LsTax, NewCustomer, PostedSale,
    SaleDraft, SaleSetup,
};
use crate::memory::MemoryStore;
use crate::ports::{
    Clock, ConnectionStore, Delivery, EcwidApi, LightspeedApi, OrderMessage, WorkQueue,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const STORE: StoreId = StoreId::literal(1003);
pub const OUTLET: &str = "outlet-1";

/// A connection of [`STORE`] with both settings on, selling at [`OUTLET`].
pub fn connection() -> Connection {
    serde_json::from_value(serde_json::json!({
        "store_id": STORE,
        "ecwid_token": "secret_t",
        "lightspeed": {"domain_prefix": "shop", "access_token": "lsat"},
        "register_id": "reg-1", "outlet_id": OUTLET, "user_id": "user-1",
        "payment_type_id": "pay-1", "version": 1
    }))
    .expect("a connection")
}

/// What a service works with in a unit test: the state, the two APIs and the clock. Each
/// is a clone of what the service gets, for the test to set up and look at.
pub struct World {
    pub store: MemoryStore,
    pub ecwid: FakeEcwid,
    pub lightspeed: FakeLightspeed,
    pub clock: TestClock,
}

impl World {
    /// Empty APIs and a store that holds `connection`.
    pub async fn new(connection: Connection) -> Self {
        let world = Self {
            store: MemoryStore::new(),
            ecwid: FakeEcwid::default(),
            lightspeed: FakeLightspeed::default(),
            clock: TestClock::new(),
        };
        world.store.put_connection(&connection, None).await.unwrap();
        world
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Work queue
// ---------------------------------------------------------------------------------------

/// A queue that keeps what it accepted, drops repeated dedup ids (the FIFO window) and
/// can fail a number of enqueues first.
#[derive(Default)]
pub struct FakeQueue {
    accepted: Mutex<Vec<OrderMessage>>,
    /// Enqueue calls, failed ones included.
    pub attempts: AtomicUsize,
    /// Enqueues that fail before the next one succeeds.
    pub failing: AtomicUsize,
}

impl FakeQueue {
    pub fn accepted(&self) -> Vec<OrderMessage> {
        self.accepted.lock().unwrap().clone()
    }
}

impl WorkQueue for &FakeQueue {
    async fn enqueue(&self, message: &OrderMessage) -> Result<(), QueueError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError::Unavailable("injected".into()));
        }
        let mut accepted = self.accepted.lock().unwrap();
        if !accepted.iter().any(|m| m.dedup_id == message.dedup_id) {
            accepted.push(message.clone());
        }
        Ok(())
    }
    async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, QueueError> {
        unreachable!("the services under test only enqueue")
    }
    async fn ack(&self, _: &str) -> Result<(), QueueError> {
        unreachable!("the services under test only enqueue")
    }
    async fn retry_after(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        unreachable!("the services under test only enqueue")
    }
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

/// A clock that stands still until moved; a sleep moves it and returns at once.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(
            DateTime::from_timestamp(1_800_000_000, 0).expect("a time"),
        )))
    }

    pub fn advance(&self, by: Duration) {
        *lock(&self.0) += chrono::Duration::from_std(by).expect("a short duration");
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.advance(duration);
        std::future::ready(())
    }
}

// ---------------------------------------------------------------------------------------
// Ecwid
// ---------------------------------------------------------------------------------------

/// Ecwid: orders to fetch, and a catalog whose levels stock writes change.
#[derive(Debug, Clone, Default)]
pub struct FakeEcwid(Arc<Mutex<EcwidState>>);

#[derive(Debug, Default)]
struct EcwidState {
    orders: HashMap<String, EcwidOrder>,
    catalog: Vec<EcwidCatalogProduct>,
    /// Every stock write that succeeded, in order.
    writes: Vec<(EcwidTarget, StockLevel)>,
    /// What the next stock writes fail with.
    failing_writes: VecDeque<ApiError>,
    calls: usize,
}

impl FakeEcwid {
    pub fn add_order(&self, order: EcwidOrder) {
        lock(&self.0).orders.insert(order.id.clone(), order);
    }

    /// A simple product (no combinations) with a SKU and a tracked quantity.
    pub fn add_product(&self, id: u64, sku: &str, quantity: i64) {
        lock(&self.0).catalog.push(EcwidCatalogProduct {
            id,
            sku: Some(sku.to_string()),
            quantity: Some(quantity),
            ..EcwidCatalogProduct::default()
        });
    }

    /// The level a product shows now.
    pub fn level(&self, product_id: u64) -> Option<StockLevel> {
        let state = lock(&self.0);
        let p = state.catalog.iter().find(|p| p.id == product_id)?;
        StockLevel::from_ecwid(p.unlimited, p.quantity)
    }

    pub fn writes(&self) -> Vec<(EcwidTarget, StockLevel)> {
        lock(&self.0).writes.clone()
    }

    /// Makes the next stock writes fail with these errors, one each.
    pub fn fail_writes(&self, errors: impl IntoIterator<Item = ApiError>) {
        lock(&self.0).failing_writes.extend(errors);
    }

    /// Requests received, of any kind.
    pub fn calls(&self) -> usize {
        lock(&self.0).calls
    }

    fn state(&self) -> MutexGuard<'_, EcwidState> {
        let mut state = lock(&self.0);
        state.calls += 1;
        state
    }
}

impl EcwidApi for FakeEcwid {
    async fn get_order(&self, _: &Connection, order_id: &str) -> Result<EcwidOrder, ApiError> {
        self.state()
            .orders
            .get(order_id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                detail: format!("order {order_id}"),
            })
    }

    async fn search_orders(
        &self,
        _: &Connection,
        query: &OrderQuery,
    ) -> Result<OrderSearchPage, ApiError> {
        let state = self.state();
        let within = |t: Option<i64>, from: Option<i64>, to: Option<i64>| {
            let t = t.unwrap_or(0);
            from.is_none_or(|f| t >= f) && to.is_none_or(|u| t <= u)
        };
        let mut found: Vec<OrderSummary> = state
            .orders
            .values()
            .filter(|o| {
                query
                    .payment_status
                    .as_ref()
                    .is_none_or(|p| o.payment_status.as_ref() == Some(p))
            })
            .filter(|o| within(o.create_timestamp, query.created_from, query.created_to))
            .filter(|o| within(o.update_timestamp, query.updated_from, query.updated_to))
            .map(|o| OrderSummary {
                id: o.id.clone(),
                payment_status: o.payment_status.clone(),
                create_timestamp: o.create_timestamp,
                update_timestamp: o.update_timestamp,
            })
            .collect();
        // A stable order (Ecwid documents none; by id here).
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let items: Vec<OrderSummary> = found
            .iter()
            .skip(query.offset as usize)
            .take(query.limit.clamp(1, 100) as usize)
            .cloned()
            .collect();
        Ok(OrderSearchPage {
            total: found.len() as u64,
            count: items.len() as u64,
            offset: query.offset,
            items,
        })
    }

    async fn find_products_by_sku(
        &self,
        _: &Connection,
        sku: &Sku,
    ) -> Result<Vec<EcwidCatalogProduct>, ApiError> {
        Ok(self
            .state()
            .catalog
            .iter()
            .filter(|p| {
                sku.matches(p.sku.as_deref())
                    || p.combinations.iter().any(|c| sku.matches(c.sku.as_deref()))
            })
            .cloned()
            .collect())
    }

    async fn list_products(
        &self,
        _: &Connection,
        offset: u64,
        limit: u64,
    ) -> Result<EcwidProductPage, ApiError> {
        let state = self.state();
        let items: Vec<_> = state
            .catalog
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(EcwidProductPage {
            total: state.catalog.len() as u64,
            count: items.len() as u64,
            offset,
            limit,
            items,
        })
    }

    async fn set_stock(
        &self,
        _: &Connection,
        target: &EcwidTarget,
        level: StockLevel,
    ) -> Result<(), ApiError> {
        let mut state = self.state();
        if let Some(e) = state.failing_writes.pop_front() {
            return Err(e);
        }
        let not_found = || ApiError::NotFound {
            detail: target.to_string(),
        };
        let product = state
            .catalog
            .iter_mut()
            .find(|p| p.id == target.product_id)
            .ok_or_else(not_found)?;
        let (unlimited, quantity) = match target.combination_id {
            None => (&mut product.unlimited, &mut product.quantity),
            Some(cid) => {
                let c = product
                    .combinations
                    .iter_mut()
                    .find(|c| c.id == cid)
                    .ok_or_else(not_found)?;
                (&mut c.unlimited, &mut c.quantity)
            }
        };
        match level {
            StockLevel::Quantity(q) => {
                *unlimited = false;
                *quantity = Some(q as i64);
            }
            StockLevel::Unlimited => *unlimited = true,
        }
        state.writes.push((*target, level));
        Ok(())
    }

    async fn submit_batch(
        &self,
        _: &Connection,
        _: &str,
        _: &[(EcwidTarget, StockLevel)],
    ) -> Result<String, ApiError> {
        unreachable!("the unit tests write fewer levels than the batch threshold")
    }

    async fn batch_status(&self, _: &Connection, _: &str) -> Result<BatchStatus, ApiError> {
        unreachable!("the unit tests write fewer levels than the batch threshold")
    }
}

// ---------------------------------------------------------------------------------------
// Lightspeed
// ---------------------------------------------------------------------------------------

/// Lightspeed: a catalog and its levels (each change a new version of the feeds), the sales
/// posted, customers.
#[derive(Debug, Clone, Default)]
pub struct FakeLightspeed(Arc<Mutex<LightspeedState>>);

#[derive(Debug, Default)]
struct LightspeedState {
    version: u64,
    /// Product rows and inventory records as the feeds list them: the newest of each.
    products: Vec<(u64, LsProduct)>,
    records: Vec<InventoryRecord>,
    sales: Vec<(String, SaleDraft)>,
    /// The next sale POST creates the sale but its answer is lost.
    lose_next_sale_answer: bool,
    customers: Vec<LsCustomer>,
    calls: Vec<&'static str>,
}

impl FakeLightspeed {
    /// A product, tracked unless `has_inventory` is false.
    pub fn add_product(&self, id: &str, sku: &str, has_inventory: bool) {
        let mut state = lock(&self.0);
        state.version += 1;
        let version = state.version;
        state.products.retain(|(_, p)| p.id != id);
        state.products.push((
            version,
            LsProduct {
                name: Some(format!("product {sku}")),
                ..ls_product(id, sku, has_inventory)
            },
        ));
    }

    /// The level of a product at an outlet (a new inventory record version).
    pub fn set_level(&self, product_id: &str, outlet_id: &str, level: i64) {
        let mut state = lock(&self.0);
        state.version += 1;
        let version = state.version;
        state
            .records
            .retain(|r| !(r.product_id == product_id && r.outlet_id == outlet_id));
        state.records.push(InventoryRecord {
            product_id: product_id.into(),
            outlet_id: outlet_id.into(),
            inventory_level: Decimal::from(level),
            version,
        });
    }

    pub fn add_customer(&self, id: &str, email: &str) {
        lock(&self.0).customers.push(LsCustomer {
            id: id.into(),
            first_name: None,
            last_name: None,
            email: Some(email.into()),
        });
    }

    pub fn customers(&self) -> Vec<LsCustomer> {
        lock(&self.0).customers.clone()
    }

    /// The next sale POST creates the sale, then the answer is lost (a timeout).
    pub fn lose_next_sale_answer(&self) {
        lock(&self.0).lose_next_sale_answer = true;
    }

    /// The sales posted: (sale id, body).
    pub fn sales(&self) -> Vec<(String, SaleDraft)> {
        lock(&self.0).sales.clone()
    }

    /// The calls received, by method name.
    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.0).calls.clone()
    }

    fn state(&self, call: &'static str) -> MutexGuard<'_, LightspeedState> {
        let mut state = lock(&self.0);
        state.calls.push(call);
        state
    }
}

fn posted(id: &str, sale: &SaleDraft) -> PostedSale {
    PostedSale {
        id: id.into(),
        invoice_number: Some(sale.invoice_number.clone()),
        status: Some(sale.status.clone()),
        total: Some(sale.total()),
    }
}

/// A stored draft as Lightspeed would read it back.
fn read_back(id: &str, sale: &SaleDraft) -> LsSale {
    LsSale {
        id: id.into(),
        status: sale.status.clone(),
        invoice_number: Some(sale.invoice_number.clone()),
        return_for: sale.return_for.clone(),
        register_id: Some(sale.register_id.clone()),
        lines: sale
            .register_sale_products
            .iter()
            .map(|l| LsSaleLine {
                id: None,
                product_id: l.product_id.clone(),
                quantity: l.quantity,
                price: l.price,
                tax: l.tax,
                tax_id: Some(l.tax_id.clone()),
            })
            .collect(),
        payments: sale
            .register_sale_payments
            .iter()
            .map(|p| LsSalePayment {
                retailer_payment_type_id: p.retailer_payment_type_id.clone(),
                amount: p.amount,
            })
            .collect(),
    }
}

/// The page of `items` (with their versions) after `after`, in version order.
fn feed_page<T: Clone>(mut items: Vec<(u64, T)>, after: u64, page_size: usize) -> FeedPage<T> {
    items.retain(|(v, _)| *v > after);
    items.sort_by_key(|(v, _)| *v);
    items.truncate(page_size);
    FeedPage {
        max_version: items.last().map(|(v, _)| *v),
        items: items.into_iter().map(|(_, t)| t).collect(),
        rate_limit_remaining: None,
    }
}

impl LightspeedApi for FakeLightspeed {
    async fn post_sale(&self, _: &Connection, sale: &SaleDraft) -> Result<PostedSale, ApiError> {
        let mut state = self.state("post_sale");
        let id = format!("sale-{}", state.sales.len() + 1);
        state.sales.push((id.clone(), sale.clone()));
        if std::mem::take(&mut state.lose_next_sale_answer) {
            return Err(ApiError::OutcomeUnknown {
                detail: "timed out waiting for the answer".into(),
            });
        }
        Ok(posted(&id, sale))
    }

    async fn find_sales_by_invoice(
        &self,
        _: &Connection,
        invoice_number: &str,
    ) -> Result<Vec<PostedSale>, ApiError> {
        Ok(self
            .state("find_sales_by_invoice")
            .sales
            .iter()
            .filter(|(_, s)| s.invoice_number == invoice_number)
            .map(|(id, s)| posted(id, s))
            .collect())
    }

    async fn get_sale(&self, _: &Connection, sale_id: &str) -> Result<Option<LsSale>, ApiError> {
        Ok(self
            .state("get_sale")
            .sales
            .iter()
            .find(|(id, _)| id == sale_id)
            .map(|(id, s)| read_back(id, s)))
    }

    async fn start_return(&self, _: &Connection, sale_id: &str) -> Result<LsSale, ApiError> {
        let mut state = self.state("start_return");
        let Some((_, original)) = state.sales.iter().find(|(id, _)| id == sale_id).cloned() else {
            return Err(ApiError::NotFound {
                detail: format!("no sale {sale_id}"),
            });
        };
        let mut started = original;
        started.status = crate::lightspeed::returns::STATUS_SAVED.into();
        started.return_for = Some(sale_id.into());
        started.register_sale_payments.clear();
        for line in &mut started.register_sale_products {
            line.quantity = -line.quantity;
        }
        let id = format!("sale-{}", state.sales.len() + 1);
        state.sales.push((id.clone(), started.clone()));
        Ok(read_back(&id, &started))
    }

    async fn complete_return(
        &self,
        _: &Connection,
        return_id: &str,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        let mut state = self.state("complete_return");
        let Some(slot) = state.sales.iter_mut().find(|(id, _)| id == return_id) else {
            return Err(ApiError::NotFound {
                detail: format!("no sale {return_id}"),
            });
        };
        slot.1 = sale.clone();
        Ok(posted(return_id, sale))
    }

    async fn find_products_by_sku(
        &self,
        _: &Connection,
        sku: &Sku,
    ) -> Result<Vec<LsProduct>, ApiError> {
        Ok(self
            .state("find_products_by_sku")
            .products
            .iter()
            .filter(|(_, p)| sku.matches(p.sku.as_deref()))
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn sale_setup(&self, _: &Connection) -> Result<SaleSetup, ApiError> {
        drop(self.state("sale_setup"));
        Ok(SaleSetup {
            no_tax_group_id: "notax".into(),
            taxes: vec![LsTax {
                id: "gst10".into(),
                name: "GST".into(),
                rate: Decimal::new(10, 2),
            }],
            currency: None,
        })
    }

    async fn search_customers_by_email(
        &self,
        _: &Connection,
        email: &str,
    ) -> Result<Vec<LsCustomer>, ApiError> {
        let needle = email.to_lowercase();
        Ok(self
            .state("search_customers_by_email")
            .customers
            .iter()
            .filter(|c| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains(&needle))
            })
            .cloned()
            .collect())
    }

    async fn create_customer(
        &self,
        _: &Connection,
        customer: &NewCustomer,
    ) -> Result<LsCustomer, ApiError> {
        let mut state = self.state("create_customer");
        let created = LsCustomer {
            id: format!("cust-{}", state.customers.len() + 1),
            first_name: Some(customer.first_name.clone()),
            last_name: Some(customer.last_name.clone()),
            email: Some(customer.email.clone()),
        };
        state.customers.push(created.clone());
        Ok(created)
    }

    async fn inventory_changes(
        &self,
        _: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<InventoryRecord>, ApiError> {
        let state = self.state("inventory_changes");
        let items = state
            .records
            .iter()
            .map(|r| (r.version, r.clone()))
            .collect();
        Ok(feed_page(items, after, page_size))
    }

    async fn product_changes(
        &self,
        _: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<LsProduct>, ApiError> {
        let state = self.state("product_changes");
        Ok(feed_page(state.products.clone(), after, page_size))
    }

    async fn get_product(
        &self,
        _: &Connection,
        product_id: &str,
    ) -> Result<Option<LsProduct>, ApiError> {
        Ok(self
            .state("get_product")
            .products
            .iter()
            .find(|(_, p)| p.id == product_id)
            .map(|(_, p)| p.clone()))
    }

    async fn product_inventory(
        &self,
        _: &Connection,
        product_id: &str,
    ) -> Result<Vec<InventoryRecord>, ApiError> {
        Ok(self
            .state("product_inventory")
            .records
            .iter()
            .filter(|r| r.product_id == product_id)
            .cloned()
            .collect())
    }
}

/// A live Lightspeed product with a SKU, as the feeds and searches return it.
pub fn ls_product(id: &str, sku: &str, has_inventory: bool) -> LsProduct {
    LsProduct {
        id: id.into(),
        sku: Some(sku.into()),
        name: None,
        variant_parent_id: None,
        active: Some(true),
        has_inventory: Some(has_inventory),
        deleted_at: None,
    }
}
