//! Data retention: every table that grows forever has a [`Rule`] (table, timestamp column,
//! optional extra condition, maximum age), and one background task per service
//! ([`Retention::run`], started with [`Retention::spawn`]) deletes the rows past their age in
//! bounded batches, on an interval, until shutdown. Deleted rows are counted in
//! `kefu_retention_deleted_rows_total{table}`, failed passes in
//! `kefu_retention_errors_total{table}`.
//!
//! * **Bounded batches.** Each statement deletes at most `--retention-batch` rows
//!   (`DELETE … WHERE key IN (SELECT key … LIMIT n)`) and commits on its own, so a backlog of
//!   millions never holds a long lock (on SQLite the one writer is free again between
//!   batches; on PostgreSQL few row locks are held at a time).
//! * **Replicas.** Every replica runs its own task, on a jittered interval. That is safe
//!   because a delete is idempotent: each batch re-evaluates the rule, a row two replicas both
//!   pick is deleted once (and counted once: the counter adds the rows the database says it
//!   deleted). A lease (as [`crate::outbox`] uses) would add a table write every interval for
//!   nothing a duplicate `DELETE` of already-deleted rows costs.
//! * **Correctness first.** A rule's condition keeps what is still needed (an unpublished
//!   outbox row, an undelivered webhook, an open ticket); see docs/operations.md for every
//!   table's rule and default.
//!
//! A rule's SQL is portable between SQLite and PostgreSQL: plain identifiers, `TRUE`/`FALSE`
//! for booleans, one bound value (the cutoff). [`query_plan`] shows the plan of any
//! statement on either database (tests use it to prove the deletes and hot queries use an
//! index).
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value,
};
use tokio_util::sync::CancellationToken;

/// Flags every service with retention rules understands (the ages are per service).
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RetentionArgs {
    /// Seconds between retention passes (each replica; the first pass comes after a random
    /// part of it, so replicas spread out).
    #[arg(long, env = "KEFU_RETENTION_INTERVAL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_interval_secs: u64,

    /// Most rows one retention statement deletes (each batch commits on its own).
    #[arg(long, env = "KEFU_RETENTION_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub retention_batch: u64,
}

impl Default for RetentionArgs {
    fn default() -> Self {
        Self {
            retention_interval_secs: 600,
            retention_batch: 1000,
        }
    }
}

/// A maximum age in days from a flag: `0` keeps rows forever.
pub fn days(d: u32) -> Option<chrono::Duration> {
    (d > 0).then(|| chrono::Duration::days(i64::from(d)))
}

/// Which rows of one table expire.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The table.
    pub table: &'static str,
    /// A column that names one row (the primary key): batches are chosen by it.
    pub key: &'static str,
    /// The timestamp column the age is measured from.
    pub timestamp: &'static str,
    /// A further SQL condition a row must meet to expire (may refer to the row as `table.col`).
    pub condition: Option<&'static str>,
    /// Rows older than this expire; `None` keeps them forever (the rule is off).
    pub max_age: Option<chrono::Duration>,
}

impl Rule {
    /// A rule that is off until [`Rule::max_age`] sets an age.
    pub fn new(table: &'static str, key: &'static str, timestamp: &'static str) -> Self {
        Self {
            table,
            key,
            timestamp,
            condition: None,
            max_age: None,
        }
    }

