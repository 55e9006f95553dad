//! Kefu's intent model.
//!
//! * [`features`]: hashed character n-grams (Chinese, no spaces needed) and word n-grams;
//! * [`model`]: softmax regression, calibrated by temperature, with an out-of-scope threshold,
//!   stored as a small int8 artefact;
//! * [`train`], [`data`], [`eval`]: reproducible training on the public sets plus Kefu's own
//!   examples, and held-out evaluation;
//! * [`shop`], [`scores`]: a shop's own intents (its examples, Kefu's defaults, generic
//!   negatives) with an optional embedding head, cross-validated and calibrated;
//! * [`examples`]: a shop's labelled examples files (CSV / JSON lines);
//! * [`entities`]: order and tracking numbers, phones, e-mails, amounts and dates with spans.
#![forbid(unsafe_code)]

pub mod data;
pub mod entities;
pub mod eval;
pub mod examples;
pub mod features;
pub mod model;
pub mod scores;
pub mod shop;
pub mod train;

pub use model::{Model, OUT_OF_SCOPE, Prediction};

/// The intents of the API, in the model's label order.
pub const INTENTS: &[&str] = &[
    "order_status",
    "shipping_delay",
    "delivery_info",
    "return_exchange",
    "refund",
    "cancel_order",
    "change_order",
    "change_address",
    "coupon_promotion",
    "presale_deposit",
    "payment_problem",
    "payment_methods",
    "invoice",
    "product_inquiry",
    "place_order",
    "complaint",
    "human_agent",
    "greeting",
    "thanks_goodbye",
    "account",
    "out_of_scope",
];

/// The model shipped with Kefu (trained by `kefu-intent train`), embedded in the binary.
pub const BUNDLED_MODEL: &[u8] = include_bytes!("../models/kefu-intent.kim");

/// Loads the bundled model.
pub fn bundled() -> Result<Model, model::ModelError> {
    Model::from_bytes(BUNDLED_MODEL)
}
