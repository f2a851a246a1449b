//! `webhook-ingest`: the HTTP edge of [`els_core::ingest::Ingestor`].
//!
//! API Gateway HTTP API and Lambda Function URLs both send payload format 2.0; `lambda_http`
//! turns either into an [`http::Request`], decoding `isBase64Encoded` bodies on the way. The
//! rules (signature, size, which events are work, when to answer 2xx) all live in the core;
//! this module only takes the body and the signature header out and puts the answer back.
//!
//! The same function answers Lightspeed's stock webhooks (`POST
//! /webhooks/lightspeed/{store}/{secret}`, [`els_core::ls_webhooks`]): a delivery whose
//! secret matches queues the store's job on the store-jobs queue
//! (`STORE_JOBS_QUEUE_URL`), in one GetItem and one SendMessage, well within Lightspeed's
//! 5 seconds. Without that variable the route answers 404.

use crate::config::{WebhookIngestConfig, load_aws_config};
use crate::secrets::load_client_secret;
use crate::wiring::{InitError, configuration, log_failure};
use els_core::ingest::{IngestResponse, Ingestor, RESPONSE_CONTENT_TYPE};
use els_core::jobs::JobQueue;
use els_core::ls_webhooks::{LS_WEBHOOK_PATH_PREFIX, accept_delivery};
use els_core::webhook::SIGNATURE_HEADER;
use els_core::{Clock, ConnectionStore, StateStore, WorkQueue};
use els_http::TokioClock;
use els_store_aws::{DynamoStore, SqsJobQueue, SqsQueue};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;

/// `webhook-ingest` as its `main` runs it: configured and built once, at init.
pub struct WebhookIngestFunction {
    ingestor: Ingestor<DynamoStore, SqsQueue, TokioClock>,
    /// The connections (Lightspeed deliveries check their secret) and the store-jobs queue.
    stock: Option<(DynamoStore, SqsJobQueue)>,
}

impl WebhookIngestFunction {
    /// Reads the configuration, loads the Ecwid app's `client_secret` (from SSM: the one
    /// network call before the first invocation) and builds the DynamoDB and SQS clients.
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("webhook-ingest", WebhookIngestConfig::from_env)?;
        let aws = load_aws_config(config.aws_operation_timeout).await;
        let client_secret =
            load_client_secret(&config.client_secret, || aws_sdk_ssm::Client::new(&aws))
                .await
                .map_err(InitError::EcwidSecret)?;
        // No token key: ingest only checks that a connection exists, and reads encrypted
        // tokens as placeholders, without a KMS call (its role has no kms:Decrypt).
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table_name.clone(),
        );
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue = SqsQueue::new(sqs.clone(), config.queue_url.clone());
        let stock = config
            .jobs_queue_url
            .as_ref()
            .map(|url| (store.clone(), SqsJobQueue::new(sqs, url)));
        let ingestor = Ingestor::new(
            store,
            queue,
            config.ingest_config(client_secret),
            TokioClock,
        );
        Ok(Self { ingestor, stock })
    }

    /// One invocation: an HTTP request, Ecwid's or Lightspeed's by its path.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        if request.uri().path().contains(LS_WEBHOOK_PATH_PREFIX) {
            return Ok(match &self.stock {
                Some((store, jobs)) => handle_lightspeed_delivery(store, jobs, &request).await,
                None => plain(StatusCode::NOT_FOUND, "Lightspeed webhooks are not set up"),
            });
        }
        Ok(handle_webhook_request(&self.ingestor, request).await)
    }
}

/// Answers one Lightspeed stock webhook ([`els_core::ls_webhooks::accept_delivery`]): the
/// path's secret is checked and the store's job queued; the body is not read.
pub async fn handle_lightspeed_delivery<S, Q>(
    store: &S,
    jobs: &Q,
    request: &Request,
) -> Response<Body>
where
    S: ConnectionStore,
    Q: JobQueue,
{
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let outcome = accept_delivery(store, jobs, request.uri().path(), chrono::Utc::now()).await;
    let status =
        StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    plain(status, status.canonical_reason().unwrap_or(""))
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut out = Response::new(Body::Text(text.to_string()));
    *out.status_mut() = status;
    out
}

/// Answers one webhook delivery. Never fails: every outcome, including a store or queue
/// outage (503, so Ecwid retries), is an HTTP answer.
pub async fn handle_webhook_request<S, Q, C>(
    ingestor: &Ingestor<S, Q, C>,
    request: Request,
) -> Response<Body>
where
    S: StateStore,
    Q: WorkQueue,
    C: Clock,
{
    // A Function URL accepts every method; Ecwid only ever POSTs.
    if request.method() != Method::POST {
        return to_http(&IngestResponse::method_not_allowed());
    }
    // `HeaderMap` lookups are case-insensitive; API Gateway lower-cases names anyway.
    // A value that is not visible ASCII cannot be a base64 signature: treat it as absent.
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let response = ingestor
        .handle_webhook(request.body().as_ref(), signature)
        .await;
    to_http(&response)
}

