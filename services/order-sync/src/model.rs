//! The canonical JSON documents (`kefu.order.v1`, `kefu.tracking.v1`; see docs/orders.md), their
//! validation, and the mappings from Shopify's webhook payloads and from CSV rows.
use chrono::{DateTime, Utc};
use kefu_proto::order::v1 as pb;
use kefu_runtime::validate::Violations;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ORDER_FORMAT: &str = "kefu.order.v1";
pub const TRACKING_FORMAT: &str = "kefu.tracking.v1";

/// Order states.
pub const STATUSES: &[&str] = &[
    "pending_payment",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
];
/// Tracking event states.
pub const TRACKING_STATUSES: &[&str] = &[
    "label_created",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "returned",
];
pub const RETURN_STATUSES: &[&str] = &["requested", "approved", "rejected", "received", "refunded"];
pub const PAYMENT_STATUSES: &[&str] = &[
    "pending",
    "paid",
    "failed",
    "refunded",
    "partially_refunded",
];

/// Most items / payments / shipments / returns / events one order may carry.
pub const MAX_CHILDREN: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Buyer {
    pub buyer_id: String,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub channel: String,
    pub channel_user_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Item {
    pub sku: String,
    pub title: String,
    pub quantity: i32,
    pub price_minor: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentDoc {
    pub payment_id: String,
    pub method: String,
    pub status: String,
    pub amount_minor: i64,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scan {
    pub status: String,
    pub location: String,
    pub description: String,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipmentDoc {
    pub carrier: String,
    pub tracking_number: String,
    pub estimated_delivery: Option<DateTime<Utc>>,
    pub events: Vec<Scan>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReturnDoc {
    pub return_id: String,
    pub status: String,
    pub reason: String,
    pub refund_minor: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// `kefu.order.v1`: an order with everything hanging off it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderDoc {
    pub format: String,
    pub order_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub placed_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub buyer: Buyer,
    pub items: Vec<Item>,
    pub payments: Vec<PaymentDoc>,
    pub shipments: Vec<ShipmentDoc>,
    pub returns: Vec<ReturnDoc>,
    /// The source's own id of the order (e.g. Shopify's numeric id), to find it from later
    /// events; optional.
    pub source_ref: String,
}

/// `kefu.tracking.v1`: one carrier scan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingDoc {
    pub format: String,
    pub carrier: String,
    pub tracking_number: String,
    /// The order the parcel belongs to, when the carrier knows it (optional).
    pub order_id: String,
    pub status: String,
    pub location: String,
    pub description: String,
    pub at: Option<DateTime<Utc>>,
}

/// A document of either kind, told apart by `format`.
#[derive(Clone, Debug, PartialEq)]
pub enum Doc {
    Order(Box<OrderDoc>),
    Tracking(TrackingDoc),
}

impl Doc {
    /// Parses one JSON document; `format` decides the kind.
    pub fn from_json(v: serde_json::Value) -> Result<Doc, String> {
        let format = v
            .get("format")
            .and_then(|f| f.as_str())
            .unwrap_or_default()
            .to_owned();
        match format.as_str() {
            ORDER_FORMAT => serde_json::from_value(v)
                .map(|d| Doc::Order(Box::new(d)))
                .map_err(|e| format!("not a {ORDER_FORMAT} document: {e}")),
            TRACKING_FORMAT => serde_json::from_value(v)
                .map(Doc::Tracking)
                .map_err(|e| format!("not a {TRACKING_FORMAT} document: {e}")),
            "" => Err(format!(
                "missing \"format\" (\"{ORDER_FORMAT}\" or \"{TRACKING_FORMAT}\")"
            )),
            other => Err(format!(
                "unknown format {other:?} (expected \"{ORDER_FORMAT}\" or \"{TRACKING_FORMAT}\")"
            )),
        }
    }
}

fn one_of(v: &mut Violations, field: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        v.add(field, format!("must be one of {}", allowed.join(", ")));
    }
}

fn short(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
    if value.contains('\0') {
        v.add(field, "must not contain NUL characters");
    }
}

fn scan_valid(v: &mut Violations, p: &str, s: &Scan) {
    one_of(v, &format!("{p}.status"), &s.status, TRACKING_STATUSES);
    short(v, &format!("{p}.location"), &s.location, 200);
    short(v, &format!("{p}.description"), &s.description, 500);
    if s.at.is_none() {
        v.add(&format!("{p}.at"), "is required (RFC 3339 time)");
    }
}

pub use kefu_runtime::customer_key::{CustomerKeys, normalize_email, normalize_phone};

impl OrderDoc {
    pub fn validate(&self, v: &mut Violations) {
        if self.format != ORDER_FORMAT {
            v.add("format", format!("must be \"{ORDER_FORMAT}\""));
        }
        v.ident("order_id", &self.order_id, 64);
        one_of(v, "status", &self.status, STATUSES);
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            v.add("currency", "must be an ISO 4217 code such as CNY");
        }
        if self.total_minor < 0 {
            v.add("total_minor", "must not be negative");
        }
        if self.placed_at.is_none() {
            v.add("placed_at", "is required (RFC 3339 time)");
        }
        if self.updated_at.is_none() {
            v.add("updated_at", "is required (RFC 3339 time)");
        }
        let b = &self.buyer;
        for (f, val, max) in [
            ("buyer.buyer_id", &b.buyer_id, 128),
            ("buyer.name", &b.name, 200),
            ("buyer.email", &b.email, 254),
            ("buyer.channel_user_id", &b.channel_user_id, 128),
            ("source_ref", &self.source_ref, 128),
        ] {
            short(v, f, val, max);
        }
        if !b.phone.is_empty() && !(6..=20).contains(&normalize_phone(&b.phone).len()) {
            v.add("buyer.phone", "must have 6-20 digits");
        }
        if !b.email.is_empty() && !b.email.contains('@') {
            v.add("buyer.email", "must be an e-mail address");
        }
        if !b.channel.is_empty() && b.channel_user_id.is_empty() {
            v.add("buyer.channel_user_id", "is required with buyer.channel");
        }
        short(v, "buyer.channel", &b.channel, 32);
        for (f, n) in [
            ("items", self.items.len()),
            ("payments", self.payments.len()),
            ("shipments", self.shipments.len()),
            ("returns", self.returns.len()),
        ] {
            if n > MAX_CHILDREN {
                v.add(f, format!("at most {MAX_CHILDREN}"));
            }
        }
        for (i, it) in self.items.iter().enumerate() {
            short(v, &format!("items[{i}].sku"), &it.sku, 64);
            short(v, &format!("items[{i}].title"), &it.title, 200);
            if it.quantity < 1 {
                v.add(&format!("items[{i}].quantity"), "must be at least 1");
            }
            if it.price_minor < 0 {
                v.add(&format!("items[{i}].price_minor"), "must not be negative");
            }
        }
        for (i, p) in self.payments.iter().enumerate() {
            v.ident(&format!("payments[{i}].payment_id"), &p.payment_id, 64);
            one_of(
                v,
                &format!("payments[{i}].status"),
                &p.status,
                PAYMENT_STATUSES,
            );
            short(v, &format!("payments[{i}].method"), &p.method, 32);
        }
        for (i, s) in self.shipments.iter().enumerate() {
            v.ident(
                &format!("shipments[{i}].tracking_number"),
                &s.tracking_number,
                64,
            );
            short(v, &format!("shipments[{i}].carrier"), &s.carrier, 32);
            if s.events.len() > MAX_CHILDREN {
                v.add(
                    &format!("shipments[{i}].events"),
                    format!("at most {MAX_CHILDREN}"),
                );
            }
            for (j, e) in s.events.iter().enumerate() {
                scan_valid(v, &format!("shipments[{i}].events[{j}]"), e);
            }
        }
        for (i, r) in self.returns.iter().enumerate() {
            v.ident(&format!("returns[{i}].return_id"), &r.return_id, 64);
            one_of(
                v,
                &format!("returns[{i}].status"),
                &r.status,
                RETURN_STATUSES,
            );
            short(v, &format!("returns[{i}].reason"), &r.reason, 500);
            if r.refund_minor < 0 {
                v.add(
                    &format!("returns[{i}].refund_minor"),
                    "must not be negative",
                );
            }
        }
    }

    /// Hash of the content (everything but `format`), to recognise identical replays.
    pub fn content_hash(&self) -> String {
        let mut c = self.clone();
        c.format = String::new();
        hex::encode(Sha256::digest(
            serde_json::to_vec(&c).expect("serialisable"),
        ))
    }

    /// The buyer's keys: `identity` ("channel:user"), and the keyed hashes of phone and e-mail.
    pub fn buyer_keys(&self, hashes: &CustomerKeys) -> (String, String, String) {
        self.buyer_keys_with(|v| hashes.hash(v))
    }

    /// The buyer's keys with the phone and e-mail hashed by `hash` (the keyed hash; the legacy
    /// SHA-256 to recognise rows not migrated yet).
    pub fn buyer_keys_with(&self, hash: impl Fn(&str) -> String) -> (String, String, String) {
        let b = &self.buyer;
        let identity = if b.channel.is_empty() {
            String::new()
        } else {
            format!("{}:{}", b.channel, b.channel_user_id)
        };
        let phone = if b.phone.is_empty() {
            String::new()
        } else {
            hash(&normalize_phone(&b.phone))
        };
        let email = if b.email.is_empty() {
            String::new()
        } else {
            hash(&normalize_email(&b.email))
        };
        (identity, phone, email)
    }

    /// The customer record this order belongs to.
    pub fn customer_ref(&self, hashes: &CustomerKeys) -> String {
        self.customer_ref_with(|v| hashes.hash(v))
    }

    /// [`Self::customer_ref`] with the phone and e-mail hashed by `hash`.
    pub fn customer_ref_with(&self, hash: impl Fn(&str) -> String) -> String {
        let (identity, phone, email) = self.buyer_keys_with(hash);
        if !self.buyer.buyer_id.is_empty() {
            format!("id:{}", self.buyer.buyer_id)
        } else if !identity.is_empty() {
            format!("identity:{identity}")
        } else if !phone.is_empty() {
            format!("phone:{phone}")
        } else if !email.is_empty() {
            format!("email:{email}")
        } else {
            format!("order:{}", self.order_id)
        }
    }

    /// The canonical form of a gRPC `Order`.
    pub fn from_proto(o: &pb::Order) -> OrderDoc {
        let t = |ts: &Option<prost_types::Timestamp>| {
            ts.as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        let b = o.buyer.clone().unwrap_or_default();
        OrderDoc {
            format: ORDER_FORMAT.into(),
            order_id: o.order_id.clone(),
            status: o.status.clone(),
            currency: o.currency.clone(),
            total_minor: o.total_minor,
            placed_at: t(&o.placed_at),
            updated_at: t(&o.updated_at),
            buyer: Buyer {
                buyer_id: b.buyer_id,
                name: b.name,
                phone: b.phone,
                email: b.email,
                channel: b.channel,
                channel_user_id: b.channel_user_id,
            },
            items: o
                .items
                .iter()
                .map(|i| Item {
                    sku: i.sku.clone(),
                    title: i.title.clone(),
                    quantity: i.quantity,
                    price_minor: i.price_minor,
                })
                .collect(),
            payments: o
                .payments
                .iter()
                .map(|p| PaymentDoc {
                    payment_id: p.payment_id.clone(),
                    method: p.method.clone(),
                    status: p.status.clone(),
                    amount_minor: p.amount_minor,
                    at: t(&p.at),
                })
                .collect(),
            shipments: o
                .shipments
                .iter()
                .map(|s| ShipmentDoc {
                    carrier: s.carrier.clone(),
                    tracking_number: s.tracking_number.clone(),
                    estimated_delivery: t(&s.estimated_delivery),
                    events: s
                        .events
                        .iter()
                        .map(|e| Scan {
                            status: e.status.clone(),
                            location: e.location.clone(),
                            description: e.description.clone(),
                            at: t(&e.at),
                        })
                        .collect(),
                })
                .collect(),
            returns: o
                .returns
                .iter()
                .map(|r| ReturnDoc {
                    return_id: r.return_id.clone(),
                    status: r.status.clone(),
                    reason: r.reason.clone(),
                    refund_minor: r.refund_minor,
                    updated_at: t(&r.updated_at),
                })
                .collect(),
            source_ref: String::new(),
        }
    }
}

impl TrackingDoc {
    pub fn validate(&self, v: &mut Violations) {
        if self.format != TRACKING_FORMAT {
            v.add("format", format!("must be \"{TRACKING_FORMAT}\""));
        }
        v.ident("tracking_number", &self.tracking_number, 64);
        short(v, "carrier", &self.carrier, 32);
        if !self.order_id.is_empty() {
            v.ident("order_id", &self.order_id, 64);
        }
        scan_valid(
            v,
            "event",
            &Scan {
                status: self.status.clone(),
                location: self.location.clone(),
                description: self.description.clone(),
                at: self.at,
            },
        );
    }
}

/// Amounts as Shopify writes them ("199.00") in minor units.
fn decimal_minor(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || whole.len() > 15
    {
        return Err(format!("not an amount: {s:?}"));
    }
    let frac = format!("{frac:0<2}");
    Ok(whole.parse::<i64>().map_err(|e| e.to_string())? * 100
        + frac.parse::<i64>().map_err(|e| e.to_string())?)
}

/// Mappings from Shopify's webhook payloads (Admin REST API resources).
pub mod shopify {
    use super::*;
    use serde_json::Value;

    fn s(v: &Value, key: &str) -> String {
        match v.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
        v.get(key)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Shopify's `shipment_status` of a fulfillment as a Kefu tracking status.
    pub fn shipment_status(s: &str) -> &'static str {
        match s {
            "label_printed" | "label_purchased" | "confirmed" | "ready_for_pickup" => {
                "label_created"
            }
            "in_transit" | "attempted_delivery" => "in_transit",
            "out_for_delivery" => "out_for_delivery",
            "delivered" => "delivered",
            "failure" => "exception",
            _ => "in_transit",
        }
    }

    /// A fulfillment (from an order's `fulfillments` or a `fulfillments/*` webhook).
    pub fn fulfillment(f: &Value) -> Option<ShipmentDoc> {
        let tracking = {
            let t = s(f, "tracking_number");
            if t.is_empty() {
                f.get("tracking_numbers")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                t
            }
        };
        if tracking.is_empty() {
            return None;
        }
        let status = s(f, "shipment_status");
        let at = time(f, "updated_at").or_else(|| time(f, "created_at"));
        Some(ShipmentDoc {
            carrier: s(f, "tracking_company"),
            tracking_number: tracking,
            estimated_delivery: time(f, "estimated_delivery_at"),
            events: vec![Scan {
                status: shipment_status(&status).into(),
                location: String::new(),
                description: if status.is_empty() {
                    "fulfilled".into()
                } else {
                    status
                },
                at,
            }],
        })
    }

    /// An `orders/create`, `orders/updated` or `orders/cancelled` payload.
    pub fn order(o: &Value) -> Result<OrderDoc, String> {
        if !o.is_object() {
            return Err("the body is not a Shopify order object".into());
        }
        let id = s(o, "id");
        let number = {
            let n = s(o, "order_number");
            if n.is_empty() {
                s(o, "name").trim_start_matches('#').to_owned()
            } else {
                n
            }
        };
        if number.is_empty() {
            return Err("order_number is missing".into());
        }
        let fulfillments: Vec<ShipmentDoc> = o
            .get("fulfillments")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(fulfillment).collect())
            .unwrap_or_default();
        let financial = s(o, "financial_status");
        let status = if o.get("cancelled_at").is_some_and(|c| !c.is_null()) {
            "cancelled"
        } else if financial == "refunded" {
            "refunded"
        } else if fulfillments
            .iter()
            .any(|f| f.events.iter().any(|e| e.status == "delivered"))
        {
            "delivered"
        } else if matches!(s(o, "fulfillment_status").as_str(), "fulfilled" | "partial")
            || !fulfillments.is_empty()
        {
            "shipped"
        } else if matches!(financial.as_str(), "paid" | "partially_refunded") {
            "paid"
        } else {
            "pending_payment"
        };
        let customer = o.get("customer").cloned().unwrap_or(Value::Null);
        let name = format!(
            "{} {}",
            s(&customer, "first_name"),
            s(&customer, "last_name")
        )
        .trim()
        .to_owned();
        let phone = {
            let p = s(o, "phone");
            if p.is_empty() {
                s(&customer, "phone")
            } else {
                p
            }
        };
        let email = {
            let e = s(o, "email");
            if e.is_empty() {
                s(&customer, "email")
            } else {
                e
            }
        };
        let customer_id = s(&customer, "id");
        let items = o
            .get("line_items")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|i| {
                        Ok(Item {
                            sku: s(i, "sku"),
                            title: {
                                let t = s(i, "title");
                                if t.is_empty() { s(i, "name") } else { t }
                            },
                            quantity: i.get("quantity").and_then(Value::as_i64).unwrap_or(1) as i32,
                            price_minor: decimal_minor(&s(i, "price"))?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?
            .unwrap_or_default();
        let refunds: Vec<ReturnDoc> = o
            .get("refunds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| {
                        // Checked: amounts of up to 15 digits still overflow i64 when summed.
                        let refund_minor = r
                            .get("transactions")
                            .and_then(Value::as_array)
                            .map_or(Some(0), |t| {
                                t.iter()
                                    .filter_map(|t| decimal_minor(&s(t, "amount")).ok())
                                    .try_fold(0i64, i64::checked_add)
                            })
                            .ok_or("refund amounts out of range")?;
                        Ok(ReturnDoc {
                            return_id: format!("shopify-refund-{}", s(r, "id")),
                            status: "refunded".into(),
                            reason: s(r, "note"),
                            refund_minor,
                            updated_at: time(r, "created_at"),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?
            .unwrap_or_default();
        let payment_status = match financial.as_str() {
            "paid" => "paid",
            "refunded" => "refunded",
            "partially_refunded" => "partially_refunded",
            "voided" => "failed",
            _ => "pending",
        };
        Ok(OrderDoc {
            format: ORDER_FORMAT.into(),
            order_id: number,
            status: status.into(),
            currency: s(o, "currency"),
            total_minor: decimal_minor(&s(o, "total_price"))?,
            placed_at: time(o, "created_at"),
            updated_at: time(o, "updated_at").or_else(|| time(o, "created_at")),
            buyer: Buyer {
                buyer_id: if customer_id.is_empty() {
                    String::new()
                } else {
                    format!("shopify:{customer_id}")
                },
                name,
                phone,
                email,
                channel: if customer_id.is_empty() {
                    String::new()
                } else {
                    "shopify".into()
                },
                channel_user_id: customer_id,
            },
            items,
            payments: vec![PaymentDoc {
                payment_id: format!("shopify-{id}"),
                method: o
                    .get("payment_gateway_names")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .unwrap_or("shopify")
                    .to_owned(),
                status: payment_status.into(),
                amount_minor: decimal_minor(&s(o, "total_price"))?,
                at: time(o, "processed_at"),
            }],
            shipments: fulfillments,
            returns: refunds,
            source_ref: format!("shopify:{id}"),
        })
    }
}

/// The CSV import format: one row per line item, order columns repeated (docs/orders.md).
pub mod csv_rows {
    use super::*;

    pub const COLUMNS: &[&str] = &[
        "order_id",
        "status",
        "currency",
        "total_minor",
        "placed_at",
        "updated_at",
        "buyer_id",
        "buyer_name",
        "phone",
        "email",
        "channel",
        "channel_user_id",
        "sku",
        "title",
        "quantity",
        "price_minor",
        "carrier",
        "tracking_number",
    ];

    /// Splits one CSV line into fields (RFC 4180 quoting; no newlines inside fields).
    pub fn fields(line: &str) -> Result<Vec<String>, String> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line.as_bytes());
        match r.records().next() {
            Some(Ok(rec)) => Ok(rec.iter().map(str::to_owned).collect()),
            Some(Err(e)) => Err(format!("bad CSV: {e}")),
            None => Ok(Vec::new()),
        }
    }

    /// Column positions from the header line; unknown columns are an error so a typo does
    /// not silently drop data.
    pub fn header(line: &str) -> Result<Vec<String>, String> {
        let cols = fields(line)?;
        for c in &cols {
            if !COLUMNS.contains(&c.as_str()) {
                return Err(format!(
                    "unknown column {c:?}; known: {}",
                    COLUMNS.join(",")
                ));
            }
        }
        for required in ["order_id", "status", "currency", "placed_at", "updated_at"] {
            if !cols.iter().any(|c| c == required) {
                return Err(format!("missing column {required:?}"));
            }
        }
        Ok(cols)
    }

    fn time(v: &str, col: &str) -> Result<Option<DateTime<Utc>>, String> {
        if v.is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("{col}: not an RFC 3339 time: {e}"))
    }

    fn int<T: std::str::FromStr>(v: &str, col: &str) -> Result<Option<T>, String> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| format!("{col}: not a whole number: {v:?}"))
    }

    /// Applies one row to `doc` (a new order when `doc` is for another order id).
    pub fn apply(header: &[String], line: &str, doc: &mut OrderDoc) -> Result<(), String> {
        let f = fields(line)?;
        if f.len() != header.len() {
            return Err(format!(
                "{} fields, the header has {}",
                f.len(),
                header.len()
            ));
        }
        let get = |c: &str| {
            header
                .iter()
                .position(|h| h == c)
                .map(|i| f[i].trim().to_owned())
                .unwrap_or_default()
        };
        doc.format = ORDER_FORMAT.into();
        doc.order_id = get("order_id");
        doc.status = get("status");
        doc.currency = get("currency");
        doc.total_minor = int(&get("total_minor"), "total_minor")?.unwrap_or(0);
        doc.placed_at = time(&get("placed_at"), "placed_at")?;
        doc.updated_at = time(&get("updated_at"), "updated_at")?;
        doc.buyer = Buyer {
            buyer_id: get("buyer_id"),
            name: get("buyer_name"),
            phone: get("phone"),
            email: get("email"),
            channel: get("channel"),
            channel_user_id: get("channel_user_id"),
        };
        let sku = get("sku");
        let title = get("title");
        if !sku.is_empty() || !title.is_empty() {
            doc.items.push(Item {
                sku,
                title,
                quantity: int(&get("quantity"), "quantity")?.unwrap_or(1),
                price_minor: int(&get("price_minor"), "price_minor")?.unwrap_or(0),
            });
        }
        let tracking = get("tracking_number");
        if !tracking.is_empty() && !doc.shipments.iter().any(|s| s.tracking_number == tracking) {
            doc.shipments.push(ShipmentDoc {
                carrier: get("carrier"),
                tracking_number: tracking,
                estimated_delivery: None,
                events: Vec::new(),
            });
        }
        Ok(())
    }

    /// The order id of a row (to group rows into orders).
    pub fn order_id(header: &[String], line: &str) -> Result<String, String> {
        let f = fields(line)?;
        let i = header
            .iter()
            .position(|h| h == "order_id")
            .ok_or("missing column \"order_id\"")?;
        Ok(f.get(i).map(|s| s.trim().to_owned()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(decimal_minor("199.00"), Ok(19900));
        assert_eq!(decimal_minor("5.5"), Ok(550));
        assert_eq!(decimal_minor("12"), Ok(1200));
        assert!(decimal_minor("-1").is_err());
        assert!(decimal_minor("1.234").is_err());
        assert!(decimal_minor("").is_err());
    }

    #[test]
    fn shopify_order_maps_status_buyer_and_fulfillment() {
        let o: serde_json::Value = serde_json::json!({
            "id": 450789469, "order_number": 1001, "name": "#1001",
            "email": "Bob@Example.com", "phone": "+1 555 010 9999",
            "created_at": "2026-11-20T10:00:00-05:00", "updated_at": "2026-11-21T10:00:00-05:00",
            "cancelled_at": null, "financial_status": "paid", "fulfillment_status": "fulfilled",
            "currency": "USD", "total_price": "59.90",
            "customer": {"id": 207119551, "first_name": "Bob", "last_name": "Norman"},
            "line_items": [{"sku": "MUG-1", "title": "Mug", "quantity": 2, "price": "29.95"}],
            "fulfillments": [{"id": 255858046, "tracking_company": "UPS",
                "tracking_number": "1Z2345", "shipment_status": "in_transit",
                "updated_at": "2026-11-21T09:00:00-05:00"}]
        });
        let d = shopify::order(&o).expect("maps");
        assert_eq!(
            (d.order_id.as_str(), d.status.as_str(), d.total_minor),
            ("1001", "shipped", 5990)
        );
        assert_eq!(d.buyer.channel_user_id, "207119551");
        assert_eq!(d.shipments[0].events[0].status, "in_transit");
        assert_eq!(d.source_ref, "shopify:450789469");
        let mut v = Violations::new();
        d.validate(&mut v);
        assert!(v.is_empty(), "{v}");
        let k = CustomerKeys::new(&[7; 32]).unwrap();
        let (_, phone, email) = d.buyer_keys(&k);
        assert_eq!(phone, k.hash("15550109999"));
        assert_eq!(email, k.hash("bob@example.com"));
    }

    #[test]
    fn csv_rows_group_into_orders() {
        let header = csv_rows::header(
            "order_id,status,currency,total_minor,placed_at,updated_at,phone,sku,title,quantity,price_minor,carrier,tracking_number",
        )
        .expect("header");
        let mut d = OrderDoc::default();
        csv_rows::apply(&header, "\"20261101001\",shipped,CNY,19800,2026-11-01T10:00:00+08:00,2026-11-02T10:00:00+08:00,13800138000,A1,\"Tea, green\",2,9900,SF,SF1234567890123", &mut d).expect("row");
        assert_eq!(d.items[0].title, "Tea, green");
        assert_eq!(d.shipments[0].tracking_number, "SF1234567890123");
        assert!(csv_rows::header("order_id,colour").is_err());
        assert!(csv_rows::apply(&header, "1,2", &mut d).is_err());
    }

    #[test]
    fn documents_validate_with_field_paths() {
        let d = Doc::from_json(
            serde_json::json!({"format": "kefu.order.v1", "order_id": "x y", "status": "lost",
            "items": [{"quantity": 0}]}),
        )
        .expect("parses");
        let Doc::Order(d) = d else { panic!("order") };
        let mut v = Violations::new();
        d.validate(&mut v);
        let text = v.to_string();
        for field in [
            "order_id",
            "status",
            "currency",
            "placed_at",
            "items[0].quantity",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
        assert!(Doc::from_json(serde_json::json!({"order_id": "1"})).is_err());
    }
}
