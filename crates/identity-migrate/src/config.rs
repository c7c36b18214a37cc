//! Where the database and the session settings come from, strongest first:
//! `--database-url`, `--env NAME` (identity-migrate.toml), `DATABASE_URL` (environment or .env),
//! the file's default environment.
//!
//! `--env` beats `DATABASE_URL` on purpose: naming an environment on the command line is a
//! deliberate choice, while a variable may linger in a shell from earlier work.

use crate::args::GlobalArgs;
use crate::error::CliError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file's name, looked up in the working directory.
pub const CONFIG_FILE: &str = "identity-migrate.toml";

/// identity-migrate.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Environment used when none is named.
    pub default_environment: Option<String>,
    /// Named environments.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// `[lint]`: rule severities by rule id.
    #[serde(default)]
    pub lint: LintSection,
}

/// `[lint]` of identity-migrate.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    /// `rule-id = "error" | "warning" | "info" | "off"`.
    #[serde(default)]
    pub rules: BTreeMap<String, String>,
}

/// One named environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The database URL (better without a password: use PGPASSWORD, ~/.pgpass or the below).
    pub database_url: Option<String>,
    /// The name of an environment variable holding the URL, so secrets stay out of the file.
    pub database_url_env: Option<String>,
    /// Database schema.
    pub schema: Option<String>,
    /// Seconds to wait for the migration lock.
    pub lock_wait: Option<u64>,
    /// Milliseconds a statement may wait for a table lock.
    pub lock_timeout: Option<u64>,
    /// Seconds one unit of work keeps retrying lost races for table locks (the lock budget).
    pub lock_budget: Option<u64>,
    /// Milliseconds a statement may run (0: no limit).
    pub statement_timeout: Option<u64>,
    /// Directory for backups.
    pub backup_dir: Option<std::path::PathBuf>,
}

/// Everything a command needs to connect, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The database URL (may hold a password: never print it, print the redacted form).
    pub database_url: Option<String>,
    /// Where the URL came from, for messages.
    pub source: &'static str,
    /// Database schema.
    pub schema: String,
    /// Lock wait budget.
    pub lock_wait: Duration,
    /// Per-statement lock timeout.
    pub lock_timeout: Duration,
    /// SQLite's wait for another writer: the lock timeout when one was given, else 5 s.
    pub busy_timeout: Duration,
    /// The lock budget (see `migrate_engine::Options::retry_budget`).
    pub lock_budget: Duration,
    /// Per-statement run time limit.
    pub statement_timeout: Option<Duration>,
    /// Directory for backups with a default name.
    pub backup_dir: PathBuf,
    /// Lint severities by rule id, from the file's `[lint.rules]` (checked by `commands::lint`).
    pub lint_rules: BTreeMap<String, String>,
}

