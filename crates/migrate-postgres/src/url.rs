//! Turns a database URL into connection settings for the `postgres` crate.
//!
//! Operators hand us URLs written for psql, SQLAlchemy or asyncpg, so the rules
//! follow libpq: the URL (its query parameters last) wins, libpq's `PG*`
//! variables fill what it omits, then the password file, then built-in
//! defaults. No error ever repeats the URL or a value taken from it, because a
//! URL with a badly encoded password can put pieces of that password anywhere.

use crate::tls::{RootCert, SslMode, TlsFileError, TlsSettings};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_PORT: u16 = 5432;

/// Searched in this order because Debian-family packages use the first two and
/// upstream builds use `/tmp`.
const SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

const EXAMPLE_URL: &str = "postgresql://user@host:5432/dbname";

/// SQLAlchemy dialect drivers whose URLs are plain libpq URLs once the suffix goes.
const SQLALCHEMY_DRIVERS: [&str; 4] = ["psycopg2", "psycopg", "asyncpg", "pg8000"];

/// Longer "schemes" are more likely pasted junk than a scheme worth quoting back.
const MAX_SHOWN_SCHEME_LEN: usize = 32;

/// Query parameters with a meaning here; anything else belongs to SQLAlchemy or
/// asyncpg (pool sizes, statement caches) and is skipped.
const KNOWN_PARAMS: [&str; 21] = [
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "connect_timeout",
    "application_name",
    "options",
    "sslmode",
    "ssl",
    "passfile",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "channel_binding",
];

/// libpq's other connection parameters: valid, with no effect on this tool's sessions.
const OTHER_LIBPQ_PARAMS: [&str; 34] = [
    "hostaddr",
    "require_auth",
    "channel_binding",
    "client_encoding",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslnegotiation",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "max_protocol_version",
    "min_protocol_version",
];

/// Parameters of the SQLAlchemy drivers (asyncpg, psycopg, pg8000) that the service's URL may
/// carry: theirs, not libpq's, and skipped here.
const DRIVER_PARAMS: [&str; 10] = [
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "statement_cache_size",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
    "command_timeout",
    "timeout",
    "server_settings",
    "direct_tls",
    "async_fallback",
];

const NO_SLASHES: &str =
    "the scheme must be followed by \"//\", as in postgresql://user@host:5432/dbname";
const BAD_IPV6: &str =
    "write an IPv6 host in brackets, optionally followed by :port, as in postgresql://user@[::1]:5432/dbname";
const STRAY_AT: &str = "an \"@\" comes after the host, so the password likely holds an unencoded special character: percent-encode it (@ as %40, / as %2F, ? as %3F)";
const NO_VALUE: &str =
    "a query parameter has no \"=\": write each one as name=value, joined with &";

/// Where the server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address (IPv6 without brackets).
    Tcp(String),
    /// A directory holding the server's `.s.PGSQL.<port>` socket file.
    Socket(PathBuf),
}

/// A password that prints as `***` in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Returns the password text; only for handing it to the driver.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Connection settings resolved from the URL, the environment and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Server to reach.
    pub host: Host,
    /// TCP port; for a socket host, the suffix of the socket file name.
    pub port: u16,
    /// Further hosts (with their ports) tried in order when the first cannot be reached or is
    /// refused (libpq's host list: `host=a,b`, `postgresql://a,b/db`).
    pub alternates: Vec<(Host, u16)>,
    /// Role to log in as.
    pub user: String,
    /// Password, if the URL, `PGPASSWORD` or the password file gave one.
    pub password: Option<Password>,
    /// Database to connect to.
    pub dbname: String,
    /// How long to wait for a connection; `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// Name the server shows for this session in `pg_stat_activity`.
    pub application_name: Option<String>,
    /// Server command-line options, such as `-c search_path=identity`.
    pub options: Option<String>,
    /// TLS: the mode and the certificate files, with libpq's meaning.
    pub tls: TlsSettings,
    /// Only a server that accepts writes will do (`target_session_attrs=read-write`).
    pub read_write_only: bool,
    /// Client-side TCP keepalives, as libpq's `keepalives*` words set them.
    pub keepalives: Keepalives,
    /// `channel_binding=require`: SCRAM must bind the login to this TLS session
    /// (`Some(false)` is `disable`; `None` is libpq's `prefer`).
    pub channel_binding: Option<bool>,
}

/// libpq's `keepalives` (on unless `0`), `keepalives_idle`, `keepalives_interval` and
/// `keepalives_count`; `None` leaves the driver's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keepalives {
    /// `keepalives=0` turns them off.
    pub disabled: bool,
    /// Idle time before the first probe.
    pub idle: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Probes lost before the connection is dead.
    pub count: Option<u32>,
}

impl ConnectionSettings {
    /// Builds a `postgres::Config` for these settings; the TLS connector comes from
    /// [`TlsSettings::client_config`] (see `migrate_postgres::connect_client`).
    pub fn to_postgres_config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        for (host, port) in self.hosts() {
            match host {
                Host::Tcp(name) => {
                    config.host(name);
                }
                Host::Socket(dir) => add_socket_host(&mut config, dir),
            }
            config.port(port);
        }
        config
            .user(&self.user)
            .dbname(&self.dbname)
            .ssl_mode(match self.effective_ssl_mode() {
                SslMode::Disable | SslMode::Allow => postgres::config::SslMode::Disable,
                SslMode::Prefer => postgres::config::SslMode::Prefer,
                _ => postgres::config::SslMode::Require,
            });
        if let Some(password) = &self.password {
            config.password(password.expose_secret());
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        config.keepalives(!self.keepalives.disabled);
        match self.channel_binding {
            Some(true) => {
                config.channel_binding(postgres::config::ChannelBinding::Require);
            }
            Some(false) => {
                config.channel_binding(postgres::config::ChannelBinding::Disable);
            }
            None => {}
        }
        if let Some(idle) = self.keepalives.idle {
            config.keepalives_idle(idle);
        }
        if let Some(interval) = self.keepalives.interval {
            config.keepalives_interval(interval);
        }
        if let Some(count) = self.keepalives.count {
            config.keepalives_retries(count);
        }
        config
    }

    /// Returns the settings as a URL safe to log: the password shows as `***`.
    pub fn redacted(&self) -> String {
        let user = encode(&self.user, b"");
        let secret = if self.password.is_some() { ":***" } else { "" };
        let db = encode(&self.dbname, b"");
        if !self.alternates.is_empty() {
            let shown: Vec<String> = self
                .hosts()
                .map(|(host, port)| match host {
                    Host::Tcp(name) if name.contains(':') => {
                        format!("[{}]:{port}", encode(name, b":"))
                    }
                    Host::Tcp(name) => format!("{}:{port}", encode(name, b"")),
                    Host::Socket(dir) => format!("{}:{port}", encode(&dir.to_string_lossy(), b"/")),
                })
                .collect();
            return format!("postgresql://{user}{secret}@{}/{db}", shown.join(","));
        }
        match &self.host {
            Host::Tcp(name) => {
                let host = if name.contains(':') {
                    format!("[{}]", encode(name, b":"))
                } else {
                    encode(name, b"")
                };
                format!("postgresql://{user}{secret}@{host}:{}/{db}", self.port)
            }
            Host::Socket(dir) => {
                let port = if self.port == DEFAULT_PORT {
                    String::new()
                } else {
                    format!(":{}", self.port)
                };
                let dir = encode(&dir.to_string_lossy(), b"/");
                format!("postgresql://{user}{secret}@{port}/{db}?host={dir}")
            }
        }
    }

    /// Returns the database name.
    pub fn database(&self) -> &str {
        &self.dbname
    }

    /// The mode in force: libpq never uses TLS over a Unix socket, whatever `sslmode` says.
    pub fn effective_ssl_mode(&self) -> SslMode {
        if self
            .hosts()
            .all(|(host, _)| matches!(host, Host::Socket(_)))
        {
            SslMode::Disable
        } else {
            self.tls.mode
        }
    }

