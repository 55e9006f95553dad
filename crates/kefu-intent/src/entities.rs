//! Entities in Chinese and English text, with their spans (character offsets, end exclusive):
//! order numbers, tracking numbers (SF, JD, YTO, ZTO, STO, EMS, UPS, FedEx, DHL, USPS), phone
//! numbers, e-mail addresses, amounts with currency, dates, quantities of goods (`两瓶`,
//! `3件`, `2 x`, `buy two`; the value is the number) and the product each quantity counts
//! (`product`: the words after it, "两瓶**精华**", "two **glow serums**"; the catalogue turns
//! them into a SKU, see the knowledge service's carts).
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entity {
    /// `order_id`, `tracking_number`, `phone`, `email`, `amount`, `date`, `quantity`,
    /// `product`.
    pub kind: &'static str,
    /// Normalised value (tracking numbers upper-cased, amounts as `59.90 CNY`).
    pub value: String,
    /// Carrier for tracking numbers (`SF`, `UPS`, …), currency for amounts; else empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub start: usize,
    pub end: usize,
}

struct Rule {
    kind: &'static str,
    detail: &'static str,
    re: Regex,
}

fn rule(kind: &'static str, detail: &'static str, re: &str) -> Rule {
    Rule {
        kind,
        detail,
        re: Regex::new(re).expect("valid entity regex"),
    }
}

// Ordered by priority: an earlier rule's match wins over an overlapping later one.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "email",
            "",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        ),
        rule(
            "tracking_number",
            "UPS",
            r"(?i)(?-u:\b)1Z[0-9A-Z]{16}(?-u:\b)",
        ),
        rule("tracking_number", "SF", r"(?i)(?-u:\b)SF\d{12,15}(?-u:\b)"),
        rule(
            "tracking_number",
            "JD",
            r"(?i)(?-u:\b)JD[VX]?[A-Z]?\d{10,16}(?-u:\b)",
        ),
        rule("tracking_number", "YTO", r"(?i)(?-u:\b)YT\d{13,16}(?-u:\b)"),
        rule(
            "tracking_number",
            "ZTO",
            r"(?i)(?-u:\b)ZTO\d{10,15}(?-u:\b)",
        ),
        rule(
            "tracking_number",
            "STO",
            r"(?i)(?-u:\b)STO\d{10,15}(?-u:\b)",
        ),
        rule(
            "tracking_number",
            "DHL",
            r"(?i)(?-u:\b)JJD\d{18,20}(?-u:\b)",
        ),
        rule("tracking_number", "USPS", r"(?-u:\b)9[2-5]\d{20}(?-u:\b)"),
        rule(
            "tracking_number",
            "EMS",
            r"(?i)(?-u:\b)E[A-Z]\d{9}CN(?-u:\b)",
        ),
        rule(
            "tracking_number",
            "USPS",
            r"(?i)(?-u:\b)[A-Z]{2}\d{9}US(?-u:\b)",
        ),
        rule(
            "tracking_number",
            "FEDEX",
            r"(?i)fedex\D{0,24}?(\d{12}|\d{15})(?-u:\b)",
        ),
        rule(
            "tracking_number",
            "DHL",
            r"(?i)dhl\D{0,24}?(\d{10})(?-u:\b)",
        ),
        rule("phone", "", r"(?:\+?86[- ]?)?(?-u:\b)1[3-9]\d{9}(?-u:\b)"),
        rule(
            "phone",
            "",
            r"\+\d{1,3}[- ]?\(?\d{1,4}\)?(?:[- ]?\d{2,4}){2,3}(?-u:\b)",
        ),
        rule(
            "phone",
            "",
            r"\(\d{3}\)\s?\d{3}[-. ]\d{4}(?-u:\b)|(?-u:\b)\d{3}[-.]\d{3}[-.]\d{4}(?-u:\b)",
        ),
        rule(
            "date",
            "",
            r"(?-u:\b)\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?-u:\b)|\d{4}年\d{1,2}月\d{1,2}[日号]?|\d{1,2}月\d{1,2}[日号]",
        ),
        rule(
            "date",
            "",
            r"(?i)(?-u:\b)(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?(?-u:\b)(?:,? \d{4})?",
        ),
        rule(
            "date",
            "",
            r"(?i)(?-u:\b)(?:today|tomorrow|yesterday)(?-u:\b)|今天|明天|昨天|前天|后天",
        ),
        rule(
            "amount",
            "",
            r"(?:HK\$|US\$|[¥￥$€£])\s?\d+(?:,\d{3})*(?:\.\d{1,2})?",
        ),
        rule(
            "amount",
            "",
            r"(?i)\d+(?:\.\d{1,2})?\s?(?:元|块钱|块|rmb|cny|usd|hkd|eur|dollars?|yuan)(?-u:\b)?",
        ),
        rule(
            "order_id",
            "",
            r"(?i)(?:order|订单|單號|单号|订单号)\s*(?:no\.?|number|号|#|:|：)?\s*#?([A-Z0-9-]{6,32})",
        ),
        rule("order_id", "", r"(?-u:\b)\d{8,24}(?-u:\b)"),
        // Quantities of goods: a number and a measure word (两瓶, 3件), or "2 x", "3 pcs",
        // "buy two".
        rule(
            "quantity",
            "",
            r"([0-9]{1,3}|[一二两三四五六七八九十]{1,3})\s?(?:个|件|瓶|支|盒|袋|套|只|双|顶|条|包|罐|台|把|份|张|箱|桶|卷|本|副|对)",
        ),
        rule(
            "quantity",
            "",
            r"(?i)(?-u:\b)([0-9]{1,3})\s?(?:x|×|pcs|pieces|units)(?-u:\b)",
        ),
        rule(
            "quantity",
            "",
            r"(?i)(?-u:\b)(?:buy|get|order|take)\s+([0-9]{1,3}|one|two|three|four|five|six|seven|eight|nine|ten)(?-u:\b)",
        ),
    ]
});

