//! Small text helpers shared by the parsers and the answers.

/// The language of a passage: `zh` when Han characters make up a fifth or more of its
/// letters, else `en` (a bundle is Chinese and/or English).
pub fn language(text: &str) -> &'static str {
    let (mut han, mut letters) = (0usize, 0usize);
    for c in text.chars() {
        if is_han(c) {
            han += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters > 0 && han * 5 >= letters {
        "zh"
    } else {
        "en"
    }
}

pub fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

/// Lower-cased, whitespace collapsed, full-width ASCII folded: how scenario strings and
/// replies are compared.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// An amount as customers read it in `currency` (ISO 4217; empty: the bare number), at most
/// two decimals and no trailing zeros: `¥259`, `$79.5`, `€12`, `100 JPY`.
pub fn money(currency: &str, amount: rust_decimal::Decimal) -> String {
    let n = amount.round_dp(2).normalize().to_string();
    match currency {
        "CNY" => format!("¥{n}"),
        "USD" => format!("${n}"),
        "EUR" => format!("€{n}"),
        "" => n,
        c => format!("{n} {c}"),
    }
}

/// Whitespace collapsed and trimmed.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The numbers in a text (`7`, `99.00`, `1,299`, `15%` → 7, 99, 1299, 15), as they would be
/// compared: digits only, trailing `.0`/`.00` dropped.
pub fn numbers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            let mut n = cur.trim_end_matches('.').to_owned();
            if let Some((int, frac)) = n.split_once('.')
                && frac.chars().all(|c| c == '0')
            {
                n = int.to_owned();
            }
            out.push(n);
            cur.clear();
        }
    };
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if (c == ',' || c == '.')
            && !cur.is_empty()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        {
            if c == '.' {
                cur.push('.');
            }
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_and_normalisation() {
        assert_eq!(language("七天无理由退货"), "zh");
        assert_eq!(language("Returns within 7 days"), "en");
        assert_eq!(language("支持 Alipay 和 WeChat Pay 付款方式"), "zh");
        assert_eq!(
            normalise("  Free  SHIPPING\tover ¥99 "),
            "free shipping over ¥99"
        );
        assert_eq!(normalise("ＡＢＣ　１２３"), "abc 123");
    }

    #[test]
    fn numbers_are_read_as_written() {
        assert_eq!(
            numbers("7天内，满99.00元包邮，1,299 元，15%"),
            ["7", "99", "1299", "15"]
        );
        assert_eq!(numbers("v2.5 of 3."), ["2.5", "3"]);
        assert!(numbers("none").is_empty());
    }
}
