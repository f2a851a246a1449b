//! Public value types: what tests and the demo send to the sandbox and read back.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A product to create, in Ecwid and/or Lightspeed.
///
/// JSON (snake_case; money and stock as numbers or numeric strings):
/// `{"sku":"MUG-002","name":"Mug","price_excl_tax":12,"tax_percent":10,"ecwid_stock":30,
///   "ls_stock":30,"ls_stock_other":0,"has_inventory":true,
///   "variants":[{"sku":"MUG-002-RED","option_name":"Color","option_value":"Red",
///                "price_excl_tax":null,"ecwid_stock":5,"ls_stock":5}]}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductSpec {
    pub sku: String,
    pub name: String,
    /// Unit price excluding tax (Lightspeed `price_excluding_tax`).
    #[serde(with = "crate::util::dec_serde")]
    pub price_excl_tax: Decimal,
    /// The tax rate in percent (10 = 10%), or none for an untaxed product. A Lightspeed tax with
    /// that rate is created if the retailer has none.
    #[serde(with = "crate::util::dec_serde_opt")]
    pub tax_percent: Option<Decimal>,
    /// Ecwid stock; `None` = unlimited (Ecwid does not track it).
    #[serde(with = "crate::util::dec_serde_opt")]
    pub ecwid_stock: Option<Decimal>,
    /// Lightspeed stock at the main outlet (the web register's).
    #[serde(with = "crate::util::dec_serde")]
    pub ls_stock: Decimal,
    /// Lightspeed stock at every other outlet.
    #[serde(with = "crate::util::dec_serde")]
    pub ls_stock_other: Decimal,
    /// Variations: Ecwid combinations and Lightspeed variant products.
    pub variants: Vec<VariantSpec>,
    /// Whether Lightspeed tracks inventory for it.
    pub has_inventory: bool,
}

impl Default for ProductSpec {
    fn default() -> Self {
        ProductSpec {
            sku: String::new(),
            name: String::new(),
            price_excl_tax: Decimal::ZERO,
            tax_percent: None,
            ecwid_stock: None,
            ls_stock: Decimal::ZERO,
            ls_stock_other: Decimal::ZERO,
            variants: Vec::new(),
            has_inventory: true,
        }
    }
}

/// One variation of a [`ProductSpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VariantSpec {
    pub sku: String,
    /// e.g. "Size".
    pub option_name: String,
    /// e.g. "M".
    pub option_value: String,
    /// Unit price excluding tax; `None` = the product's.
    #[serde(with = "crate::util::dec_serde_opt")]
    pub price_excl_tax: Option<Decimal>,
    #[serde(with = "crate::util::dec_serde_opt")]
    pub ecwid_stock: Option<Decimal>,
    #[serde(with = "crate::util::dec_serde")]
    pub ls_stock: Decimal,
    #[serde(with = "crate::util::dec_serde")]
    pub ls_stock_other: Decimal,
}

impl Default for VariantSpec {
    fn default() -> Self {
        VariantSpec {
            sku: String::new(),
            option_name: "Size".into(),
            option_value: String::new(),
            price_excl_tax: None,
            ecwid_stock: None,
            ls_stock: Decimal::ZERO,
            ls_stock_other: Decimal::ZERO,
        }
    }
}

/// The ids of a created product on each side (`None` where the side was not created).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductIds {
    pub sku: String,
    pub ecwid_product_id: Option<u64>,
    /// For a product with variants: the Lightspeed variant parent (the first variant, as in
    /// X-Series, where the parent is itself a sellable variant).
    pub ls_product_id: Option<String>,
    pub variants: Vec<VariantIds>,
}

impl ProductIds {
    /// The Lightspeed product id; panics when there is none.
    pub fn ls_id(&self) -> &str {
        self.ls_product_id
            .as_deref()
            .unwrap_or_else(|| panic!("product {} has no Lightspeed side", self.sku))
    }

    /// The Ecwid product id; panics when there is none.
    pub fn ecwid_id(&self) -> u64 {
        self.ecwid_product_id
            .unwrap_or_else(|| panic!("product {} has no Ecwid side", self.sku))
    }

    /// The variation with this SKU; panics when there is none.
    pub fn variant(&self, sku: &str) -> &VariantIds {
        self.variants
            .iter()
            .find(|v| v.sku == sku)
            .unwrap_or_else(|| panic!("product {} has no variant {sku}", self.sku))
    }
}