    /// Every host with its port, in the order they are tried.
    pub fn hosts(&self) -> impl Iterator<Item = (&Host, u16)> {
        std::iter::once((&self.host, self.port))
            .chain(self.alternates.iter().map(|(host, port)| (host, *port)))
    }

    /// The host name certificates are checked against (empty for a socket).
    pub fn host_name(&self) -> &str {
        match &self.host {
            Host::Tcp(name) => name,
            Host::Socket(_) => "",
        }
    }

    /// Whether the host is this machine (a socket, `localhost` or a loopback address).
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Socket(_) => true,
            Host::Tcp(name) => {
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

#[cfg(unix)]
fn add_socket_host(config: &mut postgres::Config, dir: &Path) {
    config.host_path(dir);
}

#[cfg(not(unix))]
fn add_socket_host(config: &mut postgres::Config, dir: &Path) {
    // The driver has no sockets off Unix; handing over the path lets the
    // connect error name it instead of silently dropping the host.
    config.host(&dir.to_string_lossy());
}

/// Which input held a rejected value, so the operator knows what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The database URL (authority, path or query).
    Url,
    /// The named environment variable.
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Url => f.write_str("the database URL"),
            Origin::Env(name) => f.write_str(name),
        }
    }
}

/// Why a database URL could not become connection settings.
///
/// No variant holds the URL or a value from it, since the URL may hold a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not a PostgreSQL one.
    UnsupportedScheme {
        /// The scheme, lowercased, when it was a plain `scheme://` token.
        scheme: Option<String>,
    },
    /// A TLS file setting cannot be used (missing, unreadable, not PEM, a key others can read).
    Tls(TlsFileError),
    /// A port is not a number from 1 to 65535.
    InvalidPort {
        /// Where the port came from.
        origin: Origin,
    },
    /// A setting has a value that is not accepted.
    InvalidParameter {
        /// The setting's query-parameter name.
        name: &'static str,
        /// Where the value came from.
        origin: Origin,
    },
    /// A URL component has a broken `%XX` escape or decodes to non-UTF-8 text.
    InvalidPercentEncoding {
        /// The component, such as `password`.
        component: &'static str,
    },
    /// A host list and a port list of different lengths (libpq wants one port, or one per host).
    MultipleHosts {
        /// Where the host list came from.
        origin: Origin,
    },
    /// The URL's structure is broken.
    Malformed {
        /// What is wrong and how to fix it.
        reason: &'static str,
    },
    /// A query parameter neither libpq nor a SQLAlchemy driver knows (libpq refuses it too).
    UnknownParameter {
        /// The parameter's name, cut to 40 characters.
        name: String,
    },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::UnsupportedScheme {
                scheme: Some(scheme),
            } => write!(
                f,
                "unsupported database URL scheme \"{scheme}\": use {EXAMPLE_URL}"
            ),
            UrlError::UnsupportedScheme { scheme: None } => write!(
                f,
                "the database URL has no recognizable scheme: use {EXAMPLE_URL}"
            ),
            UrlError::Tls(e) => write!(f, "TLS setting {e}"),
            UrlError::InvalidPort { origin } => write!(
                f,
                "invalid port in {origin}: use a number from 1 to 65535, such as 5432"
            ),
            UrlError::InvalidParameter { name, origin } => {
                let hint = match *name {
                    "connect_timeout" => "use a whole number of seconds, such as 10 (0 waits forever)",
                    "ssl" => "use one of disable, allow, prefer, require, verify-ca, verify-full, true or false",
                    "sslmode" => "use one of disable, allow, prefer, require, verify-ca, verify-full",
                    "sslrootcert" => "sslrootcert=system checks the platform's CAs and requires sslmode=verify-full (as libpq 16 does)",
                    "target_session_attrs" => "use any or read-write",
                    "channel_binding" => "use disable, prefer or require",
                    "keepalives" | "keepalives_idle" | "keepalives_interval" | "keepalives_count" => {
                        "use a whole number (seconds, or 0/1 for keepalives)"
                    }
                    _ => "check its value",
                };
                write!(f, "invalid {name} in {origin}: {hint}")
            }
            UrlError::InvalidPercentEncoding { component } => write!(
                f,
                "the {component} in the database URL has invalid percent-encoding: write special characters as %XX of their UTF-8 bytes (% as %25, @ as %40)"
            ),
            UrlError::MultipleHosts { origin } => write!(
                f,
                "{origin} lists as many hosts as ports only if it gives one port per host: give one port for all hosts, or one for each"
            ),
            UrlError::Malformed { reason } => write!(f, "malformed database URL: {reason}"),
            UrlError::UnknownParameter { name } => write!(
                f,
                "unknown database URL parameter \"{name}\" (libpq refuses it too): remove it or fix its spelling"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

/// Parses `url`, taking libpq's variables (`PGHOST`, `PGUSER`, ...) from `env`.
pub fn parse(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectionSettings, UrlError> {
    parse_with(url, env, &|dir: &Path| dir.is_dir())
}

/// Parses `url`, taking libpq's variables from the process environment.
pub fn parse_with_process_env(url: &str) -> Result<ConnectionSettings, UrlError> {
    parse(url, &|name: &str| std::env::var(name).ok())
}

/// What the URL itself says; `None` means "not given" and lets the environment fill in.
#[derive(Default)]
struct UrlParts {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    connect_timeout: Option<String>,
    application_name: Option<String>,
    options: Option<String>,
    ssl: Option<(&'static str, String)>,
    passfile: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    sslcrl: Option<String>,
    target_session_attrs: Option<String>,
    keepalives: Option<String>,
    keepalives_idle: Option<String>,
    keepalives_interval: Option<String>,
    keepalives_count: Option<String>,
    channel_binding: Option<String>,
}

/// `is_dir` is injected so tests can pick which socket directories exist.
fn parse_with(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<ConnectionSettings, UrlError> {
    let parts = split_url(url)?;
    // libpq treats an empty variable like an unset one in practice.
    let var = |name: &str| env(name).filter(|value| !value.is_empty());

    let explicit_mode = match &parts.ssl {
        Some((name, value)) => Some(check_ssl(name, value, Origin::Url)?),
        None => match var("PGSSLMODE") {
            Some(value) => Some(check_ssl("sslmode", &value, Origin::Env("PGSSLMODE"))?),
            None => None,
        },
    };
    let read_write_only =
        match url_or_env(&parts.target_session_attrs, "PGTARGETSESSIONATTRS", &var) {
            None => false,
            Some((value, origin)) => match value.trim() {
                "any" => false,
                "read-write" => true,
                _ => {
                    return Err(UrlError::InvalidParameter {
                        name: "target_session_attrs",
                        origin,
                    })
                }
            },
        };
    let tls = tls_settings(&parts, explicit_mode, &var)?;
    let keepalives = keepalives_from(&parts)?;
    let channel_binding = match url_or_env(&parts.channel_binding, "PGCHANNELBINDING", &var) {
        None => None,
        Some((value, origin)) => match value.trim() {
            "prefer" => None,
            "require" => Some(true),
            "disable" => Some(false),
            _ => {
                return Err(UrlError::InvalidParameter {
                    name: "channel_binding",
                    origin,
                })
            }
        },
    };

    let (hosts, host_origin) = match (parts.host, var("PGHOST")) {
        (Some(host), _) => (hosts_from(&host), Origin::Url),
        (None, Some(host)) => (hosts_from(&host), Origin::Env("PGHOST")),
        (None, None) => (vec![Host::Socket(default_socket_dir(is_dir))], Origin::Url),
    };
    let ports = match (parts.port, var("PGPORT")) {
        (Some(port), _) => parse_ports(&port, Origin::Url)?,
        (None, Some(port)) => parse_ports(&port, Origin::Env("PGPORT"))?,
        (None, None) => vec![DEFAULT_PORT],
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(UrlError::MultipleHosts {
            origin: host_origin,
        });
    }
    let mut listed = hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| (host, ports.get(i).copied().unwrap_or(ports[0])));
    let (host, port) = listed
        .next()
        .unwrap_or((Host::Tcp("localhost".into()), DEFAULT_PORT));
    let alternates: Vec<(Host, u16)> = listed.collect();
    let user = parts
        .user
        .or_else(|| var("PGUSER"))
        .or_else(|| var("USER"))
        .or_else(|| var("LOGNAME"))
        .unwrap_or_else(|| "postgres".to_owned());
    let dbname = parts
        .dbname
        .or_else(|| var("PGDATABASE"))
        .unwrap_or_else(|| user.clone());
    let connect_timeout = match (parts.connect_timeout, var("PGCONNECT_TIMEOUT")) {
        (Some(value), _) => parse_timeout(&value, Origin::Url)?,
        (None, Some(value)) => parse_timeout(&value, Origin::Env("PGCONNECT_TIMEOUT"))?,
        (None, None) => None,
    };
    let application_name = parts.application_name.or_else(|| var("PGAPPNAME"));
    let options = parts.options.or_else(|| var("PGOPTIONS"));
    let password = match parts.password.or_else(|| var("PGPASSWORD")) {
        Some(password) => Some(password),
        None => parts
            .passfile
            .or_else(|| var("PGPASSFILE"))
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".pgpass")))
            .and_then(|file| {
                pgpass_lookup(
                    &file,
                    [&pgpass_host(&host), &port.to_string(), &dbname, &user],
                )
            }),
    };

    Ok(ConnectionSettings {
        host,
        port,
        alternates,
        user,
        password: password.map(Password),
        dbname,
        connect_timeout,
        application_name,
        options,
        tls,
        read_write_only,
        keepalives,
        channel_binding,
    })
}

