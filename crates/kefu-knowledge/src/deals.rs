//! Questions about the shop's promotions that are not a priced cart: which promotions run
//! now ("现在有什么满减活动", "any discounts right now?"), how much more a customer must spend
//! for the next 满减 ("我购物车 ¥250，还差多少能满减", "how much more do I need for the
//! discount?"), and the coupons a customer says they hold ("我有平台券满1000减60").
//! Every amount comes from `promotions.yaml` and [`crate::pricing`]; nothing is assumed.
use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use rust_decimal::Decimal;

use crate::{
    answer::{Answer, Kind, Knowledge},
    cart,
    pricing::{self, Line},
    promotions::{self, Issuer, Promotion, Scope},
    text,
};

/// Words that ask how far a cart is from the next threshold.
pub(crate) const MORE_WORDS: &[&str] = &[
    "还差多少",
    "差多少",
    "还要买多少",
    "还需要买多少",
    "再买多少",
    "还要凑",
    "凑单",
    "凑多少",
    "how much more",
    "more do i need",
    "more do i have to",
    "more to reach",
    "more to get",
    "to qualify",
    "to reach the",
    "away from the",
];

/// Words that ask which promotions run now.
pub(crate) const ACTIVE_WORDS: &[&str] = &[
    "有什么优惠",
    "有哪些优惠",
    "有什么活动",
    "有哪些活动",
    "有什么满减",
    "有没有满减",
    "有满减",
    "满减活动",
    "优惠活动",
    "现在有优惠",
    "最近有优惠",
    "any discount",
    "any promotion",
    "any deal",
    "any sale",
    "current promotion",
    "current discount",
    "what promotions",
    "what discounts",
    "which promotions",
    "which discounts",
];

/// The amount of a cart a customer writes ("¥250", "250元", "250块", "250 yuan", "$30"),
/// not a threshold ("满300", "300减30", "¥30 off").
pub fn amount_in(q: &str) -> Option<Decimal> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        let number: String = chars[start..i].iter().collect();
        // The characters before the number, spaces skipped: a currency sign, then the word
        // before it.
        let mut j = start;
        let mut back = || {
            while j > 0 && chars[j - 1] == ' ' {
                j -= 1;
            }
            (j > 0).then(|| {
                j -= 1;
                chars[j]
            })
        };
        let mut prev = back();
        let currency_before = matches!(prev, Some('¥' | '￥' | '$'));
        if currency_before {
            prev = back();
        }
        let after: String = chars[i..].iter().take(6).collect();
        let currency_after = [
            "元", "块", " 元", " 块", "rmb", " rmb", " yuan", "yuan", " cny",
        ]
        .iter()
        .any(|w| after.starts_with(w));
        // The English word before: "¥60 off ¥1000", "over ¥300".
        let word: String = chars[..(j + 1).min(chars.len())]
            .iter()
            .rev()
            .skip_while(|c| !c.is_ascii_alphabetic())
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let word_threshold = prev.is_some_and(|c| c.is_ascii_alphabetic())
            && ["off", "over", "above"].contains(&word.as_str());
        let threshold = word_threshold
            || matches!(prev, Some('满' | '减' | '差'))
            || after.trim_start().starts_with('减')
            || after.trim_start().starts_with("off")
            || after.trim_start().starts_with("元减")
            || after.trim_start().starts_with("块减");
        if (currency_before || currency_after)
            && !threshold
            && let Ok(d) = number.trim_end_matches('.').parse::<Decimal>()
        {
            return Some(d);
        }
    }
    None
}

