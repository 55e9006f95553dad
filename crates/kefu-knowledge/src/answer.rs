//! Answers composed only from a shop's knowledge. Each answer quotes or condenses the shop's
//! own passage (an FAQ answer, a product fact, a variant's stock, the catalogue's prices);
//! Kefu adds only connecting words ("in stock", "推荐"). When nothing in the bundle answers
//! the question well enough ([`MIN_CONFIDENCE`]) there is no answer, and the caller hands the
//! customer to a person.
use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use crate::{
    Bundle,
    index::{Index, Passage, Scope, has_term, terms},
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
    names: Names,
    /// SKU → catalogue price and product title (pricing).
    prices: HashMap<String, (Decimal, String)>,
    /// Per FAQ entry, its embedding ([`Knowledge::faq_passages`]), once the deployment's
    /// embedding model has read them: FAQ entries are then also found by meaning.
    faq_vectors: std::sync::OnceLock<Vec<Vec<f32>>>,
}

/// A FAQ entry found by meaning alone (no shared word) must be closer to the question than the
/// bundle's median entry by at least this cosine similarity (e5 `query:` / `passage:`): an
/// absolute bar does not work, as short Chinese texts sit at 0.85–0.88 whatever they say.
/// Chosen on the development bundles (demo, lumi, furkid, kitchen) and out-of-scope
/// questions, not on the held-out one; docs/knowledge.md.
pub const SEMANTIC_MARGIN: f32 = 0.06;
/// …and the FAQ must have at least this many entries for a median to mean anything.
pub const SEMANTIC_MIN_ENTRIES: usize = 5;
/// A FAQ entry found by meaning replaces the one found by words when it is at least this much
/// closer to the question.
pub const SEMANTIC_OVERRIDE: f32 = 0.01;

/// How questions name products, computed once per bundle.
struct Names {
    /// Per product: its normalised title and id (`down coat` for `down-coat`).
    whole: Vec<(String, String)>,
    /// Per product: the terms of its title.
    terms: Vec<Vec<String>>,
    /// Per product: title terms no other product's title has ("cloudlite", "卡式炉",
    /// "龙井"), at least two Han characters or four letters, not a number.
    distinctive: Vec<Vec<String>>,
    /// Terms in several titles (a kind of product: "hoodie", "帐篷") → those products.
    kinds: HashMap<String, Vec<usize>>,
    /// Per FAQ entry: its heading's terms and normalised text.
    headings: Vec<(HashSet<String>, String)>,
}

impl Names {
    fn new(bundle: &Bundle) -> Self {
        let terms: Vec<Vec<String>> = bundle
            .products
            .iter()
            .map(|p| {
                let mut t = terms(&p.title);
                for x in terms(&p.id.replace(['-', '_'], " ")) {
                    if !t.contains(&x) {
                        t.push(x);
                    }
                }
                t
            })
            .collect();
        let mut df: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, t) in terms.iter().enumerate() {
            for x in t {
                df.entry(x.as_str()).or_default().push(i);
            }
        }
        let substantial = |t: &str| {
            !t.chars().all(|c| c.is_ascii_digit() || c == '.')
                && (t.chars().filter(|c| text::is_han(*c)).count() >= 2
                    || t.chars().filter(char::is_ascii_alphabetic).count() >= 4)
        };
        let distinctive = terms
            .iter()
            .map(|t| {
                t.iter()
                    .filter(|x| df[x.as_str()].len() == 1 && substantial(x))
                    .cloned()
                    .collect()
            })
            .collect();
        let kinds = df
            .iter()
            .filter(|(t, ps)| ps.len() > 1 && substantial(t))
            .map(|(t, ps)| ((*t).to_owned(), ps.clone()))
            .collect();
        Names {
            whole: bundle
                .products
                .iter()
                .map(|p| {
                    (
                        text::normalise(&p.title),
                        text::normalise(&p.id.replace(['-', '_'], " ")),
                    )
                })
                .collect(),
            terms,
            distinctive,
            kinds,
            headings: bundle
                .faq
                .iter()
                .map(|f| {
                    (
                        crate::index::terms(&f.question).into_iter().collect(),
                        text::normalise(&f.question),
                    )
                })
                .collect(),
        }
    }
}

/// Which products a question names.
#[derive(Debug, PartialEq)]
enum Named {
    None,
    One(usize),
    /// Several fit equally well (by a shared name or only by the kind of product).
    Several(Vec<usize>),
}

/// Colour words in English and Chinese, so that "灰色" finds a `Grey` variant and "grey" a
/// `灰色` one.
const COLOURS: &[(&[&str], &str)] = &[
    (&["grey", "gray", "charcoal"], "灰"),
    (&["black"], "黑"),
    (&["white", "ivory"], "白"),
    (&["navy"], "藏青"),
    (&["blue"], "蓝"),
    (&["red", "burgundy"], "红"),
    (&["green", "olive", "forest"], "绿"),
    (&["cream", "beige", "oat", "sand"], "米"),
    (&["brown", "coffee", "mocha"], "棕"),
    (&["pink"], "粉"),
    (&["yellow"], "黄"),
    (&["purple"], "紫"),
    (&["orange"], "橙"),
    (&["khaki"], "卡其"),
];

