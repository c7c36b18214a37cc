//! What ships to the Python team and their cluster: the wheel (`pyproject.toml`, maturin with
//! `bindings = "bin"`), the helper package in it (`python/identity_migrate`), and the
//! Kubernetes manifests of `deploy/kubernetes/`.
//!
//! Cost, kept small for a 2-core CI that builds from scratch:
//!
//! - maturin (the version `pyproject.toml` pins) and PyYAML are installed once into
//!   `<target>/python/tools`, a virtualenv kept between runs and created under a file lock. If
//!   PyPI cannot be reached the test fails with one line saying so: it never skips.
//! - The wheel is built with `maturin build --profile dev` into a target directory of its own,
//!   `<target>/wheel-target`. Not the test build's: there, cargo would re-link
//!   `<target>/debug/identity-migrate` (the features of a build without dev-dependencies
//!   differ) while the other test files run that very binary. The first run compiles the
//!   dependencies once more (a few minutes on 2 cores); later runs recompile nothing.
//! - One fresh virtualenv per test process, without pip: the tools' pip installs the wheel into it with
//!   `--no-index`, which also proves the wheel needs nothing else from PyPI.

mod common;

use common::{before_head, head, parse_json, tempdir, Json, JsonExt, R1, R2};
use migrate_testkit::TestDb;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// PyYAML, for the manifest test only. maturin's pin is read from `pyproject.toml`.
const PYYAML: &str = "pyyaml==6.0.3";

/// The repository's root (`pyproject.toml`, `python/`, `deploy/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary the test build made, `<target>/<profile dir>/identity-migrate`.
fn test_build_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_identity-migrate"))
}

/// The target directory this test was built in, and cargo's name of its profile.
fn target_and_profile() -> (PathBuf, String) {
    let profile_dir = test_build_binary()
        .parent()
        .expect("the binary is in a profile directory");
    let target = profile_dir
        .parent()
        .expect("the profile directory is in the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    (target.to_path_buf(), profile)
}

/// Runs a command to completion; panics with `what` if it cannot be started.
fn run(command: &mut Command, what: &str) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"))
}

/// The last non-empty line of a process's stderr (or stdout), for one-line failures.
fn last_line(out: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_owned()
}

/// Panics with `what`, the exit status and the whole output unless the command succeeded.
#[track_caller]
fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The maturin requirement of `pyproject.toml`'s `build-system.requires` (`maturin==X.Y.Z`).
fn maturin_requirement() -> String {
    let pyproject = fs::read_to_string(repo_root().join("pyproject.toml")).expect("pyproject.toml");
    let requirement = pyproject
        .lines()
        .find_map(|l| l.trim().strip_prefix("requires = [\"maturin=="))
        .and_then(|rest| rest.split('"').next())
        .expect("pyproject.toml pins maturin exactly: requires = [\"maturin==X.Y.Z\"]");
    format!("maturin=={requirement}")
}

/// `<target>/python`: the tools, the wheel, the fresh virtualenvs.
fn python_dir() -> PathBuf {
    target_and_profile().0.join("python")
}

/// An exclusive lock on `<target>/python/tools.lock`, released when dropped.
fn lock_tools() -> File {
    let dir = python_dir();
    fs::create_dir_all(&dir).expect("create <target>/python");
    let path = dir.join("tools.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

/// The virtualenv holding maturin and PyYAML, created once and kept in the target directory.
fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let venv = python_dir().join("tools");
        let _lock = lock_tools();
        let requirements = [maturin_requirement(), PYYAML.to_owned()];
        let stamp_path = venv.join("installed.txt");
        let stamp = requirements.join("\n");
        if fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
            return venv;
        }
        if venv.exists() {
            fs::remove_dir_all(&venv).expect("remove the outdated tools virtualenv");
        }
        let out = run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 (needed to build and install the wheel)",
        );
        succeeded(out, "python3 -m venv");
        let out = run(
            Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(["--no-input", "--quiet", "--retries", "2", "--timeout", "20"])
                .args(&requirements),
            "pip",
        );
        assert!(
            out.status.success(),
            "cannot install {} from PyPI into {} (is PyPI reachable?): {}",
            requirements.join(" and "),
            venv.display(),
            last_line(&out)
        );
        fs::write(&stamp_path, stamp).expect("write the tools stamp");
        venv
    })
}