/// A quantity as a number: digits, Chinese numerals up to 99 (两, 十二, 二十五), or English
/// words up to ten.
fn quantity_value(raw: &str) -> Option<u32> {
    if let Ok(n) = raw.parse() {
        return Some(n);
    }
    let words = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    if let Some(i) = words.iter().position(|w| raw.eq_ignore_ascii_case(w)) {
        return Some(i as u32 + 1);
    }
    let digit = |c: char| {
        "一二三四五六七八九"
            .find(c)
            .map(|i| i as u32 / 3 + 1)
            .or((c == '两').then_some(2))
    };
    let chars: Vec<char> = raw.chars().collect();
    match chars.as_slice() {
        [c] if *c == '十' => Some(10),
        [c] => digit(*c),
        ['十', d] => Some(10 + digit(*d)?),
        [t, '十'] => Some(digit(*t)? * 10),
        [t, '十', d] => Some(digit(*t)? * 10 + digit(*d)?),
        _ => None,
    }
}

/// Words that end a product mention.
const PRODUCT_STOPS_ZH: &[&str] = &[
    "和", "跟", "与", "及", "还有", "再", "加", "用", "一共", "总共", "合计", "多少", "要", "的话",
    "吗", "呢", "怎么", "能", "可以", "券", "到手",
];
const PRODUCT_STOPS_EN: &[&str] = &[
    "and", "or", "plus", "with", "for", "what", "how", "in", "at", "to", "please", "do", "does",
    "would", "will", "is", "are", "after", "using", "if",
];

