//! Endpoints as axum handlers that answer an [`Op`]: the work the request does on the state.
//!
//! A handler only extracts its path parameters, query parameters and JSON body
//! ([`JsonBody`]) and returns an op; it never touches the state. The API's gate (`server.rs`)
//! runs the op under the state lock once the token, the rate limit and the faults have let
//! the request through. So an Ecwid batch routes its sub-requests through the same router as
//! HTTP requests and runs them all under one lock.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::server::ApiResponse;
use crate::state::State;

/// What a routed request does to the state, and its answer.
pub(crate) struct Op(Box<dyn FnOnce(&mut State) -> ApiResponse + Send>);

impl Op {
    pub fn new(run: impl FnOnce(&mut State) -> ApiResponse + Send + 'static) -> Op {
        Op(Box::new(run))
    }

    /// An op that only answers: a path, method or parameter the API refuses.
    pub fn answer(resp: ApiResponse) -> Op {
        Op::new(move |_| resp)
    }

    pub fn run(self, st: &mut State) -> ApiResponse {
        (self.0)(st)
    }

    /// The op a router answered: its endpoint's, or the answer to a [`BadParameter`] in the
    /// API's shape. `None` for an answer of axum's own (a path segment that is not UTF-8).
    pub fn from_routed(resp: &Response, bad_parameter: fn(&str) -> ApiResponse) -> Option<Op> {
        if let Some(pending) = resp.extensions().get::<Pending>() {
            return pending.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        let BadParameter(message) = resp.extensions().get::<BadParameter>()?;
        Some(Op::answer(bad_parameter(message)))
    }
}

/// How an op travels back through the router: response extensions must be `Clone + Sync`.
#[derive(Clone)]
struct Pending(Arc<Mutex<Option<Op>>>);

impl IntoResponse for Op {
    fn into_response(self) -> Response {
        let mut resp = Response::default();
        resp.extensions_mut()
            .insert(Pending(Arc::new(Mutex::new(Some(self)))));
        resp
    }
}

/// Query parameters read into `T` (see [`parse_query`]).
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = BadParameter;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, BadParameter> {
        parse_query(parts.uri.query())
            .map(Query)
            .map_err(BadParameter)
    }
}

/// A query parameter an endpoint refuses, and why (`offset must be a non-negative
/// integer`). Each API answers it with a 400 in its own error shape.
#[derive(Clone, Debug)]
pub(crate) struct BadParameter(pub String);

impl IntoResponse for BadParameter {
    fn into_response(self) -> Response {
        let mut resp = Response::default();
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The request's JSON body (`None` when it has none), parsed by the gate before routing.
#[derive(Clone, Debug)]
pub(crate) struct JsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequestParts<S> for JsonBody {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .remove::<JsonBody>()
            .unwrap_or(JsonBody(None)))
    }
}

/// Route a request that has no HTTP connection (an Ecwid batch's sub-request) to its op.
/// `path` is relative to the API's root and may carry a query string. `None` when the path
/// is not a URL path, or is one no endpoint can read.
pub(crate) async fn route(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
    bad_parameter: fn(&str) -> ApiResponse,
) -> Option<Op> {
    let uri: Uri = normalize(path).parse().ok()?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .ok()?;
    req.extensions_mut().insert(JsonBody(body));
    let resp: Result<Response, Infallible> = router.clone().oneshot(req).await;
    let Ok(resp) = resp;
    Op::from_routed(&resp, bad_parameter)
}

