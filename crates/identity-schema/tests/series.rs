//! The series after `68d314520251` on a real PostgreSQL server, through the real engine and
//! driver: every row and every value survives the upgrade under the model's names and comes
//! back under the old ones on the downgrade; bad data is refused, named, before anything
//! changes; at head a plain-SQL writer gets the values the service's ORM reads back as its own.
//!
//! The round trip seeds `IDENTITY_SERIES_USERS` users (default 2,000; BENCHMARKS.md records a
//! run at 100,000) and prints how long each direction took.
#![allow(clippy::unwrap_used)]

use identity_schema::graph;
use identity_schema::revisions::r3ffba08b0d3f_align_with_the_service_models::{added, RENAMES};
use migrate_core::render::schema_at;
use migrate_core::{DefaultExpr, RevisionGraph, Schema, TableName};
use migrate_engine::{Engine, EngineError, Intent, Options, RunIdentity};
use migrate_postgres::PostgresDriver;
use migrate_testkit::{describe_schema, TestDb};
use postgres::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const ENHANCED: &str = "68d314520251";

fn head(graph: &RevisionGraph) -> String {
    graph.heads()[0].to_owned()
}

/// Runs an intent with a new engine (its own connection), as the command-line tool would.
fn run(db: &TestDb, graph: &RevisionGraph, intent: Intent) -> Result<(), EngineError> {
    let settings =
        migrate_postgres::url::parse_with_process_env(&db.url()).expect("the test URL parses");
    let driver = PostgresDriver::connect(&settings, Default::default()).expect("connect");
    let options = Options::new(RunIdentity {
        os_user: "t".into(),
        host: "t".into(),
        tool_version: "0".into(),
    });
    Engine::new(Box::new(driver), graph, options)
        .run(&intent, &mut |_| {})
        .map(|_| ())
}

fn up(db: &TestDb, graph: &RevisionGraph, target: &str) -> Result<(), EngineError> {
    run(db, graph, Intent::Upgrade(target.to_owned()))
}

fn down(db: &TestDb, graph: &RevisionGraph, target: &str) -> Result<(), EngineError> {
    run(db, graph, Intent::Downgrade(target.to_owned()))
}

/// A database at `68d314520251` whose sessions (the engine's included) use a time zone that is
/// not UTC: a default or trigger that relied on the session's zone instead of saying UTC would
/// be four or five hours off, and the assertions below would see it.
fn database_at_enhanced(graph: &RevisionGraph) -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET timezone TO 'America/New_York'",
            db.name()
        ))
        .unwrap();
    up(&db, graph, ENHANCED).expect("upgrade to 68d314520251");
    db
}

fn versions(client: &mut Client) -> Vec<String> {
    client
        .query(
            "SELECT version_num::text FROM alembic_version ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The schema model at `68d314520251`: its tables and their columns, by their names there.
fn enhanced_model(graph: &RevisionGraph) -> Schema {
    let ids: BTreeSet<String> = ["974799e38366", ENHANCED]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    schema_at(graph, &ids).unwrap()
}

/// Where a table of `68d314520251` is at head.
fn table_at_head(table: &str) -> String {
    if table.ends_with("_simple") {
        format!("legacy_{table}")
    } else {
        table.to_owned()
    }
}

/// The name at head of a column of `68d314520251`.
fn column_at_head<'a>(table: &str, column: &'a str) -> &'a str {
    RENAMES
        .iter()
        .find(|(t, from, _)| *t == table && *from == column)
        .map_or(column, |(_, _, to)| to)
}

/// Which names a digest reads the tables and columns of `68d314520251` by.
#[derive(Clone, Copy, PartialEq)]
enum Names {
    Enhanced,
    Head,
}