    /// Rows expire only when `condition` (SQL) holds too.
    pub fn only_if(mut self, condition: &'static str) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Rows older than `age` expire (`None`: never).
    pub fn max_age(mut self, age: Option<chrono::Duration>) -> Self {
        self.max_age = age;
        self
    }

    /// The statement that picks up to `batch` expired rows (its one parameter: the cutoff).
    pub fn select_sql(&self, backend: DbBackend, batch: u64) -> String {
        let p = match backend {
            DbBackend::Postgres => "$1",
            _ => "?",
        };
        let extra = self
            .condition
            .map(|c| format!(" AND ({c})"))
            .unwrap_or_default();
        format!(
            "SELECT {key} FROM {table} WHERE {ts} < {p}{extra} LIMIT {batch}",
            key = self.key,
            table = self.table,
            ts = self.timestamp,
        )
    }

    /// The statement that deletes up to `batch` expired rows (its one parameter: the cutoff).
    pub fn delete_sql(&self, backend: DbBackend, batch: u64) -> String {
        format!(
            "DELETE FROM {table} WHERE {key} IN ({select})",
            table = self.table,
            key = self.key,
            select = self.select_sql(backend, batch),
        )
    }

    /// Deletes this rule's expired rows as of `now`, `batch` at a time, until none are left or
    /// `stop` is cancelled; returns how many it deleted. Each batch commits on its own.
    pub async fn apply(
        &self,
        db: &DatabaseConnection,
        now: chrono::DateTime<Utc>,
        batch: u64,
        stop: &CancellationToken,
        deleted: &Counter,
    ) -> Result<u64, DbErr> {
        let Some(age) = self.max_age else {
            return Ok(0);
        };
        let cutoff = now - age;
        let backend = db.get_database_backend();
        let sql = self.delete_sql(backend, batch.max(1));
        let mut total = 0;
        loop {
            let n = db
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    &sql,
                    [Value::from(cutoff)],
                ))
                .await?
                .rows_affected();
            total += n;
            deleted.inc_by(n);
            if n < batch || stop.is_cancelled() {
                return Ok(total);
            }
            // Let the service's own writes in between batches (SQLite has one writer).
            tokio::task::yield_now().await;
        }
    }
}

/// Label of the per-table retention metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: String,
}

/// One service's retention task: its rules over its database.
pub struct Retention {
    db: DatabaseConnection,
    rules: Vec<Rule>,
    interval: Duration,
    batch: u64,
    deleted: Family<TableLabels, Counter>,
    errors: Family<TableLabels, Counter>,
}

impl Retention {
    pub fn new(db: DatabaseConnection, rules: Vec<Rule>, args: &RetentionArgs) -> Self {
        let (deleted, errors) = (Family::default(), Family::default());
        // Every table with a rule that is on shows in the metrics from the start (at 0).
        for rule in rules.iter().filter(|r| r.max_age.is_some()) {
            let labels = TableLabels {
                table: rule.table.to_owned(),
            };
            let _ = deleted.get_or_create(&labels);
            let _ = errors.get_or_create(&labels);
        }
        Self {
            db,
            rules,
            interval: Duration::from_secs(args.retention_interval_secs.max(1)),
            batch: args.retention_batch.max(1),
            deleted,
            errors,
        }
    }

    /// The rules (for tests and docs).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rows deleted so far, per table (`kefu_retention_deleted_rows_total`).
    pub fn deleted_rows(&self) -> Family<TableLabels, Counter> {
        self.deleted.clone()
    }

    /// Registers the counters in `metrics`.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "retention_deleted_rows",
            "Rows deleted by the retention task, by table",
            self.deleted.clone(),
        );
        metrics.register(
            "retention_errors",
            "Retention passes over a table that failed (retried next interval), by table",
            self.errors.clone(),
        );
    }

    /// One pass over every rule as of `now`; returns (table, rows deleted) per rule that is
    /// on. Stops at the first error.
    pub async fn run_once_at(
        &self,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<(&'static str, u64)>, DbErr> {
        self.pass(now, &CancellationToken::new()).await
    }

    /// One pass as of now.
    pub async fn run_once(&self) -> Result<Vec<(&'static str, u64)>, DbErr> {
        self.run_once_at(Utc::now()).await
    }

    async fn pass(
        &self,
        now: chrono::DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<Vec<(&'static str, u64)>, DbErr> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.max_age.is_some()) {
            let labels = TableLabels {
                table: rule.table.to_owned(),
            };
            let counter = self.deleted.get_or_create(&labels).clone();
            match rule.apply(&self.db, now, self.batch, stop, &counter).await {
                Ok(n) => out.push((rule.table, n)),
                Err(e) => {
                    self.errors.get_or_create(&labels).inc();
                    return Err(e);
                }
            }
            if stop.is_cancelled() {
                break;
            }
        }
        Ok(out)
    }

    /// Runs a pass every interval until `shutdown` (a pass in progress stops after its
    /// current batch). A failed pass is logged, counted and retried next interval.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if self.rules.iter().all(|r| r.max_age.is_none()) {
            tracing::info!("retention: every rule is off");
            shutdown.cancelled().await;
            return Ok(());
        }
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let mut wait = Duration::from_millis(rand::random_range(0..interval_ms.max(1)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = self.interval;
            match self.pass(Utc::now(), &shutdown).await {
                Ok(done) => {
                    for (table, rows) in done.into_iter().filter(|(_, n)| *n > 0) {
                        tracing::info!(table, rows, "retention: expired rows deleted");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval")
                }
            }
        }
    }

    /// Registers the metrics and runs the task in `svc`'s lifecycle.
    pub fn spawn(self, svc: &mut crate::Service) {
        self.register(&svc.metrics);
        let shutdown = svc.lifecycle.shutdown.clone();
        svc.lifecycle.spawn("retention", self.run(shutdown));
    }
}

