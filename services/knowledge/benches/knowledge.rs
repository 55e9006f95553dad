//! `cargo bench -p kefu-knowledge-service --bench knowledge`: a synthetic shop with 5,000
//! products (2,500 storefront pages in three templates, 2,500 Shopify products in JSONL), a
//! bilingual FAQ and scenarios.
//!
//! * import: what `ImportBundle` does with it — parse every file, build the tantivy index,
//!   store the files as a version (SQLite) — timed as a whole (target: under a minute);
//! * answer: `KnowledgeService/Answer` called in-process as the assistant calls it (the shop's
//!   active version looked up in the database, then retrieval and the answer) for 3,000 mixed
//!   questions, after a warm-up: p50, p99, max (target: p99 under 20 ms);
//! * quote: `KnowledgeService/QuotePrice` in-process for 3,000 carts of 20 lines under eleven
//!   promotions of every kind (target: p99 under 1 ms).
//!
//! The bundle is also written to `target/knowledge-bench-bundle/` so the same import can be
//! timed through the real service and CLI (docs/knowledge.md, "Measured").
use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use kefu_knowledge::{answer::Knowledge, bundle::Bundle};
use kefu_knowledge_service::{api::Api, entity::migration::Migrator, store};
use kefu_proto::knowledge::v1::{
    AnswerRequest, CartLine, QuotePriceRequest, knowledge_service_server::KnowledgeService,
};
use kefu_runtime::{
    auth::{Caller, Principal},
    db,
};

const PRODUCTS: usize = 5_000;
const QUESTIONS: usize = 3_000;

/// Deterministic pseudo-random numbers (no seed file, same bundle every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next() as usize % xs.len()]
    }
}

const KINDS: &[(&str, &str)] = &[
    ("帐篷", "Tent"),
    ("睡袋", "Sleeping Bag"),
    ("卫衣", "Hoodie"),
    ("羽绒服", "Down Jacket"),
    ("登山鞋", "Hiking Boots"),
    ("背包", "Backpack"),
    ("水杯", "Mug"),
    ("炉头", "Stove"),
    ("头灯", "Headlamp"),
    ("折叠椅", "Camp Chair"),
];
const ADJ: &[&str] = &[
    "Alpine", "Cedar", "Drift", "Ember", "Fjord", "Glacier", "Harbor", "Juniper", "Kestrel",
    "Lumen", "Meadow", "Nimbus", "Orchid", "Pioneer", "Quartz", "Ridge", "Summit", "Tundra",
];
/// Promotions of every kind, on SKUs of the generated Shopify products (2,500 onward).
const PROMOTIONS: &str = "currency: CNY
promotions:
  - {id: cross, kind: threshold, scope: cross_store, every: 300, off: 50}
  - {id: shop-200-20, kind: threshold, scope: shop, min_spend: 200, off: 20}
  - {id: shop-sku-500-60, kind: threshold, scope: shop, min_spend: 500, off: 60, skus: [SH-2500-Grey-M, SH-2501-Grey-M]}
  - {id: coupon-199-20, kind: coupon, issuer: shop, min_spend: 199, off: 20}
  - {id: coupon-999-100, kind: coupon, issuer: shop, min_spend: 999, off: 100}
  - {id: platform-300-30, kind: coupon, issuer: platform, min_spend: 300, off: 30}
  - {id: platform-1000-80, kind: coupon, issuer: platform, min_spend: 1000, off: 80}
  - {id: pct, kind: item_discount, skus: [SH-2502-Grey-M, SH-2503-Grey-M], percent_off: 15}
  - {id: fixed, kind: item_discount, skus: [SH-2504-Grey-M], price: 99}
  - {id: pre, kind: presale, sku: SH-2505-Grey-M, deposit: 50, deposit_value: 150}
  - {id: vip, kind: coupon, issuer: shop, min_spend: 500, off: 200, exclusive: true}
";

const COLORS: &[&str] = &["Grey", "Black", "Olive", "Navy", "Sand"];
const SIZES: &[&str] = &["S", "M", "L", "XL"];

