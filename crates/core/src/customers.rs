//! Customer matching (rules C1–C4): which Lightspeed customer a sale is assigned to.
//!
//! * **C1, matching.** The order's `email` is trimmed and lower-cased ([`normalise_email`]).
//!   Lightspeed's customer search may match loosely (the sandbox matches a case-insensitive
//!   substring), so every hit is re-checked: only customers whose email, trimmed and
//!   lower-cased, equals the normalised email count ([`choose_customer`]). Several equal
//!   hits are duplicates made outside this product: the smallest id is taken, so the choice
//!   is stable, and the caller logs that duplicates exist.
//! * **C2, no updates.** A matched customer is used as it is, whatever its name. The ports
//!   have no customer update call at all.
//! * **C3, creation.** With no match, a customer is created ([`new_customer`]) with the
//!   normalised email (so our own lower-case search always finds what we created) and the
//!   order's name: billing `firstName`/`lastName`; else the billing `name` split into first
//!   word and rest; else the same two steps on the shipping person.
//! * **C4, no name.** **Choice:** `first_name` = the email as the buyer gave it (trimmed) and
//!   `last_name` = `""`. Lightspeed requires both fields as strings and accepts an empty
//!   `last_name` (so does the sandbox); repeating the email in `last_name` would print it
//!   twice in the POS's customer name.
//! * **Not an email.** An order whose email is missing or is not an address (see
//!   [`normalise_email`]) posts with no customer. Log lines only ever show
//!   [`crate::mask::mask_email`].
//!
//! **The customer link** ([`CustomerLink`], keyed by store and normalised email) caches the
//! match, so a returning email costs no Lightspeed call, and it is also the claim that makes
//! concurrent orders from one new email create ONE customer ([`decide_link`]): the first
//! worker writes `Claimed` (put-if-absent), searches Lightspeed, creates if needed, then
//! writes `Linked`. Others see a live claim and retry shortly. An expired claim (its worker
//! crashed or failed) may be taken over; the new holder searches again before creating, so
//! a customer the old holder created is found, not duplicated.

use crate::ecwid::{EcwidOrder, Person};
use crate::ids::StoreId;
use crate::lightspeed::{LsCustomer, NewCustomer};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// An email address, once checked: only [`Email::parse`] makes one, so a value of this type
/// is always an address Lightspeed accepts, and its matching key is always normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    normalised: String,
    as_given: String,
}

impl Email {
    /// The address in `raw`, trimmed, if it is one (see [`normalise_email`]).
    pub fn parse(raw: &str) -> Option<Self> {
        normalise_email(raw).map(|normalised| Self {
            normalised,
            as_given: raw.trim().to_string(),
        })
    }

    /// Trimmed and lower-cased: the matching key (C1).
    pub fn normalised(&self) -> &str {
        &self.normalised
    }

    /// Trimmed, case kept: the name of a customer created for a nameless order (C4).
    pub fn as_given(&self) -> &str {
        &self.as_given
    }
}

/// What the order's `email` field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEmail {
    /// Absent or blank: the order posts with no customer.
    Missing,
    /// Present but not an address (the raw value; log it only through `mask_email`).
    NotAnEmail(String),
    Valid(Email),
}

/// Trims and lower-cases `raw` if it is an email address, else `None`.
///
/// An address here has exactly one `@` with text on both sides, no whitespace inside, and a
/// domain with a dot that neither starts nor ends it. The last two conditions are what
/// Lightspeed's customer create checks (and the sandbox with it): an address it would refuse
/// must not park the order, so it is treated as no email at all.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    ok.then(|| email.to_lowercase())
}

/// Checks the order's `email` (C1).
pub fn order_email(order: &EcwidOrder) -> OrderEmail {
    let raw = order.email.as_deref().unwrap_or("");
    if raw.trim().is_empty() {
        return OrderEmail::Missing;
    }
    match Email::parse(raw) {
        Some(email) => OrderEmail::Valid(email),
        None => OrderEmail::NotAnEmail(raw.to_string()),
    }
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// A person's name as (first, last): `firstName`/`lastName` if either is set, else `name`
/// split into its first word and the rest.
fn person_name(p: &Person) -> Option<(String, String)> {
    let first = non_blank(p.first_name.as_deref());
    let last = non_blank(p.last_name.as_deref());
    if first.is_some() || last.is_some() {
        return Some((
            first.unwrap_or("").to_string(),
            last.unwrap_or("").to_string(),
        ));
    }
    let name = non_blank(p.name.as_deref())?;
    Some(match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first.to_string(), rest.trim().to_string()),
        None => (name.to_string(), String::new()),
    })
}

