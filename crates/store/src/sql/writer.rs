//! Group commit: one writer per SQLite database that batches concurrent write transactions into one
//! transaction and one fsync.
//!
//! Guarantees:
//! - Every write transaction ([`Db::begin_write`]) runs on the writer's dedicated pool connection, inside a
//!   `BEGIN IMMEDIATE … COMMIT` shared with the writes that were waiting at the same time (at most
//!   [`MAX_BATCH`]), each in its own `SAVEPOINT`: a job that fails or is abandoned is rolled back alone
//!   (`ROLLBACK TO`) and the others still commit.
//! - A batch of only bulk rows and deferred marks (every Idle poll, Get and Set; no write job, no
//!   transaction open on the pool connection) runs on the writer's own connection instead ([`State::own`],
//!   rusqlite), `BEGIN` to `COMMIT` synchronously on the committer's thread. Only the holder of the writer's
//!   lock uses either connection, and a batch never spans both, so the two never wait for each other.
//! - A job's `commit()` returns Ok only after the `COMMIT` of its batch returned (with `synchronous=FULL`: on
//!   disk). If that `COMMIT` fails, or the batch's transaction was lost, every job in it gets the error.
//! - Batches form by themselves: the connection sits behind a FIFO mutex, a job releases it as soon as its
//!   savepoint is done and then waits, and the committing task queues on the same mutex, so every job that
//!   was already waiting runs before the `COMMIT`. Nothing waits on a timer; a lone write commits at once.
//! - The transaction is never left open: any job ending (committed or dropped) wakes the committer, so the
//!   database write lock is released between batches for other processes (`escrowd keys rotate`).
//! - Deferred marks ([`Db::defer`]: writes allowed to lag, such as a Mac's `last_seen_at`) are written once
//!   per [`DEFER_BOUND`]: with the first batch after it has passed, by the committer itself when no batch
//!   comes, and on [`Db::close`]. Nobody waits for them. (Written with every batch, a busy fleet's marks
//!   rewrote the same pages in every `COMMIT`.)
//! - Deferred marks are data, keyed (a newer mark for a key is merged into the older one, `BulkRow::merge`),
//!   and written like bulk rows: one statement per kind for all the marks waiting, not one per mark (with one
//!   `UPDATE` per Mac, an Idle poll's `last_seen_at` cost the writer a statement of its own). A kind of marks
//!   fails only when the database does, and then it takes its batch down (rolled back, every job in it
//!   answered with an error, as when a `COMMIT` fails).
//! - Bulk rows ([`Db::append`]): the hottest writes (every served Bootstrap Token's mark and audit event) are
//!   handed over as data. The committer writes all the rows of a kind waiting for the next batch with one
//!   statement per kind, then commits; each caller gets its answer from that `COMMIT` (a failure fails the
//!   whole batch). A request then costs the writer no round trip of its own, and no turn holding it.
//! - Write jobs ([`Db::write`]): a write of several statements handed over whole, as a closure. The committer
//!   runs it on its own thread in the next batch, and the caller gets what it returned once that batch is
//!   committed. The jobs of a batch share one savepoint; when one fails, they are undone and run again one by
//!   one, each in its own, so a failing job is undone alone and gets its error at once. Unlike a
//!   [`Db::begin_write`] transaction, whose statements are sent from the caller's task, nobody holds the
//!   writer while waiting for a turn on the busy request runtime between two statements.
//!
//! PostgreSQL keeps one transaction per write on the pool ([`Db::begin_write`] without a writer): it
//! batches commits itself (WAL group flush) and serves concurrent writers on separate connections, so funnelling
//! them through one connection would only serialise them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use super::{Backend, Exec, LocalReads, On, Script, Stmt, Tx};
use crate::{Result, StoreError};

/// The most jobs one batch holds before it commits regardless of who is waiting.
pub(crate) const MAX_BATCH: usize = 256;
/// The longest a deferred mark waits before the committer writes it.
pub const DEFER_BOUND: Duration = Duration::from_millis(50);

/// Counters of the group-commit writer (for `/metrics`): batches committed, jobs in them, and time spent in
/// `COMMIT`. Batch size histogram buckets: 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64+ jobs. `COMMIT` duration
/// buckets ([`COMMIT_BUCKETS_MS`]): up to 1, 2.5, 5, 10, 25, 50 ms, and longer (a stall of the writer shows here
/// as a commit in the upper classes, which a mean cannot show).
#[derive(Debug, Default)]
pub struct BatchStats {
    pub batches: AtomicU64,
    pub jobs: AtomicU64,
    pub commit_nanos: AtomicU64,
    pub size_buckets: [AtomicU64; 7],
    pub commit_buckets: [AtomicU64; 7],
}

/// Upper bounds of [`BatchStats::commit_buckets`] in milliseconds; the last class has none.
pub const COMMIT_BUCKETS_MS: [f64; 6] = [1.0, 2.5, 5.0, 10.0, 25.0, 50.0];

impl BatchStats {
    fn record(&self, jobs: usize, commit: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
        self.commit_nanos
            .fetch_add(commit.as_nanos() as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - jobs.max(1).leading_zeros() - 1).min(6) as usize;
        self.size_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ms = commit.as_secs_f64() * 1e3;
        let class = COMMIT_BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(COMMIT_BUCKETS_MS.len());
        self.commit_buckets[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// A write run whole on the writer's connection ([`Db::write`]). `Fn`, not `FnOnce`: when one job of a batch
/// fails, the others are undone with it and run again, each on its own (see `run_jobs`).
pub(crate) type WriteJob<DB, T> = Box<
    dyn for<'c> Fn(
            &'c mut <DB as Database>::Connection,
        ) -> futures_core_boxed::BoxFuture<'c, Result<T>>
        + Send
        + Sync,
>;

/// A write job waiting for the next batch, with its caller.
type QueuedJob<DB> = (WriteJob<DB, ()>, oneshot::Sender<Result<()>>);

/// A script waiting for the next batch ([`Db::script`]): its statements, where its outcome goes when it ran,
/// and its caller (answered by the batch's `COMMIT`, or at once with the script's own failure).
struct QueuedScript<DB: Database> {
    script: Script<DB>,
    outcome: Arc<std::sync::Mutex<Option<Vec<u64>>>>,
    done: oneshot::Sender<Result<()>>,
}

/// A boxed future (kept local: the store has no `futures` dependency).
pub(crate) mod futures_core_boxed {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

struct State<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    /// SQLite: the writer's own connection to the file ([`Shared::path`]), opened on first use. A batch that
    /// is only rows and marks (every Idle poll, Get and Set) runs on it, synchronously on the committer's
    /// thread: no round trip to a sqlx connection's thread, and its prepared statements kept from batch to
    /// batch (see `write_statements`).
    own: Option<rusqlite::Connection>,
    /// `BEGIN IMMEDIATE` ran and no `COMMIT`/`ROLLBACK` yet.
    open: bool,
    /// A job's savepoint is still open: its lease was dropped without commit (or its RELEASE failed).
    abandoned: bool,
    /// Jobs whose savepoint was released, waiting for the batch's `COMMIT`.
    waiters: Vec<oneshot::Sender<Result<()>>>,
    closed: bool,
}

/// Deferred marks by kind, each kind's by key (a newer mark for a key is merged into the older one); None once
/// the store is closed. Behind a plain mutex of their own, never the writer's: queueing a mark (every Idle poll)
/// must not wait for the batch being written or its `COMMIT`'s fsync.
type DeferredMarks<DB> = std::sync::Mutex<Option<MarkKinds<DB>>>;
type MarkKinds<DB> = Vec<(TypeId, Box<dyn PendingMarks<DB>>)>;

/// A type-erased collection of one kind, filed in a list under its type ([`filed`]).
trait Filed: Send {
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The collection of type `T` in `kinds`, made by `new` and filed under `T`'s type the first time.
fn filed<K: ?Sized + Filed, T: 'static>(
    kinds: &mut Vec<(TypeId, Box<K>)>,
    new: impl FnOnce() -> Box<K>,
) -> &mut T {
    let kind = TypeId::of::<T>();
    let at = match kinds.iter().position(|(k, _)| *k == kind) {
        Some(at) => at,
        None => {
            kinds.push((kind, new()));
            kinds.len() - 1
        }
    };
    kinds[at]
        .1
        .as_any()
        .downcast_mut::<T>()
        .expect("a kind is filed under its own type")
}

/// One kind's waiting deferred marks, type-erased.
trait PendingMarks<DB: Database>: Filed {
    fn is_empty(&self) -> bool;
    /// The marks waiting, as rows to write (this kind is then empty).
    fn take(&mut self) -> Option<Box<dyn PendingRows<DB>>>;
}

struct Marks<R>(HashMap<String, R>);

impl<R: Send + 'static> Filed for Marks<R> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl<DB: Database, R: BulkRow<DB>> PendingMarks<DB> for Marks<R> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn take(&mut self) -> Option<Box<dyn PendingRows<DB>>> {
        if self.0.is_empty() {
            return None;
        }
        Some(Box::new(Rows::<R>(
            self.0.drain().map(|(_, r)| r).collect(),
        )))
    }
}