/// The wheel, built once per run into `<target>/python/wheels/`.
fn wheel() -> &'static Path {
    static WHEEL: OnceLock<PathBuf> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let tools = tools();
        let (target, profile) = target_and_profile();
        let out_dir = python_dir().join("wheels");
        let _lock = lock_tools();
        // Only this build's wheel in the directory, so that exactly one file is expected.
        if let Ok(entries) = fs::read_dir(&out_dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("identity_migrate-")
                {
                    fs::remove_file(entry.path()).expect("remove an earlier wheel");
                }
            }
        }
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let before = modified(test_build_binary());
        let out = run(
            Command::new(tools.join("bin/maturin"))
                .args(["build", "--locked", "--profile", &profile, "--out"])
                .arg(&out_dir)
                .current_dir(repo_root())
                .env("CARGO_TARGET_DIR", target.join("wheel-target")),
            "maturin",
        );
        let out = succeeded(out, "maturin build");
        // The binary the other test files run was left alone.
        assert_eq!(
            modified(test_build_binary()),
            before,
            "building the wheel rewrote {} (or another cargo command did meanwhile)",
            test_build_binary().display()
        );
        let wheels: Vec<PathBuf> = fs::read_dir(&out_dir)
            .expect("maturin's output directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "whl"))
            .collect();
        assert_eq!(
            wheels.len(),
            1,
            "one wheel: {wheels:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wheels[0].clone()
    })
}

/// A fresh virtualenv (without pip) into which the tools' pip installed the wheel, offline:
/// one per test process, `<target>/python/venv-<pid>`, shared by its tests (none changes
/// it). Those of processes that are gone are removed first.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let wheel = wheel();
        let tools = tools();
        if let (Ok(entries), true) = (fs::read_dir(python_dir()), Path::new("/proc/self").exists())
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("venv-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        let venv = python_dir().join(format!("venv-{}", std::process::id()));
        let _ = fs::remove_dir_all(&venv);
        let out = run(
            Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv),
            "python3 -m venv",
        );
        succeeded(out, "python3 -m venv --without-pip");
        let out = run(
            Command::new(tools.join("bin/python"))
                .args(["-m", "pip", "--python"])
                .arg(venv.join("bin/python"))
                .args(["install", "--disable-pip-version-check", "--no-input"])
                .args(["--no-index", "--quiet"])
                .arg(wheel),
            "pip install",
        );
        succeeded(out, "pip install --no-index <wheel>");
        venv
    })
}

/// A command in `venv` as an activated virtualenv runs it: the venv's `bin` first on `PATH`, a
/// private `HOME`, and none of the caller's database or Python variables.
fn in_venv(venv: &Path, home: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                venv.join("bin").display()
            ),
        )
        .env("VIRTUAL_ENV", venv)
        .env("HOME", home)
        .env("PYTHONNOUSERSITE", "1")
        .env("NO_COLOR", "1")
        .current_dir(home);
    c
}

/// Runs `identity-migrate ARGS` through a shell that finds it on the venv's `PATH`, with the
/// database in `DATABASE_URL`.
fn venv_binary(venv: &Path, home: &Path, url: &str, args: &[&str]) -> Output {
    run(
        in_venv(venv, home, "/bin/sh")
            .args(["-c", "exec identity-migrate \"$@\"", "sh"])
            .args(args)
            .env("DATABASE_URL", url),
        "identity-migrate from the venv",
    )
}

