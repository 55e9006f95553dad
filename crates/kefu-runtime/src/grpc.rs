//! gRPC serving and the one place where errors become gRPC statuses (and HTTP responses).
use std::net::SocketAddr;

use axum::{Json, http::StatusCode, response::IntoResponse};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, service::Routes, transport::Server};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_types::{ErrorDetails, StatusExt};

use crate::validate::Violations;

/// Largest gRPC message a Kefu server decodes.
pub const MAX_DECODING_MESSAGE_SIZE: usize = 64 * 1024;

/// Errors an API can return; [`From<ApiError> for Status`] and [`IntoResponse`] are the only
/// mappings to wire errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(Violations),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the resource's state does not allow it (a closed ticket).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<Violations> for ApiError {
    fn from(v: Violations) -> Self {
        ApiError::InvalidArgument(v)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        match &err {
            ApiError::InvalidArgument(v) => {
                let mut details = ErrorDetails::new();
                for f in &v.0 {
                    details.add_bad_request_violation(f.field.clone(), f.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, err.to_string(), details)
            }
            ApiError::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                Status::internal("internal error")
            }
            other => Status::new(other.code(), other.to_string()),
        }
    }
}

/// JSON error body of the HTTP APIs: `{"error": {"code", "message", "details"}}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = match self.code() {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let details = match &self {
            ApiError::InvalidArgument(v) => serde_json::to_value(&v.0).unwrap_or_default(),
            _ => serde_json::Value::Array(vec![]),
        };
        if let ApiError::Internal(source) = &self {
            tracing::error!(error = ?source, "internal error");
        }
        let code = match self.code() {
            Code::InvalidArgument => "invalid_argument",
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission_denied",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unavailable => "unavailable",
            _ => "internal",
        };
        let body = serde_json::json!({
            "error": { "code": code, "message": self.to_string(), "details": details }
        });
        (status, Json(body)).into_response()
    }
}

/// Health reporting for one service: liveness is the overall status (`""`: the process
/// serves, until it drains), readiness the named service (NOT_SERVING also while a
/// [`crate::readiness`] condition holds, e.g. the broker is unreachable).
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service_name: &'static str,
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

impl Health {
    /// Both liveness and readiness (start and shutdown).
    pub async fn set(&self, serving: bool) {
        self.reporter.set_service_status("", status(serving)).await;
        self.set_ready(serving).await;
    }

    /// Readiness only.
    pub async fn set_ready(&self, ready: bool) {
        self.reporter
            .set_service_status(self.service_name, status(ready))
            .await;
    }
}

/// Adds `grpc.health.v1` and reflection to `routes`. Health starts NOT_SERVING; call
/// [`Health::set`] when ready.
pub async fn with_health_and_reflection(
    routes: Routes,
    service_name: &'static str,
) -> anyhow::Result<(Routes, Health)> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health {
        reporter,
        service_name,
    };
    health.set(false).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kefu_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok((
        routes.add_service(health_service).add_service(reflection),
        health,
    ))
}

/// Binds a listen address, naming what it is for in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {what} address {addr}: {e}"))
}

/// Serves `routes` on a bound listener until `shutdown` is cancelled, then drains in-flight
/// calls.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "gRPC server listening");
    Server::builder()
        .trace_fn(crate::telemetry::grpc_span)
        .add_routes(routes)
        .serve_with_incoming_shutdown(tokio_stream_wrap(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

fn tokio_stream_wrap(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((conn, l))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let mut v = Violations::new();
        v.add("text", "must not be empty");
        let status: Status = ApiError::from(v).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let br = details.bad_request().expect("bad request detail");
        assert_eq!(br.field_violations[0].field, "text");
    }

    #[test]
    fn internal_hides_the_cause() {
        let status: Status = ApiError::Internal(anyhow::anyhow!("secret dsn")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
