//! Customer data rights (`kefu.privacy.v1.CustomerDataService`, docs/privacy.md): the gRPC
//! plumbing every service that stores customer data shares. A service implements
//! [`CustomerData`] (what it holds about a [`Subject`] and how to erase it) and registers
//! [`server`] on its gRPC port behind [`crate::auth::Guard`] with [`policy`].
use chrono::{DateTime, Utc};
use kefu_proto::privacy::v1::{
    EraseCustomerRequest, EraseCustomerResponse, ExportCustomerRequest, ExportCustomerResponse,
    Subject, TableCount, customer_data_service_server::CustomerDataServiceServer,
};
pub use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Allow, Caller},
    grpc::ApiError,
    validate::Violations,
};

/// Most ids / texts / keys a subject may carry (a customer with more is exported in parts by
/// nobody: the request is refused with a field error).
pub const MAX_SUBJECT_ITEMS: usize = 100_000;

/// Largest request: a subject carries the texts of all the customer's messages.
pub const MAX_SUBJECT_BYTES: usize = 32 * 1024 * 1024;

/// Who may call `CustomerDataService`: the shop's API key only (the shop's data controller).
pub fn policy(method: &str) -> Option<Allow> {
    match method {
        "ExportCustomer" | "EraseCustomer" => Some(Allow::SHOP),
        _ => None,
    }
}

/// A column value as JSON (timestamps as RFC 3339, bytes as hex).
pub trait ToJson {
    fn to_json(&self) -> Value;
}

macro_rules! to_json_via_from {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                Value::from(self.clone())
            }
        }
    )*};
}
to_json_via_from!(String, i64, i32, bool, f64);

impl ToJson for DateTime<Utc> {
    fn to_json(&self) -> Value {
        Value::from(self.to_rfc3339())
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::to_json)
    }
}

impl ToJson for Vec<u8> {
    fn to_json(&self) -> Value {
        Value::from(hex::encode(self))
    }
}

/// A row as a JSON object of the named fields: `json_row!(model; id, text, created_at)`.
#[macro_export]
macro_rules! json_row {
    ($m:expr; $($f:ident),* $(,)?) => {{
        let m = &$m;
        let mut o = $crate::privacy::Map::new();
        $( o.insert(stringify!($f).to_owned(), $crate::privacy::ToJson::to_json(&m.$f)); )*
        $crate::privacy::Value::Object(o)
    }};
}

/// What a service holds about a subject: rows per table.
#[derive(Debug, Default)]
pub struct Export {
    tables: Vec<(String, Vec<Value>)>,
    /// session-router: the completed subject for the other services.
    pub subject: Option<Subject>,
}

impl Export {
    /// Adds a table's rows (also when there are none: the document lists every table).
    pub fn table(&mut self, name: &str, rows: Vec<Value>) -> &mut Self {
        self.tables.push((name.to_owned(), rows));
        self
    }

    /// True when no table has a row.
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, rows)| rows.is_empty())
    }

    fn into_response(self, service: &str, shop_id: &str) -> ExportCustomerResponse {
        let tables = self
            .tables
            .iter()
            .map(|(t, rows)| TableCount {
                table: t.clone(),
                rows: rows.len() as i64,
            })
            .collect();
        let doc: Map<String, Value> = self
            .tables
            .into_iter()
            .map(|(t, rows)| (t, Value::Array(rows)))
            .collect();
        ExportCustomerResponse {
            service: service.to_owned(),
            document_json: Value::Object(doc).to_string(),
            tables,
            subject: self.subject,
            shop_id: shop_id.to_owned(),
        }
    }
}

/// Rows erased (deleted or redacted) per table.
#[derive(Debug, Default)]
pub struct Erased(pub Vec<(String, u64)>);

impl Erased {
    pub fn add(&mut self, table: &str, rows: u64) -> &mut Self {
        match self.0.iter_mut().find(|(t, _)| t == table) {
            Some((_, n)) => *n += rows,
            None => self.0.push((table.to_owned(), rows)),
        }
        self
    }
}

/// What a service stores about customers, for export and erasure.
#[tonic::async_trait]
pub trait CustomerData: Send + Sync + 'static {
    /// The service's name in the merged document.
    fn service(&self) -> &'static str;
    /// Everything held about `subject` in `shop_id`.
    async fn export(&self, shop_id: &str, subject: &Subject) -> Result<Export, ApiError>;
    /// Deletes / redacts everything held about `subject` in `shop_id`, in one transaction;
    /// idempotent.
    async fn erase(&self, shop_id: &str, subject: &Subject) -> Result<Erased, ApiError>;
}

/// The gRPC face of a [`CustomerData`].
pub struct Api<T>(pub T);

/// `CustomerDataService` for `data`, to register behind [`crate::auth::Guard`] with [`policy`].
pub fn server<T: CustomerData>(data: T) -> CustomerDataServiceServer<Api<T>> {
    CustomerDataServiceServer::new(Api(data)).max_decoding_message_size(MAX_SUBJECT_BYTES)
}