fn keepalives_from(parts: &UrlParts) -> Result<Keepalives, UrlError> {
    fn number(value: &Option<String>, name: &'static str) -> Result<Option<u32>, UrlError> {
        value
            .as_deref()
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| UrlError::InvalidParameter {
                        name,
                        origin: Origin::Url,
                    })
            })
            .transpose()
    }
    let seconds = |value, name| {
        Ok::<_, UrlError>(number(value, name)?.map(|s| Duration::from_secs(s.into())))
    };
    Ok(Keepalives {
        disabled: number(&parts.keepalives, "keepalives")? == Some(0),
        idle: seconds(&parts.keepalives_idle, "keepalives_idle")?,
        interval: seconds(&parts.keepalives_interval, "keepalives_interval")?,
        count: number(&parts.keepalives_count, "keepalives_count")?,
    })
}

/// The TLS settings as libpq resolves them: URL, then `PGSSL*`, then `~/.postgresql/`.
/// A setting from the URL, else from its libpq environment variable, with where it came from
/// (an error names the place to fix).
fn url_or_env(
    given: &Option<String>,
    env: &'static str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, Origin)> {
    match given {
        Some(value) => Some((value.clone(), Origin::Url)),
        None => var(env).map(|value| (value, Origin::Env(env))),
    }
}

fn tls_settings(
    parts: &UrlParts,
    explicit_mode: Option<SslMode>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsSettings, UrlError> {
    let pick = |given: &Option<String>, env: &str| given.clone().or_else(|| var(env));
    let home_file = |name: &str| {
        var("HOME")
            .map(|home| Path::new(&home).join(".postgresql").join(name))
            .filter(|path| path.is_file())
    };
    let root_cert = match pick(&parts.sslrootcert, "PGSSLROOTCERT") {
        Some(value) if value == "system" => Some(RootCert::System),
        Some(path) => Some(RootCert::File(PathBuf::from(path))),
        None => home_file("root.crt").map(RootCert::File),
    };
    let mode = match (explicit_mode, &root_cert) {
        // libpq 16: the platform's CAs vouch for any public name, so only verify-full is safe.
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (Some(mode), Some(RootCert::System))
            if mode != SslMode::VerifyFull && mode != SslMode::Disable =>
        {
            let origin = if parts.sslrootcert.is_some() {
                Origin::Url
            } else {
                Origin::Env("PGSSLROOTCERT")
            };
            return Err(UrlError::InvalidParameter {
                name: "sslrootcert",
                origin,
            });
        }
        (Some(mode), _) => mode,
        (None, _) => SslMode::Prefer,
    };
    let client_cert = pick(&parts.sslcert, "PGSSLCERT")
        .map(PathBuf::from)
        .or_else(|| home_file("postgresql.crt"));
    // libpq looks for the default key only beside a certificate it uses.
    let client_key = pick(&parts.sslkey, "PGSSLKEY")
        .map(PathBuf::from)
        .or_else(|| {
            client_cert
                .as_ref()
                .and_then(|_| home_file("postgresql.key"))
        });
    let tls = TlsSettings {
        mode,
        root_cert,
        client_cert,
        client_key,
        crl: pick(&parts.sslcrl, "PGSSLCRL").map(PathBuf::from),
    };
    tls.check_files().map_err(UrlError::Tls)?;
    Ok(tls)
}

/// Whether `text` is a libpq keyword DSN (`host=... sslmode=...`) rather than a URL.
fn is_keyword_dsn(text: &str) -> bool {
    let text = text.trim_start();
    let key: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    !key.is_empty()
        && text[key.len()..].trim_start().starts_with('=')
        && KNOWN_PARAMS.contains(&key.as_str())
}

/// Parses libpq's `key=value` form: values may be single-quoted, with `\'` and `\\` inside.
fn split_keyword_dsn(text: &str) -> Result<UrlParts, UrlError> {
    const BAD: &str = "a keyword DSN is key=value pairs separated by spaces, with values containing spaces in single quotes";
    let mut parts = UrlParts::default();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(UrlError::Malformed { reason: BAD });
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => {
                        value.push(chars.next().ok_or(UrlError::Malformed { reason: BAD })?)
                    }
                    Some(c) => value.push(c),
                    None => return Err(UrlError::Malformed { reason: BAD }),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.push(chars.next().ok_or(UrlError::Malformed { reason: BAD })?),
                    c => value.push(c),
                }
            }
        }
        if let Some(name) = KNOWN_PARAMS.iter().copied().find(|known| *known == key) {
            set_param(&mut parts, name, non_empty(value));
        }
    }
    Ok(parts)
}

fn split_url(url: &str) -> Result<UrlParts, UrlError> {
    if is_keyword_dsn(url) {
        return split_keyword_dsn(url);
    }
    let rest = strip_scheme(url.trim())?;
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    // An "@" here means a "/" in the password cut the authority short; going on
    // would make part of the password the host, port or database name.
    if path.is_some_and(|path| path.contains('@')) {
        return Err(UrlError::Malformed { reason: STRAY_AT });
    }

    let mut parts = UrlParts::default();
    // The last "@" ends the user info, so an unencoded "@" in a password still
    // lands in the password rather than in the host.
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            parts.user = non_empty(decode(user, "user")?);
            if let Some(password) = password {
                parts.password = non_empty(decode(password, "password")?);
            }
            host_port
        }
        None => authority,
    };
    split_host_port(host_port, &mut parts)?;
    if let Some(path) = path {
        parts.dbname = non_empty(decode(path, "database name")?);
    }
    if let Some(query) = query {
        apply_query(query, &mut parts)?;
    }
    Ok(parts)
}

