//! `products/*.html`: product detail pages as a storefront serves them, parsed with a real
//! HTML parser (`scraper`, html5ever underneath). Whatever the shop's template, the facts are
//! looked for where storefronts put them, most reliable first:
//!
//! * schema.org `Product` JSON-LD (name, sku, offers with price, currency, availability);
//! * Open Graph / `product:` meta tags, `itemprop` microdata, `<link rel=canonical>`;
//! * the page itself: `<h1>`, elements whose class names a price, two-column spec tables and
//!   `<dl>` lists (one fact per row), wider tables (a size chart: one fact per row, cells named
//!   by the header), `Name: value` list items, `<select>` options and `data-sku` elements
//!   (variants, with `disabled` / `data-stock` / "sold out" / 售罄 / 缺货 for stock).
//!
//! Every fact keeps the passage it was read from.
use std::sync::LazyLock;

use rust_decimal::Decimal;
use scraper::{ElementRef, Html, Node, Selector};
use serde_json::Value;

use crate::{
    bundle::Problem,
    product::{Fact, Product, Variant},
    text::squash,
};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

static JSON_LD: LazyLock<Selector> = LazyLock::new(|| sel(r#"script[type="application/ld+json"]"#));
static TABLE: LazyLock<Selector> = LazyLock::new(|| sel("table"));
static TR: LazyLock<Selector> = LazyLock::new(|| sel("tr"));
static CELL: LazyLock<Selector> = LazyLock::new(|| sel("th, td"));
static DL: LazyLock<Selector> = LazyLock::new(|| sel("dl"));
static DT_DD: LazyLock<Selector> = LazyLock::new(|| sel("dt, dd"));
static LI: LazyLock<Selector> = LazyLock::new(|| sel("li"));
static SELECT: LazyLock<Selector> = LazyLock::new(|| sel("select"));
static OPTION: LazyLock<Selector> = LazyLock::new(|| sel("option"));
static DATA_SKU: LazyLock<Selector> = LazyLock::new(|| sel("[data-sku]"));
static LABEL: LazyLock<Selector> = LazyLock::new(|| sel("label"));
static INS: LazyLock<Selector> = LazyLock::new(|| sel("ins"));
static PAIR_PARENTS: LazyLock<Selector> = LazyLock::new(|| sel("div, section"));

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "br",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "dt",
    "dd",
    "section",
    "article",
    "table",
    "ul",
    "ol",
    "dl",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
];

fn collect_lines(node: ego_tree::NodeRef<'_, Node>, lines: &mut Vec<String>, cur: &mut String) {
    for child in node.children() {
        match child.value() {
            Node::Text(t) => cur.push_str(&t.text),
            Node::Element(e) => {
                let name = e.name();
                if matches!(name, "script" | "style" | "noscript" | "template") {
                    continue;
                }
                let block = BLOCKS.contains(&name);
                if block && !cur.trim().is_empty() {
                    lines.push(squash(cur));
                    cur.clear();
                }
                if matches!(name, "td" | "th") {
                    cur.push(' ');
                }
                collect_lines(child, lines, cur);
                if block && !cur.trim().is_empty() {
                    lines.push(squash(cur));
                    cur.clear();
                }
            }
            _ => {}
        }
    }
}

/// The text of an HTML fragment, one line per block (paragraph, list item, row…).
pub fn text_lines(fragment: &str) -> Vec<String> {
    let doc = Html::parse_fragment(fragment);
    let mut lines = Vec::new();
    let mut cur = String::new();
    collect_lines(*doc.root_element(), &mut lines, &mut cur);
    if !cur.trim().is_empty() {
        lines.push(squash(&cur));
    }
    lines
}

fn text_of(e: ElementRef<'_>) -> String {
    squash(&e.text().collect::<Vec<_>>().join(" "))
}

/// A price as a shop writes it: `¥1,299.00`, `$79`, `79.00 USD`, `价格：899元`.
pub fn price_in(s: &str) -> Option<Decimal> {
    let mut num = String::new();
    let mut started = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            started = true;
        } else if started && c == '.' && !num.contains('.') {
            num.push(c);
        } else if started && c == ',' {
            continue;
        } else if started {
            break;
        }
    }
    num.trim_end_matches('.').parse().ok()
}

