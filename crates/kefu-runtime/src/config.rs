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

    /// Kafka consumer session timeout in milliseconds (how fast a crashed member is replaced).
    #[arg(long, env = "KEFU_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1_000..=300_000))]
    pub kafka_session_timeout_ms: u32,

    /// Attempts for a failing event before it goes to the dead-letter topic (backoff 200 ms
    /// doubling to 5 s: the default 10 attempts ride out about 30 s of database trouble).
    #[arg(long, env = "KEFU_HANDLER_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub handler_max_attempts: u32,

    /// Seconds to finish in-flight work after SIGTERM before exiting anyway.
    #[arg(long, env = "KEFU_SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_grace_secs: u64,

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
