//! A shop's own scenarios, asked through the whole mesh on the real broker as customers ask
//! them (`POST /v1/messages`: translation, classifier, router, assistant, knowledge): the demo
//! bundle that `make run` imports and the smaller bundles written after the answering code was
//! frozen (`tests/knowledge/`), each at least what it scored when measured (the issue asks
//! 90%; see `BUNDLES`). Every failure is printed with the reply, so the score and its misses
//! are in the test's output.
use std::path::{Path, PathBuf};

use kefu_e2e::{Mesh, bin_dir};
use kefu_knowledge::scenario;
use serde_json::json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Imports `dir` for the shop of `key`, then asks each of its scenarios as a new customer:
/// (passed, total, failures).
async fn score(mesh: &Mesh, key: &str, tag: &str, dir: &Path) -> (usize, usize, Vec<String>) {
    let out = std::process::Command::new(bin_dir().join("kefu"))
        .args(["knowledge", "import"])
        .arg(dir)
        .args(["--url", &mesh.grpc_url("knowledge"), "--api-key", key])
        .output()
        .expect("kefu");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{tag}: kefu knowledge import\n{stdout}");
    let mut problems = Vec::new();
    let text = std::fs::read_to_string(dir.join("scenarios.jsonl")).expect("scenarios.jsonl");
    let scenarios = scenario::parse("scenarios.jsonl", &text, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let r: serde_json::Value = client
            .post(format!("{}/v1/messages", mesh.http_url()))
            .bearer_auth(key)
            .json(
                &json!({"channel": "web", "channel_user_id": format!("{tag}-customer-{i}"),
                "channel_message_id": format!("{tag}-{i}"), "text": s.text, "wait_ms": 30000}),
            )
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        let reply = r["reply"]["text"].as_str().unwrap_or_default();
        let why = scenario::check(s, reply);
        if !why.is_empty() {
            failures.push(format!(
                "{} → {} [{}]: {}",
                s.text,
                reply,
                r["reply"]["source"].as_str().unwrap_or("no reply"),
                why.join(", ")
            ));
        }
    }
    let passed = scenarios.len() - failures.len();
    println!(
        "{tag}: {passed}/{} scenarios pass through the mesh",
        scenarios.len()
    );
    for f in &failures {
        println!("  FAIL {f}");
    }
    (passed, scenarios.len(), failures)
}

/// The bundles and the least each must pass through the mesh. The bar is 90%; the
/// demo shop and the first held-out shop (a development bundle since) meet it. The later
/// held-out shops are measured as they came (docs/knowledge.md, "Measured"): their floor is
/// what the code scored on them, so the test catches a regression, not a result we wish for.
const BUNDLES: &[(&str, &str, usize)] = &[
    ("demo", "demo/knowledge", 39),            // of 43: 90%
    ("lumi", "tests/knowledge/lumi-shop", 18), // of 20: 90%
    // Of 20: 11 at its freeze, 15 after fixes; 17 with FAQ entries found by meaning, when
    // the embedding model answers in time (the floor is the score by words alone).
    ("furkid", "tests/knowledge/furkid-shop", 15),
    // Of 20: 13 at its freeze; 15 by meaning (as above).
    ("kitchen", "tests/knowledge/heldout-shop", 13),
    ("held-out", "tests/knowledge/nuanya-shop", HELD_OUT_FLOOR),
];

/// Shop #4 (baby and kids), written after the fourth freeze (FAQ by meaning on): 9/20 (45%)
/// on its first run, with and without the embedding model, far below the 90% (which
/// stays open for it); 11/20 after the two fixes it led to (`箱` as a measure word, a variant
/// named without its bracketed note), so no longer held out.
const HELD_OUT_FLOOR: usize = 11;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_and_the_held_out_bundles_pass_through_the_mesh() {
    assert!(
        kefu_e2e::embeddings_url().is_some(),
        "KEFU_TEST_EMBEDDINGS: the scores are measured with FAQ entries found by meaning (make test starts the embedding server)"
    );
    let mesh = Mesh::start("kscen").await;
    let mut below = Vec::new();
    for (tag, dir, floor) in BUNDLES {
        let key = if *tag == "demo" {
            mesh.api_key.clone()
        } else {
            mesh.add_shop(&format!("{tag}-shop")).await
        };
        let (passed, total, failures) = score(&mesh, &key, tag, &repo().join(dir)).await;
        if passed < *floor {
            below.push(format!("{tag}: {passed}/{total} < {floor}: {failures:#?}"));
        }
    }
    assert!(below.is_empty(), "{below:#?}");
}
