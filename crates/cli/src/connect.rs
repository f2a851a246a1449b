//! `els connect`: checks both tokens, discovers what the Lightspeed retailer has, resolves
//! what the merchant named (a name, an id or a SKU) and builds the connection. Nothing is
//! saved here: the caller saves the returned connection only when every check passed.

use els_core::lightspeed::LsProduct;
use els_core::setup::{self, Candidate, SetupError};
use els_core::{
    ApiError, Connection, LightspeedAccount, LightspeedApi, Secret, Settings, Sku, StoreId,
};
use els_ecwid::EcwidClient;
use els_lightspeed::LightspeedClient;
use els_lightspeed::setup::NewProduct;

/// What the merchant gave. Choices left `None` take the retailer's obvious candidate, or
/// are refused with the list to choose from.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub store_id: StoreId,
    pub ecwid_token: Secret,
    pub lightspeed: LightspeedAccount,
    pub register: Option<String>,
    pub user: Option<String>,
    pub payment_type: Option<String>,
    pub shipping_product: Option<String>,
    pub fees_product: Option<String>,
    /// The product money-only refunds are posted on (R3); it must not track stock.
    pub refund_product: Option<String>,
    pub gift_card_payment_type: Option<String>,
    /// Create the shipping, fees and refund products when none is named or found.
    pub create_missing: bool,
    pub settings: Settings,
}

/// Someone to ask when a choice is missing or names several things: a merchant at a
/// terminal. Without one, such a choice is refused with the list to choose from.
pub trait Ask: Sync {
    /// The index of the option chosen, or `None` to give up.
    fn pick(&self, prompt: &str, options: &[String]) -> Option<usize>;
}

/// A checked connection, ready to save, and what to tell the merchant about it.
#[derive(Debug, Clone)]
pub struct ConnectPlan {
    pub connection: Connection,
    /// `(what, chosen)` lines for the summary.
    pub summary: Vec<(&'static str, String)>,
    pub warnings: Vec<String>,
    /// Products that `create_missing` will create on [`apply`].
    pub to_create: Vec<MissingProduct>,
}

/// The non-inventory products a connection can need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingProduct {
    Shipping,
    Fees,
    Refund,
}

impl MissingProduct {
    /// The product `--create-missing` creates (and finds again by its SKU on a second run).
    pub fn new_product(self) -> NewProduct {
        let (name, sku) = match self {
            MissingProduct::Shipping => ("Shipping", "ELS-SHIPPING"),
            MissingProduct::Fees => ("Fees and surcharges", "ELS-FEES"),
            MissingProduct::Refund => ("Refund", "ELS-REFUND"),
        };
        NewProduct {
            name: name.into(),
            sku: sku.into(),
            has_inventory: false,
            is_active: true,
        }
    }
}

/// Names a product answers to when the merchant named none: the default is a product that
/// is called exactly so (case ignored), or the one `--create-missing` made earlier.
const SHIPPING_NAMES: &[&str] = &["Shipping", "ELS-SHIPPING"];
const FEES_NAMES: &[&str] = &["Fees and surcharges", "Handling fee", "Fees", "ELS-FEES"];
const REFUND_NAMES: &[&str] = &["Refund", "Refunds", "ELS-REFUND"];
const GIFT_CARD_NAMES: &[&str] = &["Gift Card", "Gift card", "Gift Cards"];

fn token_refused(system: &'static str, e: &ApiError) -> Option<SetupError> {
    let advice = match system {
        "Ecwid" => {
            "Check ECWID_TOKEN: use the secret token of your Ecwid app for this store (with the read_store_profile, read_orders, read_catalog and update_catalog scopes)"
        }
        _ => {
            "Check LIGHTSPEED_TOKEN and --domain-prefix: a personal token from Lightspeed's Setup > Personal tokens, or an OAuth access token of this retailer"
        }
    };
    match e {
        ApiError::Unauthorized { status, detail } => Some(SetupError::TokenRefused {
            system,
            detail: format!("HTTP {status}: {detail}"),
            advice,
        }),
        _ => None,
    }
}

