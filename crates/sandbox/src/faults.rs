//! Fault injection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::duration_ms;

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Route {
    /// `GET /api/v3/{storeId}/orders/{orderId}` on Ecwid.
    EcwidGetOrder,
    /// Any Ecwid API request.
    EcwidAny,
    /// `POST /api/register_sales` on Lightspeed.
    LsPostSale,
    /// `GET /api/2.0/search` on Lightspeed.
    LsSearch,
    /// Any Lightspeed API request.
    LsAny,
}

/// What happens to a matched request.
///
/// JSON: `{"Status": 503}`, `{"Delay": 1500}` (milliseconds), `"DropAfterCommit"`,
/// `{"RateLimit": {"retry_after": 2000}}` (milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// Answer with this status (5xx expected) and a realistic body; nothing is executed.
    Status(u16),
    /// Execute the request, then wait this long before answering. A client that times out
    /// meanwhile does not know the outcome (for a POST the write did happen).
    Delay(#[serde(with = "duration_ms")] Duration),
    /// Execute the request (for `LsPostSale`: the sale is created and stock lowered), then close
    /// the TCP connection without sending any HTTP response. Fires only on a 2xx outcome;
    /// otherwise it stays armed.
    DropAfterCommit,
    /// Answer 429 exactly like the real API does (Lightspeed: `Retry-After` as an HTTP date;
    /// Ecwid: `Retry-After` in seconds); nothing is executed.
    RateLimit {
        #[serde(with = "duration_ms")]
        retry_after: Duration,
    },
}

/// A fault armed for the next `times` matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub route: Route,
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault that fires once.
    pub fn once(route: Route, kind: FaultKind) -> Fault {
        Fault {
            route,
            kind,
            times: 1,
        }
    }

    /// A fault that fires `times` times.
    pub fn times(route: Route, kind: FaultKind, times: u32) -> Fault {
        Fault { route, kind, times }
    }
}