/// The ids of one created variation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantIds {
    pub sku: String,
    pub option_value: String,
    pub ecwid_combination_id: Option<u64>,
    pub ls_product_id: Option<String>,
}

impl VariantIds {
    pub fn ls_id(&self) -> &str {
        self.ls_product_id
            .as_deref()
            .unwrap_or_else(|| panic!("variant {} has no Lightspeed side", self.sku))
    }

    pub fn combination_id(&self) -> u64 {
        self.ecwid_combination_id
            .unwrap_or_else(|| panic!("variant {} has no Ecwid side", self.sku))
    }
}

/// An Ecwid checkout to simulate.
///
/// JSON: `{"items":[{"sku":"123123","quantity":1}],"prices_include_tax":true,
///   "payment_status":"PAID","fulfillment_status":"AWAITING_PROCESSING",
///   "email":"a@b.c","first_name":"Ann","last_name":"Lee",
///   "shipping":{"method_name":"Flat","rate":5},"order_id":null,"customer_id":null,
///   "shipping_taxes":[{"percent":10}],
///   "handling_fee":{"name":"Handling","value":2,"taxes":[{"percent":10}]},
///   "pickup":false,"coupon_amount":0}`
///
/// Every field has a default; the last four are optional additions (taxed shipping, a
/// handling fee, pickup, a coupon) computed as Ecwid documents them (see `place_order` in
/// `ecwid_orders.rs` and the README, "The sandbox").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderSpec {
    pub items: Vec<OrderItemSpec>,
    /// The order's `pricesIncludeTax`: item `price` includes tax (true) or tax is added (false).
    pub prices_include_tax: bool,
    /// `PAID` or `AWAITING_PAYMENT` (any Ecwid value is stored as given).
    pub payment_status: String,
    pub fulfillment_status: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The shipping charge (`shippingOption.shippingRate`); untaxed unless `shipping_taxes`
    /// names taxes. With `prices_include_tax` the rate includes those taxes.
    pub shipping: Option<ShippingSpec>,
    /// Force the order's string `id` (default: a random 5-character id like `K8XTQ`).
    pub order_id: Option<String>,
    /// Ecwid `customerId`, if the buyer has an account.
    pub customer_id: Option<u64>,
    /// The taxes Ecwid charges on shipping (default none: shipping untaxed). Each must be
    /// carried by at least one item (matched by name; an empty name means the store's tax with
    /// that percent, e.g. "10% Tax"): Ecwid reports shipping tax inside the items' taxes.
    /// GST + PST: `[{"name":"GST","percent":5},{"name":"PST","percent":7}]`.
    pub shipping_taxes: Vec<TaxSpec>,
    /// A handling fee (`handlingFee`), optionally taxed.
    pub handling_fee: Option<HandlingFeeSpec>,
    /// In-store pickup: `shippingOption.isPickup = true`, `fulfillmentType = "PICKUP"`. The
    /// rate is `shipping.rate` when given (a pickup fee), else 0.
    pub pickup: bool,
    /// A fixed coupon (`couponDiscount`, `discountCoupon`), distributed onto the items'
    /// `couponAmount` in proportion to their line subtotals; taxes are charged on the
    /// discounted subtotals. At most the order's subtotal.
    #[serde(with = "crate::util::dec_serde")]
    pub coupon_amount: Decimal,
}

impl Default for OrderSpec {
    fn default() -> Self {
        OrderSpec {
            items: Vec::new(),
            prices_include_tax: false,
            payment_status: "PAID".into(),
            fulfillment_status: "AWAITING_PROCESSING".into(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            shipping: None,
            order_id: None,
            customer_id: None,
            shipping_taxes: Vec::new(),
            handling_fee: None,
            pickup: false,
            coupon_amount: Decimal::ZERO,
        }
    }
}

/// One order line: a product (or combination) SKU and a quantity.
///
/// JSON: `{"sku":"MUG-001","quantity":2}`, optionally with
/// `"taxes":[{"name":"GST","percent":5},{"name":"PST","percent":7}]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItemSpec {
    pub sku: String,
    pub quantity: u32,
    /// The taxes Ecwid applies to this line at checkout, overriding the product's tax (Ecwid
    /// picks taxes by destination, so one product can get GST + PST). `None`: the product's
    /// tax. `Some(vec![])`: untaxed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxes: Option<Vec<TaxSpec>>,
}

impl OrderItemSpec {
    pub fn new(sku: impl Into<String>, quantity: u32) -> Self {
        OrderItemSpec {
            sku: sku.into(),
            quantity,
            taxes: None,
        }
    }