fn product_name(i: usize, r: &mut Lcg) -> (String, &'static str, &'static str) {
    let (zh, en) = KINDS[i % KINDS.len()];
    (format!("{} {en} {i}", r.pick(ADJ)), zh, en)
}

fn html_page(i: usize, r: &mut Lcg) -> String {
    let (name, zh, _) = product_name(i, r);
    let price = 49 + r.next() % 1500;
    let weight = 200 + r.next() % 3000;
    let warmth = 100 + r.next() % 600;
    let color = r.pick(COLORS);
    let mut variants = String::new();
    for s in SIZES {
        let stock = r.next() % 4;
        let _ = write!(
            variants,
            r#"<option value="{i}-{s}" data-sku="SKU-{i}-{s}" data-stock="{stock}">{color} / {s}</option>"#
        );
    }
    match i % 3 {
        0 => format!(
            r#"<!doctype html><html><head><title>{name} | Bench Shop</title>
<link rel="canonical" href="https://bench.example/products/p{i}">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"Product","name":"{name}","sku":"SKU-{i}","description":"{zh} for everyday trips. Weight {weight} g.","offers":{{"@type":"Offer","price":"{price}.00","priceCurrency":"CNY","availability":"https://schema.org/InStock"}}}}</script>
</head><body><h1>{name}</h1><table class="specs"><tr><th>重量</th><td>{weight} g</td></tr><tr><th>保暖指数</th><td>{warmth}</td></tr><tr><th>颜色</th><td>{color}</td></tr></table>
<select name="size">{variants}</select></body></html>"#
        ),
        1 => format!(
            r#"<html><head><meta property="og:title" content="{name}"><meta property="og:url" content="https://bench.example/p/{i}"></head>
<body><div class="product"><h1 class="title">{name}</h1><span class="price">¥{price}</span>
<dl><dt>Weight</dt><dd>{weight} g</dd><dt>Warmth</dt><dd>{warmth} fill</dd><dt>Colour</dt><dd>{color}</dd></dl>
<div class="description"><p>{zh}，适合周末出行。</p><p>Machine washable.</p></div>
<select>{variants}</select></div></body></html>"#
        ),
        _ => format!(
            r#"<html><body><h1>{name}</h1><p class="product-price">价格：{price}元</p>
<ul class="attrs"><li>材质：尼龙</li><li>重量：{weight}克</li><li>产地：浙江</li></ul>
<table><tr><th>尺码</th><th>胸围</th><th>衣长</th></tr><tr><td>M</td><td>108</td><td>70</td></tr><tr><td>L</td><td>114</td><td>72</td></tr></table>
<select>{variants}</select></body></html>"#
        ),
    }
}

fn shopify_line(i: usize, r: &mut Lcg) -> String {
    let (name, zh, en) = product_name(i, r);
    let price = 49 + r.next() % 1500;
    let gsm = 200 + r.next() % 300;
    let variants: Vec<serde_json::Value> = COLORS
        .iter()
        .take(2)
        .flat_map(|c| SIZES.iter().map(move |s| (c, s)))
        .map(|(c, s)| {
            serde_json::json!({"sku": format!("SH-{i}-{c}-{s}"), "title": format!("{c} / {s}"),
                "price": format!("{price}.00"), "inventory_quantity": (i + s.len()) % 5,
                "option1": c, "option2": s})
        })
        .collect();
    serde_json::json!({
        "title": name, "handle": format!("p-{i}"), "product_type": en, "tags": [zh, en],
        "body_html": format!("<p>{zh} {en}.</p><ul><li>Fabric weight: {gsm} gsm</li><li>Material: 80% cotton</li></ul>"),
        "options": [{"name": "Color"}, {"name": "Size"}],
        "variants": variants,
    })
    .to_string()
}

