//! Harness for end-to-end tests: runs every Kefu service as its own process (the binaries
//! `cargo build --workspace --bins` produced), against the test broker
//! (`KEFU_TEST_BROKERS`, default `127.0.0.1:19092`) and PostgreSQL (`KEFU_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Each mesh gets its own topic prefix, consumer
//! groups, SQLite files and PostgreSQL database, so tests run side by side on one broker.
#![forbid(unsafe_code)]

pub mod backends;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use kefu_proto::order::v1::order_sync_service_client::OrderSyncServiceClient;
use kefu_proto::session::v1::session_router_service_client::SessionRouterServiceClient;
use kefu_proto::ticket::v1::ticket_service_client::TicketServiceClient;
use tokio::process::{Child, Command};
use tonic::{
    Request,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Every service. Their gRPC ports are chosen before any starts: session-router verifies the
/// others' callers and order-sync answers two of them, so each is given the others' addresses.
pub const SERVICES: &[&str] = &[
    "order-sync",
    "session-router",
    "translation",
    "intent-classifier",
    "assistant",
    "ticket",
    "metrics",
    "knowledge",
];

pub const SHOP: &str = "e2e-shop";
/// The Shopify webhook secret of [`SHOP`] in every test mesh.
pub const SHOPIFY_SECRET: &str = "shpss_e2e_0123456789abcdef";
/// The generic webhook / tracking secret of [`SHOP`] in every test mesh.
pub const WEBHOOK_SECRET: &str = "kefu_webhook_e2e_secret_0123";
/// The generic webhook secret of a second shop, `shop-b`, in every test mesh.
pub const SHOP_B_WEBHOOK_SECRET: &str = "kefu_webhook_e2e_secret_shop_b";

/// The deployment's service secret in every test mesh (services sign their calls with it).
pub const SERVICE_SECRET: &str = "e2e-service-secret-0123456789abcdef0123456789";
/// The customer-key secret (HMAC of phone numbers and e-mail addresses) session-router and
/// order-sync share.
pub const CUSTOMER_KEY_SECRET: &str = "e2e-customer-key-secret-0123456789abcdef012345";

/// Adds `authorization: Bearer <credential>` to requests that carry none: a client of the
/// agents' or the back office's APIs acting with one credential.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    pub fn new(credential: &str) -> Self {
        Self(
            format!("Bearer {credential}")
                .parse()
                .expect("header value"),
        )
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, tonic::Status> {
        if !req.metadata().contains_key("authorization") {
            req.metadata_mut().insert("authorization", self.0.clone());
        }
        Ok(req)
    }
}

/// A channel whose requests carry a credential.
pub type Authed = InterceptedService<Channel, Bearer>;

pub fn brokers() -> String {
    std::env::var("KEFU_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// Directory holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    assert!(
        dir.join("kefu-session-router").exists(),
        "service binaries missing in {}: run `cargo build --workspace --bins` first (make test does)",
        dir.display()
    );
    dir
}

