//! A webhook receiver on 127.0.0.1 for the Lightspeed webhook tests: it records every request
//! and answers a chosen status.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub content_type: String,
    pub signature: Option<String>,
    pub body: Bytes,
}

impl Hit {
    pub fn form(&self) -> HashMap<String, String> {
        serde_html_form::from_bytes(&self.body).expect("a form-encoded body")
    }

    pub fn payload(&self) -> Value {
        serde_json::from_str(&self.form()["payload"]).expect("a JSON payload")
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    pub status: Arc<AtomicU16>,
    /// Answers taken, one per hit, before `status` applies.
    pub script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The payloads of the hits whose `type` field is `kind`.
    pub fn payloads(&self, kind: &str) -> Vec<Value> {
        self.hits()
            .iter()
            .filter(|h| h.form().get("type").map(String::as_str) == Some(kind))
            .map(Hit::payload)
            .collect()
    }
}

/// A receiver on 127.0.0.1 answering `status` (changeable; the `script` first) after `pause`.
pub async fn receiver(status: u16, pause: Duration) -> Receiver {
    let r = Receiver {
        url: String::new(),
        hits: Arc::default(),
        status: Arc::new(AtomicU16::new(status)),
        script: Arc::default(),
    };
    async fn hook(
        State((r, pause)): State<(Receiver, Duration)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        r.hits.lock().unwrap().push(Hit {
            content_type: header("content-type").unwrap_or_default(),
            signature: header("x-signature"),
            body,
        });
        let scripted = r.script.lock().unwrap().pop_front();
        tokio::time::sleep(pause).await;
        StatusCode::from_u16(scripted.unwrap_or_else(|| r.status.load(Ordering::SeqCst))).unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state((r.clone(), pause));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, ..r }
}

/// `X-Signature` as the docs describe it, computed here: HMAC-SHA256 of the raw body with
/// `secret`, lower-case hex.
pub fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("signature={hex},algorithm=HMAC-SHA256")
}