    /// The same line, taxed by `taxes` instead of the product's tax.
    pub fn with_taxes(mut self, taxes: Vec<TaxSpec>) -> Self {
        self.taxes = Some(taxes);
        self
    }
}

/// An Ecwid tax applied at checkout: `{"name":"GST","percent":5}`.
///
/// An empty `name` means the store's tax with that percent (the seeded "10% Tax", "20% Tax",
/// or the tax created with a product of that rate), else `"{percent}% Tax"`. A 0 percent tax
/// is no tax.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSpec {
    #[serde(default)]
    pub name: String,
    #[serde(with = "crate::util::dec_serde")]
    pub percent: Decimal,
}

impl TaxSpec {
    /// The store's tax with this percent.
    pub fn percent(percent: Decimal) -> Self {
        TaxSpec {
            name: String::new(),
            percent,
        }
    }

    /// A named tax.
    pub fn named(name: impl Into<String>, percent: Decimal) -> Self {
        TaxSpec {
            name: name.into(),
            percent,
        }
    }
}

/// A handling fee on an order: `{"name":"Handling","value":2,"taxes":[{"percent":10}]}`.
///
/// `value` is the fee charged; with `prices_include_tax` it includes its taxes. Where the
/// fee's tax is reported depends on `SandboxConfig::handling_fee_tax_in_items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandlingFeeSpec {
    pub name: String,
    #[serde(with = "crate::util::dec_serde")]
    pub value: Decimal,
    /// The taxes on the fee (default none). With `handling_fee_tax_in_items` (the default),
    /// each must be carried by at least one item, like `OrderSpec::shipping_taxes`.
    pub taxes: Vec<TaxSpec>,
}

impl Default for HandlingFeeSpec {
    fn default() -> Self {
        HandlingFeeSpec {
            name: "Handling fee".into(),
            value: Decimal::ZERO,
            taxes: Vec::new(),
        }
    }
}

/// A shipping charge on an order (taxed by `OrderSpec::shipping_taxes`, if any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShippingSpec {
    pub method_name: String,
    #[serde(with = "crate::util::dec_serde")]
    pub rate: Decimal,
}

/// A return started on a Lightspeed sale, as `Sandbox::returns_for` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnSale {
    pub id: String,
    /// Legacy status: `SAVED` (parked), `CLOSED` (completed), `VOIDED`...
    pub status: String,
    pub lines: Vec<ReturnLine>,
    /// Σ quantity × (price + tax): negative for a refund.
    pub total: Decimal,
    pub payments: Vec<ReturnPayment>,
}

/// One line of a [`ReturnSale`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnLine {
    pub product_id: String,
    /// Negative for what comes back.
    pub quantity: Decimal,
    /// Unit price excluding tax.
    pub price: Decimal,
    /// Tax per unit.
    pub tax: Decimal,
}

/// One payment of a [`ReturnSale`] (negative for a refund).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnPayment {
    pub retailer_payment_type_id: String,
    pub amount: Decimal,
}

