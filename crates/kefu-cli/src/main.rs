//! `kefu`: the command line for people.
//!
//! * `kefu chat` — be a customer: type lines, see the replies.
//! * `kefu send --text "…"` — send one message and print its reply.
//! * `kefu health ADDR…` — wait until gRPC services report SERVING.
//! * `kefu orders import FILE` — bulk-import orders (JSON lines or CSV) into order-sync.
//! * `kefu shops create|list|reset-key` — the operator's shop administration.
//! * `kefu agents issue|list|revoke` — a shop's tokens for its agents.
//! * `kefu dlq list|replay --topic T [--since] [--shop]` — dead letters, and re-publishing them.
//! * `kefu knowledge import|status|rollback --shop S` — a shop's knowledge bundle, released
//!   only when its scenarios do not score lower than on the active version.
//! * `kefu intents train|classify|eval|status|rollback|label|examples|delete --shop S` — a
//!   shop's own intents (docs/intent.md).
//! * `kefu customers export|erase --shop S --customer C` — a customer's data rights: everything
//!   held about them as one JSON document, or erased everywhere (docs/privacy.md).
//! * `kefu topics create` — create every topic (and its `.dlq` twin).
#![forbid(unsafe_code)]

mod customers;
mod intents;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use kefu_proto::session::v1::{
    Reply, SendRequest, SubscribeRequest, session_router_service_client::SessionRouterServiceClient,
};
use kefu_runtime::kafka::{self, KafkaConfig};
use tokio::io::AsyncBufReadExt;
use tokio_stream::StreamExt;
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[derive(Parser)]
#[command(name = "kefu", version, about = "Kefu command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat as a customer: each line you type is sent, replies are printed.
    Chat(Customer),
    /// Send one message and print the reply.
    Send {
        #[command(flatten)]
        customer: Customer,
        /// Message text.
        #[arg(long)]
        text: String,
        /// Idempotency key (random when omitted).
        #[arg(long)]
        message_id: Option<String>,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 10)]
        wait_secs: u64,
    },
    /// Wait until every gRPC address reports SERVING.
    Health {
        /// host:port of each service.
        #[arg(required = true)]
        addrs: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// Orders: bulk import into order-sync.
    Orders {
        #[command(subcommand)]
        command: OrdersCommand,
    },
    /// Shops (the operator): create, list, reset a lost key.
    Shops {
        #[command(flatten)]
        operator: Operator,
        #[command(subcommand)]
        command: ShopsCommand,
    },
    /// Agent tokens (the shop): one credential per agent for the agents' tools.
    Agents {
        #[command(flatten)]
        key: ShopKey,
        /// session-router gRPC endpoint.
        #[arg(
            long,
            global = true,
            env = "KEFU_URL",
            default_value = "http://127.0.0.1:50051"
        )]
        url: String,
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// A shop's knowledge bundle (docs/knowledge.md): import, status, rollback.
    Knowledge {
        #[command(flatten)]
        target: KnowledgeTarget,
        #[command(subcommand)]
        command: KnowledgeCommand,
    },
    /// A shop's own intents (docs/intent.md): train, classify, eval, status, rollback, label.
    Intents {
        #[command(flatten)]
        target: intents::IntentsTarget,
        #[command(subcommand)]
        command: intents::IntentsCommand,
    },
    /// A customer's data (docs/privacy.md): export everything held about them, or erase it.
    Customers {
        #[command(flatten)]
        target: customers::CustomersTarget,
        #[command(subcommand)]
        command: customers::CustomersCommand,
    },
    /// Prices (docs/promotions.md): `kefu promotions quote --sku A:2 --sku B:1`.
    Promotions {
        #[command(flatten)]
        target: KnowledgeTarget,
        #[command(subcommand)]
        command: PromotionsCommand,
    },
    /// Dead letters: list them, re-publish them to their original topic (once).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