fn strip_scheme(url: &str) -> Result<&str, UrlError> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(UrlError::UnsupportedScheme { scheme: None });
    };
    let scheme = scheme.to_ascii_lowercase();
    match rest.strip_prefix("//") {
        Some(rest) if is_postgres_scheme(&scheme) => Ok(rest),
        Some(_) => {
            let shown = (is_scheme_token(&scheme) && scheme.len() <= MAX_SHOWN_SCHEME_LEN)
                .then_some(scheme);
            Err(UrlError::UnsupportedScheme { scheme: shown })
        }
        None if is_postgres_scheme(&scheme) => Err(UrlError::Malformed { reason: NO_SLASHES }),
        // Without "//" the text before ":" may be `user` of `user:password@host`,
        // so it is not quoted back.
        None => Err(UrlError::UnsupportedScheme { scheme: None }),
    }
}

fn is_postgres_scheme(scheme: &str) -> bool {
    let (base, driver) = match scheme.split_once('+') {
        Some((base, driver)) => (base, Some(driver)),
        None => (scheme, None),
    };
    matches!(base, "postgres" | "postgresql")
        && driver.is_none_or(|driver| SQLALCHEMY_DRIVERS.contains(&driver))
}

fn is_scheme_token(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Splits `a:1,b,[::1]:3` into the host list `a,b,::1` and the port list `1,,3`.
fn split_host_port(host_ports: &str, parts: &mut UrlParts) -> Result<(), UrlError> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for host_port in host_ports.split(',') {
        let (host, port) = split_one_host_port(host_port)?;
        hosts.push(host);
        ports.push(port);
    }
    parts.host = non_empty(hosts.join(","));
    parts.port = if ports.iter().all(String::is_empty) {
        None
    } else {
        Some(ports.join(","))
    };
    Ok(())
}

fn split_one_host_port(host_port: &str) -> Result<(String, String), UrlError> {
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(UrlError::Malformed { reason: BAD_IPV6 })?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or(UrlError::Malformed { reason: BAD_IPV6 })?,
                ),
            };
            (host, port)
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    Ok((decode(host, "host")?, port.unwrap_or_default().to_owned()))
}

/// Later parameters override the authority and earlier ones, as in libpq.
fn apply_query(query: &str, parts: &mut UrlParts) -> Result<(), UrlError> {
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = match pair.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (pair, None),
        };
        // A name holding "@" is the tail of a password whose "?" was not encoded.
        if raw_key.contains('@') {
            return Err(UrlError::Malformed { reason: STRAY_AT });
        }
        let key = decode(raw_key, "query parameter name")?;
        let Some(name) = KNOWN_PARAMS.iter().copied().find(|known| *known == key) else {
            // Accepted without a meaning here only when libpq or a SQLAlchemy driver knows it:
            // anything else is a typo (`sslmod=`) that would silently change nothing.
            if OTHER_LIBPQ_PARAMS.contains(&key.as_str()) || DRIVER_PARAMS.contains(&key.as_str()) {
                continue;
            }
            return Err(UrlError::UnknownParameter {
                name: key.chars().take(40).collect(),
            });
        };
        let raw_value = raw_value.ok_or(UrlError::Malformed { reason: NO_VALUE })?;
        let value = non_empty(decode(raw_value, name)?);
        set_param(parts, name, value);
    }
    Ok(())
}

fn set_param(parts: &mut UrlParts, name: &'static str, value: Option<String>) {
    {
        match name {
            "host" => parts.host = value,
            "port" => parts.port = value,
            "user" => parts.user = value,
            "password" => parts.password = value,
            "dbname" => parts.dbname = value,
            "connect_timeout" => parts.connect_timeout = value,
            "application_name" => parts.application_name = value,
            "options" => parts.options = value,
            "sslmode" | "ssl" => parts.ssl = value.map(|value| (name, value)),
            "sslrootcert" => parts.sslrootcert = value,
            "sslcert" => parts.sslcert = value,
            "sslkey" => parts.sslkey = value,
            "sslcrl" => parts.sslcrl = value,
            "target_session_attrs" => parts.target_session_attrs = value,
            "keepalives" => parts.keepalives = value,
            "keepalives_idle" => parts.keepalives_idle = value,
            "keepalives_interval" => parts.keepalives_interval = value,
            "keepalives_count" => parts.keepalives_count = value,
            "channel_binding" => parts.channel_binding = value,
            _ => parts.passfile = value,
        }
    }
}

fn hosts_from(list: &str) -> Vec<Host> {
    list.split(',')
        .map(|host| {
            if host.starts_with('/') {
                Host::Socket(PathBuf::from(host))
            } else if host.is_empty() {
                Host::Tcp("localhost".to_owned())
            } else {
                Host::Tcp(host.to_owned())
            }
        })
        .collect()
}

/// One port, or a comma-separated list in which an empty entry means 5432.
fn parse_ports(list: &str, origin: Origin) -> Result<Vec<u16>, UrlError> {
    list.split(',')
        .map(|port| match port.trim() {
            "" => Ok(DEFAULT_PORT),
            port => parse_port(port, origin),
        })
        .collect()
}

fn default_socket_dir(is_dir: &dyn Fn(&Path) -> bool) -> PathBuf {
    SOCKET_DIRS
        .iter()
        .map(Path::new)
        .find(|dir| is_dir(dir))
        // With none present no local server is running anyway; the first
        // candidate makes the connect error name the most common place.
        .unwrap_or(Path::new(SOCKET_DIRS[0]))
        .to_path_buf()
}

fn parse_port(port: &str, origin: Origin) -> Result<u16, UrlError> {
    port.trim()
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or(UrlError::InvalidPort { origin })
}

fn parse_timeout(value: &str, origin: Origin) -> Result<Option<Duration>, UrlError> {
    let seconds: i64 = value
        .trim()
        .parse()
        .map_err(|_| UrlError::InvalidParameter {
            name: "connect_timeout",
            origin,
        })?;
    Ok(match seconds {
        ..=0 => None,
        // libpq's minimum is 2 s and it reads 1 as 2; the same URL should wait
        // as long here as it does in psql.
        1 => Some(Duration::from_secs(2)),
        _ => u64::try_from(seconds).ok().map(Duration::from_secs),
    })
}

fn check_ssl(name: &'static str, value: &str, origin: Origin) -> Result<SslMode, UrlError> {
    if let Some(mode) = SslMode::parse(value) {
        return Ok(mode);
    }
    match value.trim().to_ascii_lowercase().as_str() {
        // asyncpg's `ssl` also takes booleans; `true` asks for TLS the way `require` does.
        "false" | "0" | "off" | "no" if name == "ssl" => Ok(SslMode::Disable),
        "true" | "1" | "on" | "yes" if name == "ssl" => Ok(SslMode::Require),
        _ => Err(UrlError::InvalidParameter { name, origin }),
    }
}

/// The host name a password-file line must match; libpq files socket
/// connections to the default directory under `localhost`.
fn pgpass_host(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        Host::Socket(dir) if SOCKET_DIRS.iter().any(|known| Path::new(known) == dir) => {
            "localhost".to_owned()
        }
        Host::Socket(dir) => dir.to_string_lossy().into_owned(),
    }
}

/// Reads the password file as libpq does: the first matching line wins, and a
/// file others can read is ignored because its secrets may already be exposed.
fn pgpass_lookup(file: &Path, wanted: [&str; 4]) -> Option<String> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "password file {} has group or world access and is ignored; permissions should be u=rw (0600) or less",
                file.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|line| pgpass_line_password(line, wanted))
}

/// Returns the password of `line` if its host, port, database and user fields
/// match `wanted`; a bare `*` matches anything and `\` escapes the next character.
fn pgpass_line_password(line: &str, wanted: [&str; 4]) -> Option<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut chars = line.chars();
    for want in wanted {
        let mut field = String::new();
        let mut escaped = false;
        loop {
            match chars.next()? {
                ':' => break,
                '\\' => {
                    field.push(chars.next()?);
                    escaped = true;
                }
                c => field.push(c),
            }
        }
        // `\*` is a literal star, so only an unescaped one is a wildcard.
        let wildcard = field == "*" && !escaped;
        if !wildcard && field != want {
            return None;
        }
    }
    let mut password = String::new();
    while let Some(c) = chars.next() {
        // A lone trailing backslash stays, as in libpq.
        let unescaped = match c {
            '\\' => chars.next().unwrap_or(c),
            _ => c,
        };
        password.push(unescaped);
    }
    non_empty(password)
}

