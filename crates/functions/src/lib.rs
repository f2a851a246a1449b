//! The AWS Lambda functions of ecwid-lightspeed-sync.
//!
//! Each binary in `src/bin/` builds its function once, at init ([`wiring`]: its [`config`],
//! its [`secrets`], its clients), and hands the function's handler to the Lambda runtime. The handlers are generic
//! over the core's ports, so tests run them against SQLite and the sandbox, without AWS.
//!
//! * [`ingest::handle_webhook_request`]: Ecwid webhook (HTTP API / Function URL) to the queue.
//! * [`poster::post_sqs_batch`]: SQS batch to Lightspeed sales, with partial batch failures.
//! * [`tick::enqueue_tick`]: an EventBridge schedule (`inventory-sync` every minute,
//!   `order-sweep` every 5) to one store job per connection.
//! * [`store_worker::run_jobs`]: store jobs (SQS batch) to Ecwid stock levels (the mirror)
//!   or to the work queue (the sweep: paid orders no webhook brought), one store per job,
//!   with partial batch failures.
//!
//! [`metrics`] writes their custom CloudWatch metrics (Embedded Metric Format on stdout),
//! which the template's alarms watch.

pub mod config;
pub mod ingest;
pub mod lightspeed_auth;
pub mod metrics;
pub mod poster;
pub mod secrets;
pub mod store_worker;
pub mod telemetry;
pub mod tick;
pub mod tls;
pub mod wiring;

#[cfg(test)]
mod testing;
