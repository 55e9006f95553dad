//! Who may call what, and the credential APIs session-router serves:
//!
//! * [`policy`]: the callers each `SessionRouterService` method admits;
//! * `kefu.auth.v1.AuthService` (internal, service credentials only): who holds a credential,
//!   for every other service;
//! * `kefu.auth.v1.AgentTokenService` (the shop's API key): tokens for the shop's agents;
//! * `kefu.admin.v1.AdminService` (the operator token): shops and their keys.
use kefu_proto::{
    admin::v1::{
        CreateShopRequest, CreateShopResponse, ListShopsRequest, ListShopsResponse,
        ResetShopKeyRequest, ResetShopKeyResponse, Shop, admin_service_server::AdminService,
    },
    auth::v1::{
        AgentToken, AuthenticateRequest, AuthenticateResponse, IssueAgentTokenRequest,
        IssueAgentTokenResponse, ListAgentTokensRequest, ListAgentTokensResponse,
        RevokeAgentTokenRequest, RevokeAgentTokenResponse,
        agent_token_service_server::AgentTokenService, auth_service_server::AuthService,
    },
};
use kefu_runtime::{
    auth::{Allow, Caller, Principal, Verifier},
    event,
    grpc::ApiError,
    validate::Violations,
};
use tonic::{Request, Response, Status};

use crate::{
    auth::{self, MAX_AGENT_TOKEN_HOURS},
    core::{self, Shared},
    entity::agent_token,
};

/// Callers of `kefu.session.v1.SessionRouterService`, by method: channels and back offices
/// send with the shop's key; agents read conversations and link identities with their own
/// token; only the shop's key changes the shop's settings. No method admits service or
/// operator credentials.
pub fn policy(method: &str) -> Option<Allow> {
    match method {
        "Send" | "RegisterWebhook" | "RotateApiKey" | "GetDialoguePolicy" | "SetDialoguePolicy" => {
            Some(Allow::SHOP)
        }
        "Subscribe" | "GetConversation" | "ListConversations" | "ListMessages" | "GetCustomer"
        | "LinkIdentities" | "UnlinkIdentity" => Some(Allow::SHOP | Allow::AGENT),
        _ => None,
    }
}

/// `kefu.auth.v1.AuthService`: service credentials only.
pub fn auth_policy(_method: &str) -> Option<Allow> {
    Some(Allow::SERVICE)
}

/// `kefu.auth.v1.AgentTokenService`: the shop's API key only (an agent cannot mint tokens).
pub fn agent_token_policy(_method: &str) -> Option<Allow> {
    Some(Allow::SHOP)
}

/// `kefu.admin.v1.AdminService`: the operator only.
pub fn admin_policy(_method: &str) -> Option<Allow> {
    Some(Allow::OPERATOR)
}

pub struct Access {
    pub state: Shared,
}

fn token_to_proto(t: agent_token::Model) -> AgentToken {
    AgentToken {
        token_id: t.token_id,
        agent_id: t.agent_id,
        created_at: Some(event::timestamp(t.created_at)),
        expires_at: Some(event::timestamp(t.expires_at)),
        revoked_at: t.revoked_at.map(event::timestamp),
    }
}

#[tonic::async_trait]
impl AuthService for Access {
    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = req.into_inner();
        if r.credential.is_empty() || r.credential.len() > 4096 {
            let mut v = Violations::new();
            v.add("credential", "must be 1-4096 characters");
            return Err(ApiError::from(v).into());
        }
        let caller = self
            .state
            .verifier
            .verify(&r.credential)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated("unknown, revoked or expired credential".into())
            })?;
        let (kind, agent_id) = match &caller.principal {
            Principal::Shop => ("shop", String::new()),
            Principal::Agent { agent_id } => ("agent", agent_id.clone()),
            Principal::Operator => ("operator", String::new()),
            // Service credentials are verified by each service itself, never here.
            Principal::Service { .. } => {
                return Err(ApiError::Unauthenticated("not an external credential".into()).into());
            }
        };
        Ok(Response::new(AuthenticateResponse {
            kind: kind.into(),
            shop_id: caller.shop_id().unwrap_or_default().to_owned(),
            agent_id,
        }))
    }
}

