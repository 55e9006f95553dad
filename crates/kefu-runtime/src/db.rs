//! Database connections: SQLite by default (embedded, file under `.kefu/data/`), PostgreSQL by
//! URL. Each service owns its tables and runs its own sea-orm migrations on start.
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Connects and runs the service's migrations.
pub async fn connect_and_migrate<M: MigratorTrait>(
    url: &str,
) -> anyhow::Result<DatabaseConnection> {
    let db = connect(url).await?;
    M::up(&db, None)
        .await
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    Ok(db)
}

/// The service's database as its `--migrate` mode wants it: migrated (`auto`), or checked to
/// have no pending migrations (`skip`: a migration Job owns the schema).
pub async fn open<M: MigratorTrait>(
    args: &crate::config::DbArgs,
    service: &str,
) -> anyhow::Result<DatabaseConnection> {
    let url = args.url_or(service);
    match args.migrate {
        crate::config::MigrateMode::Skip => {
            let db = connect(&url).await?;
            let pending = M::get_pending_migrations(&db)
                .await
                .map_err(|e| anyhow::anyhow!("reading migrations: {e}"))?;
            if !pending.is_empty() {
                anyhow::bail!(
                    "{} database migrations are pending and KEFU_MIGRATE=skip; run the migration job (KEFU_MIGRATE=only) first",
                    pending.len()
                );
            }
            Ok(db)
        }
        _ => connect_and_migrate::<M>(&url).await,
    }
}

/// For `--migrate only`: applies the migrations and returns the exit code (0), without
/// touching Kafka. `None` in the other modes.
pub async fn migrate_only<M: MigratorTrait>(
    args: &crate::config::DbArgs,
    service: &'static str,
    log_format: crate::config::LogFormat,
) -> Option<anyhow::Result<i32>> {
    if args.migrate != crate::config::MigrateMode::Only {
        return None;
    }
    let _telemetry = crate::telemetry::init(service, log_format);
    let url = args.url_or(service);
    Some(
        async {
            connect_and_migrate::<M>(&url).await?;
            tracing::info!(service, database = %redact(&url), "migrations applied");
            Ok(0)
        }
        .await,
    )
}

