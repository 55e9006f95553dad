//! `kefu`: the command line for people.
//!
//! * `kefu chat` — be a customer: type lines, see the replies.
//! * `kefu send --text "…"` — send one message and print its reply.
//! * `kefu health ADDR…` — wait until gRPC services report SERVING.
//! * `kefu orders import FILE` — bulk-import orders (JSON lines or CSV) into order-sync.
//! * `kefu topics create` — create every topic (and its `.dlq` twin).
#![forbid(unsafe_code)]

use std::{collections::HashSet, path::PathBuf, time::Duration};

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
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
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
        #[arg(long, env = "KEFU_SHOP", default_value = "demo")]
        shop: String,
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
    url: String,
) -> anyhow::Result<()> {
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
    let ch = Channel::from_shared(url.clone())?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut client = OrderSyncServiceClient::new(ch).max_encoding_message_size(128 * 1024);
    let result = client
        .import_orders(tokio_stream::wrappers::ReceiverStream::new(rx))
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
    #[arg(long, env = "KEFU_SHOP", default_value = "demo")]
    shop: String,
    /// Shop API key (overrides --api-key-file).
    #[arg(long, env = "KEFU_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[arg(long, env = "KEFU_API_KEY_FILE", default_value = ".kefu/demo-api-key")]
    api_key_file: PathBuf,
    #[arg(long, default_value = "web")]
    channel: String,
    /// Your id on the channel.
    #[arg(long, default_value = "cli-user")]
    user: String,
}

impl Customer {
    fn key(&self) -> anyhow::Result<String> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone());
        }
        let k = std::fs::read_to_string(&self.api_key_file).with_context(|| {
            format!(
                "reading API key from {} (run `make run` first, or pass --api-key)",
                self.api_key_file.display()
            )
        })?;
        Ok(k.trim().to_owned())
    }

    async fn client(&self) -> anyhow::Result<SessionRouterServiceClient<Channel>> {
        let ch = Channel::from_shared(self.url.clone())?
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        Ok(SessionRouterServiceClient::new(ch))
    }

    fn request<T>(&self, key: &str, msg: T) -> anyhow::Result<Request<T>> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {key}"))?,
        );
        Ok(r)
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
            .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?
            .into_inner();
        Ok((resp.message_id, resp.conversation_id))
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
    let mut pending: HashSet<String> = HashSet::new();
    let mut subscribed = false;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    println!(
        "Chatting with shop '{}' as {}:{} — type a message, Ctrl-D to quit.",
        c.shop, c.channel, c.user
    );
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let text = line.trim();
                if text.is_empty() { continue; }
                match c.send(&mut client, &key, text, random_id()).await {
                    Ok((message_id, conversation_id)) => {
                        pending.insert(message_id);
                        if !subscribed {
                            subscribed = true;
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
                if pending.remove(&r.message_id) { print_reply(&r); }
            }
        }
    }
    // Give replies in flight a moment before leaving.
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while !pending.is_empty() {
        tokio::select! {
            Some(r) = rx.recv() => if pending.remove(&r.message_id) { print_reply(&r) },
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
                conversation_id,
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
        _ => bail!("no reply within {wait}s"),
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
                    url,
                },
        } => import_orders(file, format, shop, url).await,
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