/// The Python start-up check run in `venv`: `check_schema(expected, database_url=$TEST_URL,
/// accept_unknown=..., binary=$TEST_BINARY or find_bin(), timeout=$TEST_TIMEOUT or 30)`, its
/// `SchemaState` as JSON, or `{"error", "exit_code"}` for a `SchemaCheckError`.
const CHECK: &str = r#"
import dataclasses, json, os, sys
import identity_migrate
try:
    state = identity_migrate.check_schema(
        sys.argv[1],
        database_url=os.environ["TEST_URL"],
        accept_unknown=sys.argv[2] == "accept",
        binary=os.environ.get("TEST_BINARY"),
        timeout=float(os.environ.get("TEST_TIMEOUT", "30")),
    )
    print(json.dumps(dataclasses.asdict(state)))
except identity_migrate.SchemaCheckError as e:
    print(json.dumps({"error": str(e), "exit_code": e.exit_code}))
"#;

/// What `check_schema(expected)` answered, as JSON.
fn check(venv: &Path, home: &Path, url: &str, expected: &str, accept_unknown: bool) -> Json {
    check_with(venv, home, url, expected, accept_unknown, &[])
}

/// [`check`] with more variables in the Python process's environment.
fn check_with(
    venv: &Path,
    home: &Path,
    url: &str,
    expected: &str,
    accept_unknown: bool,
    env: &[(&str, &str)],
) -> Json {
    let accept = if accept_unknown { "accept" } else { "refuse" };
    let out = run(
        in_venv(venv, home, venv.join("bin/python"))
            .args(["-c", CHECK, expected, accept])
            .env("TEST_URL", url)
            .envs(env.iter().copied()),
        "the Python check",
    );
    let out = succeeded(out, "the Python check");
    parse_json(&String::from_utf8_lossy(&out.stdout))
}

/// Asserts a `SchemaState`'s verdict.
#[track_caller]
fn assert_state(state: &Json, name: &str, ready: bool, expected_revision: Option<&str>) {
    assert_eq!(
        state.at("state"),
        &Json::String(name.to_owned()),
        "{state:?}"
    );
    assert_eq!(state.at("ready"), &Json::Bool(ready), "{state:?}");
    if let Some(revision) = expected_revision {
        assert_eq!(state.at("expected_revision").str(), revision, "{state:?}");
    }
}

/// The two databases, as the service's own URLs name them.
enum Database {
    Sqlite(PathBuf),
    Postgres(TestDb),
}

impl Database {
    /// SQLAlchemy's async URL forms, which the service's configuration holds.
    fn url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite+aiosqlite:///{}", path.display()),
            Database::Postgres(db) => {
                db.url()
                    .replacen("postgresql://", "postgresql+asyncpg://", 1)
            }
        }
    }

    /// Makes the database look migrated by a newer release: a revision this binary lacks.
    fn set_unknown_revision(&self) {
        let sql = "UPDATE alembic_version SET version_num = 'fedcba987654'";
        match self {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.execute_batch(sql).expect("set an unknown revision");
            }
            Database::Postgres(db) => common::execute(db, sql),
        }
    }
}

