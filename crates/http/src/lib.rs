//! The one HTTP client builder for Ecwid and Lightspeed: every client of the workspace that
//! calls their APIs (the Ecwid and Lightspeed clients, the OAuth token endpoint, the Lambda
//! functions, `els`) is built from [`api_client_builder`], so they share the same timeouts
//! and user agent. reqwest runs on rustls (the workspace turns its default TLS off).
//!
//! Build one client per process and share it (it is a handle on one connection pool):
//! `EcwidClient::with_http` and `LightspeedClient::with_http` take a clone.

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

#[cfg(test)]
mod tests {
    use super::*;
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