#[derive(Subcommand)]
enum PromotionsCommand {
    /// Price a cart under the shop's active promotions: each promotion applied or rejected
    /// and why, the total, the presale deposit and balance, the next threshold.
    Quote {
        /// SKU:QUANTITY (quantity 1 when left out); repeat for each line.
        #[arg(long = "sku", required = true)]
        skus: Vec<String>,
        /// A holders-only coupon the customer holds (its id); repeatable.
        #[arg(long = "hold")]
        held: Vec<String>,
        /// When the order would be placed (RFC 3339); now by default.
        #[arg(long)]
        at: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KnowledgeCommand {
    /// Import DIR as the shop's next version, run its scenarios against it and the active
    /// version, and activate it unless it scores lower. Exits 1 when nothing was activated.
    Import {
        dir: PathBuf,
        /// Activate even when the scenarios score lower than on the active version.
        #[arg(long)]
        force: bool,
    },
    /// Parse DIR and run its scenarios here, without importing anything (no service, no
    /// key): what `import` would report for a shop with no active version. Exits 1 when the
    /// bundle does not parse or a scenario fails.
    Check { dir: PathBuf },
    /// The shop's versions and which is active.
    Status,
    /// Make the version before the active one active again.
    Rollback,
}

/// `kefu knowledge check DIR`: the bundle parsed and its scenarios answered by the same code
/// the knowledge service runs — with the embedding model too when `KEFU_EMBEDDINGS_URL` names
/// one, as the service does.
async fn check_bundle(dir: &std::path::Path) -> anyhow::Result<()> {
    let bundle = match kefu_knowledge::bundle::Bundle::load_dir(dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("the bundle does not parse:");
            for p in &e.0 {
                eprintln!("  {p}");
            }
            bail!("{} problem(s) in {}", e.0.len(), dir.display());
        }
    };
    let scenarios = bundle.scenarios.clone();
    println!(
        "{} FAQ entries, {} products, {} promotions, {} scenarios",
        bundle.faq.len(),
        bundle.products.len(),
        bundle.promotions.as_ref().map_or(0, |p| p.promotions.len()),
        scenarios.len()
    );
    let k = kefu_knowledge::answer::Knowledge::new(bundle)?;
    let embedder = kefu_embed::Config::from_env()?.map(kefu_embed::Embedder::new);
    if let Some(e) = &embedder {
        let mut vectors = Vec::new();
        for chunk in k.faq_passages().chunks(16) {
            vectors.extend(
                e.embed(kefu_embed::Kind::Passage, chunk)
                    .await?
                    .iter()
                    .map(|v| v.to_vec()),
            );
        }
        k.set_faq_vectors(vectors);
    }
    let mut passed = 0;
    let mut embedded = 0;
    for s in &scenarios {
        // As the service does: the question's embedding only where it could change the reply.
        let lang = kefu_knowledge::text::language(&s.text);
        let mut query = None;
        if let Some(e) = &embedder
            && k.meaning_may_change(k.answer(&s.text, lang).as_ref())
        {
            query = Some(e.embed_one(kefu_embed::Kind::Query, &s.text).await?);
            embedded += 1;
        }
        let reply = k.reply_with(&s.text, "", query.as_deref());
        let why = kefu_knowledge::scenario::check(s, &reply);
        if why.is_empty() {
            passed += 1;
            println!("  pass  {}", s.text);
        } else {
            println!(
                "  FAIL  {}\n      reply: {reply}\n      {}",
                s.text,
                why.join("; ")
            );
        }
    }
    if let Some(e) = &embedder {
        println!(
            "meaning: on ({}); {embedded} of {} questions needed an embedding",
            e.config().url,
            scenarios.len()
        );
    }
    println!("scenarios: {passed}/{} pass", scenarios.len());
    if passed < scenarios.len() {
        bail!("{} scenario(s) fail", scenarios.len() - passed);
    }
    Ok(())
}

async fn promotions(target: KnowledgeTarget, command: PromotionsCommand) -> anyhow::Result<()> {
    use kefu_proto::knowledge::v1::{CartLine, QuotePriceRequest};
    let PromotionsCommand::Quote {
        skus,
        held,
        at,
        json,
    } = command;
    let mut lines = Vec::new();
    for s in &skus {
        let (sku, qty) = match s.rsplit_once(':') {
            Some((sku, q)) => (
                sku,
                q.parse::<i32>()
                    .map_err(|_| anyhow::anyhow!("--sku {s}: the quantity is not a number"))?,
            ),
            None => (s.as_str(), 1),
        };
        lines.push(CartLine {
            sku: sku.to_owned(),
            quantity: qty,
        });
    }
    let at = match at {
        Some(t) => Some(kefu_runtime::event::timestamp(
            chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|e| {
                    anyhow::anyhow!("--at {t}: {e} (RFC 3339, e.g. 2026-11-11T00:00:00+08:00)")
                })?
                .with_timezone(&chrono::Utc),
        )),
        None => None,
    };
    let (key, mut client) = target.open().await?;
    let q = client
        .quote_price(with_credential(
            &key,
            QuotePriceRequest {
                shop_id: target.shop.clone(),
                lines,
                held_coupons: held,
                at,
            },
        )?)
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "currency": q.currency, "subtotal": q.subtotal, "total": q.total,
                "deposit_now": q.deposit_now, "balance": q.balance,
                "applied": q.applied.iter().map(|a| serde_json::json!({"id": a.id, "stage": a.stage, "base": a.base, "off": a.off})).collect::<Vec<_>>(),
                "rejected": q.rejected.iter().map(|r| serde_json::json!({"id": r.id, "reason": r.reason, "threshold": r.threshold, "short": r.short})).collect::<Vec<_>>(),
                "next_threshold": q.next_threshold.as_ref().map(|n| serde_json::json!({"id": n.id, "needed": n.needed, "off": n.off})),
                "assumed_claimed": q.assumed_claimed, "version": q.version,
            })
        );
        return Ok(());
    }
    let c = &q.currency;
    for l in &q.lines {
        println!(
            "  {} × {}  {}  @ {} {c}",
            l.quantity, l.sku, l.title, l.unit_price
        );
    }
    println!("subtotal {} {c}", q.subtotal);
    for a in &q.applied {
        println!(
            "  - {} {c}  {} ({}, on {} {c})",
            a.off, a.name, a.stage, a.base
        );
    }
    println!("total {} {c}", q.total);
    for p in &q.presales {
        println!(
            "  presale {}: deposit {} {c} now ({}), balance {} {c} from {} to {}",
            p.id,
            p.deposit,
            if p.deposit_refundable {
                "refundable"
            } else {
                "not refundable"
            },
            q.balance,
            time(p.balance_starts),
            time(p.balance_ends)
        );
    }
    if let Some(n) = &q.next_threshold {
        println!(
            "spend {} {c} more for {} {c} more off ({})",
            n.needed, n.off, n.id
        );
    }
    for r in &q.rejected {
        match r.reason.as_str() {
            "short" => println!(
                "  not applied: {} — {} {c} short of {} {c}",
                r.name, r.short, r.threshold
            ),
            "not_in_cart" => {}
            other => println!("  not applied: {} — {}", r.name, other.replace('_', " ")),
        }
    }
    if !q.assumed_claimed.is_empty() {
        println!("assumes you claim: {}", q.assumed_claimed.join(", "));
    }
    Ok(())
}

