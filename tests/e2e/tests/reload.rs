//! The intent model is reloaded on SIGHUP without dropping traffic; a bad file is refused and
//! the running model kept.
use std::{process::Stdio, time::Duration};

use kefu_e2e::{Authed, Bearer, SERVICE_SECRET, bin_dir, brokers, free_port};
use kefu_proto::intent::v1::{
    ClassifyBatchRequest, ClassifyRequest, ClassifyRequestItem,
    intent_classifier_service_client::IntentClassifierServiceClient,
};
use tonic::{Code, transport::Channel};

async fn model_version(client: &mut IntentClassifierServiceClient<Authed>) -> String {
    client
        .classify(ClassifyRequest {
            shop_id: "s".into(),
            text: "我要退货".into(),
            language: String::new(),
        })
        .await
        .expect("classify")
        .into_inner()
        .model
}

fn hup(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_model_and_refuses_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("kefu-reload-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.kim");
    let bundled = kefu_intent::bundled().unwrap();
    std::fs::write(&path, bundled.to_bytes()).unwrap();
    std::fs::write(dir.join("service-secret"), SERVICE_SECRET).unwrap();
    // Called as another service would (no session-router runs here to verify shop keys).
    let token = kefu_runtime::auth::ServiceKeys::new("assistant", &[SERVICE_SECRET.into()])
        .unwrap()
        .token("intent-classifier", "s");
    let port = free_port();
    let mut child = tokio::process::Command::new(bin_dir().join("kefu-intent-classifier"))
        .env("KEFU_SERVICE_SECRET_FILE", dir.join("service-secret"))
        .env("KEFU_KAFKA_BROKERS", brokers())
        .env(
            "KEFU_TOPIC_PREFIX",
            format!(
                "reload-{}.",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        )
        .env("KEFU_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("KEFU_METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("KEFU_INTENT_MODEL", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut client = loop {
        if let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            break IntentClassifierServiceClient::with_interceptor(ch, Bearer::new(&token));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(model_version(&mut client).await, bundled.version);

    // A corrupt file is refused; the running model keeps answering.
    std::fs::write(&path, b"not a model").unwrap();
    hup(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(model_version(&mut client).await, bundled.version);

    // A valid new model is picked up, while requests keep flowing.
    let mut next = bundled.clone();
    next.version = "kefu-intent-test-next".into();
    next.save(&path).unwrap();
    hup(pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = model_version(&mut client).await;
        if v == "kefu-intent-test-next" {
            break;
        }
        assert_eq!(v, bundled.version);
        assert!(tokio::time::Instant::now() < deadline, "model not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Batch API and its limits.
    let r = client
        .classify_batch(ClassifyBatchRequest {
            shop_id: "s".into(),
            items: vec![
                ClassifyRequestItem {
                    id: "a".into(),
                    text: "转人工".into(),
                },
                ClassifyRequestItem {
                    id: "b".into(),
                    text: "can I pay with Alipay".into(),
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, String)> = r
        .results
        .into_iter()
        .map(|x| (x.id, x.result.unwrap().intent))
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_string(), "human_agent".to_string()),
            ("b".to_string(), "payment_methods".to_string())
        ]
    );
    let err = client
        .classify_batch(ClassifyBatchRequest {
            shop_id: "s".into(),
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
