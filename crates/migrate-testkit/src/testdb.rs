//! One fresh, uniquely named database per test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::server::{ensure_server, Server};

/// A new, empty database on [`ensure_server`]'s server, named `im_t_<pid>_<counter>_<nanos>`
/// so that no two tests (in any process) share one. Dropping the value drops the database,
/// disconnecting whoever is still connected to it.
#[derive(Debug)]
pub struct TestDb {
    server: &'static Server,
    name: String,
}

impl TestDb {
    /// Creates the database (starting the server first if need be). Panics if it cannot.
    pub fn new() -> TestDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let server = ensure_server();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "im_t_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = server
            .admin_client()
            .unwrap_or_else(|e| panic!("cannot connect to the test server {server:?}: {e}"));
        // CREATE DATABASE fails transiently if another session happens to use the template.
        let mut attempt = 0;
        while let Err(e) = admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
            attempt += 1;
            if attempt >= 10 {
                panic!("cannot create test database {name}: {e}");
            }
            std::thread::sleep(Duration::from_millis(100 * attempt));
        }
        TestDb { server, name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for the database, as the admin user: `postgresql://postgres@HOST:PORT/NAME`.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// A new connection to the database, as the admin user. Panics if it cannot connect.
    pub fn client(&self) -> postgres::Client {
        self.server
            .connect(&self.name)
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = self.server.admin_client() {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = admin.batch_execute(&sql);
        }
    }
}