/// (minimum spend, amount off) pairs a message names: "满1000减60", "1000减60", "¥60 off
/// ¥1000", "60 off 1000", "60 off over 1000".
pub fn spend_off_pairs(q: &str) -> Vec<(Decimal, Decimal)> {
    let words: Vec<String> = q
        .replace(['¥', '￥', '$', '元', '块'], "")
        .replace('减', " 减 ")
        .replace('满', " 满 ")
        .split(|c: char| c.is_whitespace() || c == ',' || c == '，')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    // The number a word starts with ("60的券") or ends with ("券1000").
    let lead = |w: &str| {
        let n: String = w
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        n.trim_end_matches('.').parse::<Decimal>().ok()
    };
    let tail = |w: &str| {
        let n: String = w
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        n.trim_start_matches('.').parse::<Decimal>().ok()
    };
    let mut out = Vec::new();
    for i in 0..words.len() {
        // "满 1000 减 60" / "1000 减 60"
        if words[i] == "减"
            && i >= 1
            && let (Some(spend), Some(off)) =
                (tail(&words[i - 1]), words.get(i + 1).and_then(|w| lead(w)))
        {
            out.push((spend, off));
        }
        // "60 off 1000" / "60 off over 1000"
        if words[i] == "off"
            && i >= 1
            && let Some(off) = tail(&words[i - 1])
        {
            let mut j = i + 1;
            while words.get(j).is_some_and(|w| {
                matches!(
                    w.as_str(),
                    "over"
                        | "orders"
                        | "order"
                        | "of"
                        | "on"
                        | "above"
                        | "spend"
                        | "min"
                        | "minimum"
                )
            }) {
                j += 1;
            }
            if let Some(spend) = words.get(j).and_then(|w| lead(w)) {
                out.push((spend, off));
            }
        }
    }
    out
}

fn day(t: DateTime<FixedOffset>, zh: bool) -> String {
    if zh {
        format!(
            "{}月{}日 {:02}:{:02}",
            t.month(),
            t.day(),
            t.hour(),
            t.minute()
        )
    } else {
        t.format("%b %-d %H:%M").to_string()
    }
}

/// One promotion in words, with its terms: "店铺满减 每满300减30（至 11月11日 23:59）".
fn terms(p: &Promotion, currency: &str, zh: bool) -> String {
    let m =
        |a: Option<promotions::Amount>| text::money(currency, a.map(|a| a.0).unwrap_or_default());
    let rule = match p.kind {
        promotions::Kind::Threshold | promotions::Kind::Coupon => {
            let who = match (p.kind, p.scope, p.issuer) {
                (promotions::Kind::Threshold, Some(Scope::CrossStore), _) => {
                    if zh {
                        "跨店满减"
                    } else {
                        "cross-store discount"
                    }
                }
                (promotions::Kind::Threshold, _, _) => {
                    if zh {
                        "店铺满减"
                    } else {
                        "shop discount"
                    }
                }
                (_, _, Some(Issuer::Platform)) => {
                    if zh {
                        "平台券"
                    } else {
                        "platform coupon"
                    }
                }
                _ => {
                    if zh {
                        "店铺券"
                    } else {
                        "shop coupon"
                    }
                }
            };
            match (p.every, p.min_spend) {
                (Some(_), _) if zh => format!("{who} 每满{}减{}", m(p.every), m(p.off)),
                (Some(_), _) => format!("{who}: {} off every {}", m(p.off), m(p.every)),
                (None, Some(_)) if zh => format!("{who} 满{}减{}", m(p.min_spend), m(p.off)),
                (None, Some(_)) => format!("{who}: {} off {} or more", m(p.off), m(p.min_spend)),
                (None, None) if zh => format!("{who} 减{}", m(p.off)),
                (None, None) => format!("{who}: {} off", m(p.off)),
            }
        }
        promotions::Kind::ItemDiscount => match (p.percent_off, p.price) {
            (Some(pc), _) if zh => format!(
                "{} {}折",
                p.skus.join("/"),
                (Decimal::ONE_HUNDRED - pc.0) / Decimal::TEN
            ),
            (Some(pc), _) => format!("{}: {}% off", p.skus.join("/"), pc.0.normalize()),
            (None, _) if zh => format!("{} 特价 {}", p.skus.join("/"), m(p.price)),
            (None, _) => format!("{}: now {}", p.skus.join("/"), m(p.price)),
        },
        promotions::Kind::Presale if zh => format!(
            "{} 预售：定金 {} 抵 {}",
            p.sku.clone().unwrap_or_default(),
            m(p.deposit),
            m(p.deposit_value)
        ),
        promotions::Kind::Presale => format!(
            "{} pre-sale: a {} deposit counts as {}",
            p.sku.clone().unwrap_or_default(),
            m(p.deposit),
            m(p.deposit_value)
        ),
    };
    let named = match &p.name {
        // A name that already says the rule's amounts ("店铺券 满199减10") stands alone.
        Some(n)
            if text::numbers(&rule)
                .iter()
                .all(|x| text::numbers(n).contains(x)) =>
        {
            n.clone()
        }
        Some(n) if !n.trim().is_empty() => {
            if zh {
                format!("{n}（{rule}）")
            } else {
                format!("{n} ({rule})")
            }
        }
        _ => rule,
    };
    let mut notes = Vec::new();
    if p.kind == promotions::Kind::Coupon {
        notes.push(match (p.holders_only, zh) {
            (true, true) => "需持有此券".to_owned(),
            (true, false) => "for holders of this coupon".to_owned(),
            (false, true) => "可领取".to_owned(),
            (false, false) => "claimable by everyone".to_owned(),
        });
    }
    if p.exclusive {
        notes.push(
            if zh {
                "不与其他优惠同享"
            } else {
                "cannot be combined"
            }
            .to_owned(),
        );
    }
    if let Some(e) = p.ends {
        notes.push(if zh {
            format!("至 {}", day(e, true))
        } else {
            format!("until {}", day(e, false))
        });
    }
    if notes.is_empty() {
        named
    } else if zh {
        format!("{named}，{}", notes.join("，"))
    } else {
        format!("{named}, {}", notes.join(", "))
    }
}

