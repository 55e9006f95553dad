//! Text features: hashed character n-grams (which handle Chinese, where words have no spaces,
//! and typos) plus word unigrams and bigrams for space-separated text.

/// Changes whenever feature extraction changes (part of the model version).
pub const FEATURES_VERSION: &str = "features-v2";

/// Lower-cases, maps full-width ASCII to half-width, masks digit runs (`0`) and collapses spaces.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        };
        if c.is_whitespace() {
            if !space {
                out.push(' ');
                space = true;
            }
            continue;
        }
        space = false;
        if c.is_ascii_digit() {
            // A run of digits (an order number, an amount) becomes one `0`: its length says
            // little, and a long number must not drown the words around it.
            if !out.ends_with('0') {
                out.push('0');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// FNV-1a over the bytes, seeded by the feature kind.
fn hash(kind: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Final mix so the low bits are well spread.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Sparse feature vector: bucket indices (sorted, unique) and L2-normalised values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Features {
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

/// Extracts features into `bits`-bit hash buckets.
pub fn extract(text: &str, bits: u32) -> Features {
    let norm = normalize(text);
    let mask = (1u64 << bits) - 1;
    let mut raw: Vec<u32> = Vec::with_capacity(norm.len() * 4);
    // Character n-grams over the text with boundary marks: n = 1..=4 for CJK runs (a CJK
    // character is almost a word), n = 2..=4 elsewhere.
    let chars: Vec<char> = std::iter::once('^')
        .chain(norm.chars())
        .chain(std::iter::once('$'))
        .collect();
    let mut buf = String::new();
    for n in 1..=4usize {
        if chars.len() < n {
            break;
        }
        for w in chars.windows(n) {
            if n == 1 && !is_cjk(w[0]) {
                continue;
            }
            buf.clear();
            buf.extend(w.iter());
            raw.push((hash(n as u8, &[&buf]) & mask) as u32);
        }
    }
    // Words (runs of letters/digits that are not CJK) and word bigrams.
    let words: Vec<&str> = norm
        .split(|c: char| !(c.is_alphanumeric() || c == '\'') || is_cjk(c))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        raw.push((hash(10, &[w]) & mask) as u32);
        if i + 1 < words.len() {
            raw.push((hash(11, &[w, words[i + 1]]) & mask) as u32);
        }
    }
    raw.sort_unstable();
    let mut f = Features::default();
    for i in raw {
        if f.idx.last() == Some(&i) {
            *f.val.last_mut().expect("non-empty") += 1.0;
        } else {
            f.idx.push(i);
            f.val.push(1.0);
        }
    }
    let norm2: f32 = f.val.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm2 > 0.0 {
        for v in &mut f.val {
            *v /= norm2;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("  Where IS  my Order 123？ "),
            "where is my order 0?"
        );
        assert_eq!(normalize("ＡＢＣ１"), "abc0");
    }

    #[test]
    fn features_are_sparse_unit_vectors() {
        for t in [
            "我要退货",
            "where is my parcel",
            "帮我check一下order",
            "",
            "🙂",
        ] {
            let f = extract(t, 16);
            assert_eq!(f.idx.len(), f.val.len());
            assert!(f.idx.windows(2).all(|w| w[0] < w[1]));
            assert!(f.idx.iter().all(|&i| i < 1 << 16));
            if !f.val.is_empty() {
                let n: f32 = f.val.iter().map(|v| v * v).sum();
                assert!((n - 1.0).abs() < 1e-4);
            }
        }
        assert_ne!(extract("退货", 16), extract("退款", 16));
    }
}
