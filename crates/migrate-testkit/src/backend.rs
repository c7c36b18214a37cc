//! A fresh database of either kind, for scenarios written once and run on both (see [`both!`]).

use crate::TestDb;
use migrate_core::driver::Driver;
use migrate_postgres::{PostgresDriver, SessionSettings};
use migrate_sqlite::{SqliteDriver, SqliteOptions, SqliteTarget};
use std::path::PathBuf;

/// The kind of database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A [`TestDb`] on the test server.
    Postgres,
    /// A [`TestFile`] in a temporary directory.
    Sqlite,
}

/// A SQLite database file in a temporary directory of its own, removed with it. The file does
/// not exist until a driver or connection opens it.
#[derive(Debug)]
pub struct TestFile {
    /// The directory, removed on drop.
    pub dir: tempfile::TempDir,
    /// The database file, `identity.db` in `dir`.
    pub path: PathBuf,
}

impl TestFile {
    /// A new directory with no database file in it yet.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("identity.db");
        TestFile { dir, path }
    }

    /// The file as the SQLite driver names it.
    pub fn target(&self) -> SqliteTarget {
        SqliteTarget::File(self.path.clone())
    }

    /// A new driver (its own connection) on the file.
    pub fn driver(&self) -> SqliteDriver {
        SqliteDriver::connect(&self.target(), SqliteOptions::default())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()))
    }

    /// A plain connection of its own, as the application would have.
    pub fn conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()));
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("set a busy timeout");
        conn
    }

    /// A path beside the database.
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for TestFile {
    fn default() -> Self {
        TestFile::new()
    }
}

/// A new driver with default session settings on a PostgreSQL test database.
pub fn postgres_driver(db: &TestDb) -> PostgresDriver {
    postgres_driver_with(db, SessionSettings::default())
}

/// A new driver with the given session settings on a PostgreSQL test database.
pub fn postgres_driver_with(db: &TestDb, session: SessionSettings) -> PostgresDriver {
    let settings = migrate_postgres::url::parse_with_process_env(&db.url())
        .expect("the test database URL parses");
    PostgresDriver::connect(&settings, session).expect("connect to the test database")
}

/// A fresh database of one kind, private to the test, dropped (or removed) with the value.
#[derive(Debug)]
pub enum Backend {
    /// A PostgreSQL test database.
    Postgres(TestDb),
    /// A SQLite file.
    Sqlite(TestFile),
}

impl Backend {
    /// A new empty database of `kind`.
    pub fn new(kind: Kind) -> Backend {
        match kind {
            Kind::Postgres => Backend::Postgres(TestDb::new()),
            Kind::Sqlite => Backend::Sqlite(TestFile::new()),
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> Kind {
        match self {
            Backend::Postgres(_) => Kind::Postgres,
            Backend::Sqlite(_) => Kind::Sqlite,
        }
    }

    /// A URL the tool accepts for it.
    pub fn url(&self) -> String {
        match self {
            Backend::Postgres(db) => db.url(),
            Backend::Sqlite(file) => format!("sqlite:///{}", file.path.display()),
        }
    }

    /// A new driver (its own session) on the database.
    pub fn driver(&self) -> Box<dyn Driver> {
        match self {
            Backend::Postgres(db) => Box::new(postgres_driver(db)),
            Backend::Sqlite(file) => Box::new(file.driver()),
        }
    }

    /// Runs SQL (several statements) on a plain connection of its own, behind the tool's back.
    pub fn execute(&self, sql: &str) {
        match self {
            Backend::Postgres(db) => db
                .client()
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Backend::Sqlite(file) => file
                .conn()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The first column of every row of `sql`, as text (`NULL` for null).
    pub fn texts(&self, sql: &str) -> Vec<String> {
        let texts: Vec<Option<String>> = match self {
            Backend::Postgres(db) => db
                .client()
                .query(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get(0))
                .collect(),
            Backend::Sqlite(file) => {
                let conn = file.conn();
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = stmt
                    .query_map([], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        };
        texts
            .into_iter()
            .map(|t| t.unwrap_or_else(|| "NULL".to_owned()))
            .collect()
    }

    /// One integer: the first column of the only row of `sql`.
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Postgres(db) => db
                .client()
                .query_one(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get(0),
            Backend::Sqlite(file) => file
                .conn()
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Whether a table of that name exists (in `public` on PostgreSQL).
    pub fn table_exists(&self, name: &str) -> bool {
        let sql = match self {
            Backend::Postgres(_) => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = '{name}'"
            ),
            Backend::Sqlite(_) => {
                format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
            }
        };
        self.count(&sql) > 0
    }
}

/// Instantiates a scenario `fn(Kind)` as one test per database: `<scenario>::postgres` and
/// `<scenario>::sqlite`. A backend difference belongs in [`Backend`], not in the scenario.
#[macro_export]
macro_rules! both {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn postgres() {
                super::$scenario($crate::Kind::Postgres);
            }
            #[test]
            fn sqlite() {
                super::$scenario($crate::Kind::Sqlite);
            }
        }
    };
}
