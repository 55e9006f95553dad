//! gRPC `kefu.session.v1.SessionRouterService`.
use std::{pin::Pin, time::Duration};

use kefu_proto::session::v1::{
    Conversation, Customer, DialoguePolicy, GetConversationRequest, GetConversationResponse,
    GetCustomerRequest, GetCustomerResponse, GetDialoguePolicyRequest, GetDialoguePolicyResponse,
    Identity, IdentityChange, LinkIdentitiesRequest, LinkIdentitiesResponse,
    ListConversationsRequest, ListConversationsResponse, ListMessagesRequest, ListMessagesResponse,
    RegisterWebhookRequest, RegisterWebhookResponse, Reply, RotateApiKeyRequest,
    RotateApiKeyResponse, SendRequest, SendResponse, SetDialoguePolicyRequest,
    SetDialoguePolicyResponse, SubscribeRequest, SubscribeResponse, TranscriptEntry,
    UnlinkIdentityRequest, UnlinkIdentityResponse,
    session_router_service_server::SessionRouterService,
};
use kefu_runtime::{auth::Caller, event, grpc::ApiError, validate::Violations};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{
    core::{self, NewMessage, Shared},
    entity::{conversation, conversation_state, reply},
    store::{self, Line},
};

/// Most intents a shop's dialogue policy hands to people.
pub const MAX_HUMAN_INTENTS: usize = 100;

pub struct Api {
    pub state: Shared,
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

pub fn conversation_to_proto(c: conversation::Model, idle: chrono::Duration) -> Conversation {
    Conversation {
        state: store::effective_state(&c, idle).to_owned(),
        recent_intents: c.intents().map(str::to_owned).collect(),
        conversation_id: c.conversation_id,
        shop_id: c.shop_id,
        customer_id: c.customer_id,
        open_ticket_id: c.open_ticket_id,
        previous_conversation_id: c.previous_conversation_id,
        created_at: Some(event::timestamp(c.created_at)),
        last_message_at: Some(event::timestamp(c.last_message_at)),
    }
}

pub fn line_to_proto(l: Line) -> TranscriptEntry {
    match l {
        Line::Message(m) => TranscriptEntry {
            author: "customer".into(),
            message_id: m.message_id,
            reply_id: String::new(),
            channel: m.channel,
            text: m.text,
            intent: m.intent,
            created_at: Some(event::timestamp(m.created_at)),
        },
        Line::Reply(r) => TranscriptEntry {
            author: r.source,
            message_id: r.message_id,
            reply_id: r.reply_id,
            channel: r.channel,
            text: r.text,
            intent: r.intent,
            created_at: Some(event::timestamp(r.created_at)),
        },
    }
}

fn policy_to_proto(p: &crate::policy::Policy) -> DialoguePolicy {
    DialoguePolicy {
        min_confidence: p.min_confidence,
        max_repeats: p.max_repeats as i32,
        human_intents: p.human_intents.clone(),
    }
}

fn check_identity(v: &mut Violations, field: &str, channel: &str, user: &str) {
    v.ident(&format!("{field}.channel"), channel, 32);
    v.text(&format!("{field}.channel_user_id"), user, 128, 512);
}

fn graph_error(e: store::GraphError) -> Status {
    match e {
        store::GraphError::NotFound(m) => ApiError::NotFound(m).into(),
        store::GraphError::Db(e) => ApiError::from(e).into(),
    }
}

impl Api {
    /// The preamble of every call: the request's fields are valid (`v`), and the shop is the
    /// caller's (a request's `shop_id`, when set, must be the same).
    fn admit(caller: &Caller, shop_id: &str, v: Violations) -> Result<String, Status> {
        v.into_result().map_err(ApiError::from)?;
        Ok(caller.shop(shop_id)?)
    }