/// The core's answer ([`IngestResponse::http`], the same as `els serve`'s) as a response.
pub fn to_http(response: &IngestResponse) -> Response<Body> {
    let (status, body) = response.http();
    let mut out = Response::new(Body::Text(body));
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(RESPONSE_CONTENT_TYPE),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{placeholder_connection, sandbox_and_store};
    use base64::Engine as _;
    use els_core::ingest::IngestConfig;
    use els_core::{ConnectionStore, OrderMessage, Secret};
    use els_sandbox::{OrderItemSpec, OrderSpec, Sandbox, SignedWebhook};
    use els_store_sqlite::SqliteStore;
    use serde_json::{Value, json};
    use std::time::Duration;

    /// An API Gateway HTTP API (payload 2.0) event carrying `body`.
    fn http_api_event(method: &str, body: &[u8], base64: bool, headers: Value) -> String {
        let body = if base64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            String::from_utf8(body.to_vec()).expect("UTF-8 body")
        };
        let mut all_headers = json!({
            "content-type": "application/json; charset=UTF-8",
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https",
        });
        for (k, v) in headers.as_object().expect("headers object") {
            all_headers[k] = v.clone();
        }
        json!({
            "version": "2.0",
            "routeKey": format!("{method} /webhooks/ecwid"),
            "rawPath": "/webhooks/ecwid",
            "rawQueryString": "",
            "headers": all_headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdef1234",
                "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abcdef1234",
                "http": {
                    "method": method,
                    "path": "/webhooks/ecwid",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.10",
                    "userAgent": "Ecwid-Webhooks"
                },
                "requestId": "Zk3bqh1oIAMEVgQ=",
                "routeKey": format!("{method} /webhooks/ecwid"),
                "stage": "$default",
                "time": "27/Nov/2025:10:00:00 +0000",
                "timeEpoch": 1764237600123_u64
            },
            "body": body,
            "isBase64Encoded": base64
        })
        .to_string()
    }

    /// A Lambda Function URL event (also payload 2.0): no route, a `lambda-url` host.
    fn function_url_event(body: &[u8], headers: Value) -> String {
        let mut event: Value = serde_json::from_str(&http_api_event("POST", body, false, headers))
            .expect("event JSON");
        event["routeKey"] = json!("$default");
        event["requestContext"]["routeKey"] = json!("$default");
        event["requestContext"]["domainName"] = json!("abc123.lambda-url.us-east-1.on.aws");
        event["headers"]["host"] = json!("abc123.lambda-url.us-east-1.on.aws");
        event.to_string()
    }

    fn signed_event(hook: &SignedWebhook, base64: bool) -> Request {
        let event = http_api_event(
            "POST",
            &hook.body,
            base64,
            json!({ "x-ecwid-webhook-signature": hook.signature }),
        );
        lambda_http::request::from_str(&event).expect("HTTP API v2 event parses")
    }

    fn ingestor(
        sb: &Sandbox,
        store: &SqliteStore,
    ) -> Ingestor<SqliteStore, SqliteStore, TokioClock> {
        let secret = Secret::new(sb.config().webhook_client_secret.clone());
        Ingestor::new(
            store.clone(),
            store.clone(),
            IngestConfig::new(secret),
            TokioClock,
        )
    }

    fn paid_order_webhook(sb: &Sandbox) -> (String, SignedWebhook) {
        let order_id = sb.place_order(OrderSpec {
            items: vec![OrderItemSpec::new("123123", 1)],
            email: "ann@example.com".into(),
            ..OrderSpec::default()
        });
        let hook = sb.order_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID");
        (order_id, hook)
    }

    fn body_json(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).expect("JSON response body")
    }

    /// Every message in the queue, received once.
    async fn drain(store: &SqliteStore) -> Vec<OrderMessage> {
        store
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[tokio::test]
    async fn signed_paid_webhook_is_queued_once() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (order_id, hook) = paid_order_webhook(&sb);

        let response = handle_webhook_request(&ingestor, signed_event(&hook, false)).await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body_json(&response)["outcome"], "queued");
        let queued = drain(&store).await;
        assert_eq!(
            queued,
            vec![OrderMessage::from_webhook(
                els_core::StoreId::literal(sb.ids().ecwid_store_id),
                &order_id,
                &hook.event_id
            )]
        );
    }

    #[tokio::test]
    async fn a_replayed_event_id_with_an_altered_body_is_200_and_queues_nothing() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (order_id, hook) = paid_order_webhook(&sb);
        let response = handle_webhook_request(&ingestor, signed_event(&hook, false)).await;
        assert_eq!(body_json(&response)["outcome"], "queued");

        let mut body = hook.json();
        body["data"]["orderId"] = json!("SOMEONE-ELSES");
        let replayed = SignedWebhook {
            body: serde_json::to_vec(&body).unwrap(),
            ..hook.clone()
        };
        let response = handle_webhook_request(&ingestor, signed_event(&replayed, false)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "so that nobody retries it"
        );
        assert_eq!(body_json(&response)["outcome"], "replayed");
        let queued = drain(&store).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].order_id, order_id);
    }

    #[tokio::test]
    async fn base64_encoded_body_is_decoded() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (order_id, hook) = paid_order_webhook(&sb);

        let response = handle_webhook_request(&ingestor, signed_event(&hook, true)).await;

        assert_eq!(response.status(), StatusCode::OK);
        let queued = drain(&store).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].order_id, order_id);
    }

    #[tokio::test]
    async fn function_url_event_with_mixed_case_header_is_accepted() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (_, hook) = paid_order_webhook(&sb);
        let event = function_url_event(
            &hook.body,
            json!({ "X-Ecwid-Webhook-Signature": hook.signature }),
        );
        let request = lambda_http::request::from_str(&event).expect("Function URL event parses");

        let response = handle_webhook_request(&ingestor, request).await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(drain(&store).await.len(), 1);
    }

    #[tokio::test]
    async fn bad_or_missing_signature_is_401_and_nothing_is_queued() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (_, hook) = paid_order_webhook(&sb);

        let forged = SignedWebhook {
            signature: els_sandbox::sign_webhook(
                "not-the-secret",
                hook.event_created,
                &hook.event_id,
            ),
            ..hook.clone()
        };
        let response = handle_webhook_request(&ingestor, signed_event(&forged, false)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_json(&response)["outcome"], "error");

        let unsigned = http_api_event("POST", &hook.body, false, json!({}));
        let request = lambda_http::request::from_str(&unsigned).expect("event parses");
        let response = handle_webhook_request(&ingestor, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        assert_eq!(store.queue_depth().expect("depth"), (0, 0));
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let event = http_api_event(
            "POST",
            b"{\"eventId\": \"e1\", \"eventCreated\": ",
            false,
            json!({ "x-ecwid-webhook-signature": "c2lnbmF0dXJl" }),
        );
        let request = lambda_http::request::from_str(&event).expect("event parses");

        let response = handle_webhook_request(&ingestor, request).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(store.queue_depth().expect("depth"), (0, 0));
    }

    #[tokio::test]
    async fn oversize_body_is_413() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let (_, hook) = paid_order_webhook(&sb);
        // A valid, signed event padded past the limit: the size check comes first.
        let mut body: Value = hook.json();
        body["padding"] = json!("x".repeat(ingestor.max_body_bytes()));
        let padded = SignedWebhook {
            body: serde_json::to_vec(&body).expect("JSON"),
            ..hook
        };

        let response = handle_webhook_request(&ingestor, signed_event(&padded, false)).await;

        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(store.queue_depth().expect("depth"), (0, 0));
    }

    #[tokio::test]
    async fn non_post_is_405() {
        let (sb, store) = sandbox_and_store().await;
        let ingestor = ingestor(&sb, &store);
        let event = http_api_event("GET", b"", false, json!({}));
        let request = lambda_http::request::from_str(&event).expect("event parses");

        let response = handle_webhook_request(&ingestor, request).await;

        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(store.queue_depth().expect("depth"), (0, 0));
    }

    /// `infra/events/webhook-ingest.http-api.json` is what `sam local invoke` and
    /// `cargo lambda invoke` send; it must stay a valid, correctly signed delivery.
    #[tokio::test]
    async fn sample_event_is_signed_with_the_documented_test_secret() {
        let store = SqliteStore::open_in_memory().expect("SQLite");
        store
            .put_connection(
                &placeholder_connection(els_core::StoreId::literal(1003)),
                None,
            )
            .await
            .expect("connection");
        let ingestor = Ingestor::new(
            store.clone(),
            store.clone(),
            IngestConfig::new(Secret::new("test-client-secret-3f9a")),
            TokioClock,
        );
        let event = include_str!("../../../infra/events/webhook-ingest.http-api.json");
        let request = lambda_http::request::from_str(event).expect("sample event parses");

        let response = handle_webhook_request(&ingestor, request).await;

        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}",
            body_json(&response)
        );
        let queued = drain(&store).await;
        assert_eq!(
            queued,
            vec![OrderMessage::from_webhook(
                els_core::StoreId::literal(1003),
                "K8XTQ",
                "80aece08-40e8-4145-8d8b-b2d9ee3c1e2a"
            )]
        );
    }
}