#[test]
fn the_wheel_installs_the_binary_and_the_helper_into_a_fresh_virtualenv() {
    let wheel = wheel();
    let name = wheel.file_name().expect("a file").to_string_lossy();
    let version = env!("CARGO_PKG_VERSION");
    // py3-none: any Python 3, since nothing in it is compiled against Python. The platform tag
    // is the newest glibc symbol version the binary uses (manylinux_2_34 on Debian 12).
    let prefix = format!("identity_migrate-{version}-py3-none-manylinux_2_");
    assert!(
        name.starts_with(&prefix) && name.ends_with("_x86_64.whl"),
        "{name}"
    );

    let home = tempdir();
    let venv = venv();

    // On the venv's PATH, with the crate's version.
    let out = run(
        in_venv(venv, home.path(), "/bin/sh").args([
            "-c",
            "command -v identity-migrate && identity-migrate --version",
        ]),
        "sh",
    );
    let out = succeeded(out, "identity-migrate --version from the venv");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}\nidentity-migrate {version}\n",
            venv.join("bin/identity-migrate").display()
        )
    );

    // `python -m identity_migrate` is the binary: its output, its exit codes.
    let python = venv.join("bin/python");
    let out = run(
        in_venv(venv, home.path(), &python).args(["-m", "identity_migrate", "--version"]),
        "python -m identity_migrate",
    );
    let out = succeeded(out, "python -m identity_migrate --version");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("identity-migrate {version}\n")
    );
    let out = run(
        in_venv(venv, home.path(), &python).args(["-m", "identity_migrate", "status", "--nope"]),
        "python -m identity_migrate",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // find_bin() is the venv's binary, and the package is typed.
    let out = run(
        in_venv(venv, home.path(), &python).args([
            "-c",
            "import identity_migrate, importlib.resources as r; \
             print(identity_migrate.find_bin()); \
             print(r.files('identity_migrate').joinpath('py.typed').is_file())",
        ]),
        "find_bin",
    );
    let out = succeeded(out, "find_bin()");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nTrue\n", venv.join("bin/identity-migrate").display())
    );

    // `status` from the venv on a SQLite file and on PostgreSQL: base, then head.
    let sqlite = Database::Sqlite(home.path().join("service.db"));
    let postgres = Database::Postgres(TestDb::new());
    for db in [&sqlite, &postgres] {
        let url = db.url();
        let status = |what: &str| {
            let out = venv_binary(venv, home.path(), &url, &["status", "--json"]);
            let out = succeeded(out, what);
            parse_json(&String::from_utf8_lossy(&out.stdout))
        };
        let before = status("status before migrating");
        assert_eq!(before.at("current").items(), &[] as &[Json], "{before:?}");
        assert_eq!(before.at("at_head"), &Json::Bool(false), "{before:?}");
        succeeded(
            venv_binary(venv, home.path(), &url, &["migrate"]),
            "migrate",
        );
        let after = status("status after migrating");
        assert_eq!(after.at("at_head"), &Json::Bool(true), "{after:?}");
        assert_eq!(after.at("current").items()[0].at("revision").str(), head());
    }
}

#[test]
fn find_bin_finds_the_binary_in_every_pip_layout() {
    let dir = tempdir();
    // The interpreter the tools' virtualenv was made from: pip runs with it for --user, which a
    // virtualenv refuses, and find_bin() runs with it for all three.
    let out = run(
        Command::new(tools().join("bin/python")).args([
            "-c",
            "import os, sys; v = sys.version_info; \
                 print(os.path.join(sys.base_prefix, 'bin', f'python{v[0]}.{v[1]}'))",
        ]),
        "the tools' python",
    );
    let out = succeeded(out, "the base interpreter");
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (target, prefix, user) = (
        dir.path().join("target"),
        dir.path().join("prefix"),
        dir.path().join("user"),
    );
    let layouts: [(&str, &Path); 3] = [
        ("--target", &target),
        ("--prefix", &prefix),
        ("--user", &user),
    ];
    std::thread::scope(|s| {
        for (flag, path) in layouts {
            let python = &python;
            s.spawn(move || {
                let mut pip = Command::new(tools().join("bin/python"));
                pip.args(["-m", "pip"]);
                if flag == "--user" {
                    pip.args(["--python", python, "install", flag])
                        .env("PYTHONUSERBASE", path);
                } else {
                    // The same Python version as `python`: the same layout, without --python's
                    // second start of pip.
                    pip.args(["install", flag]).arg(path);
                }
                pip.args([
                    "--disable-pip-version-check",
                    "--no-input",
                    "--no-index",
                    "--quiet",
                ])
                .arg("--root-user-action=ignore")
                .arg(wheel());
                succeeded(run(&mut pip, "pip"), &format!("pip install {flag}"));
            });
        }
    });
    let site = |root: &Path| -> PathBuf {
        let lib = root.join("lib");
        let versioned = fs::read_dir(&lib)
            .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
            .flatten()
            .next()
            .expect("lib/pythonX.Y");
        versioned.path().join("site-packages")
    };
    let cases = [
        ("PYTHONPATH", target.clone(), &target),
        ("PYTHONPATH", site(&prefix), &prefix),
        ("PYTHONUSERBASE", user.clone(), &user),
    ];
    for (variable, value, root) in cases {
        let out = run(
            Command::new(&python)
                .args([
                    "-c",
                    "import identity_migrate; print(identity_migrate.find_bin())",
                ])
                .env_clear()
                .env("HOME", dir.path())
                .env(variable, &value)
                .current_dir(dir.path()),
            "find_bin",
        );
        let out = succeeded(
            out,
            &format!("find_bin with {variable}={}", value.display()),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            root.join("bin/identity-migrate").to_string_lossy(),
            "{variable}={}",
            value.display()
        );
    }
}