/// Rows of one kind that a batch writes together ([`Db::append`], [`Db::defer`]).
pub(crate) trait BulkRow<DB: Database>: Send + Sized + 'static {
    /// The statements that write `rows` (in arrival order, at least one): a few, whatever their number.
    /// Data, not a future: on SQLite the committer runs a batch's statements on its own thread, all with one
    /// take of the connection. They fail only when the database does (the batch is then rolled back).
    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>>;

    /// A deferred mark's `newer` mark for the same key arrived before it was written ([`Db::defer`]):
    /// by default the newer replaces it.
    fn merge(&mut self, newer: Self) {
        *self = newer;
    }
}

/// One kind's waiting rows, type-erased.
trait PendingRows<DB: Database>: Filed {
    fn statements(self: Box<Self>) -> Vec<Stmt<DB>>;
}

struct Rows<R>(Vec<R>);

impl<R: Send + 'static> Filed for Rows<R> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl<DB: Database, R: BulkRow<DB>> PendingRows<DB> for Rows<R> {
    fn statements(self: Box<Self>) -> Vec<Stmt<DB>> {
        R::statements(self.0)
    }
}

/// Bulk rows waiting for the next batch, by kind, and their callers; and the scripts and write jobs waiting,
/// each with its caller.
struct BulkQueue<DB: Database> {
    kinds: Vec<(TypeId, Box<dyn PendingRows<DB>>)>,
    waiters: Vec<oneshot::Sender<Result<()>>>,
    scripts: Vec<QueuedScript<DB>>,
    jobs: Vec<QueuedJob<DB>>,
    closed: bool,
}

struct Shared<DB: Database> {
    pool: Pool<DB>,
    /// The SQLite file, for the writer's own connection ([`State::own`]).
    path: std::path::PathBuf,
    state: Arc<Mutex<State<DB>>>,
    deferred: DeferredMarks<DB>,
    /// Behind a plain mutex of its own, like the deferred marks: appending never waits for a batch.
    bulk: std::sync::Mutex<BulkQueue<DB>>,
    kick: Notify,
    /// When the deferred marks were last written: a busy writer writes them once per [`DEFER_BOUND`], not
    /// with every batch (a mark's rows would otherwise be rewritten, pages and all, many times a second).
    marks_written: std::sync::Mutex<Instant>,
    stats: BatchStats,
}

/// The database handle of a [`super::SqlStore`]: the pool (reads, and writes on PostgreSQL) plus, on SQLite,
/// the group-commit writer. Derefs to the pool.
pub(crate) struct Db<DB: Database> {
    pub(super) pool: Pool<DB>,
    writer: Option<Arc<Shared<DB>>>,
    /// SQLite: the check-in's hot reads, on the calling thread (`local.rs`).
    local: Option<Arc<LocalReads>>,
}

impl<DB: Database> Clone for Db<DB> {
    fn clone(&self) -> Self {
        Db {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            local: self.local.clone(),
        }
    }
}

impl<DB: Database> Deref for Db<DB> {
    type Target = Pool<DB>;
    fn deref(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<'c, DB: Database> Exec<'c, DB> for &'c Db<DB> {
    fn on(self) -> On<'c, DB> {
        On::Db(self)
    }
}

impl<DB: Backend> Db<DB> {
    /// Writes run one transaction each on the pool (PostgreSQL).
    pub(crate) fn per_transaction(pool: Pool<DB>) -> Self {
        Db {
            pool,
            writer: None,
            local: None,
        }
    }

    /// Writes go through one group-commit writer (SQLite, the file at `path`). Starts the committer on a
    /// thread of its own.
    pub(crate) fn group_commit(pool: Pool<DB>, path: std::path::PathBuf) -> Result<Self> {
        let shared = Arc::new(Shared {
            pool: pool.clone(),
            path,
            state: Arc::new(Mutex::new(State {
                conn: None,
                own: None,
                open: false,
                abandoned: false,
                waiters: Vec::new(),
                closed: false,
            })),
            deferred: std::sync::Mutex::new(Some(Vec::new())),
            bulk: std::sync::Mutex::new(BulkQueue {
                kinds: Vec::new(),
                waiters: Vec::new(),
                scripts: Vec::new(),
                jobs: Vec::new(),
                closed: false,
            }),
            kick: Notify::new(),
            marks_written: std::sync::Mutex::new(Instant::now()),
            stats: BatchStats::default(),
        });
        spawn_committer(Arc::downgrade(&shared))?;
        Ok(Db {
            pool,
            writer: Some(shared),
            local: None,
        })
    }

    /// Run the hot reads on connections of our own to the SQLite file at `path` (`local.rs`).
    pub(crate) fn with_local_reads(mut self, path: std::path::PathBuf) -> Self {
        self.local = Some(Arc::new(LocalReads::new(path)));
        self
    }

    /// The local reads, when this is a SQLite file: None runs every read on the pool.
    pub(crate) fn local(&self) -> Option<&LocalReads> {
        self.local.as_deref()
    }

    /// Whether writes go through the group-commit writer.
    pub(crate) fn batched(&self) -> bool {
        self.writer.is_some()
    }

    pub(crate) fn stats(&self) -> Option<&BatchStats> {
        self.writer.as_ref().map(|w| &w.stats)
    }