/// The caller's shop and the validated subject of a request.
fn checked(
    caller: &Caller,
    shop_id: &str,
    subject: Option<Subject>,
) -> Result<(String, Subject), ApiError> {
    let subject = subject.unwrap_or_default();
    let mut v = Violations::new();
    v.ident("subject.customer_id", &subject.customer_id, 64);
    for (field, n) in [
        ("subject.keys", subject.keys.len()),
        ("subject.message_ids", subject.message_ids.len()),
        ("subject.conversation_ids", subject.conversation_ids.len()),
        ("subject.texts", subject.texts.len()),
    ] {
        if n > MAX_SUBJECT_ITEMS {
            v.add(field, format!("at most {MAX_SUBJECT_ITEMS}"));
        }
    }
    // A key selects rows by equality: an empty value would select every row whose column is
    // empty (every buyer without a phone, say), so each key must have the shape of one.
    for (i, k) in subject.keys.iter().enumerate() {
        let ok = match k.kind.as_str() {
            "phone" | "email" => {
                k.value.len() == 64 && k.value.bytes().all(|b| b.is_ascii_hexdigit())
            }
            "identity" => k
                .value
                .split_once(':')
                .is_some_and(|(channel, user)| !channel.is_empty() && !user.trim().is_empty()),
            _ => false,
        };
        if !ok {
            v.add(
                &format!("subject.keys[{i}]"),
                "a phone or email key is a 64-hex-digit hash, an identity key `channel:user`",
            );
            break;
        }
    }
    v.into_result()?;
    let shop = caller.shop(shop_id)?;
    Ok((shop, subject))
}

#[tonic::async_trait]
impl<T: CustomerData> kefu_proto::privacy::v1::customer_data_service_server::CustomerDataService
    for Api<T>
{
    async fn export_customer(
        &self,
        req: Request<ExportCustomerRequest>,
    ) -> Result<Response<ExportCustomerResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let (shop, subject) = checked(&caller, &r.shop_id, r.subject)?;
        let export = self.0.export(&shop, &subject).await?;
        tracing::info!(shop_id = %shop, service = self.0.service(), "customer data exported");
        Ok(Response::new(export.into_response(self.0.service(), &shop)))
    }

    async fn erase_customer(
        &self,
        req: Request<EraseCustomerRequest>,
    ) -> Result<Response<EraseCustomerResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let (shop, subject) = checked(&caller, &r.shop_id, r.subject)?;
        let erased = self.0.erase(&shop, &subject).await?;
        let total: u64 = erased.0.iter().map(|(_, n)| n).sum();
        tracing::info!(shop_id = %shop, service = self.0.service(), rows = total, "customer data erased");
        Ok(Response::new(EraseCustomerResponse {
            service: self.0.service().to_owned(),
            erased: erased
                .0
                .into_iter()
                .map(|(table, rows)| TableCount {
                    table,
                    rows: rows as i64,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        id: i64,
        text: String,
        at: DateTime<Utc>,
        done: Option<DateTime<Utc>>,
    }

    #[test]
    fn rows_become_json_objects_and_the_document_lists_every_table() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = Row {
            id: 1,
            text: "hi".into(),
            at,
            done: None,
        };
        let mut e = Export::default();
        e.table("rows", vec![json_row!(r; id, text, at, done)])
            .table("empty", vec![]);
        assert!(!e.is_empty());
        let resp = e.into_response("svc", "s1");
        let doc: Value = serde_json::from_str(&resp.document_json).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"rows": [{"id": 1, "text": "hi", "at": "2026-12-01T00:00:00+00:00", "done": null}], "empty": []})
        );
        assert_eq!(resp.tables[1].rows, 0);
        let mut er = Erased::default();
        er.add("a", 2).add("a", 3).add("b", 0);
        assert_eq!(er.0, vec![("a".to_owned(), 5), ("b".to_owned(), 0)]);
    }

    /// An empty key would select every row whose column is empty (every buyer without a
    /// phone): keys must have the shape of one.
    #[test]
    fn keys_that_would_select_everyone_are_refused() {
        let shop = Caller::new(crate::auth::Principal::Shop, "s1");
        let with = |kind: &str, value: &str| {
            Some(Subject {
                customer_id: "cus_1".into(),
                keys: vec![kefu_proto::privacy::v1::SubjectKey {
                    kind: kind.into(),
                    value: value.into(),
                }],
                ..Subject::default()
            })
        };
        for (kind, value) in [
            ("phone", ""),
            ("email", "   "),
            ("identity", ""),
            ("identity", "web:"),
            ("identity", ":u1"),
            ("phone", "123"),
            ("other", "x"),
        ] {
            assert!(
                checked(&shop, "", with(kind, value)).is_err(),
                "{kind}={value:?}"
            );
        }
        assert!(checked(&shop, "", with("identity", "web:u1")).is_ok());
        assert!(checked(&shop, "", with("phone", &"ab".repeat(32))).is_ok());
    }
}