/// One md5 per column of every table of `68d314520251`, over every row's text in id order,
/// keyed by the column's name there: the same value under another name digests the same.
///
/// Every column keeps its type at head or takes a wider text (`varchar` to a longer `varchar` or
/// `text`, which keep the text), except `session_id`, read as text on both sides: the canonical
/// UUID text the seed writes is what `uuid::text` prints.
fn column_digests(client: &mut Client, model: &Schema, names: Names) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for table in model.tables.values() {
        let name = &table.name.name;
        let (t, at_head) = match names {
            Names::Enhanced => (name.clone(), false),
            Names::Head => (table_at_head(name), true),
        };
        for c in &table.columns {
            let column = if at_head {
                column_at_head(name, &c.name)
            } else {
                c.name.as_str()
            };
            let col = migrate_core::render::quote_ident(column);
            let sql = format!(
                "SELECT md5(string_agg(coalesce({col}::text, 'NULL'), ',' ORDER BY id)) FROM {t}"
            );
            let sum: Option<String> = client.query_one(&sql, &[]).unwrap().get(0);
            out.insert(format!("{name}.{}", c.name), sum.unwrap_or_default());
        }
    }
    out
}

/// One md5 per table over every row's whole text, in id order, its columns in the model's
/// order (an online type change moves a column to the end of its table).
fn row_digests(client: &mut Client, model: &Schema) -> BTreeMap<String, String> {
    model
        .tables
        .iter()
        .map(|(t, table)| {
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|c| format!("t.{}", migrate_core::render::quote_ident(&c.name)))
                .collect();
            let sql = format!(
                "SELECT md5(string_agg(ROW({})::text, '' ORDER BY id)) FROM {} t",
                columns.join(", "),
                t.name
            );
            let sum: Option<String> = client.query_one(&sql, &[]).unwrap().get(0);
            (t.name.clone(), sum.unwrap_or_default())
        })
        .collect()
}

fn counts(client: &mut Client, model: &Schema, names: Names) -> BTreeMap<String, i64> {
    model
        .tables
        .keys()
        .map(|t| {
            let name = match names {
                Names::Enhanced => t.name.clone(),
                Names::Head => table_at_head(&t.name),
            };
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .unwrap()
                .get(0);
            (t.name.clone(), n)
        })
        .collect()
}

/// Asserts two maps are equal, naming only the entries that differ.
fn assert_same<V: PartialEq + std::fmt::Debug>(
    after: &BTreeMap<String, V>,
    before: &BTreeMap<String, V>,
    what: &str,
) {
    let differing: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(differing.is_empty(), "{what} differ for {differing:?}");
}

/// Everything a refused upgrade must leave as it found: schema, version, every row.
#[derive(Debug, PartialEq)]
struct State {
    schema: String,
    versions: Vec<String>,
    rows: BTreeMap<String, String>,
}

fn state(db: &TestDb, model: &Schema) -> State {
    let mut client = db.client();
    State {
        schema: describe_schema(&mut client, &["public"]),
        versions: versions(&mut client),
        rows: row_digests(&mut client, model),
    }
}

/// Edge rows the seed does not write, all valid: mixed-case emails that do not collide, IPv4,
/// IPv6, IPv4-mapped and network addresses, microseconds, `infinity`, a DST-gap local time,
/// JSON spelled with spaces and keys out of order (json keeps its text), an upper-case session
/// id, and rows in the two leftover tables (one with an address that is not one: the leftovers
/// keep their types and get no CHECK, so it must not be refused).
const EDGE_ROWS: &str = "
INSERT INTO users (id, email, username, password_hash, language_code, timezone, theme_preference,
    notification_preferences, privacy_settings, status, is_verified, is_active,
    failed_login_attempts, locked_until, last_login_at, last_login_ip, created_at, updated_at)