/// The product named right after byte offset `at` (the end of a quantity): Chinese up to a
/// joining or question word, English up to four words before one.
fn product_after(text: &str, at: usize) -> Option<(usize, usize, Entity)> {
    let rest = &text[at..];
    let lead = rest.len() - rest.trim_start().len();
    let start = at + lead;
    let rest = &text[start..];
    // "of the serums" / "x lipstick"
    let rest_l = rest.to_lowercase();
    let skip = ["of the ", "of ", "x ", "× ", "the "]
        .iter()
        .find(|w| rest_l.starts_with(*w))
        .map_or(0, |w| w.len());
    let start = start + skip;
    let rest = &text[start..];
    let mut end = 0;
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        for (n, w) in rest
            .split_inclusive([' ', ',', '?', '.', '!', '，', '？'])
            .enumerate()
        {
            let word = w.trim_end_matches([' ', ',', '?', '.', '!', '，', '？']);
            if n >= 4
                || word.is_empty()
                || !word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '\'')
                || PRODUCT_STOPS_EN.contains(&word.to_lowercase().as_str())
            {
                break;
            }
            end += w.len();
            if w.len() != word.len() && !w.ends_with(' ') {
                end -= w.len() - word.len();
                break;
            }
        }
    } else {
        for (i, c) in rest.char_indices() {
            let here = &rest[i..];
            if !(c.is_alphanumeric() || c == ' ' || c == '-')
                || PRODUCT_STOPS_ZH.iter().any(|w| here.starts_with(w))
                || rest[..i].chars().count() >= 12
            {
                break;
            }
            end = i + c.len_utf8();
        }
    }
    let value = rest[..end].trim_end();
    if value.is_empty() {
        return None;
    }
    let end = start + value.len();
    Some((
        start,
        end,
        Entity {
            kind: "product",
            value: value.to_lowercase(),
            detail: String::new(),
            start: 0,
            end: 0,
        },
    ))
}

fn currency(s: &str) -> &'static str {
    let l = s.to_lowercase();
    if l.contains("hk") {
        "HKD"
    } else if l.contains("us$") || l.contains("usd") || l.contains("dollar") || l.starts_with('$') {
        "USD"
    } else if l.contains('€') || l.contains("eur") {
        "EUR"
    } else if l.contains('£') {
        "GBP"
    } else {
        "CNY"
    }
}

