//! Answers composed only from a shop's knowledge. Each answer quotes or condenses the shop's
//! own passage (an FAQ answer, a product fact, a variant's stock, the catalogue's prices);
//! Kefu adds only connecting words ("in stock", "推荐"). When nothing in the bundle answers
//! the question well enough ([`MIN_CONFIDENCE`]) there is no answer, and the caller hands the
//! customer to a person.
use rust_decimal::Decimal;

use crate::{
    Bundle,
    index::{Index, Passage, mentions, terms},
    product::Product,
    text,
};

/// Below this share of the question's content words found in the passage, Kefu does not
/// answer from it.
pub const MIN_CONFIDENCE: f32 = 0.5;

/// What an answer is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Faq,
    Product,
    Stock,
    Price,
    Recommendation,
    /// Several products match: which one?
    Which,
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    /// `zh` or `en`: the customer's language when the answer is Kefu's wording around the
    /// shop's facts; the passage's when it quotes one.
    pub language: String,
    /// 0–1: how much of the question the passage covers (1 for exact product look-ups).
    pub confidence: f32,
    pub kind: Kind,
    /// What it came from (`faq.md: 退货政策`, `products/tent.html`).
    pub sources: Vec<String>,
}

/// What the customer is told when the shop's knowledge does not answer: no fact, only that a
/// person will.
pub fn handover(language: &str) -> &'static str {
    if language == "zh" {
        "这个问题我需要请同事确认，稍后会有人工客服在这里回复您。"
    } else {
        "I want to get this right, so a colleague will answer you here shortly."
    }
}

/// A bundle ready to answer from.
pub struct Knowledge {
    pub bundle: Bundle,
    pub index: Index,
}

const STOCK_WORDS: &[&str] = &[
    "有货",
    "库存",
    "现货",
    "缺货",
    "有没有",
    "还有",
    "有吗",
    "尺码",
    "码数",
    "颜色",
    "in stock",
    "stock",
    "available",
    "availability",
    "sold out",
    "size",
    "sizes",
    "colour",
    "color",
    "colors",
];
const PRICE_WORDS: &[&str] = &[
    "多少钱",
    "价格",
    "价钱",
    "售价",
    "几块",
    "how much",
    "price",
    "cost",
];
const RECOMMEND_WORDS: &[&str] = &[
    "推荐",
    "哪款",
    "哪个好",
    "适合",
    "建议",
    "recommend",
    "suggest",
    "which",
    "best",
    "warmest",
    "lightest",
    "cheapest",
];
const WARM_WORDS: &[&str] = &["保暖", "暖和", "warm", "warmest"];
const LIGHT_WORDS: &[&str] = &["最轻", "轻便", "轻量", "light", "lightest"];

fn any(question: &str, words: &[&str]) -> bool {
    let q = text::normalise(question);
    words.iter().any(|w| q.contains(w))
}

/// An amount in the product's currency (none named: the bare number, never a guessed one).
fn money(p: &Product, amount: Decimal) -> String {
    let n = amount.normalize().to_string();
    match p.currency.as_deref() {
        Some("CNY") => format!("¥{n}"),
        Some("USD") => format!("${n}"),
        Some("EUR") => format!("€{n}"),
        Some(c) => format!("{n} {c}"),
        None => n,
    }
}

/// A budget in the question: "1000以内", "不超过800元", "under $80", "below 100".
fn budget(question: &str) -> Option<Decimal> {
    let q = text::normalise(question);
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let num: String = chars[start..i].iter().collect();
            let before: String = chars[start.saturating_sub(12)..start].iter().collect();
            let after: String = chars[i..(i + 6).min(chars.len())].iter().collect();
            let capped = ["以内", "以下", "之内", "内"]
                .iter()
                .any(|w| after.trim_start_matches(['元', '块', ' ']).starts_with(w))
                || [
                    "不超过",
                    "预算",
                    "under",
                    "below",
                    "less than",
                    "up to",
                    "within",
                    "max",
                ]
                .iter()
                .any(|w| before.trim_end_matches(['$', '¥', ' ']).ends_with(w));
            if capped && let Ok(d) = num.trim_end_matches('.').parse::<Decimal>() {
                return Some(d);
            }
        }
        i += 1;
    }
    None
}