fn faq() -> String {
    let mut s = String::from("# Bench Shop FAQ\n\n");
    let topics = [
        ("退货政策", "收货后7天内可无理由退货，商品需保持完好。"),
        (
            "Return policy",
            "Returns within 7 days of delivery, unused.",
        ),
        ("运费", "订单满99元包邮，偏远地区除外。"),
        (
            "Shipping cost",
            "Free shipping on orders over ¥99, remote regions excepted.",
        ),
        ("发货时间", "付款后48小时内发货。"),
        ("Dispatch time", "We dispatch within 48 hours of payment."),
        ("支付方式", "支持支付宝、微信支付和花呗分期（3期免息）。"),
        (
            "Payment methods",
            "Alipay, WeChat Pay, and Huabei instalments (3 interest-free).",
        ),
        ("发票", "下单时可申请电子普通发票，发货后3个工作日内开具。"),
        (
            "Invoices",
            "Request an e-invoice at checkout; issued within 3 working days.",
        ),
    ];
    for round in 0..6 {
        for (q, a) in topics {
            let _ = writeln!(s, "## {q} {round}\n\n{a}\n");
        }
    }
    s
}

fn bundle_files() -> Vec<(String, Vec<u8>)> {
    let mut r = Lcg(7);
    let mut files = vec![("faq.md".to_owned(), faq().into_bytes())];
    let pages = PRODUCTS / 2;
    for i in 0..pages {
        files.push((
            format!("products/p{i:05}.html"),
            html_page(i, &mut r).into_bytes(),
        ));
    }
    let per_file = (PRODUCTS - pages) / 5;
    for f in 0..5 {
        let mut jsonl = String::new();
        for i in 0..per_file {
            jsonl.push_str(&shopify_line(pages + f * per_file + i, &mut r));
            jsonl.push('\n');
        }
        files.push((format!("products/catalogue-{f}.jsonl"), jsonl.into_bytes()));
    }
    files.push(("promotions.yaml".into(), PROMOTIONS.as_bytes().to_vec()));
    files.push((
        "scenarios.jsonl".into(),
        "{\"text\":\"退货政策是什么\",\"expect\":[\"7天\"]}\n{\"text\":\"what payment methods do you accept?\",\"expect\":[\"Alipay\"]}\n".as_bytes().to_vec(),
    ));
    files
}

