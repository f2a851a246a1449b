//! Which Lightspeed X-Series API generation a connection speaks (issue #14).
//!
//! Lightspeed versions its API by date (`/api/2026-07/...`), one version a quarter, each
//! supported for at least 12 months; the `0.9`/`2.0` paths are "Legacy". The deployment picks
//! one with `LIGHTSPEED_API_VERSION` (default [`LsApiVersion::LATEST`]) and a connection may
//! override it (`els settings --lightspeed-api-version`), so one store can move first.
//!
//! Moving to the next dated version is adding it to [`DATED`] with its specification
//! fragments under `crates/sandbox/tests/fixtures/lightspeed/<version>/` and running the
//! suite: the wire mapping of a dated version is the 2026-07 one until a test shows a
//! difference.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The dated versions this release is tested against, oldest first.
pub const DATED: &[&str] = &["2026-07"];

/// A Lightspeed API generation: the legacy `0.9`/`2.0` paths, or one dated version.
/// Serialised as its name (`"legacy"`, `"2026-07"`); a stored unknown name does not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LsApiVersion {
    /// `POST /api/register_sales` and `/api/2.0/...`.
    Legacy,
    /// `/api/<YYYY-MM>/...`, one of [`DATED`].
    Dated(&'static str),
}

/// Why a version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{given}' is not a Lightspeed API version this release supports: use one of {}",
    supported()
)]
pub struct UnknownApiVersion {
    pub given: String,
}

fn supported() -> String {
    let mut all: Vec<&str> = DATED.iter().rev().copied().collect();
    all.push("legacy");
    all.join(", ")
}

impl LsApiVersion {
    /// The newest dated version whose specification the sandbox and the tests check.
    pub const LATEST: LsApiVersion = LsApiVersion::Dated(DATED[DATED.len() - 1]);

    /// `legacy` or a dated version (`2026-07`), trimmed and case-insensitive.
    pub fn parse(value: &str) -> Result<Self, UnknownApiVersion> {
        let v = value.trim().to_ascii_lowercase();
        if v == "legacy" {
            return Ok(Self::Legacy);
        }
        DATED
            .iter()
            .find(|d| **d == v)
            .map(|d| Self::Dated(d))
            .ok_or_else(|| UnknownApiVersion {
                given: value.chars().take(40).collect(),
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Dated(d) => d,
        }
    }

    pub fn is_dated(self) -> bool {
        matches!(self, Self::Dated(_))
    }

    /// The path prefix of the version's API: `/api/2.0` for legacy reads, `/api/2026-07`.
    /// (Legacy sale creation is `/api/register_sales`, outside this prefix.)
    pub fn prefix(self) -> String {
        match self {
            Self::Legacy => "/api/2.0".into(),
            Self::Dated(d) => format!("/api/{d}"),
        }
    }
}

impl Default for LsApiVersion {
    fn default() -> Self {
        Self::LATEST
    }
}

impl std::str::FromStr for LsApiVersion {
    type Err = UnknownApiVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for LsApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LsApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for LsApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_show_and_round_trip() {
        assert_eq!(LsApiVersion::parse("legacy"), Ok(LsApiVersion::Legacy));
        assert_eq!(LsApiVersion::parse(" LEGACY "), Ok(LsApiVersion::Legacy));
        assert_eq!(
            LsApiVersion::parse("2026-07"),
            Ok(LsApiVersion::Dated("2026-07"))
        );
        assert_eq!(
            LsApiVersion::default(),
            LsApiVersion::parse("2026-07").unwrap()
        );
        assert_eq!(LsApiVersion::LATEST.prefix(), "/api/2026-07");
        assert_eq!(LsApiVersion::Legacy.prefix(), "/api/2.0");
        for bad in ["2026-04", "2.0", "", "2026-07/../x", "latest"] {
            let e = LsApiVersion::parse(bad).unwrap_err().to_string();
            assert!(e.contains("2026-07, legacy"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&LsApiVersion::LATEST).unwrap();
        assert_eq!(json, "\"2026-07\"");
        assert_eq!(
            serde_json::from_str::<LsApiVersion>(&json).unwrap(),
            LsApiVersion::LATEST
        );
        assert!(serde_json::from_str::<LsApiVersion>("\"2099-01\"").is_err());
    }
}