/// Wraps an API failure: a refused token becomes a [`SetupError`], anything else says
/// which request failed.
fn api<'a>(system: &'static str, what: &'a str) -> impl Fn(ApiError) -> anyhow::Error + 'a {
    move |e| match token_refused(system, &e) {
        Some(refused) => refused.into(),
        None => anyhow::anyhow!("{system}: {what} failed: {e}"),
    }
}

/// Checks the tokens and resolves every choice. Sends only reads.
pub async fn plan(
    ecwid: &EcwidClient,
    lightspeed: &LightspeedClient,
    req: ConnectRequest,
    ask: Option<&dyn Ask>,
) -> anyhow::Result<ConnectPlan> {
    // A connection with the ids still empty, to call the APIs with.
    let mut conn = Connection {
        store_id: req.store_id,
        ecwid_token: req.ecwid_token.clone(),
        lightspeed: req.lightspeed.clone(),
        register_id: String::new(),
        outlet_id: String::new(),
        user_id: String::new(),
        payment_type_id: String::new(),
        shipping_product_id: None,
        discount_product_id: None,
        fees_product_id: None,
        gift_card_payment_type_id: None,
        refund_product_id: None,
        go_live_at: None,
        restored_at: None,
        lightspeed_webhooks: None,
        settings: req.settings.clone(),
        version: 0,
    };
    let profile = ecwid.profile(&conn).await.map_err(|e| match e {
        ApiError::NotFound { .. } => SetupError::Invalid(format!(
            "Ecwid has no store {} for this token: check --store (Ecwid admin, My Profile) and that ECWID_TOKEN is that store's",
            req.store_id
        ))
        .into(),
        other => api("Ecwid", "reading the store profile")(other),
    })?;
    setup::check_store(req.store_id, profile.store_id)?;
    let retailer = lightspeed
        .retailer(&conn)
        .await
        .map_err(api("Lightspeed", "reading the retailer"))?;
    setup::check_currency(profile.currency.as_deref(), retailer.currency.as_deref())?;

    let mut summary = vec![
        (
            "Ecwid store",
            format!(
                "{} ({})",
                profile.name.as_deref().unwrap_or("unnamed"),
                req.store_id
            ),
        ),
        (
            "Lightspeed retailer",
            format!(
                "{} ({}.retail.lightspeed.app, {})",
                retailer.name,
                req.lightspeed.domain_prefix,
                match retailer.tax_exclusive {
                    Some(false) => "prices include tax",
                    Some(true) => "prices exclude tax",
                    None => "tax mode not said",
                }
            ),
        ),
        (
            "Currency",
            profile
                .currency
                .or(retailer.currency)
                .unwrap_or_else(|| "not said by either side".into()),
        ),
    ];

    // The register, and the outlet it sells from (S3).
    let registers = lightspeed
        .registers(&conn)
        .await
        .map_err(api("Lightspeed", "listing registers"))?;
    let outlets = lightspeed
        .outlets(&conn)
        .await
        .map_err(api("Lightspeed", "listing outlets"))?;
    let outlet_name = |id: &Option<String>| {
        id.as_ref().map(|id| {
            outlets
                .iter()
                .find(|o| &o.id == id)
                .map_or_else(|| format!("outlet {id}"), |o| format!("outlet {}", o.name))
        })
    };
    let register_candidates: Vec<Candidate> = registers
        .iter()
        .map(|r| Candidate::new(&r.id, &r.name).note(outlet_name(&r.outlet_id)))
        .collect();
    let register = pick(
        "register",
        "register",
        &register_candidates,
        req.register.as_deref(),
        None,
        ask,
    )?;
    let outlet_id = registers
        .iter()
        .find(|r| r.id == register.id)
        .and_then(|r| r.outlet_id.clone())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| {
            SetupError::Invalid(format!(
                "register {register} has no outlet: choose a register that sells from an outlet"
            ))
        })?;
    conn.register_id = register.id.clone();
    conn.outlet_id = outlet_id;
    summary.push(("Register", register.to_string()));

    let users = lightspeed
        .users(&conn)
        .await
        .map_err(api("Lightspeed", "listing users"))?;
    let user_candidates: Vec<Candidate> = users
        .iter()
        .map(|u| Candidate::new(&u.id, u.name()).alias(u.username.clone()))
        .collect();
    let primary = users
        .iter()
        .find(|u| u.is_primary_user == Some(true))
        .map(|u| u.id.as_str());
    let user = pick(
        "user",
        "user",
        &user_candidates,
        req.user.as_deref(),
        primary,
        ask,
    )?;
    conn.user_id = user.id.clone();
    summary.push(("User", user.to_string()));

    let payment_types: Vec<Candidate> = lightspeed
        .payment_types(&conn)
        .await
        .map_err(api("Lightspeed", "listing payment types"))?
        .iter()
        .map(|p| Candidate::new(&p.id, &p.name))
        .collect();
    let payment = pick(
        "payment type",
        "payment-type",
        &payment_types,
        req.payment_type.as_deref(),
        None,
        ask,
    )?;
    conn.payment_type_id = payment.id.clone();
    summary.push(("Payment type", payment.to_string()));
    let gift = match req.gift_card_payment_type.as_deref() {
        Some(input) => Some(setup::choose("payment type", &payment_types, input)?),
        None => find_by_names(&payment_types, GIFT_CARD_NAMES),
    };
    conn.gift_card_payment_type_id = gift.map(|g| g.id.clone());
    summary.push((
        "Gift cards paid with",
        gift.map_or_else(
            || "not mapped: orders paid partly with an Ecwid gift card will park".into(),
            ToString::to_string,
        ),
    ));

    let mut warnings = Vec::new();
    let mut to_create = Vec::new();
    let mut catalog: Option<Vec<LsProduct>> = None;
    for (kind, input, names) in [
        (
            MissingProduct::Shipping,
            req.shipping_product.as_deref(),
            SHIPPING_NAMES,
        ),
        (
            MissingProduct::Fees,
            req.fees_product.as_deref(),
            FEES_NAMES,
        ),
        (
            MissingProduct::Refund,
            req.refund_product.as_deref(),
            REFUND_NAMES,
        ),
    ] {
        let label = match kind {
            MissingProduct::Shipping => "Shipping product",
            MissingProduct::Fees => "Fees product",
            MissingProduct::Refund => "Refund product",
        };
        let chosen = match input {
            Some(input) => Some(resolve_product(lightspeed, &conn, &mut catalog, input).await?),
            None => {
                let all = all_products(lightspeed, &conn, &mut catalog).await?;
                let candidates = product_candidates(all);
                find_by_names(&candidates, names)
                    .and_then(|c| all.iter().find(|p| p.id == c.id))
                    .cloned()
            }
        };
        let id = match chosen {
            Some(p)
                if kind == MissingProduct::Refund
                    && p.has_inventory != Some(false)
                    && input.is_none() =>
            {
                // Found by its name, not chosen: left unmapped rather than refuse the setup.
                warnings.push(format!(
                    "the product \"{}\" tracks inventory, so it is not used for money-only refunds; choose one with --refund-product, or --create-missing",
                    p.name.as_deref().unwrap_or(&p.id)
                ));
                summary.push((
                    label,
                    "not mapped: money-only refunds will park (use --refund-product or --create-missing)".into(),
                ));
                None
            }
            Some(p) if kind == MissingProduct::Refund && p.has_inventory != Some(false) => {
                // A money-only refund must not put anything back on the shelf.
                anyhow::bail!(
                    "the refund product \"{}\" tracks inventory (or Lightspeed does not say it does not); choose a product that does not track stock, or run with --create-missing to create \"Refund\" (SKU ELS-REFUND)",
                    p.name.as_deref().unwrap_or(&p.id)
                );
            }
            Some(p) => {
                if p.has_inventory == Some(true) {
                    warnings.push(format!(
                        "the {} \"{}\" tracks inventory: every web order with {} will lower its stock",
                        label.to_lowercase(),
                        p.name.as_deref().unwrap_or(&p.id),
                        match kind {
                            MissingProduct::Shipping => "shipping",
                            _ => "a fee",
                        }
                    ));
                }
                summary.push((label, product_candidate(&p).to_string()));
                Some(p.id)
            }
            None if req.create_missing => {
                to_create.push(kind);
                let new = kind.new_product();
                summary.push((
                    label,
                    format!("\"{}\" (SKU {}), to be created", new.name, new.sku),
                ));
                None
            }
            None => {
                summary.push((
                    label,
                    match kind {
                        MissingProduct::Shipping => "not mapped: orders with shipping will park (use --shipping-product or --create-missing)".into(),
                        MissingProduct::Fees => "not mapped: fees and surcharges go on the shipping product".into(),
                        MissingProduct::Refund => "not mapped: money-only refunds will park (use --refund-product or --create-missing)".into(),
                    },
                ));
                None
            }
        };
        match kind {
            MissingProduct::Shipping => conn.shipping_product_id = id,
            MissingProduct::Fees => conn.fees_product_id = id,
            MissingProduct::Refund => conn.refund_product_id = id,
        }
    }
    Ok(ConnectPlan {
        connection: conn,
        summary,
        warnings,
        to_create,
    })
}

