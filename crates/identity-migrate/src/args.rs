//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Database migrations of the identity service: status, plan, migrate, rollback, SQL for review.
#[derive(Debug, Parser)]
#[command(name = "identity-migrate", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database URL (postgresql://user@host:5432/db; SQLAlchemy's postgresql+asyncpg:// too).
    /// Strongest source; then --env, then DATABASE_URL, then identity-migrate.toml.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Named environment of identity-migrate.toml to use.
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// Configuration file [default: ./identity-migrate.toml when present].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not read a .env file.
    #[arg(long, global = true)]
    pub no_dotenv: bool,
    /// Database schema holding the identity tables and the tool's own [default: public].
    #[arg(long, global = true, value_name = "NAME")]
    pub schema: Option<String>,
    /// Seconds to wait for another migrator to finish [default: 60].
    #[arg(long, global = true, value_name = "SECS")]
    pub lock_wait: Option<u64>,
    /// Milliseconds one statement may wait for a table lock before it is retried
    /// [default: 500; SQLite: 5000, how long to wait for another writer].
    #[arg(long, global = true, value_name = "MS")]
    pub lock_timeout: Option<u64>,
    /// The lock budget: seconds one unit of work keeps retrying after losing races for table
    /// locks, before the run stops naming the blocker [env: IDENTITY_MIGRATE_LOCK_BUDGET]
    /// [default: 60].
    #[arg(long, global = true, value_name = "SECS")]
    pub lock_budget: Option<u64>,
    /// Milliseconds one statement may run; 0 for no limit [default: 0].
    #[arg(long, global = true, value_name = "MS")]
    pub statement_timeout: Option<u64>,
    /// More logging on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Directory for backups with a default name [default: the working directory].
    #[arg(long, global = true, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Also append the log to this file (created 0600).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Current revision(s), head(s), pending count, and whether the database is at head.
    Status(StatusArgs),
    /// Every revision, oldest first: applied, current, head, when applied and how long it took.
    #[command(alias = "history")]
    List(JsonArg),
    /// Apply every pending revision up to head.
    Migrate(MigrateArgs),
    /// Apply revisions up to REV (an id, a unique prefix, head, heads, +N, <id>+N).
    MigrateTo {
        /// The target revision.
        #[arg(value_name = "REV", allow_hyphen_values = true)]
        target: String,
        #[command(flatten)]
        run: MigrateArgs,
    },
    /// Undo revisions down to REV (an id, a unique prefix, base, -N, <id>-N).
    Rollback {
        /// The revision to roll back to (it stays applied).
        #[arg(value_name = "REV", allow_hyphen_values = true)]
        target: String,
        #[command(flatten)]
        run: MigrateArgs,
    },
    /// Write the SQL of a range of revisions for review, ready for `psql -v ON_ERROR_STOP=1 -1 -f`.
    GenerateSql(GenerateSqlArgs),
    /// Compare the live schema with what its revision says it should be (drift detection);
    /// also report pending and changed revisions. Exit 0 clean, 3 otherwise.
    Check(JsonArg),
    /// After a deployment: connectivity, server version, revision at head, `check` clean, no
    /// invalid index. Exit 0 when all hold, 3 otherwise.
    Verify(JsonArg),
    /// Write a new revision file (down revision: the current head).
    Revision {
        /// What the revision does.
        #[arg(short, long, value_name = "MESSAGE")]
        message: String,
        /// Fill the ops from the difference between the head schema and models().
        #[arg(long)]
        autogenerate: bool,
        /// Where the revision files live [default: crates/identity-schema/src/revisions].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Back up the database with pg_dump: written privately, verified, with a manifest.
    Backup(BackupArgs),
    /// Fill the empty identity tables with realistic, referentially valid data (COPY, one transaction).
    Seed {
        /// How many users (organizations: one per 100 users; sessions, MFA, logs... in proportion).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        users: u64,
        /// The random seed: the same seed gives the same data.
        #[arg(long, value_name = "N", default_value_t = 1)]
        seed: u64,
    },
    /// Restore a backup: checksums first, restored in parallel into a scratch database,
    /// checked, then swapped in atomically by renaming.
    Restore {
        /// The backup (file or directory) to restore.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Replace a database that already holds tables (it is kept, renamed
        /// <db>__before_<stamp>).
        #[arg(long)]
        yes: bool,
        /// Parallel pg_restore sessions into the scratch database.
        #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: u32,
        /// Restore in one transaction into the database itself (no CREATEDB needed, other
        /// sessions may stay connected; slower, and with --yes a safety backup is taken first).
        #[arg(long)]
        in_place: bool,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Judge revisions (or a SQL file) for the locks they take, the rewrites and scans they
    /// cause, and what they break or lose. Exit 6 when an error has no allowance.
    Lint(LintArgs),
    /// Run revisions on a scratch copy of the database and report the locks each statement
    /// took, the relations it rewrote, and how long each lock was held; the copy is dropped.
    Trace(TraceArgs),
    /// Block until the database is at REV or past it, polling without the migration lock
    /// (the service's pods waiting for the migration Job). Exit 0 ready, 5 timed out, 1 when
    /// the server never accepted a connection.
    Wait(WaitArgs),
    /// Bring one environment of identity-migrate.toml to exactly the revision another is at
    /// (staging to production): the source must be clean, the target must lack nothing the
    /// source has, and the target's verified backup is taken first.
    Promote(PromoteArgs),
    /// Print a shell completion script (revision ids included) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: ShellArg,
    },
    /// Print the man page (roff) to stdout: `identity-migrate man > identity-migrate.1`.
    Man,
}