/// The order's buyer name as (first, last), from the billing person, else the shipping
/// person; `None` when neither has one.
pub fn order_name(order: &EcwidOrder) -> Option<(String, String)> {
    order
        .billing_person
        .as_ref()
        .and_then(person_name)
        .or_else(|| order.shipping_person.as_ref().and_then(person_name))
}

/// The customer to create for `order` (C3, C4).
pub fn new_customer(order: &EcwidOrder, email: &Email) -> NewCustomer {
    let (first_name, last_name) =
        order_name(order).unwrap_or_else(|| (email.as_given().to_string(), String::new()));
    NewCustomer {
        first_name,
        last_name,
        email: email.normalised().to_string(),
    }
}

/// Whether a Lightspeed customer's email equals `normalised` once trimmed and lower-cased.
pub fn email_matches(customer: &LsCustomer, normalised: &str) -> bool {
    customer
        .email
        .as_deref()
        .is_some_and(|e| e.trim().to_lowercase() == normalised)
}

/// The re-check of search hits (C1): the matching customer with the smallest id, and how
/// many hits matched (more than one means duplicates exist in Lightspeed).
pub fn choose_customer<'a>(
    hits: &'a [LsCustomer],
    normalised: &str,
) -> Option<(&'a LsCustomer, usize)> {
    let matching: Vec<&LsCustomer> = hits
        .iter()
        .filter(|c| email_matches(c, normalised))
        .collect();
    let count = matching.len();
    matching
        .into_iter()
        .min_by(|a, b| a.id.cmp(&b.id))
        .map(|c| (c, count))
}

/// Where the link of one (store, email) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkState {
    /// A worker is finding or creating the customer; others wait until `lease_until`.
    Claimed { lease_until: DateTime<Utc> },
    /// The customer; final.
    Linked { customer_id: String },
}

/// The customer link state item (`STORE#{storeId}` / `EMAIL#{normalised}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLink {
    pub store_id: StoreId,
    /// The normalised email.
    pub email: String,
    pub state: LinkState,
    /// Optimistic-concurrency version; the stored item has this version.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

impl CustomerLink {
    /// A first claim (version 1), written with `expected_version = None`.
    pub fn claim(store_id: StoreId, email: &str, now: DateTime<Utc>, lease: Duration) -> Self {
        Self {
            store_id,
            email: email.to_string(),
            state: LinkState::Claimed {
                lease_until: now + lease,
            },
            version: 1,
            updated_at: now,
        }
    }

