//! What the AWS SDK clients really do, counted: [`Meter`], an SDK interceptor, for cost
//! measurements (`els cost`). Production clients do not attach it and pay nothing for it.
//!
//! Attach one meter to every client whose calls are to be counted, through the client
//! config builder (`aws_sdk_dynamodb::config::Builder::from(&sdk_config).interceptor(meter.clone())`,
//! or [`Meter::dynamodb`], [`Meter::sqs`], [`Meter::kms`]). For each HTTP attempt that got an
//! answer it counts, per service and operation (the SDK's names: `DynamoDB`/`GetItem`,
//! `SQS`/`SendMessage`, `KMS`/`Decrypt`):
//! - the request, and the requests SQS bills: one per started 64 KB chunk of the request or
//!   of the answer, whichever is larger (SQS pricing: "each 64 KB chunk of a payload is
//!   billed as 1 request");
//! - for DynamoDB, the capacity the answer reports: every request that accepts it is sent
//!   with `ReturnConsumedCapacity: TOTAL` (added to the JSON body before signing), and the
//!   `ConsumedCapacity` of the answer is summed ([`OperationCount::reported_units`]);
//! - for DynamoDB, the read and write units **computed from the item sizes** by the rules
//!   of the DynamoDB Developer Guide ("Read and write capacity units", "Item sizes",
//!   "Capacity unit consumption for transactions"), from what the request and the answer
//!   carry: a read is one unit per started 4 KB (half for an eventually consistent read),
//!   a Query or Scan over the sum of the items it returned, a BatchGetItem per item; a
//!   write is one unit per started 1 KB of the item written, two in a transaction; a
//!   missing item read, a delete or an update costs the minimum unit (the stored size is
//!   not in the request). A written item that carries the `connections` index's attribute
//!   also writes the index (keys only: one unit). Failed conditional writes are charged
//!   as DynamoDB charges them; throttled or invalid requests are not.
//!
//! Why both: DynamoDB's own figure is authoritative, but moto (the tests' stand-in)
//! reports a fixed placeholder per request (1 for a PutItem, 0.5 for a GetItem, nothing for
//! a TransactWriteItems), so a measurement on moto uses the computed units and says so.
//!
//! Written items are also counted by **key class**: the sort key's prefix before `#`
//! (`ORDER`, `PENDING`, `EVENT`, `CURSOR`, `STOCK`...), so a report can say which items
//! the writes go to ([`Metered::item_writes`]).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The SDK's service name of DynamoDB (its operations' `Metadata`).
pub const DYNAMODB: &str = "DynamoDB";
pub const SQS: &str = "SQS";
pub const KMS: &str = "KMS";

/// SQS bills each started 64 KB chunk of a payload as one request.
const SQS_CHUNK: u64 = 64 * 1024;
const READ_UNIT_BYTES: u64 = 4 * 1024;
const WRITE_UNIT_BYTES: u64 = 1024;

/// The DynamoDB operations that accept `ReturnConsumedCapacity`.
const REPORTS_CAPACITY: [&str; 10] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

/// Counts the requests of the clients it is attached to (see the module doc). Clones share
/// the counts.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    counts: Arc<Mutex<Metered>>,
}

/// Written items of one key class: how many, and the write units they cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ItemWrites {
    /// Items written by requests that succeeded.
    pub items: u64,
    /// Write units computed from their sizes (failed conditional writes included).
    pub units: f64,
}

/// What one operation of one service cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OperationCount {
    pub service: String,
    pub operation: String,
    /// HTTP attempts answered (retries included: each is billed).
    pub requests: u64,
    /// Of those, answered with an error status.
    pub errors: u64,
    /// Requests as SQS bills them: one per started 64 KB chunk (equal to `requests` for
    /// small payloads).
    pub billed_requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// DynamoDB: answers that carried `ConsumedCapacity`, and the capacity units they
    /// reported.
    pub reported_answers: u64,
    pub reported_units: f64,
    /// DynamoDB: read and write units computed from the item sizes.
    pub read_units: f64,
    pub write_units: f64,
    /// DynamoDB: written items by key class.
    pub writes_by_class: BTreeMap<String, ItemWrites>,
}