    async fn customer(&self, shop_id: &str, customer_id: &str) -> Result<Customer, Status> {
        let ids = store::identities(&self.state.db, shop_id, customer_id)
            .await
            .map_err(ApiError::from)?;
        if ids.is_empty() {
            return Err(ApiError::NotFound(format!("customer {customer_id} not found")).into());
        }
        Ok(Customer {
            customer_id: customer_id.to_owned(),
            shop_id: shop_id.to_owned(),
            identities: ids
                .into_iter()
                .map(|i| Identity {
                    channel: i.channel,
                    channel_user_id: i.channel_user_id,
                    created_at: Some(event::timestamp(i.created_at)),
                })
                .collect(),
        })
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SessionRouterService for Api {
    async fn send(&self, req: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let accepted = core::send(
            &self.state,
            &caller,
            NewMessage {
                shop_id: r.shop_id,
                channel: r.channel,
                channel_user_id: r.channel_user_id,
                channel_message_id: r.channel_message_id,
                text: r.text,
                verified_phone: r.verified_phone,
                verified_email: r.verified_email,
            },
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

    async fn get_conversation(
        &self,
        req: Request<GetConversationRequest>,
    ) -> Result<Response<GetConversationResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("conversation_id", &r.conversation_id, 64);
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let c = store::shop_conversation(&self.state.db, &shop, &r.conversation_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!("conversation {} not found", r.conversation_id))
            })?;
        Ok(Response::new(GetConversationResponse {
            conversation: Some(conversation_to_proto(c, self.state.conversation_idle)),
        }))
    }

    async fn list_conversations(
        &self,
        req: Request<ListConversationsRequest>,
    ) -> Result<Response<ListConversationsResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        if !r.customer_id.is_empty() {
            v.ident("customer_id", &r.customer_id, 64);
        }
        let (limit, offset) = core::page(&mut v, r.page_size, &r.page_token, 20);
        if !r.state.is_empty() && !conversation_state::ALL.contains(&r.state.as_str()) {
            v.add(
                "state",
                format!("must be one of {}", conversation_state::ALL.join(", ")),
            );
        }
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let idle = self.state.conversation_idle;
        let filter = store::ConversationFilter {
            customer_id: (!r.customer_id.is_empty()).then_some(r.customer_id.as_str()),
            state: (!r.state.is_empty()).then_some(r.state.as_str()),
            idle,
        };
        let rows = store::list_conversations(&self.state.db, &shop, filter, limit, offset)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = core::next_token(offset, limit, rows.len());
        Ok(Response::new(ListConversationsResponse {
            conversations: rows
                .into_iter()
                .map(|c| conversation_to_proto(c, idle))
                .collect(),
            next_page_token,
        }))
    }

    async fn list_messages(
        &self,
        req: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let (lines, next_page_token) = core::transcript(
            &self.state,
            &caller,
            &r.shop_id,
            &r.conversation_id,
            r.page_size,
            &r.page_token,
        )
        .await?;
        Ok(Response::new(ListMessagesResponse {
            entries: lines.into_iter().map(line_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_customer(
        &self,
        req: Request<GetCustomerRequest>,
    ) -> Result<Response<GetCustomerResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("customer_id", &r.customer_id, 64);
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let customer = self.customer(&shop, &r.customer_id).await?;
        let history = store::identity_history(&self.state.db, &shop, &r.customer_id)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|c| IdentityChange {
                action: c.action,
                channel: c.channel,
                channel_user_id: c.channel_user_id,
                from_customer_id: c.from_customer_id,
                to_customer_id: c.to_customer_id,
                reason: c.reason,
                created_at: Some(event::timestamp(c.created_at)),
            })
            .collect();
        Ok(Response::new(GetCustomerResponse {
            customer: Some(customer),
            history,
        }))
    }

    async fn link_identities(
        &self,
        req: Request<LinkIdentitiesRequest>,
    ) -> Result<Response<LinkIdentitiesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("customer_id", &r.customer_id, 64);
        v.text("reason", &r.reason, 200, 800);
        if r.identities.is_empty() || r.identities.len() > 20 {
            v.add("identities", "must hold 1 to 20 identities");
        }
        for (i, id) in r.identities.iter().enumerate().take(20) {
            check_identity(
                &mut v,
                &format!("identities[{i}]"),
                &id.channel,
                &id.channel_user_id,
            );
        }
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let idents: Vec<(String, String)> = r
            .identities
            .into_iter()
            .map(|i| (i.channel, i.channel_user_id))
            .collect();
        store::link(&self.state.db, &shop, &r.customer_id, &idents, &r.reason)
            .await
            .map_err(graph_error)?;
        let customer = self.customer(&shop, &r.customer_id).await?;
        Ok(Response::new(LinkIdentitiesResponse {
            customer: Some(customer),
        }))
    }

    async fn unlink_identity(
        &self,
        req: Request<UnlinkIdentityRequest>,
    ) -> Result<Response<UnlinkIdentityResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.text("reason", &r.reason, 200, 800);
        let id = r.identity.unwrap_or_default();
        check_identity(&mut v, "identity", &id.channel, &id.channel_user_id);
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let (customer_id, conversation_id) = store::unlink(
            &self.state.db,
            &shop,
            &(id.channel, id.channel_user_id),
            &r.reason,
        )
        .await
        .map_err(graph_error)?;
        Ok(Response::new(UnlinkIdentityResponse {
            customer_id,
            conversation_id,
        }))
    }

    async fn register_webhook(
        &self,
        req: Request<RegisterWebhookRequest>,
    ) -> Result<Response<RegisterWebhookResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("channel", &r.channel, 32);
        if r.url.len() > 2048
            || !(r.url.starts_with("http://") || r.url.starts_with("https://"))
            || r.url.parse::<http::Uri>().is_err()
        {
            v.add(
                "url",
                "must be an http:// or https:// URL of at most 2048 characters",
            );
        }
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        // Only where the shop may send requests: never this deployment's own networks.
        if let Err(why) = self.state.egress.check_url(&r.url).await {
            let mut v = Violations::new();
            v.add("url", why);
            return Err(ApiError::from(v).into());
        }
        let secret = crate::webhook::register(&self.state.db, &shop, &r.channel, &r.url)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(RegisterWebhookResponse { secret }))
    }

