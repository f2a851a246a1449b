//! What `els connect` reads of a retailer to offer choices and check them: the retailer
//! itself, registers with their outlets, users, payment types and products, and the one
//! write it may do, creating a product (`POST /products`, CreateProduct). Every call goes to
//! the connection's API generation (`/api/2.0/...` or `/api/2026-07/...`): their request
//! shapes are the same and their answers carry the fields read here (MAPPING.md §7, §9).

use super::{DataList, DataOne, LightspeedClient, RawRetailer};
use els_core::lightspeed::LsProduct;
use els_core::{ApiError, Connection};
use serde::{Deserialize, Serialize};

/// `GET /api/2.0/retailer`, as far as connecting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retailer {
    pub name: String,
    /// ISO 4217; `None` when the retailer does not say.
    pub currency: Option<String>,
    /// Prices exclude tax (`tax_exclusive`); `None` when not said.
    pub tax_exclusive: Option<bool>,
}

/// A register and the outlet it sells from (rule S3: stock leaves that outlet).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Register {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub outlet_id: Option<String>,
    #[serde(default)]
    deleted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Outlet {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    deleted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub is_primary_user: Option<bool>,
    #[serde(default)]
    deleted_at: Option<String>,
}

impl User {
    /// The name a merchant knows the user by.
    pub fn name(&self) -> &str {
        self.display_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .or(self.username.as_deref())
            .unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentType {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    deleted_at: Option<String>,
}

fn live(deleted_at: &Option<String>) -> bool {
    deleted_at.as_deref().is_none_or(str::is_empty)
}

/// The body of `POST /api/2.0/products` for a product that only carries a price on a sale
/// (shipping, fees): no inventory is tracked.
#[derive(Debug, Clone, Serialize)]
pub struct NewProduct {
    pub name: String,
    pub sku: String,
    /// ASSUMPTION: the 2.0 CreateProduct body has no documented tracking switch besides
    /// `inventory` entries; a product created without any is sent `has_inventory: false` as
    /// well, which the read schema names. The sandbox follows the same reading.
    pub has_inventory: bool,
    pub is_active: bool,
}

/// CreateProduct answers `{"data": [<id>]}`; the spec types the items as objects but its
/// example shows strings, so both are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum CreatedId {
    Id(String),
    Object { id: String },
}

impl LightspeedClient {
    pub async fn retailer(&self, conn: &Connection) -> Result<Retailer, ApiError> {
        let raw: DataOne<RawRetailer> = self.get(conn, &self.path(conn, "/retailer"), &[]).await?;
        let r = raw.data;
        Ok(Retailer {
            currency: r.currency_code(),
            name: r.name.unwrap_or_default(),
            tax_exclusive: r.tax_exclusive,
        })
    }

    pub async fn registers(&self, conn: &Connection) -> Result<Vec<Register>, ApiError> {
        let all: Vec<Register> = self.list_all(conn, &self.path(conn, "/registers")).await?;
        Ok(all.into_iter().filter(|r| live(&r.deleted_at)).collect())
    }

    pub async fn outlets(&self, conn: &Connection) -> Result<Vec<Outlet>, ApiError> {
        let all: Vec<Outlet> = self.list_all(conn, &self.path(conn, "/outlets")).await?;
        Ok(all.into_iter().filter(|o| live(&o.deleted_at)).collect())
    }

    pub async fn users(&self, conn: &Connection) -> Result<Vec<User>, ApiError> {
        let all: Vec<User> = self.list_all(conn, &self.path(conn, "/users")).await?;
        Ok(all.into_iter().filter(|u| live(&u.deleted_at)).collect())
    }

    pub async fn payment_types(&self, conn: &Connection) -> Result<Vec<PaymentType>, ApiError> {
        let all: Vec<PaymentType> = self
            .list_all(conn, &self.path(conn, "/payment_types"))
            .await?;
        Ok(all.into_iter().filter(|p| live(&p.deleted_at)).collect())
    }

    /// Every live product (to find one by name: the search has no name filter).
    pub async fn products(&self, conn: &Connection) -> Result<Vec<LsProduct>, ApiError> {
        let all: Vec<LsProduct> = self.list_all(conn, &self.path(conn, "/products")).await?;
        Ok(all.into_iter().filter(LsProduct::is_live).collect())
    }

    /// Creates a product and returns its id. Not idempotent: the caller looks the SKU up
    /// first.
    pub async fn create_product(
        &self,
        conn: &Connection,
        product: &NewProduct,
    ) -> Result<String, ApiError> {
        let created: DataList<CreatedId> = self
            .post_unsafe(conn, &self.path(conn, "/products"), product)
            .await?;
        created
            .data
            .into_iter()
            .next()
            .map(|c| match c {
                CreatedId::Id(id) | CreatedId::Object { id } => id,
            })
            .ok_or_else(|| ApiError::OutcomeUnknown {
                detail: "POST /products answered no product id".into(),
            })
    }
}