/// Connects to `url`. SQLite files (and their folders) are created when missing and put in
/// WAL mode; `sqlite::memory:` works for tests.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let is_sqlite = url.starts_with("sqlite:");
    let mut url = url.to_owned();
    if is_sqlite && !url.contains(":memory:") {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        if let Some(dir) = std::path::Path::new(&path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        if !url.contains("mode=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
    }
    let mut opts = options(&url);
    if is_sqlite {
        // One connection. SQLite has one writer anyway, and with several connections a writer
        // that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5 … 100 ms steps)
        // even when the lock frees a millisecond later; with one, callers queue in the pool,
        // first come first served, without sleeping. Reads are short enough to queue too.
        opts.max_connections(1).min_connections(1);
        // WAL with synchronous=NORMAL (per connection, so set on each): a commit is in the WAL
        // before it returns, so it survives a crash or kill of the service; only a power loss
        // can take back the last commits, which is the same guarantee the local broker (tansu
        // on SQLite, also WAL + NORMAL) gives the events themselves. FULL would add an fsync
        // to every commit for no gain end to end. Production runs PostgreSQL.
        opts.map_sqlx_sqlite_opts(|o| {
            o.synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
    } else {
        opts.max_connections(16);
    }
    let db = Database::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to database {}: {e}", redact(&url)))?;
    if is_sqlite && !url.contains(":memory:") {
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

/// What every pool of a service shares: no per-statement logging, 10 s to connect or to get a
/// connection from the pool.
fn options(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    opts
}

/// Connections a SQLite reader pool keeps (see [`reader`]).
pub const SQLITE_READERS: u32 = 4;

/// A pool for reads that need not see an open transaction of the caller's own. On a SQLite
/// file it is a separate pool of [`SQLITE_READERS`] read-only connections: in WAL mode readers
/// never wait for the writer, so hot-path lookups stop queueing behind writes for the one
/// write connection of [`connect`] (each SQLite statement is a round trip to that connection's
/// worker thread, so a busy service spent its time in that queue, not on the CPU). Anywhere
/// else (PostgreSQL's pool already has many connections, `sqlite::memory:` is private to its
/// connection) it is `db` itself. Open it after the migrations: a read-only connection cannot
/// create the file. A read on it sees every transaction committed before the read began.
pub async fn reader(url: &str, db: &DatabaseConnection) -> anyhow::Result<DatabaseConnection> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(db.clone());
    }
    let mut opts = options(url);
    opts.max_connections(SQLITE_READERS).min_connections(1);
    opts.map_sqlx_sqlite_opts(|o| o.read_only(true));
    Database::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("connecting readers to {}: {e}", redact(url)))
}

/// Begins a transaction that writes. On SQLite it takes the write lock at `BEGIN IMMEDIATE`:
/// a deferred transaction that has read and then writes fails at once with `SQLITE_BUSY`
/// (or `BUSY_SNAPSHOT`) when another connection wrote meanwhile — the busy timeout cannot
/// help it — which under load turned into handler retries with backoff and latency spikes.
/// An immediate one waits for the lock instead. PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Serialises the write transactions that lock the same `key` until they end: a
/// transaction-scoped advisory lock on PostgreSQL (whose read-committed transactions do not
/// serialise by themselves); nothing on SQLite, where [`begin_write`] already holds the one
/// writer lock from the start of every write transaction.
pub async fn lock_key<C: ConnectionTrait>(txn: &C, key: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Creates `entity`'s table (if missing) from its sea-orm definition, with the indexes of its
/// `#[sea_orm(indexed)]` columns: the one step most services' first migration needs.
pub async fn create_table<E: sea_orm::EntityTrait>(
    manager: &sea_orm_migration::SchemaManager<'_>,
    entity: E,
) -> Result<(), DbErr> {
    let schema = sea_orm::Schema::new(manager.get_database_backend());
    manager
        .create_table(
            schema
                .create_table_from_entity(entity)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
    create_entity_indexes(manager, entity).await
}

/// Creates (if missing) the indexes `entity` declares with `#[sea_orm(indexed)]`.
/// `create_table_from_entity` does not: until this existed every such column was unindexed,
/// and each lookup by it scanned its table (found with the load test, where session-router's
/// policy hop went from 41 ms to seconds within 5 minutes at 60 msg/s).
pub async fn create_entity_indexes<E: sea_orm::EntityTrait>(
    manager: &sea_orm_migration::SchemaManager<'_>,
    entity: E,
) -> Result<(), DbErr> {
    let schema = sea_orm::Schema::new(manager.get_database_backend());
    create_indexes(manager, schema.create_index_from_entity(entity)).await
}

async fn create_indexes(
    manager: &sea_orm_migration::SchemaManager<'_>,
    indexes: Vec<sea_orm::sea_query::IndexCreateStatement>,
) -> Result<(), DbErr> {
    for mut index in indexes {
        manager
            .create_index(index.if_not_exists().to_owned())
            .await?;
    }
    Ok(())
}

/// A migration that creates (if missing) the `#[sea_orm(indexed)]` indexes of some entities:
/// for databases whose tables an earlier version made without them.
///
/// ```ignore
/// Box::new(EntityIndexes::new("m20261124_000003_entity_indexes").of::<ticket::Entity>())
/// ```
pub struct EntityIndexes {
    name: &'static str,
    entities: Vec<fn(&sea_orm::Schema) -> Vec<sea_orm::sea_query::IndexCreateStatement>>,
}

impl EntityIndexes {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            entities: Vec::new(),
        }
    }

    /// Adds `E`'s indexes.
    pub fn of<E: sea_orm::EntityTrait>(mut self) -> Self {
        self.entities
            .push(|schema| schema.create_index_from_entity(E::default()));
        self
    }
}

impl sea_orm_migration::MigrationName for EntityIndexes {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for EntityIndexes {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        let schema = sea_orm::Schema::new(manager.get_database_backend());
        for indexes in &self.entities {
            create_indexes(manager, indexes(&schema)).await?;
        }
        Ok(())
    }
}

/// Values per `IN (…)` list when a query selects rows by many ids: well under SQLite's and
/// PostgreSQL's bound-parameter limits.
pub const IN_LIST_CHUNK: usize = 500;

/// A migration that creates (if missing) named indexes: what a service's retention rules and
/// hot queries need on tables an earlier migration made.
///
/// ```ignore
/// Box::new(kefu_runtime::db::Indexes::new("m20261201_100001_retention_indexes")
///     .index("idx_ticket_events_published_created_at", "ticket_events", &["published", "created_at"]))
/// ```
pub struct Indexes {
    name: &'static str,
    indexes: Vec<(&'static str, &'static str, &'static [&'static str])>,
}

impl Indexes {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            indexes: Vec::new(),
        }
    }

    /// Adds index `name` on `table` (`columns`, in order).
    pub fn index(
        mut self,
        name: &'static str,
        table: &'static str,
        columns: &'static [&'static str],
    ) -> Self {
        self.indexes.push((name, table, columns));
        self
    }
}