    async fn rotate_api_key(
        &self,
        req: Request<RotateApiKeyRequest>,
    ) -> Result<Response<RotateApiKeyResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = Self::admit(&caller, &r.shop_id, Violations::new())?;
        let api_key = crate::access::rotate(&self.state, &shop).await?;
        Ok(Response::new(RotateApiKeyResponse { api_key }))
    }

    async fn get_dialogue_policy(
        &self,
        req: Request<GetDialoguePolicyRequest>,
    ) -> Result<Response<GetDialoguePolicyResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = Self::admit(&caller, &r.shop_id, Violations::new())?;
        let p = store::shop_policy(&self.state.db, &shop)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_else(|| self.state.default_policy.clone());
        Ok(Response::new(GetDialoguePolicyResponse {
            policy: Some(policy_to_proto(&p)),
        }))
    }

    async fn set_dialogue_policy(
        &self,
        req: Request<SetDialoguePolicyRequest>,
    ) -> Result<Response<SetDialoguePolicyResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let p = r.policy.unwrap_or_default();
        if !(0.0..=1.0).contains(&p.min_confidence) {
            v.add("policy.min_confidence", "must be between 0 and 1");
        }
        if !(0..=20).contains(&p.max_repeats) {
            v.add("policy.max_repeats", "must be between 0 and 20");
        }
        if p.human_intents.len() > MAX_HUMAN_INTENTS {
            v.add(
                "policy.human_intents",
                format!("at most {MAX_HUMAN_INTENTS} intents"),
            );
        }
        for (i, intent) in p.human_intents.iter().enumerate() {
            // A built-in intent or one of the shop's own (`kefu intents train`).
            if !kefu_intent::shop::valid_label(intent) {
                v.add(
                    &format!("policy.human_intents[{i}]"),
                    format!("'{intent}' is not an intent name ([a-z][a-z0-9_]{{0,47}})"),
                );
            }
        }
        let shop = Self::admit(&caller, &r.shop_id, v)?;
        let policy = crate::policy::Policy {
            min_confidence: p.min_confidence,
            max_repeats: p.max_repeats as usize,
            human_intents: p.human_intents,
        };
        store::set_shop_policy(&self.state.db, &shop, &policy)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(SetDialoguePolicyResponse {
            policy: Some(policy_to_proto(&policy)),
        }))
    }

    type SubscribeStream = ReplyStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        if !r.conversation_id.is_empty() {
            v.ident("conversation_id", &r.conversation_id, 64);
        }
        if !r.channel.is_empty() {
            v.ident("channel", &r.channel, 32);
        }
        if r.after_cursor < 0 {
            v.add("after_cursor", "must not be negative");
        }
        let shop = Self::admit(&caller, &r.shop_id, v)?;

        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut cursor = r.after_cursor;
            let conversation = (!r.conversation_id.is_empty()).then_some(r.conversation_id);
            let channel = (!r.channel.is_empty()).then_some(r.channel);
            let mut changed = state.replies.subscribe();
            loop {
                let batch = match store::replies_after(
                    &state.read,
                    &shop,
                    conversation.as_deref(),
                    channel.as_deref(),
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