VALUES
    ('e0000000-0000-4000-8000-000000000001', 'Mixed.Case@Example.COM', 'MixedCase', 'h', 'en',
     'UTC', 'dark', '{\"email\": true}', '{\"b\":1,  \"a\":[1,2]}', 'active', true, true, 0,
     'infinity', '2024-06-01 12:34:56.789012', '2001:db8::1', '1999-12-31 23:59:59.999999',
     '2024-03-10 02:30:00'),
    ('e0000000-0000-4000-8000-000000000002', 'ANOTHER.one@EXAMPLE.org', NULL, 'h', 'fr',
     'Europe/Paris', 'light', '{}', '{}', 'pending_verification', false, true, 3, NULL, NULL,
     '192.0.2.1', '2024-10-27 01:30:00', '2024-10-27 01:30:00');
INSERT INTO user_sessions (id, user_id, session_token_hash, refresh_token_hash, device_info,
    ip_address, location_info, is_active, expires_at, last_accessed_at, created_at)
VALUES
    ('e0000000-0000-4000-8000-000000000011', 'e0000000-0000-4000-8000-000000000001', 'edge-s1',
     NULL, '{}', '::ffff:192.0.2.128', '{\"city\": \"Zürich\"}', true, '2030-01-01 00:00:00',
     '2024-01-01 00:00:00.5', '2024-01-01 00:00:00'),
    ('e0000000-0000-4000-8000-000000000012', 'e0000000-0000-4000-8000-000000000001', 'edge-s2',
     'edge-r2', '{}', '198.51.100.0/24', '{}', false, '2030-01-01 00:00:00',
     '2024-01-01 00:00:00', '2024-01-01 00:00:00');
