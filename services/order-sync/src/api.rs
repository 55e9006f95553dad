//! gRPC `kefu.order.v1.OrderSyncService`.
use std::sync::Arc;

use kefu_proto::order::v1::{
    CustomerKey, GetOrderRequest, GetOrderResponse, GetShipmentRequest, GetShipmentResponse,
    ImportLineError, ImportOrdersRequest, ImportOrdersResponse, ListCustomerOrdersRequest,
    ListCustomerOrdersResponse, UpsertOrderRequest, UpsertOrderResponse,
    order_sync_service_server::OrderSyncService,
};
use kefu_runtime::{
    auth::{Allow, Caller, Principal},
    grpc::ApiError,
    validate::Violations,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    http::Connectors,
    model::{Doc, OrderDoc, csv_rows},
    store::{self, Keys, Outcome},
};

/// Most lines one import stream may carry.
pub const MAX_IMPORT_LINES: u32 = 1_000_000;
/// Longest line of an import.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most line errors listed in the answer (all are counted).
const MAX_LISTED_ERRORS: usize = 100;

pub struct Api {
    pub c: Arc<Connectors>,
}

/// Who may call what. Reads: the shop (its back office), its agents, and the services that
/// answer its customers (the assistant, session-router), which must name the customer
/// (`customer_keys`). Writes: the shop's key only — connectors have their own signed HTTP
/// endpoints, and no service writes orders.
pub fn policy(method: &str) -> Option<Allow> {
    match method {
        "GetOrder" | "ListCustomerOrders" => Some(Allow::SHOP | Allow::AGENT | Allow::SERVICE),
        "GetShipment" => Some(Allow::SHOP | Allow::AGENT),
        "UpsertOrder" | "ImportOrders" => Some(Allow::SHOP),
        _ => None,
    }
}

fn check_keys(v: &mut Violations, keys: &[CustomerKey], required: bool) {
    if required && keys.is_empty() {
        v.add("customer_keys", "at least one key is required");
    }
    if keys.len() > 20 {
        v.add("customer_keys", "at most 20 keys");
    }
    for (i, k) in keys.iter().enumerate() {
        if !matches!(k.kind.as_str(), "identity" | "phone" | "email") {
            v.add(
                &format!("customer_keys[{i}].kind"),
                "must be identity, phone or email",
            );
        }
        if k.value.is_empty() || k.value.len() > 200 {
            v.add(
                &format!("customer_keys[{i}].value"),
                "must be 1-200 characters",
            );
        }
    }
}

/// Import state across the lines of one stream.
#[derive(Default)]
struct Import {
    shop_id: String,
    format: String,
    csv_header: Option<Vec<String>>,
    /// The CSV order being assembled and the line it started on.
    pending: Option<(OrderDoc, u32)>,
    records: u32,
    changed: u32,
    errors: Vec<ImportLineError>,
    error_count: u32,
}

