//! Training and evaluation data: the public sets in `shared/data/intents` mapped onto Kefu's
//! intents, and Kefu's own examples (`data/kefu_ours.tsv`). See `data/README.md` for the
//! mapping and provenance of every row.
use std::{collections::HashSet, path::Path};

use anyhow::Context;

use crate::{INTENTS, features::normalize, model::OUT_OF_SCOPE};

/// One labelled utterance and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub intent: String,
    pub source: &'static str,
}

/// Bitext intent → Kefu intent (`None`: not used).
pub fn map_bitext(intent: &str) -> Option<&'static str> {
    Some(match intent {
        "track_order" => "order_status",
        "delivery_period" | "delivery_options" => "delivery_info",
        "cancel_order" | "check_cancellation_fee" => "cancel_order",
        "change_order" => "change_order",
        "place_order" => "place_order",
        "change_shipping_address" | "set_up_shipping_address" => "change_address",
        "get_refund" | "track_refund" | "check_refund_policy" => "refund",
        "check_payment_methods" => "payment_methods",
        "payment_issue" => "payment_problem",
        "check_invoice" | "get_invoice" => "invoice",
        "complaint" => "complaint",
        "contact_human_agent" | "contact_customer_service" => "human_agent",
        "create_account"
        | "delete_account"
        | "edit_account"
        | "recover_password"
        | "registration_problems"
        | "switch_account"
        | "newsletter_subscription" => "account",
        // Product reviews are neither a complaint nor out of scope: left out.
        _ => return None,
    })
}

/// CLINC150 intents that map onto Kefu intents.
pub fn map_clinc(intent: &str) -> Option<&'static str> {
    Some(match intent {
        "greeting" => "greeting",
        "thank_you" | "goodbye" => "thanks_goodbye",
        "order_status" => "order_status",
        "card_declined" => "payment_problem",
        "oos" => OUT_OF_SCOPE,
        // Ambiguous with shopping intents ("order me …", "cancel that", yes/no): left out.
        "order" | "cancel" | "yes" | "no" | "maybe" | "are_you_a_bot" | "what_can_i_ask_you"
        | "redeem_rewards" | "rewards_balance" => return None,
        // The other 140 domains (banking, travel, cooking, …) are out of scope for a shop.
        _ => OUT_OF_SCOPE,
    })
}

/// Training examples taken from each of the 140 CLINC domains used as out-of-scope negatives.
pub const OOS_PER_CLINC_INTENT: usize = 15;

/// The splits used by `train` and `eval`.
#[derive(Debug, Default)]
pub struct Splits {
    pub train: Vec<Example>,
    /// For calibration and the out-of-scope threshold only.
    pub dev: Vec<Example>,
    /// External held-out: Bitext test (deduplicated against train) and CLINC test.
    pub test_external: Vec<Example>,
    /// CLINC `oos_test`, the out-of-scope benchmark (also inside `test_external`).
    pub test_oos: Vec<Example>,
    /// Held-out share of Kefu's own examples (not external).
    pub test_ours: Vec<Example>,
}

fn bitext(dir: &Path, file: &str) -> anyhow::Result<Vec<Example>> {
    let path = dir.join("bitext/data").join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        // The utterance is the first CSV field (quoted when it contains commas).
        let (utt, rest) = if let Some(stripped) = line.strip_prefix('"') {
            let end = stripped.find("\",").context("bad CSV quote")?;
            (stripped[..end].replace("\"\"", "\""), &stripped[end + 2..])
        } else {
            let (u, r) = line.split_once(',').context("bad CSV line")?;
            (u.to_owned(), r)
        };
        let intent = rest.split(',').next().unwrap_or_default();
        if let Some(k) = map_bitext(intent) {
            out.push(Example {
                text: utt,
                intent: k.into(),
                source: "bitext",
            });
        }
    }
    Ok(out)
}

/// Every CLINC split that maps (`oos` included), as `(split, examples)`.
fn clinc(dir: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let path = dir.join("clinc150/data/data_full.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    match serde_json::from_str(&text)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => anyhow::bail!("{}: not a JSON object", path.display()),
    }
}