/// The start-up check through one database's life: base, an old revision, head, and a
/// revision from a newer release.
fn python_check_walk(db: &Database) {
    let home = tempdir();
    let venv = venv();
    let url = db.url();
    let check = |expected: &str| check(venv, home.path(), &url, expected, true);
    let migrate = |args: &[&str]| {
        succeeded(
            venv_binary(venv, home.path(), &url, args),
            &format!("{args:?}"),
        )
    };
    let head = head();

    let state = check("head");
    assert_state(&state, "behind", false, Some(&head));
    assert_eq!(state.at("current").items(), &[] as &[Json]);
    assert_state(&check(R1), "behind", false, Some(R1));

    migrate(&["migrate-to", R2]);
    assert_state(&check(R2), "at", true, Some(R2));
    assert_state(&check(&R2[..6]), "at", true, Some(R2));
    assert_state(&check(R1), "ahead", true, Some(R1));
    assert_state(&check(&R1[..5]), "ahead", true, Some(R1));
    assert_state(&check(&head), "behind", false, Some(&head));
    let state = check("head");
    assert_state(&state, "behind", false, Some(&head));
    assert_eq!(state.at("current").items(), &[Json::String(R2.to_owned())]);

    migrate(&["migrate"]);
    assert_state(&check("head"), "at", true, Some(&head));
    assert_state(&check(&head), "at", true, Some(&head));
    assert_state(&check(&before_head()), "ahead", true, Some(&before_head()));
    assert_state(&check(R1), "ahead", true, Some(R1));
    let unknown = check("abcdef123456");
    assert!(
        unknown
            .at("error")
            .str()
            .contains("not one this identity-migrate knows"),
        "{unknown:?}"
    );

    // A newer release migrated the database: ready (a rolling deploy's older pods keep
    // starting), unless the caller refuses it.
    db.set_unknown_revision();
    for expected in ["head", R1] {
        let state = check(expected);
        assert_state(&state, "unknown", true, None);
        assert_eq!(state.at("current").items(), &[] as &[Json]);
    }
    let strict = check_with(venv, home.path(), &url, "head", false, &[]);
    assert_state(&strict, "unknown", false, None);
}

#[test]
fn python_check_on_sqlite() {
    let dir = tempdir();
    python_check_walk(&Database::Sqlite(dir.path().join("service.db")));
}

#[test]
fn python_check_on_postgres() {
    python_check_walk(&Database::Postgres(TestDb::new()));
}

