//! Issue 14's inputs that were accepted by accident, and the `.env` leak, as one table: each
//! case is refused with exactly one line on stderr and its exit code, changes nothing, and no
//! secret (of the URL, the `.env`, the environment) appears in stdout, stderr or the log file.

mod common;

use common::{command, command_with_dotenv, output, tempdir, Out, R1};
use migrate_testkit::{auth_server, TestDb};
use std::path::Path;
use std::process::Command;

const BAD_INPUT: i32 = 2;
const FAILURE: i32 = 1;

/// A password in a database URL.
const URL_SECRET: &str = "Url-Secret-4711";
/// A secret the service keeps in its `.env`.
const DOTENV_SECRET: &str = "Dotenv-Jwt-Secret-0815";
/// A secret in the tool's environment.
const ENV_SECRET: &str = "Env-Secret-2323";

/// One bad input: how to run it, and what the single error line must say.
struct Case {
    name: &'static str,
    code: i32,
    says: &'static str,
    /// Builds the command in the case's directory (the log file is added by the table).
    run: Box<dyn Fn(&Path) -> Command>,
    /// Whether the case may take `--log-file` (the `/dev/full` case names its own).
    log: bool,
}

fn case(
    name: &'static str,
    code: i32,
    says: &'static str,
    run: impl Fn(&Path) -> Command + 'static,
) -> Case {
    Case {
        name,
        code,
        says,
        run: Box::new(run),
        log: true,
    }
}

/// `url` with `URL_SECRET` as the password (the trust-auth test server ignores it).
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user");
    let user = user.split(':').next().unwrap_or(user);
    format!("{scheme}://{user}:{URL_SECRET}@{host}")
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite:///{}", dir.join("app.db").display())
}

