//! Many stores at once: N sandboxes (each its own Ecwid store and Lightspeed retailer, with
//! its own store id and domain prefix) behind one loopback address, as a deployment sees
//! many merchants: one Ecwid API URL (`/ecwid/api/v3/{storeId}/...`) and one Lightspeed URL
//! template (`/lightspeed/{domain_prefix}/...`). A small proxy routes each request to the
//! sandbox of its store id or domain prefix and passes the answer back unchanged (status,
//! rate-limit headers, body), so every sandbox keeps its own state, counters, faults and
//! rate budget.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use els_cli::sandbox_setup::sandbox_connection;
use els_core::Connection;
use els_sandbox::{Sandbox, SandboxConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// N sandboxes behind one proxy.
pub struct Fleet {
    pub sandboxes: Vec<Sandbox>,
    /// `http://127.0.0.1:PORT` of the proxy.
    pub base_url: String,
}

struct Routes {
    by_store: HashMap<u64, String>,
    by_prefix: HashMap<String, String>,
    http: reqwest::Client,
}

/// The store id of the fleet's `i`-th sandbox.
pub fn fleet_store_id(i: usize) -> u64 {
    20_000 + i as u64
}

impl Fleet {
    /// `n` sandboxes, the `i`-th with store id [`fleet_store_id`]`(i)` and domain prefix
    /// `fleet{i}`, each made by `config` from the default.
    pub async fn start(n: usize, config: impl Fn(usize, SandboxConfig) -> SandboxConfig) -> Self {
        let mut sandboxes = Vec::with_capacity(n);
        for i in 0..n {
            let cfg = config(
                i,
                SandboxConfig {
                    ecwid_store_id: fleet_store_id(i),
                    ls_domain_prefix: format!("fleet{i}"),
                    ..SandboxConfig::default()
                },
            );
            sandboxes.push(Sandbox::start(cfg).await.expect("sandbox starts"));
        }
        let routes = Arc::new(Routes {
            by_store: sandboxes
                .iter()
                .map(|s| (s.config().ecwid_store_id, s.base_url()))
                .collect(),
            by_prefix: sandboxes
                .iter()
                .map(|s| (s.config().ls_domain_prefix.clone(), s.base_url()))
                .collect(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()
                .expect("HTTP client"),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let app = axum::Router::new().fallback(forward).with_state(routes);
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            sandboxes,
            base_url,
        }
    }

    /// The Ecwid API URL of every store (append `/{storeId}/...`).
    pub fn ecwid_api_url(&self) -> String {
        format!("{}/ecwid/api/v3", self.base_url)
    }

    /// The Lightspeed URL template of every retailer.
    pub fn lightspeed_url_template(&self) -> String {
        format!("{}/lightspeed/{{domain_prefix}}", self.base_url)
    }

    /// The connection of the `i`-th store, as `els connect` would make it (version 1).
    pub fn connection(&self, i: usize) -> Connection {
        Connection {
            version: 1,
            ..sandbox_connection(&self.sandboxes[i])
        }
    }

    /// The sandbox of a store id.
    pub fn by_store(&self, store_id: u64) -> &Sandbox {
        self.sandboxes
            .iter()
            .find(|s| s.config().ecwid_store_id == store_id)
            .expect("a store of the fleet")
    }
}

async fn forward(
    State(routes): State<Arc<Routes>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let mut parts = path.trim_start_matches('/').split('/');
    let target = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ecwid"), Some("api"), Some("v3"), Some(store)) => store
            .parse::<u64>()
            .ok()
            .and_then(|s| routes.by_store.get(&s)),
        (Some("lightspeed"), Some(prefix), _, _) => routes.by_prefix.get(prefix),
        _ => None,
    };
    let Some(base) = target else {
        return (StatusCode::NOT_FOUND, "no sandbox for this path").into_response();
    };
    let url = format!(
        "{base}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or(path)
    );
    let mut request = routes.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut out = HeaderMap::new();
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
