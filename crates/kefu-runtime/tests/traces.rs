//! W3C trace context across gRPC: a server span continues the caller's `traceparent`, and a
//! call made inside it carries the same trace on to the next service.
use kefu_runtime::{auth::ServiceKeys, config::LogFormat, telemetry};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn request(path: &str, traceparent: Option<&str>) -> axum::http::Request<()> {
    let mut b = axum::http::Request::builder().uri(format!("http://kefu{path}"));
    if let Some(tp) = traceparent {
        b = b.header("traceparent", tp);
    }
    b.body(()).unwrap()
}

#[test]
fn grpc_calls_continue_and_pass_on_the_callers_trace() {
    let _telemetry = telemetry::init("rt-trace-test", LogFormat::Text);
    let keys = ServiceKeys::new("assistant", &["s".repeat(32)]).unwrap();

    let span = telemetry::grpc_span(&request(
        "/kefu.session.v1.SessionRouterService/Send",
        Some(&format!("00-{TRACE}-{CALLER_SPAN}-01")),
    ));
    let outgoing = span.in_scope(|| keys.request((), "order-sync", "shop-a"));
    let tp = outgoing
        .metadata()
        .get("traceparent")
        .expect("traceparent in the outgoing metadata")
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts[1], TRACE, "same trace: {tp}");
    assert_ne!(parts[2], CALLER_SPAN, "a span of its own: {tp}");
    assert!(outgoing.metadata().get("authorization").is_some());

    // No caller context: the server span starts a trace, and passes that one on.
    let root = telemetry::grpc_span(&request("/kefu.ticket.v1.TicketService/GetTicket", None));
    let outgoing = root.in_scope(|| keys.request((), "order-sync", "shop-a"));
    let tp = outgoing.metadata().get("traceparent").expect("a new trace");
    assert_ne!(tp.to_str().unwrap().split('-').nth(1), Some(TRACE));

    // Health checks get no span (and so add no trace noise).
    assert!(telemetry::grpc_span(&request("/grpc.health.v1.Health/Check", None)).is_none());
    // Outside any span nothing is added.
    assert!(
        keys.request((), "x", "")
            .metadata()
            .get("traceparent")
            .is_none()
    );
}
