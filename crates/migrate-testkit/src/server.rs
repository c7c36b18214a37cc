//! Finding or starting the PostgreSQL servers the tests run against.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

/// Environment variable naming an existing server to use instead of finding or starting one:
/// a base URL such as `postgresql://postgres@127.0.0.1:5432/postgres` whose user may create and
/// drop databases, and whose database is used for that.
const ENV_URL: &str = "IDENTITY_MIGRATE_TEST_PG";
const LOCAL_HOST: &str = "127.0.0.1";
const LOCAL_PORT: u16 = 5432;
const ADMIN_USER: &str = "postgres";
const PRIVATE_PORT: u16 = 54329;
const AUTH_PORT: u16 = 54339;
const AUTH_USER: &str = "im_pw";
const AUTH_PASSWORD: &str = "s3cret-pw";
const AUTH_DB: &str = "im_pw_db";

/// A PostgreSQL server on which the admin user may create and drop databases without a
/// password (or with the one given in `IDENTITY_MIGRATE_TEST_PG`).
#[derive(Debug)]
pub struct Server {
    /// Host name or IP address (or, from `IDENTITY_MIGRATE_TEST_PG`, a socket directory).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The user that creates and drops test databases (`postgres` unless the URL says otherwise).
    pub admin_user: String,
    admin_password: Option<String>,
    maintenance_db: String,
}

impl Server {
    /// A `postgresql://` URL for `dbname` on this server, as the admin user.
    pub fn url(&self, dbname: &str) -> String {
        let password = match &self.admin_password {
            Some(p) => format!(":{}", pct(p)),
            None => String::new(),
        };
        format!(
            "postgresql://{}{password}@{}:{}/{}",
            pct(&self.admin_user),
            url_host(&self.host),
            self.port,
            pct(dbname)
        )
    }

    /// Connects to `dbname` as the admin user.
    pub(crate) fn connect(&self, dbname: &str) -> Result<Client, postgres::Error> {
        let mut config = config(&self.host, self.port, &self.admin_user, dbname);
        config.connect_timeout(Duration::from_secs(10));
        if let Some(p) = &self.admin_password {
            config.password(p);
        }
        config.connect(NoTls)
    }

    /// Connects to the maintenance database (the one that creates and drops test databases).
    pub(crate) fn admin_client(&self) -> Result<Client, postgres::Error> {
        self.connect(&self.maintenance_db)
    }
}

/// A private PostgreSQL cluster that authenticates TCP connections with scram-sha-256, holding
/// a role [`user`](AuthServer::user) with password [`password`](AuthServer::password) that owns
/// the database [`dbname`](AuthServer::dbname). Tests may use that database but must not
/// change the role.
#[derive(Debug)]
pub struct AuthServer {
    /// Host IP address (`127.0.0.1`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The role that logs in with a password (`im_pw`).
    pub user: String,
    /// Its password (`s3cret-pw`).
    pub password: String,
    /// The database it owns (`im_pw_db`).
    pub dbname: String,
}

impl AuthServer {
    /// A URL with the right password.
    pub fn url(&self) -> String {
        self.url_with_password(&self.password)
    }

    /// A URL with the given (for example a wrong) password.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{}",
            pct(&self.user),
            pct(password),
            url_host(&self.host),
            self.port,
            pct(&self.dbname)
        )
    }
}

/// The trust-auth server for this process's tests, found or started on first use.
///
/// In order: the server in `IDENTITY_MIGRATE_TEST_PG` if set; PostgreSQL at 127.0.0.1:5432 if
/// it accepts user `postgres` without a password; a private cluster already running on port
/// 54329; the Debian cluster `15 main` started with `pg_ctlcluster`; a private cluster
/// initialised under the temp directory and started on port 54329. Panics if none works.
pub fn ensure_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(find_or_start_server)
}

/// The password-checking server, started (once per machine, reused afterwards) on first use.
/// Panics if it cannot be started.
pub fn auth_server() -> &'static AuthServer {
    static SERVER: OnceLock<AuthServer> = OnceLock::new();
    SERVER.get_or_init(start_auth_server)
}

fn find_or_start_server() -> Server {
    if let Ok(url) = std::env::var(ENV_URL) {
        return server_from_url(&url);
    }
    let local = || Server {
        host: LOCAL_HOST.to_string(),
        port: LOCAL_PORT,
        admin_user: ADMIN_USER.to_string(),
        admin_password: None,
        maintenance_db: "postgres".to_string(),
    };
    let private = || Server {
        port: PRIVATE_PORT,
        ..local()
    };
    if answers(LOCAL_PORT) {
        return local();
    }
    let _lock = lock();
    if answers(LOCAL_PORT) {
        return local();
    }
    if answers(PRIVATE_PORT) {
        return private();
    }
    let started = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "15", "main", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let wait = if started { 20 } else { 1 };
    if wait_until(Duration::from_secs(wait), || answers(LOCAL_PORT)) {
        return local();
    }
    start_private_cluster("identity-migrate-test-pg", PRIVATE_PORT, &["--auth=trust"]);
    if !wait_until(Duration::from_secs(20), || answers(PRIVATE_PORT)) {
        panic!("the private PostgreSQL cluster on port {PRIVATE_PORT} started but does not answer");
    }
    private()
}