INSERT INTO user_activity_logs (id, user_id, action, details, ip_address, session_id,
    \"timestamp\")
VALUES
    ('e0000000-0000-4000-8000-000000000021', 'e0000000-0000-4000-8000-000000000001', 'login',
     '{\"nested\": {\"k\": [1, {\"x\": null}]}, \"a\": \"\\u00e9\"}', '203.0.113.7',
     'e0000000-0000-4000-8000-000000000011', '2024-02-29 23:59:59.999999');
INSERT INTO user_activities_simple (id, user_id, activity_type, ip_address, created_at)
VALUES
    ('e0000000-0000-4000-8000-000000000031', 'e0000000-0000-4000-8000-0000000000ff', 'old',
     'unknown', '2020-01-01 00:00:00');
INSERT INTO user_sessions_simple (id, user_id, session_token, refresh_token, ip_address,
    expires_at)
VALUES
    ('e0000000-0000-4000-8000-000000000041', 'e0000000-0000-4000-8000-0000000000ff', 'old-s',
     'old-r', '10.0.0.1', '2020-01-01 00:00:00');
";

/// How many users the round trip seeds.
fn round_trip_users() -> u64 {
    std::env::var("IDENTITY_SERIES_USERS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn upgrade_to_head_keeps_every_row_and_the_downgrade_gives_them_back() {
    let graph = graph();
    let model = enhanced_model(&graph);
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    let users = round_trip_users();
    let started = Instant::now();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(users), 7).expect("seed");
    let seeded = started.elapsed();
    client.batch_execute(EDGE_ROWS).unwrap();

    let schema_before = describe_schema(&mut client, &["public"]);
    let counts_before = counts(&mut client, &model, Names::Enhanced);
    let rows_before = row_digests(&mut client, &model);
    let columns_before = column_digests(&mut client, &model, Names::Enhanced);
    let users = i64::try_from(users).expect("a small count");
    assert!(counts_before["users"] >= users);
    assert!(counts_before["user_activity_logs"] > 2 * users);

    let started = Instant::now();
    up(&db, &graph, "head").expect("upgrade to head");
    let upgraded = started.elapsed();
    let mut client = db.client();
    assert_eq!(versions(&mut client), [head(&graph)]);
    // Every row kept, every value of every column of 68d314520251 the same, under the model's
    // names where the series renamed it.
    assert_same(
        &counts(&mut client, &model, Names::Head),
        &counts_before,
        "row counts",
    );
    assert_same(
        &column_digests(&mut client, &model, Names::Head),
        &columns_before,
        "column values",
    );
    // The columns the series added hold their defaults (or NULL) on every existing row.
    for (table, column) in added() {
        let col = migrate_core::render::quote_ident(&column.name);
        let differs = match &column.default {
            None => format!("{col} IS NOT NULL"),
            Some(DefaultExpr::Json(text)) => format!("{col}::text <> '{text}'"),
            Some(DefaultExpr::Bool(b)) => format!("{col} <> {b}"),
            Some(DefaultExpr::Int(i)) => format!("{col} <> {i}"),
            Some(other) => panic!("{table}.{}: {other:?}", column.name),
        };
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {differs}"),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}.{} on existing rows", column.name);
    }
    // The upper-case-free session id is the same UUID, now a uuid.
    let session: bool = client
        .query_one(
            "SELECT session_id = 'e0000000-0000-4000-8000-000000000011'::uuid \
             FROM user_activity_logs WHERE id = 'e0000000-0000-4000-8000-000000000021'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(session);

    let started = Instant::now();
    down(&db, &graph, ENHANCED).expect("downgrade to 68d314520251");
    let downgraded = started.elapsed();
    let mut client = db.client();
    assert_eq!(versions(&mut client), [ENHANCED]);
    // The old names, types and keys are back, and every row byte for byte.
    assert_eq!(
        describe_schema(&mut client, &["public"]),
        session_id_last(&schema_before)
    );
    assert_same(
        &counts(&mut client, &model, Names::Enhanced),
        &counts_before,
        "row counts",
    );
    assert_same(
        &column_digests(&mut client, &model, Names::Enhanced),
        &columns_before,
        "column values",
    );
    assert_same(
        &row_digests(&mut client, &model),
        &rows_before,
        "whole rows",
    );
    eprintln!(
        "round trip at {users} users ({} rows): seed {:.1} s, upgrade to head {:.1} s, \
         downgrade to {ENHANCED} {:.1} s",
        counts_before.values().sum::<i64>(),
        seeded.as_secs_f64(),
        upgraded.as_secs_f64(),
        downgraded.as_secs_f64()
    );
}

#[test]
fn each_revision_steps_up_and_back_down_to_the_same_schema() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(100), 3).expect("seed");
    let ids: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
    let series = &ids[ids.iter().position(|i| i == ENHANCED).unwrap() + 1..];
    let describe = |client: &mut Client| describe_schema(client, &["public"]);
    let mut seen = vec![describe(&mut client)];
    for id in series {
        up(&db, &graph, "+1").unwrap_or_else(|e| panic!("up to {id}: {e}"));
        assert_eq!(versions(&mut client), std::slice::from_ref(id));
        seen.push(describe(&mut client));
    }
    for (i, id) in series.iter().enumerate().rev() {
        down(&db, &graph, "-1").unwrap_or_else(|e| panic!("down from {id}: {e}"));
        let expected = if series[i..].iter().any(|r| r == "fbcbc6afff27") {
            session_id_last(&seen[i])
        } else {
            seen[i].clone()
        };
        assert_eq!(describe(&mut client), expected, "schema after undoing {id}");
    }
    assert_eq!(versions(&mut client), [ENHANCED]);
}

/// `describe` text with `user_activity_logs.session_id` moved last: where it stays once
/// `fbcbc6afff27` changed its type online and back. Nothing else may move.
fn session_id_last(described: &str) -> String {
    migrate_testkit::with_column_last(described, "user_activity_logs", "session_id")
}

