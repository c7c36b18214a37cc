//! The pure core of identity-migrate: a schema is a value, a revision is a function on it.
//!
//! Nothing here does I/O. The schema model ([`schema`]), the ops and their fold ([`op`]), the
//! revision graph and planning ([`graph`]), rendering per dialect ([`render`]), checksums
//! ([`checksum`]), the trait a database driver implements ([`driver`]), and how the workspace
//! waits for a lock ([`wait`]: backoff with jitter, the one exception to "no I/O": it sleeps).

pub mod backup;
pub mod checksum;
pub mod codegen;
pub mod diff;
pub mod driver;
pub mod graph;
pub mod lint;
pub mod lock;
pub mod op;
pub mod phase;
pub mod render;
pub mod revision;
pub mod safe;
pub mod schema;
pub mod wait;

pub use graph::{Heads, ResolveError, RevisionGraph, Step, Target, Withdrawal};
pub use op::{Backfill, Batching, ColumnChange, ModelError, Op, RawSql};
pub use render::{Dialect, RenderError, Statement};
pub use revision::{Allowance, Direction, Revision};
pub use schema::{
    Column, ColumnType, Constraint, ConstraintKind, DefaultExpr, ForeignKey, Function, Index,
    IndexKey, ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
