//! Structured logs: one JSON object per line on stdout, which Lambda's JSON log format
//! passes through to CloudWatch as-is.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. The level comes from `RUST_LOG` (default `info`). ANSI
/// colours are off: CloudWatch would store them as escape codes.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` so a second call (e.g. from a test) is harmless.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        // Every enclosing span, so a line carries the Lambda request id, the SQS message id
        // and the order, not only the innermost of them.
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(true)
        .try_init();
}