/// Whether `q` (normalised) says `word`: Latin words whole, Chinese anywhere.
fn says(q: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    if word.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
        q.match_indices(word).any(|(i, _)| {
            let before = q[..i].chars().next_back();
            let after = q[i + word.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
    } else {
        q.contains(word)
    }
}

/// A variant value's names: itself, and its colour in the other language.
fn aliases(value: &str) -> Vec<String> {
    let v = text::normalise(value);
    let mut out = vec![v.clone()];
    // A note in brackets is not what customers say: "240ml（配M号奶嘴）" is "240ml".
    if let Some((head, _)) = v.split_once(['（', '(', '【', '['])
        && !head.trim().is_empty()
    {
        out.push(head.trim().to_owned());
    }
    for (en, zh) in COLOURS {
        if en.iter().any(|w| says(&v, w)) {
            for tail in ["色", "的", "款"] {
                out.push(format!("{zh}{tail}"));
            }
            if zh.chars().count() > 1 {
                out.push((*zh).to_owned());
            }
        }
        if v.contains(zh) {
            out.extend(en.iter().map(|w| (*w).to_owned()));
        }
    }
    out
}

/// Whether normalised `q` names the variant value `option` (in either language for colours).
pub(crate) fn variant_said(q: &str, option: &str) -> bool {
    aliases(option).iter().any(|a| says(q, a))
}

/// Whether the question names a colour at all.
fn names_colour(q: &str) -> bool {
    COLOURS
        .iter()
        .any(|(en, zh)| says_colour(q, zh) || en.iter().any(|w| says(q, w)))
}

/// A Chinese colour said as a colour: 灰色, 灰的, 灰款; a one-character colour alone is part
/// of too many words (白 in 蛋白质, 米 in 厘米).
fn says_colour(q: &str, zh: &str) -> bool {
    if zh.chars().count() > 1 {
        return q.contains(zh);
    }
    ["色", "的", "款"]
        .iter()
        .any(|tail| q.contains(&format!("{zh}{tail}")))
}

/// Words for the same spec in English and Chinese (a product page in one language, the
/// question in the other): each group's words stand for each other when a question is
/// matched against a product's facts.
const SPEC_WORDS: &[&[&str]] = &[
    // Customer-service words.
    &["运费", "快递费", "邮费", "postage"],
    &["包邮", "免运费", "免邮"],
    &["拆封", "拆开", "打开", "开封", "opened", "unsealed"],
    &["退货", "退回", "寄回", "return", "returns"],
    &["退款", "退钱", "refund", "refunds"],
    &["快递", "物流", "courier", "carrier"],
    &["发票", "invoice", "fapiao"],
    &["货到付款", "cod", "cash"],
    &["优惠券", "券", "coupon", "coupons", "voucher"],
    &["定金", "deposit"],
    &["尾款", "balance"],
    &["预售", "presale"],
    &["尺码", "码数", "几码", "哪个码"],
    // Specs.
    &["weight", "heavy", "weigh", "重量", "多重", "重"],
    &["temperature", "温度", "温标", "几度"],
    &["comfort", "comfortable", "舒适"],
    &["material", "fabric", "made", "材质", "面料", "材料"],
    &["size", "dimension", "dimensions", "尺寸", "大小"],
    &["capacity", "volume", "容量", "几升", "多少升"],
    &["waterproof", "rain", "防水"],
    &["fill", "filling", "down", "充绒", "充绒量", "填充"],
    &["colour", "color", "颜色"],
    &["origin", "产地", "产区"],
    &["harvest", "picked", "采摘"],
    &["warranty", "guarantee", "保修", "质保"],
    &[
        "people",
        "persons",
        "person",
        "sleeps",
        "人数",
        "几个人",
        "几人",
    ],
    &["power", "output", "火力", "功率"],
    &["fuel", "gas", "燃料", "气罐"],
    &["battery", "电池", "续航"],
    &["brightness", "lumens", "亮度"],
    &["care", "wash", "washing", "洗涤", "清洗", "保养"],
    &["packed", "pack", "packing", "收纳"],
    &["fit", "版型"],
    &["lining", "内里"],
];

/// Each spec word's group, as index terms.
static SPEC_GROUPS: std::sync::LazyLock<Vec<Vec<String>>> = std::sync::LazyLock::new(|| {
    SPEC_WORDS
        .iter()
        .map(|g| {
            let mut out: Vec<String> = Vec::new();
            for w in *g {
                for t in terms(w) {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            out
        })
        .collect()
});

/// A term and the words that stand for it in the other language.
fn spec_group(term: &str) -> Vec<String> {
    let mut out = vec![term.to_owned()];
    for g in SPEC_GROUPS.iter() {
        if g.iter().any(|x| x == term) {
            out.extend(g.iter().filter(|x| *x != term).cloned());
        }
    }
    out
}

/// A measurement in a text: the word before it (胸围, chest, 身高), the number, and the unit in
/// centimetres or kilograms (斤 is half a kilogram).
#[derive(Debug)]
struct Measure {
    label: String,
    value: f64,
    unit: &'static str,
}

fn measures(s: &str) -> Vec<Measure> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
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
        let Ok(value) = chars[start..i].iter().collect::<String>().parse::<f64>() else {
            continue;
        };
        let rest: String = chars[i..]
            .iter()
            .skip_while(|c| c.is_whitespace())
            .take(2)
            .collect::<String>()
            .to_lowercase();
        let (unit, value) = if rest.starts_with("cm") || rest.starts_with("厘米") {
            ("cm", value)
        } else if rest.starts_with("kg") || rest.starts_with("公斤") || rest.starts_with("千克")
        {
            ("kg", value)
        } else if rest.starts_with('斤') {
            ("kg", value / 2.0)
        } else {
            ("", value)
        };
        let label: String = chars[start.saturating_sub(6)..start]
            .iter()
            .collect::<String>()
            .trim()
            .to_lowercase();
        out.push(Measure { label, value, unit });
    }
    out
}

/// A range in a size-chart cell: `45-55cm`, `45–55 cm`, `6~12kg`, `160至165`.
fn range_in(cell: &str) -> Option<(f64, f64, &'static str)> {
    let m = measures(cell);
    let (a, b) = (m.first()?, m.get(1)?);
    let unit = if b.unit.is_empty() { a.unit } else { b.unit };
    let between: String = cell
        .split(|c: char| c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .collect();
    ["-", "–", "~", "～", "至", "to"]
        .iter()
        .any(|sep| between.contains(sep))
        .then_some((a.value.min(b.value), a.value.max(b.value), unit))
}

/// The size-chart row (a fact whose cells are ranges) that every measurement in the question
/// falls in, when the question asks about size; the larger size when two fit (between two
/// sizes, size up).
fn size_row<'a>(p: &'a Product, question: &str) -> Option<&'a crate::product::Fact> {
    if !any(question, &["码", "size", "尺寸", "穿", "fit"]) {
        return None;
    }
    let asked: Vec<Measure> = measures(&text::normalise(question));
    if asked.is_empty() {
        return None;
    }
    let mut best: Option<(&crate::product::Fact, usize)> = None;
    for f in &p.facts {
        let cells: Vec<(String, (f64, f64, &str))> = f
            .value
            .split([',', '，', '|'])
            .filter_map(|c| range_in(c).map(|r| (text::normalise(c), r)))
            .collect();
        if cells.is_empty() {
            continue;
        }
        let mut fits = 0;
        let mut misses = 0;
        for m in &asked {
            // The cells this measurement is about: named alike, else of the same unit.
            let named = |c: &str| {
                !m.label.is_empty()
                    && c.split(|ch: char| ch.is_ascii_digit())
                        .next()
                        .is_some_and(|h| {
                            let h = h.trim();
                            !h.is_empty() && (m.label.contains(h) || h.contains(&m.label))
                        })
            };
            let about = cells.iter().find(|(c, _)| named(c)).or_else(|| {
                cells
                    .iter()
                    .find(|(_, (_, _, u))| !m.unit.is_empty() && *u == m.unit)
            });
            match about {
                Some((_, (lo, hi, _))) if (*lo..=*hi).contains(&m.value) => fits += 1,
                Some(_) => misses += 1,
                None => {}
            }
        }
        if fits > 0 && misses == 0 && best.is_none_or(|b| fits >= b.1) {
            best = Some((f, fits));
        }
    }
    best.map(|b| b.0)
}

/// Words that ask about a product in general ("tell me about", "介绍一下"): no specific fact.
const ABOUT_WORDS: &[&str] = &[
    "tell",
    "about",
    "info",
    "inform",
    "detail",
    "product",
    "介绍",
    "详情",
    "怎么样",
    "如何",
    "这款",
];

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
pub(crate) const PRICE_WORDS: &[&str] = &[
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
/// Promotion words: a question about a product's presale, deposit or coupons is about the
/// shop's promotion rules first, its price second.
const PROMO_WORDS: &[&str] = &[
    "预售",
    "定金",
    "尾款",
    "balance",
    "优惠券",
    "店铺券",
    "满减",
    "叠加",
    "presale",
    "pre-sale",
    "deposit",
    "coupon",
    "promotion",
];
const WARM_WORDS: &[&str] = &["保暖", "暖和", "warm", "warmest"];
const LIGHT_WORDS: &[&str] = &["最轻", "轻便", "轻量", "light", "lightest"];

fn any(question: &str, words: &[&str]) -> bool {
    let q = text::normalise(question);
    words.iter().any(|w| q.contains(w))
}

/// An amount in the product's currency (none named: the bare number, never a guessed one).
/// Cosine similarity; 0 for a zero vector.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// The language a reply is worded in: Chinese for a question mostly in Chinese even when the
/// caller said English.
fn reply_language<'a>(question: &str, language: &'a str) -> &'a str {
    if language == "zh"
        || ((language.is_empty() || language == "en") && text::language(question) == "zh")
    {
        "zh"
    } else if language.is_empty() {
        "en"
    } else {
        language
    }
}