    fn next(&self, state: LinkState, now: DateTime<Utc>) -> Self {
        Self {
            state,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// The claim taken over (an expired claim), written with `expected_version = Some(self.version)`.
    pub fn reclaimed(&self, now: DateTime<Utc>, lease: Duration) -> Self {
        self.next(
            LinkState::Claimed {
                lease_until: now + lease,
            },
            now,
        )
    }

    /// The claim's result, written with `expected_version = Some(self.version)`.
    pub fn linked(&self, customer_id: &str, now: DateTime<Utc>) -> Self {
        self.next(
            LinkState::Linked {
                customer_id: customer_id.to_string(),
            },
            now,
        )
    }

    /// The claim given up after a failure: expired at once, so the next order takes it over
    /// (and searches first) without waiting for the lease.
    pub fn released(&self, now: DateTime<Utc>) -> Self {
        self.next(LinkState::Claimed { lease_until: now }, now)
    }

    pub fn customer_id(&self) -> Option<&str> {
        match &self.state {
            LinkState::Linked { customer_id } => Some(customer_id),
            LinkState::Claimed { .. } => None,
        }
    }
}

/// What to do with the link as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDecision {
    /// Linked: assign the sale to this customer; no Lightspeed call.
    Use { customer_id: String },
    /// Another worker holds a live claim: retry after about this long.
    Wait { retry_in: std::time::Duration },
    /// Write `link` with the version condition `expected_version`, then search and create.
    Claim {
        link: CustomerLink,
        expected_version: Option<u64>,
    },
}

/// Decides on the link `existing` read for (`store_id`, `email`).
pub fn decide_link(
    existing: Option<&CustomerLink>,
    store_id: StoreId,
    email: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> LinkDecision {
    match existing {
        None => LinkDecision::Claim {
            link: CustomerLink::claim(store_id, email, now, lease),
            expected_version: None,
        },
        Some(link) => match &link.state {
            LinkState::Linked { customer_id } => LinkDecision::Use {
                customer_id: customer_id.clone(),
            },
            LinkState::Claimed { lease_until } if *lease_until > now => LinkDecision::Wait {
                retry_in: (*lease_until - now).to_std().unwrap_or_default(),
            },
            LinkState::Claimed { .. } => LinkDecision::Claim {
                link: link.reclaimed(now, lease),
                expected_version: Some(link.version),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(email: Option<&str>, billing: Option<Person>, shipping: Option<Person>) -> EcwidOrder {
        EcwidOrder {
            id: "K8XTQ".into(),
            email: email.map(str::to_string),
            billing_person: billing,
            shipping_person: shipping,
            ..EcwidOrder::default()
        }
    }

    fn person(name: &str, first: &str, last: &str) -> Person {
        Person {
            name: Some(name.into()),
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            ..Person::default()
        }
    }

    fn ls(id: &str, email: Option<&str>) -> LsCustomer {
        LsCustomer {
            id: id.into(),
            first_name: Some("X".into()),
            last_name: Some("Y".into()),
            email: email.map(str::to_string),
        }
    }

    fn email(raw: &str) -> Email {
        match order_email(&order(Some(raw), None, None)) {
            OrderEmail::Valid(e) => e,
            other => panic!("{raw:?} should be an email, got {other:?}"),
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalise_email("  Jane.Doe@Example.COM \t"),
            Some("jane.doe@example.com".into())
        );
        let e = email(" Jane@Example.com ");
        assert_eq!(e.normalised(), "jane@example.com");
        assert_eq!(e.as_given(), "Jane@Example.com");
        assert_eq!(Email::parse("not-an-email"), None);
    }

    #[test]
    fn things_that_are_not_emails_are_refused() {
        for raw in [
            "jane",
            "@example.com",
            "jane@",
            "jane@@example.com",
            "a@b@example.com",
            "ja ne@example.com",
            "jane@localhost",
            "jane@.com",
            "jane@example.",
            "",
        ] {
            assert_eq!(normalise_email(raw), None, "{raw:?}");
        }
        assert_eq!(order_email(&order(None, None, None)), OrderEmail::Missing);
        assert_eq!(
            order_email(&order(Some("   "), None, None)),
            OrderEmail::Missing
        );
        assert_eq!(
            order_email(&order(Some("not-an-email"), None, None)),
            OrderEmail::NotAnEmail("not-an-email".into())
        );
    }

    #[test]
    fn the_name_comes_from_billing_first_and_last_name() {
        let o = order(
            Some("a@b.co"),
            Some(person("Whole Name", " Ann ", "Lee")),
            Some(person("", "Ship", "Person")),
        );
        assert_eq!(order_name(&o), Some(("Ann".into(), "Lee".into())));
        // Only one of the two is enough; the other stays empty.
        let o = order(Some("a@b.co"), Some(person("Ann Lee", "Ann", "")), None);
        assert_eq!(order_name(&o), Some(("Ann".into(), String::new())));
    }

    #[test]
    fn else_the_billing_name_is_split_into_first_word_and_rest() {
        let o = order(
            Some("a@b.co"),
            Some(person("  Mary  Ann van Dyke ", "", "")),
            None,
        );
        assert_eq!(order_name(&o), Some(("Mary".into(), "Ann van Dyke".into())));
        let o = order(Some("a@b.co"), Some(person("Cher", "", "")), None);
        assert_eq!(order_name(&o), Some(("Cher".into(), String::new())));
    }

    #[test]
    fn else_the_shipping_person_is_used() {
        let o = order(
            Some("a@b.co"),
            Some(person(" ", "", "")),
            Some(person("", "Sam", "Ship")),
        );
        assert_eq!(order_name(&o), Some(("Sam".into(), "Ship".into())));
        let o = order(Some("a@b.co"), None, Some(person("Sam Ship", "", "")));
        assert_eq!(order_name(&o), Some(("Sam".into(), "Ship".into())));
    }

    #[test]
    fn a_new_customer_gets_the_normalised_email_and_the_order_name() {
        let o = order(
            Some(" Ann@Example.com"),
            Some(person("", "Ann", "Lee")),
            None,
        );
        let c = new_customer(&o, &email(" Ann@Example.com"));
        assert_eq!(
            c,
            NewCustomer {
                first_name: "Ann".into(),
                last_name: "Lee".into(),
                email: "ann@example.com".into(),
            }
        );
    }

    #[test]
    fn c4_with_no_name_the_email_as_given_is_the_first_name_and_the_last_name_is_empty() {
        let o = order(
            Some("  Ann@Example.com "),
            Some(person("", "", "")),
            Some(Person::default()),
        );
        assert_eq!(order_name(&o), None);
        let c = new_customer(&o, &email("  Ann@Example.com "));
        assert_eq!(c.first_name, "Ann@Example.com");
        assert_eq!(c.last_name, "");
        assert_eq!(c.email, "ann@example.com");
        // No persons at all: the same.
        let o = order(Some("ann@example.com"), None, None);
        assert_eq!(
            new_customer(&o, &email("ann@example.com")).first_name,
            "ann@example.com"
        );
    }

    #[test]
    fn search_hits_are_re_checked_by_exact_normalised_email() {
        let hits = vec![
            ls("c1", Some("xjane@example.com")),
            ls("c2", Some("jane@example.com.au")),
            ls("c3", None),
            ls("c4", Some(" JANE@example.com ")),
        ];
        let (c, count) = choose_customer(&hits, "jane@example.com").unwrap();
        assert_eq!((c.id.as_str(), count), ("c4", 1));
        assert_eq!(choose_customer(&hits[..3], "jane@example.com"), None);
        assert_eq!(choose_customer(&[], "jane@example.com"), None);
    }

    #[test]
    fn duplicates_resolve_to_the_smallest_id_and_are_counted() {
        let hits = vec![
            ls("b-2", Some("jane@example.com")),
            ls("a-9", Some("Jane@Example.com")),
            ls("c-1", Some("jane@example.com")),
        ];
        let (c, count) = choose_customer(&hits, "jane@example.com").unwrap();
        assert_eq!((c.id.as_str(), count), ("a-9", 3));
        let mut reversed = hits.clone();
        reversed.reverse();
        assert_eq!(
            choose_customer(&reversed, "jane@example.com").unwrap().0.id,
            "a-9"
        );
    }

    #[test]
    fn the_link_is_claimed_if_absent_used_if_linked_and_waited_on_if_claimed() {
        let now = Utc::now();
        let lease = Duration::seconds(30);
        let LinkDecision::Claim {
            link,
            expected_version,
        } = decide_link(None, StoreId::literal(7), "a@b.co", now, lease)
        else {
            panic!("expected a claim");
        };
        assert_eq!(expected_version, None);
        assert_eq!(link.version, 1);
        assert_eq!(
            link.state,
            LinkState::Claimed {
                lease_until: now + lease
            }
        );
        assert_eq!(link.customer_id(), None);

        // Another worker, 10 s later, sees a live claim.
        let later = now + Duration::seconds(10);
        assert_eq!(
            decide_link(Some(&link), StoreId::literal(7), "a@b.co", later, lease),
            LinkDecision::Wait {
                retry_in: std::time::Duration::from_secs(20)
            }
        );

        let linked = link.linked("cust-1", later);
        assert_eq!(linked.version, 2);
        assert_eq!(linked.customer_id(), Some("cust-1"));
        assert_eq!(
            decide_link(Some(&linked), StoreId::literal(7), "a@b.co", later, lease),
            LinkDecision::Use {
                customer_id: "cust-1".into()
            }
        );
    }

    #[test]
    fn an_expired_or_released_claim_is_taken_over_conditionally() {
        let now = Utc::now();
        let lease = Duration::seconds(30);
        let link = CustomerLink::claim(StoreId::literal(7), "a@b.co", now, lease);
        let after = now + Duration::seconds(31);
        match decide_link(Some(&link), StoreId::literal(7), "a@b.co", after, lease) {
            LinkDecision::Claim {
                link: taken,
                expected_version,
            } => {
                assert_eq!(expected_version, Some(1));
                assert_eq!(taken.version, 2);
                assert_eq!(
                    taken.state,
                    LinkState::Claimed {
                        lease_until: after + lease
                    }
                );
            }
            other => panic!("expected a takeover, got {other:?}"),
        }
        // A claim released after a failure can be taken over at once.
        let released = link.released(now);
        assert_eq!(released.version, 2);
        assert!(matches!(
            decide_link(Some(&released), StoreId::literal(7), "a@b.co", now, lease),
            LinkDecision::Claim {
                expected_version: Some(2),
                ..
            }
        ));
    }

    #[test]
    fn links_round_trip_through_json() {
        let link = CustomerLink::claim(
            StoreId::literal(7),
            "a@b.co",
            Utc::now(),
            Duration::seconds(5),
        );
        let json = serde_json::to_value(&link).unwrap();
        assert_eq!(json["state"]["status"], "CLAIMED");
        assert_eq!(serde_json::from_value::<CustomerLink>(json).unwrap(), link);
        let linked = link.linked("c-1", Utc::now());
        let json = serde_json::to_value(&linked).unwrap();
        assert_eq!(json["state"]["customer_id"], "c-1");
        assert_eq!(
            serde_json::from_value::<CustomerLink>(json).unwrap(),
            linked
        );
    }
}