fn server_from_url(url: &str) -> Server {
    let config = Config::from_str(url)
        .unwrap_or_else(|e| panic!("{ENV_URL} is not a PostgreSQL URL ({e}): {url}"));
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => LOCAL_HOST.to_string(),
    };
    Server {
        host,
        port: config.get_ports().first().copied().unwrap_or(LOCAL_PORT),
        admin_user: config.get_user().unwrap_or(ADMIN_USER).to_string(),
        admin_password: config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        maintenance_db: config.get_dbname().unwrap_or("postgres").to_string(),
    }
}

fn start_auth_server() -> AuthServer {
    let name = "identity-migrate-test-pg-auth";
    let socket_dir = std::env::temp_dir().join(name);
    let _lock = lock();
    let admin = || {
        let c = config(
            &socket_dir.to_string_lossy(),
            AUTH_PORT,
            ADMIN_USER,
            "postgres",
        );
        c.connect(NoTls)
    };
    if admin().is_err() {
        let auth = ["--auth-host=scram-sha-256", "--auth-local=trust"];
        start_private_cluster(name, AUTH_PORT, &auth);
    }
    let mut client = None;
    wait_until(Duration::from_secs(20), || {
        client = admin().ok();
        client.is_some()
    });
    let mut client = client.unwrap_or_else(|| {
        panic!("the password-checking cluster on port {AUTH_PORT} does not answer")
    });
    let role_exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&AUTH_USER])
        .expect("look up the password role")
        .is_some();
    let verb = if role_exists { "ALTER" } else { "CREATE" };
    client
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; \
             {verb} ROLE {AUTH_USER} LOGIN PASSWORD '{AUTH_PASSWORD}'"
        ))
        .expect("create the password role");
    let db_exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&AUTH_DB])
        .expect("look up the password database")
        .is_some();
    if !db_exists {
        client
            .batch_execute(&format!("CREATE DATABASE {AUTH_DB} OWNER {AUTH_USER}"))
            .expect("create the password database");
    }
    let server = AuthServer {
        host: LOCAL_HOST.to_string(),
        port: AUTH_PORT,
        user: AUTH_USER.to_string(),
        password: AUTH_PASSWORD.to_string(),
        dbname: AUTH_DB.to_string(),
    };
    let mut check = config(LOCAL_HOST, AUTH_PORT, AUTH_USER, AUTH_DB);
    check.password(AUTH_PASSWORD);
    if let Err(e) = check.connect(NoTls) {
        panic!("cannot log in to the password-checking cluster as {AUTH_USER}: {e}");
    }
    server
}

/// Initialises (unless already done) and starts a cluster under `temp_dir/name`, listening on
/// 127.0.0.1:`port` and with its socket in that directory. The caller holds the lock.
fn start_private_cluster(name: &str, port: u16, auth: &[&str]) {
    let base = std::env::temp_dir().join(name);
    let data = base.join("data");
    let log = base.join("server.log");
    std::fs::create_dir_all(&base).expect("create the private cluster's directory");
    let root = is_root();
    if root {
        run(Command::new("chown").arg("postgres:").arg(&base), "chown");
    }
    if !data.join("PG_VERSION").exists() {
        if data.exists() {
            std::fs::remove_dir_all(&data).expect("remove a half-initialised cluster");
        }
        let mut initdb = pg_command(root, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ADMIN_USER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .args(auth);
        run(&mut initdb, "initdb");
    }
    let options = format!(
        "-p {port} -c listen_addresses={LOCAL_HOST} -k '{}' -c fsync=off",
        base.display()
    );
    let mut pg_ctl = pg_command(root, "pg_ctl");
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(options)
        .arg("-l")
        .arg(&log)
        .args(["-t", "60", "start", "-w"]);
    let status = pg_ctl
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log_text.lines().rev().take(20).collect();
        panic!(
            "pg_ctl could not start the cluster in {} ({status:?}); log tail (newest first):\n{}",
            data.display(),
            tail.join("\n")
        );
    }
}

/// A command for a PostgreSQL program, run as the `postgres` OS user when we are root.
pub(crate) fn pg_command(root: bool, program: &str) -> Command {
    let program = pg_bin(program);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The program in the newest `/usr/lib/postgresql/<version>/bin`, else the bare name (PATH).
pub(crate) fn pg_bin(program: &str) -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let path = e.path().join("bin").join(program);
            path.exists().then_some((version, path))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from(program), |(_, p)| p)
}

pub(crate) fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An exclusive lock shared by every test process on the machine, released when dropped.
fn lock() -> File {
    let path = std::env::temp_dir().join("identity-migrate-test-pg.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

/// Whether a trust-auth server accepts `postgres` at 127.0.0.1:`port`.
fn answers(port: u16) -> bool {
    config(LOCAL_HOST, port, ADMIN_USER, "postgres")
        .connect(NoTls)
        .and_then(|mut c| c.simple_query("SELECT 1"))
        .is_ok()
}

pub(crate) fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn config(host: &str, port: u16, user: &str, dbname: &str) -> Config {
    let mut config = Config::new();
    if host.starts_with('/') {
        config.host_path(Path::new(host));
    } else {
        config.host(host);
    }
    config
        .port(port)
        .user(user)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(2));
    config
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_host(host: &str) -> String {
    if host.starts_with('/') {
        pct(host)
    } else if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