async fn knowledge(target: KnowledgeTarget, command: KnowledgeCommand) -> anyhow::Result<()> {
    use kefu_proto::knowledge::v1::{
        ActivateRequest, BundleChunk, EvaluateRequest, GetStatusRequest, RollbackRequest,
    };
    // Everything but `check` talks to the service as the shop.
    let shop = target.shop.clone();
    let open = async || target.open().await;
    match command {
        KnowledgeCommand::Check { dir } => check_bundle(&dir).await?,
        KnowledgeCommand::Import { dir, force } => {
            let (key, mut client) = open().await?;
            let files = kefu_knowledge::bundle::read_dir(&dir)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?;
            let mut chunks = Vec::new();
            for (path, data) in files {
                if data.is_empty() {
                    chunks.push(BundleChunk {
                        shop_id: shop.clone(),
                        path,
                        data,
                    });
                    continue;
                }
                for part in data.chunks(1024 * 1024) {
                    chunks.push(BundleChunk {
                        shop_id: shop.clone(),
                        path: path.clone(),
                        data: part.to_vec(),
                    });
                }
            }
            let imported = match client
                .import_bundle(with_credential(&key, tokio_stream::iter(chunks))?)
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    eprintln!("the bundle was refused; the active version is unchanged:");
                    print_refusal(&s, usize::MAX, str::to_owned);
                    bail!("nothing imported");
                }
            };
            let sum = imported.summary.unwrap_or_default();
            println!(
                "version {} stored: {} FAQ entries, {} products ({} facts), {} promotions, {} scenarios",
                imported.version,
                sum.faq_entries,
                sum.products,
                sum.product_facts,
                sum.promotions,
                sum.scenarios
            );
            let e = client
                .evaluate(with_credential(
                    &key,
                    EvaluateRequest {
                        shop_id: shop.clone(),
                        version: imported.version,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            let mark = |ok: bool| if ok { "pass" } else { "FAIL" };
            for s in &e.scenarios {
                if e.active_version == 0 {
                    println!("  {}  {}", mark(s.passed), s.text);
                } else {
                    println!(
                        "  v{} {}  v{} {}  {}",
                        e.version,
                        mark(s.passed),
                        e.active_version,
                        mark(s.active_passed),
                        s.text
                    );
                }
                if !s.passed {
                    println!("      reply: {}", s.reply);
                    println!("      {}", s.why.join("; "));
                }
            }
            let n = e.scenarios.len();
            if e.active_version == 0 {
                println!("scenarios: {}/{n} pass", e.passed);
            } else {
                println!(
                    "scenarios: {}/{n} pass on version {}, {}/{n} on the active version {}",
                    e.passed, e.version, e.active_passed, e.active_version
                );
            }
            match client
                .activate(with_credential(
                    &key,
                    ActivateRequest {
                        shop_id: shop.clone(),
                        version: imported.version,
                        force,
                    },
                )?)
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    println!("version {} is active", r.active_version);
                }
                Err(s) => bail!("not activated: {}", s.message()),
            }
        }
        KnowledgeCommand::Status => {
            let (key, mut client) = open().await?;
            let st = client
                .get_status(with_credential(
                    &key,
                    GetStatusRequest {
                        shop_id: shop.clone(),
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            for v in &st.versions {
                let s = v.summary.unwrap_or_default();
                println!(
                    "{} v{}\t{}\t{} FAQ, {} products, {} promotions, {} scenarios",
                    if v.active { "*" } else { " " },
                    v.version,
                    time(v.created_at),
                    s.faq_entries,
                    s.products,
                    s.promotions,
                    s.scenarios
                );
            }
            if st.active_version == 0 {
                println!("no active version: the shop's questions go to people");
            }
        }
        KnowledgeCommand::Rollback => {
            let (key, mut client) = open().await?;
            let r = client
                .rollback(with_credential(&key, RollbackRequest { shop_id: shop })?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("version {} is active", r.active_version);
        }
    }
    Ok(())
}

/// Which dead letters, and where the broker is (every `KEFU_KAFKA_…` setting of the services).
#[derive(Args)]
struct DlqTarget {
    /// The topic whose dead letters to read (`kefu.conversation.inbound.v1`; `.dlq` optional).
    #[arg(long)]
    topic: String,
    /// Only letters that failed since: an RFC 3339 time or an age (`30m`, `2h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Only letters of this shop.
    #[arg(long)]
    shop: Option<String>,
    #[command(flatten)]
    runtime: kefu_runtime::config::RuntimeArgs,
}

impl DlqTarget {
    fn parts(&self) -> anyhow::Result<(KafkaConfig, kafka::dlq::Filter)> {
        let since = match &self.since {
            Some(s) => Some(
                kafka::dlq::parse_since(s, chrono::Utc::now())
                    .map_err(|e| anyhow::anyhow!("--since: {e}"))?,
            ),
            None => None,
        };
        let cfg = KafkaConfig::from(&self.runtime);
        Ok((
            cfg,
            kafka::dlq::Filter {
                since,
                shop: self.shop.clone(),
            },
        ))
    }
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters: where and when they failed, why, the shop, and whether an earlier
    /// replay re-published them.
    List {
        #[command(flatten)]
        target: DlqTarget,
    },
    /// Re-publish dead letters to their original topic, unchanged (handlers dedupe on the
    /// event id); letters an earlier replay re-published are skipped.
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        /// Only list what would be re-published.
        #[arg(long)]
        dry_run: bool,
    },
}

async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { target } => {
            let (cfg, filter) = target.parts()?;
            let letters = kafka::dlq::list(&cfg, &target.topic, &filter).await?;
            for d in &letters {
                println!(
                    "{}\t{}\t{}\tshop={}\tevent={}\t{}\t{}",
                    d.id(),
                    d.failed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    d.kind,
                    d.shop_id,
                    d.event_id,
                    if d.replayed { "replayed" } else { "pending" },
                    d.error
                );
            }
            println!("{} dead letter(s)", letters.len());
        }
        DlqCommand::Replay { target, dry_run } => {
            let (cfg, filter) = target.parts()?;
            if dry_run {
                let letters = kafka::dlq::list(&cfg, &target.topic, &filter).await?;
                let pending: Vec<_> = letters.iter().filter(|d| !d.replayed).collect();
                for d in &pending {
                    println!("would replay {} to {}", d.id(), d.original_topic);
                }
                println!(
                    "{} to replay, {} replayed before",
                    pending.len(),
                    letters.len() - pending.len()
                );
                return Ok(());
            }
            let producer =
                kafka::Producer::new(&cfg, kefu_runtime::metrics::Metrics::new("kefu-cli").kafka)?;
            let r = kafka::dlq::replay(&cfg, &producer, &target.topic, &filter).await?;
            producer.flush(Duration::from_secs(10));
            println!(
                "replayed {}, skipped {} (replayed before)",
                r.replayed, r.skipped
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create every Kefu topic and its dead-letter twin when missing.
    Create {
        #[arg(long, env = "KEFU_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        #[arg(long, env = "KEFU_TOPIC_PREFIX", default_value = "")]
        prefix: String,
        #[arg(long, env = "KEFU_TOPIC_PARTITIONS", default_value_t = 3)]
        partitions: i32,
    },
}

/// The operator's credential and session-router's address.
#[derive(Args, Clone)]
struct Operator {
    /// session-router gRPC endpoint (it serves kefu.admin.v1.AdminService).
    #[arg(
        long,
        global = true,
        env = "KEFU_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    url: String,
    /// File with the operator token (`make run` writes .kefu/operator-token).
    #[arg(
        long,
        global = true,
        env = "KEFU_OPERATOR_TOKEN_FILE",
        default_value = ".kefu/operator-token"
    )]
    operator_token_file: PathBuf,
}

#[derive(Subcommand)]
enum ShopsCommand {
    /// Create a shop; prints its API key (shown only once).
    Create {
        /// 1-64 of A-Z a-z 0-9 . _ - : @
        shop_id: String,
        /// Also write the key to this file (mode 0600).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List every shop.
    List,
    /// Give a shop a new API key (the old one stops working); prints it.
    ResetKey {
        shop_id: String,
        /// Also write the key to this file (mode 0600).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Issue a token for an agent; prints it (shown only once).
    Issue {
        /// The agent's id (1-64 of A-Z a-z 0-9 . _ - : @).
        agent_id: String,
        /// Lifetime in hours (1-720).
        #[arg(long, default_value_t = 24)]
        ttl_hours: i32,
    },
    /// List the shop's agent tokens (never the secrets).
    List,
    /// Revoke a token by its id (at_…).
    Revoke { token_id: String },
}

/// The knowledge service, as a shop: `kefu knowledge …` and `kefu promotions …`.
#[derive(Args, Clone)]
struct KnowledgeTarget {
    #[command(flatten)]
    key: ShopKey,
    /// The shop (optional: the API key names it; when given it must match).
    #[arg(long, global = true, env = "KEFU_SHOP", default_value = "")]
    shop: String,
    /// knowledge service gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_KNOWLEDGE_URL",
        default_value = "http://127.0.0.1:50058"
    )]
    url: String,
}

impl KnowledgeTarget {
    /// The shop's key and a client (bundles stream in 1 MiB chunks; evaluations can be long).
    async fn open(
        &self,
    ) -> anyhow::Result<(
        String,
        kefu_proto::knowledge::v1::knowledge_service_client::KnowledgeServiceClient<
            tonic::transport::Channel,
        >,
    )> {
        let client =
            kefu_proto::knowledge::v1::knowledge_service_client::KnowledgeServiceClient::new(
                connect(&self.url).await?,
            )
            .max_encoding_message_size(2 * 1024 * 1024)
            .max_decoding_message_size(16 * 1024 * 1024);
        Ok((self.key.key()?, client))
    }
}

/// A shop's API key: `--api-key`, or the file `--api-key-file`.
#[derive(Args, Clone)]
struct ShopKey {
    /// Shop API key (overrides --api-key-file).
    #[arg(long, global = true, env = "KEFU_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// File with the shop's API key.
    #[arg(
        long,
        global = true,
        env = "KEFU_API_KEY_FILE",
        default_value = ".kefu/demo-api-key"
    )]
    api_key_file: PathBuf,
}