impl Knowledge {
    /// The `holders_only` coupons a message says the customer holds: named by id, by name,
    /// by a name's first word when no other such coupon shares it ("平台券"), or by its
    /// terms ("满1000减60", "60 off 1000").
    pub fn held_coupons(&self, q: &str) -> Vec<String> {
        let Some(file) = self.bundle.promotions.as_ref() else {
            return Vec::new();
        };
        let q = text::normalise(q);
        let pairs = spend_off_pairs(&q);
        let held: Vec<&Promotion> = file
            .promotions
            .iter()
            .filter(|p| p.kind == promotions::Kind::Coupon && p.holders_only)
            .collect();
        let first_word = |p: &Promotion| {
            p.name
                .as_deref()
                .and_then(|n| {
                    text::normalise(n)
                        .split([' ', '（', '('])
                        .next()
                        .map(str::to_owned)
                })
                .filter(|w| w.chars().count() >= 2)
        };
        held.iter()
            .filter(|p| {
                let by_terms = pairs.iter().any(|(spend, off)| {
                    p.off.is_some_and(|o| o.0 == *off)
                        && p.min_spend.or(p.every).is_some_and(|s| s.0 == *spend)
                });
                let by_name = q.contains(&p.id.to_lowercase())
                    || p.name
                        .as_deref()
                        .is_some_and(|n| q.contains(&text::normalise(n)));
                let by_word = first_word(p).is_some_and(|w| {
                    q.contains(&w)
                        && held
                            .iter()
                            .filter(|o| first_word(o).as_deref() == Some(w.as_str()))
                            .count()
                            == 1
                });
                by_terms || by_name || by_word
            })
            .map(|p| p.id.clone())
            .collect()
    }

