//! `kefu customers export|erase --shop S --customer C` (docs/privacy.md): a customer's data
//! rights. The CLI asks session-router first (it knows the customer and completes the subject:
//! keys, message and conversation ids, message texts), then every other service holding
//! customer data, through `kefu.privacy.v1.CustomerDataService` with the shop's API key.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kefu_proto::privacy::v1::{
    EraseCustomerRequest, ExportCustomerRequest, ExportCustomerResponse, Subject,
    customer_data_service_client::CustomerDataServiceClient,
};
use serde_json::{Map, Value, json};
use tonic::{Code, transport::Channel};

use crate::{ShopKey, connect, status_error, with_credential};

/// Where the customer's data lives, as the shop: the shop's API key and each service's gRPC
/// endpoint.
#[derive(Args, Clone)]
pub struct CustomersTarget {
    #[command(flatten)]
    key: ShopKey,
    /// The shop (optional: the API key names it; when given it must match).
    #[arg(long, global = true, env = "KEFU_SHOP", default_value = "")]
    shop: String,
    /// session-router gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    url: String,
    /// ticket gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_TICKET_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    ticket_url: String,
    /// order-sync gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_ORDER_SYNC_URL",
        default_value = "http://127.0.0.1:50056"
    )]
    order_sync_url: String,
    /// intent-classifier gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_INTENT_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    intent_url: String,
}

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Everything the mesh holds about a customer, as one JSON document
    /// `{shop_id, customer_id, exported_at, services: {service: {table: [rows]}}}`.
    Export {
        /// The customer (session-router's id, `cus_…`).
        #[arg(long)]
        customer: String,
        /// Write the document here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase a customer everywhere: messages, replies, identities, keys, tickets, labelled
    /// examples; orders keep their amounts with the buyer redacted. Without `--yes` only shows
    /// what would be erased.
    Erase {
        /// The customer (session-router's id, `cus_…`).
        #[arg(long)]
        customer: String,
        /// Really erase (there is no undo).
        #[arg(long)]
        yes: bool,
    },
}

type Client = CustomerDataServiceClient<Channel>;

/// Largest message either way: a subject carries the customer's message texts, an export
/// their whole history.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

async fn client(url: &str) -> anyhow::Result<Client> {
    Ok(CustomerDataServiceClient::new(connect(url).await?)
        .max_encoding_message_size(MAX_MESSAGE)
        .max_decoding_message_size(MAX_MESSAGE))
}

/// The services after session-router, in erase order (session-router goes last: while it still
/// knows the customer, an interrupted erase can be run again).
fn others(t: &CustomersTarget) -> [(&'static str, &str); 3] {
    [
        ("order-sync", t.order_sync_url.as_str()),
        ("ticket", t.ticket_url.as_str()),
        ("intent-classifier", t.intent_url.as_str()),
    ]
}

async fn export_one(
    key: &str,
    url: &str,
    shop: &str,
    subject: Subject,
) -> Result<ExportCustomerResponse, tonic::Status> {
    let mut c = client(url)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:#}")))?;
    let req = with_credential(
        key,
        ExportCustomerRequest {
            shop_id: shop.to_owned(),
            subject: Some(subject),
        },
    )
    .map_err(|e| tonic::Status::invalid_argument(format!("{e:#}")))?;
    Ok(c.export_customer(req).await?.into_inner())
}

/// session-router's export: the customer's rows there and the completed subject; `None` when
/// the shop has no such customer.
async fn start(
    t: &CustomersTarget,
    key: &str,
    customer: &str,
) -> anyhow::Result<Option<ExportCustomerResponse>> {
    let subject = Subject {
        customer_id: customer.to_owned(),
        ..Subject::default()
    };
    match export_one(key, &t.url, &t.shop, subject).await {
        Ok(r) => Ok(Some(r)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(status_error(s)).context("session-router"),
    }
}

fn document(r: &ExportCustomerResponse) -> anyhow::Result<Value> {
    serde_json::from_str(&r.document_json)
        .with_context(|| format!("{} answered an invalid document", r.service))
}

pub async fn customers(t: CustomersTarget, command: CustomersCommand) -> anyhow::Result<()> {
    let key = t.key.key()?;
    match command {
        CustomersCommand::Export { customer, out } => {
            let Some(first) = start(&t, &key, &customer).await? else {
                anyhow::bail!("no customer {customer} in this shop");
            };
            let subject = first.subject.clone().unwrap_or_default();
            let mut services = Map::new();
            services.insert(first.service.clone(), document(&first)?);
            for (name, url) in others(&t) {
                let r = export_one(&key, url, &first.shop_id, subject.clone())
                    .await
                    .map_err(status_error)
                    .with_context(|| name.to_owned())?;
                services.insert(r.service.clone(), document(&r)?);
            }
            let doc = json!({
                "shop_id": first.shop_id,
                "customer_id": customer,
                "exported_at": chrono::Utc::now().to_rfc3339(),
                "services": services,
            });
            let text = serde_json::to_string_pretty(&doc)? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("exported customer {customer} to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        CustomersCommand::Erase { customer, yes } => {
            let Some(first) = start(&t, &key, &customer).await? else {
                println!("no customer {customer} in this shop: nothing to erase");
                return Ok(());
            };
            let subject = first.subject.clone().unwrap_or_default();
            if !yes {
                println!("would erase customer {customer} of shop {}:", first.shop_id);
                let mut plan = vec![first];
                for (name, url) in others(&t) {
                    plan.push(
                        export_one(&key, url, &first_shop(&plan), subject.clone())
                            .await
                            .map_err(status_error)
                            .with_context(|| name.to_owned())?,
                    );
                }
                for r in &plan {
                    for c in &r.tables {
                        println!("{:<18} {:<20} {}", r.service, c.table, c.rows);
                    }
                }
                anyhow::bail!("nothing erased: pass --yes to erase");
            }
            let mut total = 0;
            let urls = others(&t)
                .into_iter()
                .chain([("session-router", t.url.as_str())]);
            for (name, url) in urls {
                let mut c = client(url).await.context(name)?;
                let r = c
                    .erase_customer(with_credential(
                        &key,
                        EraseCustomerRequest {
                            shop_id: first.shop_id.clone(),
                            subject: Some(subject.clone()),
                        },
                    )?)
                    .await
                    .map_err(status_error)
                    .with_context(|| format!("{name} (run the erase again: it is idempotent)"))?
                    .into_inner();
                for c in &r.erased {
                    println!("{:<18} {:<20} {}", r.service, c.table, c.rows);
                    total += c.rows;
                }
            }
            println!(
                "erased {total} rows of customer {customer} of shop {}",
                first.shop_id
            );
        }
    }
    Ok(())
}

fn first_shop(plan: &[ExportCustomerResponse]) -> String {
    plan[0].shop_id.clone()
}