impl ShopKey {
    fn key(&self) -> anyhow::Result<String> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone());
        }
        read_secret(&self.api_key_file, "API key", "pass --api-key")
    }
}

fn read_secret(path: &std::path::Path, what: &str, hint: &str) -> anyhow::Result<String> {
    let k = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the {what} from {} (run `make run` first, or {hint})",
            path.display()
        )
    })?;
    Ok(k.trim().to_owned())
}

/// `msg` with `authorization: Bearer <credential>`.
fn with_credential<T>(credential: &str, msg: T) -> anyhow::Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {credential}"))?,
    );
    Ok(r)
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", s.code(), s.message())
}

/// What a refusal says, one `(field, description)` per problem: its field violations, or
/// its message under an empty field when it has none.
fn refusal(s: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    match s.get_error_details().bad_request() {
        Some(br) => br
            .field_violations
            .iter()
            .map(|v| (v.field.clone(), v.description.clone()))
            .collect(),
        None => vec![(String::new(), s.message().to_owned())],
    }
}

/// Prints a refusal to stderr, a line per problem (at most `max`), each field renamed by
/// `field`.
fn print_refusal(s: &tonic::Status, max: usize, field: impl Fn(&str) -> String) {
    for (f, d) in refusal(s).iter().take(max) {
        if f.is_empty() {
            eprintln!("  {d}");
        } else {
            eprintln!("  {}: {d}", field(f));
        }
    }
}