/// libpq treats an empty value like an absent one.
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn decode(text: &str, component: &'static str) -> Result<String, UrlError> {
    let error = UrlError::InvalidPercentEncoding { component };
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let low = bytes.get(i + 2).and_then(|b| hex_value(*b));
            match (high, low) {
                (Some(high), Some(low)) => decoded.push(high << 4 | low),
                _ => return Err(error),
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| error)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes all but unreserved characters and `keep`, so the result
/// parses back to the same value.
fn encode(text: &str, keep: &[u8]) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const SECRET: &str = "s3cr3t-Pa55";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    /// Hermetic: no socket directory exists and no password file is reachable.
    fn parse_env(url: &str, pairs: &[(&str, &str)]) -> Result<ConnectionSettings, UrlError> {
        parse_with(url, &env_of(pairs), &|_: &Path| false)
    }

    fn ok(url: &str) -> ConnectionSettings {
        parse_env(url, &[]).expect("URL should parse")
    }

    fn err(url: &str, pairs: &[(&str, &str)]) -> UrlError {
        parse_env(url, pairs).expect_err("URL should be rejected")
    }

    fn tcp(name: &str) -> Host {
        Host::Tcp(name.to_owned())
    }

    fn socket(dir: &str) -> Host {
        Host::Socket(PathBuf::from(dir))
    }

    #[test]
    fn accepts_postgres_and_postgresql_schemes_in_any_case() {
        for scheme in ["postgres", "postgresql", "POSTGRESQL", "Postgres"] {
            let s = ok(&format!("{scheme}://alice@db.example:5433/identity"));
            assert_eq!(s.host, tcp("db.example"), "{scheme}");
            assert_eq!(
                (s.port, s.user.as_str(), s.database()),
                (5433, "alice", "identity")
            );
        }
    }

    #[test]
    fn strips_sqlalchemy_driver_suffix() {
        let plain = ok("postgresql://alice:pw@db.example:5433/identity");
        for base in ["postgres", "postgresql"] {
            for driver in ["psycopg2", "asyncpg", "psycopg"] {
                let url = format!("{base}+{driver}://alice:pw@db.example:5433/identity");
                assert_eq!(ok(&url), plain, "{url}");
            }
        }
    }

    #[test]
    fn rejects_other_schemes() {
        let cases = [
            ("mysql://u@h/db", Some("mysql")),
            ("sqlite:///tmp/x.db", Some("sqlite")),
            ("postgresql+foo://h/db", Some("postgresql+foo")),
            ("HTTP://h", Some("http")),
            ("not a url", None),
            ("", None),
            ("u:pw@h/db", None),
            ("://h/db", None),
            ("my sql://h/db", None),
        ];
        for (url, shown) in cases {
            match parse_env(url, &[]) {
                Err(UrlError::UnsupportedScheme { scheme }) => {
                    assert_eq!(scheme.as_deref(), shown, "{url}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(
            err("mysql://u@h/db", &[]).to_string(),
            "unsupported database URL scheme \"mysql\": use postgresql://user@host:5432/dbname"
        );
    }

    #[test]
    fn scheme_without_slashes_is_malformed() {
        assert_eq!(
            err("postgresql:identity", &[]),
            UrlError::Malformed { reason: NO_SLASHES }
        );
    }

    #[test]
    fn parses_every_url_component() {
        assert_eq!(
            ok("postgresql://alice:pw@db.example:6543/identity_service"),
            ConnectionSettings {
                host: tcp("db.example"),
                port: 6543,
                alternates: Vec::new(),
                user: "alice".into(),
                password: Some(Password::new("pw")),
                dbname: "identity_service".into(),
                connect_timeout: None,
                application_name: None,
                options: None,
                tls: TlsSettings::default(),
                read_write_only: false,
                keepalives: Keepalives::default(),
                channel_binding: None,
            }
        );
    }

    #[test]
    fn no_host_means_first_existing_socket_dir() {
        let cases: [(&[&str], &str); 4] = [
            (
                &["/var/run/postgresql", "/run/postgresql", "/tmp"],
                "/var/run/postgresql",
            ),
            (&["/run/postgresql", "/tmp"], "/run/postgresql"),
            (&["/tmp"], "/tmp"),
            (&[], "/var/run/postgresql"),
        ];
        for (existing, expected) in cases {
            let is_dir = |dir: &Path| existing.iter().any(|e| Path::new(e) == dir);
            for url in [
                "postgresql:///identity_service",
                "postgresql://alice@/identity_service",
            ] {
                let s = parse_with(url, &env_of(&[("USER", "alice")]), &is_dir).expect("parses");
                assert_eq!(s.host, socket(expected), "{url} with {existing:?}");
                assert_eq!(
                    (s.user.as_str(), s.database()),
                    ("alice", "identity_service")
                );
            }
        }
    }

    #[test]
    fn parse_checks_the_real_filesystem_for_sockets() {
        let s = parse("postgresql:///db", &env_of(&[])).expect("parses");
        let Host::Socket(dir) = s.host else {
            panic!("expected a socket host, got {:?}", s.host)
        };
        assert!(SOCKET_DIRS.iter().any(|known| Path::new(known) == dir));
    }

    #[test]
    fn host_query_parameter_is_honoured_and_wins() {
        assert_eq!(
            ok("postgresql:///db?host=/custom/sock").host,
            socket("/custom/sock")
        );
        assert_eq!(
            ok("postgresql://a/db?host=%2Fcustom").host,
            socket("/custom")
        );
        assert_eq!(ok("postgresql://a/db?host=b").host, tcp("b"));
    }

    #[test]
    fn percent_encoded_path_host_is_a_socket() {
        assert_eq!(
            ok("postgresql://%2Fvar%2Flib%2Fpg/db").host,
            socket("/var/lib/pg")
        );
    }

    #[test]
    fn pghost_fills_missing_host_but_url_wins() {
        let named = [("PGHOST", "pg.internal")];
        assert_eq!(
            parse_env("postgresql:///db", &named).expect("parses").host,
            tcp("pg.internal")
        );
        let path = [("PGHOST", "/srv/pg")];
        assert_eq!(
            parse_env("postgresql:///db", &path).expect("parses").host,
            socket("/srv/pg")
        );
        assert_eq!(
            parse_env("postgresql://url-host/db", &named)
                .expect("parses")
                .host,
            tcp("url-host")
        );
    }

    const FULL_ENV: [(&str, &str); 10] = [
        ("PGHOST", "pg.internal"),
        ("PGPORT", "6000"),
        ("PGUSER", "svc"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "idp"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("PGAPPNAME", "migrator"),
        ("PGOPTIONS", "-c search_path=identity"),
        ("PGSSLMODE", "disable"),
        ("USER", "os-user"),
    ];

    #[test]
    fn libpq_variables_fill_omitted_parts() {
        assert_eq!(
            parse_env("postgresql://", &FULL_ENV).expect("parses"),
            ConnectionSettings {
                host: tcp("pg.internal"),
                port: 6000,
                alternates: Vec::new(),
                user: "svc".into(),
                password: Some(Password::new("envpw")),
                dbname: "idp".into(),
                connect_timeout: Some(Duration::from_secs(7)),
                application_name: Some("migrator".into()),
                options: Some("-c search_path=identity".into()),
                tls: TlsSettings {
                    mode: SslMode::Disable,
                    ..TlsSettings::default()
                },
                read_write_only: false,
                keepalives: Keepalives::default(),
                channel_binding: None,
            }
        );
    }

    #[test]
    fn url_wins_over_libpq_variables() {
        let url = "postgresql://alice:urlpw@db:5433/app?connect_timeout=3&application_name=url-app&options=-c%20x%3Dy";
        assert_eq!(
            parse_env(url, &FULL_ENV).expect("parses"),
            ConnectionSettings {
                host: tcp("db"),
                port: 5433,
                alternates: Vec::new(),
                user: "alice".into(),
                password: Some(Password::new("urlpw")),
                dbname: "app".into(),
                connect_timeout: Some(Duration::from_secs(3)),
                application_name: Some("url-app".into()),
                options: Some("-c x=y".into()),
                tls: TlsSettings {
                    mode: SslMode::Disable,
                    ..TlsSettings::default()
                },
                read_write_only: false,
                keepalives: Keepalives::default(),
                channel_binding: None,
            }
        );
    }

    #[test]
    fn query_parameters_override_url_components() {
        let s = ok(
            "postgresql://alice:pw@h1:1111/db1?host=h2&port=2222&user=bob&password=pw2&dbname=db2",
        );
        assert_eq!(s.host, tcp("h2"));
        assert_eq!(
            (s.port, s.user.as_str(), s.database()),
            (2222, "bob", "db2")
        );
        assert_eq!(s.password, Some(Password::new("pw2")));
    }

    #[test]
    fn port_defaults_to_5432() {
        assert_eq!(ok("postgresql://h/db").port, 5432);
        assert_eq!(ok("postgresql://h:/db").port, 5432);
    }

    #[test]
    fn rejects_invalid_ports() {
        for url in [
            "postgresql://h:0/db",
            "postgresql://h:65536/db",
            "postgresql://h:abc/db",
            "postgresql://h:-1/db",
            "postgresql://h/db?port=x",
        ] {
            assert_eq!(
                err(url, &[]),
                UrlError::InvalidPort {
                    origin: Origin::Url
                },
                "{url}"
            );
        }
        assert_eq!(
            err("postgresql://h/db", &[("PGPORT", "54x")]),
            UrlError::InvalidPort {
                origin: Origin::Env("PGPORT")
            }
        );
    }

    #[test]
    fn default_user_is_the_os_user_and_default_dbname_the_user() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("USER", "carol"), ("LOGNAME", "x")], "carol"),
            (&[("LOGNAME", "dave")], "dave"),
            (&[("PGUSER", "svc"), ("USER", "carol")], "svc"),
            (&[], "postgres"),
        ];
        for (env, expected) in cases {
            let s = parse_env("postgresql://h", env).expect("parses");
            assert_eq!(
                (s.user.as_str(), s.database()),
                (expected, expected),
                "{env:?}"
            );
        }
    }

    fn mode_of(url: &str, env: &[(&str, &str)]) -> SslMode {
        parse_env(url, env).expect("parses").tls.mode
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_pgsslmode_fills_in() {
        assert_eq!(mode_of("postgresql://h/db", &[]), SslMode::Prefer);
        for mode in ["disable", "allow", "prefer", "require"] {
            assert_eq!(
                mode_of("postgresql://h/db", &[("PGSSLMODE", mode)]).as_str(),
                mode
            );
        }
        assert_eq!(
            err("postgresql://h/db", &[("PGSSLMODE", "bogus")]),
            UrlError::InvalidParameter {
                name: "sslmode",
                origin: Origin::Env("PGSSLMODE")
            }
        );
    }

    #[test]
    fn verify_modes_without_a_root_certificate_are_bad_input() {
        for mode in ["verify-ca", "verify-full"] {
            let error = err(&format!("postgresql://h/db?sslmode={mode}"), &[]);
            assert!(
                matches!(&error, UrlError::Tls(e) if e.setting == "sslrootcert"),
                "{error}"
            );
            assert!(error.to_string().contains("set sslrootcert"), "{error}");
        }
    }

    #[test]
    fn url_sslmode_beats_pgsslmode() {
        let env = [("PGSSLMODE", "require")];
        assert_eq!(
            mode_of("postgresql://h/db?sslmode=disable", &env),
            SslMode::Disable
        );
        assert_eq!(
            err("postgresql://h/db?sslmode=nope", &[]),
            UrlError::InvalidParameter {
                name: "sslmode",
                origin: Origin::Url
            }
        );
    }

    #[test]
    fn asyncpg_ssl_parameter_maps_like_sslmode() {
        for (value, mode) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("allow", SslMode::Allow),
            ("false", SslMode::Disable),
            ("0", SslMode::Disable),
            ("require", SslMode::Require),
            ("true", SslMode::Require),
            ("1", SslMode::Require),
        ] {
            assert_eq!(
                mode_of(&format!("postgresql+asyncpg://h/db?ssl={value}"), &[]),
                mode,
                "{value}"
            );
        }
        assert_eq!(
            err("postgresql+asyncpg://h/db?ssl=maybe", &[]),
            UrlError::InvalidParameter {
                name: "ssl",
                origin: Origin::Url
            }
        );
    }

    #[test]
    fn system_root_certificate_forces_verify_full() {
        assert_eq!(
            mode_of("postgresql://h/db?sslrootcert=system", &[]),
            SslMode::VerifyFull
        );
        assert_eq!(
            err("postgresql://h/db?sslrootcert=system&sslmode=require", &[]),
            UrlError::InvalidParameter {
                name: "sslrootcert",
                origin: Origin::Url
            }
        );
    }

    #[test]
    fn target_session_attrs_is_read_from_url_and_env() {
        assert!(!ok("postgresql://h/db").read_write_only);
        assert!(ok("postgresql://h/db?target_session_attrs=read-write").read_write_only);
        assert!(
            parse_env(
                "postgresql://h/db",
                &[("PGTARGETSESSIONATTRS", "read-write")]
            )
            .expect("parses")
            .read_write_only
        );
        assert_eq!(
            err("postgresql://h/db?target_session_attrs=primary-ish", &[]),
            UrlError::InvalidParameter {
                name: "target_session_attrs",
                origin: Origin::Url
            }
        );
    }

    #[test]
    fn sqlalchemy_and_asyncpg_only_parameters_are_ignored() {
        assert_eq!(
            ok("postgresql+asyncpg://u@h/db?prepared_statement_cache_size=0&statement_cache_size=0&command_timeout=5&target_session_attrs=any"),
            ok("postgresql://u@h/db")
        );
    }

    #[test]
    fn a_parameter_nobody_knows_is_refused() {
        for url in [
            "postgresql://u@h/db?foo=bar",
            "postgresql+asyncpg://u@h/db?sslmod=require",
            "postgresql://u@h/db?flag",
        ] {
            assert!(
                matches!(err(url, &[]), UrlError::UnknownParameter { .. }),
                "{url}"
            );
        }
    }

    #[test]
    fn known_parameter_without_value_is_malformed() {
        assert_eq!(
            err("postgresql://h/db?sslmode", &[]),
            UrlError::Malformed { reason: NO_VALUE }
        );
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let cases = [("0", None), ("-5", None), ("1", Some(2)), ("10", Some(10))];
        for (value, expected) in cases {
            let s = ok(&format!("postgresql://h/db?connect_timeout={value}"));
            assert_eq!(
                s.connect_timeout,
                expected.map(Duration::from_secs),
                "{value}"
            );
        }
        assert_eq!(
            err("postgresql://h/db?connect_timeout=soon", &[]),
            UrlError::InvalidParameter {
                name: "connect_timeout",
                origin: Origin::Url
            }
        );
        assert_eq!(
            err("postgresql://h/db", &[("PGCONNECT_TIMEOUT", "x")]),
            UrlError::InvalidParameter {
                name: "connect_timeout",
                origin: Origin::Env("PGCONNECT_TIMEOUT")
            }
        );
    }

    #[test]
    fn percent_decodes_user_password_dbname_and_host() {
        let s = ok("postgresql://al%40ice:p%40ss%3Aw%2Ford%25@h%2Dx/my%20db%C3%A9");
        assert_eq!(s.user, "al@ice");
        assert_eq!(s.password, Some(Password::new("p@ss:w/ord%")));
        assert_eq!(s.host, tcp("h-x"));
        assert_eq!(s.dbname, "my dbé");
        assert_eq!(
            s.password.map(|p| p.expose_secret().to_owned()).as_deref(),
            Some("p@ss:w/ord%")
        );
    }

    #[test]
    fn rejects_broken_percent_encoding() {
        let cases = [
            ("postgresql://u:pw%zz@h/db", "password"),
            ("postgresql://u%4@h/db", "user"),
            ("postgresql://h%/db", "host"),
            ("postgresql://h/db%ff", "database name"),
            ("postgresql://h/db?password=%G0", "password"),
        ];
        for (url, component) in cases {
            assert_eq!(
                err(url, &[]),
                UrlError::InvalidPercentEncoding { component },
                "{url}"
            );
        }
    }

    #[test]
    fn unencoded_at_sign_stays_in_the_password() {
        let s = ok("postgresql://u:p@ss@h/db");
        assert_eq!(
            (s.password, s.host),
            (Some(Password::new("p@ss")), tcp("h"))
        );
    }

    #[test]
    fn unencoded_slash_or_question_mark_in_password_is_malformed() {
        for url in ["postgresql://u:ab/cd@h/db", "postgresql://u:12?cd@h/db"] {
            assert_eq!(
                err(url, &[]),
                UrlError::Malformed { reason: STRAY_AT },
                "{url}"
            );
        }
    }

    #[test]
    fn ipv6_hosts_use_brackets() {
        let s = ok("postgresql://u@[::1]:5433/db");
        assert_eq!((s.host, s.port), (tcp("::1"), 5433));
        assert_eq!(
            ok("postgresql://[fe80::1%25eth0]/db").host,
            tcp("fe80::1%eth0")
        );
        for url in ["postgresql://[::1/db", "postgresql://[::1]x/db"] {
            assert_eq!(
                err(url, &[]),
                UrlError::Malformed { reason: BAD_IPV6 },
                "{url}"
            );
        }
    }

    #[test]
    fn host_lists_become_alternates_in_order() {
        let s = ok("postgresql://h1,h2:6000/db");
        assert_eq!((s.host.clone(), s.port), (tcp("h1"), 5432));
        assert_eq!(s.alternates, vec![(tcp("h2"), 6000)]);
        assert_eq!(s.redacted(), "postgresql://postgres@h1:5432,h2:6000/db");
        let s = ok("postgresql:///db?host=a,b,c&port=1,2,3");
        assert_eq!(s.port, 1);
        assert_eq!(s.alternates, vec![(tcp("b"), 2), (tcp("c"), 3)]);
        let s = parse_env(
            "postgresql:///db",
            &[("PGHOST", "a,/run/pg"), ("PGPORT", "7")],
        )
        .expect("parses");
        assert_eq!(
            s.alternates,
            vec![(Host::Socket(PathBuf::from("/run/pg")), 7)]
        );
        let s = ok("host=a,b port=1,2 dbname=db user=u target_session_attrs=read-write");
        assert!(s.read_write_only);
        assert_eq!(
            (s.host, s.port, s.alternates),
            (tcp("a"), 1, vec![(tcp("b"), 2)])
        );
    }

    #[test]
    fn keepalives_reach_the_driver() {
        let s = ok("postgresql://h/db?keepalives_idle=30&keepalives_interval=5&keepalives_count=4");
        let config = s.to_postgres_config();
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.get_keepalives_retries(), Some(4));
        assert!(!ok("host=h keepalives=0")
            .to_postgres_config()
            .get_keepalives());
        assert_eq!(
            err("postgresql://h/db?keepalives_idle=soon", &[]),
            UrlError::InvalidParameter {
                name: "keepalives_idle",
                origin: Origin::Url
            }
        );
    }

    #[test]
    fn host_and_port_lists_must_match() {
        assert_eq!(
            err("postgresql:///db?host=a,b,c&port=1,2", &[]),
            UrlError::MultipleHosts {
                origin: Origin::Url
            }
        );
        assert_eq!(
            err(
                "postgresql:///db",
                &[("PGHOST", "a,b"), ("PGPORT", "1,2,3")]
            ),
            UrlError::MultipleHosts {
                origin: Origin::Env("PGHOST")
            }
        );
    }

    #[test]
    fn password_never_prints() {
        let password = Password::new(SECRET);
        assert_eq!(format!("{password}"), "***");
        assert_eq!(format!("{password:?}"), "***");
        let s = ok(&format!("postgresql://u:{SECRET}@h/db"));
        assert!(!format!("{s:?}").contains(SECRET));
        assert!(!format!("{:?}", s.to_postgres_config()).contains(SECRET));
    }

    #[test]
    fn redacted_hides_the_password() {
        let s = ok(&format!("postgres://alice:{SECRET}@db.example/identity"));
        assert_eq!(
            s.redacted(),
            "postgresql://alice:***@db.example:5432/identity"
        );
        assert_eq!(
            ok("postgresql://alice@db.example/identity").redacted(),
            "postgresql://alice@db.example:5432/identity"
        );
    }

    #[test]
    fn redacted_shows_socket_hosts_as_query() {
        let s = parse_env("postgresql:///identity_service", &[("USER", "alice")]).expect("parses");
        assert_eq!(
            s.redacted(),
            "postgresql://alice@/identity_service?host=/var/run/postgresql"
        );
        let s = ok("postgresql://alice:pw@:5433/db?host=/srv/my%20pg");
        assert_eq!(
            s.redacted(),
            "postgresql://alice:***@:5433/db?host=/srv/my%20pg"
        );
    }

    #[test]
    fn redacted_encodes_special_characters_and_round_trips() {
        let s = ok("postgresql://al%40ice:pw@[::1]:6000/my%20db");
        assert_eq!(s.redacted(), "postgresql://al%40ice:***@[::1]:6000/my%20db");
        for url in [
            "postgresql://al%40ice:pw@[fe80::1%25eth0]:6000/my%20db%2Fx",
            "postgresql://bob:pw@db.example/identity",
            "postgresql://bob@:5433/db?host=/srv/p%26g",
        ] {
            let s = ok(url);
            let again = ok(&s.redacted().replace(":***@", "@"));
            assert_eq!(
                again,
                ConnectionSettings {
                    password: None,
                    ..s
                },
                "{url}"
            );
        }
    }

    #[test]
    fn database_returns_the_dbname() {
        assert_eq!(
            ok("postgresql://h/identity_service").database(),
            "identity_service"
        );
    }

    #[test]
    fn to_postgres_config_for_tcp() {
        use postgres::config::{Host as PgHost, SslMode};
        let s = ok("postgresql://alice:pw@db.example:6543/identity?connect_timeout=5&application_name=mig&options=-c%20x%3D1&sslmode=prefer");
        let config = s.to_postgres_config();
        assert_eq!(config.get_hosts(), &[PgHost::Tcp("db.example".into())]);
        assert_eq!(config.get_ports(), &[6543]);
        assert_eq!(config.get_user(), Some("alice"));
        assert_eq!(config.get_password(), Some(&b"pw"[..]));
        assert_eq!(config.get_dbname(), Some("identity"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(config.get_application_name(), Some("mig"));
        assert_eq!(config.get_options(), Some("-c x=1"));
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
    }

    #[cfg(unix)]
    #[test]
    fn to_postgres_config_for_socket() {
        use postgres::config::Host as PgHost;
        let config = ok("postgresql://alice@/db?host=/srv/pg").to_postgres_config();
        assert_eq!(
            config.get_hosts(),
            &[PgHost::Unix(PathBuf::from("/srv/pg"))]
        );
        assert_eq!(config.get_password(), None);
        assert_eq!(config.get_connect_timeout(), None);
    }

    #[test]
    fn parse_with_process_env_reads_the_url() {
        let s = parse_with_process_env(
            "postgresql://alice:pw@db.example:5433/identity?sslmode=disable",
        )
        .expect("parses");
        assert_eq!(s.host, tcp("db.example"));
        assert_eq!(
            (s.port, s.user.as_str(), s.database()),
            (5433, "alice", "identity")
        );
        assert_eq!(s.password, Some(Password::new("pw")));
    }

    #[test]
    fn errors_never_contain_the_password_and_fit_one_line() {
        let env_secret = [("PGPASSWORD", SECRET)];
        let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
            (format!("mysql://u:{SECRET}@h/db"), vec![]),
            (format!("u:{SECRET}@h/db"), vec![]),
            (SECRET.to_owned(), vec![]),
            (format!("postgresql:u:{SECRET}@h/db"), vec![]),
            (format!("postgresql://u:{SECRET}@[::1/db"), vec![]),
            ("postgresql://u:s3cr3t/Pa55@h/db".to_owned(), vec![]),
            ("postgresql://u:s3cr3t?Pa55@h/db".to_owned(), vec![]),
            (format!("postgresql://u:{SECRET}@h/db?sslmode"), vec![]),
            (format!("postgresql://u:{SECRET}@h:99999/db"), vec![]),
            (
                format!("postgresql://h/db?password={SECRET}&port=0"),
                vec![],
            ),
            (
                format!("postgresql://u:{SECRET}@h/db"),
                vec![("PGPORT", "x")],
            ),
            (
                format!("postgresql://u:{SECRET}@h/db?connect_timeout=soon"),
                vec![],
            ),
            (
                format!("postgresql://u:{SECRET}@h/db?sslmode=bogus"),
                vec![],
            ),
            (format!("postgresql://u:{SECRET}@h/db?ssl=maybe"), vec![]),
            ("postgresql://h/db".to_owned(), vec![("PGSSLMODE", "bogus")]),
            (
                "postgresql://h/db".to_owned(),
                vec![("PGCONNECT_TIMEOUT", "x")],
            ),
            (
                format!("postgresql://u:{SECRET}@h/db?sslmode=require&sslcert=/nonexistent/c.pem&sslkey=/nonexistent/k.pem"),
                vec![],
            ),
            (
                "postgresql://h/db".to_owned(),
                vec![("PGSSLMODE", "verify-full")],
            ),
            ("postgresql://u:s3cr3t%zzPa55@h/db".to_owned(), vec![]),
            (
                "postgresql://h/db?password=s3cr3t%zzPa55".to_owned(),
                vec![],
            ),
            (format!("postgresql://u%zz:{SECRET}@h/db"), vec![]),
            (format!("postgresql://u:{SECRET}@h1,h2/db?port=1,2,3"), vec![]),
            ("postgresql:///db".to_owned(), vec![("PGHOST", "a,b"), ("PGPORT", "1,2,3")]),
        ];
        let mut variants = HashSet::new();
        for (url, extra) in cases {
            let mut env = env_secret.to_vec();
            env.extend(extra);
            let error = err(&url, &env);
            variants.insert(std::mem::discriminant(&error));
            for shown in [error.to_string(), format!("{error:?}")] {
                for piece in ["s3cr3t", "Pa55"] {
                    assert!(!shown.contains(piece), "{url}: {shown}");
                }
                assert!(!shown.contains('\n'), "{url}: {shown}");
            }
        }
        assert_eq!(variants.len(), 7, "every UrlError variant is exercised");
    }

    #[cfg(unix)]
    mod pgpass {
        use super::*;
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicUsize, Ordering};

        /// A uniquely named directory under the system temp dir, removed on drop.
        struct TempDir(PathBuf);

        impl TempDir {
            fn new() -> Self {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let dir = std::env::temp_dir().join(format!(
                    "identity-migrate-url-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Self(dir)
            }

            fn file(&self, name: &str, contents: &str, mode: u32) -> String {
                let path = self.0.join(name);
                std::fs::write(&path, contents).expect("write pgpass");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .expect("chmod pgpass");
                path.to_string_lossy().into_owned()
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        const FILE: &str = "# comment:*:*:*:no\n\
            \n\
            \\*:*:*:*:literal-star\n\
            other:5432:*:alice:wrong\n\
            db.example:5432:identity:alice:right\\:pw\\\\x\r\n\
            \\:\\:1:*:*:alice:six\n\
            localhost:5432:*:*:socket-pw\n\
            /srv/pg:5432:*:*:path-pw\n\
            *:*:*:*:fallback\\\n";

        fn password(url: &str, env: &[(&str, &str)]) -> Option<String> {
            parse_env(url, env)
                .expect("parses")
                .password
                .map(|p| p.expose_secret().to_owned())
        }

        #[test]
        fn supplies_the_first_matching_line_with_escapes_and_wildcards() {
            let dir = TempDir::new();
            let file = dir.file("pgpass", FILE, 0o600);
            let env = [("PGPASSFILE", file.as_str())];
            let cases = [
                ("postgresql://alice@db.example/identity", "right:pw\\x"),
                ("postgresql://alice@[::1]:7000/any", "six"),
                ("postgresql://bob@db.example/identity", "fallback\\"),
                ("postgresql://alice@other/x", "wrong"),
            ];
            for (url, expected) in cases {
                assert_eq!(password(url, &env).as_deref(), Some(expected), "{url}");
            }
        }

        #[test]
        fn socket_connections_match_localhost_or_their_path() {
            let dir = TempDir::new();
            let file = dir.file("pgpass", FILE, 0o600);
            let env = [("PGPASSFILE", file.as_str())];
            assert_eq!(
                password("postgresql:///db", &env).as_deref(),
                Some("socket-pw")
            );
            assert_eq!(
                password("postgresql:///db?host=/srv/pg", &env).as_deref(),
                Some("path-pw")
            );
        }

        #[test]
        fn is_found_in_home_and_via_passfile_parameter() {
            let dir = TempDir::new();
            dir.file(".pgpass", "*:*:*:*:from-home\n", 0o600);
            let home = dir.0.to_string_lossy().into_owned();
            assert_eq!(
                password("postgresql://h/db", &[("HOME", &home)]).as_deref(),
                Some("from-home")
            );
            let other = dir.file("other", "*:*:*:*:from-param\n", 0o600);
            let url = format!("postgresql://h/db?passfile={other}");
            assert_eq!(
                password(&url, &[("HOME", &home)]).as_deref(),
                Some("from-param")
            );
        }

        #[test]
        fn is_not_used_when_a_password_is_given() {
            let dir = TempDir::new();
            let file = dir.file("pgpass", "*:*:*:*:from-file\n", 0o600);
            let env = [("PGPASSFILE", file.as_str())];
            assert_eq!(
                password("postgresql://u:given@h/db", &env).as_deref(),
                Some("given")
            );
            let with_env = [("PGPASSFILE", file.as_str()), ("PGPASSWORD", "from-env")];
            assert_eq!(
                password("postgresql://u@h/db", &with_env).as_deref(),
                Some("from-env")
            );
        }

        #[test]
        fn is_ignored_when_group_or_world_can_read_it() {
            let dir = TempDir::new();
            for (mode, expected) in [
                (0o600, Some("p")),
                (0o400, Some("p")),
                (0o640, None),
                (0o604, None),
            ] {
                let file = dir.file(&format!("pgpass-{mode:o}"), "*:*:*:*:p\n", mode);
                let env = [("PGPASSFILE", file.as_str())];
                assert_eq!(
                    password("postgresql://h/db", &env).as_deref(),
                    expected,
                    "{mode:o}"
                );
            }
        }
    }
}
