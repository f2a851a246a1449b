//! The retailers' shared Lightspeed rate windows in the state table: the storage of
//! `els_lightspeed::budget` (its module docs hold the design and the arithmetic).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | rate window | `RATE#{domain_prefix}` | `WINDOW` |
//!
//! Attributes: `version` (N, 1 on the first write, +1 on each), `slots` (M: the slot's end
//! in epoch milliseconds, as a string, to the requests taken in it, N), `rate_limit` (N, the
//! latest `X-RateLimit-Limit` a process saw; absent before one did) and `expires_at` (N,
//! epoch seconds: the table's TTL attribute, a day after the last slot left the window, so
//! a retailer that went quiet leaves no item behind).
//!
//! [`RateWindows::load`] is a strongly consistent GetItem; [`RateWindows::save`] a PutItem
//! under the condition that `version` is still the one read (`attribute_not_exists(pk)` when
//! there was no item). Both actions are the ones the poster's and the inventory function's
//! roles already have on the table (template.yaml); nothing else is called. An item whose
//! TTL passed but that DynamoDB has not deleted yet reads as it is: its slots have left the
//! window long before, and the version condition still holds.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;
use els_core::{DomainPrefix, StoreError};
use els_lightspeed::budget::{BudgetFuture, BudgetSettings, WindowState};
use els_lightspeed::{WindowBudget, WindowStore};
use std::collections::{BTreeMap, HashMap};

/// The item's sort key.
pub const RATE_WINDOW_SK: &str = "WINDOW";

/// The rate-window items of one table.
#[derive(Clone, Debug)]
pub struct RateWindows {
    client: Client,
    table: String,
}

/// `RATE#{domain_prefix}` (a validated prefix: lower-case letters, digits and hyphens).
pub fn rate_window_pk(domain_prefix: &DomainPrefix) -> String {
    format!("RATE#{}", domain_prefix.as_str())
}

fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn corrupt(pk: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: format!("{pk}/{RATE_WINDOW_SK}"),
        detail: detail.into(),
    }
}

/// A number attribute, if present.
fn read_number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
    pk: &str,
) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| corrupt(pk, format!("{name} is not a number: {n}"))),
        Some(_) => Err(corrupt(pk, format!("{name} is not a number"))),
    }
}

fn decode(item: &HashMap<String, AttributeValue>, pk: &str) -> Result<WindowState, StoreError> {
    let version = read_number(item, "version", pk)?.ok_or_else(|| corrupt(pk, "no version"))?;
    let mut slots = BTreeMap::new();
    match item.get("slots") {
        None => {}
        Some(AttributeValue::M(map)) => {
            for (end, count) in map {
                let end: i64 = end
                    .parse()
                    .map_err(|_| corrupt(pk, format!("slot {end} is not a time")))?;
                let count: u32 = match count {
                    AttributeValue::N(n) => n.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| corrupt(pk, format!("slot {end} has no count")))?;
                slots.insert(end, count);
            }
        }
        Some(_) => return Err(corrupt(pk, "slots is not a map")),
    }
    Ok(WindowState {
        version,
        slots,
        limit: read_number(item, "rate_limit", pk)?,
        expires_at: read_number(item, "expires_at", pk)?.unwrap_or(0),
    })
}

impl RateWindows {
    /// The rate windows in `table` (the state table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The rate windows in a state store's table.
    pub fn of(store: &crate::DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }

    /// The retailer's window, read strongly consistently (the default, version 0, if none).
    pub async fn load(&self, domain_prefix: &DomainPrefix) -> Result<WindowState, StoreError> {
        let pk = rate_window_pk(domain_prefix);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(RATE_WINDOW_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("DynamoDB GetItem: {}", DisplayErrorContext(&e)))
            })?;
        match out.item {
            None => Ok(WindowState::default()),
            Some(item) => decode(&item, &pk),
        }
    }

    /// Writes `next` if the stored version is still `expected` (0: no item); `Ok(false)`
    /// when another process wrote first.
    pub async fn save(
        &self,
        domain_prefix: &DomainPrefix,
        expected: u64,
        next: &WindowState,
    ) -> Result<bool, StoreError> {
        let slots: HashMap<String, AttributeValue> = next
            .slots
            .iter()
            .map(|(end, n)| (end.to_string(), number(n)))
            .collect();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(rate_window_pk(domain_prefix)))
            .item("sk", AttributeValue::S(RATE_WINDOW_SK.into()))
            .item("version", number(next.version))
            .item("slots", AttributeValue::M(slots))
            .item("expires_at", number(next.expires_at));
        if let Some(limit) = next.limit {
            request = request.item("rate_limit", number(limit));
        }
        request = if expected == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", number(expected))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().and_then(|e| e.code())
                    == Some("ConditionalCheckFailedException") =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::Unavailable(format!(
                "DynamoDB PutItem: {}",
                DisplayErrorContext(&e)
            ))),
        }
    }
}

/// The retailer-wide Lightspeed budget shared by every process of a deployment, on this
/// table's rate windows.
pub type DynamoBudget = WindowBudget<RateWindows>;

/// The shared budget on `store`'s table, counting over `window` (Lightspeed's 5 minutes, or
/// a sandbox's scaled window).
pub fn dynamo_budget(store: &crate::DynamoStore, window: std::time::Duration) -> DynamoBudget {
    WindowBudget::new(RateWindows::of(store), BudgetSettings::for_window(window))
}

/// The rate windows as the budget's store: the storage is here, the arithmetic in
/// `els_lightspeed::budget`.
impl WindowStore for RateWindows {
    fn load<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
    ) -> BudgetFuture<'a, Result<WindowState, StoreError>> {
        Box::pin(RateWindows::load(self, domain_prefix))
    }

    fn save<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
        expected: u64,
        next: &'a WindowState,
    ) -> BudgetFuture<'a, Result<bool, StoreError>> {
        Box::pin(RateWindows::save(self, domain_prefix, expected, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_decodes_and_a_damaged_one_is_corrupt() {
        let pk = "RATE#shop";
        let item = HashMap::from([
            ("version".to_string(), number(3)),
            (
                "slots".to_string(),
                AttributeValue::M(HashMap::from([
                    ("1800000010000".to_string(), number(5)),
                    ("1800000020000".to_string(), number(2)),
                ])),
            ),
            ("rate_limit".to_string(), number(650)),
            ("expires_at".to_string(), number(1_800_090_000)),
        ]);
        assert_eq!(
            decode(&item, pk).unwrap(),
            WindowState {
                version: 3,
                slots: BTreeMap::from([(1_800_000_010_000, 5), (1_800_000_020_000, 2)]),
                limit: Some(650),
                expires_at: 1_800_090_000,
            }
        );
        let mut damaged = item.clone();
        damaged.insert(
            "slots".into(),
            AttributeValue::M(HashMap::from([("soon".to_string(), number(1))])),
        );
        assert!(matches!(
            decode(&damaged, pk),
            Err(StoreError::Corrupt { .. })
        ));
        damaged.remove("version");
        assert!(matches!(
            decode(&damaged, pk),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            rate_window_pk(&DomainPrefix::parse("shop-1").unwrap()),
            "RATE#shop-1"
        );
    }
}
