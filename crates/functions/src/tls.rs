//! TLS for every outbound connection: built once per process, from root certificates
//! compiled into the binary (Mozilla's, via `webpki-roots` / `webpki-root-certs`).
//!
//! Why not the system's certificate store, the default of both reqwest and the AWS SDK: each
//! of them reads and parses the store's files while the function initialises (reqwest for
//! every client it builds), and that was most of the cold start after the process itself.
//! How long it takes also depends on the host's layout of `/etc/ssl/certs`. With compiled-in
//! roots the cold start does no file I/O for TLS, and trusts the same public CAs; they are
//! updated with the crates, like every other dependency. Ecwid, Lightspeed and the AWS
//! endpoints all use certificates from public CAs.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{HttpClient as _, SharedHttpClient, http_client_fn};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The Ecwid / Lightspeed HTTP client could not be built.
#[derive(Debug, Error)]
pub enum ApiClientError {
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    #[error("HTTP client: {0}")]
    Http(reqwest::Error),
}

/// The one HTTP client for Ecwid and Lightspeed: one connection pool and one TLS
/// configuration per process. The workspace's settings ([`els_http::api_client_builder`]:
/// `timeout` bounds each request) with the compiled-in roots.
pub fn api_http_client(timeout: Duration) -> Result<reqwest::Client, ApiClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Already parsed trust anchors: building the store is a copy.
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ApiClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // What reqwest offers by default: HTTP/2 when the server speaks it, else HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    els_http::api_client_builder(timeout)
        .tls_backend_preconfigured(config)
        .build()
        .map_err(ApiClientError::Http)
}

/// The AWS SDK's HTTPS client (hyper and rustls with aws-lc-rs, as the SDK's default) with
/// the compiled-in roots instead of the system's. Shared by every SDK client of the process.
///
/// The SDK's own client builds a throwaway connector as each service client is created, so
/// that the system's certificate files are read at init rather than on the first request.
/// With compiled-in roots there are no files to read, only the trust store to parse, and
/// that eager build would parse it once per service client and again for the connector
/// actually used. Wrapped like this, the connector is built once per process, when the
/// first AWS call needs it, and cached for every client (their timeouts are the same).
pub fn aws_http_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(compiled_in_roots_pem());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without native roots always builds");
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    http_client_fn(move |settings, components| client.http_connector(settings, components))
}

/// The compiled-in root certificates as one PEM document (what the SDK's trust store takes).
fn compiled_in_roots_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2_200);
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = b64.encode(der.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn the_pem_bundle_round_trips_every_compiled_in_root() {
        let pem = compiled_in_roots_pem();
        let parsed: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(parsed.len() > 100, "{} roots", parsed.len());
        assert!(
            parsed
                .iter()
                .zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS)
                .all(|(a, b)| a.as_ref() == b.as_ref())
        );
        // Every one is a usable trust anchor (the SDK adds them with `expect`).
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(parsed);
        assert_eq!(ignored, 0);
        assert_eq!(added, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    }

    #[test]
    fn both_clients_build() {
        api_http_client(Duration::from_secs(5)).expect("API client");
        let _ = aws_http_client();
    }
}
