//! Scripts: a write of several statements given whole as data ([`Stmt`]s), not as a future over a connection.
//!
//! Guarantees:
//! - A script's statements run in order, all or none: in its own transaction on PostgreSQL; on SQLite in a
//!   savepoint of the group-commit writer's batch, run by the committer on its own connection together with
//!   the batch's bulk rows (`writer.rs`), so a script costs the writer no round trip to a sqlx connection's
//!   thread per statement (a write job does: one per statement). Its caller is answered once the batch is
//!   committed.
//! - What a statement's failure means is said by the statement ([`Step`]): a foreign key it breaks names what
//!   is missing ([`StoreError::NotFound`]), a unique key it breaks or a row it was expected to write and did
//!   not is a [`StoreError::Conflict`] with the step's message; any other failure is the database's error.
//!   Nothing in a message is a bound value unless the step put it there.
//! - The outcome is the number of rows each statement changed, in order.
//! - A step may run only if an earlier one changed a row ([`Script::only_if_changed_from`]): a skipped step
//!   changed none, and its failure meanings do not apply. So a claim and the write it allows are one script.
//!
//! For the writes of the check-in path that need no read between their statements (a command queued with
//! its events, a UserList refresh claimed): as write jobs, a storm of Macs escrowing for the first time spent
//! most of the writer's time sending their statements one by one to sqlx's connection thread.

use super::{Backend, Stmt};
use crate::{Result, StoreError};

/// A constraint a statement broke, told apart from other failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    ForeignKey,
    Unique,
}

impl Violation {
    /// The constraint `e` (from SQLite's own handle) reports breaking, if any.
    pub(crate) fn of_sqlite(e: &rusqlite::Error) -> Option<Self> {
        match e {
            rusqlite::Error::SqliteFailure(err, _) => match err.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Some(Violation::Unique),
                _ => None,
            },
            _ => None,
        }
    }

    /// The constraint `e` (through sqlx, either backend) reports breaking, if any.
    pub(crate) fn of_sqlx(e: &sqlx::Error) -> Option<Self> {
        match e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Some(Violation::ForeignKey)
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => Some(Violation::Unique),
            _ => None,
        }
    }
}

/// One statement of a [`Script`] and what its failure means.
pub(crate) struct Step<DB: sqlx::Database> {
    stmt: Stmt<DB>,
    means: Meaning,
    /// Run only if the step at this index (an earlier one) changed a row.
    only_if: Option<usize>,
}

/// What a step's failure means.
#[derive(Default)]
struct Meaning {
    /// A broken foreign key: this is missing ([`StoreError::NotFound`]).
    missing: Option<String>,
    /// A broken unique key: this conflict.
    duplicate: Option<String>,
    /// No row changed: this conflict.
    unchanged: Option<String>,
}

impl<DB: Backend> Step<DB> {
    pub(crate) fn new(stmt: Stmt<DB>) -> Self {
        Step {
            stmt,
            means: Meaning::default(),
            only_if: None,
        }
    }

    /// Whether the step is to be skipped after the earlier steps changed `changed` rows.
    fn skipped(&self, changed: &[u64]) -> bool {
        self.only_if
            .is_some_and(|at| changed.get(at).is_none_or(|&n| n == 0))
    }

    /// A foreign key the statement breaks means `what` does not exist.
    pub(crate) fn missing(mut self, what: String) -> Self {
        self.means.missing = Some(what);
        self
    }

    /// A unique key the statement breaks is this conflict.
    pub(crate) fn duplicate(mut self, conflict: String) -> Self {
        self.means.duplicate = Some(conflict);
        self
    }

    /// The statement must change a row; when it changes none, this conflict.
    pub(crate) fn must_change(mut self, conflict: String) -> Self {
        self.means.unchanged = Some(conflict);
        self
    }
}

impl Meaning {
    /// The failure `violation` (if a constraint) as the step says it; `otherwise` when it says nothing.
    fn failure(&self, (violation, otherwise): (Option<Violation>, StoreError)) -> StoreError {
        match (violation, &self.missing, &self.duplicate) {
            (Some(Violation::ForeignKey), Some(what), _) => StoreError::NotFound(what.clone()),
            (Some(Violation::Unique), _, Some(conflict)) => StoreError::Conflict(conflict.clone()),
            _ => otherwise,
        }
    }

    /// `changed` rows, or the step's conflict when it had to change one.
    fn checked(&self, changed: u64) -> Result<u64> {
        match &self.unchanged {
            Some(conflict) if changed == 0 => Err(StoreError::Conflict(conflict.clone())),
            _ => Ok(changed),
        }
    }
}

/// A write given as statements, run in order, all or none (see the module docs).
pub(crate) struct Script<DB: sqlx::Database> {
    steps: Vec<Step<DB>>,
}

impl<DB: Backend> Default for Script<DB> {
    fn default() -> Self {
        Script { steps: Vec::new() }
    }
}

impl<DB: Backend> Script<DB> {
    pub(crate) fn push(&mut self, step: Step<DB>) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// Add `stmts`, whose failures mean only the database's error.
    pub(crate) fn extend(&mut self, stmts: impl IntoIterator<Item = Stmt<DB>>) -> &mut Self {
        self.steps.extend(stmts.into_iter().map(Step::new));
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// How many steps the script has: the index the next one pushed takes.
    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// Makes every step from index `start` on run only if the step at `index` changed a row.
    pub(crate) fn only_if_changed_from(&mut self, start: usize, index: usize) -> &mut Self {
        for step in self.steps.iter_mut().skip(start) {
            step.only_if = Some(index);
        }
        self
    }

    /// Run every statement on SQLite's handle `c`, inside the caller's transaction; the rows each changed.
    /// Stops at the first failure (the caller undoes what ran).
    pub(crate) fn run_on(&self, c: &rusqlite::Connection) -> Result<Vec<u64>> {
        let mut changed = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let n = if step.skipped(&changed) {
                0
            } else {
                let n = step
                    .stmt
                    .run_checked(c)
                    .map_err(|e| step.means.failure(e))?;
                step.means.checked(n)?
            };
            changed.push(n);
        }
        Ok(changed)
    }

    /// Run every statement through sqlx on `conn`, inside the caller's transaction; the rows each changed.
    pub(crate) async fn execute(self, conn: &mut DB::Connection) -> Result<Vec<u64>> {
        let mut changed = Vec::with_capacity(self.steps.len());
        for step in self.steps {
            if step.skipped(&changed) {
                changed.push(0);
                continue;
            }
            let Step { stmt, means, .. } = step;
            let n = stmt
                .execute_checked(&mut *conn)
                .await
                .map_err(|e| means.failure(e))?;
            changed.push(means.checked(n)?);
        }
        Ok(changed)
    }
}