#[test]
fn python_check_keeps_the_url_out_of_argv_and_output() {
    let home = tempdir();
    let venv = venv();
    let db = TestDb::new();
    // The test server trusts its clients, so a password in the URL is carried but never
    // asked for: a canary that must show up nowhere.
    let canary = "canary-pw-7f3a";
    let url = db.url().replacen("@", &format!(":{canary}@"), 1).replacen(
        "postgresql://",
        "postgresql+asyncpg://",
        1,
    );
    assert!(url.contains(&format!("postgres:{canary}@")), "{url}");
    // A wrapper that logs its arguments (what `ps` would show) and runs the real binary.
    let log = home.path().join("argv.log");
    let wrapper = home.path().join("identity-migrate-logged");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            venv.join("bin/identity-migrate").display()
        ),
    )
    .expect("write the wrapper");
    let chmod = run(Command::new("chmod").arg("755").arg(&wrapper), "chmod");
    succeeded(chmod, "chmod");
    let wrapper = wrapper.to_string_lossy().into_owned();

    for expected in ["head", R1] {
        let state = check_with(
            venv,
            home.path(),
            &url,
            expected,
            true,
            &[("TEST_BINARY", &wrapper)],
        );
        assert_state(&state, "behind", false, None);
        let text = format!("{state:?}");
        assert!(!text.contains(canary), "{text}");
        assert!(state.at("database").str().contains("***"), "{state:?}");
    }
    let argv = fs::read_to_string(&log).expect("the wrapper ran");
    assert_eq!(
        argv,
        // head: status only; R1 (not current): status, then list for its ancestry.
        "--quiet status --json\n--quiet status --json\n--quiet list --json\n"
    );
    assert!(!argv.contains(canary) && !argv.contains("://"), "{argv}");
}

#[test]
fn python_check_reports_a_server_that_is_down_or_silent() {
    let home = tempdir();
    let venv = venv();

    // Nothing listens: the binary's one-line error, its exit code 1.
    let down = closed_port();
    let url = format!("postgresql://postgres@127.0.0.1:{down}/identity");
    let state = check(venv, home.path(), &url, "head", true);
    assert_eq!(state.at("exit_code").number(), 1.0, "{state:?}");
    let error = state.at("error").str();
    assert!(
        !error.contains('\n') && !error.starts_with("error:"),
        "{error}"
    );
    assert!(error.contains(&down.to_string()), "{error}");

    // A server that accepts the connection and never answers: stopped at the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/identity");
    let state = check_with(
        venv,
        home.path(),
        &url,
        "head",
        true,
        &[("TEST_TIMEOUT", "1")],
    );
    assert_eq!(state.at("exit_code"), &Json::Null, "{state:?}");
    assert_eq!(
        state.at("error").str(),
        "identity-migrate status gave no answer within 1 s"
    );
    drop(silent);
}

/// A local TCP port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Every document of `deploy/kubernetes/*.yaml`, and every ```` ```yaml ```` block of the
/// README, parsed by PyYAML and handed over as JSON: `(manifests, readme blocks)`.
fn manifests() -> (Vec<Json>, Vec<Json>) {
    let dir = repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifest in {}", dir.display());
    let out = run(
        Command::new(tools().join("bin/python"))
            .args([
                "-c",
                "import json, re, sys, yaml\n\
                 readme = open(sys.argv[1]).read()\n\
                 blocks = re.findall(r'^```yaml\\n(.*?)^```', readme, re.S | re.M)\n\
                 docs = [d for f in sys.argv[2:] for d in yaml.safe_load_all(open(f)) if d is not None]\n\
                 print(json.dumps([docs, [yaml.safe_load(b) for b in blocks]]))",
            ])
            .arg(repo_root().join("README.md"))
            .args(&files),
        "PyYAML",
    );
    let out = succeeded(
        out,
        "parsing deploy/kubernetes/*.yaml and the README's YAML",
    );
    let parsed = parse_json(&String::from_utf8_lossy(&out.stdout));
    let [docs, blocks] = parsed.items() else {
        panic!("two lists: {parsed:?}")
    };
    (docs.items().to_vec(), blocks.items().to_vec())
}