    /// Start a write transaction: a savepoint in the writer's current batch (SQLite) or a pool transaction.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<DB>> {
        let Some(shared) = &self.writer else {
            return Ok(WriteTx::Plain(DB::begin_write(&self.pool).await?));
        };
        let mut guard = shared.state.clone().lock_owned().await;
        if guard.closed {
            return Err(StoreError::Database("the store is closed".into()));
        }
        recover(&mut guard, shared).await;
        if let Err(e) = open_savepoint(&mut guard, &shared.pool).await {
            drop(guard);
            shared.kick.notify_one();
            return Err(e);
        }
        guard.abandoned = true;
        Ok(WriteTx::Batched(Lease {
            guard: Some(guard),
            shared: shared.clone(),
        }))
    }

    /// Queue a write that may lag (see the module docs), merged into a queued one of the same kind with the
    /// same `key` ([`BulkRow::merge`]); nobody waits for it. Without a writer (PostgreSQL) it is written now,
    /// in its own transaction.
    pub(crate) async fn defer<R: BulkRow<DB>>(&self, key: String, mark: R) -> Result<()> {
        let Some(shared) = &self.writer else {
            let mut tx = DB::begin_write(&self.pool).await?;
            for st in R::statements(vec![mark]) {
                st.execute(&mut tx).await?;
            }
            tx.commit().await?;
            return Ok(());
        };
        let mut marks = shared.deferred_marks();
        let Some(kinds) = marks.as_mut() else {
            return Err(StoreError::Database("the store is closed".into()));
        };
        let marks: &mut Marks<R> = filed(kinds, || Box::new(Marks::<R>(HashMap::new())));
        match marks.0.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut queued) => queued.get_mut().merge(mark),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(mark);
            }
        }
        Ok(())
    }

    /// Write `row` with the next batch (see the module docs); Ok once that batch is committed. Without a
    /// writer (PostgreSQL) it is written now in its own transaction.
    pub(crate) async fn append<R: BulkRow<DB>>(&self, row: R) -> Result<()> {
        let Some(shared) = &self.writer else {
            let mut tx = DB::begin_write(&self.pool).await?;
            for st in R::statements(vec![row]) {
                st.execute(&mut tx).await?;
            }
            tx.commit().await?;
            return Ok(());
        };
        shared
            .queued(|queue, done| {
                let rows: &mut Rows<R> =
                    filed(&mut queue.kinds, || Box::new(Rows::<R>(Vec::new())));
                rows.0.push(row);
                queue.waiters.push(done);
            })
            .await
    }

    /// Run `script` in the next batch (on SQLite in a savepoint, on the writer's own connection with the batch's
    /// rows: see the module docs and `script.rs`); the rows each of its statements changed, once that batch is
    /// committed. A script that fails is undone alone and its error returned at once. Without a writer
    /// (PostgreSQL) it runs now in its own transaction.
    pub(crate) async fn script(&self, script: Script<DB>) -> Result<Vec<u64>> {
        if script.is_empty() {
            return Ok(Vec::new());
        }
        // Only SQLite has a writer, and only a SQLite connection runs a script on its own handle.
        let Some(shared) = self.writer.as_ref().filter(|_| DB::OWN_HANDLE) else {
            let mut tx = DB::begin_write(&self.pool).await?;
            let changed = script.execute(&mut tx).await?;
            tx.commit().await?;
            return Ok(changed);
        };
        let outcome = Arc::new(std::sync::Mutex::new(None));
        let out = outcome.clone();
        shared
            .queued(|queue, done| {
                queue.scripts.push(QueuedScript {
                    script,
                    outcome: out,
                    done,
                })
            })
            .await?;
        let changed = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
        changed.ok_or_else(|| StoreError::Database("the script ended without its outcome".into()))
    }

    /// Run `job` whole on the writer's connection in the next batch (see the module docs), and return what it
    /// returned once that batch is committed. A job that fails is undone alone and its error returned at once.
    /// `job` may run twice (after another job of its batch failed, its first run undone): it must not act
    /// outside the database. Without a writer (PostgreSQL) it runs now in its own transaction.
    pub(crate) async fn write<T: Send + 'static>(&self, job: WriteJob<DB, T>) -> Result<T> {
        let Some(shared) = &self.writer else {
            let mut tx = DB::begin_write(&self.pool).await?;
            let value = job(&mut *tx).await?;
            tx.commit().await?;
            return Ok(value);
        };
        let slot = Arc::new(std::sync::Mutex::new(None));
        let out = slot.clone();
        let job = Arc::new(job);
        let erased: WriteJob<DB, ()> = Box::new(move |conn| {
            let (job, out) = (job.clone(), out.clone());
            Box::pin(async move {
                let value = job(conn).await?;
                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
                Ok(())
            })
        });
        shared
            .queued(|queue, done| queue.jobs.push((erased, done)))
            .await?;
        let value = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        value.ok_or_else(|| StoreError::Database("the write job ended without its result".into()))
    }

    /// The writer's own connection's settings, as `PRAGMA name` reads them, for each of `names` (opened if
    /// need be; None without a writer).
    #[cfg(test)]
    pub(crate) async fn writer_pragmas(&self, names: &[&str]) -> Option<Vec<String>> {
        let shared = self.writer.as_ref()?;
        let mut guard = shared.state.lock().await;
        if guard.own.is_none() {
            guard.own = Some(super::local::open_writer(&shared.path).ok()?);
        }
        let own = guard.own.as_ref()?;
        names
            .iter()
            .map(|name| {
                own.query_row(&format!("PRAGMA {name}"), [], |row| {
                    let value: rusqlite::types::Value = row.get(0)?;
                    Ok(match value {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .ok()
            })
            .collect()
    }

    /// Write every deferred mark and commit the open batch, then refuse further writes and close the pool.
    pub(crate) async fn close(&self) {
        if let Some(shared) = &self.writer {
            let mut guard = shared.state.lock().await;
            if !guard.closed {
                recover(&mut guard, shared).await;
                let last = shared.take_marks(true);
                // No mark can be queued after this: the map is gone.
                shared.deferred_marks().take();
                shared.bulk_queue().closed = true;
                flush_and_commit(&mut guard, shared, last).await;
                guard.closed = true;
                guard.conn = None;
                guard.own = None;
            }
        }
        if let Some(local) = &self.local {
            local.close();
        }
        self.pool.close().await;
    }
}

/// One control statement on the writer's connection (straight to the backend: `Query::execute` on a store
/// handle comes back here, and an async fn must not contain itself).
async fn exec<DB: Backend>(conn: &mut DB::Connection, sql: &'static str) -> Result<()> {
    DB::execute(
        conn,
        sqlx::SqlSafeStr::into_sql_str(sql),
        Default::default(),
    )
    .await?;
    Ok(())
}

/// Make sure the batch's transaction is open.
async fn open_batch<DB: Backend>(state: &mut State<DB>, pool: &Pool<DB>) -> Result<()> {
    if !state.open {
        let conn = connection(state, pool).await?;
        exec::<DB>(conn, "BEGIN IMMEDIATE").await?;
        state.open = true;
    }
    Ok(())
}

/// The writer's connection, taken from the pool the first time.
async fn connection<'s, DB: Backend>(
    state: &'s mut State<DB>,
    pool: &Pool<DB>,
) -> Result<&'s mut PoolConnection<DB>> {
    if state.conn.is_none() {
        state.conn = Some(pool.acquire().await?);
    }
    Ok(state.conn.as_mut().expect("connection just set"))
}

/// Make sure the batch's transaction is open and start a job's savepoint in it.
async fn open_savepoint<DB: Backend>(state: &mut State<DB>, pool: &Pool<DB>) -> Result<()> {
    open_batch(state, pool).await?;
    let conn = state.conn.as_mut().expect("batch open");
    exec::<DB>(conn, "SAVEPOINT job").await
}

/// Roll back an abandoned job's savepoint. If that fails the batch's transaction is gone (SQLite rolls back
/// the whole transaction on some errors): every job waiting in it is answered with an error.
async fn recover<DB: Backend>(state: &mut State<DB>, shared: &Shared<DB>) {
    if !state.abandoned {
        return;
    }
    state.abandoned = false;
    let Some(conn) = state.conn.as_mut() else {
        return;
    };
    let undone = match exec::<DB>(conn, "ROLLBACK TO job").await {
        Ok(()) => exec::<DB>(conn, "RELEASE job").await,
        Err(e) => Err(e),
    };
    if let Err(e) = undone {
        lose_batch(state, shared, &e.to_string()).await;
    }
}

/// Roll back the batch's transaction and answer every job waiting in it with an error.
async fn lose_batch<DB: Backend>(state: &mut State<DB>, shared: &Shared<DB>, why: &str) {
    tracing::error!(error = %why, "group commit: a batch's transaction was lost; failing its jobs");
    if let Some(conn) = state.conn.as_mut() {
        let _ = exec::<DB>(conn, "ROLLBACK").await;
    }
    state.open = false;
    let n = state.waiters.len();
    for w in state.waiters.drain(..) {
        let _ = w.send(Err(StoreError::Database(format!(
            "the write batch was rolled back: {why}"
        ))));
    }
    shared.stats.record(n, Duration::ZERO);
}

impl<DB: Database> Shared<DB> {
    /// The deferred marks waiting, as rows to write, when they are due (last written at least
    /// [`DEFER_BOUND`] ago) or `now`; they then count as written.
    fn take_marks(&self, now: bool) -> Vec<Box<dyn PendingRows<DB>>> {
        {
            let mut last = self.marks_written.lock().unwrap_or_else(|p| p.into_inner());
            if !now && last.elapsed() < DEFER_BOUND {
                return Vec::new();
            }
            *last = Instant::now();
        }
        self.deferred_marks()
            .as_mut()
            .map(|kinds| kinds.iter_mut().filter_map(|(_, m)| m.take()).collect())
            .unwrap_or_default()
    }

    fn deferred_marks(&self) -> std::sync::MutexGuard<'_, Option<MarkKinds<DB>>> {
        // Inserts and takes are single calls: a poisoned map is still whole.
        self.deferred.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put a write in the next batch with `push` (given the sender its caller is answered on), wake the
    /// committer and wait for the answer. Refused once the store is closed.
    async fn queued(
        &self,
        push: impl FnOnce(&mut BulkQueue<DB>, oneshot::Sender<Result<()>>),
    ) -> Result<()> {
        let (done, answer) = oneshot::channel();
        {
            let mut queue = self.bulk_queue();
            if queue.closed {
                return Err(StoreError::Database("the store is closed".into()));
            }
            push(&mut queue, done);
        }
        self.kick.notify_one();
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Database("the write batch was abandoned".into())))
    }

    fn bulk_queue(&self) -> std::sync::MutexGuard<'_, BulkQueue<DB>> {
        // Pushes (row, then waiter) cannot panic halfway; a poisoned queue is still whole.
        self.bulk.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Write what waits for the next batch and commit it: the deferred marks taken for it (`marks`), the bulk