/// The first number in a fact's value (`420 gsm` → 420, `1.8 kg` → 1.8).
fn number_in(s: &str) -> Option<Decimal> {
    text::numbers(s).first()?.parse().ok()
}

impl Knowledge {
    pub fn new(bundle: Bundle) -> tantivy::Result<Self> {
        let index = Index::build(&bundle)?;
        Ok(Self { bundle, index })
    }

    /// Products the question names, best first (a share of the title's words ≥ ½, or the
    /// whole title).
    fn mentioned(&self, question: &str) -> Vec<(usize, f32)> {
        let q: std::collections::HashSet<String> = terms(question).into_iter().collect();
        let mut out: Vec<(usize, f32)> = self
            .bundle
            .products
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                if mentions(question, &p.title) || mentions(question, &p.id.replace('-', " ")) {
                    return Some((i, 1.0 + p.title.chars().count() as f32 / 100.0));
                }
                let t = terms(&p.title);
                if t.is_empty() {
                    return None;
                }
                let share = t.iter().filter(|x| q.contains(*x)).count() as f32 / t.len() as f32;
                (share >= 0.5 && t.len() > 1 || share >= 0.99).then_some((i, share))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// The shop's answer to `question`, in `language` (`zh`/`en`) where Kefu words it.
    pub fn answer(&self, question: &str, language: &str) -> Option<Answer> {
        let zh = language == "zh" || (language.is_empty() && text::language(question) == "zh");
        let lang = if zh { "zh" } else { "en" };
        let recommend = any(question, RECOMMEND_WORDS);
        let mentioned = self.mentioned(question);
        if let Some(&(best, strength)) = mentioned.first() {
            let ties: Vec<usize> = mentioned
                .iter()
                .filter(|(_, s)| (s - strength).abs() < 1e-6)
                .map(|(i, _)| *i)
                .collect();
            if ties.len() > 1 && !recommend {
                let names: Vec<String> = ties
                    .iter()
                    .map(|i| self.bundle.products[*i].title.clone())
                    .collect();
                return Some(Answer {
                    text: if zh {
                        format!("您问的是哪一款：{}？", names.join("、"))
                    } else {
                        format!("Which one do you mean: {}?", names.join(", "))
                    },
                    language: lang.into(),
                    confidence: 1.0,
                    kind: Kind::Which,
                    sources: ties
                        .iter()
                        .map(|i| self.bundle.products[*i].source.clone())
                        .collect(),
                });
            }
            if !recommend {
                return Some(self.about_product(best, question, zh));
            }
        }
        if recommend && let Some(a) = self.recommend(question, zh) {
            return Some(a);
        }
        self.faq_answer(question, zh)
    }

    fn about_product(&self, i: usize, question: &str, zh: bool) -> Answer {
        let p = &self.bundle.products[i];
        let lang = if zh { "zh" } else { "en" };
        let source = vec![p.source.clone()];
        // Variant values named in the question (grey, M): the stock of the variants that
        // have all of them.
        let q = text::normalise(question);
        let mut named: Vec<String> = Vec::new();
        for v in p.variants.iter().flat_map(|v| v.options.iter()) {
            let n = text::normalise(v);
            // Short values (S, M, XL) must stand alone, not inside a word.
            let said = if n.chars().all(|c| c.is_ascii_alphanumeric()) {
                q.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == n)
            } else {
                q.contains(&n)
            };
            if said && !named.contains(&n) {
                named.push(n);
            }
        }
        let matching: Vec<&crate::product::Variant> = p
            .variants
            .iter()
            .filter(|v| {
                let opts: Vec<String> = v.options.iter().map(|o| text::normalise(o)).collect();
                named.iter().all(|n| opts.contains(n))
            })
            .collect();
        let known: Vec<bool> = matching
            .iter()
            .filter_map(|v| v.available.or(v.stock.map(|n| n > 0)))
            .collect();
        if !named.is_empty() && !known.is_empty() {
            let available = known.iter().any(|a| *a);
            let stock: i64 = matching
                .iter()
                .filter_map(|v| v.stock)
                .filter(|n| *n > 0)
                .sum();
            let count = (available && stock > 0).then_some(stock);
            // The values as the shop writes them.
            let value = matching[0]
                .options
                .iter()
                .filter(|o| named.contains(&text::normalise(o)))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let text = match (zh, available, count) {
                (true, true, Some(n)) => format!("{} {value}：有货（库存 {n} 件）。", p.title),
                (true, true, None) => format!("{} {value}：有货。", p.title),
                (true, false, _) => format!("{} {value}：暂时缺货。", p.title),
                (false, true, Some(n)) => format!("{} in {value}: in stock ({n} left).", p.title),
                (false, true, None) => format!("{} in {value}: in stock.", p.title),
                (false, false, _) => format!("{} in {value}: currently sold out.", p.title),
            };
            return Answer {
                text: self.with_link(text, p, zh),
                language: lang.into(),
                confidence: 1.0,
                kind: Kind::Stock,
                sources: source,
            };
        }
        if any(question, STOCK_WORDS) && !p.variants.is_empty() {
            let mut avail: Vec<String> = Vec::new();
            let mut out: Vec<String> = Vec::new();
            for v in &p.variants {
                let name = v.options.join(" / ");
                match v.available.or(v.stock.map(|n| n > 0)) {
                    Some(true) if !avail.contains(&name) => avail.push(name),
                    Some(false) if !out.contains(&name) => out.push(name),
                    _ => {}
                }
            }
            if !avail.is_empty() || !out.is_empty() {
                let text = if zh {
                    let mut t = format!(
                        "{} 有货：{}。",
                        p.title,
                        if avail.is_empty() {
                            "暂无".into()
                        } else {
                            avail.join("、")
                        }
                    );
                    if !out.is_empty() {
                        t.push_str(&format!("缺货：{}。", out.join("、")));
                    }
                    t
                } else {
                    let mut t = format!(
                        "{} in stock: {}.",
                        p.title,
                        if avail.is_empty() {
                            "none right now".into()
                        } else {
                            avail.join(", ")
                        }
                    );
                    if !out.is_empty() {
                        t.push_str(&format!(" Sold out: {}.", out.join(", ")));
                    }
                    t
                };
                return Answer {
                    text: self.with_link(text, p, zh),
                    language: lang.into(),
                    confidence: 1.0,
                    kind: Kind::Stock,
                    sources: source,
                };
            }
        }
        if any(question, PRICE_WORDS)
            && let Some(price) = p.price
        {
            let from = p
                .variants
                .iter()
                .filter_map(|v| v.price)
                .any(|x| x != price);
            let text = match (zh, from) {
                (true, true) => format!("{} 的价格：{} 起。", p.title, money(p, price)),
                (true, false) => format!("{} 的价格：{}。", p.title, money(p, price)),
                (false, true) => format!("{} costs from {}.", p.title, money(p, price)),
                (false, false) => format!("{} costs {}.", p.title, money(p, price)),
            };
            return Answer {
                text: self.with_link(text, p, zh),
                language: lang.into(),
                confidence: 1.0,
                kind: Kind::Price,
                sources: source,
            };
        }
        // A fact the question asks about, beyond the product's name.
        let title_terms: std::collections::HashSet<String> = terms(&p.title).into_iter().collect();
        let rest: Vec<String> = terms(question)
            .into_iter()
            .filter(|t| !title_terms.contains(t))
            .collect();
        if !rest.is_empty() {
            let hits = self.index.search(
                &rest.join(" "),
                3,
                |x| matches!(x, Passage::Fact(pi, _) if pi == i),
            );
            if let Some(h) = hits.first().filter(|h| h.coverage >= MIN_CONFIDENCE)
                && let Passage::Fact(_, j) = h.passage
            {
                let f = &p.facts[j];
                let text = if f.name.starts_with("description") {
                    format!("{}：{}", p.title, f.source)
                } else {
                    format!("{} — {}", p.title, f.source)
                };
                return Answer {
                    text,
                    language: text::language(&f.source).into(),
                    confidence: h.coverage,
                    kind: Kind::Product,
                    sources: source,
                };
            }
        }
        // The product in short: price and its first facts.
        let mut parts = Vec::new();
        if let Some(price) = p.price {
            parts.push(if zh {
                format!("价格 {}", money(p, price))
            } else {
                format!("price {}", money(p, price))
            });
        }
        parts.extend(
            p.facts
                .iter()
                .filter(|f| !f.name.starts_with("description"))
                .take(3)
                .map(|f| f.source.clone()),
        );
        let text = if parts.is_empty() {
            p.description
                .lines()
                .next()
                .map(|d| format!("{}：{d}", p.title))
                .unwrap_or_else(|| p.title.clone())
        } else if zh {
            format!("{}：{}。", p.title, parts.join("；"))
        } else {
            format!("{}: {}.", p.title, parts.join("; "))
        };
        Answer {
            text: self.with_link(text, p, zh),
            language: lang.into(),
            confidence: 1.0,
            kind: Kind::Product,
            sources: source,
        }
    }

