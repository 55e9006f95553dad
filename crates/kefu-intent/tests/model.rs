//! The bundled model against the data it was trained on and the held-out splits.
use std::{io::Write, path::PathBuf, process::Stdio};

use kefu_intent::{data, eval, train};

fn shared() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/intents");
    assert!(
        p.exists(),
        "{} missing: the intent data lives in the shared folder beside the repo",
        p.display()
    );
    p
}

#[test]
fn training_reproduces_the_bundled_model() {
    let splits = data::load(&shared()).expect("data");
    let fresh = train::train(&splits, &train::Settings::default());
    let bundled = kefu_intent::bundled().expect("bundled");
    assert_eq!(
        fresh.version, bundled.version,
        "data, features or settings changed: run `cargo run --release --bin kefu-intent -- train` and commit the model"
    );
    assert_eq!(
        fresh.to_bytes(),
        kefu_intent::BUNDLED_MODEL,
        "training is deterministic"
    );
}

#[test]
fn bundled_model_meets_the_held_out_targets() {
    let splits = data::load(&shared()).expect("data");
    let m = kefu_intent::bundled().expect("bundled");
    let ext = eval::evaluate(&m, &splits.test_external);
    assert!(
        ext.in_scope_accuracy >= 0.93,
        "in-scope accuracy {:.3}",
        ext.in_scope_accuracy
    );
    let oos = eval::evaluate(&m, &splits.test_oos);
    assert!(
        oos.oos_recall >= 0.90,
        "CLINC oos_test recall {:.3}",
        oos.oos_recall
    );
    // Held-out splits never overlap the training data.
    let train: std::collections::HashSet<String> = splits
        .train
        .iter()
        .map(|e| data::dedupe_key(&e.text))
        .collect();
    assert!(
        splits
            .test_external
            .iter()
            .all(|e| !train.contains(&data::dedupe_key(&e.text)))
    );
}

#[test]
fn classify_cli_speaks_json_lines() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kefu-intent"))
        .arg("classify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn kefu-intent");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all("{\"id\":1,\"text\":\"我要退货 202611110001\"}\nnot json\n{\"id\":\"b\",\"text\":\"转人工\"}\n".as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["intent"], "return_exchange");
    assert!(
        lines[0]["confidence"]
            .as_f64()
            .is_some_and(|c| (0.0..=1.0).contains(&c))
    );
    assert_eq!(lines[0]["entities"][0]["kind"], "order_id");
    assert_eq!(lines[0]["entities"][0]["start"], 5);
    assert!(lines[1]["error"].is_string());
    assert_eq!(
        (lines[2]["id"].as_str(), lines[2]["intent"].as_str()),
        (Some("b"), Some("human_agent"))
    );
}