/// The plan the database chooses for `stmt`, one line per step: SQLite's
/// `EXPLAIN QUERY PLAN` details, PostgreSQL's `EXPLAIN` lines. On PostgreSQL sequential scans
/// are discouraged for the statement (`enable_seqscan = off`, in a transaction that is rolled
/// back), so a test's tiny tables show the plan a big table gets: a plan that still names a
/// `Seq Scan` has no usable index.
pub async fn query_plan(db: &DatabaseConnection, stmt: Statement) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let values = stmt.values.map(|v| v.0).unwrap_or_default();
    let sql = stmt.sql;
    let mut lines = Vec::new();
    match backend {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await?;
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN {sql}"),
                    values,
                ))
                .await?;
            for row in rows {
                lines.push(row.try_get::<String>("", "QUERY PLAN")?);
            }
            txn.rollback().await?;
        }
        _ => {
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN QUERY PLAN {sql}"),
                    values,
                ))
                .await?;
            for row in rows {
                lines.push(row.try_get::<String>("", "detail")?);
            }
        }
    }
    Ok(lines.join("\n"))
}

/// Asserts (for tests) that `plan` uses `index` and scans no table whole: no `SCAN <table>`
/// without an index on SQLite, no `Seq Scan` on PostgreSQL. Returns a description of the
/// problem, or `None` when the plan is good.
pub fn plan_problem(plan: &str, index: &str) -> Option<String> {
    if !plan.contains(index) {
        return Some(format!("plan does not use {index}:\n{plan}"));
    }
    for line in plan.lines() {
        let l = line.trim_start_matches(|c: char| !c.is_alphabetic());
        let full_sqlite_scan = l.starts_with("SCAN ") && !l.contains(" USING ");
        if full_sqlite_scan || l.contains("Seq Scan") {
            return Some(format!("plan scans a whole table ({line}):\n{plan}"));
        }
    }
    None
}

/// The plan of `rule`'s delete as of now (see [`query_plan`]).
pub async fn delete_plan(db: &DatabaseConnection, rule: &Rule) -> Result<String, DbErr> {
    let sql = rule.delete_sql(db.get_database_backend(), 1000);
    let stmt =
        Statement::from_sql_and_values(db.get_database_backend(), sql, [Value::from(Utc::now())]);
    query_plan(db, stmt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_portable_batched_deletes() {
        let rule = Rule::new("t", "id", "at")
            .only_if("t.done = TRUE")
            .max_age(days(7));
        assert_eq!(
            rule.delete_sql(DbBackend::Sqlite, 10),
            "DELETE FROM t WHERE id IN (SELECT id FROM t WHERE at < ? AND (t.done = TRUE) LIMIT 10)"
        );
        assert!(rule.delete_sql(DbBackend::Postgres, 10).contains("at < $1"));
        assert_eq!(days(0), None);
        assert_eq!(days(2), Some(chrono::Duration::days(2)));
    }

    #[test]
    fn judges_plans() {
        assert!(plan_problem("SEARCH t USING INDEX idx_t_at (at<?)", "idx_t_at").is_none());
        assert!(plan_problem("SCAN t", "idx_t_at").is_some());
        assert!(plan_problem("SCAN t USING INDEX idx_t_at\nSCAN u", "idx_t_at").is_some());
        assert!(
            plan_problem(
                "Delete on t\n  ->  Index Scan using idx_t_at on t\n  ->  Seq Scan on u",
                "idx_t_at"
            )
            .is_some()
        );
        assert!(
            plan_problem(
                "Delete on t\n  ->  Nested Loop\n        ->  Index Scan using idx_t_at on t",
                "idx_t_at"
            )
            .is_none()
        );
    }
}
