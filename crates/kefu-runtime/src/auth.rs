//! Authentication for every Kefu API: one credential model and one place that turns a
//! credential into a [`Caller`] (docs/security.md).
//!
//! * **External callers** present `authorization: Bearer <credential>`: a shop API key
//!   (`kefu_…`), an agent token (`kefa_…`) or the operator token. session-router owns all three
//!   and tells every other service who holds one (`kefu.auth.v1.AuthService`, [`RemoteVerifier`]);
//!   answers are cached for [`CACHE_TTL`].
//! * **Services** call each other with a service credential: an HS256 JWT signed with the
//!   deployment's service secret, naming the calling service (`iss`), the service called
//!   (`aud`) and the shop the call is for (`sub`), valid for [`SERVICE_TOKEN_TTL`]. A token
//!   only opens the service it names, for [`SERVICE_TOKEN_TTL`], and no public method admits
//!   service callers at all.
//! * [`Guard`] wraps a tonic service: it authenticates every call before the handler runs,
//!   refuses the kinds of caller the method does not admit ([`Allow`]) and leaves the
//!   [`Caller`] in the request's extensions. Handlers take the shop from [`Caller::shop`],
//!   never from the request body.
use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    ops::BitOr,
    path::Path,
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kefu_proto::auth::v1::{AuthenticateRequest, auth_service_client::AuthServiceClient};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Code, Status, body::Body, server::NamedService, transport::Channel};

use crate::{grpc::ApiError, validate::Violations};

/// How long a verified external credential is trusted without asking again (a revoked key or
/// token stops working within this on other replicas and services).
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Lifetime of a service credential.
pub const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Clock skew tolerated between services, in seconds.
const LEEWAY_SECS: u64 = 10;
/// Shortest service secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 32;
/// Most credentials a cache holds.
const CACHE_MAX: usize = 10_000;
/// The service that verifies external credentials.
pub const AUTH_SERVICE: &str = "session-router";

/// Prefix of shop API keys.
pub const SHOP_KEY_PREFIX: &str = "kefu_";
/// Prefix of agent tokens.
pub const AGENT_TOKEN_PREFIX: &str = "kefa_";
/// Prefix of generated operator tokens (any token of at least 32 characters works).
pub const OPERATOR_TOKEN_PREFIX: &str = "kefo_";

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A shop's API key: the shop's channels and back office.
    Shop,
    /// An agent token the shop issued to one of its agents.
    Agent { agent_id: String },
    /// Another Kefu service, acting for the shop in its credential (or for none).
    Service { name: String },
    /// The deployment's operator: shops, not their data.
    Operator,
}

impl Principal {
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Shop => "shop",
            Principal::Agent { .. } => "agent",
            Principal::Service { .. } => "service",
            Principal::Operator => "operator",
        }
    }

    fn bit(&self) -> u8 {
        match self {
            Principal::Shop => Allow::SHOP.0,
            Principal::Agent { .. } => Allow::AGENT.0,
            Principal::Service { .. } => Allow::SERVICE.0,
            Principal::Operator => Allow::OPERATOR.0,
        }
    }
}

/// The kinds of caller a method admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allow(u8);

impl Allow {
    pub const SHOP: Allow = Allow(1);
    pub const AGENT: Allow = Allow(2);
    pub const SERVICE: Allow = Allow(4);
    pub const OPERATOR: Allow = Allow(8);

    pub fn admits(self, p: &Principal) -> bool {
        self.0 & p.bit() != 0
    }
}

impl BitOr for Allow {
    type Output = Allow;
    fn bitor(self, o: Allow) -> Allow {
        Allow(self.0 | o.0)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The credential's shop; empty for the operator and for service calls made for no shop.
    shop_id: String,
}

impl Caller {
    pub fn new(principal: Principal, shop_id: impl Into<String>) -> Self {
        Self {
            principal,
            shop_id: shop_id.into(),
        }
    }

    /// The credential's shop, if it has one.
    pub fn shop_id(&self) -> Option<&str> {
        (!self.shop_id.is_empty()).then_some(self.shop_id.as_str())
    }

    /// The shop a call acts on: always the credential's. A request's own `shop_id` field is
    /// optional and, when set, must name the same shop.
    pub fn shop(&self, requested: &str) -> Result<String, ApiError> {
        let Some(own) = self.shop_id() else {
            return Err(ApiError::PermissionDenied(format!(
                "a {} credential acts for no shop; use the shop's API key or an agent token",
                self.principal.kind()
            )));
        };
        if !requested.is_empty() && requested != own {
            return Err(ApiError::PermissionDenied(format!(
                "shop_id '{requested}' is not the shop of this credential"
            )));
        }
        Ok(own.to_owned())
    }