/// A path with its empty segments dropped (`//a/b/` is `/a/b`), its query kept: the APIs
/// have always accepted doubled and trailing slashes.
pub(crate) fn normalize(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out = String::with_capacity(path_and_query.len() + 1);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Read a query string into `T` (serde_html_form: a repeated key fills a `Vec` field). A bad
/// value gives `"{parameter} {problem}"`, the problem as the [`params`] helpers word it.
pub(crate) fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, String> {
    let de = serde_html_form::Deserializer::from_bytes(query.unwrap_or("").as_bytes());
    serde_path_to_error::deserialize(de).map_err(|e| format!("{} {}", e.path(), e.inner()))
}

/// The types of query parameters, for the fields of a `#[serde(default)]` struct (an absent
/// parameter is the type's default). A key given more than once counts by its first value,
/// as the APIs always did; a `Vec<String>` field takes every value.
pub(crate) mod params {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::de::{Error, IgnoredAny, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    /// A parameter's first value, as given (`?sku=` is `Some("")`).
    #[derive(Debug, Default)]
    pub struct First(pub Option<String>);

    impl<'de> Deserialize<'de> for First {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct FirstValue;
            impl<'de> Visitor<'de> for FirstValue {
                type Value = Option<String>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a query parameter")
                }
                fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Some(v.to_string()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let first = seq.next_element::<String>()?;
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(first)
                }
            }
            d.deserialize_any(FirstValue).map(First)
        }
    }

    impl First {
        pub fn as_deref(&self) -> Option<&str> {
            self.0.as_deref()
        }

        /// The value, unless it is empty.
        fn non_empty(self) -> Option<String> {
            self.0.filter(|s| !s.is_empty())
        }
    }

    /// A non-negative integer; empty counts as absent (`?offset=`).
    #[derive(Debug, Default)]
    pub struct Count(pub Option<u64>);

    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            First::deserialize(d)?
                .non_empty()
                .map(|s| s.parse::<u64>())
                .transpose()
                .map(Count)
                .map_err(|_| D::Error::custom("must be a non-negative integer"))
        }
    }

    /// A comma-separated list, each item trimmed, empty items dropped; empty counts as absent
    /// (`?ids=,` is an empty list: it matches nothing).
    #[derive(Debug, Default)]
    pub struct Commas(pub Option<Vec<String>>);

    impl<'de> Deserialize<'de> for Commas {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Commas(First::deserialize(d)?.non_empty().map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })))
        }
    }

    /// An Ecwid search date (unix seconds, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS [+0000]`), as
    /// unix seconds; empty counts as absent.
    #[derive(Debug, Default)]
    pub struct EcwidDate(pub Option<i64>);

    impl<'de> Deserialize<'de> for EcwidDate {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            First::deserialize(d)?
                .non_empty()
                .map(|s| crate::util::parse_ecwid_date(&s).ok_or(()))
                .transpose()
                .map(EcwidDate)
                .map_err(|()| D::Error::custom("is not a valid date"))
        }
    }

    /// A Lightspeed search date (RFC 3339 or `YYYY-MM-DD HH:MM:SS`, UTC). One that does not
    /// parse is ignored, as the search ignores it.
    #[derive(Debug, Default)]
    pub struct LsDate(pub Option<DateTime<Utc>>);

    impl<'de> Deserialize<'de> for LsDate {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let first = First::deserialize(d)?;
            Ok(LsDate(
                first.as_deref().and_then(crate::util::parse_ls_date),
            ))
        }
    }

    /// True only for `true`; anything else is false.
    #[derive(Debug, Default)]
    pub struct Flag(pub bool);

    impl<'de> Deserialize<'de> for Flag {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Flag(First::deserialize(d)?.as_deref() == Some("true")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    use params::{Commas, Count, First, Flag};

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Q {
        offset: Count,
        email: First,
        sku: Vec<String>,
        ids: Commas,
        deleted: Flag,
    }

    #[test]
    fn queries_keep_repeats_and_decode() {
        let q: Q = parse_query(Some(
            "sku=a%20b&sku=c&email=x%40y.z&email=second&offset=&ids=1,+2,",
        ))
        .unwrap();
        assert_eq!(q.sku, ["a b", "c"]);
        assert_eq!(q.email.as_deref(), Some("x@y.z"), "the first value counts");
        assert_eq!(q.offset.0, None, "empty is absent");
        assert_eq!(q.ids.0.unwrap(), ["1", "2"]);
        assert!(!q.deleted.0);
        let q: Q = parse_query(Some("sku=one&deleted=true&offset=7")).unwrap();
        assert_eq!(
            (q.sku, q.deleted.0, q.offset.0),
            (vec!["one".to_string()], true, Some(7))
        );
        let q: Q = parse_query(None).unwrap();
        assert!(q.sku.is_empty() && q.email.0.is_none() && q.ids.0.is_none());
    }

    #[test]
    fn a_bad_value_names_its_parameter() {
        let e = parse_query::<Q>(Some("email=a&offset=-1")).unwrap_err();
        assert_eq!(e, "offset must be a non-negative integer");
    }

    #[test]
    fn paths_lose_empty_segments_only() {
        assert_eq!(normalize("//a//b/?x=1//"), "/a/b?x=1//");
        assert_eq!(normalize("products?sku=A"), "/products?sku=A");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/"), "/");
    }
}