impl sea_orm_migration::MigrationName for Indexes {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Indexes {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        use sea_orm::sea_query::{Alias, Index};
        for (name, table, columns) in &self.indexes {
            let mut index = Index::create();
            index.name(*name).table(Alias::new(*table)).if_not_exists();
            for c in *columns {
                index.col(Alias::new(*c));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }
}

/// True when `err` is a unique-constraint violation (an idempotent insert that lost the race).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Hides a password in a database URL for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// PostgreSQL server used by tests (`KEFU_TEST_PG`, default the machine's `test` database).
pub fn test_postgres_url() -> String {
    std::env::var("KEFU_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Creates a fresh, uniquely named PostgreSQL database on the test server and returns its URL,
/// so tests never share tables.
pub async fn fresh_test_postgres(tag: &str) -> anyhow::Result<String> {
    let base = test_postgres_url();
    let admin = connect(&base).await?;
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("kefu_{tag}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(&base);
    Ok(format!("{root}/{name}"))
}

/// A migrated SQLite database in a fresh directory under the temporary directory, for tests
/// (`tag` names the directory and the file).
pub async fn test_sqlite<M: MigratorTrait>(tag: &str) -> anyhow::Result<DatabaseConnection> {
    let dir = std::env::temp_dir().join(format!("kefu-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    connect_and_migrate::<M>(&format!("sqlite://{}/{tag}.db", dir.display())).await
}

/// A migrated, fresh database on the test PostgreSQL server ([`fresh_test_postgres`]).
pub async fn test_postgres<M: MigratorTrait>(tag: &str) -> anyhow::Result<DatabaseConnection> {
    connect_and_migrate::<M>(&fresh_test_postgres(tag).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://kefu:hunter2@db:5432/kefu"),
            "postgres://kefu:***@db:5432/kefu"
        );
        assert_eq!(redact("postgres://kefu@db/kefu"), "postgres://kefu@db/kefu");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    /// Read-then-write transactions from many tasks on one SQLite file through two pools (as
    /// two processes would; one pool has a single connection). With deferred transactions
    /// some fail at once with SQLITE_BUSY / BUSY_SNAPSHOT; `begin_write` must make every one
    /// wait for the lock and succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_read_then_write_transactions_all_commit_on_sqlite() {
        use sea_orm::{Statement, Value};
        let (path, url) = temp_sqlite("begin-write");
        let db = connect(&url).await.expect("db");
        db.execute_unprepared("create table counter (k integer primary key, n integer not null)")
            .await
            .expect("table");
        db.execute_unprepared("insert into counter values (1, 0)")
            .await
            .expect("row");
        let (tasks, rounds) = (16, 20);
        let other = connect(&url).await.expect("second pool");
        let mut handles = Vec::new();
        for t in 0..tasks {
            let db = if t % 2 == 0 {
                db.clone()
            } else {
                other.clone()
            };
            handles.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    let txn = begin_write(&db).await?;
                    let row = txn
                        .query_one_raw(Statement::from_string(
                            txn.get_database_backend(),
                            "select n from counter where k = 1",
                        ))
                        .await?
                        .expect("row");
                    let n: i64 = row.try_get("", "n")?;
                    txn.execute_raw(Statement::from_sql_and_values(
                        txn.get_database_backend(),
                        "update counter set n = ? where k = 1",
                        [Value::from(n + 1)],
                    ))
                    .await?;
                    txn.commit().await?;
                }
                Ok::<_, DbErr>(())
            }));
        }
        for h in handles {
            h.await.expect("task").expect("every transaction commits");
        }
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "select n from counter where k = 1",
            ))
            .await
            .expect("select")
            .expect("row");
        assert_eq!(
            row.try_get::<i64>("", "n").expect("n"),
            (tasks * rounds) as i64
        );
        drop((db, other));
        remove_sqlite_files(&path);
    }

