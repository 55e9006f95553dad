//! A product, whatever it came from (a product page, a Shopify product): every fact keeps
//! the passage it was read from.
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One fact of a product: a spec (`Material: 100% cotton`), a size-chart row, a line of the
/// description. `source` is the passage as the shop wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub name: String,
    pub value: String,
    pub source: String,
}

/// A purchasable variant (a size, a colour).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub sku: String,
    /// Option values, e.g. `["Grey", "M"]`.
    pub options: Vec<String>,
    pub price: Option<Decimal>,
    /// Units in stock, when the source says.
    pub stock: Option<i64>,
    /// In stock (from a count or an availability flag), when the source says.
    pub available: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Stable id: the Shopify handle, or the page's file name without `.html`.
    pub id: String,
    pub title: String,
    /// Where a customer orders it (canonical URL), when known.
    pub url: Option<String>,
    /// Lowest price of the product or its variants.
    pub price: Option<Decimal>,
    /// ISO 4217, when the source says (`CNY` for ¥, `USD` for $).
    pub currency: Option<String>,
    /// Product type / category (`tent`, `hoodie`, `帐篷`).
    pub category: String,
    pub tags: Vec<String>,
    /// Names of the options (`Color`, `Size`).
    pub option_names: Vec<String>,
    pub variants: Vec<Variant>,
    pub facts: Vec<Fact>,
    pub description: String,
    /// The bundle file it came from.
    pub source: String,
}

impl Product {
    /// Whether any variant with `value` among its options is available (None: unknown).
    pub fn available_in(&self, value: &str) -> Option<bool> {
        let v = crate::text::normalise(value);
        let matching: Vec<&Variant> = self
            .variants
            .iter()
            .filter(|x| x.options.iter().any(|o| crate::text::normalise(o) == v))
            .collect();
        if matching.is_empty() {
            return None;
        }
        let known: Vec<bool> = matching
            .iter()
            .filter_map(|x| x.available.or(x.stock.map(|n| n > 0)))
            .collect();
        if known.is_empty() {
            None
        } else {
            Some(known.into_iter().any(|a| a))
        }
    }
}
