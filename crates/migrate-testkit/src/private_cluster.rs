//! Private PostgreSQL clusters for tests that need a special server: TLS-only with test-time
//! certificates, a streaming standby, a PgBouncer in front. Each one lives in its own temp
//! directory on a free port and is stopped and removed when dropped, so tests never share one.

use crate::server::{is_root, pg_bin, pg_command, run, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The role that logs in with a client certificate on a [`TlsCluster`].
pub const CERT_USER: &str = "certuser";
/// The role that logs in with a SCRAM password over TLS on a [`TlsCluster`].
pub const SCRAM_USER: &str = "scramuser";
/// Its password.
pub const SCRAM_PASSWORD: &str = "Scr4m-Pw-0f-Test";

/// A private cluster, stopped and deleted on drop.
#[derive(Debug)]
pub struct PrivateCluster {
    /// The directory holding the data directory, socket, log and any files of the test.
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    data: PathBuf,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh directory under the temp directory, owned by `postgres` when running as root.
pub fn private_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "identity-migrate-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a private cluster directory");
    if is_root() {
        run(Command::new("chown").arg("postgres:").arg(&dir), "chown");
    }
    dir
}

impl PrivateCluster {
    /// Initialises a trust-auth cluster in a new directory, writes `conf` to its
    /// `postgresql.conf` and, when given, `hba` as its whole `pg_hba.conf`, then starts it.
    pub fn start(kind: &str, conf: &str, hba: Option<&str>) -> PrivateCluster {
        Self::start_in(private_dir(kind), conf, hba)
    }

    /// As [`start`](Self::start), in a directory the caller prepared (with [`private_dir`]).
    pub fn start_in(dir: PathBuf, conf: &str, hba: Option<&str>) -> PrivateCluster {
        let data = dir.join("data");
        let root = is_root();
        let mut initdb = pg_command(root, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(&mut initdb, "initdb");
        append(&data.join("postgresql.conf"), conf);
        if let Some(hba) = hba {
            write_as_postgres(&data.join("pg_hba.conf"), hba, 0o600);
        }
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            data,
        };
        cluster.pg_ctl_start();
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started and caught up.
    pub fn standby_of(primary: &PrivateCluster) -> PrivateCluster {
        let dir = private_dir("standby");
        let data = dir.join("data");
        let mut backup = pg_command(is_root(), "pg_basebackup");
        backup
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-D",
            ])
            .arg(&data)
            .arg("-p")
            .arg(primary.port.to_string());
        run(&mut backup, "pg_basebackup");
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            data,
        };
        cluster.pg_ctl_start();
        cluster
    }

    fn pg_ctl_start(&self) {
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k '{}' -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut pg_ctl = pg_command(is_root(), "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(&log)
            .args(["-t", "60", "start", "-w"]);
        let ok = pg_ctl
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "the private cluster in {} did not start; log:\n{text}",
                self.dir.display()
            );
        }
    }

    /// Stops the server now (fast shutdown), as a dead host would look to clients.
    pub fn stop(&self) {
        let mut pg_ctl = pg_command(is_root(), "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = pg_ctl.status();
    }

    /// A socket-directory URL for `dbname` as `postgres` (no TLS applies to a socket).
    pub fn socket_url(&self, dbname: &str) -> String {
        format!(
            "postgresql://postgres@:{}/{dbname}?host={}",
            self.port,
            self.dir.display()
        )
    }

    /// Runs SQL as `postgres` through the socket (for setting the cluster up).
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = Command::new(pg_bin("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                sql,
            ])
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    writeln!(file, "\n{text}").expect("write postgresql.conf");
}

/// Writes a file the server (user `postgres`) owns, with `mode`.
fn write_as_postgres(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write a server file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if is_root() {
        run(Command::new("chown").arg("postgres:").arg(path), "chown");
    }
}

/// Writes a file this (test) process owns, with `mode`.
pub fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write a test file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The certificate a [`TlsCluster`] presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCert {
    /// Signed by the test CA, for `localhost` and `127.0.0.1` (subjectAltName).
    Good,
    /// Signed by the test CA, for `db.example` only.
    WrongHost,
    /// Signed by the test CA, naming `localhost` only in its CN (no subjectAltName).
    CommonNameOnly,
    /// Signed by the test CA, for the right names, but expired in 2021.
    Expired,
}

/// A test CA with its PEM and the issuer to sign with.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let pem = params.self_signed(&key).expect("self-sign the CA").pem();
    TestCa {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate and its key, in PEM.
/// The serial number of every leaf certificate; [`TlsCluster::crl_file`] revokes it (only the
/// client checks revocation, so the client certificate still logs in).
const SERVER_SERIAL: u64 = 4242;

fn leaf(ca: &TestCa, names: &[&str], common_name: &str, expired: bool) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.serial_number = Some(SERVER_SERIAL.into());
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign the leaf");
    (cert.pem(), key.serialize_pem())
}

/// A private cluster that refuses every connection without TLS (`hostnossl ... reject`) and
/// authenticates [`CERT_USER`] by client certificate; the CA, server and client certificates
/// are made when it starts. `postgres` logs in over TLS without a password.
#[derive(Debug)]
pub struct TlsCluster {
    /// The cluster.
    pub cluster: PrivateCluster,
    /// The CA that signed the server and client certificates (PEM file).
    pub ca_file: PathBuf,
    /// Another CA, which signed nothing the server has (PEM file).
    pub other_ca_file: PathBuf,
    /// A client certificate for [`CERT_USER`] (PEM file).
    pub client_cert: PathBuf,
    /// Its key, mode 0600 (PEM file).
    pub client_key: PathBuf,
    /// A revocation list of the CA that revokes the server certificate (PEM file).
    pub crl_file: PathBuf,
    /// A home directory whose `.postgresql/` holds `root.crt` (the CA), `postgresql.crt` and
    /// `postgresql.key` (the client certificate): libpq's defaults.
    pub home: PathBuf,
}

