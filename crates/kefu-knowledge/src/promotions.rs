//! `promotions.yaml`: the shop's promotions (docs/promotions.md). This module reads and checks
//! the file; pricing a cart under the promotions is the pricing engine's.
//!
//! ```yaml
//! currency: CNY
//! promotions:
//!   - id: d11-cross-store
//!     kind: threshold        # 满减: `off` for every full `every`, or once at `min_spend`
//!     scope: cross_store     # shop | cross_store
//!     every: 300
//!     off: 50
//!     starts: 2026-11-01T20:00:00+08:00
//!     ends: 2026-11-11T23:59:59+08:00
//! ```
use std::fmt;

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, de};

use crate::bundle::Problem;

/// An amount as the file writes it: a number or a decimal string, at most 2 decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount (a number or a decimal string such as \"99.50\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                let d: Decimal = v
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("\"{v}\" is not an amount")))?;
                if d.scale() > 2 {
                    return Err(E::custom(format!("{v}: at most 2 decimals")));
                }
                Ok(Amount(d))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Threshold,
    Coupon,
    ItemDiscount,
    Presale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Shop,
    CrossStore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issuer {
    Shop,
    Platform,
}

/// One promotion; which fields apply depends on `kind` ([`PromotionsFile::check`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub id: String,
    pub kind: Kind,
    /// A display name (optional).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scope: Option<Scope>,
    #[serde(default)]
    pub every: Option<Amount>,
    #[serde(default)]
    pub min_spend: Option<Amount>,
    #[serde(default)]
    pub off: Option<Amount>,
    #[serde(default)]
    pub issuer: Option<Issuer>,
    #[serde(default)]
    pub percent_off: Option<Amount>,
    /// Item discount: the price after it.
    #[serde(default)]
    pub price: Option<Amount>,
    #[serde(default)]
    pub skus: Vec<String>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub deposit: Option<Amount>,
    #[serde(default)]
    pub deposit_value: Option<Amount>,
    #[serde(default)]
    pub balance_starts: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub balance_ends: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub deposit_refundable: Option<bool>,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub holders_only: bool,
    #[serde(default)]
    pub starts: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub ends: Option<DateTime<FixedOffset>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionsFile {
    pub currency: String,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
}

fn need(p: &Promotion, field: &str, present: bool, why: &mut Vec<String>) {
    if !present {
        why.push(format!("{:?} promotion \"{}\" needs `{field}`", p.kind, p.id).to_lowercase());
    }
}

impl PromotionsFile {
    /// What is wrong with each promotion: (promotion id, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            out.push((
                String::new(),
                format!(
                    "currency \"{}\" is not an ISO 4217 code such as CNY",
                    self.currency
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.promotions {
            let mut why = Vec::new();
            if p.id.trim().is_empty() {
                why.push("a promotion without an `id`".into());
            } else if !seen.insert(p.id.clone()) {
                why.push(format!("the id \"{}\" is used twice", p.id));
            }
            match p.kind {
                Kind::Threshold => {
                    need(p, "scope", p.scope.is_some(), &mut why);
                    need(
                        p,
                        "every or min_spend",
                        p.every.is_some() != p.min_spend.is_some(),
                        &mut why,
                    );
                    need(p, "off", p.off.is_some(), &mut why);
                }
                Kind::Coupon => {
                    need(p, "issuer", p.issuer.is_some(), &mut why);
                    need(p, "off", p.off.is_some(), &mut why);
                }
                Kind::ItemDiscount => {
                    need(p, "skus", !p.skus.is_empty(), &mut why);
                    need(
                        p,
                        "percent_off or price",
                        p.percent_off.is_some() != p.price.is_some(),
                        &mut why,
                    );
                    if p.percent_off
                        .is_some_and(|x| x.0 <= Decimal::ZERO || x.0 >= Decimal::ONE_HUNDRED)
                    {
                        why.push(format!(
                            "\"{}\": percent_off must be between 0 and 100",
                            p.id
                        ));
                    }
                }
                Kind::Presale => {
                    need(p, "sku", p.sku.is_some(), &mut why);
                    need(p, "deposit", p.deposit.is_some(), &mut why);
                    need(p, "deposit_value", p.deposit_value.is_some(), &mut why);
                    if let (Some(d), Some(v)) = (p.deposit, p.deposit_value)
                        && v.0 < d.0
                    {
                        why.push(format!("\"{}\": deposit_value is below the deposit", p.id));
                    }
                    if let (Some(s), Some(e)) = (p.balance_starts, p.balance_ends)
                        && e <= s
                    {
                        why.push(format!(
                            "\"{}\": balance_ends is not after balance_starts",
                            p.id
                        ));
                    }
                }
            }
            for a in [
                p.every,
                p.min_spend,
                p.off,
                p.deposit,
                p.deposit_value,
                p.price,
            ]
            .into_iter()
            .flatten()
            {
                if a.0 < Decimal::ZERO {
                    why.push(format!("\"{}\": amounts must not be negative", p.id));
                    break;
                }
            }
            if p.every.is_some_and(|e| e.0 == Decimal::ZERO) {
                why.push(format!("\"{}\": every must be above 0", p.id));
            }
            if let (Some(s), Some(e)) = (p.starts, p.ends)
                && e <= s
            {
                why.push(format!("\"{}\": ends is not after starts", p.id));
            }
            out.extend(why.into_iter().map(|w| (p.id.clone(), w)));
        }
        out
    }
}