/// Asserts that upgrading to head is refused with a message containing each of `expected`, by
/// the series' first revision, and that the database is exactly as before.
fn assert_refused(db: &TestDb, graph: &RevisionGraph, model: &Schema, expected: &[&str]) {
    let before = state(db, model);
    let error = up(db, graph, "head")
        .expect_err("the upgrade is refused")
        .to_string();
    for part in expected {
        assert!(
            error.contains(part),
            "{part:?} is not in the error: {error}"
        );
    }
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(error.contains("3ffba08b0d3f"), "{error}");
    assert_eq!(
        state(db, model),
        before,
        "a refused upgrade changes nothing"
    );
    assert_eq!(before.versions, [ENHANCED]);
}

#[test]
fn values_the_series_would_refuse_are_listed_before_anything_changes() {
    let graph = graph();
    let model = enhanced_model(&graph);
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(50), 11).expect("seed");
    client.batch_execute(EDGE_ROWS).unwrap();
    client
        .batch_execute(
            "UPDATE users SET last_login_ip = 'not-an-ip' \
                 WHERE id = 'e0000000-0000-4000-8000-000000000002'; \
             UPDATE user_sessions SET ip_address = '10.0.0.300' \
                 WHERE id = 'e0000000-0000-4000-8000-000000000012'",
        )
        .unwrap();
    assert_refused(
        &db,
        &graph,
        &model,
        &[
            "hold IP addresses: some values are not (2 found",
            "users.e0000000-0000-4000-8000-000000000002: last_login_ip = 'not-an-ip'",
            "user_sessions.e0000000-0000-4000-8000-000000000012: ip_address = '10.0.0.300'",
        ],
    );
    client
        .batch_execute(
            "UPDATE users SET last_login_ip = NULL; UPDATE user_sessions SET ip_address = NULL; \
             UPDATE user_activity_logs SET session_id = 'not-a-session' \
                 WHERE id = 'e0000000-0000-4000-8000-000000000021'",
        )
        .unwrap();
    assert_refused(
        &db,
        &graph,
        &model,
        &["user_activity_logs.e0000000-0000-4000-8000-000000000021: session_id = 'not-a-session'"],
    );
    client
        .batch_execute(
            "UPDATE user_activity_logs SET session_id = NULL; \
             UPDATE users SET status = 'banned', failed_login_attempts = -1 \
                 WHERE id = 'e0000000-0000-4000-8000-000000000001'; \
             UPDATE mfa_methods SET verification_attempts = -2 \
                 WHERE id = (SELECT id FROM mfa_methods ORDER BY id LIMIT 1)",
        )
        .unwrap();
    // Named as the database names the column at the time: before the rename.
    assert_refused(
        &db,
        &graph,
        &model,
        &[
            "cannot add the CHECK constraints",
            "(3 found",
            "users.e0000000-0000-4000-8000-000000000001: failed_login_attempts = '-1'",
            "users.e0000000-0000-4000-8000-000000000001: status = 'banned'",
            ": verification_attempts = '-2'",
        ],
    );
}

/// `A@x.io` and `a@x.io`, the second soft-deleted at `deleted_at` (`NULL`: live).
fn two_users(deleted_at: &str) -> String {
    format!(
        "INSERT INTO users (id, email, password_hash, language_code, timezone, theme_preference,
             notification_preferences, privacy_settings, status, is_verified, is_active,
             failed_login_attempts, created_at, updated_at, deleted_at)
         VALUES
             ('a0000000-0000-4000-8000-000000000001', 'A@x.io', 'h', 'en', 'UTC', 'light', '{{}}',
              '{{}}', 'active', true, true, 0, '2024-01-01', '2024-01-01', NULL),
             ('a0000000-0000-4000-8000-000000000002', 'a@x.io', 'h', 'en', 'UTC', 'light', '{{}}',
              '{{}}', 'deleted', true, false, 0, '2024-01-01', '2024-01-01', {deleted_at})"
    )
}

