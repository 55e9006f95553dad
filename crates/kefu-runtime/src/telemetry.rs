//! Tracing and OpenTelemetry.
//!
//! Spans always get OpenTelemetry contexts (so `traceparent` travels in Kafka headers and gRPC
//! metadata); they are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Where a trace starts and how it travels:
//! * every gRPC call a Kefu server receives runs in a server span ([`grpc_span`], installed by
//!   [`crate::grpc::serve`]) and every HTTP request in one ([`http_span`]), a child of the
//!   caller's `traceparent` header when it sends one, else the root of a new trace; so a
//!   customer message's trace starts at `Send` / `POST /v1/messages`;
//! * events produced while handling it carry the span's context in Kafka headers
//!   ([`current_trace_headers`]); consumers continue it ([`set_parent_from`]);
//! * calls to other services carry it in gRPC metadata ([`crate::auth::ServiceKeys::request`]).
use std::collections::HashMap;

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Flushes telemetry when dropped or on [`TelemetryGuard::shutdown`].
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("telemetry shutdown: {e}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), text or JSON lines,
/// and the OpenTelemetry layer.
pub fn init(service: &'static str, format: LogFormat) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let mut export_error = None;
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sqlx=warn,sea_orm=warn,rdkafka=warn")
    });
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("tracing already initialised: {e}");
    }
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "OTLP exporter could not be built; spans are not exported");
    }
    TelemetryGuard {
        provider: Some(provider),
    }
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);
impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);
impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// W3C trace context (`traceparent`, `tracestate`) of the current span.
pub fn current_trace_headers() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MapInjector(&mut map)));
    // The propagator always writes `tracestate`, empty when there is none; an absent header
    // means the same (W3C Trace Context §3.3) and costs the broker nothing.
    map.retain(|_, v| !v.is_empty());
    map
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);
impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the trace named by HTTP/2 (gRPC metadata) or HTTP/1 headers, if
/// they carry a `traceparent`.
pub fn set_parent_from_http(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let cx = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let _ = span.set_parent(cx);
    }
}

/// The server span of one gRPC call (none for health checks and reflection, which would only
/// add noise): named by the method's path, a child of the caller's `traceparent` metadata.
pub fn grpc_span(req: &axum::http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    set_parent_from_http(&span, req.headers());
    span
}

/// axum middleware: runs each HTTP request in a server span named by its route, a child of the
/// request's `traceparent` header when it has one.
pub async fn http_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.response.status_code = tracing::field::Empty,
    );
    set_parent_from_http(&span, req.headers());
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Makes `span` a child of the trace described by `headers` (if any).
pub fn set_parent_from(span: &tracing::Span, headers: &HashMap<String, String>) {
    if headers.contains_key("traceparent") {
        let cx = global::get_text_map_propagator(|p| p.extract(&MapExtractor(headers)));
        let _ = span.set_parent(cx);
    }
}