/// Deepest nesting of YAML flow collections the parser is given: the YAML parser's own
/// limit. Deeper input is refused before parsing, because the scanner's work grows with the
/// square of the nesting depth (100 000 `[` took over a minute).
pub const MAX_FLOW_DEPTH: usize = 128;

/// The deepest nesting of `[`/`{` in `text`, counting brackets inside quotes and comments
/// too (so it may over-count, never under-count, what the YAML parser sees).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Reads `promotions.yaml`; syntax errors carry their line, rule errors the line of the
/// promotion's `id:`.
pub fn parse(file: &str, text: &str, problems: &mut Vec<Problem>) -> Option<PromotionsFile> {
    if flow_depth(text) > MAX_FLOW_DEPTH {
        problems.push(Problem::whole(
            file,
            format!("brackets nested deeper than {MAX_FLOW_DEPTH} levels"),
        ));
        return None;
    }
    let parsed: PromotionsFile = match serde_norway::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            problems.push(Problem {
                file: file.to_owned(),
                line: e.location().map(|l| l.line()),
                message: e.to_string(),
            });
            return None;
        }
    };
    let errors = parsed.check();
    if errors.is_empty() {
        return Some(parsed);
    }
    for (id, message) in errors {
        let line = (!id.is_empty())
            .then(|| {
                text.lines().position(|l| {
                    let l = l.trim().trim_start_matches("- ").trim();
                    l.strip_prefix("id:")
                        .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
                })
            })
            .flatten()
            .map(|i| i + 1);
        problems.push(Problem {
            file: file.to_owned(),
            line,
            message,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "currency: CNY\npromotions:\n  - id: d11-cross-store\n    kind: threshold\n    scope: cross_store\n    every: 300\n    off: 50\n    starts: 2026-11-01T20:00:00+08:00\n    ends: 2026-11-11T23:59:59+08:00\n  - id: shop-coupon-20\n    kind: coupon\n    issuer: shop\n    min_spend: \"199.00\"\n    off: 20\n  - id: serum-presale\n    kind: presale\n    sku: SERUM-50\n    deposit: 50\n    deposit_value: 150\n    balance_starts: 2026-11-11T00:00:00+08:00\n    balance_ends: 2026-11-11T23:59:59+08:00\n    deposit_refundable: false\n";

    #[test]
    fn the_schema_of_the_promotions_issue_reads() {
        let mut p = Vec::new();
        let f = parse("promotions.yaml", YAML, &mut p).expect("parses");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(f.promotions.len(), 3);
        assert_eq!(
            f.promotions[1].min_spend,
            Some(Amount(Decimal::new(19900, 2)))
        );
        assert_eq!(f.promotions[0].scope, Some(Scope::CrossStore));
        assert_eq!(f.promotions[2].deposit_refundable, Some(false));
    }

    #[test]
    fn rule_and_syntax_errors_have_lines() {
        let mut p = Vec::new();
        let bad = YAML
            .replace("    off: 50\n", "")
            .replace("deposit_value: 150", "deposit_value: 40");
        assert!(parse("promotions.yaml", &bad, &mut p).is_none());
        let got: Vec<(Option<usize>, &str)> =
            p.iter().map(|x| (x.line, x.message.as_str())).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, Some(3));
        assert!(got[0].1.contains("needs `off`"), "{got:?}");
        assert_eq!(got[1].0, Some(14));
        let mut p = Vec::new();
        assert!(
            parse(
                "promotions.yaml",
                "currency: CNY\npromotions:\n  - id: x\n    kind: bogus\n",
                &mut p
            )
            .is_none()
        );
        assert_eq!(p[0].line, Some(4), "{p:?}");
        let mut p = Vec::new();
        assert!(parse("promotions.yaml", "currency: CNY\npromotions:\n  - id: x\n    kind: coupon\n    issuer: shop\n    off: 9.999\n", &mut p).is_none());
        assert!(p[0].message.contains("2 decimals"), "{p:?}");
    }
}