#[test]
fn live_users_whose_emails_differ_only_by_case_refuse_the_upgrade_listing_both() {
    let graph = graph();
    let model = enhanced_model(&graph);
    let db = database_at_enhanced(&graph);
    db.client().batch_execute(&two_users("NULL")).unwrap();
    assert_refused(
        &db,
        &graph,
        &model,
        &[
            "users.email unique up to case",
            "'a@x.io': users.a0000000-0000-4000-8000-000000000001, \
             users.a0000000-0000-4000-8000-000000000002",
        ],
    );
}

#[test]
fn at_head_email_is_unique_as_given_and_up_to_case_among_live_users_and_both_ways_work() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    db.client()
        .batch_execute(&two_users("'2024-06-01'"))
        .unwrap();
    up(&db, &graph, "head").expect("upgrade to head");
    let mut client = db.client();
    // A third live case variant is refused...
    let error = client
        .batch_execute("INSERT INTO users (email, password_hash) VALUES ('a@X.IO', 'h')")
        .expect_err("a live case variant is refused");
    assert_eq!(
        error.as_db_error().map(|e| e.constraint()),
        Some(Some("uq_users_lower_email_live"))
    );
    // ...and so is the exact address of a soft-deleted user: the model's key is over all users.
    client
        .batch_execute(
            "UPDATE users SET deleted_at = now() WHERE id = 'a0000000-0000-4000-8000-000000000001'",
        )
        .unwrap();
    let error = client
        .batch_execute("INSERT INTO users (email, password_hash) VALUES ('A@x.io', 'h')")
        .expect_err("an address in use is refused");
    assert_eq!(
        error.as_db_error().map(|e| e.constraint()),
        Some(Some("users_email_key"))
    );
    // Once both are soft-deleted, a live case variant is welcome.
    client
        .batch_execute("INSERT INTO users (email, password_hash) VALUES ('A@X.io', 'h')")
        .unwrap();
    // The old keys hold at head too, so the downgrade has nothing to refuse.
    down(&db, &graph, ENHANCED).expect("downgrade");
    assert_eq!(versions(&mut db.client()), [ENHANCED]);
}