impl Import {
    fn error(&mut self, line: u32, message: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(ImportLineError {
                line,
                message: message.into(),
            });
        }
    }

    async fn store(&mut self, c: &Connectors, line: u32, doc: Doc) -> Result<(), ApiError> {
        self.records += 1;
        let mut v = Violations::new();
        match &doc {
            Doc::Order(o) => o.validate(&mut v),
            Doc::Tracking(t) => t.validate(&mut v),
        }
        if let Err(v) = v.into_result() {
            self.error(line, v.to_string());
            return Ok(());
        }
        let out = match doc {
            Doc::Order(o) => {
                store::upsert_order(&c.db, &c.customer_keys, &self.shop_id, &o, "import").await?
            }
            Doc::Tracking(t) => store::add_tracking(&c.db, &self.shop_id, &t).await?,
        };
        if out == Outcome::Changed {
            self.changed += 1;
        }
        Ok(())
    }

    async fn flush_csv(&mut self, c: &Connectors) -> Result<(), ApiError> {
        if let Some((doc, line)) = self.pending.take() {
            self.store(c, line, Doc::Order(Box::new(doc))).await?;
        }
        Ok(())
    }

    async fn line(&mut self, c: &Connectors, n: u32, text: &str) -> Result<(), ApiError> {
        let text = text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return Ok(());
        }
        if text.len() > MAX_LINE_BYTES {
            self.error(n, format!("longer than {MAX_LINE_BYTES} bytes"));
            return Ok(());
        }
        if self.format == "jsonl" {
            let doc = serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("invalid JSON: {e}"))
                .and_then(Doc::from_json);
            return match doc {
                Ok(doc) => self.store(c, n, doc).await,
                Err(e) => {
                    self.records += 1;
                    self.error(n, e);
                    Ok(())
                }
            };
        }
        let Some(header) = self.csv_header.clone() else {
            return match csv_rows::header(text) {
                Ok(h) => {
                    self.csv_header = Some(h);
                    Ok(())
                }
                // Without a header no row can be read: everything after is refused.
                Err(e) => Err(ApiError::from({
                    let mut v = Violations::new();
                    v.add("line", format!("line {n} (CSV header): {e}"));
                    v
                })),
            };
        };
        let order_id = match csv_rows::order_id(&header, text) {
            Ok(id) => id,
            Err(e) => {
                self.error(n, e);
                return Ok(());
            }
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|(d, _)| d.order_id != order_id)
        {
            self.flush_csv(c).await?;
        }
        let (mut doc, start) = self
            .pending
            .take()
            .unwrap_or_else(|| (OrderDoc::default(), n));
        match csv_rows::apply(&header, text, &mut doc) {
            Ok(()) => self.pending = Some((doc, start)),
            Err(e) => {
                self.records += 1;
                self.error(n, e);
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl OrderSyncService for Api {
    async fn get_order(
        &self,
        req: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("order_id", &req.order_id, 64);
        // A service acts for a customer, never for the whole shop: it must say whose keys.
        let for_customer = matches!(caller.principal, Principal::Service { .. });
        check_keys(&mut v, &req.customer_keys, for_customer);
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let not_found = || ApiError::NotFound(format!("order {} not found", req.order_id));
        // Another customer's order is indistinguishable from a missing one.
        if !req.customer_keys.is_empty()
            && !store::belongs_to(
                &self.c.db,
                &shop_id,
                &req.order_id,
                &Keys::from_proto(&req.customer_keys),
            )
            .await
            .map_err(ApiError::from)?
        {
            return Err(not_found().into());
        }
        let o = store::load_order(&self.c.db, &shop_id, &req.order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        Ok(Response::new(GetOrderResponse { order: Some(o) }))
    }

    async fn list_customer_orders(
        &self,
        req: Request<ListCustomerOrdersRequest>,
    ) -> Result<Response<ListCustomerOrdersResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        check_keys(&mut v, &req.customer_keys, true);
        if !(0..=50).contains(&req.page_size) {
            v.add("page_size", "must be between 0 and 50");
        }
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let limit = if req.page_size == 0 {
            10
        } else {
            req.page_size as u64
        };
        let orders = store::customer_orders(
            &self.c.db,
            &shop_id,
            &Keys::from_proto(&req.customer_keys),
            limit,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(ListCustomerOrdersResponse { orders }))
    }

    async fn get_shipment(
        &self,
        req: Request<GetShipmentRequest>,
    ) -> Result<Response<GetShipmentResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("tracking_number", &req.tracking_number, 64);
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let s = store::get_shipment(&self.c.db, &shop_id, &req.tracking_number)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!("shipment {} not found", req.tracking_number))
            })?;
        Ok(Response::new(GetShipmentResponse { shipment: Some(s) }))
    }

    async fn upsert_order(
        &self,
        req: Request<UpsertOrderRequest>,
    ) -> Result<Response<UpsertOrderResponse>, Status> {
        let caller = Caller::of(&req)?;
        let o = req.into_inner().order.unwrap_or_default();
        let mut v = Violations::new();
        let doc = OrderDoc::from_proto(&o);
        let mut dv = Violations::new();
        doc.validate(&mut dv);
        for f in dv.0 {
            v.add(&format!("order.{}", f.field), f.description);
        }
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&o.shop_id)?;
        let out = store::upsert_order(&self.c.db, &self.c.customer_keys, &shop_id, &doc, "grpc")
            .await
            .map_err(ApiError::from)?;
        self.c.publish();
        let stored = store::load_order(&self.c.db, &shop_id, &o.order_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(UpsertOrderResponse {
            order: stored,
            changed: out == Outcome::Changed,
        }))
    }

    async fn import_orders(
        &self,
        req: Request<Streaming<ImportOrdersRequest>>,
    ) -> Result<Response<ImportOrdersResponse>, Status> {
        let caller = Caller::of(&req)?;
        let mut stream = req.into_inner();
        let mut import = Import::default();
        let mut n: u32 = 0;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            n += 1;
            if n > MAX_IMPORT_LINES {
                let mut v = Violations::new();
                v.add(
                    "line",
                    format!("at most {MAX_IMPORT_LINES} lines per import"),
                );
                return Err(ApiError::from(v).into());
            }
            if n == 1 {
                let mut v = Violations::new();
                if !matches!(msg.format.as_str(), "jsonl" | "csv") {
                    v.add("format", "must be jsonl or csv");
                }
                v.into_result().map_err(ApiError::from)?;
                import.shop_id = caller.shop(&msg.shop_id)?;
                import.format = msg.format.clone();
            } else if (!msg.shop_id.is_empty() && msg.shop_id != import.shop_id)
                || (!msg.format.is_empty() && msg.format != import.format)
            {
                let mut v = Violations::new();
                v.add("shop_id", "must not change within one import");
                return Err(ApiError::from(v).into());
            }
            import.line(&self.c, n, &msg.line).await?;
        }
        import.flush_csv(&self.c).await?;
        if import.shop_id.is_empty() {
            let mut v = Violations::new();
            v.add("line", "the import is empty");
            return Err(ApiError::from(v).into());
        }
        self.c.publish();
        Ok(Response::new(ImportOrdersResponse {
            records: import.records,
            changed: import.changed,
            errors: import.errors,
            error_count: import.error_count,
        }))
    }
}
