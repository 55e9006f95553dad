//! gRPC `kefu.session.v1.SessionRouterService`.
use std::{pin::Pin, time::Duration};

use kefu_proto::session::v1::{
    Reply, SendRequest, SendResponse, SubscribeRequest, SubscribeResponse,
    session_router_service_server::SessionRouterService,
};
use kefu_runtime::{event, grpc::ApiError, validate::Violations};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{
    core::{self, NewMessage, Shared},
    entity::reply,
    store,
};

pub struct Api {
    pub state: Shared,
}

fn authorization<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn to_proto(r: reply::Model) -> Reply {
    Reply {
        cursor: r.cursor,
        reply_id: r.reply_id,
        message_id: r.message_id,
        conversation_id: r.conversation_id,
        customer_id: r.customer_id,
        channel: r.channel,
        channel_user_id: r.channel_user_id,
        text: r.text,
        language: r.language,
        source: r.source,
        intent: r.intent,
        ticket_id: r.ticket_id,
        created_at: Some(event::timestamp(r.created_at)),
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SessionRouterService for Api {
    async fn send(&self, req: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let auth = authorization(&req);
        let r = req.into_inner();
        let accepted = core::send(
            &self.state,
            NewMessage {
                shop_id: r.shop_id,
                channel: r.channel,
                channel_user_id: r.channel_user_id,
                channel_message_id: r.channel_message_id,
                text: r.text,
            },
            auth.as_deref(),
            Violations::new(),
        )
        .await?;
        Ok(Response::new(SendResponse {
            message_id: accepted.message.message_id,
            conversation_id: accepted.message.conversation_id,
            customer_id: accepted.message.customer_id,
            duplicate: accepted.duplicate,
        }))
    }

    type SubscribeStream = ReplyStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let auth = authorization(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &r.shop_id, 64);
        if !r.conversation_id.is_empty() {
            v.ident("conversation_id", &r.conversation_id, 64);
        }
        if r.after_cursor < 0 {
            v.add("after_cursor", "must not be negative");
        }
        v.into_result().map_err(ApiError::from)?;
        self.state.auth.check(&r.shop_id, auth.as_deref()).await?;

        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut cursor = r.after_cursor;
            let conversation = (!r.conversation_id.is_empty()).then_some(r.conversation_id);
            let mut changed = state.replies.subscribe();
            loop {
                let batch = match store::replies_after(
                    &state.db,
                    &r.shop_id,
                    conversation.as_deref(),
                    cursor,
                    200,
                )
                .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(ApiError::from(e)))).await;
                        return;
                    }
                };
                let full = batch.len() == 200;
                for row in batch {
                    cursor = row.cursor;
                    let item = SubscribeResponse {
                        reply: Some(to_proto(row)),
                    };
                    let sent = tokio::select! {
                        r = tx.send(Ok(item)) => r.is_ok(),
                        _ = state.shutdown.cancelled() => false,
                    };
                    if !sent {
                        return; // subscriber went away, or shutting down
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = changed.changed() => {}
                    // Polling also picks up replies stored by other replicas.
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = tx.closed() => return,
                    _ = state.shutdown.cancelled() => {
                        let _ = tx.try_send(Err(Status::unavailable("server shutting down; resubscribe with the last cursor")));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