    /// The agent an action is recorded under. With an agent token it is the token's agent (a
    /// request's `agent_id` must be empty or the same); with the shop's key the request names
    /// the agent (`field`, required).
    pub fn agent(&self, requested: &str, field: &str) -> Result<String, ApiError> {
        match &self.principal {
            Principal::Agent { agent_id } => {
                if !requested.is_empty() && requested != agent_id {
                    return Err(ApiError::PermissionDenied(format!(
                        "this agent token is {agent_id}'s; it cannot act as '{requested}'"
                    )));
                }
                Ok(agent_id.clone())
            }
            _ => {
                let mut v = Violations::new();
                v.ident(field, requested, 64);
                v.into_result()?;
                Ok(requested.to_owned())
            }
        }
    }

    /// The caller [`Guard`] authenticated. Fails closed: a handler reached without the guard
    /// answers INTERNAL, never serves an anonymous caller.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<Caller, ApiError> {
        req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "handler reached without authentication: the service is not wrapped in auth::Guard"
            ))
        })
    }
}

/// Hex SHA-256 of a credential: the form in which keys and tokens are stored.
pub fn hash_hex(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

/// A new random credential: `prefix` + 40 hex digits (160 bits).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credential of `authorization: Bearer <credential>`.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated(
            "missing credential: send 'authorization: Bearer <shop API key or agent token>'".into(),
        ));
    };
    let value = value.to_str().unwrap_or("");
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() || token.len() > 4096 {
        return Err(ApiError::Unauthenticated(
            "authorization must be 'Bearer <credential>'".into(),
        ));
    }
    Ok(token)
}

fn is_service_token(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: u64,
    exp: u64,
}

/// The deployment's service secret(s): signs this service's calls and verifies calls to it.
pub struct ServiceKeys {
    name: String,
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("name", &self.name)
            .field("secrets", &self.verifying.len())
            .finish()
    }
}

impl ServiceKeys {
    /// Keys of service `name`. The first secret signs; every secret verifies, so a new secret
    /// can be rolled out before the old one is removed.
    pub fn new(name: &str, secrets: &[String]) -> Result<Self, String> {
        let Some(first) = secrets.first() else {
            return Err("no service secret".into());
        };
        if let Some(short) = secrets.iter().find(|s| s.len() < MIN_SECRET_BYTES) {
            return Err(format!(
                "a service secret must be at least {MIN_SECRET_BYTES} bytes (one is {})",
                short.len()
            ));
        }
        let bad = |e: jsonwebtoken::errors::Error| format!("unusable service secret: {e}");
        Ok(Self {
            name: name.to_owned(),
            signing: EncodingKey::from_secret(first.as_bytes()).map_err(bad)?,
            verifying: secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s.as_bytes()).map_err(bad))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Reads the secrets from a file: one per line, blank lines and `#` comments ignored.
    pub fn load(name: &str, path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let secrets: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Self::new(name, &secrets).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The service these keys belong to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A credential for calling `audience` on behalf of `shop_id` ("" for none).
    pub fn token(&self, audience: &str, shop_id: &str) -> String {
        let now = now_secs();
        let claims = Claims {
            iss: self.name.clone(),
            aud: audience.to_owned(),
            sub: shop_id.to_owned(),
            iat: now,
            exp: now + SERVICE_TOKEN_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// A request to `audience` for `shop_id`, carrying a fresh service credential and the
    /// current span's W3C trace context (`traceparent`, `tracestate`), so the callee's span
    /// joins the caller's trace.
    pub fn request<T>(&self, msg: T, audience: &str, shop_id: &str) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        let value = format!("Bearer {}", self.token(audience, shop_id));
        req.metadata_mut().insert(
            "authorization",
            value.parse().expect("a JWT is a valid header value"),
        );
        for (k, v) in crate::telemetry::current_trace_headers() {
            if let (Ok(k), Ok(v)) = (
                k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                v.parse(),
            ) {
                req.metadata_mut().insert(k, v);
            }
        }
        req
    }

    /// The caller a service credential names, if it is signed with one of our secrets, meant
    /// for this service and not expired.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[&self.name]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let mut last = None;
        for key in &self.verifying {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.exp.saturating_sub(c.iat) > SERVICE_TOKEN_TTL.as_secs() + LEEWAY_SECS {
                        return Err(ApiError::Unauthenticated(
                            "service credential lives too long".into(),
                        ));
                    }
                    return Ok(Caller::new(Principal::Service { name: c.iss }, c.sub));
                }
                Err(e) => last = Some(e),
            }
        }
        let why = match last.as_ref().map(|e| e.kind()) {
            Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => "expired",
            Some(jsonwebtoken::errors::ErrorKind::InvalidAudience) => "meant for another service",
            _ => "invalid",
        };
        Err(ApiError::Unauthenticated(format!(
            "service credential {why}"
        )))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Tells who holds an external credential (shop key, agent token, operator token).
#[async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// `None` when nobody does: unknown, revoked or expired.
    async fn verify(&self, credential: &str) -> Result<Option<Caller>, ApiError>;
}

/// Verified credentials by their SHA-256, for [`CACHE_TTL`].
#[derive(Default)]
pub struct CredentialCache {
    map: RwLock<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl CredentialCache {
    pub fn get(&self, credential: &str) -> Option<Caller> {
        let key: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(c, _)| c.clone())
    }

