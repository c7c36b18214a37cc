//! A private PostgreSQL cluster a test owns whole: started with the settings it needs
//! (`max_connections`), stopped the hard way (`pg_ctl stop -m immediate`, a crash as the
//! server sees it) and started again. Stopped when dropped.
//!
//! Each test names its own cluster and port, so that tests never share one; a cluster left
//! running by an earlier, aborted run is stopped and restarted with this run's settings.

use postgres::{Client, Config, NoTls};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "127.0.0.1";
const ADMIN: &str = "postgres";

/// A cluster under the temporary directory, listening on 127.0.0.1.
#[derive(Debug)]
pub struct FaultCluster {
    /// TCP port.
    pub port: u16,
    base: PathBuf,
    settings: Vec<String>,
}

impl FaultCluster {
    /// Initialises (once) and starts the cluster `name` on `port` with extra server settings
    /// such as `max_connections=60`.
    pub fn start(name: &str, port: u16, settings: &[&str]) -> FaultCluster {
        let base = std::env::temp_dir().join(format!("identity-migrate-test-{name}"));
        std::fs::create_dir_all(&base).expect("create the cluster's directory");
        let cluster = FaultCluster {
            port,
            base,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
        };
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&cluster.base));
        }
        let data = cluster.data();
        if !data.join("PG_VERSION").exists() {
            let _ = std::fs::remove_dir_all(&data);
            run(pg(&[
                "initdb",
                "-U",
                ADMIN,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        }
        if data.join("postmaster.pid").exists() {
            // Left by an earlier run: stopped, so that this run's settings apply.
            let _ = pg(&["pg_ctl", "-D"])
                .arg(&data)
                .args(["-m", "immediate", "stop"])
                .status();
        }
        cluster.start_again();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    /// Starts the stopped cluster and waits until it answers.
    pub fn start_again(&self) {
        let mut options = format!(
            "-p {} -c listen_addresses={HOST} -k '{}' -c fsync=off",
            self.port,
            self.base.display()
        );
        for s in &self.settings {
            options.push_str(" -c ");
            options.push_str(s);
        }
        run(pg(&["pg_ctl", "-D"])
            .arg(self.data())
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.base.join("server.log"))
            .args(["-t", "60", "-w", "start"]));
        let started = Instant::now();
        while self.try_client("postgres").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the cluster on port {} does not answer",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the cluster as a crash would: no checkpoint, recovery at the next start.
    pub fn stop_immediate(&self) {
        run(pg(&["pg_ctl", "-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// A `postgresql://` URL for `dbname`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgresql://{ADMIN}@{HOST}:{}/{dbname}", self.port)
    }

    /// A session on `dbname`.
    pub fn client(&self, dbname: &str) -> Client {
        self.try_client(dbname)
            .unwrap_or_else(|e| panic!("connect to {dbname} on port {}: {e}", self.port))
    }

    fn try_client(&self, dbname: &str) -> Result<Client, postgres::Error> {
        let mut config = Config::new();
        config
            .host(HOST)
            .port(self.port)
            .user(ADMIN)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(5));
        config.connect(NoTls)
    }

    /// Creates the database `name` (dropping an earlier one).
    pub fn create_database(&self, name: &str) {
        let mut admin = self.client("postgres");
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{name}\""),
        ] {
            admin.batch_execute(&sql).expect("create the database");
        }
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        let _ = pg(&["pg_ctl", "-D"])
            .arg(self.data())
            .args(["-m", "fast", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A PostgreSQL program (the newest installed), as the `postgres` user when we are root.
fn pg(args: &[&str]) -> Command {
    let program = crate::server::pg_bin(args[0]);
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(&args[1..]).stdin(Stdio::null());
    c
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