#[test]
fn at_head_a_writer_gives_only_what_is_specific_to_the_row_and_gets_naive_utc() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    up(&db, &graph, "head").expect("upgrade to head");
    let mut client = db.client();
    // The session is in America/New_York (the database's setting).
    let zone: String = client
        .query_one("SELECT current_setting('TimeZone')", &[])
        .unwrap()
        .get(0);
    assert_eq!(zone, "America/New_York");
    // Only the NOT NULL columns without a default (tests/models.rs lists them).
    client
        .batch_execute(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme');
             INSERT INTO users (email, password_hash) VALUES ('u@x.io', 'h');
             INSERT INTO user_profiles (user_id) SELECT id FROM users;
             INSERT INTO user_sessions (user_id, access_token_jti, expires_at)
                 SELECT id, 's', now() + interval '1 day' FROM users;
             INSERT INTO mfa_methods (user_id, method_type) SELECT id, 'totp' FROM users;
             INSERT INTO mfa_challenges (user_id, mfa_method_id, code_hash, challenge_type,
                     expires_at)
                 SELECT user_id, id, 'c', 'totp', now() FROM mfa_methods;
             INSERT INTO email_verifications (user_id, email, token_hash, expires_at)
                 SELECT id, email, 't', now() FROM users;
             INSERT INTO password_resets (user_id, token_hash, expires_at)
                 SELECT id, 'r', now() FROM users;
             INSERT INTO user_activity_logs (user_id, action) SELECT id, 'login' FROM users;
             INSERT INTO user_preferences (user_id, key) SELECT id, 'ui.theme' FROM users;",
        )
        .unwrap();
    let row = client
        .query_one(
            "SELECT status, theme_preference, language_code, timezone, failed_login_attempts,
                    is_active, is_verified, notification_preferences::text,
                    abs(extract(epoch FROM created_at - (now() AT TIME ZONE 'utc'))) < 600,
                    pg_typeof(created_at)::text
             FROM users",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending_verification");
    assert_eq!(row.get::<_, String>(1), "light");
    assert_eq!(row.get::<_, String>(2), "en");
    assert_eq!(row.get::<_, String>(3), "UTC");
    assert_eq!(row.get::<_, i32>(4), 0);
    assert!(row.get::<_, bool>(5) && !row.get::<_, bool>(6));
    assert_eq!(row.get::<_, String>(7), "{}");
    assert!(
        row.get::<_, bool>(8),
        "created_at is now in UTC, not New York"
    );
    assert_eq!(row.get::<_, String>(9), "timestamp without time zone");
    let row = client
        .query_one(
            "SELECT skills::text, preferred_communication_methods::text FROM user_profiles",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "[]");
    assert_eq!(row.get::<_, String>(1), "[]");
    let verification_type: String = client
        .query_one("SELECT verification_type FROM email_verifications", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        verification_type, "account_verification",
        "the model's default"
    );
    // The trigger stamps naive UTC too, in this New York session.
    let stamped: bool = client
        .query_one(
            "UPDATE users SET first_name = 'Z', updated_at = '2000-01-01' \
             RETURNING updated_at = (now() AT TIME ZONE 'utc')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(stamped);
    // The CHECK constraints hold for every writer.
    for (sql, constraint) in [
        ("UPDATE users SET status = 'banned'", "users_status_check"),
        (
            "UPDATE organizations SET country_code = 'fr'",
            "organizations_country_code_check",
        ),
        (
            "UPDATE mfa_challenges SET attempts_used = -1",
            "mfa_challenges_attempts_used_check",
        ),
        (
            "UPDATE user_sessions SET ip_address = '::1/129'",
            "user_sessions_ip_address_check",
        ),
    ] {
        let error = client.batch_execute(sql).expect_err(sql);
        let db_error = error.as_db_error().expect(sql);
        // An address PostgreSQL cannot parse fails in the CHECK's cast, before the CHECK.
        assert!(
            db_error.constraint() == Some(constraint)
                || db_error
                    .message()
                    .contains("invalid input syntax for type inet"),
            "{sql}: {db_error}"
        );
    }
    let error = client
        .batch_execute("UPDATE users SET last_login_ip = 'not-an-ip'")
        .expect_err("not an address");
    let message = error.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message.is_some_and(|m| m.contains("invalid input syntax for type inet")),
        "{error:?}"
    );
    client
        .batch_execute("UPDATE users SET last_login_ip = '2001:db8::7'")
        .unwrap();
}

#[test]
fn the_concurrent_index_revision_stopped_halfway_is_finished_by_running_migrate_again() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    let head = head(&graph);
    up(&db, &graph, "head-1").expect("up to the revision before the indexes");
    let mut client = db.client();
    // A table in the way of one of the indexes it creates: the build fails there, after the
    // duplicate indexes were dropped and the case-insensitive ones built.
    client
        .batch_execute("CREATE TABLE ix_mfa_challenges_mfa_method_id (x integer)")
        .unwrap();
    let error = up(&db, &graph, "head")
        .expect_err("stopped halfway")
        .to_string();
    assert!(error.contains(&head), "{error}");
    assert_ne!(versions(&mut client), std::slice::from_ref(&head));
    let invalid: i64 = client
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0, "no invalid index left behind");
    client
        .batch_execute("DROP TABLE ix_mfa_challenges_mfa_method_id")
        .unwrap();
    up(&db, &graph, "head").expect("the second run finishes");
    assert_eq!(versions(&mut client), [head]);
    let all: BTreeSet<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
    let expected = schema_at(&graph, &all).unwrap();
    let users = &expected.tables[&TableName::new("users")];
    assert!(users.indexes.contains_key("uq_users_lower_email_live"));
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname IN \
             ('uq_users_lower_email_live', 'ix_mfa_challenges_mfa_method_id', 'ix_users_email')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(indexes, 2);
}