    pub fn put(&self, credential: &str, caller: Caller) {
        let key: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, (caller, Instant::now()));
    }

    /// Drops every cached caller `f` matches (after a rotation or revocation).
    pub fn forget(&self, f: impl Fn(&Caller) -> bool) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (c, _)| !f(c));
    }
}

/// Asks session-router's `AuthService` who holds a credential, with a service credential.
pub struct RemoteVerifier {
    client: AuthServiceClient<Channel>,
    keys: Arc<ServiceKeys>,
    cache: CredentialCache,
}

impl RemoteVerifier {
    /// `url` is session-router's gRPC endpoint; the connection is made on first use.
    pub fn new(url: &str, keys: Arc<ServiceKeys>) -> Result<Self, String> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("auth URL '{url}': {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3))
            .connect_lazy();
        Ok(Self {
            client: AuthServiceClient::new(channel),
            keys,
            cache: CredentialCache::default(),
        })
    }
}

#[async_trait]
impl Verifier for RemoteVerifier {
    async fn verify(&self, credential: &str) -> Result<Option<Caller>, ApiError> {
        if let Some(c) = self.cache.get(credential) {
            return Ok(Some(c));
        }
        let req = self.keys.request(
            AuthenticateRequest {
                credential: credential.to_owned(),
            },
            AUTH_SERVICE,
            "",
        );
        match self.client.clone().authenticate(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let principal = match r.kind.as_str() {
                    "shop" => Principal::Shop,
                    "agent" => Principal::Agent {
                        agent_id: r.agent_id,
                    },
                    "operator" => Principal::Operator,
                    other => {
                        return Err(ApiError::Internal(anyhow::anyhow!(
                            "AuthService answered an unknown kind '{other}'"
                        )));
                    }
                };
                let caller = Caller::new(principal, r.shop_id);
                self.cache.put(credential, caller.clone());
                Ok(Some(caller))
            }
            Err(s) if s.code() == Code::Unauthenticated => Ok(None),
            Err(s) => Err(ApiError::Unavailable(format!(
                "cannot verify the credential now ({AUTH_SERVICE}: {})",
                s.message()
            ))),
        }
    }
}

/// Authenticates calls: service credentials with the service secret, anything else with the
/// external [`Verifier`].
pub struct Gate {
    keys: Arc<ServiceKeys>,
    external: Arc<dyn Verifier>,
}

impl Gate {
    pub fn new(keys: Arc<ServiceKeys>, external: Arc<dyn Verifier>) -> Self {
        Self { keys, external }
    }

    pub fn keys(&self) -> &Arc<ServiceKeys> {
        &self.keys
    }

    /// The caller of a request with these headers, if `allow` admits them.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        allow: Allow,
    ) -> Result<Caller, ApiError> {
        let token = bearer(headers)?;
        let caller = if is_service_token(token) {
            self.keys.verify(token)?
        } else {
            self.external.verify(token).await?.ok_or_else(|| {
                ApiError::Unauthenticated("unknown, revoked or expired credential".into())
            })?
        };
        if !allow.admits(&caller.principal) {
            return Err(ApiError::PermissionDenied(format!(
                "{} credentials cannot call this method",
                caller.principal.kind()
            )));
        }
        Ok(caller)
    }
}

/// Which callers each method of a service admits (by method name); `None` refuses everyone.
pub type Policy = fn(&str) -> Option<Allow>;

/// The policy of services that hold no shop's data and serve shops and other services alike
/// (translation, intent-classifier, assistant).
pub fn shops_and_services(_method: &str) -> Option<Allow> {
    Some(Allow::SHOP | Allow::SERVICE)
}

/// A tonic service that authenticates every call (see the module docs). Health checks and
/// reflection are separate services and stay open (probes and tooling; they hold no data).
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    gate: Arc<Gate>,
    policy: Policy,
}