/// Asserts that `part` says nothing `whole` does not: every member of an object is in the
/// other with a value it holds in turn, and anything else is equal.
#[track_caller]
fn assert_within(part: &Json, whole: &Json, at: &str) {
    match part {
        Json::Object(members) => {
            for (key, value) in members {
                let other =
                    member(whole, key).unwrap_or_else(|| panic!("{at}.{key}: not in the manifest"));
                assert_within(value, other, &format!("{at}.{key}"));
            }
        }
        _ => assert_eq!(part, whole, "{at}"),
    }
}

/// The member `key` of an object, if there.
fn member<'a>(value: &'a Json, key: &str) -> Option<&'a Json> {
    value.as_object().and_then(|members| members.get(key))
}

/// `command` and `args` of a container, as strings.
fn command_line(container: &Json) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|k| member(container, k))
        .flat_map(|list| list.items().iter().map(|a| a.str().to_owned()))
        .collect()
}

/// The value following `flag` on a command line.
fn flag_value<'a>(line: &'a [String], flag: &str) -> Option<&'a str> {
    let at = line.iter().position(|a| a == flag)?;
    line.get(at + 1).map(String::as_str)
}

#[test]
fn kubernetes_manifests_keep_the_url_secret_and_agree_on_the_revision() {
    let (docs, readme) = manifests();
    let of_kind =
        |kind: &str| -> Vec<&Json> { docs.iter().filter(|d| d.at("kind").str() == kind).collect() };
    let (jobs, deployments) = (of_kind("Job"), of_kind("Deployment"));
    assert_eq!(
        (jobs.len(), deployments.len()),
        (1, 1),
        "one Job, one Deployment"
    );
    let job_pod = jobs[0].at("spec").at("template").at("spec");
    let service_pod = deployments[0].at("spec").at("template").at("spec");
    assert_eq!(job_pod.at("restartPolicy").str(), "Never");

    // Every container: the URL comes from the one Secret, never from a literal, never in args.
    let mut all = Vec::new();
    for pod in [job_pod, service_pod] {
        for key in ["initContainers", "containers"] {
            all.extend(member(pod, key).map(Json::items).unwrap_or_default());
        }
    }
    assert_eq!(all.len(), 3, "migrate, wait-for-schema, service");
    for container in &all {
        let name = container.at("name").str();
        for arg in command_line(container) {
            assert!(
                !arg.contains("://") && !arg.contains("DATABASE_URL") && arg != "--database-url",
                "{name}: a database URL on the command line: {arg}"
            );
        }
        let env = container.at("env").items();
        let url = env
            .iter()
            .find(|e| e.at("name").str() == "DATABASE_URL")
            .unwrap_or_else(|| panic!("{name}: no DATABASE_URL"));
        assert!(member(url, "value").is_none(), "{name}: a literal URL");
        let secret = url.at("valueFrom").at("secretKeyRef");
        assert_eq!(
            (secret.at("name").str(), secret.at("key").str()),
            ("identity-service-database", "url"),
            "{name}"
        );
    }

    // One image for the Job, the wait and the service: "head" is the same revision in all.
    let images: Vec<&str> = all.iter().map(|c| c.at("image").str()).collect();
    assert!(images.iter().all(|i| *i == images[0]), "{images:?}");

    // The Job migrates to the revision the pods wait for.
    let migrate = command_line(&job_pod.at("containers").items()[0]);
    assert_eq!(migrate[0], "identity-migrate", "{migrate:?}");
    let migrated_to = if let Some(at) = migrate.iter().position(|a| a == "migrate-to") {
        migrate[at + 1].clone()
    } else {
        assert!(migrate.iter().any(|a| a == "migrate"), "{migrate:?}");
        "head".to_owned()
    };
    let init = service_pod.at("initContainers").items();
    assert_eq!(init.len(), 1);
    let wait = command_line(&init[0]);
    assert_eq!(wait[0], "identity-migrate", "{wait:?}");
    let at = wait
        .iter()
        .position(|a| a == "wait")
        .expect("a wait command");
    // `wait [--for REV|head] [--timeout SECS]`, nothing else (issue 13).
    let mut rest = wait[at + 1..].iter();
    while let Some(flag) = rest.next() {
        assert!(
            ["--for", "--timeout"].contains(&flag.as_str()),
            "wait takes --for and --timeout: {wait:?}"
        );
        rest.next().expect("a value after the flag");
    }
    assert_eq!(flag_value(&wait, "--for").unwrap_or("head"), migrated_to);
    let timeout: u64 = flag_value(&wait, "--timeout")
        .expect("a --timeout: a pod must not wait forever")
        .parse()
        .expect("--timeout in whole seconds");
    assert!(timeout > 0);

    // The README's YAML shows these containers as they are in the manifests. (Other YAML
    // blocks, lists of anything but containers, are not this test's business.)
    let shown: Vec<&Json> = readme
        .iter()
        .filter_map(|block| match block {
            Json::Array(items) => Some(items),
            _ => None,
        })
        .flatten()
        .filter(|item| member(item, "image").is_some())
        .collect();
    assert!(
        shown.len() >= 2,
        "the README shows the two containers as YAML"
    );
    for shown in shown {
        let name = shown.at("name").str();
        let container = all
            .iter()
            .find(|c| c.at("name").str() == name)
            .unwrap_or_else(|| panic!("README: no container {name} in deploy/kubernetes"));
        assert_within(shown, container, name);
    }
}