/// The counts of a [`Meter`] at one moment, by service and operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metered {
    operations: BTreeMap<(String, String), OperationCount>,
}

impl Metered {
    /// Every operation counted, by service then operation name.
    pub fn operations(&self) -> impl Iterator<Item = &OperationCount> {
        self.operations.values()
    }

    pub fn get(&self, service: &str, operation: &str) -> Option<&OperationCount> {
        self.operations
            .get(&(service.to_string(), operation.to_string()))
    }

    /// Requests of one operation (0 when never called).
    pub fn requests(&self, service: &str, operation: &str) -> u64 {
        self.get(service, operation).map_or(0, |c| c.requests)
    }

    fn sum(&self, service: &str, f: impl Fn(&OperationCount) -> f64) -> f64 {
        self.operations
            .values()
            .filter(|c| c.service == service)
            .map(f)
            .sum()
    }

    /// Requests made to one service.
    pub fn service_requests(&self, service: &str) -> u64 {
        self.sum(service, |c| c.requests as f64) as u64
    }

    /// DynamoDB read units computed from item sizes.
    pub fn read_units(&self) -> f64 {
        self.sum(DYNAMODB, |c| c.read_units)
    }

    /// DynamoDB write units computed from item sizes.
    pub fn write_units(&self) -> f64 {
        self.sum(DYNAMODB, |c| c.write_units)
    }

    /// DynamoDB capacity units the answers reported.
    pub fn reported_units(&self) -> f64 {
        self.sum(DYNAMODB, |c| c.reported_units)
    }

    /// Items of one key class written (all DynamoDB operations), and their units.
    pub fn item_writes(&self, class: &str) -> ItemWrites {
        let mut out = ItemWrites::default();
        for w in self
            .operations
            .values()
            .filter_map(|c| c.writes_by_class.get(class))
        {
            out.items += w.items;
            out.units += w.units;
        }
        out
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Metered) {
        for (key, c) in &other.operations {
            let mine = self
                .operations
                .entry(key.clone())
                .or_insert_with(|| OperationCount {
                    service: c.service.clone(),
                    operation: c.operation.clone(),
                    ..OperationCount::default()
                });
            mine.requests += c.requests;
            mine.errors += c.errors;
            mine.billed_requests += c.billed_requests;
            mine.request_bytes += c.request_bytes;
            mine.response_bytes += c.response_bytes;
            mine.reported_answers += c.reported_answers;
            mine.reported_units += c.reported_units;
            mine.read_units += c.read_units;
            mine.write_units += c.write_units;
            for (class, w) in &c.writes_by_class {
                let m = mine.writes_by_class.entry(class.clone()).or_default();
                m.items += w.items;
                m.units += w.units;
            }
        }
    }
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Metered {
        self.lock().clone()
    }

    /// The counts so far, and starts again from zero.
    pub fn take(&self) -> Metered {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Metered> {
        // A panic while counting leaves counts that are still counts.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A DynamoDB client on `config` with this meter attached.
    pub fn dynamodb(&self, config: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(config.interceptor(self.clone()).build())
    }

    /// An SQS client on `config` with this meter attached.
    pub fn sqs(&self, config: aws_sdk_sqs::config::Builder) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(config.interceptor(self.clone()).build())
    }

    /// A KMS client on `config` with this meter attached.
    pub fn kms(&self, config: aws_sdk_kms::config::Builder) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(config.interceptor(self.clone()).build())
    }