/// rows by kind, then the write jobs (`run_jobs`), then `COMMIT`. A kind of marks or rows that fails takes the
/// batch down; a job that fails is undone alone and answered with its error. Without a write job, the marks,
/// the rows and the `COMMIT` run together on SQLite's handle (`write_statements`): a batch of Idle polls'
/// marks and served tokens costs one round trip to the connection's thread, not one per statement.
async fn flush_and_commit<DB: Backend>(
    state: &mut State<DB>,
    shared: &Shared<DB>,
    marks: Vec<Box<dyn PendingRows<DB>>>,
) {
    let mut stmts: Vec<Stmt<DB>> = marks.into_iter().flat_map(|m| m.statements()).collect();
    let (kinds, waiters, scripts, mut jobs) = {
        let mut queue = shared.bulk_queue();
        (
            std::mem::take(&mut queue.kinds),
            std::mem::take(&mut queue.waiters),
            std::mem::take(&mut queue.scripts),
            std::mem::take(&mut queue.jobs),
        )
    };
    state.waiters.extend(waiters);
    stmts.extend(kinds.into_iter().flat_map(|(_, rows)| rows.statements()));
    let commit_now = jobs.is_empty();
    if !stmts.is_empty() || !scripts.is_empty() {
        if let Err(why) = write_statements(state, shared, stmts, scripts, commit_now).await {
            // Every job not yet run shares the batch's fate.
            state.waiters.extend(jobs.drain(..).map(|(_, done)| done));
            lose_batch(state, shared, &why).await;
            return;
        }
        if commit_now {
            return;
        }
    }
    if !jobs.is_empty() {
        let ran = match open_batch(state, &shared.pool).await {
            Ok(()) => {
                let conn = state.conn.as_mut().expect("batch open");
                run_jobs::<DB>(conn, &mut jobs, &mut state.waiters).await
            }
            Err(e) => Err(format!("the batch could not start: {e}")),
        };
        if let Err(why) = ran {
            state.waiters.extend(jobs.drain(..).map(|(_, done)| done));
            lose_batch(state, shared, &why).await;
            return;
        }
    }
    commit_batch(state, shared).await;
}

/// What ran of a batch on SQLite's handle.
struct Section {
    /// The callers of the scripts that ran (answered by the batch's `COMMIT`) or did not run (the batch is
    /// lost); those of scripts that failed were answered with their error.
    waiting: Vec<oneshot::Sender<Result<()>>>,
    /// `BEGIN IMMEDIATE` ran here.
    began: bool,
    /// Err: why the batch is lost (not yet rolled back or answered).
    written: std::result::Result<(), String>,
    /// When asked: the `COMMIT`'s outcome (rolled back on failure) and how long it took.
    committed: Option<(std::result::Result<(), String>, Duration)>,
}

/// Run `stmts` in the batch (opening it if needed) and, when `commit`, commit it and answer its jobs. On SQLite
/// all of it runs with one take of a connection: a batch that opens and commits here (nothing open on the
/// pool's connection: only rows and marks) on the writer's own connection ([`State::own`]), synchronously on
/// this thread; otherwise on the pool connection's handle. Elsewhere statement by statement through sqlx.
/// Err: why the batch is lost (the caller rolls it back and answers).
async fn write_statements<DB: Backend>(
    state: &mut State<DB>,
    shared: &Shared<DB>,
    stmts: Vec<Stmt<DB>>,
    scripts: Vec<QueuedScript<DB>>,
    commit: bool,
) -> std::result::Result<(), String> {
    if !DB::OWN_HANDLE {
        // `Db::script` queues scripts only where the connection has SQLite's handle; refused, never dropped.
        for s in scripts {
            let _ = s.done.send(Err(StoreError::Database(
                "a script needs SQLite's own handle".into(),
            )));
        }
        open_batch(state, &shared.pool)
            .await
            .map_err(|e| format!("the batch could not start: {e}"))?;
        for st in stmts {
            let conn = state.conn.as_mut().expect("batch open");
            st.execute(conn).await.map_err(|e| e.to_string())?;
        }
        if commit {
            commit_batch(state, shared).await;
        }
        return Ok(());
    }
    let begin = !state.open;
    if begin && commit {
        if state.own.is_none() {
            let opened = super::local::open_writer(&shared.path)
                .map_err(|e| format!("the batch could not start: {}", super::local_error(e)))?;
            state.own = Some(opened);
        }
        let own = state.own.as_ref().expect("own connection just opened");
        let section = run_section(own, true, &stmts, scripts, true);
        state.waiters.extend(section.waiting);
        if section.began && section.written.is_err() {
            // Its transaction is this connection's, not the pool's (which `lose_batch` rolls back).
            let _ = own.execute_batch("ROLLBACK");
        }
        section.written?;
        if let Some((done, took)) = section.committed {
            answer_batch(state, shared, done, took);
        }
        return Ok(());
    }
    let conn = connection(state, &shared.pool)
        .await
        .map_err(|e| format!("the batch could not start: {e}"))?;
    // Boxed as a `Send` future of unnamed type: awaited bare, the closure's higher-ranked signature made the
    // callers' futures fail the `Send` check (rust-lang/rust#100013).
    let on_handle: futures_core_boxed::BoxFuture<'_, Result<Section>> = Box::pin(DB::with_handle(
        &mut **conn,
        move |c: &rusqlite::Connection| run_section(c, begin, &stmts, scripts, commit),
    ));
    let section = on_handle
        .await
        .map_err(|e| format!("the connection could not be taken: {e}"))?;
    state.waiters.extend(section.waiting);
    if section.began {
        state.open = true;
    }
    section.written?;
    if let Some((done, took)) = section.committed {
        state.open = false;
        answer_batch(state, shared, done, took);
    }
    Ok(())
}