/// Resolves the configuration from the flags, the environment and the file.
pub fn resolve(
    global: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, CliError> {
    let file = load_file(global.config.as_deref())?;
    let chosen = global
        .environment
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.default_environment.clone()));
    let environment = match (&chosen, &file) {
        (Some(name), Some(f)) => Some(f.environments.get(name).ok_or_else(|| {
            CliError::Config(format!(
                "environment {name:?} is not in {CONFIG_FILE} (it has: {})",
                f.environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
        (Some(name), None) if global.environment.is_some() => {
            return Err(CliError::Config(format!(
                "--env {name} given but there is no {CONFIG_FILE} here: create one or pass --config"
            )))
        }
        _ => None,
    };
    let env_url = |e: &Environment| -> Result<Option<String>, CliError> {
        let name = chosen.as_deref().unwrap_or_default();
        if let Some(var) = &e.database_url_env {
            return match env(var) {
                None => Err(CliError::Config(format!(
                    "environment {name:?} reads its URL from ${var}, which is not set"
                ))),
                Some(url) if url.trim().is_empty() => Err(CliError::Config(format!(
                    "environment {name:?} reads its URL from ${var}, which is set but empty: did its secret fail to mount?"
                ))),
                Some(url) => Ok(Some(url)),
            };
        }
        // An environment without a URL is a configuration mistake, not a request for the
        // embedded SQLite file.
        match &e.database_url {
            Some(url) if url.trim().is_empty() => Err(CliError::Config(format!(
                "environment {name:?} has an empty database_url: give the database URL"
            ))),
            Some(url) => Ok(Some(url.clone())),
            None => Err(CliError::Config(format!(
                "environment {name:?} names no database: set its database_url or database_url_env"
            ))),
        }
    };
    // A variable that is set but empty is a secret that failed to mount, not "nothing
    // configured": falling back to the embedded SQLite file would report a success.
    let set_but_empty = |what: &str| {
        CliError::Config(format!(
            "{what} is set but empty: give it the database URL (did a secret fail to mount?), or unset it to use the embedded SQLite default"
        ))
    };
    let (database_url, source) = if let Some(url) = &global.database_url {
        if url.trim().is_empty() {
            return Err(set_but_empty("--database-url"));
        }
        (Some(url.clone()), "--database-url")
    } else if let (Some(e), true) = (environment, global.environment.is_some()) {
        (env_url(e)?, "--env")
    } else if let Some(url) = env("DATABASE_URL") {
        if url.trim().is_empty() {
            return Err(set_but_empty("DATABASE_URL"));
        }
        (Some(url), "DATABASE_URL")
    } else if let Some(e) = environment {
        (env_url(e)?, CONFIG_FILE)
    } else {
        (None, "default")
    };
    let pick =
        |flag: Option<u64>, file: Option<u64>, default: u64| flag.or(file).unwrap_or(default);
    let lock_wait = pick(global.lock_wait, environment.and_then(|e| e.lock_wait), 60);
    let lock_timeout_given = global
        .lock_timeout
        .or_else(|| environment.and_then(|e| e.lock_timeout));
    // Short by default: while a statement waits for its lock, the service's queries queue
    // behind it, for at most this long (pgroll's default; see README, "Lock-safe execution").
    let lock_timeout = lock_timeout_given.unwrap_or(500);
    let budget_env = match env("IDENTITY_MIGRATE_LOCK_BUDGET").filter(|v| !v.is_empty()) {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            CliError::Config(format!(
                "IDENTITY_MIGRATE_LOCK_BUDGET must be a whole number of seconds, not {v:?}"
            ))
        })?),
        None => None,
    };
    let lock_budget = pick(
        global.lock_budget.or(budget_env),
        environment.and_then(|e| e.lock_budget),
        60,
    );
    let statement_timeout = pick(
        global.statement_timeout,
        environment.and_then(|e| e.statement_timeout),
        0,
    );
    Ok(Resolved {
        database_url,
        source,
        schema: global
            .schema
            .clone()
            .or_else(|| environment.and_then(|e| e.schema.clone()))
            .unwrap_or_else(|| "public".to_owned()),
        lock_wait: Duration::from_secs(lock_wait),
        lock_timeout: Duration::from_millis(lock_timeout),
        busy_timeout: Duration::from_millis(lock_timeout_given.unwrap_or(5000)),
        lock_budget: Duration::from_secs(lock_budget),
        statement_timeout: (statement_timeout > 0)
            .then(|| Duration::from_millis(statement_timeout)),
        backup_dir: global
            .backup_dir
            .clone()
            .or_else(|| environment.and_then(|e| e.backup_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(".")),
        lint_rules: file.map(|f| f.lint.rules).unwrap_or_default(),
    })
}

/// The names of the environments of the configuration file, sorted; an error when there is no
/// file or it names none.
pub fn environment_names(global: &GlobalArgs) -> Result<Vec<String>, CliError> {
    let file = load_file(global.config.as_deref())?.ok_or_else(|| {
        CliError::Config(format!(
            "no {CONFIG_FILE} here: environments are named there (or pass --config)"
        ))
    })?;
    if file.environments.is_empty() {
        return Err(CliError::Config(format!(
            "{CONFIG_FILE} names no environment: add [environments.NAME] sections"
        )));
    }
    Ok(file.environments.into_keys().collect())
}

/// The configuration of the environment `name`, as `--env NAME` would resolve it.
pub fn resolve_environment(
    global: &GlobalArgs,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, CliError> {
    let mut named = global.clone();
    named.environment = Some(name.to_owned());
    resolve(&named, env)
}

fn load_file(explicit: Option<&Path>) -> Result<Option<ConfigFile>, CliError> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_owned(),
        None => {
            let p = PathBuf::from(CONFIG_FILE);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        CliError::Config(format!("{} is not valid: {}", path.display(), e.message()))
    })?;
    // Two sources for one URL: which one wins would be a guess.
    if let Some((name, _)) = file
        .environments
        .iter()
        .find(|(_, e)| e.database_url.is_some() && e.database_url_env.is_some())
    {
        return Err(CliError::Config(format!(
            "{}: environment {name:?} sets both database_url and database_url_env: keep one",
            path.display()
        )));
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["identity-migrate"];
        argv.extend_from_slice(args);
        argv.push("status");
        crate::args::Cli::parse_from(argv).global
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, text).expect("write config");
        path
    }

    const FILE: &str = r#"
default_environment = "dev"
[environments.dev]
database_url = "postgresql:///dev"
lock_wait = 7
[environments.prod]
database_url_env = "PROD_URL"
schema = "identity"
"#;

    #[test]
    fn flag_beats_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), FILE);
        let g = global(&[
            "--database-url",
            "postgresql:///flag",
            "--config",
            cfg.to_str().expect("utf8"),
            "--env",
            "prod",
        ]);
        let r = resolve(&g, &|k| {
            (k == "DATABASE_URL").then(|| "postgresql:///envvar".to_owned())
        })
        .expect("resolve");
        assert_eq!(r.database_url.as_deref(), Some("postgresql:///flag"));
        assert_eq!(r.schema, "identity");
    }

    #[test]
    fn named_environment_beats_database_url_and_reads_its_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), FILE);
        let g = global(&["--config", cfg.to_str().expect("utf8"), "--env", "prod"]);
        let r = resolve(&g, &|k| match k {
            "DATABASE_URL" => Some("postgresql:///envvar".to_owned()),
            "PROD_URL" => Some("postgresql:///prod".to_owned()),
            _ => None,
        })
        .expect("resolve");
        assert_eq!(r.database_url.as_deref(), Some("postgresql:///prod"));
    }

    #[test]
    fn database_url_beats_the_default_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), FILE);
        let g = global(&["--config", cfg.to_str().expect("utf8")]);
        let r = resolve(&g, &|k| {
            (k == "DATABASE_URL").then(|| "postgresql:///envvar".to_owned())
        })
        .expect("resolve");
        assert_eq!(r.database_url.as_deref(), Some("postgresql:///envvar"));
        assert_eq!(r.lock_wait, Duration::from_secs(7));
        let r = resolve(&g, &|_| None).expect("resolve");
        assert_eq!(r.database_url.as_deref(), Some("postgresql:///dev"));
    }

    #[test]
    fn the_lock_budget_comes_from_the_flag_then_the_variable_then_the_file_then_60_s() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(
            dir.path(),
            "[environments.dev]\ndatabase_url = \"postgresql:///dev\"\nlock_budget = 9\n",
        );
        let cfg = cfg.to_str().expect("utf8");
        let var = |k: &str| (k == "IDENTITY_MIGRATE_LOCK_BUDGET").then(|| "12".to_owned());
        let with_flag = global(&["--config", cfg, "--env", "dev", "--lock-budget", "3"]);
        assert_eq!(
            resolve(&with_flag, &var).expect("resolve").lock_budget,
            Duration::from_secs(3)
        );
        let no_flag = global(&["--config", cfg, "--env", "dev"]);
        let r = resolve(&no_flag, &var).expect("resolve");
        assert_eq!(r.lock_budget, Duration::from_secs(12));
        let r = resolve(&no_flag, &|_| None).expect("resolve");
        assert_eq!(r.lock_budget, Duration::from_secs(9));
        // The short lock timeout by default; SQLite's wait for a writer stays 5 s.
        assert_eq!(r.lock_timeout, Duration::from_millis(500));
        assert_eq!(r.busy_timeout, Duration::from_secs(5));
        let none = global(&[]);
        assert_eq!(
            resolve(&none, &|_| None).expect("resolve").lock_budget,
            Duration::from_secs(60)
        );
        let e = resolve(&none, &|k| {
            (k == "IDENTITY_MIGRATE_LOCK_BUDGET").then(|| "soon".to_owned())
        })
        .expect_err("not a number");
        assert!(
            e.to_string().contains("IDENTITY_MIGRATE_LOCK_BUDGET"),
            "{e}"
        );
    }

    #[test]
    fn unknown_environment_and_missing_variable_are_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), FILE);
        let g = global(&["--config", cfg.to_str().expect("utf8"), "--env", "staging"]);
        let e = resolve(&g, &|_| None).expect_err("unknown env");
        assert!(e.to_string().contains("dev, prod"), "{e}");
        let g = global(&["--config", cfg.to_str().expect("utf8"), "--env", "prod"]);
        let e = resolve(&g, &|_| None).expect_err("missing var");
        assert!(e.to_string().contains("$PROD_URL"), "{e}");
    }

    #[test]
    fn empty_and_missing_urls_are_config_errors_not_the_embedded_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), FILE);
        let g = global(&["--config", cfg.to_str().expect("utf8"), "--env", "prod"]);
        let e = resolve(&g, &|k| (k == "PROD_URL").then(String::new)).expect_err("empty");
        assert!(e.to_string().contains("set but empty"), "{e}");
        let g = global(&["--config", cfg.to_str().expect("utf8")]);
        let e = resolve(&g, &|k| (k == "DATABASE_URL").then(String::new)).expect_err("empty");
        assert!(
            e.to_string().contains("DATABASE_URL is set but empty"),
            "{e}"
        );
        let cfg = write_config(
            dir.path(),
            "default_environment = \"x\"\n[environments.x]\nlock_wait = 3\n",
        );
        let g = global(&["--config", cfg.to_str().expect("utf8")]);
        let e = resolve(&g, &|_| None).expect_err("no URL");
        assert!(e.to_string().contains("names no database"), "{e}");
        let cfg = write_config(
            dir.path(),
            "[environments.x]\ndatabase_url = \"a\"\ndatabase_url_env = \"B\"\n",
        );
        let g = global(&["--config", cfg.to_str().expect("utf8")]);
        let e = resolve(&g, &|_| None).expect_err("both");
        assert!(e.to_string().contains("keep one"), "{e}");
        // Nothing configured at all: the embedded default.
        let g = global(&["--no-dotenv"]);
        assert_eq!(resolve(&g, &|_| None).expect("resolve").source, "default");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(dir.path(), "[environments.dev]\ndatabse_url = \"x\"\n");
        let g = global(&["--config", cfg.to_str().expect("utf8")]);
        let e = resolve(&g, &|_| None).expect_err("typo");
        assert!(e.to_string().contains("databse_url"), "{e}");
    }
}
