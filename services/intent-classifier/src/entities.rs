//! Entity extraction: order numbers, tracking numbers and amounts.
use std::sync::LazyLock;

use regex::Regex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub kind: &'static str,
    pub value: String,
}

static TRACKING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:SF|YT|ZTO|YD|JD|JT|STO|EMS|1Z)[0-9A-Z]{8,18}\b").expect("valid regex")
});
static ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9A-Za-z])([0-9]{8,24})(?:$|[^0-9A-Za-z])").expect("valid regex")
});
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[¥$€£]\s?([0-9]+(?:\.[0-9]{1,2})?))|(?:([0-9]+(?:\.[0-9]{1,2})?)\s?(?:元|块|yuan|rmb|RMB|usd|USD))")
        .expect("valid regex")
});

pub fn extract(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for m in TRACKING.find_iter(&text.to_uppercase()) {
        out.push(Found {
            kind: "tracking_number",
            value: m.as_str().to_owned(),
        });
    }
    for c in ORDER.captures_iter(text) {
        out.push(Found {
            kind: "order_id",
            value: c[1].to_owned(),
        });
    }
    for c in AMOUNT.captures_iter(text) {
        if let Some(v) = c.get(1).or_else(|| c.get(2)) {
            out.push(Found {
                kind: "amount",
                value: v.as_str().to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entities() {
        let f = extract("订单 202611110001 的运单 SF1234567890123 退 ¥59.90");
        assert!(
            f.contains(&Found {
                kind: "order_id",
                value: "202611110001".into()
            }),
            "{f:?}"
        );
        assert!(
            f.contains(&Found {
                kind: "tracking_number",
                value: "SF1234567890123".into()
            }),
            "{f:?}"
        );
        assert!(
            f.contains(&Found {
                kind: "amount",
                value: "59.90".into()
            }),
            "{f:?}"
        );
        assert!(extract("hello").is_empty());
    }
}
