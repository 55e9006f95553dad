//! Carts in customers' messages ("买两瓶精华和一支口红用券后多少钱", "if I buy 2 Ridge
//! hoodies and the camp lantern what do I pay"): the products named, their quantities
//! (digits, Chinese numerals, English number words), the variant when it matters, priced with
//! the shop's promotions ([`crate::pricing`]) and answered with the amount and its steps.
use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;

use crate::{
    answer::{Answer, Kind, Knowledge},
    pricing::{self, Quote, Reason},
    text,
};

/// Words that ask for a total rather than a list price.
const TOTAL_WORDS: &[&str] = &[
    "一共",
    "总共",
    "合计",
    "到手",
    "用券",
    "券后",
    "满减后",
    "优惠后",
    "叠加后",
    "算下来",
    "in total",
    "total",
    "altogether",
    "after discount",
    "with the discount",
    "with coupon",
    "what do i pay",
    "what would i pay",
    "how much would i pay",
    "how much do i pay",
];

const ZH_DIGITS: &[(char, u32)] = &[
    ('一', 1),
    ('两', 2),
    ('二', 2),
    ('三', 3),
    ('四', 4),
    ('五', 5),
    ('六', 6),
    ('七', 7),
    ('八', 8),
    ('九', 9),
    ('十', 10),
];
const EN_NUMBERS: &[(&str, u32)] = &[
    ("one", 1),
    ("a", 1),
    ("an", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
];
/// Chinese measure words between a number and a product (两**瓶**精华).
const MEASURE: &str = "个件瓶支盒袋套只双顶条包罐台把份张箱桶卷本副对";

/// The quantity written just before byte offset `at` of `q` (normalised), if any.
pub fn quantity_before(q: &str, at: usize) -> Option<u32> {
    let before: Vec<char> = q[..at].chars().collect();
    let mut end = before.len();
    // "2 x ", "2× ", "两瓶", "2件" …
    while end > 0 && (before[end - 1] == ' ' || MEASURE.contains(before[end - 1])) {
        end -= 1;
    }
    while end > 0 && matches!(before[end - 1], 'x' | '×' | '*') {
        end -= 1;
        while end > 0 && before[end - 1] == ' ' {
            end -= 1;
        }
    }
    if end == 0 {
        return None;
    }
    let c = before[end - 1];
    if c.is_ascii_digit() {
        let mut start = end - 1;
        while start > 0 && before[start - 1].is_ascii_digit() {
            start -= 1;
        }
        return before[start..end].iter().collect::<String>().parse().ok();
    }
    if let Some((_, n)) = ZH_DIGITS.iter().find(|(d, _)| *d == c) {
        // 十二 / 二十: enough for carts.
        if end >= 2 && c != '十' && before[end - 2] == '十' {
            return Some(10 + n);
        }
        return Some(*n);
    }
    let word: String = before[..end]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    EN_NUMBERS.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// A product named in a cart question: (product index, where, how many).
#[derive(Debug, PartialEq)]
pub struct Mention {
    pub product: usize,
    pub at: usize,
    pub quantity: u32,
}

impl Knowledge {
    /// A cart question priced at `at`: the answer, or `None` when the question is not a cart.
    pub fn cart_answer(
        &self,
        question: &str,
        zh: bool,
        at: DateTime<FixedOffset>,
    ) -> Option<Answer> {
        let q = text::normalise(question);
        // Cheap first: a cart question asks for a total or a price.
        let more = crate::deals::MORE_WORDS.iter().any(|w| q.contains(w));
        let totals = more || TOTAL_WORDS.iter().any(|w| q.contains(w));
        let deals = crate::deals::ACTIVE_WORDS.iter().any(|w| q.contains(w));
        if !totals && !deals && !any_price_word(&q) {
            return None;
        }
        let mentions = self.mentions_in(&q);
        if mentions.is_empty() {
            // "还差多少能满减" on an amount, "现在有什么活动".
            return self.deals_answer(question, zh, at);
        }
        let several = mentions.len() > 1 || mentions.iter().any(|m| m.quantity > 1);
        if !(totals || (several && any_price_word(&q))) {
            return None;
        }
        // One SKU per product: the variant named, else any when they cost the same and share
        // their promotions; else ask which.
        let mut cart: Vec<(String, u32)> = Vec::new();
        for m in &mentions {
            let p = &self.bundle.products[m.product];
            let named: Vec<&crate::product::Variant> = p
                .variants
                .iter()
                .filter(|v| v.options.iter().any(|o| crate::answer::variant_said(&q, o)))
                .collect();
            let pool: Vec<&crate::product::Variant> = if named.is_empty() {
                p.variants.iter().collect()
            } else {
                named
            };
            let sku = if pool.is_empty() {
                p.id.clone()
            } else {
                let promoted = |sku: &str| {
                    self.bundle.promotions.as_ref().is_some_and(|f| {
                        f.promotions.iter().any(|x| {
                            x.skus.iter().any(|s| s == sku) || x.sku.as_deref() == Some(sku)
                        })
                    })
                };
                let first = pool[0];
                let alike = pool.iter().all(|v| {
                    v.price.or(p.price) == first.price.or(p.price)
                        && promoted(&v.sku) == promoted(&first.sku)
                });
                if !alike {
                    let options: Vec<String> = pool.iter().map(|v| v.options.join(" ")).collect();
                    return Some(Answer {
                        text: if zh {
                            format!(
                                "{} 的不同款式价格不同，您要哪一款：{}？",
                                p.title,
                                options.join("、")
                            )
                        } else {
                            format!(
                                "{} comes at different prices: which one do you mean — {}?",
                                p.title,
                                options.join(", ")
                            )
                        },
                        language: if zh { "zh" } else { "en" }.into(),
                        confidence: 1.0,
                        kind: Kind::Which,
                        sources: vec![p.source.clone()],
                    });
                }
                // The first one in stock, else the first.
                pool.iter()
                    .find(|v| v.available.or(v.stock.map(|n| n > 0)) != Some(false))
                    .unwrap_or(&first)
                    .sku
                    .clone()
            };
            cart.push((sku, m.quantity));
        }
        let held = self.held_coupons(&q);
        let (quote, lines) = pricing::quote_cart(self, &cart, &held, at).ok()?;
        let mut text = describe(&quote, &lines, zh);
        if more && quote.next_threshold.is_none() {
            text.push_str(no_further_threshold(zh));
        }
        let used: Vec<&str> = quote
            .applied
            .iter()
            .filter(|a| held.contains(&a.id))
            .map(|a| a.name.as_str())
            .collect();
        if !used.is_empty() {
            text.push_str(&if zh {
                format!("（已按您持有的{}计算。）", used.join("、"))
            } else {
                format!(" (With your {}.)", used.join(", "))
            });
        }
        Some(Answer {
            text,
            language: if zh { "zh" } else { "en" }.into(),
            confidence: 1.0,
            kind: Kind::Price,
            sources: mentions
                .iter()
                .map(|m| self.bundle.products[m.product].source.clone())
                .chain(std::iter::once("promotions.yaml".to_owned()))
                .collect(),
        })
    }

    /// The products a question names, each once, in the order written, with the quantity
    /// before each (1 when none).
    pub fn mentions_in(&self, q: &str) -> Vec<Mention> {
        let mut out: Vec<Mention> = Vec::new();
        for i in 0..self.bundle.products.len() {
            let (title, id) = self.whole_name(i);
            let at = [title, id]
                .into_iter()
                .filter(|t| !t.is_empty())
                .filter_map(|t| q.find(t))
                .chain(
                    self.distinctive_terms(i)
                        .iter()
                        .filter_map(|t| q.find(t.as_str())),
                )
                .min();
            if let Some(at) = at {
                out.push(Mention {
                    product: i,
                    at,
                    quantity: quantity_before(q, at).unwrap_or(1).clamp(1, 999),
                });
            }
        }
        out.sort_by_key(|m| m.at);
        out
    }
}

fn any_price_word(q: &str) -> bool {
    crate::answer::PRICE_WORDS.iter().any(|w| q.contains(w))
}

/// The quote in words: the lines, each promotion and what it took off, the total, the
/// presale terms, the next threshold, the coupons assumed claimed.
pub fn describe(q: &Quote, lines: &[(pricing::Line, String)], zh: bool) -> String {
    let m = |d: Decimal| text::money(&q.currency, d);
    let items: Vec<String> = lines
        .iter()
        .map(|(l, title)| {
            if zh {
                format!("{title} ×{}（{}）", l.quantity, m(l.unit_price))
            } else {
                format!("{} × {title} ({})", l.quantity, m(l.unit_price))
            }
        })
        .collect();
    let steps: Vec<String> = q
        .applied
        .iter()
        .map(|a| format!("{} −{}", a.name, m(a.off)))
        .collect();
    let mut t = if zh {
        format!(
            "按店铺现在的优惠计算：{}，原价 {}",
            items.join("、"),
            m(q.subtotal)
        )
    } else {
        format!(
            "With the shop's current promotions: {}, {} before discounts",
            items.join(", "),
            m(q.subtotal)
        )
    };
    if !steps.is_empty() {
        t.push_str(if zh { "；" } else { "; " });
        t.push_str(&steps.join(if zh { "；" } else { "; " }));
    }
    t.push_str(&if zh {
        format!("；合计 {}。", m(q.total))
    } else {
        format!("; you pay {} in all.", m(q.total))
    });
    for p in &q.presales {
        let window = match (p.balance_starts, p.balance_ends) {
            (Some(s), Some(e)) => format!(
                "{} – {}",
                s.format("%Y-%m-%d %H:%M"),
                e.format("%Y-%m-%d %H:%M")
            ),
            _ => String::new(),
        };
        t.push_str(&if zh {
            format!(
                "其中定金 {} 现在付{}，尾款 {}{}。",
                m(p.deposit),
                if p.deposit_refundable {
                    ""
                } else {
                    "（定金不退）"
                },
                m(q.balance),
                if window.is_empty() {
                    String::new()
                } else {
                    format!(" 在 {window} 付")
                }
            )
        } else {
            format!(
                " Of that, the deposit of {} is paid now{}, and the balance of {}{}.",
                m(p.deposit),
                if p.deposit_refundable {
                    ""
                } else {
                    " (not refundable)"
                },
                m(q.balance),
                if window.is_empty() {
                    String::new()
                } else {
                    format!(" between {window}")
                }
            )
        });
    }
    if let Some(n) = next_threshold(q, zh) {
        t.push_str(&n);
    }
    let short: Vec<String> = q
        .rejected
        .iter()
        .filter_map(|r| match &r.reason {
            Reason::Short { threshold, short }
                if r.id != q.next_threshold.as_ref().map_or("", |n| n.id.as_str()) =>
            {
                Some(if zh {
                    format!("{}（差 {} 满 {}）", r.name, m(*short), m(*threshold))
                } else {
                    format!("{} ({} short of {})", r.name, m(*short), m(*threshold))
                })
            }
            _ => None,
        })
        .collect();
    if !short.is_empty() {
        t.push_str(&if zh {
            format!("未达门槛：{}。", short.join("、"))
        } else {
            format!(" Not reached: {}.", short.join(", "))
        });
    }
    t.push_str(assumed_claimed(q, zh));
    t
}

/// "再买 ¥50 可再减 ¥30。": the nearest threshold within reach, if any.
pub(crate) fn next_threshold(q: &Quote, zh: bool) -> Option<String> {
    let m = |d: Decimal| text::money(&q.currency, d);
    q.next_threshold.as_ref().map(|n| {
        if zh {
            format!("再买 {} 可再减 {}。", m(n.needed), m(n.off))
        } else {
            format!(" Add {} more to take {} more off.", m(n.needed), m(n.off))
        }
    })
}

/// Said when the customer asks how much more and no threshold is left to reach.
pub(crate) fn no_further_threshold(zh: bool) -> &'static str {
    if zh {
        "已经用上了所有能用的满减。"
    } else {
        " No further threshold applies."
    }
}

/// That the quote counted coupons anyone may claim (empty when it did not).
pub(crate) fn assumed_claimed(q: &Quote, zh: bool) -> &'static str {
    match (q.assumed_claimed.is_empty(), zh) {
        (true, _) => "",
        (false, true) => "（按已领取店铺可领的优惠券计算。）",
        (false, false) => " (This assumes you claim the shop's coupons on offer.)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bundle;

    fn shop() -> Knowledge {
        let jsonl = r#"{"title":"Glow Serum 精华液","handle":"glow-serum","variants":[{"sku":"SERUM-50","price":"600.00","inventory_quantity":9}]}
{"title":"Velvet Lipstick 丝绒口红","handle":"velvet-lipstick","options":[{"name":"Shade"}],"variants":[{"sku":"LIP-RED","price":"200.00","inventory_quantity":3,"option1":"Red"},{"sku":"LIP-NUDE","price":"200.00","inventory_quantity":0,"option1":"Nude"}]}
{"title":"Night Cream 晚霜","handle":"night-cream","options":[{"name":"Size"}],"variants":[{"sku":"CREAM-30","price":"180.00","inventory_quantity":3,"option1":"30ml"},{"sku":"CREAM-50","price":"260.00","inventory_quantity":3,"option1":"50ml"}]}"#;
        let promotions = "currency: CNY
promotions:
  - {id: cross, name: 跨店满减 每满300减50, kind: threshold, scope: cross_store, every: 300, off: 50, starts: 2026-11-01T20:00:00+08:00, ends: 2026-11-11T23:59:59+08:00}
  - {id: coupon, name: 店铺券 满199减20, kind: coupon, issuer: shop, min_spend: 199, off: 20}
  - {id: lip, name: 口红9折, kind: item_discount, skus: [LIP-RED, LIP-NUDE], percent_off: 10}
  - {id: pre, name: 精华预售, kind: presale, sku: SERUM-50, deposit: 50, deposit_value: 150, starts: 2026-10-20T20:00:00+08:00, ends: 2026-11-10T23:59:59+08:00, balance_starts: 2026-11-11T00:00:00+08:00, balance_ends: 2026-11-11T23:59:59+08:00}
";
        let b = Bundle::from_files(&[
            ("products/c.jsonl".into(), jsonl.as_bytes().to_vec()),
            ("promotions.yaml".into(), promotions.as_bytes().to_vec()),
        ])
        .expect("bundle");
        Knowledge::new(b).expect("knowledge")
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("time")
    }

    #[test]
    fn quantities_in_chinese_and_english() {
        let q = |s: &str, w: &str| quantity_before(s, s.find(w).expect("word"));
        assert_eq!(q("买两瓶精华", "精华"), Some(2));
        assert_eq!(q("买十二支口红", "口红"), Some(12));
        assert_eq!(q("3件 hoodie", "hoodie"), Some(3));
        assert_eq!(q("if i buy 2 x serum", "serum"), Some(2));
        assert_eq!(q("buy two serums", "serums"), Some(2));
        assert_eq!(q("and the lipstick", "lipstick"), None);
        assert_eq!(q("口红", "口红"), None);
        assert_eq!(q("再加两箱湿巾", "湿巾"), Some(2));
    }

    #[test]
    fn a_named_variant_has_its_own_price() {
        let k = shop();
        let a = k
            .answer("how much is the 50ml night cream?", "en")
            .expect("answer");
        assert!(a.text.contains("50ml costs ¥260"), "{}", a.text);
        let a = k.answer("晚霜 30ml 多少钱", "zh").expect("answer");
        assert!(a.text.contains("30ml 的价格：¥180"), "{}", a.text);
        // A value with a note in brackets is named without it.
        let b = crate::Bundle::from_files(&[(
            "products/b.jsonl".into(),
            br#"{"title":"Glass Bottle","handle":"bottle","options":[{"name":"Size"}],"variants":[{"sku":"B160","price":"89.00","option1":"160ml\uff08S\uff09"},{"sku":"B240","price":"99.00","option1":"240ml\uff08M\uff09"},{"sku":"B240X2","price":"159.00","option1":"240ml gift box"}]}"#
                .to_vec(),
        )])
        .expect("bundle");
        let a = Knowledge::new(b)
            .expect("knowledge")
            .answer("how much is the 240ml glass bottle?", "en")
            .expect("answer");
        assert!(a.text.contains("240ml（M） costs 99."), "{}", a.text);
        // Not named: from the lowest.
        let a = k.answer("晚霜多少钱", "zh").expect("answer");
        assert!(a.text.contains("¥180 起"), "{}", a.text);
    }

    #[test]
    fn a_cart_is_priced_with_its_steps_in_the_customers_language() {
        let k = shop();
        let d11 = at("2026-11-05T12:00:00+08:00");
        // 2 × serum (600) + lipstick (200 −10% = 180): 1380; presale −300 → 1080 (deposit
        // 100); coupon −20 → 1060; cross-store 3×50 → 910; + 100 deposit = 1010.
        let a = k
            .cart_answer("买两瓶精华和一支红色口红用券后一共多少钱？", true, d11)
            .expect("a cart");
        assert!(a.text.contains("合计 ¥1010"), "{}", a.text);
        assert!(
            a.text.contains("定金 ¥100 现在付（定金不退）"),
            "{}",
            a.text
        );
        assert!(a.text.contains("尾款 ¥910"), "{}", a.text);
        assert!(a.text.contains("跨店满减 每满300减50 −¥150"), "{}", a.text);
        let a = k
            .cart_answer(
                "if I buy 2 glow serums and the velvet lipstick in red what do I pay in total?",
                false,
                d11,
            )
            .expect("a cart");
        assert!(a.text.contains("you pay ¥1010 in all"), "{}", a.text);
        // After Double 11: list prices, the coupon only.
        let a = k
            .cart_answer(
                "精华和口红一共多少钱",
                true,
                at("2026-11-30T12:00:00+08:00"),
            )
            .expect("a cart");
        assert!(a.text.contains("合计 ¥760"), "600 + 180 − 20: {}", a.text);
        // A product whose variants cost differently: which one?
        let a = k
            .cart_answer("晚霜和口红一共多少钱", true, d11)
            .expect("an answer");
        assert_eq!(a.kind, Kind::Which, "{}", a.text);
        // Not a cart: one product, no total asked.
        assert!(k.cart_answer("精华多少钱", true, d11).is_none());
    }

    #[test]
    fn presale_questions_without_an_faq_get_the_promotions_terms() {
        let k = shop();
        let a = k.answer("精华预售的定金能退吗？", "zh").expect("answer");
        assert!(
            a.text.contains("定金 ¥50 抵 ¥150")
                && a.text.contains("尾款 11月11日 00:00 – 11月11日 23:59 支付")
                && a.text.contains("定金不退"),
            "{}",
            a.text
        );
        let a = k
            .answer(
                "is the deposit for the glow serum presale refundable?",
                "en",
            )
            .expect("answer");
        assert!(
            a.text.contains("a deposit of ¥50 counts as ¥150") && a.text.contains("non-refundable"),
            "{}",
            a.text
        );
    }
}