/// All entities in `text`, ordered by position.
pub fn extract(text: &str) -> Vec<Entity> {
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut out: Vec<(usize, usize, Entity)> = Vec::new();
    for r in RULES.iter() {
        for c in r.re.captures_iter(text) {
            // The value is group 1 when the rule has one (context words are not part of it).
            let m = c.get(1).or_else(|| c.get(0)).expect("group 0");
            let (s, e) = (m.start(), m.end());
            if taken.iter().any(|&(a, b)| s < b && a < e) {
                continue;
            }
            let raw = m.as_str();
            let (value, detail) = match r.kind {
                "tracking_number" => (raw.to_uppercase(), r.detail.to_owned()),
                "amount" => {
                    let num: String = raw
                        .chars()
                        .filter(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    let cur = currency(raw);
                    (format!("{num} {cur}"), cur.to_owned())
                }
                "order_id" => (raw.to_uppercase(), String::new()),
                "quantity" => {
                    // Not a duration (2个月, 3个小时, 5个工作日).
                    let after = &text[c.get(0).expect("group 0").end()..];
                    if ["月", "小时", "工作日", "星期", "礼拜", "钟"]
                        .iter()
                        .any(|w| after.starts_with(w))
                    {
                        continue;
                    }
                    match quantity_value(raw) {
                        Some(n) => (n.to_string(), String::new()),
                        None => continue,
                    }
                }
                _ => (raw.to_owned(), String::new()),
            };
            if r.kind == "order_id" && !value.chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            taken.push((s, e));
            out.push((
                s,
                e,
                Entity {
                    kind: r.kind,
                    value,
                    detail,
                    start: 0,
                    end: 0,
                },
            ));
        }
    }
    // The product each quantity counts: the words right after it.
    let products: Vec<(usize, usize, Entity)> = out
        .iter()
        .filter(|(_, _, e)| e.kind == "quantity")
        .filter_map(|(s, e, _)| {
            let end = RULES
                .iter()
                .filter(|r| r.kind == "quantity")
                .filter_map(|r| r.re.find_at(text, *s).filter(|m| m.start() <= *s))
                .map(|m| m.end())
                .max()
                .unwrap_or(*e)
                .max(*e);
            product_after(text, end)
        })
        .filter(|(s, e, _)| !taken.iter().any(|&(a, b)| *s < b && a < *e))
        .collect();
    out.extend(products);
    out.sort_by_key(|(s, _, _)| *s);
    out.into_iter()
        .map(|(s, e, mut ent)| {
            ent.start = text[..s].chars().count();
            ent.end = ent.start + text[s..e].chars().count();
            ent
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &str) -> Vec<(&'static str, String)> {
        extract(t).into_iter().map(|e| (e.kind, e.value)).collect()
    }

    #[test]
    fn quantities_of_goods() {
        let kinds = |t: &str| -> Vec<(&'static str, String)> {
            kinds(t)
                .into_iter()
                .filter(|(k, _)| *k == "quantity")
                .collect()
        };
        assert_eq!(
            kinds("买两瓶精华和一支口红，再来十二包面膜"),
            [
                ("quantity", "2".to_owned()),
                ("quantity", "1".to_owned()),
                ("quantity", "12".to_owned())
            ]
        );
        assert_eq!(
            kinds("if I buy two serums and 3 x lipstick"),
            [("quantity", "2".to_owned()), ("quantity", "3".to_owned())]
        );
        assert!(kinds("保修2个月，3个工作日发货").is_empty(), "durations");
        assert_eq!(kinds("二十五件"), [("quantity", "25".to_owned())]);
        assert_eq!(kinds("两箱湿巾"), [("quantity", "2".to_owned())]);
    }

    #[test]
    fn the_product_each_quantity_counts() {
        let products = |t: &str| -> Vec<String> {
            extract(t)
                .into_iter()
                .filter(|e| e.kind == "product")
                .map(|e| e.value)
                .collect()
        };
        assert_eq!(
            products("买两瓶精华和一支口红用券后多少钱"),
            ["精华", "口红"]
        );
        assert_eq!(products("再来十二包面膜，一共多少"), ["面膜"]);
        assert_eq!(
            products("if I buy 2 glow serums and 3 x Velvet Lipstick, what do I pay?"),
            ["glow serums", "velvet lipstick"]
        );
        assert_eq!(products("buy two of the serums please"), ["serums"]);
        assert_eq!(products("3件 hoodie 多少钱"), ["hoodie"]);
        // Spans point at the words.
        let t = "买两瓶精华";
        let e = extract(t);
        let p = e.iter().find(|e| e.kind == "product").expect("product");
        assert_eq!(
            t.chars()
                .skip(p.start)
                .take(p.end - p.start)
                .collect::<String>(),
            "精华"
        );
        assert!(products("保修2个月").is_empty());
    }

    #[test]
    fn finds_entities_with_spans() {
        let t = "订单 202611110001 的运单 SF1234567890123 退 ¥59.90，电话13812345678";
        let e = extract(t);
        let o = e.iter().find(|e| e.kind == "order_id").expect("order");
        assert_eq!(o.value, "202611110001");
        assert_eq!(
            t.chars()
                .skip(o.start)
                .take(o.end - o.start)
                .collect::<String>(),
            "202611110001"
        );
        assert!(
            e.iter()
                .any(|e| e.kind == "tracking_number" && e.detail == "SF")
        );
        assert!(
            e.iter()
                .any(|e| e.kind == "amount" && e.value == "59.90 CNY")
        );
        assert!(
            e.iter()
                .any(|e| e.kind == "phone" && e.value == "13812345678")
        );
    }

    #[test]
    fn carriers_emails_dates() {
        assert_eq!(
            kinds("UPS 1Z999AA10123456784 please"),
            [("tracking_number", "1Z999AA10123456784".to_string())]
        );
        assert_eq!(extract("EMS EA123456789CN")[0].detail, "EMS");
        assert_eq!(
            extract("my fedex tracking is 123456789012")[0].detail,
            "FEDEX"
        );
        assert_eq!(
            kinds("mail me at li.lei@example.com"),
            [("email", "li.lei@example.com".to_string())]
        );
        assert!(kinds("delivered on 2026-11-11?").contains(&("date", "2026-11-11".to_string())));
        assert!(kinds("11月11日能到吗").contains(&("date", "11月11日".to_string())));
        assert!(kinds("it cost $25.50").contains(&("amount", "25.50 USD".to_string())));
        assert!(kinds("order #A12345678 is late").contains(&("order_id", "A12345678".to_string())));
        assert!(extract("hello there").is_empty());
    }
}
