//! A shop's knowledge: the bundle a shop maintains (docs/knowledge.md) — FAQ, product pages,
//! Shopify products, promotions and the shop's own test scenarios — parsed with every fact
//! kept beside the passage it came from, so that an answer can only repeat the shop.
//!
//! * [`bundle`]: the directory (or its files) → [`bundle::Bundle`], or every problem found, by
//!   file and line.
//! * [`faq`], [`html`], [`shopify`], [`promotions`], [`scenario`]: one file format each.
//! * [`product`]: what a product is, whatever it came from.
//! * [`pricing`]: a cart priced under the shop's promotions (docs/promotions.md).
#![forbid(unsafe_code)]

pub mod answer;
pub mod bundle;
pub mod cart;
pub mod deals;
pub mod faq;
pub mod html;
pub mod index;
pub mod pricing;
pub mod product;
pub mod promotions;
pub mod scenario;
pub mod shopify;
pub mod text;

pub use bundle::{Bundle, BundleError, Problem};