fn money(p: &Product, amount: Decimal) -> String {
    text::money(p.currency.as_deref().unwrap_or(""), amount)
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
        let names = Names::new(&bundle);
        let mut prices = HashMap::new();
        for p in &bundle.products {
            for v in &p.variants {
                if let Some(price) = v.price.or(p.price) {
                    prices
                        .entry(v.sku.clone())
                        .or_insert((price, p.title.clone()));
                }
            }
            if p.variants.is_empty()
                && let Some(price) = p.price
            {
                prices
                    .entry(p.id.clone())
                    .or_insert((price, p.title.clone()));
            }
        }
        Ok(Self {
            bundle,
            index,
            names,
            prices,
            faq_vectors: std::sync::OnceLock::new(),
        })
    }

    /// Product `i`'s title and handle, normalised.
    pub(crate) fn whole_name(&self, i: usize) -> (&str, &str) {
        let (t, id) = &self.names.whole[i];
        (t, id)
    }

    /// Title terms of product `i` that no other title has.
    pub(crate) fn distinctive_terms(&self, i: usize) -> &[String] {
        &self.names.distinctive[i]
    }

    /// A SKU's catalogue price and its product's title: a variant's SKU (its price, else the
    /// product's), or a product's id when it has no variants.
    pub fn price_of(&self, sku: &str) -> Option<(Decimal, String)> {
        self.prices.get(sku).cloned()
    }

    /// Products whose variants have a value the question names (`grey`, `M`, `灰色`).
    /// (The products with the most of them: "grey … M" is the hoodie that comes in grey,
    /// not every hoodie with an M.)
    fn by_variant(&self, question: &str, among: &[usize]) -> Vec<usize> {
        let q = text::normalise(question);
        let said: Vec<(usize, usize)> = among
            .iter()
            .map(|&i| {
                let mut values: Vec<String> = Vec::new();
                for o in self.bundle.products[i]
                    .variants
                    .iter()
                    .flat_map(|v| v.options.iter())
                {
                    let n = text::normalise(o);
                    if !values.contains(&n) && aliases(o).iter().any(|a| says(&q, a)) {
                        values.push(n);
                    }
                }
                (i, values.len())
            })
            .collect();
        let most = said.iter().map(|x| x.1).max().unwrap_or(0);
        if most == 0 {
            return Vec::new();
        }
        said.into_iter()
            .filter(|x| x.1 == most)
            .map(|x| x.0)
            .collect()
    }

    /// The products a question names: by whole title, by most of its words, by a word only
    /// its title has, or by the kind of product (narrowed by the variants it names).
    fn named(&self, question: &str) -> Named {
        let q = text::normalise(question);
        let qt: HashSet<String> = terms(question).into_iter().collect();
        let n = &self.names;
        let best = |scored: Vec<(usize, f32)>| -> Vec<usize> {
            let top = scored.iter().map(|x| x.1).fold(f32::MIN, f32::max);
            scored
                .iter()
                .filter(|x| (x.1 - top).abs() < 1e-6)
                .map(|x| x.0)
                .collect()
        };
        let one_or_several = |v: Vec<usize>| match v.len() {
            0 => Named::None,
            1 => Named::One(v[0]),
            _ => {
                let narrowed = self.by_variant(question, &v);
                if narrowed.len() == 1 {
                    Named::One(narrowed[0])
                } else {
                    Named::Several(v)
                }
            }
        };
        // The whole title (the longest that fits), or the handle.
        let whole: Vec<(usize, f32)> = n
            .whole
            .iter()
            .enumerate()
            .filter(|(_, (t, id))| {
                (!t.is_empty() && q.contains(t.as_str()))
                    || (!id.is_empty() && q.contains(id.as_str()))
            })
            .map(|(i, (t, _))| (i, t.chars().count() as f32))
            .collect();
        if !whole.is_empty() {
            return one_or_several(best(whole));
        }
        // Most of the title's words.
        let share: Vec<(usize, f32)> = n
            .terms
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                if t.is_empty() {
                    return None;
                }
                let matched: Vec<&String> = t.iter().filter(|x| qt.contains(*x)).collect();
                // Only the kind ("hoodie" of "Breeze Hoodie") names no one product.
                if matched.iter().all(|x| n.kinds.contains_key(x.as_str())) {
                    return None;
                }
                let s = matched.len() as f32 / t.len() as f32;
                (s >= 0.5 && t.len() > 1 || s >= 0.99).then_some((i, s))
            })
            .collect();
        if !share.is_empty() {
            return one_or_several(best(share));
        }
        // A word only one title has.
        let distinctive: Vec<(usize, f32)> = n
            .distinctive
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let c = d.iter().filter(|x| qt.contains(*x)).count();
                (c > 0).then_some((i, c as f32))
            })
            .collect();
        if !distinctive.is_empty() {
            return one_or_several(best(distinctive));
        }
        // The kind of product: those whose titles share every kind word said.
        let mut kind: Option<Vec<usize>> = None;
        for t in &qt {
            if let Some(ps) = n.kinds.get(t) {
                kind = Some(match kind {
                    None => ps.clone(),
                    Some(k) => k.into_iter().filter(|i| ps.contains(i)).collect(),
                });
            }
        }
        match kind {
            Some(k) if !k.is_empty() => one_or_several(k),
            _ => Named::None,
        }
    }

    /// What the embedding model reads for each FAQ entry, in order: its heading and the start
    /// of its answer.
    pub fn faq_passages(&self) -> Vec<String> {
        self.bundle
            .faq
            .iter()
            .map(|f| {
                let answer: String = f.answer.chars().take(100).collect();
                format!("{}\n{}", f.question, answer)
            })
            .collect()
    }

    /// Gives the FAQ entries' embeddings (one per [`Knowledge::faq_passages`], all of one
    /// dimension); `false` when they do not fit or were given already.
    pub fn set_faq_vectors(&self, vectors: Vec<Vec<f32>>) -> bool {
        let dim = vectors.first().map_or(0, Vec::len);
        vectors.len() == self.bundle.faq.len()
            && vectors.iter().all(|v| v.len() == dim && dim > 0)
            && self.faq_vectors.set(vectors).is_ok()
    }

    /// Whether the question's embedding could change `first`, the answer found without it:
    /// only the FAQ is searched by meaning, and it is reached when the answer is an FAQ
    /// entry, a "which one" question or nothing. Stock, prices, carts, specs and
    /// recommendations never need the embedding model.
    pub fn meaning_may_change(&self, first: Option<&Answer>) -> bool {
        self.has_faq_vectors() && first.is_none_or(|a| matches!(a.kind, Kind::Faq | Kind::Which))
    }

    /// Whether FAQ entries are also found by meaning.
    pub fn has_faq_vectors(&self) -> bool {
        self.faq_vectors.get().is_some()
    }

    /// [`Knowledge::reply`] with the question's embedding (e5 `query:`), when there is one.
    pub fn reply_with(&self, question: &str, language: &str, query: Option<&[f32]>) -> String {
        let lang = reply_language(question, language);
        self.answer_with(question, lang, chrono::Utc::now().fixed_offset(), query)
            .map(|a| a.text)
            .unwrap_or_else(|| handover(lang).to_owned())
    }

    /// The reply a customer gets to `question`: the shop's answer, or the hand-over (what a
    /// bundle's scenarios are scored on, in the service and in `kefu knowledge check`).
    pub fn reply(&self, question: &str, language: &str) -> String {
        self.reply_with(question, language, None)
    }

    /// The shop's answer to `question`, in `language` (`zh`/`en`) where Kefu words it.
    ///
    /// A question written mostly in Chinese is answered in Chinese even when the caller's
    /// detector said English ("Down coat M码还有货吗": a product name in English does not make
    /// the customer an English reader).
    pub fn answer(&self, question: &str, language: &str) -> Option<Answer> {
        self.answer_at(question, language, chrono::Utc::now().fixed_offset())
    }

    /// [`Knowledge::answer`] as of `at` (promotions' time windows).
    pub fn answer_at(
        &self,
        question: &str,
        language: &str,
        at: chrono::DateTime<chrono::FixedOffset>,
    ) -> Option<Answer> {
        self.answer_with(question, language, at, None)
    }

    /// [`Knowledge::answer_at`] with the question's embedding (e5 `query:`): FAQ entries are
    /// then also found by meaning ([`SEMANTIC_MARGIN`], [`SEMANTIC_OVERRIDE`]).
    pub fn answer_with(
        &self,
        question: &str,
        language: &str,
        at: chrono::DateTime<chrono::FixedOffset>,
        query: Option<&[f32]>,
    ) -> Option<Answer> {
        let zh = language == "zh"
            || ((language.is_empty() || language == "en") && text::language(question) == "zh");
        let lang = if zh { "zh" } else { "en" };
        // A cart: the computed amount and its steps.
        if let Some(a) = self.cart_answer(question, zh, at) {
            return Some(a);
        }
        let recommend = any(question, RECOMMEND_WORDS);
        match self.named(question) {
            Named::One(i) if !recommend => return self.about_product(i, question, zh),
            Named::Several(ps) if !recommend => {
                // A question about a kind of product ("帐篷保修多久") is often a policy:
                // the FAQ first, else which one?
                if let Some(a) = self.faq_answer(question, zh, false, query) {
                    return Some(a);
                }
                let names: Vec<String> = ps
                    .iter()
                    .take(6)
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
                    sources: ps
                        .iter()
                        .take(6)
                        .map(|i| self.bundle.products[*i].source.clone())
                        .collect(),
                });
            }
            _ => {}
        }
        if recommend && let Some(a) = self.recommend(question, zh) {
            return Some(a);
        }
        self.faq_answer(question, zh, false, query)
    }

    fn about_product(&self, i: usize, question: &str, zh: bool) -> Option<Answer> {
        let p = &self.bundle.products[i];
        let lang = if zh { "zh" } else { "en" };
        let source = vec![p.source.clone()];
        // Variant values named in the question (grey, M): the stock of the variants that
        // have all of them.
        let q = text::normalise(question);
        // Short values (S, M, XL) must stand alone, not inside a word; colours are found in
        // either language.
        let mut named: Vec<String> = Vec::new();
        for v in p.variants.iter().flat_map(|v| v.options.iter()) {
            let n = text::normalise(v);
            if !named.contains(&n) && aliases(v).iter().any(|a| says(&q, a)) {
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
        // The price of the variant named ("how much is the 240ml bottle"): its own price, not
        // the product's lowest.
        if !named.is_empty() && any(question, PRICE_WORDS) {
            let mut prices: Vec<Decimal> = matching
                .iter()
                .filter_map(|v| v.price.or(p.price))
                .collect();
            prices.sort();
            prices.dedup();
            if let [lo, rest @ ..] = prices.as_slice() {
                let value = matching[0]
                    .options
                    .iter()
                    .filter(|o| named.contains(&text::normalise(o)))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                let price = match rest.last() {
                    None => money(p, *lo),
                    Some(hi) => format!("{}–{}", money(p, *lo), money(p, *hi)),
                };
                let text = if zh {
                    format!("{} {value} 的价格：{price}。", p.title)
                } else {
                    format!("{} in {value} costs {price}.", p.title)
                };
                return Some(Answer {
                    text: self.with_link(text, p, zh),
                    language: lang.into(),
                    confidence: 1.0,
                    kind: Kind::Price,
                    sources: source,
                });
            }
        }
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
            return Some(Answer {
                text: self.with_link(text, p, zh),
                language: lang.into(),
                confidence: 1.0,
                kind: Kind::Stock,
                sources: source,
            });
        }
        // A stock question, or a colour this product may not come in: what there is.
        if (any(question, STOCK_WORDS) || !named.is_empty() || names_colour(&q))
            && !p.variants.is_empty()
        {
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
                return Some(Answer {
                    text: self.with_link(text, p, zh),
                    language: lang.into(),
                    confidence: 1.0,
                    kind: Kind::Stock,
                    sources: source,
                });
            }
        }
        if any(question, PROMO_WORDS) {
            // The shop's rules as its FAQ words them, else the product's presale terms from
            // promotions.yaml.
            let rest: Vec<String> = terms(question)
                .into_iter()
                .filter(|t| !self.names.terms[i].contains(t))
                .collect();
            if let Some(a) = self.faq_answer(&rest.join(" "), zh, true, None) {
                return Some(a);
            }
            if let Some(text) = self.presale_terms(p, zh) {
                return Some(Answer {
                    text: self.with_link(text, p, zh),
                    language: lang.into(),
                    confidence: 1.0,
                    kind: Kind::Price,
                    sources: vec![p.source.clone(), "promotions.yaml".into()],
                });
            }
        }
        // "How much does it weigh / hold" is not a price question.
        let spec_asked = any(
            question,
            &[
                "weigh", "heavy", "重量", "多重", "capacity", "volume", "hold", "容量", "几升",
            ],
        );
        if any(question, PRICE_WORDS)
            && !spec_asked
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
            return Some(Answer {
                text: self.with_link(text, p, zh),
                language: lang.into(),
                confidence: 1.0,
                kind: Kind::Price,
                sources: source,
            });
        }
        // A size question with the customer's measurements: the size-chart row they fit.
        if let Some(f) = size_row(p, question) {
            let text = if zh {
                format!("{}：{}（{}）", p.title, f.name, f.value)
            } else {
                format!("{}: {} ({})", p.title, f.name, f.value)
            };
            return Some(Answer {
                text: self.with_link(text, p, zh),
                language: lang.into(),
                confidence: 1.0,
                kind: Kind::Product,
                sources: source,
            });
        }
        // A fact the question asks about, beyond the product's name.
        let title_terms: HashSet<&String> = self.names.terms[i].iter().collect();
        let rest: Vec<String> = terms(question)
            .into_iter()
            .filter(|t| !title_terms.contains(t) && !named.contains(t))
            .collect();
        let specific: Vec<&String> = rest
            .iter()
            .filter(|t| !ABOUT_WORDS.iter().any(|w| t.starts_with(w)))
            .collect();
        if !rest.is_empty() {
            // Each word of the question with its other-language spec words; the fact that
            // covers the most of the question's words.
            let groups: Vec<Vec<String>> = rest.iter().map(|t| spec_group(t)).collect();
            let query: Vec<&str> = groups.iter().flatten().map(String::as_str).collect();
            let hits = self.index.search(&query.join(" "), 5, Scope::FactsOf(i));
            let mut best: Option<(usize, f32)> = None;
            for h in &hits {
                let Passage::Fact(_, j) = h.passage else {
                    continue;
                };
                let f = &p.facts[j];
                let have: HashSet<String> = terms(&format!("{} {} {}", p.title, f.name, f.value))
                    .into_iter()
                    .collect();
                // A word found as asked counts fully, through the other language a little
                // less (充绒量 is "Fill weight 充绒量", not "Fill").
                let covered = groups
                    .iter()
                    .map(|g| {
                        if have.contains(&g[0]) {
                            1.0
                        } else if g.iter().any(|t| have.contains(t)) {
                            0.9
                        } else {
                            0.0
                        }
                    })
                    .sum::<f32>()
                    / groups.len() as f32;
                if best.is_none_or(|b| covered > b.1) {
                    best = Some((j, covered));
                }
            }
            if let Some((j, coverage)) = best.filter(|b| b.1 >= MIN_CONFIDENCE) {
                let f = &p.facts[j];
                let text = if f.name.starts_with("description") {
                    format!("{}：{}", p.title, f.source)
                } else {
                    format!("{} — {}", p.title, f.source)
                };
                return Some(Answer {
                    text,
                    language: text::language(&f.source).into(),
                    confidence: coverage,
                    kind: Kind::Product,
                    sources: source,
                });
            }
        }
        // Something no fact of the product covers ("can you ship the lantern to Australia"):
        // the shop's policy if it has one, else a person.
        if !specific.is_empty() {
            let policy: Vec<&str> = specific.iter().map(|t| t.as_str()).collect();
            return self.faq_answer(&policy.join(" "), zh, true, None);
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
        Some(Answer {
            text: self.with_link(text, p, zh),
            language: lang.into(),
            confidence: 1.0,
            kind: Kind::Product,
            sources: source,
        })
    }

    /// A product's presale as promotions.yaml sets it: deposit and what it counts for, when
    /// the deposit and the balance are paid, whether the deposit is refunded.
    fn presale_terms(&self, p: &Product, zh: bool) -> Option<String> {
        let file = self.bundle.promotions.as_ref()?;
        let promo = file.promotions.iter().find(|x| {
            x.kind == crate::promotions::Kind::Presale
                && x.sku
                    .as_ref()
                    .is_some_and(|s| p.variants.iter().any(|v| &v.sku == s) || &p.id == s)
        })?;
        let m = |a: Option<crate::promotions::Amount>| {
            text::money(&file.currency, a.map(|a| a.0).unwrap_or_default())
        };
        let day = |t: chrono::DateTime<chrono::FixedOffset>| {
            use chrono::{Datelike, Timelike};
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
        };
        let when =
            |a: Option<chrono::DateTime<chrono::FixedOffset>>,
             b: Option<chrono::DateTime<chrono::FixedOffset>>| match (a, b) {
                (Some(a), Some(b)) => Some(format!("{} – {}", day(a), day(b))),
                _ => None,
            };
        let refundable = promo.deposit_refundable.unwrap_or(false);
        let deposit_window = when(promo.starts, promo.ends);
        let balance_window = when(promo.balance_starts, promo.balance_ends);
        let name = promo.name.clone().unwrap_or_else(|| p.title.clone());
        // The balance before other promotions: the SKU's price less what the deposit counts
        // for (other promotions may take more off the balance; a cart quote shows them).
        let price = promo
            .sku
            .as_deref()
            .and_then(|s| self.price_of(s))
            .map(|(price, _)| price);
        let balance = price.zip(promo.deposit_value).map(|(price, v)| {
            (
                text::money(&file.currency, price),
                text::money(&file.currency, (price - v.0).max(Decimal::ZERO)),
            )
        });
        Some(if zh {
            let mut t = format!(
                "{name}：定金 {} 抵 {}",
                m(promo.deposit),
                m(promo.deposit_value)
            );
            if let Some((price, balance)) = &balance {
                t.push_str(&format!("（原价 {price}，尾款 {balance}）"));
            }
            if let Some(w) = deposit_window {
                t.push_str(&format!("，定金 {w} 支付"));
            }
            if let Some(w) = balance_window {
                t.push_str(&format!("，尾款 {w} 支付"));
            }
            t.push_str(if refundable {
                "；定金可退。"
            } else {
                "；定金不退（仅在店铺取消订单时退还）。"
            });
            t
        } else {
            let mut t = format!(
                "{name}: a deposit of {} counts as {} off the price",
                m(promo.deposit),
                m(promo.deposit_value)
            );
            if let Some((price, balance)) = &balance {
                t.push_str(&format!(" of {price}, leaving a balance of {balance}"));
            }
            if let Some(w) = deposit_window {
                t.push_str(&format!("; the deposit is paid {w}"));
            }
            if let Some(w) = balance_window {
                t.push_str(&format!("; the balance is paid {w}"));
            }
            t.push_str(if refundable {
                "; the deposit is refundable."
            } else {
                "; the deposit is non-refundable (refunded only if the shop cancels the order)."
            });
            t
        })
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
        let hits = self.index.search(&q, 50, Scope::Catalog);
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
        // The fact a ranking rests on is the one each line shows.
        let ranked_by: Option<&[&str]> = if any(question, WARM_WORDS) {
            Some(&warm_keys)
        } else if any(question, LIGHT_WORDS) {
            Some(&weight_keys)
        } else {
            None
        };
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
            let shown = ranked_by
                .and_then(|words| {
                    p.facts.iter().find(|f| {
                        number_in(&f.value).is_some()
                            && words.iter().any(|w| {
                                text::normalise(&format!("{} {}", f.name, f.value)).contains(w)
                            })
                    })
                })
                .or_else(|| {
                    p.facts
                        .iter()
                        .find(|f| !f.name.starts_with("description") && !any(&f.name, PRICE_WORDS))
                });
            if let Some(f) = shown {
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

    /// `need_heading`: only an entry whose heading shares a word with the question (for
    /// questions about a product that its facts do not answer: the policy must be about it).
    fn faq_answer(
        &self,
        question: &str,
        zh: bool,
        need_heading: bool,
        query: Option<&[f32]>,
    ) -> Option<Answer> {
        // Each entry's closeness in meaning to the question, when both are embedded.
        let meaning: Option<Vec<f32>> = query
            .zip(self.faq_vectors.get())
            .map(|(q, vs)| vs.iter().map(|v| cosine(q, v)).collect());
        let by_words = self.faq_by_words(question, zh, need_heading);
        let Some(meaning) = meaning else {
            return by_words.map(|i| self.faq_reply(i.0, i.1));
        };
        // The closest entry; among entries about as close, the customer's language.
        let want = if zh { "zh" } else { "en" };
        let top = meaning.iter().copied().fold(f32::MIN, f32::max);
        let close = (0..meaning.len())
            .filter(|&i| meaning[i] >= top - 0.01)
            .max_by(|&a, &b| {
                (self.bundle.faq[a].language == want)
                    .cmp(&(self.bundle.faq[b].language == want))
                    .then(meaning[a].total_cmp(&meaning[b]))
            });
        let mut sorted = meaning.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[sorted.len() / 2];
        if std::env::var_os("KEFU_DEBUG_MEANING").is_some() {
            eprintln!(
                "meaning: {question} → words {:?} ({:?}), meaning {:?} ({top:.3}, median {median:.3})",
                by_words.map(|w| &self.bundle.faq[w.0].question),
                by_words.map(|w| meaning[w.0]),
                close.map(|i| &self.bundle.faq[i].question),
            );
        }
        match (by_words, close) {
            (Some((w, c)), Some(m)) if meaning[m] - meaning[w] >= SEMANTIC_OVERRIDE => {
                Some(self.faq_reply(m, c.max(MIN_CONFIDENCE)))
            }
            (Some((w, c)), _) => Some(self.faq_reply(w, c)),
            (None, Some(m))
                if !need_heading
                    && meaning.len() >= SEMANTIC_MIN_ENTRIES
                    && meaning[m] - median >= SEMANTIC_MARGIN =>
            {
                Some(self.faq_reply(m, MIN_CONFIDENCE))
            }
            _ => None,
        }
    }

    fn faq_reply(&self, i: usize, confidence: f32) -> Answer {
        let f = &self.bundle.faq[i];
        Answer {
            text: f.answer.clone(),
            language: f.language.clone(),
            confidence,
            kind: Kind::Faq,
            sources: vec![format!("faq.md: {}", f.question)],
        }
    }

    /// The FAQ entry whose words answer the question, and how well: (entry, coverage).
    fn faq_by_words(&self, question: &str, zh: bool, need_heading: bool) -> Option<(usize, f32)> {
        // The question's words, each with the words that stand for it (快递费 for 运费,
        // refund for 退款), and of those only what the bundle knows.
        let groups: Vec<Vec<String>> = terms(question)
            .iter()
            .map(|t| spec_group(t))
            .filter(|g| g.iter().any(|t| self.index.knows(t)))
            .collect();
        // What share of the question the entry's heading (the shop's own question, the best
        // evidence of what an entry answers) covers.
        let heading_cover = |i: usize| {
            let (words, norm) = &self.names.headings[i];
            groups
                .iter()
                .filter(|g| g.iter().any(|t| has_term(words, norm, t)))
                .count() as f32
                / groups.len().max(1) as f32
        };
        // An entry answers only if its heading shares a word with the question, or its text
        // shares at least two: one word found somewhere in a long answer ("parcel" in the
        // refund rules) is not the question being asked; and it must cover MIN_CONFIDENCE.
        let hits: Vec<_> = self
            .index
            .search_groups(&groups, 5, Scope::Faq)
            .into_iter()
            .filter(|h| h.coverage >= MIN_CONFIDENCE)
            .filter_map(|h| {
                let Passage::Faq(i) = h.passage else {
                    return None;
                };
                let head = heading_cover(i);
                (head > 0.0 || (!need_heading && h.coverage * groups.len() as f32 >= 1.5))
                    .then_some((h.clone(), h.coverage + 0.5 * head))
            })
            .collect();
        let best = hits.iter().map(|h| h.1).fold(0.0f32, f32::max);
        if hits.is_empty() {
            return None;
        }
        // Among the best-ranked entries, the customer's language first, then the score.
        let want = if zh { "zh" } else { "en" };
        let chosen = hits
            .iter()
            .filter(|h| h.1 >= best - 0.15)
            .map(|h| &h.0)
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
        Some((i, chosen.coverage))
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
        // "delivery" is only in an answer's text, not in what its heading asks.
        assert!(
            k.answer("where is my delivery?", "en").is_none(),
            "{:?}",
            k.answer("where is my delivery?", "en")
        );
    }

    /// The FAQ by meaning, with vectors made by hand (the real model is tested through the
    /// service): an entry found by words stays unless another is clearly closer; with no
    /// word shared, only an entry well above the FAQ's median answers; far from everything,
    /// or in a FAQ too small to have a median, a person.
    #[test]
    fn faq_entries_found_by_meaning() {
        let faq = "## 退货政策\n\n收货后15天内可无理由退货。\n\n## Return policy\n\nReturns are accepted within 15 days of delivery.\n\n## 发货时间\n\n付款后48小时内发货。\n\n## 发票\n\n可以开电子普通发票。\n\n## 保修\n\n整机保修1年。\n\n## 付款方式\n\n支持支付宝和微信支付。\n";
        let k = Knowledge::new(
            Bundle::from_files(&[("faq.md".into(), faq.as_bytes().to_vec())]).expect("bundle"),
        )
        .expect("knowledge");
        assert_eq!(k.faq_passages().len(), 6);
        assert!(k.faq_passages()[0].starts_with("退货政策\n收货后15天"));
        assert!(!k.set_faq_vectors(vec![vec![1.0, 0.0]]), "one per entry");
        let e = |i: usize| {
            let mut v = vec![0.0f32; 6];
            v[i] = 1.0;
            v
        };
        let mut en = e(0);
        en[1] = 0.2;
        assert!(k.set_faq_vectors(vec![e(0), en, e(2), e(3), e(4), e(5)]));
        let unit = |v: [f32; 6]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n)
        };
        let now = chrono::Utc::now().fixed_offset();
        // No shared word; close to the returns entries: the customer's language.
        let q = unit([1.0, 0.1, 0.05, 0.0, 0.0, 0.0]);
        let a = k
            .answer_with("买了不想要了怎么办", "zh", now, Some(&q))
            .expect("found by meaning");
        assert!(a.text.starts_with("收货后15天"), "{}", a.text);
        let a = k
            .answer_with("I changed my mind", "en", now, Some(&q))
            .expect("found by meaning");
        assert!(a.text.starts_with("Returns are accepted"), "{}", a.text);
        // Without the vector, no answer: the words alone do not find it.
        assert!(k.answer("买了不想要了怎么办", "zh").is_none());
        // As close to every entry as to any: nothing.
        let flat = unit([1.0, -0.1, 1.0, 1.0, 1.0, 1.0]);
        assert!(
            k.answer_with("买了不想要了怎么办", "zh", now, Some(&flat))
                .is_none()
        );
        // Found by words (发货时间); meaning points clearly elsewhere (returns): meaning wins.
        assert!(
            k.answer("发货时间是多久", "zh")
                .is_some_and(|a| a.text.starts_with("付款后48小时"))
        );
        let a = k
            .answer_with("发货时间是多久", "zh", now, Some(&q))
            .expect("answer");
        assert!(a.text.starts_with("收货后15天"), "{}", a.text);
        // …and when meaning agrees with the words, the words' entry.
        let ship = unit([0.0, 0.05, 1.0, 0.0, 0.0, 0.0]);
        let a = k
            .answer_with("发货时间", "zh", now, Some(&ship))
            .expect("answer");
        assert!(a.text.starts_with("付款后48小时"), "{}", a.text);
        // A FAQ of three entries has no median worth the name: words only.
        let small = Knowledge::new(
            Bundle::from_files(&[(
                "faq.md".into(),
                "## 退货政策\n\n15天。\n\n## 发货\n\n48小时。\n\n## 发票\n\n电子发票。\n"
                    .as_bytes()
                    .to_vec(),
            )])
            .expect("bundle"),
        )
        .expect("knowledge");
        assert!(small.set_faq_vectors(vec![e(0), e(2), e(3)]));
        assert!(
            small
                .answer_with("买了不想要了怎么办", "zh", now, Some(&q))
                .is_none()
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
    fn products_are_named_by_a_word_only_they_have_by_kind_and_by_colour_in_either_language() {
        let k = shop();
        // "hoodie" is a kind (three products), "grey" narrows it to the one in grey.
        let a = k
            .answer("is the grey hoodie in stock in M", "en")
            .expect("answer");
        assert!(a.text.starts_with("Cloud Hoodie in Grey M"), "{}", a.text);
        let a = k.answer("灰色的卫衣 cloud 有M码吗", "zh").expect("answer");
        assert!(a.text.contains("Grey M：有货"), "{}", a.text);
        // A word only one title has.
        let a = k.answer("how much is the parka", "en").expect("answer");
        assert!(a.text.contains("$189"), "{}", a.text);
        // A colour the product does not come in: what it does come in.
        let a = k
            .answer("do you have the Breeze Hoodie in black?", "en")
            .expect("answer");
        assert!(a.text.contains("in stock: M"), "{}", a.text);
        // A kind without a product: the FAQ when it answers, else which one.
        let a = k.answer("which hoodie sizes", "en").expect("answer");
        assert!(
            matches!(a.kind, Kind::Which | Kind::Recommendation),
            "{:?}",
            a
        );
        // Something about a named product its facts do not cover: the policy, or a person.
        let a = k.answer("Cloud Hoodie 退货政策", "zh").expect("answer");
        assert_eq!(a.kind, Kind::Faq, "{}", a.text);
        assert!(
            k.answer("does the Cloud Hoodie glow in the dark", "en")
                .is_none(),
            "not in the shop's knowledge"
        );
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
    fn size_charts_fit_the_customers_measurements_and_colours_are_words() {
        let fact = |name: &str, value: &str| crate::product::Fact {
            name: name.into(),
            value: value.into(),
            source: String::new(),
        };
        let p = Product {
            title: "胸背带".into(),
            facts: vec![
                fact("材质", "尼龙"),
                fact("尺码 S", "胸围 35-45cm, 适合体重 2-6kg"),
                fact("尺码 M", "胸围 45-55cm, 适合体重 6-12kg"),
                fact("尺码 L", "胸围 55–68 cm, 适合体重 12~25kg"),
            ],
            ..Default::default()
        };
        let row = |q: &str| size_row(&p, q).map(|f| f.name.clone());
        assert_eq!(row("我家狗胸围50cm穿哪个码").as_deref(), Some("尺码 M"));
        assert_eq!(row("20斤的狗穿什么码").as_deref(), Some("尺码 M"), "10 kg");
        assert_eq!(row("chest 60 cm, which size?").as_deref(), Some("尺码 L"));
        assert_eq!(row("胸围80cm穿哪个码"), None, "nothing fits: no guess");
        assert_eq!(row("材质是什么"), None, "not a size question");
        assert!(!names_colour("蛋白质含量是多少"));
        assert!(!names_colour("长度几厘米"));
        assert!(names_colour("有灰色的吗") && names_colour("要白的") && names_colour("navy?"));
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
