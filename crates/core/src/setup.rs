//! The decisions of `els connect` (and later `els settings`): what a merchant typed (a name,
//! an id or a SKU) resolved against what the APIs list, and the checks that must pass before
//! a connection is saved. Nothing here does I/O; the CLI fetches the lists and asks.

use crate::ids::StoreId;
use std::fmt;

/// Something a merchant can pick: a register, user, payment type or product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    /// Other names it answers to (a product's SKU, a user's login).
    pub aliases: Vec<String>,
    /// Shown next to the name when listing (a register's outlet, a product's SKU).
    pub note: Option<String>,
}

impl Candidate {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            aliases: Vec::new(),
            note: None,
        }
    }

    pub fn alias(mut self, alias: Option<impl Into<String>>) -> Self {
        if let Some(a) = alias {
            let a = a.into();
            if !a.trim().is_empty() {
                self.aliases.push(a);
            }
        }
        self
    }

    pub fn note(mut self, note: Option<impl Into<String>>) -> Self {
        self.note = note.map(Into::into);
        self
    }

    fn answers_to(&self, input: &str) -> bool {
        let same = |s: &str| s.trim().to_lowercase() == input.trim().to_lowercase();
        same(&self.name) || self.aliases.iter().any(|a| same(a))
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.name)?;
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        write!(f, " [id {}]", self.id)
    }
}

/// Why a connection cannot be saved. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("no {what} is called or has the id '{input}'. The {what}s are: {}", list(.available))]
    Unknown {
        what: &'static str,
        input: String,
        available: Vec<Candidate>,
    },
    #[error("several {what}s are called '{input}': {}. Give the id instead", list(.matches))]
    Ambiguous {
        what: &'static str,
        input: String,
        matches: Vec<Candidate>,
    },
    #[error("choose a {what} with --{flag}. The {what}s are: {}", list(.available))]
    Missing {
        what: &'static str,
        flag: &'static str,
        available: Vec<Candidate>,
    },
    #[error("the Lightspeed retailer has no {what}; create one in Lightspeed first")]
    NoneExist { what: &'static str },
    #[error(
        "the Ecwid token belongs to store {token_store}, not store {asked}: use that store's token, or --store {token_store}"
    )]
    WrongStore { asked: StoreId, token_store: u64 },
    #[error(
        "the Ecwid store sells in {ecwid} but the Lightspeed retailer in {lightspeed}: sales would be posted at the wrong amounts, so this pair cannot be connected"
    )]
    CurrencyMismatch { ecwid: String, lightspeed: String },
    #[error("{system} refused the token ({detail}). {advice}")]
    TokenRefused {
        system: &'static str,
        detail: String,
        advice: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

fn list(items: &[Candidate]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate `input` names: the one whose id is `input`, else the one whose name or an
/// alias equals it (trimmed, case ignored). Two with that name are refused, listing their
/// ids; none is refused, listing what there is.
pub fn choose<'a>(
    what: &'static str,
    candidates: &'a [Candidate],
    input: &str,
) -> Result<&'a Candidate, SetupError> {
    if let Some(c) = candidates.iter().find(|c| c.id == input.trim()) {
        return Ok(c);
    }
    let matches: Vec<&Candidate> = candidates.iter().filter(|c| c.answers_to(input)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(SetupError::Unknown {
            what,
            input: input.to_string(),
            available: candidates.to_vec(),
        }),
        several => Err(SetupError::Ambiguous {
            what,
            input: input.to_string(),
            matches: several.iter().map(|c| (*c).clone()).collect(),
        }),
    }
}

/// The candidate to use when the merchant named none: the only one, or `preferred` (the
/// primary user, say) when there is one; otherwise the merchant must choose.
pub fn default_choice<'a>(
    what: &'static str,
    flag: &'static str,
    candidates: &'a [Candidate],
    preferred: Option<&str>,
) -> Result<&'a Candidate, SetupError> {
    match candidates {
        [] => Err(SetupError::NoneExist { what }),
        [one] => Ok(one),
        all => preferred
            .and_then(|id| all.iter().find(|c| c.id == id))
            .ok_or_else(|| SetupError::Missing {
                what,
                flag,
                available: all.to_vec(),
            }),
    }
}