/// Creates the products the plan lacks and returns the connection to save.
pub async fn apply(lightspeed: &LightspeedClient, plan: ConnectPlan) -> anyhow::Result<Connection> {
    let mut conn = plan.connection;
    for kind in plan.to_create {
        let new = kind.new_product();
        let id = lightspeed
            .create_product(&conn, &new)
            .await
            .map_err(api("Lightspeed", "creating a product"))?;
        match kind {
            MissingProduct::Shipping => conn.shipping_product_id = Some(id),
            MissingProduct::Fees => conn.fees_product_id = Some(id),
            MissingProduct::Refund => conn.refund_product_id = Some(id),
        }
    }
    Ok(conn)
}

/// The candidate `input` names, or the default; when that is refused for want of a single
/// answer (none given, an unknown or shared name) and someone can be asked, they choose.
fn pick<'a>(
    what: &'static str,
    flag: &'static str,
    candidates: &'a [Candidate],
    input: Option<&str>,
    preferred: Option<&str>,
    ask: Option<&dyn Ask>,
) -> Result<&'a Candidate, SetupError> {
    let chosen = match input {
        Some(input) => setup::choose(what, candidates, input),
        None => setup::default_choice(what, flag, candidates, preferred),
    };
    let (Err(refusal), Some(ask)) = (&chosen, ask) else {
        return chosen;
    };
    let options: Vec<&Candidate> = match refusal {
        SetupError::Ambiguous { matches, .. } => candidates
            .iter()
            .filter(|c| matches.iter().any(|m| m.id == c.id))
            .collect(),
        SetupError::Unknown { .. } | SetupError::Missing { .. } => candidates.iter().collect(),
        _ => return chosen,
    };
    let labels: Vec<String> = options.iter().map(ToString::to_string).collect();
    match ask.pick(&format!("Choose the {what}"), &labels) {
        Some(i) if i < options.len() => Ok(options[i]),
        _ => chosen,
    }
}