fn currency_in(s: &str) -> Option<&'static str> {
    if s.contains('¥')
        || s.contains('￥')
        || s.contains('元')
        || s.contains("CNY")
        || s.contains("RMB")
    {
        Some("CNY")
    } else if s.contains("US$") || s.contains("USD") || s.contains('$') {
        Some("USD")
    } else if s.contains('€') || s.contains("EUR") {
        Some("EUR")
    } else {
        None
    }
}

fn json_products(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| json_products(x, out)),
        Value::Object(o) => {
            let is_product = match o.get("@type") {
                Some(Value::String(t)) => t == "Product" || t == "ProductGroup",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "Product" || t == "ProductGroup"),
                _ => false,
            };
            if is_product {
                out.push(v.clone());
            }
            if let Some(g) = o.get("@graph") {
                json_products(g, out);
            }
        }
        _ => {}
    }
}

/// A schema.org node's offers (one or a list).
fn offers_of(p: &Value) -> Vec<Value> {
    match p.get("offers") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn meta(doc: &Html, attr: &str, name: &str) -> Option<String> {
    let s = Selector::parse(&format!(r#"meta[{attr}="{name}"]"#)).ok()?;
    doc.select(&s)
        .find_map(|m| m.value().attr("content").map(|c| c.trim().to_owned()))
        .filter(|c| !c.is_empty())
}

fn first_text(doc: &Html, css: &str) -> Option<String> {
    let s = Selector::parse(css).ok()?;
    doc.select(&s).map(text_of).find(|t| !t.is_empty())
}

/// The text of the first element matching `css` that has any, one line per block.
fn first_lines(doc: &Html, css: &str) -> Option<Vec<String>> {
    let s = Selector::parse(css).ok()?;
    doc.select(&s)
        .map(|e| text_lines(&e.inner_html()))
        .find(|l| !l.is_empty())
}

/// The text of an element without struck-through parts (`<del>¥299</del><ins>¥259</ins>`:
/// the old price is not the price).
fn current_text(e: ElementRef<'_>) -> String {
    fn walk(node: ego_tree::NodeRef<'_, Node>, out: &mut String) {
        for child in node.children() {
            match child.value() {
                Node::Text(t) => {
                    out.push_str(&t.text);
                    out.push(' ');
                }
                Node::Element(e)
                    if !matches!(
                        e.name(),
                        "del" | "s" | "strike" | "script" | "style" | "template"
                    ) && !e.attr("class").is_some_and(|c| {
                        c.contains("compare") || c.contains("was-price") || c.contains("original")
                    }) =>
                {
                    walk(child, out)
                }
                _ => {}
            }
        }
    }
    if let Some(ins) = e.select(&INS).next() {
        return text_of(ins);
    }
    let mut out = String::new();
    walk(*e, &mut out);
    squash(&out)
}

/// The page's price as written, where storefronts put it: microdata, then elements named
/// for a price by class, id or test id (the first one that holds a number).
fn page_price(doc: &Html) -> Option<String> {
    for css in [
        "[itemprop=price]",
        "[data-testid*=price]",
        "[class*=price]",
        "[id*=price]",
    ] {
        let Ok(sel) = Selector::parse(css) else {
            continue;
        };
        for e in doc.select(&sel) {
            let t = e
                .value()
                .attr("content")
                .map(str::to_owned)
                .unwrap_or_else(|| current_text(e));
            if price_in(&t).is_some() {
                return Some(t);
            }
        }
    }
    None
}

/// A page title without the site's name (`羽绒睡袋 | 山野生活`, `Down coat – Shanye`).
fn without_site(title: String) -> String {
    for sep in [" | ", " – ", " — ", " - ", "｜"] {
        if let Some((first, _)) = title.split_once(sep)
            && !first.trim().is_empty()
        {
            return first.trim().to_owned();
        }
    }
    title
}

fn sold_out(s: &str) -> bool {
    let l = s.to_lowercase();
    l.contains("sold out")
        || l.contains("out of stock")
        || s.contains("售罄")
        || s.contains("缺货")
        || s.contains("无货")
}

/// Facts of the page's tables, lists and `Name: value` items.
fn page_facts(doc: &Html) -> Vec<Fact> {
    let mut facts = Vec::new();
    for table in doc.select(&TABLE) {
        let rows: Vec<Vec<String>> = table
            .select(&TR)
            .map(|r| r.select(&CELL).map(text_of).collect::<Vec<_>>())
            .filter(|r: &Vec<String>| r.iter().any(|c| !c.is_empty()))
            .collect();
        let two_columns = rows.iter().all(|r| r.len() == 2);
        if two_columns {
            for r in rows {
                if !r[0].is_empty() && !r[1].is_empty() {
                    facts.push(Fact {
                        source: format!("{}: {}", r[0], r[1]),
                        name: r[0].trim_end_matches([':', '：']).to_owned(),
                        value: r[1].clone(),
                    });
                }
            }
        } else if let Some((header, body)) = rows.split_first() {
            // A size chart: the first column names the row, the header names the cells.
            for r in body {
                let Some((label, cells)) = r.split_first() else {
                    continue;
                };
                let value = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match header.get(i + 1) {
                        Some(h) if !h.is_empty() => format!("{h} {c}"),
                        _ => c.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                facts.push(Fact {
                    name: match header.first() {
                        Some(h) if !h.is_empty() => format!("{h} {label}"),
                        _ => label.clone(),
                    },
                    source: r.join(" | "),
                    value,
                });
            }
        }
    }
    for dl in doc.select(&DL) {
        let items: Vec<(String, String)> = dl
            .select(&DT_DD)
            .map(|e| (e.value().name().to_owned(), text_of(e)))
            .collect();
        let mut name: Option<String> = None;
        for (tag, text) in items {
            if tag == "dt" {
                name = Some(text);
            } else if let Some(n) = name.take().filter(|n| !n.is_empty() && !text.is_empty()) {
                facts.push(Fact {
                    source: format!("{n}: {text}"),
                    name: n.trim_end_matches([':', '：']).to_owned(),
                    value: text,
                });
            }
        }
    }
    // Label/value grids written with plain elements (`<div>Fabric weight</div><div>480
    // gsm</div>…`, as utility-CSS themes do): a container whose children are only short
    // leaf `div`/`span`/`p` elements, in pairs.
    for parent in doc.select(&PAIR_PARENTS) {
        let children: Vec<ElementRef<'_>> =
            parent.children().filter_map(ElementRef::wrap).collect();
        let leaf = |e: &ElementRef<'_>| {
            matches!(e.value().name(), "div" | "span" | "p")
                && e.descendants()
                    .filter_map(ElementRef::wrap)
                    .skip(1)
                    .all(|d| {
                        matches!(
                            d.value().name(),
                            "span" | "b" | "strong" | "em" | "i" | "small" | "sup" | "sub" | "a"
                        )
                    })
        };
        let is_price = parent
            .value()
            .attrs()
            .any(|(_, v)| v.to_ascii_lowercase().contains("price"));
        if is_price
            || children.len() < 2
            || !children.len().is_multiple_of(2)
            || !children.iter().all(leaf)
        {
            continue;
        }
        let cells: Vec<String> = children.iter().map(|c| text_of(*c)).collect();
        if cells
            .chunks(2)
            .any(|p| p[0].is_empty() || p[1].is_empty() || p[0].chars().count() > 40)
        {
            continue;
        }
        for p in cells.chunks(2) {
            facts.push(Fact {
                source: format!("{}: {}", p[0], p[1]),
                name: p[0].trim_end_matches([':', '：']).to_owned(),
                value: p[1].clone(),
            });
        }
    }
    for li in doc.select(&LI) {
        let t = text_of(li);
        if let Some((n, v)) = t.split_once([':', '：'])
            && !n.trim().is_empty()
            && n.chars().count() <= 40
            && !v.trim().is_empty()
        {
            facts.push(Fact {
                name: n.trim().to_owned(),
                value: v.trim().to_owned(),
                source: t.clone(),
            });
        }
    }
    facts
}

/// An option's label without a stock note: `XL (sold out)`, `沙漠黄（缺货）`,
/// `Mist Blue - Sold out` (Shopify's Debut theme).
fn option_label(label: &str) -> String {
    let base = label.split(['(', '（']).next().unwrap_or(label);
    let base = match base.rsplit_once(" - ") {
        Some((head, tail)) if sold_out(tail) || tail.trim().eq_ignore_ascii_case("unavailable") => {
            head
        }
        _ => base,
    };
    base.trim().to_owned()
}

fn select_variants(doc: &Html, id: &str) -> (Vec<String>, Vec<Variant>) {
    let mut names = Vec::new();
    // Selects that say something about stock (a disabled option, `data-stock`, a sold-out
    // label) are the variants; a select that only lists choices is used when no select says
    // anything, and then availability is unknown, never assumed.
    let mut signalled = Vec::new();
    let mut plain = Vec::new();
    for select in doc.select(&SELECT) {
        let name = select
            .value()
            .attr("name")
            .filter(|n| *n != "id")
            .or(select.value().attr("data-option"))
            .map(str::to_owned)
            .or_else(|| {
                let id = select.value().attr("id")?;
                doc.select(&LABEL)
                    .find(|l| l.value().attr("for") == Some(id))
                    .map(text_of)
            });
        let options: Vec<ElementRef<'_>> = select.select(&OPTION).collect();
        let has_signal = options.iter().any(|o| {
            o.value().attr("disabled").is_some()
                || o.value().attr("data-stock").is_some()
                || o.value().attr("data-available").is_some()
                || sold_out(&text_of(*o))
        });
        if let Some(n) = name.clone()
            && (select.value().attr("name") != Some("id"))
        {
            names.push(n);
        }
        let mut found = Vec::new();
        for o in options {
            let label = text_of(o);
            let value = o.value().attr("value").map(str::trim);
            let disabled = o.value().attr("disabled").is_some();
            // "Select a size" / 请选择: an empty value, not a choice; a disabled option
            // without a value is a sold-out variant (Debut: `Mist Blue - Sold out`).
            if label.is_empty()
                || (value.is_none_or(str::is_empty) && !(disabled && sold_out(&label)))
            {
                continue;
            }
            let stock = o
                .value()
                .attr("data-stock")
                .and_then(|s| s.trim().parse::<i64>().ok());
            let available = if disabled || sold_out(&label) {
                Some(false)
            } else if let Some(a) = o.value().attr("data-available") {
                Some(a == "true" || a == "1")
            } else if has_signal {
                stock.map(|n| n > 0).or(Some(true))
            } else {
                None
            };
            let clean = option_label(&label);
            let clean = if clean.is_empty() {
                value.unwrap_or_default().to_owned()
            } else {
                clean
            };
            found.push(Variant {
                sku: o
                    .value()
                    .attr("data-sku")
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!("{id}-{}", value.filter(|v| !v.is_empty()).unwrap_or(&clean))
                    }),
                options: vec![clean],
                price: o.value().attr("data-price").and_then(price_in),
                stock,
                available,
            });
        }
        if has_signal {
            signalled.extend(found);
        } else {
            plain.extend(found);
        }
    }
    let mut variants = if signalled.is_empty() {
        plain
    } else {
        signalled
    };
    for e in doc.select(&DATA_SKU) {
        if e.value().name() == "option" {
            continue;
        }
        let v = e.value();
        let options: Vec<String> = v
            .attrs()
            .filter(|(k, _)| {
                matches!(
                    *k,
                    "data-size" | "data-color" | "data-colour" | "data-option"
                )
            })
            .map(|(_, val)| val.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect();
        let stock = v
            .attr("data-stock")
            .and_then(|s| s.trim().parse::<i64>().ok());
        variants.push(Variant {
            sku: v.attr("data-sku").unwrap_or_default().to_owned(),
            options,
            price: v.attr("data-price").and_then(price_in),
            stock,
            available: v
                .attr("data-available")
                .map(|a| a == "true" || a == "1")
                .or(stock.map(|n| n > 0))
                .or_else(|| sold_out(&text_of(e)).then_some(false)),
        });
    }
    (names, variants)
}

/// The product on a page; `None` (with a problem) when the page names no product.
pub fn parse(file: &str, source: &str, problems: &mut Vec<Problem>) -> Option<Product> {
    let doc = Html::parse_document(source);
    let mut ld = Vec::new();
    for s in doc.select(&JSON_LD) {
        if let Ok(v) = serde_json::from_str::<Value>(&s.text().collect::<String>()) {
            json_products(&v, &mut ld);
        }
    }
    let ld = ld.into_iter().next();
    let id = file
        .rsplit('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".html")
        .to_owned();
    let title = ld
        .as_ref()
        .and_then(|p| str_of(p, "name"))
        .or_else(|| meta(&doc, "property", "og:title").map(without_site))
        .or_else(|| first_text(&doc, "h1"))
        .or_else(|| first_text(&doc, "title").map(without_site));
    let Some(title) = title else {
        problems.push(Problem::whole(
            file,
            "no product name: the page has no schema.org Product, og:title, <h1> or <title>",
        ));
        return None;
    };
    // The product's offers, or each variant's of a ProductGroup (`hasVariant`, as Shopify's
    // current themes write it), with the variant's SKU, name and option values.
    let mut offers: Vec<Value> = ld.as_ref().map(offers_of).unwrap_or_default();
    if let Some(Value::Array(vs)) = ld.as_ref().and_then(|p| p.get("hasVariant")) {
        for v in vs {
            let mut own = offers_of(v);
            if own.is_empty() {
                own.push(Value::Object(Default::default()));
            }
            for mut o in own {
                if let Value::Object(m) = &mut o {
                    for k in ["sku", "name", "color", "size", "material", "pattern"] {
                        if let Some(x) = v.get(k) {
                            m.entry(k).or_insert(x.clone());
                        }
                    }
                }
                offers.push(o);
            }
        }
    }
    let mut variants: Vec<Variant> = offers
        .iter()
        .filter(|o| str_of(o, "sku").is_some() || str_of(o, "name").is_some())
        .map(|o| {
            let available = str_of(o, "availability")
                .map(|a| a.contains("InStock") || a.contains("LimitedAvailability"));
            Variant {
                sku: str_of(o, "sku")
                    .unwrap_or_else(|| format!("{id}-{}", str_of(o, "name").unwrap_or_default())),
                options: Some(
                    ["color", "size", "material", "pattern"]
                        .iter()
                        .filter_map(|k| str_of(o, k))
                        .collect::<Vec<_>>(),
                )
                .filter(|x| !x.is_empty())
                .or_else(|| {
                    str_of(o, "name")
                        .map(|n| {
                            n.trim_start_matches(title.as_str())
                                .trim_matches([' ', '-', '/', '—'])
                                .to_owned()
                        })
                        .filter(|n| !n.is_empty())
                        .map(|n| n.split(['/', ',']).map(|x| x.trim().to_owned()).collect())
                })
                .unwrap_or_default(),
                price: str_of(o, "price").and_then(|p| price_in(&p)),
                stock: o
                    .get("inventoryLevel")
                    .and_then(|l| l.get("value"))
                    .and_then(Value::as_i64),
                available,
            }
        })
        .collect();
    let (option_names, page_variants) = select_variants(&doc, &id);
    if variants.iter().all(|v| v.options.is_empty()) && !page_variants.is_empty() {
        // Offers without option names (Shopify's Debut theme): the page names the options;
        // offers in the same number and order give the SKUs, prices and availability the
        // page does not.
        let mut merged = page_variants;
        if merged.len() == variants.len() {
            let synthetic = format!("{id}-");
            for (m, o) in merged.iter_mut().zip(&variants) {
                if m.sku.starts_with(&synthetic) {
                    m.sku = o.sku.clone();
                }
                m.available = m.available.or(o.available);
                m.price = m.price.or(o.price);
                m.stock = m.stock.or(o.stock);
            }
        }
        variants = merged;
    }
    let price_text = offers
        .iter()
        .filter_map(|o| str_of(o, "price").or_else(|| str_of(o, "lowPrice")))
        .next()
        .or_else(|| meta(&doc, "property", "product:price:amount"))
        .or_else(|| meta(&doc, "itemprop", "price"))
        .or_else(|| page_price(&doc));
    let currency = offers
        .iter()
        .find_map(|o| str_of(o, "priceCurrency"))
        .or_else(|| meta(&doc, "property", "product:price:currency"))
        .or_else(|| meta(&doc, "itemprop", "priceCurrency"))
        .or_else(|| {
            price_text
                .as_deref()
                .and_then(currency_in)
                .map(str::to_owned)
        });
    let price = variants
        .iter()
        .filter_map(|v| v.price)
        .min()
        .or_else(|| price_text.as_deref().and_then(price_in));
    // The description, one line per paragraph or list item (a fact each).
    let description_lines = ld
        .as_ref()
        .and_then(|p| str_of(p, "description"))
        .map(|d| text_lines(&d))
        .filter(|l| !l.is_empty())
        .or_else(|| first_lines(&doc, "[itemprop=description]"))
        .or_else(|| first_lines(&doc, "[class*=description], #description"))
        .or_else(|| meta(&doc, "name", "description").map(|d| vec![d]))
        .unwrap_or_default();
    let description = description_lines.join("\n");
    let mut facts = page_facts(&doc);
    for (i, line) in description_lines.into_iter().enumerate() {
        facts.push(Fact {
            name: if i == 0 {
                "description".into()
            } else {
                format!("description {i}")
            },
            value: line.clone(),
            source: line,
        });
    }
    Some(Product {
        url: meta(&doc, "property", "og:url")
            .or_else(|| {
                let s = Selector::parse("link[rel=canonical]").ok()?;
                doc.select(&s)
                    .find_map(|l| l.value().attr("href").map(str::to_owned))
            })
            .or_else(|| ld.as_ref().and_then(|p| str_of(p, "url"))),
        category: ld
            .as_ref()
            .and_then(|p| str_of(p, "category"))
            .or_else(|| meta(&doc, "property", "product:category"))
            .unwrap_or_default(),
        tags: meta(&doc, "name", "keywords")
            .map(|k| {
                k.split([',', '，'])
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        id,
        title,
        price,
        currency,
        option_names,
        variants,
        facts,
        description,
        source: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html><head><title>Shop | 山径双人帐篷</title>
<meta property="og:url" content="https://shop.example/p/tent-2p">
<meta name="description" content="轻量双人帐篷，适合三季露营。">
<script type="application/ld+json">{"@context":"https://schema.org","@graph":[{"@type":"Organization","name":"x"},{"@type":"Product","name":"山径双人帐篷","category":"帐篷","offers":[{"@type":"Offer","sku":"TENT2-GRN","name":"山径双人帐篷 - 绿色","price":"899.00","priceCurrency":"CNY","availability":"https://schema.org/InStock"},{"@type":"Offer","sku":"TENT2-GRY","name":"山径双人帐篷 - 灰色","price":"929","priceCurrency":"CNY","availability":"https://schema.org/OutOfStock"}]}]}</script>
</head><body><h1>山径双人帐篷 Trail 2P</h1><p class="price">¥899.00</p>
<table class="specs"><tr><th>重量</th><td>1.8 kg</td></tr><tr><th>防水指数</th><td>PU 3000mm</td></tr></table>
<dl><dt>适用人数</dt><dd>2 人</dd><dt>季节</dt><dd>三季</dd></dl>
<table><tr><th>尺码</th><th>长</th><th>宽</th></tr><tr><td>内帐</td><td>210 cm</td><td>130 cm</td></tr></table>
<ul><li>包装：收纳袋 ×1</li><li>no colon here</li></ul>
<script>var junk = "Material: nothing";</script>
</body></html>"#;

    #[test]
    fn a_page_with_json_ld_specs_dl_and_a_chart() {
        let mut p = Vec::new();
        let product = parse("products/tent-2p.html", PAGE, &mut p).expect("product");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(product.id, "tent-2p");
        assert_eq!(product.title, "山径双人帐篷");
        assert_eq!(product.category, "帐篷");
        assert_eq!(product.price, Some(Decimal::new(899, 0)));
        assert_eq!(product.currency.as_deref(), Some("CNY"));
        assert_eq!(
            product.url.as_deref(),
            Some("https://shop.example/p/tent-2p")
        );
        assert_eq!(product.variants.len(), 2);
        assert_eq!(product.variants[0].options, ["绿色"]);
        assert_eq!(product.available_in("灰色"), Some(false));
        let fact = |n: &str| {
            product
                .facts
                .iter()
                .find(|f| f.name == n)
                .map(|f| f.value.clone())
        };
        assert_eq!(fact("重量").as_deref(), Some("1.8 kg"));
        assert_eq!(fact("适用人数").as_deref(), Some("2 人"));
        assert_eq!(fact("尺码 内帐").as_deref(), Some("长 210 cm, 宽 130 cm"));
        assert_eq!(fact("包装").as_deref(), Some("收纳袋 ×1"));
        assert!(
            product.facts.iter().all(|f| !f.source.contains("nothing")),
            "scripts are not text"
        );
        assert_eq!(
            fact("description").as_deref(),
            Some("轻量双人帐篷，适合三季露营。")
        );
    }

    #[test]
    fn a_plain_page_with_a_select_and_no_structured_data() {
        let page = r#"<html><body><h1>Cloud Hoodie</h1><span class="product-price">$79.00</span>
<label for="size">Size</label><select id="size"><option value="">Choose a size</option><option value="S">S</option><option value="M" data-stock="4">M</option><option value="XL" disabled>XL (sold out)</option></select>
<div class="description"><p>Our warmest hoodie: 420 gsm fleece.</p></div></body></html>"#;
        let mut p = Vec::new();
        let product = parse("products/cloud-hoodie.html", page, &mut p).expect("product");
        assert_eq!(product.price, Some(Decimal::new(79, 0)));
        assert_eq!(product.currency.as_deref(), Some("USD"));
        assert_eq!(product.option_names, ["Size"]);
        assert_eq!(product.available_in("XL"), Some(false));
        assert_eq!(product.available_in("m"), Some(true));
        assert_eq!(product.variants[1].stock, Some(4));
        assert!(product.description.contains("420 gsm"));
    }

    #[test]
    fn themes_without_tables_debut_selects_product_groups_and_struck_prices() {
        // Utility-CSS grid of label/value divs, a struck-through old price, a title with the
        // site's name, a Debut-style variant select whose sold-out option has no value, and a
        // plain choice select that says nothing about stock.
        let page = r#"<html><head><title>Mug – Shanye</title></head><body>
<div class="product-price"><del>¥59.00</del> <ins>¥39.00</ins></div>
<div class="grid grid-cols-2"><div>Capacity</div><div>350 ml</div><div>Care</div><div>Dishwasher safe</div></div>
<div><p>Colour</p><div><button>Cream</button><button>Blue</button></div></div>
<label for="c">Colour</label><select id="c"><option value="Cream">Cream</option><option value="Mist Blue">Mist Blue</option></select>
<select name="id"><option value="4001" selected>Cream</option><option disabled>Mist Blue - Sold out</option></select>
</body></html>"#;
        let mut p = Vec::new();
        let product = parse("products/mug.html", page, &mut p).expect("product");
        assert_eq!(product.title, "Mug");
        assert_eq!(
            product.price,
            Some(Decimal::new(39, 0)),
            "not the old price"
        );
        let fact = |n: &str| {
            product
                .facts
                .iter()
                .find(|f| f.name == n)
                .map(|f| f.value.as_str())
        };
        assert_eq!(fact("Capacity"), Some("350 ml"));
        assert_eq!(fact("Care"), Some("Dishwasher safe"));
        assert!(
            product.facts.iter().all(|f| f.name != "Colour"),
            "buttons are not a value: {:?}",
            product.facts
        );
        assert_eq!(product.option_names, ["Colour"]);
        assert_eq!(product.available_in("Cream"), Some(true));
        assert_eq!(product.available_in("Mist Blue"), Some(false));

        // A select alone says nothing about stock: unknown, never "in stock".
        let page = r#"<html><body><h1>Plain Tee</h1><select name="size"><option value="S">S</option><option value="M">M</option></select></body></html>"#;
        let product = parse("products/tee.html", page, &mut p).expect("product");
        assert_eq!(product.available_in("M"), None);

        // schema.org ProductGroup with hasVariant (Shopify's current themes).
        let page = r#"<html><head><script type="application/ld+json">{"@context":"https://schema.org","@type":"ProductGroup","name":"Down Coat","hasVariant":[{"@type":"Product","sku":"DC-BLK-M","color":"Black","size":"M","offers":{"@type":"Offer","price":"899","priceCurrency":"CNY","availability":"https://schema.org/InStock"}},{"@type":"Product","sku":"DC-NVY-M","color":"Navy","size":"M","offers":{"@type":"Offer","price":"899","priceCurrency":"CNY","availability":"https://schema.org/OutOfStock"}}]}</script></head><body></body></html>"#;
        let product = parse("products/coat.html", page, &mut p).expect("product");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(product.variants.len(), 2);
        assert_eq!(product.variants[1].sku, "DC-NVY-M");
        assert_eq!(product.variants[1].options, ["Navy", "M"]);
        assert_eq!(product.available_in("Navy"), Some(false));
        assert_eq!(product.price, Some(Decimal::new(899, 0)));
    }

    #[test]
    fn a_page_that_names_no_product_is_a_problem() {
        let mut p = Vec::new();
        assert!(
            parse(
                "products/x.html",
                "<html><body><p>hi</p></body></html>",
                &mut p
            )
            .is_none()
        );
        assert_eq!(p.len(), 1);
        assert_eq!(price_in("价格：1,299.50元"), Some(Decimal::new(129950, 2)));
        assert_eq!(price_in("free"), None);
    }
}