    /// A question about the shop's promotions that names no product: how much more for the
    /// next threshold on the amount the customer gives, else the promotions running at `at`.
    /// `None` when the shop keeps no promotions.yaml, or the question is neither.
    pub fn deals_answer(
        &self,
        question: &str,
        zh: bool,
        at: DateTime<FixedOffset>,
    ) -> Option<Answer> {
        let file = self.bundle.promotions.as_ref()?;
        let q = text::normalise(question);
        let more = MORE_WORDS.iter().any(|w| q.contains(w));
        let list = ACTIVE_WORDS.iter().any(|w| q.contains(w));
        if !more && !list {
            return None;
        }
        let m = |d: Decimal| text::money(&file.currency, d);
        let lang = if zh { "zh" } else { "en" };
        let answer = |text: String| Answer {
            text,
            language: lang.into(),
            confidence: 1.0,
            kind: Kind::Price,
            sources: vec!["promotions.yaml".to_owned()],
        };
        if more && let Some(amount) = amount_in(&q) {
            let held = self.held_coupons(&q);
            let line = Line {
                sku: String::new(),
                quantity: 1,
                unit_price: amount,
            };
            let quote = pricing::quote(file, &[line], &held, at);
            let mut t = if zh {
                format!("按 {} 计算", m(amount))
            } else {
                format!("On {}", m(amount))
            };
            let steps: Vec<String> = quote
                .applied
                .iter()
                .map(|a| format!("{} −{}", a.name, m(a.off)))
                .collect();
            if !steps.is_empty() {
                t.push_str(if zh { "：" } else { ": " });
                t.push_str(&steps.join(if zh { "；" } else { "; " }));
            }
            t.push_str(&if zh {
                format!("，合计 {}。", m(quote.total))
            } else {
                format!(", you pay {}.", m(quote.total))
            });
            match cart::next_threshold(&quote, zh) {
                Some(n) => t.push_str(&n),
                None => t.push_str(cart::no_further_threshold(zh)),
            }
            t.push_str(cart::assumed_claimed(&quote, zh));
            if zh {
                t.push_str("只限部分商品的优惠要看具体商品，告诉我商品我帮您算。");
            } else {
                t.push_str(" Promotions limited to some products depend on the items: tell me which and I will price them.");
            }
            return Some(answer(t));
        }
        let running: Vec<String> = file
            .promotions
            .iter()
            .filter(|p| pricing::active(p, at))
            .map(|p| {
                let mut p = p.clone();
                // SKUs as the customer knows them: the product's title.
                let title = |s: &String| self.price_of(s).map(|x| x.1).unwrap_or_else(|| s.clone());
                p.skus = p.skus.iter().map(title).collect::<Vec<_>>();
                p.skus.dedup();
                p.sku = p.sku.as_ref().map(title);
                terms(&p, &file.currency, zh)
            })
            .collect();
        let mut t = if running.is_empty() {
            if zh {
                "店铺的活动表里现在没有进行中的满减或优惠。".to_owned()
            } else {
                "The shop has no promotion running right now.".to_owned()
            }
        } else if zh {
            format!("店铺现在的优惠：{}。", running.join("；"))
        } else {
            format!("The shop's promotions right now: {}.", running.join("; "))
        };
        if more {
            t.push_str(if zh {
                "告诉我您要买的商品或购物车金额，我帮您算还差多少。"
            } else {
                " Tell me what is in your cart, or its amount, and I will work out how much more you need."
            });
        }
        Some(answer(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bundle;

    fn shop() -> Knowledge {
        let jsonl = r#"{"title":"Glow Serum 精华液","handle":"glow-serum","variants":[{"sku":"SERUM-50","price":"600.00","inventory_quantity":9}]}
{"title":"Toner 爽肤水","handle":"toner","variants":[{"sku":"TONER-1","price":"99.00","inventory_quantity":9}]}"#;
        let promotions = "currency: CNY
promotions:
  - {id: shop-300-30, name: 店铺满减, kind: threshold, scope: shop, every: 300, off: 30}
  - {id: cross, name: 跨店满减 每满300减50, kind: threshold, scope: cross_store, every: 300, off: 50, starts: 2026-11-01T20:00:00+08:00, ends: 2026-11-11T23:59:59+08:00}
  - {id: coupon-199-10, name: 店铺券 满199减10, kind: coupon, issuer: shop, min_spend: 199, off: 10}
  - {id: platform-1000-60, name: 平台券 满1000减60, kind: coupon, issuer: platform, min_spend: 1000, off: 60, holders_only: true}
  - {id: vip-500-80, name: 会员券, kind: coupon, issuer: shop, min_spend: 500, off: 80, holders_only: true, exclusive: true}
  - {id: toner-sale, kind: item_discount, skus: [TONER-1], price: 79}
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
    fn amounts_and_coupon_terms_are_told_apart() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        assert_eq!(amount_in("我购物车 ¥250，还差多少"), Some(d("250")));
        assert_eq!(amount_in("买了250元的东西"), Some(d("250")));
        assert_eq!(amount_in("i have 120.5 yuan in my cart"), Some(d("120.5")));
        assert_eq!(amount_in("满300减30 还差多少"), None);
        assert_eq!(amount_in("满300元减30元"), None);
        assert_eq!(amount_in("¥30 off"), None);
        assert_eq!(
            amount_in("the ¥60 off ¥1000 coupon, my cart is ¥800"),
            Some(d("800"))
        );
        assert_eq!(amount_in("还差多少满减"), None);
        assert_eq!(
            spend_off_pairs("我有平台券满1000减60"),
            [(d("1000"), d("60"))]
        );
        assert_eq!(
            spend_off_pairs("a ¥60 off ¥1000 coupon"),
            [(d("1000"), d("60"))]
        );
        assert_eq!(spend_off_pairs("60 off over 1000"), [(d("1000"), d("60"))]);
        assert!(spend_off_pairs("two serums").is_empty());
    }

    #[test]
    fn held_coupons_are_read_from_the_message() {
        let k = shop();
        assert_eq!(
            k.held_coupons("我有一张满1000减60的券"),
            ["platform-1000-60"]
        );
        assert_eq!(
            k.held_coupons("I have the ¥60 off ¥1000 coupon"),
            ["platform-1000-60"]
        );
        assert_eq!(k.held_coupons("我有平台券"), ["platform-1000-60"]);
        assert_eq!(k.held_coupons("用会员券"), ["vip-500-80"]);
        // Terms no coupon has, and coupons anyone may claim, are not "held".
        assert!(k.held_coupons("我有满2000减100的券").is_empty());
        assert!(k.held_coupons("满199减10").is_empty());
    }

    #[test]
    fn how_much_more_for_the_next_threshold() {
        let k = shop();
        let now = at("2026-11-30T12:00:00+08:00");
        // ¥250: below the ¥300 shop threshold; the ¥199 coupon applies → 240; ¥50 more.
        let a = k
            .deals_answer("我购物车现在250元，还差多少能满减？", true, now)
            .expect("an answer");
        assert!(a.text.contains("合计 ¥240"), "{}", a.text);
        assert!(a.text.contains("再买 ¥50 可再减 ¥30"), "{}", a.text);
        // During Double 11 the cross-store tier is measured after the shop stage: 650 − 60
        // (2 × 30) − 10 = 580 → 1 × 50 → 530; the next step is the shop's ¥900 tier.
        let a = k
            .deals_answer(
                "I have ¥650 in my cart, how much more do I need for the next discount?",
                false,
                at("2026-11-05T12:00:00+08:00"),
            )
            .expect("an answer");
        assert!(a.text.contains("you pay ¥530"), "{}", a.text);
        assert!(
            a.text.contains("Add ¥20 more to take ¥50 more off"),
            "{}",
            a.text
        );
        // A held coupon counts: 1100 − 90 (3 × 30) − 10 = 1000 → −60 = 940; the VIP coupon
        // alone (1100 − 80) is dearer.
        let a = k
            .deals_answer("我有平台券，买了1100元还差多少满减", true, now)
            .expect("an answer");
        assert!(a.text.contains("合计 ¥940"), "{}", a.text);
        // No amount: the promotions running now, and a request for the cart.
        let a = k
            .deals_answer("还差多少能满减？", true, now)
            .expect("an answer");
        assert!(
            a.text.contains("店铺满减（店铺满减 每满¥300减¥30）"),
            "{}",
            a.text
        );
        assert!(a.text.contains("告诉我您要买的商品"), "{}", a.text);
        assert!(!a.text.contains("跨店"), "Double 11 is over: {}", a.text);
    }

    #[test]
    fn the_promotions_running_now() {
        let k = shop();
        let a = k
            .deals_answer(
                "现在有什么满减活动吗",
                true,
                at("2026-11-05T12:00:00+08:00"),
            )
            .expect("an answer");
        for want in [
            "跨店满减 每满300减50，至 11月11日 23:59",
            "店铺券 满199减10，可领取",
            "会员券（店铺券 满¥500减¥80），需持有此券，不与其他优惠同享",
            "Toner 爽肤水 特价 ¥79",
        ] {
            assert!(a.text.contains(want), "{want}: {}", a.text);
        }
        let a = k
            .deals_answer(
                "any discounts right now?",
                false,
                at("2026-11-30T12:00:00+08:00"),
            )
            .expect("an answer");
        assert!(
            a.text.contains("shop discount: ¥30 off every ¥300"),
            "{}",
            a.text
        );
        assert!(!a.text.contains("cross-store"), "{}", a.text);
        // Not a promotions question.
        assert!(
            k.deals_answer("精华多少钱", true, at("2026-11-30T12:00:00+08:00"))
                .is_none()
        );
    }
}