impl<S> Guard<S> {
    pub fn new(inner: S, gate: Arc<Gate>, policy: Policy) -> Self {
        Self {
            inner,
            gate,
            policy,
        }
    }
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Guard<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The ready service goes into the call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        let allow = (self.policy)(&method);
        Box::pin(async move {
            let authenticated = match allow {
                Some(allow) => gate.authenticate(req.headers(), allow).await,
                None => Err(ApiError::PermissionDenied(format!(
                    "method '{method}' admits no caller"
                ))),
            };
            match authenticated {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::debug!(%method, error = %e, "call refused");
                    Ok(Status::from(e).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(name: &str, secret: &str) -> ServiceKeys {
        ServiceKeys::new(name, &[secret.to_owned()]).unwrap()
    }

    const S1: &str = "0123456789abcdef0123456789abcdef-one";
    const S2: &str = "0123456789abcdef0123456789abcdef-two";

    #[test]
    fn a_service_credential_opens_only_the_service_it_names() {
        let assistant = keys("assistant", S1);
        let orders = keys("order-sync", S1);
        let ticket = keys("ticket", S1);
        let t = assistant.token("order-sync", "shop-a");
        assert!(is_service_token(&t));
        let c = orders.verify(&t).unwrap();
        assert_eq!(
            c.principal,
            Principal::Service {
                name: "assistant".into()
            }
        );
        assert_eq!(c.shop("").unwrap(), "shop-a");
        assert!(matches!(
            c.shop("shop-b"),
            Err(ApiError::PermissionDenied(_))
        ));
        assert!(matches!(
            ticket.verify(&t),
            Err(ApiError::Unauthenticated(m)) if m.contains("another service")
        ));
    }

    #[test]
    fn a_foreign_or_tampered_or_expired_credential_is_refused() {
        let ours = keys("order-sync", S1);
        let theirs = keys("assistant", S2);
        assert!(ours.verify(&theirs.token("order-sync", "a")).is_err());
        // Changing the shop in the payload breaks the signature.
        let t = keys("assistant", S1).token("order-sync", "a");
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = b64.encode(payload.replace("\"sub\":\"a\"", "\"sub\":\"b\""));
        assert!(ours.verify(&parts.join(".")).is_err());
        // Expired long ago.
        let old = Claims {
            iss: "assistant".into(),
            aud: "order-sync".into(),
            sub: "a".into(),
            iat: 1_000,
            exp: 1_060,
        };
        let stale = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &old,
            &EncodingKey::from_secret(S1.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            ours.verify(&stale),
            Err(ApiError::Unauthenticated(m)) if m.contains("expired")
        ));
        // Unsigned ("none") tokens never verify.
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(ours.verify(&none).is_err());
    }

    #[test]
    fn both_secrets_verify_during_a_rotation() {
        let old = keys("assistant", S1);
        let new = keys("assistant", S2);
        let rotating = ServiceKeys::new("order-sync", &[S2.into(), S1.into()]).unwrap();
        assert!(rotating.verify(&old.token("order-sync", "a")).is_ok());
        assert!(rotating.verify(&new.token("order-sync", "a")).is_ok());
        assert!(ServiceKeys::new("x", &["short".into()]).is_err());
        assert!(ServiceKeys::new("x", &[]).is_err());
    }

    #[test]
    fn callers_act_only_for_their_own_shop_and_agent() {
        let shop = Caller::new(Principal::Shop, "a");
        assert_eq!(shop.shop("").unwrap(), "a");
        assert_eq!(shop.shop("a").unwrap(), "a");
        assert!(matches!(shop.shop("b"), Err(ApiError::PermissionDenied(_))));
        assert!(matches!(
            shop.agent("", "agent_id"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert_eq!(shop.agent("alice", "agent_id").unwrap(), "alice");
        let agent = Caller::new(
            Principal::Agent {
                agent_id: "alice".into(),
            },
            "a",
        );
        assert_eq!(agent.agent("", "agent_id").unwrap(), "alice");
        assert!(matches!(
            agent.agent("bob", "agent_id"),
            Err(ApiError::PermissionDenied(_))
        ));
        let op = Caller::new(Principal::Operator, "");
        assert!(matches!(op.shop(""), Err(ApiError::PermissionDenied(_))));
        assert!(!(Allow::SHOP | Allow::AGENT).admits(&op.principal));
        assert!(Allow::OPERATOR.admits(&op.principal));
    }

    #[test]
    fn bearer_credentials_are_parsed_strictly() {
        let mut h = http::HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Bearer kefu_x".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), "kefu_x");
    }

    #[test]
    fn the_cache_forgets_and_expires() {
        let cache = CredentialCache::default();
        cache.put("k1", Caller::new(Principal::Shop, "a"));
        cache.put("k2", Caller::new(Principal::Shop, "b"));
        assert!(cache.get("k1").is_some());
        cache.forget(|c| c.shop_id() == Some("a"));
        assert!(cache.get("k1").is_none());
        assert!(cache.get("k2").is_some());
        assert!(cache.get("k3").is_none());
    }
}