/// A free port for a service to listen on. Chosen at random below the kernel's ephemeral range
/// (32768+ here), so it cannot collide with the local ports of outgoing connections, checked
/// by binding it, and never handed out twice by this test process (a port freed by a killed
/// service must not go to another one, which would then answer in its place). Another test
/// process can still pick the same port: [`Mesh::wait_serving`] tells the two apart.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::rng();
    loop {
        let port = rng.random_range(15_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

struct Proc {
    child: Child,
    /// The service this process runs (`key` may name a second replica).
    service: &'static str,
    grpc_port: u16,
    metrics_port: u16,
    /// Length of the log file when this process was started: its own lines follow.
    log_start: u64,
}

/// A running mesh.
pub struct Mesh {
    pub prefix: String,
    /// The broker the services use.
    pub brokers: String,
    pub dir: PathBuf,
    pub api_key: String,
    /// The operator token (admin API).
    pub operator_token: String,
    pub http_port: u16,
    session_db: String,
    order_db: String,
    /// order-sync's connector HTTP port.
    pub orders_http_port: u16,
    procs: HashMap<&'static str, Proc>,
    /// gRPC port of each service, chosen before any starts.
    ports: HashMap<&'static str, u16>,
}

impl Mesh {
    /// Starts every service and waits until all report SERVING.
    pub async fn start(tag: &str) -> Mesh {
        Self::start_on(tag, None, None).await
    }

    /// Starts every service against a broker and PostgreSQL of the test's own (which it may
    /// crash and restart), instead of the shared ones.
    pub async fn start_on(
        tag: &str,
        broker: Option<&backends::PrivateBroker>,
        postgres: Option<&backends::PrivatePostgres>,
    ) -> Mesh {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("e2e-{tag}-{}.", &id[..8]);
        let dir = std::env::temp_dir().join(format!("kefu-e2e-{tag}-{}", &id[..8]));
        std::fs::create_dir_all(&dir).expect("test dir");
        let (session_db, order_db) = match postgres {
            Some(pg) => (
                pg.database(&format!("kefu_{}_router", &id[..8])).await,
                pg.database(&format!("kefu_{}_orders", &id[..8])).await,
            ),
            None => (
                kefu_runtime::db::fresh_test_postgres(tag)
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)"),
                kefu_runtime::db::fresh_test_postgres(&format!("{tag}_orders"))
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)"),
            ),
        };
        std::fs::write(
            dir.join("connector-secrets"),
            format!(
                "{SHOP} shopify {SHOPIFY_SECRET}\n{SHOP} webhook {WEBHOOK_SECRET}\nshop-b webhook {SHOP_B_WEBHOOK_SECRET}\n"
            ),
        )
        .expect("secrets file");
        std::fs::write(dir.join("service-secret"), SERVICE_SECRET).expect("service secret");
        std::fs::write(dir.join("customer-key-secret"), CUSTOMER_KEY_SECRET)
            .expect("customer-key secret");
        let operator_token = format!("kefo_e2e_{id}");
        std::fs::write(dir.join("operator-token"), &operator_token).expect("operator token");
        let mut mesh = Mesh {
            prefix,
            brokers: broker.map(|b| b.brokers()).unwrap_or_else(brokers),
            dir,
            api_key: String::new(),
            operator_token,
            http_port: free_port(),
            orders_http_port: free_port(),
            session_db,
            order_db,
            procs: HashMap::new(),
            ports: SERVICES.iter().map(|s| (*s, free_port())).collect(),
        };
        for s in SERVICES {
            mesh.spawn(s, mesh.ports[s]);
        }
        for s in SERVICES {
            mesh.wait_started(s).await;
        }
        // A restart above may have restarted services already waited for.
        for s in SERVICES {
            assert!(mesh.wait_serving(s).await, "{}", mesh.log_tail(s));
        }
        mesh.api_key = std::fs::read_to_string(mesh.dir.join("api-key"))
            .expect("seeded key")
            .trim()
            .to_owned();
        mesh
    }

    /// Waits for SERVING. A port picked by another test at the same moment makes a service
    /// exit at start; it is started again on other ports, and the services given its old
    /// address are restarted with the new one.
    async fn wait_started(&mut self, s: &'static str) {
        for attempt in 0.. {
            if self.wait_serving(s).await {
                return;
            }
            assert!(
                attempt < 3,
                "{s} keeps exiting at start\n{}",
                self.log_tail(s)
            );
            eprintln!("{s} exited at start (attempt {attempt}); starting it again on other ports");
            match s {
                "session-router" => self.http_port = free_port(),
                "order-sync" => self.orders_http_port = free_port(),
                _ => {}
            }
            let port = free_port();
            self.ports.insert(s, port);
            self.spawn(s, port);
            let dependents: &[&'static str] = match s {
                "session-router" => SERVICES,
                "order-sync" => &["session-router", "assistant"],
                "knowledge" => &["assistant"],
                _ => &[],
            };
            for d in dependents.iter().copied().filter(|d| *d != s) {
                if let Some(p) = self.procs.get_mut(d) {
                    let _ = p.child.kill().await;
                    self.spawn(d, self.ports[d]);
                }
            }
        }
    }

    fn spawn(&mut self, service: &'static str, grpc_port: u16) {
        let http_port = self.http_port;
        self.spawn_as(service, service, grpc_port, http_port);
    }

    /// Starts `service`'s binary under the name `key` (e.g. a second replica).
    fn spawn_as(
        &mut self,
        key: &'static str,
        service: &'static str,
        grpc_port: u16,
        http_port: u16,
    ) {
        let metrics_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{key}.log")))
            .expect("log file");
        let log_start = log.metadata().expect("log file").len();
        let mut cmd = Command::new(bin_dir().join(format!("kefu-{service}")));
        cmd.env("KEFU_KAFKA_BROKERS", &self.brokers)
            .env("KEFU_TOPIC_PREFIX", &self.prefix)
            .env("KEFU_TOPIC_PARTITIONS", "2")
            .env("KEFU_KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("KEFU_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
            .env("KEFU_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("RUST_LOG", "info")
            // Plain logs: readable in a failure message, and searchable by wait_serving.
            .env("NO_COLOR", "1")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        let order_sync = self.ports["order-sync"];
        cmd.env("KEFU_SERVICE_SECRET_FILE", self.dir.join("service-secret"))
            .env(
                "KEFU_AUTH_URL",
                format!("http://127.0.0.1:{}", self.ports["session-router"]),
            );
        if matches!(service, "order-sync" | "session-router") {
            cmd.env(
                "KEFU_CUSTOMER_KEY_SECRET_FILE",
                self.dir.join("customer-key-secret"),
            );
        }
        match service {
            "order-sync" => {
                cmd.env("KEFU_DATABASE_URL", &self.order_db)
                    .env(
                        "KEFU_HTTP_ADDR",
                        format!("127.0.0.1:{}", self.orders_http_port),
                    )
                    .env(
                        "KEFU_CONNECTOR_SECRETS_FILE",
                        self.dir.join("connector-secrets"),
                    );
            }
            "session-router" => {
                cmd.env("KEFU_DATABASE_URL", &self.session_db)
                    .env(
                        "KEFU_ORDER_SYNC_URL",
                        format!("http://127.0.0.1:{order_sync}"),
                    )
                    .env("KEFU_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
                    .env("KEFU_SEED_SHOP", SHOP)
                    .env("KEFU_SEED_API_KEY_FILE", self.dir.join("api-key"))
                    .env("KEFU_OPERATOR_TOKEN_FILE", self.dir.join("operator-token"))
                    // Test webhook receivers listen on this machine.
                    .env("KEFU_WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32");
            }
            "assistant" => {
                cmd.env(
                    "KEFU_ORDER_SYNC_URL",
                    format!("http://127.0.0.1:{order_sync}"),
                )
                .env(
                    "KEFU_KNOWLEDGE_URL",
                    format!("http://127.0.0.1:{}", self.ports["knowledge"]),
                );
            }
            s => {
                cmd.env(
                    "KEFU_DATABASE_URL",
                    format!("sqlite://{}", self.dir.join(format!("{s}.db")).display()),
                );
            }
        }
        // The real embedding server `make test` starts (scripts/lib.sh start_embeddings):
        // the knowledge service finds FAQ entries by meaning, and shops' trained intent models
        // use it, as in production.
        if matches!(service, "knowledge" | "intent-classifier")
            && let Some(url) = embeddings_url()
        {
            cmd.env("KEFU_EMBEDDINGS_URL", url)
                // Below the assistant's 5 s for an answer.
                .env("KEFU_EMBEDDINGS_TIMEOUT_MS", "4000");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning kefu-{service}: {e}"));
        self.procs.insert(
            key,
            Proc {
                child,
                service,
                grpc_port,
                metrics_port,
                log_start,
            },
        );
    }

    /// Starts a second session-router replica (same database and consumer group) and
    /// returns its HTTP base URL.
    pub async fn start_second_router(&mut self) -> String {
        let http = free_port();
        self.spawn_as("session-router-2", "session-router", free_port(), http);
        assert!(
            self.wait_serving("session-router-2").await,
            "{}",
            self.log_tail("session-router-2")
        );
        format!("http://127.0.0.1:{http}")
    }

    /// Prometheus text of a process (`key` as in [`SERVICES`], or `session-router-2`).
    pub async fn metrics_text(&self, key: &str) -> String {
        let port = self.procs[key].metrics_port;
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Creates another shop through the admin API (operator token); returns its key.
    pub async fn add_shop(&self, shop_id: &str) -> String {
        use kefu_proto::admin::v1::{CreateShopRequest, admin_service_client::AdminServiceClient};
        let ch = self.channel("session-router").await;
        AdminServiceClient::with_interceptor(ch, Bearer::new(&self.operator_token))
            .create_shop(CreateShopRequest {
                shop_id: shop_id.to_owned(),
            })
            .await
            .expect("create shop")
            .into_inner()
            .api_key
    }

    /// session-router's database URL (PostgreSQL), for tests that repair or inspect its rows.
    pub fn session_db_url(&self) -> &str {
        &self.session_db
    }

    /// order-sync's database URL (PostgreSQL).
    pub fn order_db_url(&self) -> &str {
        &self.order_db
    }

    /// Runs the `kefu` CLI against this mesh's broker and topics; (success, stdout, stderr).
    pub fn kefu(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(bin_dir().join("kefu"))
            .args(args)
            .env("KEFU_KAFKA_BROKERS", &self.brokers)
            .env("KEFU_TOPIC_PREFIX", &self.prefix)
            .output()
            .expect("kefu");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The service's readiness: its named gRPC health (None when it does not answer).
    pub async fn ready(&self, service: &str) -> Option<bool> {
        let ch = Channel::from_shared(self.grpc_url(service))
            .ok()?
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .ok()?;
        let r = HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: self.procs[service].service.to_owned(),
            })
            .await
            .ok()?;
        Some(r.into_inner().status == ServingStatus::Serving as i32)
    }

    /// Replies per message of the shop, from the first: read until every message in
    /// `expected` has one (or `within` passed), then 5 s more so late duplicates show.
    pub async fn replies_per_message(
        &self,
        expected: &std::collections::HashSet<String>,
        within: Duration,
    ) -> HashMap<String, usize> {
        use kefu_proto::session::v1::SubscribeRequest;
        use tokio_stream::StreamExt;
        let mut stream = self
            .session_client()
            .await
            .subscribe(self.authed(SubscribeRequest {
                shop_id: SHOP.into(),
                conversation_id: String::new(),
                after_cursor: 0,
                channel: String::new(),
            }))
            .await
            .expect("subscribe")
            .into_inner();
        fn count(
            counts: &mut HashMap<String, usize>,
            item: kefu_proto::session::v1::SubscribeResponse,
        ) {
            *counts
                .entry(item.reply.expect("reply").message_id)
                .or_default() += 1;
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        let deadline = tokio::time::Instant::now() + within;
        while !expected.iter().all(|m| counts.contains_key(m)) {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(item))) => count(&mut counts, item),
                _ => break,
            }
        }
        let settle = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(item))) = tokio::time::timeout_at(settle, stream.next()).await {
            count(&mut counts, item);
        }
        counts
    }

    /// A connection to a service's gRPC port.
    pub async fn channel(&self, service: &str) -> Channel {
        Channel::from_shared(self.grpc_url(service))
            .expect("url")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect {service}: {e}"))
    }

    /// A service credential as `issuer` would mint it for calling `audience` for `shop`.
    pub fn service_token(&self, issuer: &str, audience: &str, shop: &str) -> String {
        kefu_runtime::auth::ServiceKeys::new(issuer, &[SERVICE_SECRET.to_owned()])
            .expect("keys")
            .token(audience, shop)
    }

    /// Waits until `key`'s process reports SERVING (true) or exits (false). The port alone
    /// proves nothing: when another test's process holds it, that one answers. So this asks
    /// for the named service's health and also requires the process's own log to say it
    /// serves on that port (a service logs that only after binding every listener).
    async fn wait_serving(&mut self, key: &str) -> bool {
        let (service, port, log_start) = {
            let p = &self.procs[key];
            (p.service, p.grpc_port, p.log_start)
        };
        let listening = format!("grpc_addr=127.0.0.1:{port} ");
        let log_path = self.dir.join(format!("{key}.log"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = self.procs.get_mut(key).expect("service").child.try_wait() {
                return false;
            }
            let ok = async {
                let ch = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
                    .connect()
                    .await?;
                let r = HealthClient::new(ch)
                    .check(HealthCheckRequest {
                        service: service.to_owned(),
                    })
                    .await?;
                Ok::<_, Box<dyn std::error::Error>>(
                    r.into_inner().status == ServingStatus::Serving as i32,
                )
            }
            .await
            .unwrap_or(false);
            if ok && own_log_says(&log_path, log_start, &listening) {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{key} not SERVING within 60s\n{}", self.log_tail(key));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of a service's log (for failure messages).
    pub fn log_tail(&self, service: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{service}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {service} log ---\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// All logs' tails.
    pub fn logs(&self) -> String {
        SERVICES
            .iter()
            .map(|s| self.log_tail(s))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGKILL a service (no graceful shutdown).
    pub async fn kill(&mut self, service: &str) {
        let p = self.procs.get_mut(service).expect("service");
        p.child.kill().await.expect("kill");
    }

    /// Restarts a killed service on the same port and waits for SERVING.
    ///
    /// (Ports are fixed for a mesh's life: the others hold its address.)
    pub async fn restart(&mut self, service: &'static str) {
        let port = self.procs[service].grpc_port;
        self.spawn(service, port);
        assert!(
            self.wait_serving(service).await,
            "{service} exited at restart\n{}",
            self.log_tail(service)
        );
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self, service: &str) -> std::process::ExitStatus {
        let p = self.procs.get_mut(service).expect("service");
        let pid = p.child.id().expect("running");
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        tokio::time::timeout(Duration::from_secs(30), p.child.wait())
            .await
            .expect("exits within 30s")
            .expect("wait")
    }

    pub fn grpc_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.procs[service].grpc_port)
    }

    /// `POST /v1/messages` to session-router with this mesh's key: (HTTP status, JSON body).
    pub async fn post_message(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/messages", self.http_url()))
            .header("authorization", format!("Bearer {}", self.api_key))
            .json(body)
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .expect("POST /v1/messages");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON answer"))
    }

    /// order-sync's connector endpoint base URL.
    pub fn orders_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orders_http_port)
    }

    /// order-sync's gRPC API as the shop's back office (the shop's API key).
    pub async fn order_client(&self) -> OrderSyncServiceClient<Authed> {
        OrderSyncServiceClient::with_interceptor(
            self.channel("order-sync").await,
            Bearer::new(&self.api_key),
        )
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub async fn session_client(&self) -> SessionRouterServiceClient<Channel> {
        let ch = Channel::from_shared(self.grpc_url("session-router"))
            .expect("url")
            .connect()
            .await
            .expect("connect session-router");
        SessionRouterServiceClient::new(ch)
    }

    /// The agents' API with the shop's API key (a request's own `authorization` wins).
    pub async fn ticket_client(&self) -> TicketServiceClient<Authed> {
        TicketServiceClient::with_interceptor(
            self.channel("ticket").await,
            Bearer::new(&self.api_key),
        )
    }

    /// A request carrying this mesh's API key.
    pub fn authed<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {}", self.api_key)).expect("header"),
        );
        r
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            let _ = p.child.start_kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `needle` appears in the log at `path` after byte `start`.
fn own_log_says(path: &Path, start: u64, needle: &str) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            bytes
                .get(start as usize..)
                .map(|b| String::from_utf8_lossy(b).contains(needle))
        })
        .unwrap_or(false)
}

/// The embedding server of the tests (`KEFU_TEST_EMBEDDINGS`, set by `make test`), if any.
pub fn embeddings_url() -> Option<String> {
    std::env::var("KEFU_TEST_EMBEDDINGS")
        .ok()
        .filter(|s| !s.is_empty())
}