/// On `c`: `BEGIN IMMEDIATE` when `begin`, then `stmts`, then the scripts (`run_scripts`), then, when
/// `commit`, `COMMIT` (rolled back if that fails). Stops at the first failure of a statement (the transaction
/// is left for the caller to roll back); a script's own failure is undone alone.
fn run_section<DB: Backend>(
    c: &rusqlite::Connection,
    begin: bool,
    stmts: &[Stmt<DB>],
    scripts: Vec<QueuedScript<DB>>,
    commit: bool,
) -> Section {
    let mut out = Section {
        waiting: Vec::new(),
        began: false,
        written: Ok(()),
        committed: None,
    };
    let unrun = |scripts: Vec<QueuedScript<DB>>| scripts.into_iter().map(|s| s.done).collect();
    if begin {
        if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
            out.written = Err(format!(
                "the batch could not start: {}",
                super::local_error(e)
            ));
            out.waiting = unrun(scripts);
            return out;
        }
        out.began = true;
    }
    for st in stmts {
        if let Err(e) = st.run_on(c) {
            out.written = Err(e.to_string());
            out.waiting = unrun(scripts);
            return out;
        }
    }
    if !scripts.is_empty() {
        let ran = run_scripts(c, scripts, &mut out.waiting);
        if let Err(why) = ran {
            out.written = Err(why);
            return out;
        }
    }
    if commit {
        let started = Instant::now();
        let done = c.execute_batch("COMMIT");
        if done.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        out.committed = Some((
            done.map_err(|e| super::local_error(e).to_string()),
            started.elapsed(),
        ));
    }
    out
}

/// Run `scripts` on `c` in the open batch, as `run_jobs` runs write jobs: all in one savepoint; when one fails,
/// that savepoint is undone and each script runs again in its own, so only the failing ones are undone (each
/// answered with its error at once). The callers of the scripts that ran go to `waiting`, with their outcome
/// set. Err when the batch's transaction is lost (every caller not yet answered is then in `waiting`).
fn run_scripts<DB: Backend>(
    c: &rusqlite::Connection,
    scripts: Vec<QueuedScript<DB>>,
    waiting: &mut Vec<oneshot::Sender<Result<()>>>,
) -> std::result::Result<(), String> {
    let control = |sql: &str| {
        c.execute_batch(sql)
            .map_err(|e| super::local_error(e).to_string())
    };
    let set = |s: &QueuedScript<DB>, changed: Vec<u64>| {
        *s.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(changed);
    };
    let unrun = |scripts: Vec<QueuedScript<DB>>, waiting: &mut Vec<_>| {
        waiting.extend(scripts.into_iter().map(|s| s.done));
    };
    if let Err(why) = control("SAVEPOINT scripts") {
        unrun(scripts, waiting);
        return Err(why);
    }
    let mut outcomes = Vec::with_capacity(scripts.len());
    for s in &scripts {
        match s.script.run_on(c) {
            Ok(changed) => outcomes.push(changed),
            Err(_) => break,
        }
    }
    if outcomes.len() == scripts.len() {
        let released = control("RELEASE scripts");
        for (s, changed) in scripts.iter().zip(outcomes) {
            set(s, changed);
        }
        unrun(scripts, waiting);
        return released;
    }
    if let Err(why) = control("ROLLBACK TO scripts").and_then(|()| control("RELEASE scripts")) {
        unrun(scripts, waiting);
        return Err(why);
    }
    let mut left = scripts.into_iter();
    while let Some(s) = left.next() {
        let ran = control("SAVEPOINT script").map(|()| s.script.run_on(c));
        let undone = match ran {
            Ok(Ok(changed)) => {
                set(&s, changed);
                let released = control("RELEASE script");
                waiting.push(s.done);
                released
            }
            Ok(Err(e)) => {
                let _ = s.done.send(Err(e));
                control("ROLLBACK TO script").and_then(|()| control("RELEASE script"))
            }
            Err(why) => {
                waiting.push(s.done);
                Err(why)
            }
        };
        if let Err(why) = undone {
            unrun(left.collect(), waiting);
            return Err(why);
        }
    }
    Ok(())
}

/// Run the waiting write jobs in the open batch and move each one that succeeded to `waiters` (answered by the
/// batch's `COMMIT`); a job that fails is answered with its error at once, its writes undone. All of them run
/// in one savepoint: the common case costs two statements however many jobs there are, not two per job. When one
/// fails, that savepoint is rolled back and every job is run again, each in its own savepoint (their values are
/// those of the second run). Err (the jobs left in `jobs`) when the batch's transaction is lost.
async fn run_jobs<DB: Backend>(
    conn: &mut DB::Connection,
    jobs: &mut Vec<QueuedJob<DB>>,
    waiters: &mut Vec<oneshot::Sender<Result<()>>>,
) -> std::result::Result<(), String> {
    let text = |e: StoreError| e.to_string();
    exec::<DB>(conn, "SAVEPOINT jobs").await.map_err(text)?;
    let mut failed = false;
    for (job, _) in jobs.iter() {
        if job(conn).await.is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        exec::<DB>(conn, "RELEASE jobs").await.map_err(text)?;
        waiters.extend(jobs.drain(..).map(|(_, done)| done));
        return Ok(());
    }
    exec::<DB>(conn, "ROLLBACK TO jobs").await.map_err(text)?;
    exec::<DB>(conn, "RELEASE jobs").await.map_err(text)?;
    while !jobs.is_empty() {
        let (job, done) = jobs.remove(0);
        exec::<DB>(conn, "SAVEPOINT job").await.map_err(text)?;
        match job(conn).await {
            Ok(()) => {
                let released = exec::<DB>(conn, "RELEASE job").await;
                waiters.push(done);
                released.map_err(text)?;
            }
            Err(e) => {
                // Rolled back alone; if that fails the batch's transaction is gone with it.
                let undone = match exec::<DB>(conn, "ROLLBACK TO job").await {
                    Ok(()) => exec::<DB>(conn, "RELEASE job").await,
                    Err(e) => Err(e),
                };
                let _ = done.send(Err(e));
                undone.map_err(text)?;
            }
        }
    }
    Ok(())
}

/// `COMMIT` the open batch (if any) and answer its jobs.
async fn commit_batch<DB: Backend>(state: &mut State<DB>, shared: &Shared<DB>) {
    if !state.open {
        return;
    }
    let Some(conn) = state.conn.as_mut() else {
        return;
    };
    let started = Instant::now();
    let done = exec::<DB>(conn, "COMMIT").await;
    if done.is_err() {
        let _ = exec::<DB>(conn, "ROLLBACK").await;
    }
    state.open = false;
    answer_batch(
        state,
        shared,
        done.map_err(|e| e.to_string()),
        started.elapsed(),
    );
}

/// Answer the jobs of a batch whose `COMMIT` returned `done` after `took`.
fn answer_batch<DB: Database>(
    state: &mut State<DB>,
    shared: &Shared<DB>,
    done: std::result::Result<(), String>,
    took: Duration,
) {
    let n = state.waiters.len();
    shared.stats.record(n, took);
    for w in state.waiters.drain(..) {
        let _ = w.send(match &done {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Database(format!("the write batch failed: {e}"))),
        });
    }
}

