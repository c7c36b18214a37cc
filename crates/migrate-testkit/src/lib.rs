//! Test support for the identity-migrate workspace: a real PostgreSQL server and one fresh
//! database per test.
//!
//! The rules this crate serves: tests run in parallel and never share state, nothing mocks a
//! database, and the test command does not assume that a PostgreSQL server is already running.
//!
//! - [`ensure_server`] finds or starts a trust-auth server once per process: the one named by
//!   `IDENTITY_MIGRATE_TEST_PG`, else the local one at 127.0.0.1:5432, else the Debian cluster
//!   started with `pg_ctlcluster`, else a private cluster under the temp directory (port 54329).
//!   Test processes that race to start it are serialised by a file lock.
//! - [`TestDb`] is a uniquely named database on that server, dropped when the value is.
//! - [`auth_server`] is a second private cluster that checks passwords (scram-sha-256), for
//!   tests of authentication failures.
//! - [`describe_schema`] is an introspection oracle, written against `pg_catalog` and
//!   independent of the product's code, that renders tables as normalized text.
//! - [`private_cluster`] starts a test's own server: TLS-only with certificates made at test
//!   time, a streaming standby, a PgBouncer in front; each stopped and removed on drop.
//! - [`FaultCluster`] is a fault test's own server, stopped the hard way (`pg_ctl stop -m
//!   immediate`) and started again, or started with `max_connections` it needs.
//! - [`Backend`] is a fresh database of either kind ([`Kind`]: a [`TestDb`] or a [`TestFile`])
//!   that gives a `Box<dyn Driver>`, and [`both!`] runs a scenario written once on both.
//! - [`harness`] is the engine harness: engines on a backend, intents, synthetic revisions,
//!   the `schema_at` oracle, and a driver that records what it executes.

pub mod archive;
mod backend;
mod describe;
mod fault_cluster;
pub mod harness;
pub mod private_cluster;
mod server;
mod testdb;

pub use backend::{postgres_driver, postgres_driver_with, Backend, Kind, TestFile};
pub use describe::{describe_schema, with_column_last};
pub use fault_cluster::FaultCluster;
pub use server::{auth_server, ensure_server, AuthServer, Server};
pub use testdb::TestDb;
