//! `products/*.jsonl`: one product per line in Shopify's product JSON (`title`, `handle`,
//! `body_html`, `product_type`, `tags`, `options`, `variants[{sku,title,price,
//! inventory_quantity,option1..3}]`). Other Shopify fields are ignored.
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::{
    bundle::Problem,
    html,
    product::{Fact, Product, Variant},
};

#[derive(Deserialize)]
#[serde(untagged)]
enum Tags {
    List(Vec<String>),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Price {
    Text(String),
    Number(serde_json::Number),
}

impl Price {
    fn decimal(&self) -> Option<Decimal> {
        match self {
            Price::Text(s) => s.trim().parse().ok(),
            Price::Number(n) => n.to_string().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct ShopifyOption {
    name: String,
}

#[derive(Deserialize)]
struct ShopifyVariant {
    sku: Option<String>,
    title: Option<String>,
    price: Option<Price>,
    inventory_quantity: Option<i64>,
    available: Option<bool>,
    option1: Option<String>,
    option2: Option<String>,
    option3: Option<String>,
}

#[derive(Deserialize)]
struct ShopifyProduct {
    title: String,
    handle: Option<String>,
    body_html: Option<String>,
    product_type: Option<String>,
    tags: Option<Tags>,
    #[serde(default)]
    options: Vec<ShopifyOption>,
    #[serde(default)]
    variants: Vec<ShopifyVariant>,
    /// Not Shopify's: a full storefront URL, when the shop gives one.
    url: Option<String>,
}

fn product(file: &str, p: ShopifyProduct) -> Result<Product, String> {
    if p.title.trim().is_empty() {
        return Err("\"title\" is empty".into());
    }
    let handle = p
        .handle
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| p.title.to_lowercase().replace(char::is_whitespace, "-"));
    let mut variants = Vec::new();
    for (i, v) in p.variants.into_iter().enumerate() {
        let price = match &v.price {
            Some(raw) => Some(
                raw.decimal()
                    .ok_or_else(|| format!("variants[{i}].price is not a number"))?,
            ),
            None => None,
        };
        let options: Vec<String> = [v.option1, v.option2, v.option3]
            .into_iter()
            .flatten()
            .filter(|o| !o.is_empty() && o != "Default Title")
            .collect();
        variants.push(Variant {
            sku: v.sku.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                format!("{handle}-{}", v.title.unwrap_or_else(|| i.to_string()))
            }),
            options,
            price,
            stock: v.inventory_quantity,
            available: v.available.or(v.inventory_quantity.map(|n| n > 0)),
        });
    }
    let lines = p
        .body_html
        .as_deref()
        .map(html::text_lines)
        .unwrap_or_default();
    let facts = lines
        .iter()
        .filter_map(|l| {
            let (name, value) = l.split_once([':', '：'])?;
            let (name, value) = (name.trim(), value.trim());
            (!name.is_empty() && name.chars().count() <= 40 && !value.is_empty()).then(|| Fact {
                name: name.to_owned(),
                value: value.to_owned(),
                source: l.clone(),
            })
        })
        .collect();
    Ok(Product {
        id: handle.clone(),
        title: p.title.trim().to_owned(),
        url: p.url.or_else(|| Some(format!("/products/{handle}"))),
        price: variants.iter().filter_map(|v| v.price).min(),
        currency: None,
        category: p.product_type.unwrap_or_default(),
        tags: match p.tags {
            Some(Tags::List(t)) => t,
            Some(Tags::Text(t)) => t
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            None => Vec::new(),
        },
        option_names: p.options.into_iter().map(|o| o.name).collect(),
        variants,
        facts,
        description: lines.join("\n"),
        source: file.to_owned(),
    })
}

pub fn parse(file: &str, text: &str, problems: &mut Vec<Problem>) -> Vec<Product> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<ShopifyProduct>(line)
            .map_err(|e| format!("not a Shopify product: {e}"))
            .and_then(|p| product(file, p));
        match parsed {
            Ok(p) => out.push(p),
            Err(e) => problems.push(Problem::at(file, i + 1, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_products_with_variants_stock_and_body_facts() {
        let line = r#"{"title":"Cloud Hoodie","handle":"cloud-hoodie","product_type":"Hoodie","tags":"warm, fleece","body_html":"<p>Our warmest hoodie.</p><ul><li>Material: 80% cotton, 20% polyester</li><li>Weight: 420 gsm</li></ul>","options":[{"name":"Color"},{"name":"Size"}],"variants":[{"sku":"CH-GR-M","price":"79.00","inventory_quantity":3,"option1":"Grey","option2":"M"},{"sku":"CH-GR-XL","price":"79.00","inventory_quantity":0,"option1":"Grey","option2":"XL"},{"sku":"CH-BK-M","price":75,"inventory_quantity":5,"option1":"Black","option2":"M"}],"vendor":"ignored"}"#;
        let mut p = Vec::new();
        let products = parse(
            "products/shop.jsonl",
            &format!("{line}\n{{\"title\":\"\"}}\nnope\n"),
            &mut p,
        );
        assert_eq!(products.len(), 1);
        let h = &products[0];
        assert_eq!(
            (h.id.as_str(), h.url.as_deref()),
            ("cloud-hoodie", Some("/products/cloud-hoodie"))
        );
        assert_eq!(h.price, Some(Decimal::new(75, 0)));
        assert_eq!(h.tags, ["warm", "fleece"]);
        assert_eq!(h.available_in("xl"), Some(false));
        assert_eq!(h.available_in("M"), Some(true));
        assert_eq!(h.available_in("XXL"), None);
        assert_eq!(h.facts[0].name, "Material");
        assert_eq!(h.facts[1].value, "420 gsm");
        assert_eq!(
            p.iter().map(|x| x.line).collect::<Vec<_>>(),
            [Some(2), Some(3)]
        );
    }
}