/// The committing task: woken whenever a job ends, it queues behind the jobs already waiting for the
/// connection (the mutex is FIFO), then commits what they wrote. Wakes by itself while deferred marks wait.
/// The committer runs on a thread of its own (a one-thread runtime), not among the request tasks: a batch is
/// several round trips to the connection's thread (BEGIN, one statement per kind of bulk row, COMMIT), and on
/// the shared runtime each wake-up of the committer queued behind up to a core's worth of check-ins (CMS
/// verifies, responses), so a batch took two to three times its database time under load. It ends within
/// [`DEFER_BOUND`] of its store being dropped.
fn spawn_committer<DB: Backend>(shared: std::sync::Weak<Shared<DB>>) -> Result<()> {
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name("escrowd-writer".into())
                .spawn(move || runtime.block_on(committer(shared)))
        });
    match started {
        Ok(_) => Ok(()),
        Err(e) => Err(StoreError::Database(format!(
            "the database writer's thread could not be started: {e}"
        ))),
    }
}

async fn committer<DB: Backend>(shared: std::sync::Weak<Shared<DB>>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let kicked = tokio::time::timeout(DEFER_BOUND, s.kick.notified())
            .await
            .is_ok();
        let mut guard = s.state.lock().await;
        if guard.closed {
            return;
        }
        if !kicked
            && s.deferred_marks()
                .as_ref()
                .is_none_or(|kinds| kinds.iter().all(|(_, m)| m.is_empty()))
        {
            continue;
        }
        recover(&mut guard, &s).await;
        // Woken by the bound, not by a write: the marks are due whenever they were last written.
        let marks = s.take_marks(!kicked);
        flush_and_commit(&mut guard, &s, marks).await;
    }
}

/// A write transaction: `&mut *tx` is its connection; `commit()` makes it durable.
pub(crate) enum WriteTx<DB: Database> {
    /// Its own transaction on a pool connection (PostgreSQL).
    Plain(Tx<DB>),
    /// A savepoint in the group-commit writer's batch (SQLite).
    Batched(Lease<DB>),
}

/// A job's hold on the writer's connection, inside its savepoint.
pub(crate) struct Lease<DB: Database> {
    guard: Option<OwnedMutexGuard<State<DB>>>,
    shared: Arc<Shared<DB>>,
}

impl<DB: Backend> WriteTx<DB> {
    /// Undo the transaction's writes now.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            WriteTx::Plain(tx) => Ok(tx.rollback().await?),
            WriteTx::Batched(mut lease) => {
                let mut guard = lease.guard.take().expect("lease holds the connection");
                recover(&mut guard, &lease.shared).await;
                drop(guard);
                lease.shared.kick.notify_one();
                Ok(())
            }
        }
    }

    /// Make the transaction's writes durable; Ok only once they are committed.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Plain(tx) => Ok(tx.commit().await?),
            WriteTx::Batched(mut lease) => {
                let mut guard = lease.guard.take().expect("lease holds the connection");
                let conn = guard.conn.as_mut().expect("savepoint open");
                // On failure the guard drops with `abandoned` still set: the next holder rolls it back.
                let released = exec::<DB>(conn, "RELEASE job").await;
                if let Err(e) = released {
                    drop(guard);
                    lease.shared.kick.notify_one();
                    return Err(e);
                }
                guard.abandoned = false;
                let (tx, rx) = oneshot::channel();
                guard.waiters.push(tx);
                if guard.waiters.len() >= MAX_BATCH {
                    let marks = lease.shared.take_marks(false);
                    flush_and_commit(&mut guard, &lease.shared, marks).await;
                }
                drop(guard);
                lease.shared.kick.notify_one();
                rx.await.unwrap_or_else(|_| {
                    Err(StoreError::Database("the write batch was abandoned".into()))
                })
            }
        }
    }
}

impl<DB: Database> Drop for Lease<DB> {
    fn drop(&mut self) {
        if self.guard.take().is_some() {
            // Dropped without commit: `abandoned` is set, so the next holder of the connection rolls the
            // savepoint back; wake the committer so the transaction does not stay open.
            self.shared.kick.notify_one();
        }
    }
}

impl<DB: Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match self {
            WriteTx::Plain(tx) => tx,
            WriteTx::Batched(lease) => lease
                .guard
                .as_ref()
                .and_then(|g| g.conn.as_deref())
                .expect("lease holds the connection"),
        }
    }
}