fn write_key_file(path: &Option<PathBuf>, key: &str) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{key}")?;
    Ok(())
}

fn time(t: Option<kefu_proto::Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

async fn shops(op: Operator, command: ShopsCommand) -> anyhow::Result<()> {
    use kefu_proto::admin::v1::{
        CreateShopRequest, ListShopsRequest, ResetShopKeyRequest,
        admin_service_client::AdminServiceClient,
    };
    let token = read_secret(
        &op.operator_token_file,
        "operator token",
        "pass --operator-token-file",
    )?;
    let mut client = AdminServiceClient::new(connect(&op.url).await?);
    match command {
        ShopsCommand::Create { shop_id, key_file } => {
            let r = client
                .create_shop(with_credential(&token, CreateShopRequest { shop_id })?)
                .await
                .map_err(status_error)?
                .into_inner();
            write_key_file(&key_file, &r.api_key)?;
            let shop = r.shop.unwrap_or_default();
            println!("created shop {}", shop.shop_id);
            println!("api key: {}", r.api_key);
        }
        ShopsCommand::List => {
            let mut page_token = String::new();
            loop {
                let r = client
                    .list_shops(with_credential(
                        &token,
                        ListShopsRequest {
                            page_size: 100,
                            page_token,
                        },
                    )?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for s in r.shops {
                    println!("{}\t{}", s.shop_id, time(s.created_at));
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
        }
        ShopsCommand::ResetKey { shop_id, key_file } => {
            let r = client
                .reset_shop_key(with_credential(
                    &token,
                    ResetShopKeyRequest {
                        shop_id: shop_id.clone(),
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            write_key_file(&key_file, &r.api_key)?;
            println!("new api key of {shop_id}: {}", r.api_key);
        }
    }
    Ok(())
}

async fn agents(key: ShopKey, url: String, command: AgentsCommand) -> anyhow::Result<()> {
    use kefu_proto::auth::v1::{
        IssueAgentTokenRequest, ListAgentTokensRequest, RevokeAgentTokenRequest,
        agent_token_service_client::AgentTokenServiceClient,
    };
    let key = key.key()?;
    let mut client = AgentTokenServiceClient::new(connect(&url).await?);
    match command {
        AgentsCommand::Issue {
            agent_id,
            ttl_hours,
        } => {
            let r = client
                .issue_agent_token(with_credential(
                    &key,
                    IssueAgentTokenRequest {
                        agent_id,
                        ttl_hours,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            let info = r.info.unwrap_or_default();
            println!(
                "token {} for {} (expires {})",
                info.token_id,
                info.agent_id,
                time(info.expires_at)
            );
            println!("{}", r.token);
        }
        AgentsCommand::List => {
            let mut page_token = String::new();
            loop {
                let r = client
                    .list_agent_tokens(with_credential(
                        &key,
                        ListAgentTokensRequest {
                            page_size: 100,
                            page_token,
                        },
                    )?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for t in r.tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}\t{}\t{state}\texpires {}",
                        t.token_id,
                        t.agent_id,
                        time(t.expires_at)
                    );
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
        }
        AgentsCommand::Revoke { token_id } => {
            client
                .revoke_agent_token(with_credential(
                    &key,
                    RevokeAgentTokenRequest {
                        token_id: token_id.clone(),
                    },
                )?)
                .await
                .map_err(status_error)?;
            println!("revoked {token_id}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum OrdersCommand {
    /// Import orders and tracking scans from a JSON lines (`kefu.order.v1` /
    /// `kefu.tracking.v1` documents) or CSV file (docs/orders.md). Exits 1 if any line was
    /// rejected (the others are stored).
    Import {
        /// The file; `-` reads standard input (then --format is required).
        file: PathBuf,
        /// `jsonl` or `csv`; by default from the extension (.jsonl/.ndjson/.json → jsonl,
        /// .csv → csv).
        #[arg(long)]
        format: Option<String>,
        /// The shop (optional: the API key names it; when given it must match).
        #[arg(long, env = "KEFU_SHOP", default_value = "")]
        shop: String,
        #[command(flatten)]
        key: ShopKey,
        /// order-sync gRPC endpoint.
        #[arg(
            long,
            env = "KEFU_ORDER_SYNC_URL",
            default_value = "http://127.0.0.1:50056"
        )]
        url: String,
    },
}

/// Streams a file's lines to order-sync's `ImportOrders` and prints the result.
async fn import_orders(
    file: PathBuf,
    format: Option<String>,
    shop: String,
    key: ShopKey,
    url: String,
) -> anyhow::Result<()> {
    let key = key.key()?;
    use kefu_proto::order::v1::{
        ImportOrdersRequest, order_sync_service_client::OrderSyncServiceClient,
    };
    let format = match format {
        Some(f) => f,
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => "jsonl".to_owned(),
            Some("csv") => "csv".to_owned(),
            _ => bail!(
                "cannot tell the format of {} from its extension; pass --format jsonl|csv",
                file.display()
            ),
        },
    };
    if format != "jsonl" && format != "csv" {
        bail!("--format must be jsonl or csv");
    }
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?,
        )
    };
    let mut lines = tokio::io::BufReader::new(reader).lines();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let reading = tokio::spawn(async move {
        let mut first = true;
        while let Some(line) = lines.next_line().await? {
            let (shop_id, format) = if first {
                (shop.clone(), format.clone())
            } else {
                (String::new(), String::new())
            };
            first = false;
            if tx
                .send(ImportOrdersRequest {
                    shop_id,
                    format,
                    line,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        anyhow::Ok(())
    });
    let mut client =
        OrderSyncServiceClient::new(connect(&url).await?).max_encoding_message_size(128 * 1024);
    let result = client
        .import_orders(with_credential(
            &key,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("import refused: {}", s.message()))?
        .into_inner();
    reading.await??;
    println!(
        "{} records read, {} changed, {} rejected",
        result.records, result.changed, result.error_count
    );
    for e in &result.errors {
        println!("  line {}: {}", e.line, e.message);
    }
    if result.error_count > 0 {
        bail!("{} lines were rejected", result.error_count);
    }
    Ok(())
}

#[derive(Args, Clone)]
struct Customer {
    /// session-router gRPC endpoint.
    #[arg(long, env = "KEFU_URL", default_value = "http://127.0.0.1:50051")]
    url: String,
    /// The shop (optional: the API key names it; when given it must match).
    #[arg(long, env = "KEFU_SHOP", default_value = "")]
    shop: String,
    #[command(flatten)]
    key: ShopKey,
    #[arg(long, default_value = "web")]
    channel: String,
    /// Your id on the channel.
    #[arg(long, default_value = "cli-user")]
    user: String,
}

impl Customer {
    fn key(&self) -> anyhow::Result<String> {
        self.key.key()
    }

    async fn client(&self) -> anyhow::Result<SessionRouterServiceClient<Channel>> {
        Ok(SessionRouterServiceClient::new(connect(&self.url).await?))
    }

    fn request<T>(&self, key: &str, msg: T) -> anyhow::Result<Request<T>> {
        with_credential(key, msg)
    }

    async fn send(
        &self,
        client: &mut SessionRouterServiceClient<Channel>,
        key: &str,
        text: &str,
        id: String,
    ) -> anyhow::Result<(String, String)> {
        let resp = client
            .send(self.request(
                key,
                SendRequest {
                    shop_id: self.shop.clone(),
                    channel: self.channel.clone(),
                    channel_user_id: self.user.clone(),
                    channel_message_id: id,
                    text: text.to_owned(),
                    ..Default::default()
                },
            )?)
            .await
            .map_err(status_error)?
            .into_inner();
        Ok((resp.message_id, resp.conversation_id))
    }
}

/// Why a message got no reply in time, from the conversation's state.
async fn why_no_reply(
    c: &Customer,
    client: &mut SessionRouterServiceClient<Channel>,
    key: &str,
    conversation_id: &str,
    waited: u64,
) -> String {
    use kefu_proto::session::v1::GetConversationRequest;
    let conv = client
        .get_conversation(
            match c.request(
                key,
                GetConversationRequest {
                    shop_id: c.shop.clone(),
                    conversation_id: conversation_id.to_owned(),
                },
            ) {
                Ok(r) => r,
                Err(e) => return format!("no reply within {waited}s ({e})"),
            },
        )
        .await;
    let Ok(conv) = conv else {
        return format!("no reply within {waited}s, and the conversation cannot be read");
    };
    let Some(conv) = conv.into_inner().conversation else {
        return format!("no reply within {waited}s");
    };
    let ticket = if conv.open_ticket_id.is_empty() {
        String::new()
    } else {
        format!(", ticket {}", conv.open_ticket_id)
    };
    match conv.state.as_str() {
        "waiting_for_human" => format!(
            "no reply within {waited}s: this conversation is waiting for a person{ticket}; the bot stays silent until an agent replies, hands it back or closes it (kefu.ticket.v1.TicketService)"
        ),
        "human" => format!(
            "no reply within {waited}s: a person has this conversation{ticket}; their reply arrives here when they send it"
        ),
        "closed" => format!(
            "no reply within {waited}s: the conversation {conversation_id} is closed; your next message opens a new one"
        ),
        state => format!(
            "no reply within {waited}s (conversation {conversation_id} is '{state}'): the mesh has the message but has not answered yet; is every service SERVING? (kefu health 127.0.0.1:50051 … :50057)"
        ),
    }
}

fn print_reply(r: &Reply) {
    let who = match r.source.as_str() {
        "bot" => "bot",
        "human" => "agent",
        _ => "kefu",
    };
    let ticket = if r.ticket_id.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.ticket_id)
    };
    println!("{who}{ticket}> {}", r.text);
}

fn random_id() -> String {
    format!("cli-{}", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", std::process::id())
}

async fn chat(c: Customer) -> anyhow::Result<()> {
    let key = c.key()?;
    let mut client = c.client().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    // Messages waiting for their reply: when sent, in which conversation, explained yet.
    let mut pending: HashMap<String, (tokio::time::Instant, String, bool)> = HashMap::new();
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    println!(
        "Chatting with shop '{}' as {}:{} — type a message, Ctrl-D to quit.",
        if c.shop.is_empty() {
            "of the API key"
        } else {
            &c.shop
        },
        c.channel,
        c.user
    );
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let text = line.trim();
                if text.is_empty() { continue; }
                match c.send(&mut client, &key, text, random_id()).await {
                    Ok((message_id, conversation_id)) => {
                        pending.insert(message_id, (tokio::time::Instant::now(), conversation_id.clone(), false));
                        // A new conversation (the old one was closed) gets its own stream.
                        if subscribed.insert(conversation_id.clone()) {
                            let mut sub = client.clone();
                            let req = c.request(&key, SubscribeRequest {
                                shop_id: c.shop.clone(),
                                conversation_id,
                                after_cursor: 0,
                                channel: String::new(),
                            })?;
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                match sub.subscribe(req).await {
                                    Ok(stream) => {
                                        let mut s = stream.into_inner();
                                        while let Some(Ok(item)) = s.next().await {
                                            if let Some(r) = item.reply && tx.send(r).is_err() { break; }
                                        }
                                    }
                                    Err(e) => eprintln!("subscribe failed: {e}"),
                                }
                            });
                        }
                    }
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            Some(r) = rx.recv() => {
                if pending.remove(&r.message_id).is_some() { print_reply(&r); }
            }
            _ = tick.tick() => {
                // Say once why a message has had no reply for 10 s.
                let overdue: Vec<(String, String)> = pending
                    .iter_mut()
                    .filter(|(_, (at, _, told))| !*told && at.elapsed() > Duration::from_secs(10))
                    .map(|(id, (_, conv, told))| { *told = true; (id.clone(), conv.clone()) })
                    .collect();
                for (_, conv) in overdue {
                    println!("kefu> {}", why_no_reply(&c, &mut client, &key, &conv, 10).await);
                }
            }
        }
    }
    // Give replies in flight a moment before leaving.
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while !pending.is_empty() {
        tokio::select! {
            Some(r) = rx.recv() => if pending.remove(&r.message_id).is_some() { print_reply(&r) },
            _ = &mut deadline => break,
        }
    }
    Ok(())
}

async fn send_one(c: Customer, text: String, id: Option<String>, wait: u64) -> anyhow::Result<()> {
    let key = c.key()?;
    let mut client = c.client().await?;
    let (message_id, conversation_id) = c
        .send(&mut client, &key, &text, id.unwrap_or_else(random_id))
        .await?;
    println!("sent {message_id} (conversation {conversation_id})");
    let mut stream = client
        .subscribe(c.request(
            &key,
            SubscribeRequest {
                shop_id: c.shop.clone(),
                conversation_id: conversation_id.clone(),
                after_cursor: 0,
                channel: String::new(),
            },
        )?)
        .await?
        .into_inner();
    let found = tokio::time::timeout(Duration::from_secs(wait), async {
        while let Some(item) = stream.next().await {
            if let Some(r) = item?.reply
                && r.message_id == message_id
            {
                return Ok::<_, anyhow::Error>(Some(r));
            }
        }
        Ok(None)
    })
    .await;
    match found {
        Ok(Ok(Some(r))) => {
            print_reply(&r);
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        _ => bail!(
            "{}",
            why_no_reply(&c, &mut client, &key, &conversation_id, wait).await
        ),
    }
}

async fn health(addrs: Vec<String>, wait: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    for addr in addrs {
        let url = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        loop {
            let ok = async {
                let ch = Channel::from_shared(url.clone())?
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await?;
                let r = HealthClient::new(ch)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok::<_, anyhow::Error>(r.into_inner().status == ServingStatus::Serving as i32)
            }
            .await
            .unwrap_or(false);
            if ok {
                println!("{addr}: SERVING");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{addr} is not SERVING after {wait}s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chat(c) => chat(c).await,
        Command::Send {
            customer,
            text,
            message_id,
            wait_secs,
        } => send_one(customer, text, message_id, wait_secs).await,
        Command::Health { addrs, wait_secs } => health(addrs, wait_secs).await,
        Command::Orders {
            command:
                OrdersCommand::Import {
                    file,
                    format,
                    shop,
                    key,
                    url,
                },
        } => import_orders(file, format, shop, key, url).await,
        Command::Shops { operator, command } => shops(operator, command).await,
        Command::Dlq { command } => dlq(command).await,
        Command::Knowledge { target, command } => knowledge(target, command).await,
        Command::Promotions { target, command } => promotions(target, command).await,
        Command::Intents { target, command } => intents::intents(target, command).await,
        Command::Customers { target, command } => customers::customers(target, command).await,
        Command::Agents { key, url, command } => agents(key, url, command).await,
        Command::Topics {
            command:
                TopicsCommand::Create {
                    brokers,
                    prefix,
                    partitions,
                },
        } => kafka::ensure_topics(&KafkaConfig::new(brokers, prefix, partitions))
            .await
            .map(|()| println!("topics ready")),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