/// The first of `names` that exactly one candidate answers to.
fn find_by_names<'a>(candidates: &'a [Candidate], names: &[&str]) -> Option<&'a Candidate> {
    names
        .iter()
        .find_map(|n| setup::choose("", candidates, n).ok())
}

/// A product as a choice: its name, answering to its SKU too.
fn product_candidate(p: &LsProduct) -> Candidate {
    Candidate::new(&p.id, p.name.clone().unwrap_or_default())
        .alias(p.sku.clone())
        .note(p.sku.as_ref().map(|s| format!("SKU {s}")))
}

fn product_candidates(products: &[LsProduct]) -> Vec<Candidate> {
    products.iter().map(product_candidate).collect()
}

async fn all_products<'a>(
    lightspeed: &LightspeedClient,
    conn: &Connection,
    catalog: &'a mut Option<Vec<LsProduct>>,
) -> anyhow::Result<&'a [LsProduct]> {
    if catalog.is_none() {
        *catalog = Some(
            lightspeed
                .products(conn)
                .await
                .map_err(api("Lightspeed", "listing products"))?,
        );
    }
    Ok(catalog.as_deref().unwrap_or_default())
}

/// A product named by its id, its SKU or its name, in that order.
async fn resolve_product(
    lightspeed: &LightspeedClient,
    conn: &Connection,
    catalog: &mut Option<Vec<LsProduct>>,
    input: &str,
) -> anyhow::Result<LsProduct> {
    if let Ok(Some(p)) = lightspeed.get_product(conn, input.trim()).await
        && p.is_live()
    {
        return Ok(p);
    }
    if let Ok(sku) = Sku::parse(input) {
        let hits: Vec<LsProduct> = lightspeed
            .find_products_by_sku(conn, &sku)
            .await
            .map_err(api("Lightspeed", "searching products by SKU"))?
            .into_iter()
            .filter(|p| p.is_live() && sku.matches(p.sku.as_deref()))
            .collect();
        if let [one] = hits.as_slice() {
            return Ok(one.clone());
        }
    }
    let all = all_products(lightspeed, conn, catalog).await?;
    let candidates = product_candidates(all);
    let c = setup::choose("product", &candidates, input)?;
    Ok(all
        .iter()
        .find(|p| p.id == c.id)
        .cloned()
        .expect("a candidate comes from the list"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers with a fixed index and remembers what it was shown.
    struct Scripted(Option<usize>, Mutex<Vec<String>>);

    impl Ask for Scripted {
        fn pick(&self, prompt: &str, options: &[String]) -> Option<usize> {
            let mut seen = self.1.lock().unwrap();
            seen.push(prompt.to_string());
            seen.extend(options.iter().cloned());
            self.0
        }
    }

    fn registers() -> Vec<Candidate> {
        vec![
            Candidate::new("r-1", "Main"),
            Candidate::new("r-2", "Web"),
            Candidate::new("r-3", "main"),
        ]
    }

    #[test]
    fn at_a_terminal_a_missing_or_shared_choice_is_asked_among_the_right_candidates() {
        let r = registers();
        let ask = Scripted(Some(1), Mutex::default());
        let chosen = pick("register", "register", &r, None, None, Some(&ask)).unwrap();
        assert_eq!(chosen.id, "r-2");
        assert_eq!(ask.1.lock().unwrap()[0], "Choose the register");
        assert_eq!(ask.1.lock().unwrap().len(), 4, "all three are offered");

        let ask = Scripted(Some(1), Mutex::default());
        let chosen = pick("register", "register", &r, Some("MAIN"), None, Some(&ask)).unwrap();
        assert_eq!(chosen.id, "r-3", "only the two called main are offered");
        assert_eq!(ask.1.lock().unwrap().len(), 3);

        let ask = Scripted(Some(0), Mutex::default());
        let chosen = pick("register", "register", &r, Some("Kiosk"), None, Some(&ask)).unwrap();
        assert_eq!(chosen.id, "r-1");
    }

    #[test]
    fn unattended_or_declined_the_refusal_stands_and_a_clear_answer_asks_nothing() {
        let r = registers();
        assert!(matches!(
            pick("register", "register", &r, None, None, None),
            Err(SetupError::Missing { .. })
        ));
        let declined = Scripted(None, Mutex::default());
        assert!(matches!(
            pick(
                "register",
                "register",
                &r,
                Some("MAIN"),
                None,
                Some(&declined)
            ),
            Err(SetupError::Ambiguous { .. })
        ));
        let never = Scripted(Some(0), Mutex::default());
        assert_eq!(
            pick("register", "register", &r, Some("web"), None, Some(&never))
                .unwrap()
                .id,
            "r-2"
        );
        assert!(never.1.lock().unwrap().is_empty());
    }
}