/// `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// A revision range (A..B: after A up to B; ..B; A..; one REV), or a SQL file (`-`: stdin)
    /// [default: every revision of the chain].
    #[arg(value_name = "RANGE|FILE.sql", allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Lint what `migrate` would run on the configured database, with its live table sizes.
    #[arg(long, conflicts_with = "target")]
    pub pending: bool,
    /// The database kind to judge for [default: the configured database's; PostgreSQL when
    /// none is configured].
    #[arg(long, value_enum)]
    pub dialect: Option<DialectArg>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// `--rule ID=LEVEL`, shared by `lint` and the commands that run revisions.
#[derive(Debug, Args, Default, Clone)]
pub struct RuleArgs {
    /// Set a lint rule's severity: ID=error|warning|info|off (repeatable; beats the
    /// `[lint.rules]` of identity-migrate.toml).
    #[arg(long = "rule", value_name = "ID=LEVEL")]
    pub rule: Vec<String>,
}

/// `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The revisions to trace (A..B, ..B, A.., one REV) [default: the pending ones].
    #[arg(value_name = "RANGE")]
    pub range: Option<String>,
    /// Make the scratch copy by restoring this verified backup instead of copying the
    /// database as a template (which needs nobody else connected to it).
    #[arg(long, value_name = "PATH")]
    pub from_backup: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Exit 4 when revisions are pending (0 at head), for scripts.
    #[arg(long)]
    pub exit_code: bool,
    /// Every environment of identity-migrate.toml, in one table.
    #[arg(long)]
    pub all_environments: bool,
}

/// Options of `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The revision to wait for: an id, a unique prefix, or head.
    #[arg(long = "for", value_name = "REV", default_value = "head")]
    pub revision: String,
    /// Seconds to wait, connection attempts included, before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Options of `promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The environment whose revision is promoted (e.g. staging).
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment brought to that revision (e.g. production).
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Do not take the target's verified backup first.
    #[arg(long)]
    pub no_backup: bool,
    /// Say what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
}

/// A shell for `completions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellArg {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// `backup` and its `verify`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub verify: Option<BackupCommand>,
    /// Write here instead of identity_service_backup_YYYYMMDD_HHMMSS in the backup directory
    /// (a directory; .dump for custom, .sql for plain).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Archive format: directory (the default: one file per table, dumped in parallel),
    /// custom (one file), plain (SQL). PostgreSQL only: a SQLite backup is a copy of the file.
    #[arg(long, value_name = "FORMAT", value_parser = ["directory", "custom", "plain"])]
    pub format: Option<String>,
    /// Parallel jobs for the directory format.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// zlib level 0-9 for the custom and directory formats [default: 0, none]. Higher levels
    /// save disk (about 3x at 1) and cost CPU time that a two-core machine feels.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compress: Option<u32>,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Subcommands of `backup`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check a backup: the SHA-256 of every file and the archive's table of contents (fast);
    /// with --full also a full decode against the manifest's row counts and data digests.
    Verify {
        /// The backup to check.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Also decode the whole archive and compare every table's rows and data digest.
        #[arg(long)]
        full: bool,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Options of the commands that change the database.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Print exactly the statements that would run, in order, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run all steps in one transaction instead of one transaction per revision.
    #[arg(long)]
    pub single_transaction: bool,
    /// Go on although applied revisions changed since they were applied.
    #[arg(long)]
    pub accept_changed: bool,
    /// Create the database first if it does not exist.
    #[arg(long)]
    pub create_database: bool,
    /// Take a verified backup before the first statement; if it fails, nothing is migrated.
    #[arg(long)]
    pub backup: bool,
    /// Run although lint finds an error that the revision does not allow (each is logged).
    #[arg(long)]
    pub allow_lint_errors: bool,
    /// Machine-readable report (a dry run's plan, or the steps run), one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Options of `generate-sql`.
#[derive(Debug, Args)]
pub struct GenerateSqlArgs {
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Start here [default: the database's current revision; `base` for the whole chain].
    #[arg(long, value_name = "REV")]
    pub from: Option<String>,
    /// End here [default: head].
    #[arg(long, value_name = "REV", default_value = "head")]
    pub to: String,
    /// The SQL dialect [default: the configured database's; SQLite when none is configured].
    #[arg(long, value_enum)]
    pub dialect: Option<DialectArg>,
}

/// A SQL dialect named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialectArg {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl From<DialectArg> for migrate_core::Dialect {
    fn from(arg: DialectArg) -> Self {
        match arg {
            DialectArg::Postgres => migrate_core::Dialect::Postgres,
            DialectArg::Sqlite => migrate_core::Dialect::Sqlite,
        }
    }
}