impl<DB: Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            WriteTx::Plain(tx) => tx,
            WriteTx::Batched(lease) => lease
                .guard
                .as_mut()
                .and_then(|g| g.conn.as_deref_mut())
                .expect("lease holds the connection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use sqlx::Sqlite;

    use super::super::query;
    use crate::conformance::{device, event};
    use crate::prelude::*;
    use crate::{SqliteStore, StoreError};

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("gc.sqlite"))
            .await
            .unwrap()
    }

    async fn keys(store: &SqliteStore) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&*store.pool)
            .await
            .unwrap()
    }

    /// A write transaction that inserted key `a` into `t` and holds the writer until committed.
    async fn holding_writer(store: &SqliteStore) -> super::WriteTx<Sqlite> {
        let mut a = store.pool.begin_write().await.unwrap();
        query::<Sqlite>("INSERT INTO t (k) VALUES ('a')")
            .execute(&mut *a)
            .await
            .unwrap();
        a
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_alone_and_only_it_sees_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&*store.pool)
            .await
            .unwrap();
        // Job A holds the writer while B (fails half-way) and C queue behind it: one batch.
        let a = holding_writer(&store).await;
        let db = store.pool.clone();
        let b = tokio::spawn(async move {
            let mut tx = db.begin_write().await?;
            query::<Sqlite>("INSERT INTO t (k) VALUES ('b')")
                .execute(&mut *tx)
                .await?;
            // Unique violation: B's error, B's rows undone.
            query::<Sqlite>("INSERT INTO t (k) VALUES ('a')")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        });
        let db = store.pool.clone();
        let c = tokio::spawn(async move {
            let mut tx = db.begin_write().await?;
            query::<Sqlite>("INSERT INTO t (k) VALUES ('c')")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.commit().await.unwrap();
        assert!(
            b.await.unwrap().is_err(),
            "B's own failure is reported to B"
        );
        c.await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["a", "c"]);
        let stats = store.pool.stats().unwrap();
        assert_eq!(stats.jobs.load(Ordering::Relaxed), 2, "A and C committed");
        assert_eq!(
            stats.size_buckets[1].load(Ordering::Relaxed),
            1,
            "A and C shared one batch"
        );
    }

    /// A bulk row for the tests: a key of table `t`, all of a batch's written by one INSERT.
    struct Key(&'static str);

    impl super::BulkRow<Sqlite> for Key {
        fn statements(rows: Vec<Self>) -> Vec<super::Stmt<Sqlite>> {
            let mut q = super::super::QueryBuilder::<Sqlite>::new("INSERT INTO t (k) VALUES ");
            q.push_values(&rows, |row, Key(k)| {
                row.push_bind(*k);
            });
            vec![q.statement()]
        }
    }

    async fn table_t(store: &SqliteStore, keys: &[&str]) {
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&*store.pool)
            .await
            .unwrap();
        for k in keys {
            sqlx::query("INSERT INTO t (k) VALUES (?)")
                .bind(*k)
                .execute(&*store.pool)
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_rows_of_concurrent_callers_ride_one_batch_and_each_caller_waits_for_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &[]).await;
        // A job holds the writer; rows appended meanwhile wait for the next batch, with it.
        let a = holding_writer(&store).await;
        const KEYS: [&str; 20] = [
            "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11",
            "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19",
        ];
        let appends: Vec<_> = KEYS
            .iter()
            .map(|k| {
                let db = store.pool.clone();
                tokio::spawn(async move { db.append(Key(k)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            appends.iter().all(|h| !h.is_finished()),
            "no caller is answered before its batch commits"
        );
        a.commit().await.unwrap();
        for h in appends {
            h.await.unwrap().unwrap();
        }
        let mut want = vec!["a".to_string()];
        want.extend(KEYS.iter().map(|k| k.to_string()));
        assert_eq!(keys(&store).await, want);
        let stats = store.pool.stats().unwrap();
        assert_eq!(stats.jobs.load(Ordering::Relaxed), 21);
        assert_eq!(
            stats.batches.load(Ordering::Relaxed),
            1,
            "one batch, one COMMIT"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_bulk_kind_fails_its_whole_batch_writes_nothing_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &["dup"]).await;
        let a = holding_writer(&store).await;
        let db = store.pool.clone();
        let fine = tokio::spawn(async move { db.append(Key("fine")).await });
        let db = store.pool.clone();
        // A unique violation in the bulk statement: the whole batch is rolled back.
        let clash = tokio::spawn(async move { db.append(Key("dup")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let a = a.commit().await;
        assert!(a.is_err(), "the job sharing the batch is told it was lost");
        assert!(fine.await.unwrap().is_err());
        assert!(clash.await.unwrap().is_err());
        assert_eq!(
            keys(&store).await,
            ["dup"],
            "nothing of the batch was written"
        );
        store.pool.append(Key("after")).await.unwrap();
        assert_eq!(keys(&store).await, ["after", "dup"]);
    }

    /// A write job inserting `k` and `also` (when given) into `t`; returns how many rows `t` then holds.
    fn insert_keys(k: &'static str, also: Option<&'static str>) -> super::WriteJob<Sqlite, i64> {
        Box::new(move |conn| {
            Box::pin(async move {
                for key in std::iter::once(k).chain(also) {
                    query::<Sqlite>("INSERT INTO t (k) VALUES ($1)")
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                }
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(n)
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_jobs_ride_one_batch_a_failing_one_is_undone_alone_and_each_gets_its_value_after_commit()
     {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &["dup"]).await;
        // A savepoint job holds the writer: the write jobs queued meanwhile run in the next batch, with it.
        let a = holding_writer(&store).await;
        let db = store.pool.clone();
        let fine = tokio::spawn(async move { db.write(insert_keys("j1", Some("j2"))).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let db = store.pool.clone();
        // Its second row clashes: its first row is undone with it, and nothing else.
        let clash = tokio::spawn(async move { db.write(insert_keys("j3", Some("dup"))).await });
        let db = store.pool.clone();
        let row = tokio::spawn(async move { db.append(Key("bulk")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !fine.is_finished() && !row.is_finished(),
            "no caller is answered before its batch commits"
        );
        a.commit().await.unwrap();
        // `dup`, `a`, the bulk row (written before the jobs) and the job's two rows.
        assert_eq!(fine.await.unwrap().unwrap(), 5, "the job's own value");
        let err = clash.await.unwrap().unwrap_err();
        assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
        row.await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["a", "bulk", "dup", "j1", "j2"]);
        let stats = store.pool.stats().unwrap();
        assert_eq!(
            stats.batches.load(Ordering::Relaxed),
            1,
            "`a`, the bulk row and both jobs shared one batch, one COMMIT"
        );
        // The writer goes on, and a write job is refused once the store is closed.
        assert_eq!(
            store.pool.write(insert_keys("later", None)).await.unwrap(),
            6
        );
        store.pool.close().await;
        let err = store
            .pool
            .write(insert_keys("late", None))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }

    /// A script inserting `keys` into `t`, each step saying what its failure means; the last one must change
    /// a row (an `INSERT … WHERE NOT EXISTS` that writes nothing when `k` is there).
    fn script_of(keys: &[&str]) -> super::Script<Sqlite> {
        let mut script = super::Script::default();
        for (i, k) in keys.iter().enumerate() {
            let mut q = super::super::QueryBuilder::<Sqlite>::new("INSERT INTO t (k) SELECT ");
            q.push_bind(*k);
            let step = if i + 1 == keys.len() {
                q.push(" WHERE NOT EXISTS (SELECT 1 FROM t WHERE k = ")
                    .push_bind(format!("{k}-blocker"))
                    .push(")");
                super::super::Step::new(q.statement()).must_change(format!("{k} is blocked"))
            } else {
                super::super::Step::new(q.statement())
            };
            script.push(step.duplicate(format!("{k} is taken")));
        }
        script
    }

    /// A claim of `claim` (a row written unless `blocker` is in `t`), then `guarded` only if it was written (a
    /// step that must change a row), then `always`.
    fn claim_script(
        claim: &str,
        blocker: &str,
        guarded: &str,
        always: &str,
    ) -> super::Script<Sqlite> {
        let insert = |k: &str| {
            let mut q = super::super::QueryBuilder::<Sqlite>::new("INSERT INTO t (k) SELECT ");
            q.push_bind(k.to_string());
            q
        };
        let mut claim_q = insert(claim);
        claim_q
            .push(" WHERE NOT EXISTS (SELECT 1 FROM t WHERE k = ")
            .push_bind(blocker.to_string())
            .push(")");
        let mut script = super::Script::default();
        script.push(super::super::Step::new(claim_q.statement()));
        script.push(
            super::super::Step::new(insert(guarded).statement())
                .must_change(format!("{guarded} must be written")),
        );
        script.only_if_changed_from(1, 0);
        script.push(super::super::Step::new(insert(always).statement()));
        script
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guarded_step_runs_only_when_its_claim_changed_a_row_on_either_execution_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &["blocked"]).await;
        // The writer's own connection.
        let won = store
            .pool
            .script(claim_script("c1", "free", "g1", "a1"))
            .await;
        assert_eq!(won.unwrap(), [1, 1, 1]);
        let lost = store
            .pool
            .script(claim_script("c2", "blocked", "g2", "a2"))
            .await;
        assert_eq!(
            lost.unwrap(),
            [0, 0, 1],
            "skipped: no conflict, nothing written"
        );
        // Through sqlx, as on PostgreSQL.
        let mut tx = store.pool.begin_write().await.unwrap();
        let won = claim_script("c3", "free", "g3", "a3")
            .execute(&mut tx)
            .await
            .unwrap();
        let lost = claim_script("c4", "blocked", "g4", "a4")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!((won, lost), (vec![1, 1, 1], vec![0, 0, 1]));
        assert_eq!(
            keys(&store).await,
            ["a1", "a2", "a3", "a4", "blocked", "c1", "c3", "g1", "g3"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_ride_the_batch_a_failing_one_is_undone_alone_with_its_own_meaning() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &["dup", "s6-blocker"]).await;
        sqlx::query("CREATE TABLE u (k TEXT NOT NULL REFERENCES t (k))")
            .execute(&*store.pool)
            .await
            .unwrap();
        // 1. A savepoint job holds the writer: scripts queued meanwhile run in the next batch with it, on the
        //    pool connection's handle, and nobody is answered before that batch commits.
        let a = holding_writer(&store).await;
        let run = |keys: &'static [&'static str]| {
            let db = store.pool.clone();
            tokio::spawn(async move { db.script(script_of(keys)).await })
        };
        let fine = run(&["s1", "s2"]);
        let clash = run(&["s3", "dup"]);
        let blocked = run(&["s5", "s6"]);
        let also = run(&["s7"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !fine.is_finished() && !also.is_finished(),
            "no caller is answered before its batch commits"
        );
        a.commit().await.unwrap();
        assert_eq!(fine.await.unwrap().unwrap(), [1, 1], "rows changed by each");
        assert_eq!(also.await.unwrap().unwrap(), [1]);
        match clash.await.unwrap() {
            Err(StoreError::Conflict(why)) => assert_eq!(why, "dup is taken"),
            other => panic!("a broken unique key is the step's conflict: {other:?}"),
        }
        match blocked.await.unwrap() {
            Err(StoreError::Conflict(why)) => assert_eq!(why, "s6 is blocked"),
            other => panic!("no row changed is the step's conflict: {other:?}"),
        }
        assert_eq!(
            keys(&store).await,
            ["a", "dup", "s1", "s2", "s6-blocker", "s7"],
            "the failing scripts' first rows were undone with them, and nothing else"
        );
        assert_eq!(
            store.pool.stats().unwrap().batches.load(Ordering::Relaxed),
            1,
            "`a` and the scripts shared one batch"
        );
        // 2. Nothing holds the writer: scripts and bulk rows run on the writer's own connection.
        let row = {
            let db = store.pool.clone();
            tokio::spawn(async move { db.append(Key("bulk")).await })
        };
        let (fine, clash) = (run(&["s8"]), run(&["s9", "s1"]));
        row.await.unwrap().unwrap();
        assert_eq!(fine.await.unwrap().unwrap(), [1]);
        assert!(matches!(clash.await.unwrap(), Err(StoreError::Conflict(_))));
        // A broken foreign key is what the step says is missing; without a meaning, the database's error.
        let mut q = super::super::QueryBuilder::<Sqlite>::new("INSERT INTO u (k) VALUES (");
        q.push_bind("ghost").push(")");
        let mut script = super::Script::default();
        script.push(super::super::Step::new(q.statement()).missing("key ghost".into()));
        match store.pool.script(script).await {
            Err(StoreError::NotFound(what)) => assert_eq!(what, "key ghost"),
            other => panic!("{other:?}"),
        }
        let mut q = super::super::QueryBuilder::<Sqlite>::new("INSERT INTO u (k) VALUES (");
        q.push_bind("ghost").push(")");
        let mut script = super::Script::default();
        script.extend([q.statement()]);
        match store.pool.script(script).await {
            Err(StoreError::Database(why)) => assert!(why.contains("FOREIGN KEY"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            keys(&store).await,
            ["a", "bulk", "dup", "s1", "s2", "s6-blocker", "s7", "s8"]
        );
        // An empty script writes nothing; a script is refused once the store is closed.
        assert_eq!(
            store.pool.script(super::Script::default()).await.unwrap(),
            Vec::<u64>::new()
        );
        store.pool.close().await;
        let err = store.pool.script(script_of(&["late"])).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_rows_are_refused_once_the_store_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        table_t(&store, &[]).await;
        store.pool.append(Key("before")).await.unwrap();
        store.pool.close().await;
        let err = store.pool.append(Key("late")).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_job_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&*store.pool)
            .await
            .unwrap();
        {
            let mut tx = store.pool.begin_write().await.unwrap();
            query::<Sqlite>("INSERT INTO t (k) VALUES ('dropped')")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let mut tx = store.pool.begin_write().await.unwrap();
        query::<Sqlite>("INSERT INTO t (k) VALUES ('kept')")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(keys(&store).await, ["kept"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_mark_is_queued_while_a_batch_holds_the_writer_and_rides_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut e = device("UDID-BUSY", None);
        e.last_seen_at = 1_000;
        store
            .upsert_enrollment(&e, &event("UDID-BUSY", "enrollment.authenticated"))
            .await
            .unwrap();
        // A write job holds the writer's connection (as one does through its statements and its COMMIT).
        let tx = store.pool.begin_write().await.unwrap();
        // Queueing a mark does not wait for it: the same task still holds the lease, so waiting would hang.
        tokio::time::timeout(
            Duration::from_secs(30),
            store.note_last_seen("UDID-BUSY", 2_000),
        )
        .await
        .expect("a lagging mark never waits for the writer")
        .unwrap();
        tx.commit().await.unwrap();
        let mut seen = 1_000;
        for _ in 0..100 {
            seen = store
                .enrollment("UDID-BUSY")
                .await
                .unwrap()
                .unwrap()
                .last_seen_at;
            if seen != 1_000 {
                break;
            }
            tokio::time::sleep(super::DEFER_BOUND / 5).await;
        }
        assert_eq!(seen, 2_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_all_get_durable_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.sqlite");
        let store = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("UDID-GC-{i}");
                store
                    .upsert_enrollment(&device(&id, None), &event(&id, "enrollment.authenticated"))
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stats = store.pool.stats().unwrap();
        assert_eq!(stats.jobs.load(Ordering::Relaxed), 64);
        // Every acknowledged write is in the file, read by a fresh connection after the writer is gone.
        drop(store);
        let reopened = SqliteStore::open(&path).await.unwrap();
        assert_eq!(reopened.count_enrollments().await.unwrap(), 64);
        assert_eq!(
            reopened.events(&Default::default()).await.unwrap().len(),
            64
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_last_seen_is_flushed_within_the_bound_and_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.sqlite");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut e = device("UDID-LAG", None);
        e.last_seen_at = 1_000;
        store
            .upsert_enrollment(&e, &event("UDID-LAG", "enrollment.authenticated"))
            .await
            .unwrap();
        // Within the bound, with no other write to carry it (polled: the bound is checked, not the speed).
        store.note_last_seen("UDID-LAG", 1_500).await.unwrap();
        store.note_last_seen("UDID-LAG", 2_000).await.unwrap();
        let mut seen = 0;
        for _ in 0..100 {
            tokio::time::sleep(super::DEFER_BOUND / 5).await;
            seen = store
                .enrollment("UDID-LAG")
                .await
                .unwrap()
                .unwrap()
                .last_seen_at;
            if seen != 1_000 {
                break;
            }
        }
        assert_eq!(
            seen, 2_000,
            "flushed, never moved backwards by a later, older note"
        );
        // On close: noted, closed at once, read back from the file.
        store.note_last_seen("UDID-LAG", 3_000).await.unwrap();
        store.note_last_seen("UDID-GHOST", 3_000).await.unwrap();
        store.close().await;
        assert!(store.note_last_seen("UDID-LAG", 4_000).await.is_err());
        let reopened = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            reopened
                .enrollment("UDID-LAG")
                .await
                .unwrap()
                .unwrap()
                .last_seen_at,
            3_000
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lagging_marks_of_many_macs_are_written_in_chunks_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.sqlite");
        let store = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
        // More Macs than one statement carries (events::BULK_CHUNK), enrolled concurrently (batched).
        let n = super::super::events::BULK_CHUNK + 20;
        let mut tasks = Vec::new();
        for i in 0..n {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("UDID-MANY-{i}");
                store
                    .upsert_enrollment(&device(&id, None), &event(&id, "enrollment.authenticated"))
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for i in 0..n {
            store
                .note_last_seen(&format!("UDID-MANY-{i}"), 10_000 + i as i64)
                .await
                .unwrap();
        }
        // Flushed on close, every one of them, read back from the file.
        store.close().await;
        drop(store);
        let reopened = SqliteStore::open(&path).await.unwrap();
        for i in [0, 1, n / 2, n - 2, n - 1] {
            let seen = reopened
                .enrollment(&format!("UDID-MANY-{i}"))
                .await
                .unwrap()
                .unwrap()
                .last_seen_at;
            assert_eq!(seen, 10_000 + i as i64, "Mac {i}");
        }
    }

    #[test]
    fn a_commit_is_counted_in_the_one_duration_class_that_holds_it() {
        let stats = super::BatchStats::default();
        for ms in [0.2, 1.0, 3.0, 10.0, 10.5, 49.0, 80.0] {
            stats.record(4, Duration::from_secs_f64(ms / 1e3));
        }
        let counts: Vec<u64> = stats
            .commit_buckets
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        // Classes: ≤1, ≤2.5, ≤5, ≤10, ≤25, ≤50, longer.
        assert_eq!(counts, [2, 0, 1, 1, 1, 1, 1]);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 7);
    }
}
