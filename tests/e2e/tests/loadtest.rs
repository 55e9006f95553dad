//! The load test's lost-message accounting, against the real mesh: a service killed and not
//! restarted during a run leaves messages unanswered, which the report counts as lost; killed
//! and restarted, every accepted message is answered and the report says 0 lost.
use std::{process::Stdio, time::Duration};

use kefu_e2e::{Mesh, SHOP, bin_dir};
use serde_json::Value;

/// Runs kefu-loadtest against the mesh for `secs` at `rate` msg/s; returns (exit code, report).
fn start_run(
    mesh: &Mesh,
    tag: &str,
    rate: u32,
    secs: u32,
    drain: u32,
) -> (tokio::process::Child, std::path::PathBuf) {
    let key_file = std::env::temp_dir().join(format!("{}{tag}-key", mesh.prefix));
    std::fs::write(&key_file, &mesh.api_key).expect("key file");
    let report = std::env::temp_dir().join(format!("{}{tag}-report.json", mesh.prefix));
    let child = tokio::process::Command::new(bin_dir().join("kefu-loadtest"))
        .args(["--scenario", "daily", "--ramp-up", "1"])
        .args(["--rate", &rate.to_string(), "--duration", &secs.to_string()])
        .args(["--drain", &drain.to_string(), "--max-p99-ms", "600000"])
        .args([
            "--host",
            &mesh.http_url(),
            "--grpc",
            &mesh.grpc_url("session-router"),
        ])
        .arg("--shop")
        .arg(format!("{SHOP}={}", key_file.display()))
        .arg("--report-json")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kefu-loadtest");
    (child, report)
}

async fn finish(child: tokio::process::Child, report: &std::path::Path) -> (i32, Value, String) {
    let out = tokio::time::timeout(Duration::from_secs(200), child.wait_with_output())
        .await
        .expect("load test finishes")
        .expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(report)
        .map(|s| serde_json::from_str(&s).expect("report json"))
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_messages_are_counted_and_a_restart_loses_none() {
    let mut mesh = Mesh::start("loadtest").await;

    // Killed and restarted in the middle of a run: nothing is lost. (The restart waits out the
    // consumer session timeout, 6 s here: tansu 0.6 can leave a group without assignments when
    // a new member joins while the dead one still holds the partitions; see
    // docs/performance.md.)
    let (child, report) = start_run(&mesh, "restart", 10, 12, 60);
    tokio::time::sleep(Duration::from_secs(3)).await;
    mesh.kill("assistant").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    mesh.restart("assistant").await;
    let (code, r, out) = finish(child, &report).await;
    assert_eq!(code, 0, "{out}\n{}", mesh.log_tail("assistant"));
    assert_eq!(r["lost"], 0, "{out}");
    assert!(r["accepted"].as_u64().unwrap_or(0) >= 60, "{out}");
    assert_eq!(r["answered"], r["accepted"], "{out}");

    // Killed and not restarted: the bot's answers never come, and the report says so.
    let (child, report) = start_run(&mesh, "killed", 10, 6, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    mesh.kill("assistant").await;
    let (code, r, out) = finish(child, &report).await;
    assert_eq!(code, 1, "the lost threshold fails the run: {out}");
    let lost = r["lost"].as_u64().expect("lost");
    let accepted = r["accepted"].as_u64().expect("accepted");
    assert!(lost > 0, "{out}");
    assert_eq!(
        lost,
        accepted - r["answered"].as_u64().expect("answered"),
        "{out}"
    );
    assert!(r["failures"].to_string().contains("lost"), "{out}");
}
