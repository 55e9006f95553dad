//! Inputs the fuzz targets found to panic or over-allocate, one test per bug, named after it
//! (docs/security.md, "Fuzzing"). Each failed before its fix.
use kefu_fuzz::targets;
use serde_json::json;

/// `shopify::order` summed a refund's transaction amounts with `+`: 100 transactions of
/// 999999999999999.99 overflowed i64 (a panic with overflow checks, a wrapped negative
/// refund without).
#[test]
fn shopify_refund_sum_overflow() {
    let order = json!({
        "id": 1, "order_number": 1, "total_price": "1.00",
        "refunds": [{"id": 1, "transactions": vec![json!({"amount": "999999999999999.99"}); 100]}],
    });
    let bytes = serde_json::to_vec(&order).unwrap();
    targets::shopify_order(&bytes);
    let doc = kefu_order_sync::model::shopify::order(&order);
    assert!(doc.is_err() || doc.unwrap().returns.iter().all(|r| r.refund_minor >= 0));
}

/// Not a bug: YAML aliases that would expand exponentially ("billion laughs") and deep
/// nesting are refused by the YAML parser, not expanded.
#[test]
fn promotions_yaml_alias_bomb_is_refused() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    yaml.push_str("currency: CNY\npromotions: *a11\n");
    let files = vec![("promotions.yaml".to_owned(), yaml.into_bytes())];
    assert!(kefu_knowledge::Bundle::from_files(&files).is_err());
}

/// `promotions.yaml` nested 100 000 flow collections deep (200 KB) kept the YAML scanner busy
/// for over a minute (its work grows with the square of the depth; an 8 MiB file would take
/// hours) before the parser's own depth limit refused it. Now refused before parsing.
#[test]
fn promotions_yaml_deep_flow_nesting_quadratic() {
    let deep = format!("currency: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let files = vec![("promotions.yaml".to_owned(), deep.into_bytes())];
    let e = kefu_knowledge::Bundle::from_files(&files).unwrap_err();
    assert!(e.to_string().contains("nested deeper than"), "{e}");
    // Nesting the YAML parser accepts is still parsed (and refused for what it says).
    let ok = format!(
        "currency: CNY\npromotions: []\nx: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let files = vec![("promotions.yaml".to_owned(), ok.into_bytes())];
    if let Err(e) = kefu_knowledge::Bundle::from_files(&files) {
        assert!(!e.to_string().contains("nested deeper than"), "{e}");
    }
}

/// A shop model whose JSON header holds a number beyond `f32` (`"ngram_temperature": 1e39`)
/// loaded as infinity: every probability became NaN, and the loaded model could not be saved
/// again (JSON has no infinity). Now refused as a damaged header.
#[test]
fn shop_model_header_infinite_float() {
    let seed = kefu_fuzz::seeds::shop_model(0);
    let n = u32::from_le_bytes(seed[8..12].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&seed[12..12 + n]).unwrap();
    header["ngram_temperature"] = serde_json::from_str("1e39").unwrap();
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = seed[..8].to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&seed[12 + n..]);
    targets::shop_model(&bytes);
    assert!(kefu_intent::shop::ShopModel::from_bytes(&bytes).is_err());
}