    fn record(&self, sent: &Sent, status: u16, answer: &[u8]) {
        let ok = (200..300).contains(&status);
        let answer_json: Option<Value> = (sent.service == DYNAMODB)
            .then(|| serde_json::from_slice(answer).ok())
            .flatten();
        let mut counts = self.lock();
        let c = counts
            .operations
            .entry((sent.service.clone(), sent.operation.clone()))
            .or_insert_with(|| OperationCount {
                service: sent.service.clone(),
                operation: sent.operation.clone(),
                ..OperationCount::default()
            });
        c.requests += 1;
        c.errors += u64::from(!ok);
        let payload = (sent.bytes as u64).max(answer.len() as u64);
        c.billed_requests += payload.div_ceil(SQS_CHUNK).max(1);
        c.request_bytes += sent.bytes as u64;
        c.response_bytes += answer.len() as u64;
        let (Some(request), Some(answer)) = (sent.body.as_ref(), answer_json.as_ref()) else {
            return;
        };
        if let Some(units) = reported_units(answer) {
            c.reported_answers += 1;
            c.reported_units += units;
        }
        if ok {
            c.read_units += read_units(&sent.operation, request, answer);
        }
        if ok || charged_failure(answer) {
            for (class, units) in write_units(&sent.operation, request) {
                c.write_units += units;
                let w = c.writes_by_class.entry(class).or_default();
                w.units += units;
                w.items += u64::from(ok);
            }
        }
    }
}

/// What was sent in this attempt, kept in the operation's config bag until the answer.
#[derive(Clone, Debug)]
struct Sent {
    service: String,
    operation: String,
    bytes: usize,
    /// DynamoDB: the JSON request.
    body: Option<Value>,
}

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "els-cost-meter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let (service, operation) = (metadata.service().to_string(), metadata.name().to_string());
        let request = context.request_mut();
        let bytes = request.body().bytes().map(<[u8]>::to_vec);
        let mut sent = Sent {
            service,
            operation,
            bytes: bytes.as_ref().map_or(0, Vec::len),
            body: None,
        };
        if sent.service == DYNAMODB
            && let Some(Value::Object(mut body)) = bytes
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        {
            if REPORTS_CAPACITY.contains(&sent.operation.as_str())
                && !body.contains_key("ReturnConsumedCapacity")
            {
                body.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
                let new_body = serde_json::to_vec(&body)?;
                sent.bytes = new_body.len();
                request
                    .headers_mut()
                    .insert("content-length", new_body.len().to_string());
                *request.body_mut() = SdkBody::from(new_body);
            }
            sent.body = Some(Value::Object(body));
        }
        cfg.interceptor_state().store_put(sent);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(sent) = cfg.load::<Sent>() {
            let response = context.response();
            let answer = response.body().bytes().unwrap_or_default();
            self.record(sent, response.status().as_u16(), answer);
        }
        Ok(())
    }
}

/// DynamoDB still charges a write whose condition failed (alone or in a transaction).
fn charged_failure(answer: &Value) -> bool {
    let kind = answer
        .get("__type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    kind.ends_with("ConditionalCheckFailedException")
        || kind.ends_with("TransactionCanceledException")
}

/// The `ConsumedCapacity` of an answer: one object, or a list (batches, transactions).
fn reported_units(answer: &Value) -> Option<f64> {
    let units = |v: &Value| v.get("CapacityUnits").and_then(Value::as_f64);
    match answer.get("ConsumedCapacity")? {
        Value::Array(list) if !list.is_empty() => Some(list.iter().filter_map(units).sum()),
        v @ Value::Object(_) => units(v),
        _ => None,
    }
}

/// The size DynamoDB bills for an item in its JSON wire form: each attribute's name plus
/// its value (strings and binaries their bytes, numbers about one byte per two digits plus
/// one, booleans and nulls one byte, lists and maps 3 bytes plus one per element, sets the
/// sum of their elements). DynamoDB Developer Guide, "Item sizes and formats".
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, v)| name.len() as u64 + value_size(v))
        .sum()
}

fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let number = |n: &str| {
        let digits = n.trim_start_matches('-').replace('.', "");
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
        (significant as u64).div_ceil(2) + 1
    };
    let binary = |b: &str| {
        let len = b.len() as u64;
        len / 4 * 3 - b.bytes().rev().take_while(|c| *c == b'=').count() as u64
    };
    let strs = |f: &dyn Fn(&str) -> u64| {
        inner
            .as_array()
            .map_or(0, |a| a.iter().filter_map(Value::as_str).map(f).sum())
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner.as_str().map_or(0, number),
        "B" => inner.as_str().map_or(0, binary),
        "BOOL" | "NULL" => 1,
        "SS" => strs(&|s| s.len() as u64),
        "NS" => strs(&number),
        "BS" => strs(&binary),
        "L" => inner
            .as_array()
            .map_or(0, |l| 3 + l.iter().map(|e| value_size(e) + 1).sum::<u64>()),
        "M" => inner.as_object().map_or(0, |m| {
            3 + m
                .iter()
                .map(|(k, e)| k.len() as u64 + value_size(e) + 1)
                .sum::<u64>()
        }),
        _ => 0,
    }
}

/// The key class of an item or key: its sort key's prefix before `#` (or the whole sort
/// key), else its partition key's.
pub fn key_class(item: &Map<String, Value>) -> String {
    let key = |name: &str| {
        item.get(name)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
    };
    key("sk")
        .or_else(|| key("pk"))
        .map(|k| k.split('#').next().unwrap_or(k).to_string())
        .unwrap_or_else(|| "?".into())
}

fn units(bytes: u64, unit: u64) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

/// One written item: its class and its units (index write included).
fn put_units(item: &Map<String, Value>, factor: f64) -> (String, f64) {
    let mut u = units(item_size(item), WRITE_UNIT_BYTES) * factor;
    if item.contains_key(crate::DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE) {
        // The `connections` index holds keys only: one more unit.
        u += 1.0;
    }
    (key_class(item), u)
}

fn object<'a>(v: &'a Value, name: &str) -> Option<&'a Map<String, Value>> {
    v.get(name).and_then(Value::as_object)
}