/// Request counters, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every request to the Ecwid API.
    pub ecwid_requests: u64,
    /// `GET /orders/{id}` and `GET /orders` (search).
    pub ecwid_order_gets: u64,
    /// Any POST/PUT/PATCH/DELETE on Ecwid `/orders` (batch sub-requests included). Rule O4: the
    /// connector never writes Ecwid orders, so this must stay 0.
    pub ecwid_order_writes: u64,
    /// Any POST/PUT/PATCH/DELETE on Ecwid `/products` (batch sub-requests included).
    pub ecwid_product_writes: u64,
    /// Ecwid `POST /batch` requests.
    pub ecwid_batches: u64,
    /// 429s sent by Ecwid.
    pub ecwid_rate_limited: u64,
    /// Every request to the Lightspeed API.
    pub ls_requests: u64,
    /// Sale creation attempts, `POST /api/register_sales` and `POST /api/2026-07/sales`
    /// (including failed or faulted ones).
    pub ls_sale_posts: u64,
    /// Lightspeed GET requests.
    pub ls_gets: u64,
    /// Lightspeed requests that only read: the GETs and the 2026-07 inventory feed
    /// (`POST /api/2026-07/inventory`).
    #[serde(default)]
    pub ls_reads: u64,
    /// `GET /api/2.0/search` and `GET /api/2026-07/search` requests.
    pub ls_searches: u64,
    /// `POST /api/2.0/customers` and `POST /api/2026-07/customers` attempts.
    pub ls_customer_creates: u64,
    /// `POST /api/2.0/products` and `POST /api/2026-07/products` (CreateProduct) attempts,
    /// refused ones included.
    #[serde(default)]
    pub ls_product_creates: u64,
    /// Return starts, `PUT /api/2.0/sales/{id}/actions/return` and
    /// `POST /api/2026-07/sales/{id}/actions/return` (refused and faulted ones included).
    #[serde(default)]
    pub ls_return_starts: u64,
    /// Completion attempts of a referenced return that reached it: a `POST
    /// /api/register_sales` or `PUT /api/2026-07/sales/{id}` on a return's id, refused ones
    /// included (the legacy one is a sale POST and counts in `ls_sale_posts` too).
    #[serde(default)]
    pub ls_return_completions: u64,
    /// 429s sent by Lightspeed (real or injected).
    pub ls_rate_limited: u64,
    /// Injected faults that fired.
    pub faults_fired: u64,
    /// Requests to the Lightspeed OAuth token endpoint (any outcome).
    pub ls_token_requests: u64,
    /// New Lightspeed token pairs issued by the token endpoint.
    pub ls_token_refreshes: u64,
    /// Lightspeed API requests made with an expired or invalidated access token (OAuth mode).
    pub ls_stale_token_requests: u64,
    /// Lightspeed webhook deliveries answered with a 2xx (one per delivery, whatever its
    /// retries).
    #[serde(default)]
    pub ls_webhook_deliveries: u64,
    /// Lightspeed webhook deliveries given up: no 2xx after the last retry.
    #[serde(default)]
    pub ls_webhook_failures: u64,
    /// Lightspeed webhook POSTs made (first attempts and retries).
    #[serde(default)]
    pub ls_webhook_attempts: u64,
    /// Lightspeed webhook deliveries lost on purpose (`Sandbox::set_ls_webhook_drop`).
    #[serde(default)]
    pub ls_webhook_dropped: u64,
}

/// Ids of the retailer's fixed setup and of the demo catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedIds {
    pub ecwid_store_id: u64,
    pub retailer_id: String,
    /// "Main Outlet".
    pub outlet_id: String,
    /// "Web Store Register", in Main Outlet: the register the connector posts to.
    pub register_id: String,
    /// "Warehouse".
    pub second_outlet_id: String,
    /// "Warehouse Register", in Warehouse.
    pub second_register_id: String,
    pub user_id: String,
    /// "Ecwid Online".
    pub payment_type_id: String,
    /// "Cash".
    pub cash_payment_type_id: String,
    /// "Gift Card": for the part of an order a gift card paid.
    pub gift_card_payment_type_id: String,
    /// Lightspeed tax "GST 10%" (rate 0.1).
    pub tax_10_id: String,
    /// Lightspeed tax "VAT 20%" (rate 0.2).
    pub tax_20_id: String,
    /// Lightspeed tax group "GST + PST": rates 0.05 and 0.07 (0.12 together).
    pub tax_gst_pst_id: String,
    /// Lightspeed "No Tax" (the retailer's `no_tax_group_id`).
    pub no_tax_group_id: String,
    /// The retailer's `discount_product_id`.
    pub discount_product_id: String,
    /// A non-inventory "Shipping" product (sku `shipping`) for shipping lines.
    pub shipping_product_id: String,
    pub customer_group_id: String,
    /// Ecwid tax "10% Tax".
    pub ecwid_tax_10_id: u64,
    /// Ecwid tax "20% Tax".
    pub ecwid_tax_20_id: u64,
    /// "Toys", sku 123123, Ecwid product 692730761 (as in Ecwid's example order K8XTQ),
    /// 10.00 incl. 10% tax.
    pub toys: ProductIds,
    /// "Coffee Mug", sku MUG-001, 12.00 + 10%.
    pub mug: ProductIds,
    /// "Tote Bag", sku TOTE-001, 15.00 + 20%.
    pub tote: ProductIds,
    /// "Sticker", sku STICKER-01, 1.50, untaxed.
    pub sticker: ProductIds,
    /// "T-Shirt", sku TSHIRT, 20.00 + 20%, variants TSHIRT-S / TSHIRT-M / TSHIRT-L.
    pub tshirt: ProductIds,
    /// The demo customer "Jane Doe" <jane@example.com>.
    pub customer_id: String,
}