/// `wait_for_schema(expected, database_url=$TEST_URL, timeout=$TEST_TIMEOUT)` run in `venv`:
/// its `SchemaState` as JSON, or `{"error", "exit_code"}` for a `SchemaCheckError`.
const WAIT: &str = r#"
import dataclasses, json, os, sys
import identity_migrate
try:
    state = identity_migrate.wait_for_schema(
        sys.argv[1],
        database_url=os.environ["TEST_URL"],
        timeout=float(os.environ["TEST_TIMEOUT"]),
    )
    print(json.dumps(dataclasses.asdict(state)))
except identity_migrate.SchemaCheckError as e:
    print(json.dumps({"error": str(e), "exit_code": e.exit_code}))
"#;

#[test]
fn python_wait_for_schema_uses_the_binarys_wait() {
    let home = tempdir();
    let venv = venv();
    let db = Database::Sqlite(home.path().join("service.db"));
    let url = db.url();
    let wait = |expected: &str, timeout: &str, url: &str| -> Json {
        let out = run(
            in_venv(venv, home.path(), venv.join("bin/python"))
                .args(["-c", WAIT, expected])
                .env("TEST_URL", url)
                .env("TEST_TIMEOUT", timeout),
            "wait_for_schema",
        );
        let out = succeeded(out, "wait_for_schema");
        parse_json(&String::from_utf8_lossy(&out.stdout))
    };

    // Not created yet: behind when the timeout passes (not an error).
    let state = wait("head", "1", &url);
    assert_state(&state, "behind", false, Some(&head()));

    succeeded(
        venv_binary(venv, home.path(), &url, &["migrate-to", R2]),
        "migrate-to",
    );
    assert_state(&wait(R2, "5", &url), "at", true, Some(R2));
    assert_state(&wait(R1, "5", &url), "ahead", true, Some(R1));
    assert_state(&wait("head", "1", &url), "behind", false, Some(&head()));

    // A server that never answers: the binary's exit code 1 and its one line.
    let down = closed_port();
    let state = wait(
        "head",
        "1",
        &format!("postgresql://postgres@127.0.0.1:{down}/identity"),
    );
    assert_eq!(state.at("exit_code").number(), 1.0, "{state:?}");
    assert!(
        state
            .at("error")
            .str()
            .contains("did not accept a connection"),
        "{state:?}"
    );
}
