//! The skeleton every service binary follows (linkerd2-proxy's order): telemetry → config →
//! connect → serve → drain on SIGTERM.
use std::{net::SocketAddr, sync::Arc};

use tonic::service::Routes;

use crate::{
    Lifecycle,
    auth::{Gate, RemoteVerifier, ServiceKeys},
    config::{RuntimeArgs, config_error},
    grpc,
    kafka::{self, ConsumerSpec, Handler, KafkaConfig, Producer},
    metrics::Metrics,
    readiness::Readiness,
    telemetry::{self, TelemetryGuard},
};

/// A service being assembled: telemetry is up, topics exist, the producer is connected.
pub struct Service {
    pub name: &'static str,
    pub metrics: Metrics,
    pub kafka: KafkaConfig,
    pub producer: Producer,
    pub lifecycle: Lifecycle,
    /// What keeps this service from being ready (NOT_SERVING while any holds).
    pub readiness: Readiness,
    /// This service's share of the deployment's service secret.
    pub keys: Arc<ServiceKeys>,
    auth_url: String,
    telemetry: TelemetryGuard,
}

impl Service {
    /// Initialises telemetry and metrics, creates missing topics and connects the producer.
    /// Exits with code 64 when the service secret is missing or unusable.
    pub async fn start(name: &'static str, rt: &RuntimeArgs) -> anyhow::Result<Self> {
        let keys = Arc::new(load_keys(name, rt));
        let telemetry = telemetry::init(name, rt.log_format);
        let metrics = Metrics::new(name);
        let kafka = KafkaConfig::from(rt);
        kafka::ensure_topics(&kafka).await?;
        let producer = Producer::new(&kafka, metrics.kafka.clone())?;
        let readiness = Readiness::new();
        metrics.register(
            "unready",
            "1 while the condition keeps the service from being ready (NOT_SERVING)",
            readiness.gauge(),
        );
        metrics.register(
            "kafka_producer_rebuilds",
            "Producers replaced after a fatal error",
            producer.rebuilds(),
        );
        let mut lifecycle = Lifecycle::new(rt.shutdown_grace());
        lifecycle.spawn(
            "producer-watch",
            producer
                .clone()
                .watch(readiness.clone(), lifecycle.shutdown.clone()),
        );
        Ok(Self {
            name,
            metrics,
            kafka,
            producer,
            lifecycle,
            readiness,
            keys,
            auth_url: rt.auth_url.clone(),
            telemetry,
        })
    }

    /// The gate of a service whose callers' credentials session-router verifies.
    pub fn remote_gate(&self) -> Arc<Gate> {
        let verifier = RemoteVerifier::new(&self.auth_url, self.keys.clone())
            .unwrap_or_else(|e| config_error(format!("auth-url: {e}")));
        Arc::new(Gate::new(self.keys.clone(), Arc::new(verifier)))
    }

    /// Consumes `topics` (base names) in this service's consumer group.
    pub fn consume(&mut self, topics: &[&str], handler: Arc<dyn Handler>) {
        let names = topics.iter().map(|t| self.kafka.topic(t)).collect();
        self.consume_full_names(names, handler);
    }

    /// Consumes topics given by full name (prefix included).
    pub fn consume_full_names(&mut self, names: Vec<String>, handler: Arc<dyn Handler>) {
        let spec = ConsumerSpec::new(
            self.kafka.clone(),
            self.kafka.group(self.name),
            names,
            handler,
            self.producer.clone(),
            self.metrics.kafka.clone(),
            self.readiness.clone(),
        );
        let fut = kafka::run_consumer(spec, self.lifecycle.shutdown.clone());
        self.lifecycle.spawn("kafka-consumer", fut);
    }

    /// Serves gRPC (with health and reflection) and metrics, reports SERVING, and runs until
    /// SIGTERM/SIGINT. Returns the exit code.
    pub async fn serve(
        mut self,
        grpc_addr: SocketAddr,
        metrics_addr: SocketAddr,
        routes: Routes,
    ) -> i32 {
        let (routes, health) = match grpc::with_health_and_reflection(routes, self.name).await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = ?e, "building gRPC server");
                return 1;
            }
        };
        // Bind every listener before reporting SERVING: a port that is taken fails the start,
        // never a service that already said it was ready.
        let (grpc_listener, metrics_listener) = match tokio::try_join!(
            grpc::bind(grpc_addr, "gRPC"),
            grpc::bind(metrics_addr, "metrics")
        ) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen");
                eprintln!("error: {e:#}");
                return 1;
            }
        };
        let shutdown = self.lifecycle.shutdown.clone();
        self.lifecycle
            .spawn("grpc", grpc::serve(grpc_listener, routes, shutdown.clone()));
        self.lifecycle.spawn(
            "metrics",
            self.metrics.clone().serve(metrics_listener, shutdown),
        );
        health.set(true).await;
        // Readiness follows the conditions (broker, database, consumer) from now on.
        let mut ready = self.readiness.watch();
        let (follow, stop) = (health.clone(), self.lifecycle.shutdown.clone());
        self.lifecycle.spawn("readiness", async move {
            loop {
                let now = *ready.borrow_and_update();
                follow.set_ready(now).await;
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    changed = ready.changed() => if changed.is_err() { return Ok(()) },
                }
            }
        });
        tracing::info!(service = self.name, %grpc_addr, %metrics_addr, "serving");
        let code = self.lifecycle.run(Some(health)).await;
        self.telemetry.shutdown();
        code
    }
}

/// The service secret named by `--service-secret-file`, or exit 64.
pub fn load_keys(name: &str, rt: &RuntimeArgs) -> ServiceKeys {
    let Some(path) = &rt.service_secret_file else {
        config_error(
            "KEFU_SERVICE_SECRET_FILE (--service-secret-file) is required: the file with the \
             deployment's service secret (docs/security.md)",
        )
    };
    ServiceKeys::load(name, path).unwrap_or_else(|e| config_error(format!("service secret: {e}")))
}

/// Runs `main_fn` and turns a startup error into exit code 1 (after logging it).
pub async fn exit_code(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = ?e, "startup failed");
            eprintln!("error: {e:#}");
            1
        }
    }
}