#[test]
fn bad_input_is_one_line_with_its_exit_code_and_no_secret() {
    let db = TestDb::new();
    let url = with_password(&db.url());
    let wrong = auth_server().url_with_password(URL_SECRET);
    let long = "a".repeat(100_000);
    let cases = vec![
        case(".env with a syntax error", BAD_INPUT, "line 2", |dir| {
            std::fs::write(
                dir.join(".env"),
                format!("APP=identity\nDATABASE_URL='postgresql://postgres:{DOTENV_SECRET}@127.0.0.1/x\nJWT_SECRET={DOTENV_SECRET} {DOTENV_SECRET}\n"),
            )
            .expect("write .env");
            let mut c = command_with_dotenv(dir);
            c.arg("status");
            c
        }),
        case(
            "DATABASE_URL set but empty",
            BAD_INPUT,
            "DATABASE_URL is set but empty",
            |dir| {
                let mut c = command(dir);
                c.env("DATABASE_URL", "").arg("migrate");
                c
            },
        ),
        case(
            "--database-url empty",
            BAD_INPUT,
            "--database-url is set but empty",
            |dir| {
                let mut c = command(dir);
                c.args(["--database-url", " ", "migrate"]);
                c
            },
        ),
        case(
            "database_url_env names an empty variable",
            BAD_INPUT,
            "set but empty",
            |dir| {
                std::fs::write(
                    dir.join("identity-migrate.toml"),
                    "[environments.prod]\ndatabase_url_env = \"PROD_URL\"\n",
                )
                .expect("write the config");
                let mut c = command(dir);
                c.env("PROD_URL", "").args(["--env", "prod", "migrate"]);
                c
            },
        ),
        case(
            "database_url and database_url_env both set",
            BAD_INPUT,
            "both database_url and database_url_env",
            |dir| {
                std::fs::write(
                dir.join("identity-migrate.toml"),
                format!("[environments.prod]\ndatabase_url = \"postgresql://u:{URL_SECRET}@h/db\"\ndatabase_url_env = \"PROD_URL\"\n"),
            )
            .expect("write the config");
                let mut c = command(dir);
                c.args(["--env", "prod", "status"]);
                c
            },
        ),
        case("an unknown URL parameter", BAD_INPUT, "\"foo\"", {
            let url = format!("{url}?foo=bar");
            move |dir| {
                let mut c = command(dir);
                c.args(["--database-url", &url, "status"]);
                c
            }
        }),
        case(
            "a revision id with a trailing space",
            BAD_INPUT,
            "white space",
            |dir| {
                let mut c = command(dir);
                c.args([
                    "--database-url",
                    &sqlite_url(dir),
                    "migrate-to",
                    &format!("{R1} "),
                ]);
                c
            },
        ),
        case("backup --jobs 0", BAD_INPUT, "--jobs", {
            let url = url.clone();
            move |dir| {
                let mut c = command(dir);
                c.args(["--database-url", &url, "backup", "--jobs", "0"]);
                c
            }
        }),
        case(
            "migrate-to a revision below the current one",
            BAD_INPUT,
            "rollback",
            |dir| {
                let db = sqlite_url(dir);
                let done = output(command(dir).args(["--database-url", &db, "migrate"]));
                assert_eq!(done.code, 0, "{done}");
                let mut c = command(dir);
                c.args(["--database-url", &db, "migrate-to", R1]);
                c
            },
        ),
        case("a 100,000-character revision", BAD_INPUT, "characters)", {
            let long = long.clone();
            move |dir| {
                let mut c = command(dir);
                c.args(["--database-url", &sqlite_url(dir), "migrate-to", &long]);
                c
            }
        }),
        case(
            "a 100,000-character option",
            BAD_INPUT,
            "characters)",
            move |dir| {
                let mut c = command(dir);
                c.args([&format!("--{long}"), "status"]);
                c
            },
        ),
        case(
            "a --schema that does not exist",
            BAD_INPUT,
            "\"no_such_schema\"",
            {
                let url = url.clone();
                move |dir| {
                    let mut c = command(dir);
                    c.args([
                        "--database-url",
                        &url,
                        "--schema",
                        "no_such_schema",
                        "migrate",
                    ]);
                    c
                }
            },
        ),
        case(
            "generate-sql with a wrong password",
            FAILURE,
            "refused the login",
            move |dir| {
                let mut c = command(dir);
                c.args(["--database-url", &wrong, "generate-sql"]);
                c
            },
        ),
        Case {
            log: false,
            ..case(
                "--log-file /dev/full",
                BAD_INPUT,
                "cannot write log file /dev/full",
                {
                    let url = url.clone();
                    move |dir| {
                        let mut c = command(dir);
                        c.args(["--database-url", &url, "--log-file", "/dev/full", "status"]);
                        c
                    }
                },
            )
        },
    ];
    let before = relations(&db);
    for case in &cases {
        let dir = tempdir();
        let log = dir.path().join("tool.log");
        let mut c = (case.run)(dir.path());
        c.env("JWT_SECRET", ENV_SECRET);
        if case.log {
            // Global options go anywhere on the line.
            c.arg("--log-file").arg(&log).arg("-v");
        }
        let out = output(&mut c);
        let line = one_error_line(case.name, &out, case.code);
        assert!(
            line.contains(case.says),
            "{}: the line must say {:?}:\n{out}",
            case.name,
            case.says
        );
        assert!(line.len() < 1000, "{}: a short line:\n{out}", case.name);
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        for secret in [URL_SECRET, DOTENV_SECRET, ENV_SECRET] {
            assert!(
                !out.all().contains(secret) && !logged.contains(secret),
                "{}: {secret} leaked:\n{out}\n--- log\n{logged}",
                case.name
            );
        }
        assert!(
            !dir.path().join("identity_service.db").exists(),
            "{}: no throwaway database was created",
            case.name
        );
    }
    assert_eq!(relations(&db), before, "nothing changed in the database");
}

/// The single `error: ` line of a refused run (the `-v` debug lines aside).
#[track_caller]
fn one_error_line(name: &str, out: &Out, code: i32) -> String {
    assert_eq!(out.code, code, "{name}: exit code:\n{out}");
    assert!(!out.all().contains("panicked"), "{name}: panic:\n{out}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("debug: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{name}: exactly one line on stderr:\n{out}"
    );
    assert!(errors[0].starts_with("error: "), "{name}:\n{out}");
    errors[0].to_owned()
}

fn relations(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' ORDER BY 1",
            &[],
        )
        .expect("list relations")
        .iter()
        .map(|r| r.get(0))
        .collect()
}