    fn with_link(&self, text: String, p: &Product, zh: bool) -> String {
        match &p.url {
            Some(u) if zh => format!("{text} 下单：{u}"),
            Some(u) => format!("{text} Order here: {u}"),
            None => text,
        }
    }

    fn recommend(&self, question: &str, zh: bool) -> Option<Answer> {
        let cap = budget(question);
        let mut q = question.to_owned();
        for w in RECOMMEND_WORDS.iter().chain(WARM_WORDS).chain(LIGHT_WORDS) {
            q = q.replace(w, " ");
        }
        let hits = self.index.search(&q, 50, |p| {
            matches!(p, Passage::Product(_) | Passage::Fact(..))
        });
        let mut seen = Vec::new();
        let mut candidates: Vec<(usize, f32)> = Vec::new();
        for h in &hits {
            let i = match h.passage {
                Passage::Product(i) | Passage::Fact(i, _) => i,
                Passage::Faq(_) => continue,
            };
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let p = &self.bundle.products[i];
            if let Some(cap) = cap
                && p.price.is_none_or(|price| price > cap)
            {
                continue;
            }
            candidates.push((i, h.coverage));
        }
        // The products of the kind asked for: those sharing the best coverage.
        let top = candidates.iter().map(|c| c.1).fold(0.0f32, f32::max);
        if top <= 0.0 {
            return None;
        }
        candidates.retain(|c| c.1 >= top - 1e-6);
        let value = |i: usize, words: &[&str]| -> Option<Decimal> {
            self.bundle.products[i]
                .facts
                .iter()
                .find(|f| {
                    words
                        .iter()
                        .any(|w| text::normalise(&format!("{} {}", f.name, f.value)).contains(w))
                })
                .and_then(|f| number_in(&f.value))
        };
        let warm_keys = ["保暖", "充绒", "克重", "gsm", "fill", "warmth", "温标"];
        let weight_keys = ["重量", "weight", "克", "kg", "g"];
        if any(question, WARM_WORDS) {
            candidates
                .sort_by_key(|c| std::cmp::Reverse(value(c.0, &warm_keys).unwrap_or(Decimal::MIN)));
        } else if any(question, LIGHT_WORDS) {
            candidates.sort_by_key(|c| value(c.0, &weight_keys).unwrap_or(Decimal::MAX));
        } else {
            candidates.sort_by_key(|c| self.bundle.products[c.0].price.unwrap_or(Decimal::MAX));
        }
        let picks: Vec<&Product> = candidates
            .iter()
            .take(3)
            .map(|c| &self.bundle.products[c.0])
            .collect();
        let first = picks.first()?;
        let line = |p: &Product| -> String {
            let mut bits = Vec::new();
            if let Some(price) = p.price {
                bits.push(money(p, price));
            }
            if let Some(f) = p.facts.iter().find(|f| !f.name.starts_with("description")) {
                bits.push(f.source.clone());
            }
            if bits.is_empty() {
                p.title.clone()
            } else if zh {
                format!("{}（{}）", p.title, bits.join("，"))
            } else {
                format!("{} ({})", p.title, bits.join(", "))
            }
        };
        let mut text = if zh {
            format!("推荐：{}", line(first))
        } else {
            format!("We recommend {}", line(first))
        };
        if picks.len() > 1 {
            let others: Vec<String> = picks[1..].iter().map(|p| line(p)).collect();
            text.push_str(&if zh {
                format!("；也可以看看 {}", others.join("、"))
            } else {
                format!("; also see {}", others.join(", "))
            });
        }
        text.push(if zh { '。' } else { '.' });
        Some(Answer {
            text: self.with_link(text, first, zh),
            language: if zh { "zh" } else { "en" }.into(),
            confidence: top,
            kind: Kind::Recommendation,
            sources: picks.iter().map(|p| p.source.clone()).collect(),
        })
    }