/// The Ecwid token must be the store's own.
pub fn check_store(asked: StoreId, token_store: u64) -> Result<(), SetupError> {
    if asked.get() == token_store {
        Ok(())
    } else {
        Err(SetupError::WrongStore { asked, token_store })
    }
}

/// Both systems must count in one currency (the sale is posted in Ecwid's amounts). A side
/// that does not say is accepted, but it is then rounded at cents (see `money`).
pub fn check_currency(ecwid: Option<&str>, lightspeed: Option<&str>) -> Result<(), SetupError> {
    match (ecwid, lightspeed) {
        (Some(e), Some(l)) if !e.trim().eq_ignore_ascii_case(l.trim()) => {
            Err(SetupError::CurrencyMismatch {
                ecwid: e.trim().to_uppercase(),
                lightspeed: l.trim().to_uppercase(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registers() -> Vec<Candidate> {
        vec![
            Candidate::new("r-1", "Main").note(Some("outlet Downtown")),
            Candidate::new("r-2", "Web Store Register"),
            Candidate::new("r-3", "main").note(Some("outlet Airport")),
        ]
    }

    #[test]
    fn a_name_or_an_id_chooses_and_case_and_spaces_do_not_matter() {
        let r = registers();
        assert_eq!(
            choose("register", &r, " web store register ").unwrap().id,
            "r-2"
        );
        assert_eq!(choose("register", &r, "r-3").unwrap().id, "r-3");
        let p = vec![Candidate::new("p-1", "Shipping").alias(Some("SHIP-1"))];
        assert_eq!(choose("product", &p, "ship-1").unwrap().id, "p-1");
    }

    #[test]
    fn an_unknown_name_lists_what_there_is_and_a_shared_name_lists_the_ids() {
        let r = registers();
        let err = choose("register", &r, "Kiosk").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no register is called or has the id 'Kiosk'. The registers are: \"Main\" (outlet Downtown) [id r-1], \"Web Store Register\" [id r-2], \"main\" (outlet Airport) [id r-3]"
        );
        let err = choose("register", &r, "MAIN").unwrap_err();
        assert!(matches!(&err, SetupError::Ambiguous { matches, .. } if matches.len() == 2));
        assert!(err.to_string().contains("[id r-1]") && err.to_string().contains("[id r-3]"));
        assert!(err.to_string().ends_with("Give the id instead"));
    }

    #[test]
    fn defaults_are_the_only_candidate_or_the_preferred_one() {
        let one = vec![Candidate::new("u-1", "Ann")];
        assert_eq!(
            default_choice("user", "user", &one, None).unwrap().id,
            "u-1"
        );
        let two = vec![Candidate::new("u-1", "Ann"), Candidate::new("u-2", "Bob")];
        assert_eq!(
            default_choice("user", "user", &two, Some("u-2"))
                .unwrap()
                .id,
            "u-2"
        );
        let err = default_choice("user", "user", &two, None).unwrap_err();
        assert!(err.to_string().starts_with("choose a user with --user."));
        assert_eq!(
            default_choice("register", "register", &[], None),
            Err(SetupError::NoneExist { what: "register" })
        );
    }

    #[test]
    fn the_token_must_be_the_stores_and_currencies_must_agree() {
        let store = StoreId::literal(1003);
        assert!(check_store(store, 1003).is_ok());
        let err = check_store(store, 2002).unwrap_err();
        assert!(
            err.to_string()
                .contains("belongs to store 2002, not store 1003")
        );
        assert!(check_currency(Some("usd"), Some("USD")).is_ok());
        assert!(check_currency(None, Some("USD")).is_ok());
        let err = check_currency(Some("CAD"), Some("USD")).unwrap_err();
        assert!(
            err.to_string()
                .contains("sells in CAD but the Lightspeed retailer in USD")
        );
    }
}