fn clinc_split(
    m: &serde_json::Map<String, serde_json::Value>,
    split: &str,
    per_oos_intent: usize,
) -> Vec<Example> {
    let mut out = Vec::new();
    let mut taken: std::collections::HashMap<String, usize> = Default::default();
    for item in m
        .get(split)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(text), Some(intent)) = (
            item.get(0).and_then(|v| v.as_str()),
            item.get(1).and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let Some(k) = map_clinc(intent) else { continue };
        // Other domains are many; a sample of each keeps the classes balanced.
        if k == OUT_OF_SCOPE && intent != "oos" {
            let n = taken.entry(intent.to_owned()).or_default();
            if *n >= per_oos_intent {
                continue;
            }
            *n += 1;
        }
        out.push(Example {
            text: text.into(),
            intent: k.into(),
            source: "clinc150",
        });
    }
    out
}

/// Kefu's own examples from `data/kefu_ours.tsv`.
pub fn ours() -> Vec<Example> {
    include_str!("../data/kefu_ours.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .map(|(i, t)| Example {
            text: t.trim().into(),
            intent: i.trim().into(),
            source: "kefu",
        })
        .collect()
}

/// Deterministic split of Kefu's own examples by text hash: 0 = train (3/5), 1 = dev (1/5),
/// 2 = held-out test (1/5).
fn ours_split(text: &str) -> u8 {
    match crate::train::fnv(text, crate::train::FNV_OFFSET) % 5 {
        0 => 2,
        1 => 1,
        _ => 0,
    }
}

/// Dedupe key: normalised text without punctuation and digits.
pub fn dedupe_key(text: &str) -> String {
    normalize(text)
        .chars()
        .filter(|c| c.is_alphanumeric() && *c != '0')
        .collect()
}

/// Loads every split from `shared/data/intents` (`dir`) and the built-in own examples.
pub fn load(dir: &Path) -> anyhow::Result<Splits> {
    let c = clinc(dir)?;
    let mut s = Splits::default();
    s.train.extend(bitext(dir, "train.csv")?);
    s.train
        .extend(clinc_split(&c, "train", OOS_PER_CLINC_INTENT));
    s.train.extend(clinc_split(&c, "oos_train", usize::MAX));
    s.dev.extend(bitext(dir, "dev.csv")?);
    s.dev.extend(clinc_split(&c, "val", 3));
    s.dev.extend(clinc_split(&c, "oos_val", usize::MAX));
    for e in ours() {
        match ours_split(&e.text) {
            2 => s.test_ours.push(e),
            1 => s.dev.push(e),
            _ => s.train.push(e),
        }
    }
    let seen: HashSet<String> = s
        .train
        .iter()
        .chain(&s.dev)
        .map(|e| dedupe_key(&e.text))
        .collect();
    let mut ext: Vec<Example> = bitext(dir, "test.csv")?;
    ext.extend(clinc_split(&c, "test", 30));
    s.test_external = ext
        .into_iter()
        .filter(|e| !seen.contains(&dedupe_key(&e.text)))
        .collect();
    s.test_oos = clinc_split(&c, "oos_test", usize::MAX)
        .into_iter()
        .filter(|e| !seen.contains(&dedupe_key(&e.text)))
        .collect();
    s.test_external.extend(s.test_oos.iter().cloned());
    for e in s.train.iter().chain(&s.test_ours) {
        anyhow::ensure!(
            INTENTS.contains(&e.intent.as_str()),
            "unknown intent {} ({})",
            e.intent,
            e.source
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_cover_every_intent_in_chinese() {
        let ours = ours();
        for i in INTENTS {
            assert!(
                ours.iter().any(|e| e.intent == *i
                    && e.text
                        .chars()
                        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
                "no Chinese example for {i}"
            );
        }
    }

    #[test]
    fn mappings_only_name_known_intents() {
        for i in [
            "track_order",
            "payment_issue",
            "complaint",
            "newsletter_subscription",
        ] {
            assert!(INTENTS.contains(&map_bitext(i).unwrap()));
        }
        assert_eq!(map_bitext("review"), None);
        assert_eq!(map_clinc("cancel"), None);
        assert_eq!(map_clinc("book_flight"), Some(OUT_OF_SCOPE));
        assert_eq!(
            dedupe_key("Cancel order 123!"),
            dedupe_key("cancel order 456")
        );
    }
}