impl TlsCluster {
    /// Starts a TLS-only cluster presenting `cert`.
    pub fn start(cert: ServerCert) -> TlsCluster {
        Self::start_with(cert, true)
    }

    /// Starts a cluster presenting `cert` that also accepts TCP sessions without TLS (for
    /// measuring what TLS costs on the same server).
    pub fn start_allowing_plaintext(cert: ServerCert) -> TlsCluster {
        Self::start_with(cert, false)
    }

    fn start_with(cert: ServerCert, tls_only: bool) -> TlsCluster {
        let dir = private_dir("tls");
        let ca = test_ca("identity-migrate test CA");
        let other = test_ca("identity-migrate other CA");
        let (server_pem, server_key) = match cert {
            ServerCert::Good => leaf(&ca, &["localhost", "127.0.0.1"], "localhost", false),
            ServerCert::WrongHost => leaf(&ca, &["db.example"], "db.example", false),
            ServerCert::CommonNameOnly => leaf(&ca, &[], "localhost", false),
            ServerCert::Expired => leaf(&ca, &["localhost", "127.0.0.1"], "localhost", true),
        };
        let (client_pem, client_key) = leaf(&ca, &[], CERT_USER, false);
        write_as_postgres(&dir.join("server.crt"), &server_pem, 0o644);
        write_as_postgres(&dir.join("server.key"), &server_key, 0o600);
        write_as_postgres(&dir.join("ca.crt"), &ca.pem, 0o644);
        let home = dir.join("home");
        let client = home.join(".postgresql");
        std::fs::create_dir_all(&client).expect("client dir");
        let ca_file = client.join("root.crt");
        let other_ca_file = client.join("other-root.crt");
        let client_cert = client.join("postgresql.crt");
        let client_key_file = client.join("postgresql.key");
        write_private(&ca_file, &ca.pem, 0o644);
        write_private(&other_ca_file, &other.pem, 0o644);
        write_private(&client_cert, &client_pem, 0o644);
        write_private(&client_key_file, &client_key, 0o600);
        let crl_file = client.join("revoked.crl");
        let now = rcgen::date_time_ymd(2025, 1, 1);
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: SERVER_SERIAL.into(),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca.issuer)
        .and_then(|crl| crl.pem())
        .expect("sign the CRL");
        write_private(&crl_file, &crl, 0o644);
        let conf = format!(
            "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\nssl_ca_file = '{0}/ca.crt'\n",
            dir.display()
        );
        let plaintext = if tls_only { "reject" } else { "trust" };
        let hba = format!(
            "local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 {plaintext}\n\
             hostssl all all 127.0.0.1/32 trust\n"
        );
        let cluster = PrivateCluster::start_in(dir, &conf, Some(&hba));
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {CERT_USER} LOGIN SUPERUSER"),
        );
        cluster.psql(
            "postgres",
            &format!("SET password_encryption = 'scram-sha-256'; CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}'"),
        );
        TlsCluster {
            cluster,
            ca_file,
            other_ca_file,
            client_cert,
            client_key: client_key_file,
            crl_file,
            home,
        }
    }

    /// A URL for `dbname` on `host` (`localhost` or `127.0.0.1`) as `postgres`, with `query`
    /// (such as `sslmode=verify-full&sslrootcert=...`) appended.
    pub fn url(&self, host: &str, dbname: &str, query: &str) -> String {
        format!(
            "postgresql://postgres@{host}:{}/{dbname}?{query}",
            self.cluster.port
        )
    }

    /// Creates a database (through the socket).
    pub fn create_database(&self, dbname: &str) {
        self.cluster
            .psql("postgres", &format!("CREATE DATABASE {dbname}"));
    }
}

/// A PgBouncer in transaction pooling mode in front of `cluster`, stopped on drop.
#[derive(Debug)]
pub struct PgBouncer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// The one line a test prints when PgBouncer is not installed.
pub const PGBOUNCER_MISSING: &str =
    "pgbouncer is not installed: run `apt-get install -y pgbouncer` (see DEVELOPERS.md)";

impl PgBouncer {
    /// Starts PgBouncer in `pool_mode` (`transaction` or `session`) for every database of
    /// `cluster`, trusting every user. Panics with [`PGBOUNCER_MISSING`] when it is absent.
    pub fn start(cluster: &PrivateCluster, pool_mode: &str) -> PgBouncer {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{PGBOUNCER_MISSING}"));
        let dir = private_dir("pgbouncer");
        let port = free_port();
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {1}/users.txt\npool_mode = {pool_mode}\n\
             default_pool_size = 2\nlogfile = {1}/pgbouncer.log\nignore_startup_parameters = extra_float_digits,options\n",
            cluster.port,
            dir.display()
        );
        write_as_postgres(&dir.join("users.txt"), "\"postgres\" \"\"\n", 0o600);
        write_as_postgres(&dir.join("pgbouncer.ini"), &ini, 0o600);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = PgBouncer { port, dir, child };
        let up = wait_until(Duration::from_secs(15), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "pgbouncer did not listen on port {port}");
        bouncer
    }

    /// A URL through the pooler for `dbname` as `postgres`.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser forwards SIGTERM to pgbouncer; kill() sends SIGKILL to runuser only, so ask
        // it politely first through kill(1) with the child's own pid.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