fn questions() -> Vec<String> {
    let mut r = Lcg(11);
    let mut out = Vec::new();
    for n in 0..QUESTIONS {
        let i = r.next() as usize % PRODUCTS;
        let (name, zh, en) = product_name(i, &mut Lcg(7 + i as u64));
        let _ = name;
        let q = match n % 8 {
            0 => "退货政策是什么？".to_owned(),
            1 => "do you offer free shipping?".to_owned(),
            2 => format!("{} {en} {i} 有XL吗", r.pick(ADJ)),
            3 => format!("how much is the {en} {i}?"),
            4 => format!("两个人露营{}以内推荐哪款{zh}", 300 + r.next() % 1000),
            5 => format!(
                "which {} is the warmest under ${}",
                en.to_lowercase(),
                100 + r.next() % 900
            ),
            6 => "支持花呗分期吗".to_owned(),
            _ => "can I pay in bitcoin on the moon?".to_owned(),
        };
        out.push(q);
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once too, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let files = bundle_files();
        let bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/knowledge-bench-bundle");
        let _ = std::fs::remove_dir_all(&out);
        for (p, d) in &files {
            let path = out.join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, d).expect("write");
        }
        let dir = std::env::temp_dir().join(format!("kefu-knowledge-bench-{}", std::process::id()));
        let db = db::connect_and_migrate::<Migrator>(&format!("sqlite://{}/k.db", dir.display()))
            .await
            .expect("sqlite");

        let t = Instant::now();
        let parsed = tokio::task::spawn_blocking({
            let files = files.clone();
            move || Bundle::from_files(&files).expect("bundle parses")
        })
        .await
        .expect("parse");
        let parse = t.elapsed();
        let products = parsed.products.len();
        let k = tokio::task::spawn_blocking(move || Knowledge::new(parsed).expect("index"))
            .await
            .expect("index");
        let index = t.elapsed() - parse;
        let v = store::store_version(&db, "bench", &files, "{}")
            .await
            .expect("store");
        let import = t.elapsed();
        store::activate(&db, "bench", v).await.expect("activate");
        println!(
            "import: {} files, {:.1} MiB, {products} products, {} passages: parse {:.2} s, index {:.2} s, store {:.2} s, total {:.2} s",
            files.len(),
            bytes as f64 / 1048576.0,
            k.index.len(),
            parse.as_secs_f64(),
            index.as_secs_f64(),
            (import - parse - index).as_secs_f64(),
            import.as_secs_f64()
        );
        drop(k);

        let api = Api::new(db);
        let ask = |text: &str| {
            let mut req = tonic::Request::new(AnswerRequest {
                shop_id: String::new(),
                text: text.to_owned(),
                language: String::new(),
                intent: String::new(),
            });
            req.extensions_mut().insert(Caller::new(
                Principal::Service {
                    name: "assistant".into(),
                },
                "bench",
            ));
            req
        };
        // The first answer parses and indexes the active version (once per process).
        let t = Instant::now();
        api.answer(ask("退货政策是什么？")).await.expect("answer");
        println!("first answer (loads the version): {:.2} s", t.elapsed().as_secs_f64());
        let qs = questions();
        let n = if quick { 200 } else { qs.len() };
        for q in qs.iter().take(200) {
            api.answer(ask(q)).await.expect("warm-up");
        }
        let mut times = Vec::with_capacity(n);
        let mut found = 0;
        for q in qs.iter().take(n) {
            let t = Instant::now();
            let a = api.answer(ask(q)).await.expect("answer").into_inner();
            times.push(t.elapsed());
            found += a.found as usize;
        }
        times.sort();
        println!(
            "answer: {n} questions ({found} answered): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(&times, 0.5).as_secs_f64() * 1e3,
            pct(&times, 0.9).as_secs_f64() * 1e3,
            pct(&times, 0.99).as_secs_f64() * 1e3,
            times.last().expect("times").as_secs_f64() * 1e3
        );

        // QuotePrice: 20-line carts (the promotions above apply to some of the lines).
        let quote = |start: usize| {
            let mut req = tonic::Request::new(QuotePriceRequest {
                shop_id: String::new(),
                lines: (0..20)
                    .map(|j| CartLine {
                        sku: format!("SH-{}-Grey-M", 2500 + (start + j) % 40),
                        quantity: 1 + (j % 3) as i32,
                    })
                    .collect(),
                held_coupons: Vec::new(),
                at: None,
            });
            req.extensions_mut().insert(Caller::new(
                Principal::Service {
                    name: "assistant".into(),
                },
                "bench",
            ));
            req
        };
        for i in 0..200 {
            api.quote_price(quote(i)).await.expect("warm-up");
        }
        let n = if quick { 200 } else { 3000 };
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            let q = api.quote_price(quote(i)).await.expect("quote").into_inner();
            times.push(t.elapsed());
            assert!(!q.applied.is_empty());
        }
        times.sort();
        println!(
            "quote: {n} carts of 20 lines: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            pct(&times, 0.5).as_secs_f64() * 1e3,
            pct(&times, 0.99).as_secs_f64() * 1e3,
            times.last().expect("times").as_secs_f64() * 1e3
        );
        // The engine alone (no database lookup of the active version, no gRPC types).
        let file: kefu_knowledge::promotions::PromotionsFile =
            serde_norway::from_str(PROMOTIONS).expect("promotions");
        let at = chrono::Utc::now().fixed_offset();
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let lines: Vec<kefu_knowledge::pricing::Line> = (0..20)
                .map(|j| kefu_knowledge::pricing::Line {
                    sku: format!("SH-{}-Grey-M", 2500 + (i + j) % 40),
                    quantity: 1 + (j % 3) as u32,
                    unit_price: rust_decimal::Decimal::new(12_900 + (j as i64) * 1_000, 2),
                })
                .collect();
            let t = Instant::now();
            let q = kefu_knowledge::pricing::quote(&file, &lines, &[], at);
            times.push(t.elapsed());
            assert!(q.total <= q.subtotal);
        }
        times.sort();
        println!(
            "pricing engine alone: p50 {:.3} ms, p99 {:.3} ms",
            pct(&times, 0.5).as_secs_f64() * 1e3,
            pct(&times, 0.99).as_secs_f64() * 1e3
        );
        let _ = std::fs::remove_dir_all(dir);
    });
}