    /// A fresh SQLite file for a test: its path and URL.
    fn temp_sqlite(name: &str) -> (std::path::PathBuf, String) {
        let path = std::env::temp_dir().join(format!("kefu-{name}-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        (path, url)
    }

    /// Removes a test's SQLite file with its WAL and shared-memory files.
    fn remove_sqlite_files(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// The reader pool of a SQLite file sees what the writer committed, reads while the writer
    /// holds the write lock, and cannot write; for `sqlite::memory:` it is the writer itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reader_pool_reads_committed_rows_beside_the_writer() {
        use sea_orm::Statement;
        let count = |db: DatabaseConnection| async move {
            db.query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "select count(*) as n from t",
            ))
            .await
            .expect("select")
            .expect("row")
            .try_get::<i64>("", "n")
            .expect("n")
        };
        let (path, url) = temp_sqlite("reader");
        let db = connect(&url).await.expect("db");
        db.execute_unprepared("create table t (k integer primary key)")
            .await
            .expect("table");
        db.execute_unprepared("insert into t values (1)")
            .await
            .expect("row");
        let read = reader(&url, &db).await.expect("reader");
        assert_eq!(count(read.clone()).await, 1, "sees the committed row");
        // The writer's only connection is inside a write transaction: a read through the
        // same pool would wait for it; the reader pool answers at once.
        let txn = begin_write(&db).await.expect("begin");
        txn.execute_unprepared("insert into t values (2)")
            .await
            .expect("uncommitted row");
        let seen = tokio::time::timeout(Duration::from_secs(5), count(read.clone()))
            .await
            .expect("the reader does not wait for the writer");
        assert_eq!(seen, 1, "does not see the open transaction");
        txn.commit().await.expect("commit");
        assert_eq!(count(read.clone()).await, 2, "sees it once committed");
        let err = read
            .execute_unprepared("insert into t values (3)")
            .await
            .expect_err("read-only");
        assert!(err.to_string().contains("readonly"), "{err}");

        let mem = connect("sqlite::memory:").await.expect("memory");
        mem.execute_unprepared("create table t (k integer primary key)")
            .await
            .expect("table");
        let same = reader("sqlite::memory:", &mem).await.expect("reader");
        same.execute_unprepared("insert into t values (1)")
            .await
            .expect("the writer itself");
        assert_eq!(count(mem).await, 1);
        drop((db, read));
        remove_sqlite_files(&path);
    }
}