#[tonic::async_trait]
impl AgentTokenService for Access {
    async fn issue_agent_token(
        &self,
        req: Request<IssueAgentTokenRequest>,
    ) -> Result<Response<IssueAgentTokenResponse>, Status> {
        let shop = Caller::of(&req)?.shop("")?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("agent_id", &r.agent_id, 64);
        if !(0..=MAX_AGENT_TOKEN_HOURS).contains(&r.ttl_hours) {
            v.add(
                "ttl_hours",
                format!("must be between 0 and {MAX_AGENT_TOKEN_HOURS}"),
            );
        }
        v.into_result().map_err(ApiError::from)?;
        let ttl = if r.ttl_hours == 0 { 24 } else { r.ttl_hours };
        let (token, info) = auth::issue_agent_token(&self.state.db, &shop, &r.agent_id, ttl)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(shop = %shop, agent = %r.agent_id, token_id = %info.token_id, "agent token issued");
        Ok(Response::new(IssueAgentTokenResponse {
            token,
            info: Some(token_to_proto(info)),
        }))
    }

    async fn list_agent_tokens(
        &self,
        req: Request<ListAgentTokensRequest>,
    ) -> Result<Response<ListAgentTokensResponse>, Status> {
        let shop = Caller::of(&req)?.shop("")?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let (limit, offset) = core::page(&mut v, r.page_size, &r.page_token, 50);
        v.into_result().map_err(ApiError::from)?;
        let rows = auth::list_agent_tokens(&self.state.db, &shop, limit, offset)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = core::next_token(offset, limit, rows.len());
        Ok(Response::new(ListAgentTokensResponse {
            tokens: rows.into_iter().map(token_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn revoke_agent_token(
        &self,
        req: Request<RevokeAgentTokenRequest>,
    ) -> Result<Response<RevokeAgentTokenResponse>, Status> {
        let shop = Caller::of(&req)?.shop("")?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("token_id", &r.token_id, 64);
        v.into_result().map_err(ApiError::from)?;
        let info = auth::revoke_agent_token(&self.state.db, &shop, &r.token_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("agent token {} not found", r.token_id)))?;
        self.state.verifier.forget_agents(&shop);
        tracing::info!(shop = %shop, token_id = %r.token_id, "agent token revoked");
        Ok(Response::new(RevokeAgentTokenResponse {
            info: Some(token_to_proto(info)),
        }))
    }
}

#[tonic::async_trait]
impl AdminService for Access {
    async fn create_shop(
        &self,
        req: Request<CreateShopRequest>,
    ) -> Result<Response<CreateShopResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &r.shop_id, 64);
        v.into_result().map_err(ApiError::from)?;
        let key = auth::generate_key();
        if !auth::create_shop(&self.state.db, &r.shop_id, &key)
            .await
            .map_err(ApiError::from)?
        {
            return Err(
                ApiError::AlreadyExists(format!("shop '{}' already exists", r.shop_id)).into(),
            );
        }
        tracing::info!(shop = %r.shop_id, "shop created");
        Ok(Response::new(CreateShopResponse {
            shop: Some(Shop {
                shop_id: r.shop_id,
                created_at: Some(event::timestamp(chrono::Utc::now())),
            }),
            api_key: key,
        }))
    }

    async fn list_shops(
        &self,
        req: Request<ListShopsRequest>,
    ) -> Result<Response<ListShopsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let (limit, offset) = core::page(&mut v, r.page_size, &r.page_token, 100);
        v.into_result().map_err(ApiError::from)?;
        let rows = auth::list_shops(&self.state.db, limit, offset)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = core::next_token(offset, limit, rows.len());
        Ok(Response::new(ListShopsResponse {
            shops: rows
                .into_iter()
                .map(|s| Shop {
                    shop_id: s.shop_id,
                    created_at: Some(event::timestamp(s.created_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn reset_shop_key(
        &self,
        req: Request<ResetShopKeyRequest>,
    ) -> Result<Response<ResetShopKeyResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &r.shop_id, 64);
        v.into_result().map_err(ApiError::from)?;
        let api_key = rotate(&self.state, &r.shop_id).await?;
        Ok(Response::new(ResetShopKeyResponse { api_key }))
    }
}

/// Gives a shop a new API key; the old one stops working here at once.
pub async fn rotate(state: &crate::core::State, shop_id: &str) -> Result<String, ApiError> {
    let api_key = auth::generate_key();
    if !auth::set_key(&state.db, shop_id, &api_key).await? {
        return Err(ApiError::NotFound(format!("shop '{shop_id}' not found")));
    }
    state.verifier.forget_shop(shop_id);
    tracing::info!(shop = %shop_id, "API key rotated");
    Ok(api_key)
}
