//! The one HTTP client builder for Ecwid and Lightspeed: every client of the workspace that
//! calls their APIs (the Ecwid and Lightspeed clients, the OAuth token endpoint, the Lambda
//! functions, `els`) is built from [`api_client_builder`], so they share the same timeouts
//! and user agent. reqwest runs on rustls (the workspace turns its default TLS off).
//!
//! Build one client per process and share it (it is a handle on one connection pool):
//! `EcwidClient::with_http` and `LightspeedClient::with_http` take a clone.
//!
//! Also what every adapter shares beside the client: [`parse_retry_after`], [`path_segment`]
//! for ids put into URLs, and [`TokioClock`], the core's clock port on tokio's timer.

use chrono::{DateTime, Utc};
use els_core::ApiError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::future::Future;
use std::time::{Duration, SystemTime};

/// What we send as `User-Agent`, so Ecwid and Lightspeed can tell our requests apart.
pub const USER_AGENT: &str = concat!("ecwid-lightspeed-sync/", env!("CARGO_PKG_VERSION"));

/// The longest a connection may take to open; a shorter request timeout lowers it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The settings every API client shares: `timeout` bounds each request (so a slow API can
/// never hold a worker past its lease), connecting at most [`CONNECT_TIMEOUT`] of it, with
/// our [`USER_AGENT`]. A caller may add to it (the Lambda functions preconfigure TLS with
/// compiled-in roots) before building.
pub fn api_client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .user_agent(USER_AGENT)
}

/// The client of [`api_client_builder`], as it is.
pub fn api_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    api_client_builder(timeout).build()
}

/// The longest delay a response header may ask for; a larger one (a hostile or broken
/// server, `u64::MAX` seconds) is capped so that time arithmetic cannot overflow.
pub const MAX_HEADER_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A delay given as an HTTP date or as seconds, measured from `now`; a date in the past is
/// zero; at most [`MAX_HEADER_DELAY`].
pub fn header_delay(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_HEADER_DELAY));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HEADER_DELAY),
    )
}

/// Parses `Retry-After` the same way for every API: an HTTP date (Lightspeed documents
/// one) or seconds (Ecwid documents those), capped at [`MAX_HEADER_DELAY`]. A date in the
/// past still means "not before now": retry promptly, not at once (at least 1 s).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    header_delay(value, now).map(|d| d.max(Duration::from_secs(1)))
}

/// What stays as it is in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One path segment of an API URL (an order id with a prefix, a product id), percent-encoded
/// so that no value can add a segment, a query or a fragment. An empty id, `.` or `..` is
/// refused as not found: URL parsing reads those (even percent-encoded) as "this folder" or
/// "the one above", which would send the request, and its token, to another endpoint.
pub fn path_segment(id: &str) -> Result<String, ApiError> {
    if id.bytes().all(|b| b == b'.') && id.len() <= 2 {
        return Err(ApiError::NotFound {
            detail: format!("{id:?} is not an id"),
        });
    }
    Ok(utf8_percent_encode(id, SEGMENT).to_string())
}

/// The core's [`els_core::Clock`] on the system time and tokio's timer: a sleep is a tokio
/// timer (no thread), and a dropped future cancels it. Every process of the workspace runs
/// on tokio (the Lambda runtime, `els`, the tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl els_core::Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_core::Clock as _;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-request server that answers after `delay` and returns the request head.
    async fn serve_once(delay: Duration) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = vec![0; 4096];
            let n = socket.read(&mut head).await.unwrap();
            tokio::time::sleep(delay).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            String::from_utf8_lossy(&head[..n]).to_lowercase()
        });
        (url, server)
    }

    #[test]
    fn a_path_segment_cannot_leave_its_segment() {
        let ok = |id: &str| path_segment(id).unwrap();
        assert_eq!(ok("K8XTQ"), "K8XTQ");
        assert_eq!(ok("ABC-12_x.~"), "ABC-12_x.~");
        assert_eq!(ok("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(ok("../x"), "..%2Fx");
        assert_eq!(ok("..."), "...");
        assert_eq!(ok("é"), "%C3%A9");
        for dots in ["", ".", ".."] {
            assert!(matches!(path_segment(dots), Err(ApiError::NotFound { .. })));
        }
    }

    #[test]
    fn no_id_changes_the_endpoint_it_is_sent_to() {
        let base = "https://app.ecwid.com/api/v3/1003/orders/";
        for id in [
            "..",
            ".",
            "",
            "%2e%2e",
            "../../x",
            "a/../..",
            "?x",
            "#x",
            "@evil.com",
        ] {
            let Ok(segment) = path_segment(id) else {
                continue;
            };
            let url = reqwest::Url::parse(&format!("{base}{segment}")).unwrap();
            assert_eq!(url.host_str(), Some("app.ecwid.com"), "{id}");
            assert!(
                url.path().starts_with("/api/v3/1003/orders/"),
                "{id}: {url}"
            );
            assert_eq!(url.path_segments().unwrap().count(), 5, "{id}: {url}");
            assert_eq!((url.query(), url.fragment()), (None, None), "{id}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_sleeps_on_the_tokio_timer() {
        let started = tokio::time::Instant::now();
        TokioClock.sleep(Duration::from_secs(3600)).await;
        // Paused tokio time moves only through its timers: an hour passed without a thread.
        assert!(started.elapsed() >= Duration::from_secs(3600));
        let before = Utc::now();
        assert!((TokioClock.now() - before).num_seconds().abs() < 5);
    }

    #[tokio::test]
    async fn requests_carry_our_user_agent() {
        let (url, server) = serve_once(Duration::ZERO).await;
        let client = api_client(Duration::from_secs(5)).unwrap();

        let answer = client.get(&url).send().await.unwrap();

        assert_eq!(answer.status(), 200);
        let head = server.await.unwrap();
        assert!(
            head.contains(&format!("user-agent: {USER_AGENT}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_request_is_cut_off_at_its_timeout() {
        let (url, _server) = serve_once(Duration::from_secs(5)).await;
        let client = api_client(Duration::from_millis(200)).unwrap();
        let started = Instant::now();

        let err = client.get(&url).send().await.unwrap_err();

        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
