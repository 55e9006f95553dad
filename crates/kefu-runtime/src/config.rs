//! Configuration shared by every service. Each service's `Args` flattens [`RuntimeArgs`] and
//! adds its own flags; every flag can also be set with a `KEFU_…` environment variable.
use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, ValueEnum};

/// Exit code for bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields first.
    Json,
}

/// Kafka `security.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    #[value(name = "plaintext")]
    Plaintext,
    #[value(name = "ssl")]
    Ssl,
    #[value(name = "sasl_plaintext")]
    SaslPlaintext,
    #[value(name = "sasl_ssl")]
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Database migrations at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MigrateMode {
    /// Apply pending migrations, then run (the default).
    Auto,
    /// Apply pending migrations and exit 0 (a migration Job).
    Only,
    /// Do not migrate; refuse to start while migrations are pending (a Job migrates).
    Skip,
}

/// Flags every service understands.
#[derive(Clone, Debug, Args)]
pub struct RuntimeArgs {
    /// Kafka bootstrap servers (comma separated). Use 127.0.0.1, not localhost.
    #[arg(long, env = "KEFU_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Prefix for every topic and consumer group name (isolates test runs on one broker).
    #[arg(long, env = "KEFU_TOPIC_PREFIX", default_value = "", value_parser = parse_prefix)]
    pub topic_prefix: String,

    /// Partitions for topics this service creates when they are missing.
    #[arg(long, env = "KEFU_TOPIC_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub topic_partitions: i32,

    /// Replication factor for topics this service creates (3 on a production cluster).
    #[arg(long, env = "KEFU_TOPIC_REPLICATION", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=7))]
    pub topic_replication: i32,

    /// How to talk to the brokers.
    #[arg(long, env = "KEFU_KAFKA_SECURITY_PROTOCOL", value_enum, default_value_t = SecurityProtocol::Plaintext)]
    pub kafka_security_protocol: SecurityProtocol,

    /// SASL mechanism (with a sasl_* security protocol).
    #[arg(long, env = "KEFU_KAFKA_SASL_MECHANISM", default_value = "SCRAM-SHA-512", value_parser = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])]
    pub kafka_sasl_mechanism: String,

    /// SASL username (required with a sasl_* security protocol).
    #[arg(long, env = "KEFU_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (required with a sasl_* security protocol).
    #[arg(long, env = "KEFU_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,

    /// CA certificate (PEM) that signs the brokers' certificates (ssl and sasl_ssl); the
    /// system's trust store when unset.
    #[arg(long, env = "KEFU_KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<std::path::PathBuf>,

    /// Events a consumer handles at once (different conversations; one conversation's events
    /// are always handled in order).
    #[arg(long, env = "KEFU_CONSUMER_CONCURRENCY", default_value_t = crate::kafka::DEFAULT_LANES, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub consumer_concurrency: u16,

    /// Longest a consumer's fetch waits at the broker for new events (ms). With tansu, every
    /// fetch lasts this long, so it is both the per-hop latency and the idle polling cost.
    #[arg(long, env = "KEFU_KAFKA_FETCH_WAIT_MS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(5..=5000))]
    pub kafka_fetch_wait_ms: u32,

    /// Kafka consumer session timeout in milliseconds (how fast a crashed member is replaced).
    #[arg(long, env = "KEFU_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1_000..=300_000))]
    pub kafka_session_timeout_ms: u32,

    /// Seconds to finish in-flight work after SIGTERM before exiting anyway.
    #[arg(long, env = "KEFU_SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_grace_secs: u64,

    /// File with the deployment's service secret: one secret (at least 32 bytes) per line; the
    /// first signs this service's calls, every line verifies calls to it (add the new secret
    /// as a second line, roll out, move it first, roll out, remove the old one). Every service
    /// of a mesh reads the same file. Required.
    #[arg(long, env = "KEFU_SERVICE_SECRET_FILE")]
    pub service_secret_file: Option<std::path::PathBuf>,

    /// session-router's gRPC endpoint: it tells the other services who holds a shop API key,
    /// an agent token or the operator token.
    #[arg(long, env = "KEFU_AUTH_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_url: String,

    /// Log format.
    #[arg(long, env = "KEFU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl RuntimeArgs {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Listen addresses of a service.
#[derive(Clone, Debug, Args)]
pub struct ListenArgs {
    /// gRPC listen address.
    #[arg(long, env = "KEFU_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Prometheus metrics (`/metrics`) and liveness (`/healthz`) listen address.
    #[arg(long, env = "KEFU_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl ListenArgs {
    /// The addresses, falling back to the service's defaults.
    pub fn resolve(&self, grpc: u16, metrics: u16) -> (SocketAddr, SocketAddr) {
        (
            self.grpc_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], grpc))),
            self.metrics_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], metrics))),
        )
    }
}

/// Database flag; the default is a SQLite file under `.kefu/data/`.
#[derive(Clone, Debug, Args)]
pub struct DbArgs {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host:5432/db`.
    #[arg(long, env = "KEFU_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Migrations at start: auto (apply, then run), only (apply and exit), skip (a Job does it).
    #[arg(long, env = "KEFU_MIGRATE", value_enum, default_value_t = MigrateMode::Auto)]
    pub migrate: MigrateMode,
}

impl DbArgs {
    pub fn url_or(&self, service: &str) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://.kefu/data/{service}.db"))
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.len() > 64 {
        return Err("at most 64 characters".into());
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(s.to_owned())
    } else {
        Err("only [A-Za-z0-9._-] are allowed in topic names".into())
    }
}

/// Parses arguments; on bad configuration prints the error and exits with [`EXIT_CONFIG`]
/// (`--help` and `--version` exit 0).
pub fn parse_or_exit<T: Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let code = if err.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = err.print();
            std::process::exit(code);
        }
    }
}

/// Reports a configuration problem found after parsing and exits with [`EXIT_CONFIG`].
pub fn config_error(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: invalid configuration: {msg}");
    std::process::exit(EXIT_CONFIG);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        rt: RuntimeArgs,
    }

    #[test]
    fn rejects_bad_values() {
        assert!(T::try_parse_from(["t", "--topic-partitions", "0"]).is_err());
        assert!(T::try_parse_from(["t", "--topic-prefix", "a b"]).is_err());
        assert!(T::try_parse_from(["t", "--log-format", "xml"]).is_err());
        let ok = T::try_parse_from(["t", "--topic-prefix", "t1."]).unwrap();
        assert_eq!(ok.rt.topic_prefix, "t1.");
    }
}