    fn faq_answer(&self, question: &str, zh: bool) -> Option<Answer> {
        let hits = self
            .index
            .search(question, 5, |p| matches!(p, Passage::Faq(_)));
        let best = hits.iter().map(|h| h.coverage).fold(0.0f32, f32::max);
        if best < MIN_CONFIDENCE {
            return None;
        }
        // Among the best-covering entries, the customer's language first, then the score.
        let want = if zh { "zh" } else { "en" };
        let chosen = hits
            .iter()
            .filter(|h| h.coverage >= best - 0.15)
            .max_by(|a, b| {
                let la =
                    matches!(a.passage, Passage::Faq(i) if self.bundle.faq[i].language == want);
                let lb =
                    matches!(b.passage, Passage::Faq(i) if self.bundle.faq[i].language == want);
                la.cmp(&lb).then(a.score.total_cmp(&b.score))
            })?;
        let Passage::Faq(i) = chosen.passage else {
            return None;
        };
        let f = &self.bundle.faq[i];
        Some(Answer {
            text: f.answer.clone(),
            language: f.language.clone(),
            confidence: chosen.coverage,
            kind: Kind::Faq,
            sources: vec![format!("faq.md: {}", f.question)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Knowledge {
        let jsonl = r#"{"title":"Cloud Hoodie","handle":"cloud-hoodie","product_type":"Hoodie","body_html":"<ul><li>Fabric weight: 420 gsm fleece</li><li>Material: 80% cotton</li></ul>","options":[{"name":"Color"},{"name":"Size"}],"variants":[{"sku":"CH-GR-M","price":"79.00","inventory_quantity":3,"option1":"Grey","option2":"M"},{"sku":"CH-GR-XL","price":"79.00","inventory_quantity":0,"option1":"Grey","option2":"XL"}]}
{"title":"Breeze Hoodie","handle":"breeze-hoodie","product_type":"Hoodie","body_html":"<ul><li>Fabric weight: 280 gsm</li></ul>","variants":[{"sku":"BH-M","price":"59.00","inventory_quantity":9,"option1":"M"}]}
{"title":"Summit Parka","handle":"summit-parka","product_type":"Jacket","body_html":"<ul><li>Fill: 600 fill down</li></ul>","variants":[{"sku":"SP-M","price":"189.00","inventory_quantity":2,"option1":"M"}]}"#;
        let b = Bundle::from_files(&[
            ("faq.md".into(), "## 退货政策\n\n收货后15天内可无理由退货，运费由买家承担。\n\n## Return policy\n\nReturns are accepted within 15 days of delivery.\n\n## 发货时间\n\n付款后48小时内发货。\n".as_bytes().to_vec()),
            ("products/hoodies.jsonl".into(), jsonl.as_bytes().to_vec()),
            ("promotions.yaml".into(), b"currency: USD\n".to_vec()),
        ])
        .expect("bundle");
        Knowledge::new(b).expect("knowledge")
    }

    #[test]
    fn policies_come_from_the_faq_in_the_customers_language() {
        let k = shop();
        let a = k
            .answer("退货政策是什么？可以退货吗", "zh")
            .expect("answer");
        assert_eq!(
            (a.kind, a.text.as_str()),
            (Kind::Faq, "收货后15天内可无理由退货，运费由买家承担。")
        );
        let a = k
            .answer("what is your return policy?", "en")
            .expect("answer");
        assert!(
            a.text.starts_with("Returns are accepted within 15 days"),
            "{}",
            a.text
        );
        assert!(
            k.answer("do you sell gift cards for weddings?", "en")
                .is_none(),
            "no invented answer"
        );
    }

    #[test]
    fn stock_price_and_facts_of_a_named_product() {
        let k = shop();
        let a = k
            .answer("is the grey Cloud Hoodie in stock in M", "en")
            .expect("answer");
        assert_eq!(a.kind, Kind::Stock);
        assert!(
            a.text.contains("in Grey M: in stock (3 left)"),
            "{}",
            a.text
        );
        let a = k.answer("Cloud Hoodie 有XL吗", "zh").expect("answer");
        assert!(a.text.contains("XL：暂时缺货"), "{}", a.text);
        let a = k
            .answer("how much is the Breeze Hoodie?", "en")
            .expect("answer");
        assert!(
            a.text.contains("$59") && a.text.contains("/products/breeze-hoodie"),
            "{}",
            a.text
        );
        let a = k
            .answer("what material is the Cloud Hoodie?", "en")
            .expect("answer");
        assert!(a.text.contains("80% cotton"), "{}", a.text);
        let a = k.answer("tell me about the hoodie", "en").expect("answer");
        assert_eq!(a.kind, Kind::Which, "{}", a.text);
    }

    #[test]
    fn recommendations_use_the_catalogues_attributes_and_prices() {
        let k = shop();
        let a = k
            .answer("which hoodie is the warmest under $80", "en")
            .expect("answer");
        assert_eq!(a.kind, Kind::Recommendation);
        assert!(
            a.text.starts_with("We recommend Cloud Hoodie"),
            "{}",
            a.text
        );
        assert!(
            !a.text.contains("Summit Parka"),
            "a parka is not a hoodie, and over budget: {}",
            a.text
        );
        let a = k
            .answer("recommend a hoodie under $70", "en")
            .expect("answer");
        assert!(
            a.text.starts_with("We recommend Breeze Hoodie"),
            "{}",
            a.text
        );
    }

    #[test]
    fn every_number_in_an_answer_is_the_shops() {
        let k = shop();
        let mut known: Vec<String> = Vec::new();
        for f in &k.bundle.faq {
            known.extend(text::numbers(&f.answer));
        }
        for p in &k.bundle.products {
            for f in &p.facts {
                known.extend(text::numbers(&f.source));
            }
            for v in &p.variants {
                known.extend(v.price.map(|x| x.normalize().to_string()));
                known.extend(v.stock.map(|x| x.to_string()));
            }
        }
        for q in [
            "退货政策是什么",
            "return policy",
            "发货时间",
            "is the grey Cloud Hoodie in stock in M",
            "how much is the Breeze Hoodie?",
            "which hoodie is the warmest under $80",
            "Cloud Hoodie material",
        ] {
            let a = k.answer(q, "").expect(q);
            for n in text::numbers(&a.text) {
                assert!(
                    known.contains(&n),
                    "{q}: {n} in \"{}\" is not the shop's",
                    a.text
                );
            }
        }
    }

    #[test]
    fn budgets_are_read() {
        assert_eq!(
            budget("两个人露营1000以内推荐哪款帐篷"),
            Some(Decimal::new(1000, 0))
        );
        assert_eq!(budget("不超过800元的"), Some(Decimal::new(800, 0)));
        assert_eq!(budget("warmest under $80"), Some(Decimal::new(80, 0)));
        assert_eq!(budget("订单20261111001"), None);
    }
}
