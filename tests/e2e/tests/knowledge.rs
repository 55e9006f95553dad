//! Answers from each shop's own knowledge, through the whole mesh on the real broker: two
//! shops with different policies get different, correct answers to the same question; a shop
//! with no knowledge gets a person, never an invented policy. `kefu knowledge import` refuses a
//! malformed bundle file by file and line and keeps the active version, refuses a version
//! whose scenarios score lower (unless forced), and `rollback` brings the previous one back.
use std::path::{Path, PathBuf};

use kefu_e2e::{Mesh, bin_dir};
use serde_json::json;

fn bundle(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(p, text).expect("file");
    }
    dir.to_path_buf()
}

/// `kefu knowledge ARGS… --url … --api-key KEY`: (success, stdout, stderr).
fn kefu(mesh: &Mesh, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin_dir().join("kefu"))
        .arg("knowledge")
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

async fn ask(mesh: &Mesh, key: &str, user: &str, id: &str, text: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/messages", mesh.http_url()))
        .bearer_auth(key)
        .json(
            &json!({"channel": "web", "channel_user_id": user, "channel_message_id": id,
            "text": text, "wait_ms": 30000}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{text}");
    r.json().await.expect("json")
}

const FAQ_A: &str = "## 退货政策\n\n收货后15天内可无理由退货，退货运费由买家承担。\n\n## Return policy\n\nReturns are accepted within 15 days of delivery; the buyer pays return shipping.\n";
const FAQ_B: &str = "## 退货政策\n\n本店支持30天无理由退货，退货运费由本店承担。\n\n## Return policy\n\nReturns are accepted within 30 days; we pay return shipping.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shop_answers_from_its_own_knowledge_and_releases_are_checked() {
    let mesh = Mesh::start("knowledge").await;
    let a = mesh.api_key.clone();
    let b = mesh.add_shop("shop-b").await;
    let c = mesh.add_shop("shop-c").await;
    let dir = mesh.dir.join("bundles");
    let scenarios_a = "{\"text\":\"退货政策是什么？\",\"expect\":[\"15天\"],\"forbid\":[\"30天\"]}\n{\"text\":\"what is your return policy?\",\"expect\":[\"15 days\"]}\n";
    let (ok, out, err) = kefu(
        &mesh,
        &a,
        &[
            "import",
            bundle(
                &dir.join("a1"),
                &[("faq.md", FAQ_A), ("scenarios.jsonl", scenarios_a)],
            )
            .to_str()
            .unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("scenarios: 2/2 pass") && out.contains("version 1 is active"),
        "{out}"
    );
    let (ok, out, err) = kefu(
        &mesh,
        &b,
        &[
            "import",
            bundle(&dir.join("b1"), &[("faq.md", FAQ_B)])
                .to_str()
                .unwrap(),
        ],
    );
    assert!(ok && out.contains("version 1 is active"), "{out}{err}");

    // The same question, three shops.
    let ra = ask(&mesh, &a, "ua", "k1", "退货政策是什么？").await;
    let rb = ask(&mesh, &b, "ub", "k1", "退货政策是什么？").await;
    let rc = ask(&mesh, &c, "uc", "k1", "退货政策是什么？").await;
    let text = |r: &serde_json::Value| r["reply"]["text"].as_str().unwrap_or_default().to_owned();
    assert!(
        text(&ra).contains("15天") && !text(&ra).contains("30"),
        "{ra}"
    );
    assert!(
        text(&rb).contains("30天") && !text(&rb).contains("15"),
        "{rb}"
    );
    assert_eq!(ra["reply"]["source"], "bot");
    // No knowledge: a person, never a policy. The reply is the ticket's acknowledgement.
    assert_eq!(rc["reply"]["source"], "system", "{rc}");
    assert!(
        !rc["reply"]["ticket_id"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{rc}"
    );
    // (Numbers with their units: the ticket id is random hex and may hold "15".)
    for policy in ["15天", "30天", "15 days", "30 days", "7天", "7 days"] {
        assert!(!text(&rc).contains(policy), "an invented policy: {rc}");
    }
    let en = ask(&mesh, &a, "ua2", "k2", "what is your return policy?").await;
    assert!(text(&en).contains("within 15 days"), "{en}");

    // A malformed bundle: every problem by file and line; the active version stays.
    let broken = bundle(
        &dir.join("a-broken"),
        &[
            ("faq.md", "## 退货政策\n\n## 运费\n\n满99包邮。\n"),
            (
                "products/x.jsonl",
                "{\"title\":\"ok\",\"handle\":\"ok\"}\nnot json\n",
            ),
            ("notes.txt", "stray"),
        ],
    );
    let (ok, out, err) = kefu(&mesh, &a, &["import", broken.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("faq.md:1") && err.contains("products/x.jsonl:2") && err.contains("notes.txt"),
        "{err}"
    );
    let (_, status, _) = kefu(&mesh, &a, &["status"]);
    assert!(status.contains("* v1"), "{status}");

    // A version whose scenarios score lower is not activated; --force activates; rollback.
    let worse = bundle(
        &dir.join("a2"),
        &[
            ("faq.md", "## 发货时间\n\n付款后48小时内发货。\n"),
            ("scenarios.jsonl", scenarios_a),
        ],
    );
    let (ok, out, _) = kefu(&mesh, &a, &["import", worse.to_str().unwrap()]);
    assert!(
        !ok && out.contains("0/2 pass on version 2, 2/2 on the active version 1"),
        "{out}"
    );
    let (_, status, _) = kefu(&mesh, &a, &["status"]);
    assert!(
        status.contains("* v1") && status.contains("  v2"),
        "{status}"
    );
    let (ok, out, err) = kefu(&mesh, &a, &["import", worse.to_str().unwrap(), "--force"]);
    assert!(ok && out.contains("version 3 is active"), "{out}{err}");
    let r = ask(&mesh, &a, "ua3", "k3", "退货政策是什么？").await;
    assert_eq!(
        r["reply"]["source"], "system",
        "version 3 has no return policy: a person: {r}"
    );
    let (ok, out, _) = kefu(&mesh, &a, &["rollback"]);
    assert!(ok && out.contains("version 1 is active"), "{out}");
    let r = ask(&mesh, &a, "ua4", "k4", "退货政策是什么？").await;
    assert!(text(&r).contains("15天"), "{r}");

    // Another shop's credential reaches none of it.
    let (ok, _, err) = kefu(&mesh, &b, &["status", "--shop", kefu_e2e::SHOP]);
    assert!(
        !ok && err.contains("not the shop of this credential"),
        "{err}"
    );
}

/// FAQ entries found by meaning, through the whole mesh with the real embedding server
/// (`KEFU_TEST_EMBEDDINGS`, multilingual-e5-small): questions that share no word with the
/// demo shop's FAQ — the words alone, asked here of the same bundle, miss them — get the
/// entry that answers them, across languages; questions the shop does not answer still go to
/// a person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faq_entries_are_found_by_meaning_through_the_mesh() {
    assert!(
        kefu_e2e::embeddings_url().is_some(),
        "KEFU_TEST_EMBEDDINGS: make test starts the embedding server"
    );
    let mesh = Mesh::start("kmeaning").await;
    let key = mesh.api_key.clone();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/knowledge");
    let (ok, out, err) = kefu(&mesh, &key, &["import", demo.to_str().expect("path")]);
    assert!(ok, "{out}{err}");
    let words_only = kefu_knowledge::answer::Knowledge::new(
        kefu_knowledge::Bundle::load_dir(&demo).expect("demo"),
    )
    .expect("knowledge");
    for (i, (q, want)) in [
        (
            "I changed my mind after it arrived, can I send it back?",
            "7 days",
        ),
        ("my tent pole snapped, what now", "warranty"),
        ("衣服买大还是买小", "cm"),
        ("我在乌鲁木齐，寄过来要加钱吗", "新疆"),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            !words_only.reply(q, "").contains(want),
            "{q}: the words alone answer it, so it proves nothing"
        );
        let r = ask(&mesh, &key, &format!("m{i}"), &format!("meaning-{i}"), q).await;
        let reply = r["reply"]["text"].as_str().unwrap_or_default();
        assert!(reply.contains(want), "{q} → {r}");
    }
    // In scope for the shop although no intent fits: the classifier says out_of_scope, the
    // shop's catalogue answers (docs/intent.md: out of scope goes to the knowledge answerer,
    // a person only when it has no answer).
    let q = "Ridge Fleece Hoodie 面料";
    assert_eq!(
        kefu_intent::bundled().expect("model").predict(q).intent,
        "out_of_scope"
    );
    let r = ask(&mesh, &key, "c0", "catalogue-0", q).await;
    assert_eq!(r["reply"]["source"], "bot", "{q}: {r}");
    assert!(
        r["reply"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("80% cotton"),
        "{q}: the material of the catalogue: {r}"
    );
    for (i, q) in ["今天天气怎么样", "do you sell gift cards for weddings?"]
        .into_iter()
        .enumerate()
    {
        let r = ask(&mesh, &key, &format!("o{i}"), &format!("oos-{i}"), q).await;
        assert_eq!(r["reply"]["source"], "system", "{q}: a person: {r}");
    }
    let m = mesh.metrics_text("knowledge").await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("kefu_knowledge_embeddings_total{outcome=\"query\"}")),
        "{m}"
    );
}