/// The write units of a request, by key class of the item written.
pub fn write_units(operation: &str, request: &Value) -> Vec<(String, f64)> {
    let key_only = |key: Option<&Map<String, Value>>, factor: f64| {
        (key.map(key_class).unwrap_or_else(|| "?".into()), factor)
    };
    match operation {
        "PutItem" => object(request, "Item")
            .map(|i| put_units(i, 1.0))
            .into_iter()
            .collect(),
        "UpdateItem" | "DeleteItem" => vec![key_only(object(request, "Key"), 1.0)],
        "BatchWriteItem" => object(request, "RequestItems")
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|w| {
                if let Some(put) = w.get("PutRequest") {
                    object(put, "Item").map(|i| put_units(i, 1.0))
                } else {
                    w.get("DeleteRequest")
                        .map(|d| key_only(object(d, "Key"), 1.0))
                }
            })
            .collect(),
        "TransactWriteItems" => request
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                if let Some(put) = t.get("Put") {
                    object(put, "Item").map(|i| put_units(i, 2.0))
                } else {
                    ["Update", "Delete", "ConditionCheck"]
                        .iter()
                        .find_map(|k| t.get(*k))
                        .map(|w| key_only(object(w, "Key"), 2.0))
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The read units of a request and its answer.
pub fn read_units(operation: &str, request: &Value, answer: &Value) -> f64 {
    let consistency = |r: &Value| {
        if r.get("ConsistentRead").and_then(Value::as_bool) == Some(true) {
            1.0
        } else {
            0.5
        }
    };
    let items = |v: Option<&Value>| -> Vec<u64> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .map(item_size)
                    .collect()
            })
            .unwrap_or_default()
    };
    match operation {
        "GetItem" => {
            let size = object(answer, "Item").map_or(0, item_size);
            units(size, READ_UNIT_BYTES) * consistency(request)
        }
        "Query" | "Scan" => {
            let total: u64 = items(answer.get("Items")).iter().sum();
            units(total, READ_UNIT_BYTES) * consistency(request)
        }
        "BatchGetItem" => {
            let mut total = 0.0;
            for (table, asked) in object(request, "RequestItems").into_iter().flatten() {
                let sizes = items(object(answer, "Responses").and_then(|r| r.get(table)));
                let keys = asked
                    .get("Keys")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let unprocessed = object(answer, "UnprocessedKeys")
                    .and_then(|u| u.get(table))
                    .and_then(|t| t.get("Keys"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                // Each item is rounded up on its own; a key with no item costs the minimum.
                let missing = keys.saturating_sub(sizes.len() + unprocessed);
                let found: f64 = sizes.iter().map(|s| units(*s, READ_UNIT_BYTES)).sum();
                total += (found + missing as f64) * consistency(asked);
            }
            total
        }
        "TransactGetItems" => {
            let sizes: Vec<u64> = answer
                .get("Responses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| object(r, "Item").map_or(0, item_size))
                .collect();
            sizes.iter().map(|s| 2.0 * units(*s, READ_UNIT_BYTES)).sum()
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn item_sizes_follow_the_documented_rules() {
        // "pk"(2) + "STORE#1"(7) + "sk"(2) + "ORDER#A"(7) + "version"(7) + 12 → 2 digits: 2
        // + "ok"(2) + BOOL 1 + "b"(1) + "AAEC" → 3 bytes.
        let item = map(json!({
            "pk": {"S": "STORE#1"}, "sk": {"S": "ORDER#A"}, "version": {"N": "12"},
            "ok": {"BOOL": true}, "b": {"B": "AAEC"}
        }));
        assert_eq!(item_size(&item), 2 + 7 + 2 + 7 + 7 + 2 + 2 + 1 + 1 + 3);
        // A map: 3 + per entry name + value + 1.
        let nested = map(json!({"m": {"M": {"a": {"S": "xy"}}}}));
        assert_eq!(item_size(&nested), 1 + 3 + (1 + 2 + 1));
        assert_eq!(key_class(&item), "ORDER");
    }

    #[test]
    fn transactions_cost_two_units_per_started_kilobyte() {
        let big = "x".repeat(1500);
        let request = json!({"TransactItems": [
            {"Put": {"Item": {"pk": {"S": "STORE#1"}, "sk": {"S": "ORDER#A"}, "h": {"S": big}}}},
            {"Delete": {"Key": {"pk": {"S": "STORE#1"}, "sk": {"S": "PENDING#A"}}}}
        ]});
        let w = write_units("TransactWriteItems", &request);
        assert_eq!(w, vec![("ORDER".into(), 4.0), ("PENDING".into(), 2.0)]);
    }

    #[test]
    fn reads_round_up_to_4_kb_and_halve_when_eventually_consistent() {
        let answer = json!({"Items": [
            {"pk": {"S": "x".repeat(3000)}}, {"pk": {"S": "y".repeat(3000)}}
        ]});
        let strong = json!({"ConsistentRead": true});
        assert_eq!(read_units("Query", &strong, &answer), 2.0);
        assert_eq!(read_units("Query", &json!({}), &answer), 1.0);
        // A GetItem of a missing item costs the minimum.
        assert_eq!(read_units("GetItem", &strong, &json!({})), 1.0);
    }

    #[test]
    fn reported_capacity_is_read_from_objects_and_lists() {
        assert_eq!(
            reported_units(&json!({"ConsumedCapacity": {"CapacityUnits": 0.5}})),
            Some(0.5)
        );
        assert_eq!(
            reported_units(
                &json!({"ConsumedCapacity": [{"CapacityUnits": 1.0}, {"CapacityUnits": 2.0}]})
            ),
            Some(3.0)
        );
        assert_eq!(reported_units(&json!({"ConsumedCapacity": []})), None);
    }
}
