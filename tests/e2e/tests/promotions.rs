//! `QuotePrice` and `kefu promotions quote` against a shop's imported bundle, through the
//! knowledge service on the real mesh: the prices of docs/promotions.md's worked carts, the
//! reasons a promotion does not apply, unknown SKUs refused by line, and one shop unable to
//! price with another's promotions.
use std::path::Path;

use kefu_e2e::{Mesh, bin_dir};

const DOC: &str = include_str!("../../../docs/promotions.md");

/// `kefu promotions quote ARGS… --url … --api-key KEY`: (success, stdout, stderr).
fn quote(mesh: &Mesh, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin_dir().join("kefu"))
        .args(["promotions", "quote"])
        .args(args)
        .args(["--url", &mesh.grpc_url("knowledge"), "--api-key", key])
        .output()
        .expect("kefu");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kefu knowledge import DIR` for the shop of `key`; it must succeed.
fn import(mesh: &Mesh, key: &str, dir: &Path) {
    let out = std::process::Command::new(bin_dir().join("kefu"))
        .args(["knowledge", "import"])
        .arg(dir)
        .args(["--url", &mesh.grpc_url("knowledge"), "--api-key", key])
        .output()
        .expect("kefu");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_bundle(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("products")).expect("dir");
    let yaml = DOC
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the promotions block of docs/promotions.md");
    std::fs::write(dir.join("promotions.yaml"), yaml).expect("promotions");
    // The catalogue of the worked carts, as Shopify products.
    let mut jsonl = String::new();
    for (sku, title, price) in [
        ("LIP-01", "Velvet Lipstick", "200.00"),
        ("SERUM-50", "Glow Serum 50ml", "600.00"),
        ("MASK-05", "Sheet Mask x5", "79.00"),
        ("CREAM-30", "Night Cream", "180.00"),
        ("TONER-1", "Toner", "99.00"),
        ("BRUSH-9", "Brush", "45.00"),
    ] {
        jsonl.push_str(
            &serde_json::json!({"title": title, "handle": sku.to_lowercase(),
                "variants": [{"sku": sku, "price": price, "inventory_quantity": 10}]})
            .to_string(),
        );
        jsonl.push('\n');
    }
    std::fs::write(dir.join("products/catalog.jsonl"), jsonl).expect("catalogue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_are_priced_with_the_shops_own_promotions() {
    let mesh = Mesh::start("promo").await;
    let key = mesh.api_key.clone();
    let dir = mesh.dir.join("promo-bundle");
    write_bundle(&dir);
    import(&mesh, &key, &dir);

    let d11 = "2026-11-05T12:00:00+08:00";
    // C17: one shop discount keeps the cart above ¥600 for two cross-store tiers; the VIP
    // coupon alone is dearer.
    let (ok, out, err) = quote(
        &mesh,
        &key,
        &[
            "--sku",
            "SERUM-50:1",
            "--sku",
            "LIP-01",
            "--hold",
            "vip-exclusive",
            "--at",
            d11,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("total 560 CNY"), "{out}");
    assert!(out.contains("deposit 50 CNY now (not refundable)"), "{out}");
    assert!(out.contains("vip-exclusive — better combination"), "{out}");
    // C32 as JSON: Double-11 stacking of every kind.
    let (ok, out, err) = quote(
        &mesh,
        &key,
        &[
            "--sku",
            "LIP-01:2",
            "--sku",
            "MASK-05:2",
            "--sku",
            "SERUM-50:1",
            "--hold",
            "shop-coupon-50",
            "--hold",
            "platform-coupon-30",
            "--at",
            d11,
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let q: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (q["total"].as_str(), q["deposit_now"].as_str()),
        (Some("778"), Some("50")),
        "{q}"
    );
    // One ¥20 shop discount (the 满减 or the coupon: the same) keeps 908 for three
    // cross-store tiers; the ¥50 shop coupon as well would cost the same (858 → two tiers), so
    // the combination with fewer promotions is quoted.
    let applied: Vec<(&str, &str)> = q["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .filter_map(|a| Some((a["id"].as_str()?, a["stage"].as_str()?)))
        .collect();
    let ids: Vec<&str> = applied.iter().map(|a| a.0).collect();
    for id in [
        "lipstick-10pct",
        "mask-59",
        "serum-presale",
        "d11-cross-store",
        "platform-coupon-30",
    ] {
        assert!(ids.contains(&id), "{q}");
    }
    let shop: Vec<&str> = applied
        .iter()
        .filter(|a| a.1 == "shop")
        .map(|a| a.0)
        .collect();
    assert!(
        shop == ["shop-200-20"] || shop == ["shop-coupon-20"],
        "one ¥20 shop discount: {q}"
    );
    // Short of a threshold, with the amount.
    let (ok, out, _) = quote(&mesh, &key, &["--sku", "TONER-1:2", "--at", d11]);
    assert!(ok && out.contains("total 198 CNY"), "{out}");
    assert!(out.contains("1 CNY short of 199 CNY"), "{out}");
    assert!(
        out.contains("spend 2 CNY more for 20 CNY more off (shop-200-20)"),
        "{out}"
    );

    // The same engine in chat, through the whole mesh, in both languages: 99 + (200 −10%)
    // = 279; −20 shop 满减 −20 shop coupon = 239 (below every cross-store tier, whatever
    // the date).
    for (id, text, want) in [
        (
            "cart-zh",
            "一瓶 Toner 和一支 Velvet Lipstick 用券后一共多少钱？",
            "合计 ¥239",
        ),
        (
            "cart-en",
            "If I buy a Toner and the Velvet Lipstick, what do I pay in total?",
            "you pay ¥239 in all",
        ),
    ] {
        let (status, r) = mesh
            .post_message(&serde_json::json!({"channel": "web", "channel_user_id": id,
                "channel_message_id": id, "text": text, "wait_ms": 30000}))
            .await;
        assert_eq!(status, 200, "{r}");
        let reply = r["reply"]["text"].as_str().unwrap_or_default();
        assert!(reply.contains(want), "{text} → {r}");
        assert!(reply.contains("−¥20"), "the steps: {reply}");
    }

    // An unknown SKU: refused, by line.
    let (ok, _, err) = quote(&mesh, &key, &["--sku", "TONER-1", "--sku", "NOPE-9:2"]);
    assert!(
        !ok && err.contains("lines[1].sku") && err.contains("NOPE-9"),
        "{err}"
    );
    let (ok, _, err) = quote(&mesh, &key, &["--sku", "TONER-1:0"]);
    assert!(!ok && err.contains("lines[0].quantity"), "{err}");

    // Another shop: its own (no) knowledge, never this shop's promotions.
    let b = mesh.add_shop("shop-b").await;
    let (ok, _, err) = quote(&mesh, &b, &["--sku", "TONER-1"]);
    assert!(!ok && err.contains("no active knowledge version"), "{err}");
    let (ok, _, err) = quote(&mesh, &b, &["--sku", "TONER-1", "--shop", kefu_e2e::SHOP]);
    assert!(
        !ok && err.contains("not the shop of this credential"),
        "{err}"
    );
}

/// The demo shop that `make run` imports (demo/knowledge), asked as customers ask, through the
/// whole mesh on the real broker: carts, a coupon the customer holds, how much more for the
/// next 满减, the promotions running now and a pre-sale, in Chinese and English. The amounts
/// are worked by hand from demo/knowledge/promotions.yaml's everyday promotions (Double 11's
/// are over, whatever today is): shop 满减 ¥30 per full ¥300 and the claimable ¥10 coupon at
/// ¥199 (stage 3), the held ¥60 platform coupon at ¥1000 (stage 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shop_prices_carts_thresholds_and_presales_in_chat() {
    let mesh = Mesh::start("promo-demo").await;
    let key = mesh.api_key.clone();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/knowledge");
    import(&mesh, &key, &demo);
    let cases: &[(&str, &[&str], &[&str])] = &[
        // 2 × 229 + stove 259 (its page's price: the sale price, ¥299 struck out) = 717 →
        // 2 × 30 off → −10 coupon = 647.
        (
            "买两件 Ridge Fleece Hoodie 和一个卡式炉一共多少钱？",
            &[
                "合计 ¥647",
                "便携卡式炉 Camp Stove ×1（¥259）",
                "店铺满减 每满300减30 −¥60",
                "店铺券 满199减10 −¥10",
                "按已领取",
            ],
            &["双11"],
        ),
        // 899 + 229 = 1128 → 3 × 30 → −10 = 1028 → the held platform coupon −60 = 968.
        (
            "I have the ¥60 off ¥1000 platform coupon. If I buy the Trail 2P tent and a Ridge Fleece Hoodie, what do I pay in total?",
            &[
                "you pay ¥968 in all",
                "平台券 满1000减60 −¥60",
                "With your 平台券 满1000减60",
            ],
            &[],
        ),
        // Without the coupon: 1028.
        (
            "If I buy the Trail 2P tent and a Ridge Fleece Hoodie, what do I pay in total?",
            &["you pay ¥1028 in all"],
            &["平台券"],
        ),
        // 899: 2 × 30 and the coupon; ¥1 more reaches the third ¥300.
        (
            "我买一顶山径双人帐篷，还差多少能再减？",
            &["合计 ¥829", "再买 ¥1 可再减 ¥30"],
            &[],
        ),
        // ¥250: the coupon only (240); ¥50 more for the shop's ¥300.
        (
            "I have ¥250 in my cart, how much more do I need for the discount?",
            &["you pay ¥240", "Add ¥50 more to take ¥30 more off"],
            &[],
        ),
        (
            "现在有什么满减活动？",
            &[
                "店铺满减 每满300减30",
                "店铺券 满199减10，可领取",
                "平台券 满1000减60，需持有此券",
            ],
            &["双11", "满399减40"],
        ),
        // The made-to-order kettle: 459 − 100 (the ¥50 deposit's value) = 359 → −30 → −10 =
        // 319 balance, 50 deposit now, 369 in all.
        (
            "If I order the copper kettle, what do I pay in total?",
            &[
                "you pay ¥369 in all",
                "deposit of ¥50 is paid now (not refundable)",
                "balance of ¥319",
            ],
            &[],
        ),
        ("铜壶预售定金能退吗？", &["定金不退"], &["定金可退"]),
    ];
    for (i, (text, want, forbid)) in cases.iter().enumerate() {
        let id = format!("demo-cart-{i}");
        let (status, r) = mesh
            .post_message(&serde_json::json!({"channel": "web", "channel_user_id": id,
                "channel_message_id": id, "text": text, "wait_ms": 30000}))
            .await;
        assert_eq!(status, 200, "{r}");
        let reply = r["reply"]["text"].as_str().unwrap_or_default();
        for w in *want {
            assert!(reply.contains(w), "{text} → {reply} (wanted {w})");
        }
        for f in *forbid {
            assert!(!reply.contains(f), "{text} → {reply} (must not say {f})");
        }
    }
}
