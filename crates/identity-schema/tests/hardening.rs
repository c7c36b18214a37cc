//! The hardening series on a real PostgreSQL server, through the real engine and driver: rows
//! survive the upgrade with the same meaning, the downgrade gives them back, and bad data is
//! refused, named, before anything changes.
#![allow(clippy::unwrap_used)]

use identity_schema::graph;
use migrate_core::render::schema_at;
use migrate_core::{ColumnType, RevisionGraph, Schema, TableName};
use migrate_engine::{Engine, EngineError, Intent, Options, RunIdentity};
use migrate_postgres::PostgresDriver;
use migrate_testkit::{describe_schema, TestDb};
use postgres::Client;
use std::collections::{BTreeMap, BTreeSet};

const ENHANCED: &str = "68d314520251";
const HEAD: &str = "487af69e669a";

/// The columns that hold IP addresses in the ten tables.
const IP_COLUMNS: [&str; 2] = ["ip_address", "last_login_ip"];

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

/// A database at `68d314520251`, whose sessions (the engine's included) use a time zone that is
/// not UTC: a conversion that relied on the session's zone instead of saying UTC would shift
/// every instant by four or five hours, and the digests below would see it.
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

/// The schema model at `68d314520251`: which columns are timestamps, JSON, addresses.
fn enhanced_model(graph: &RevisionGraph) -> Schema {
    let ids: BTreeSet<String> = ["974799e38366", ENHANCED]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    schema_at(graph, &ids).unwrap()
}

/// Where a table of `68d314520251` lives at head.
fn at_head(table: &TableName) -> String {
    if table.name.ends_with("_simple") {
        format!("legacy.{}", table.name)
    } else {
        table.name.clone()
    }
}

/// One md5 per table over every row's text, in id order: the brief's exact checksum.
fn raw_checksums(
    client: &mut Client,
    model: &Schema,
    at_head_names: bool,
) -> BTreeMap<String, String> {
    model
        .tables
        .keys()
        .map(|t| {
            let name = if at_head_names {
                at_head(t)
            } else {
                t.name.clone()
            };
            let sql = format!("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {name} t");
            let sum: Option<String> = client.query_one(&sql, &[]).unwrap().get(0);
            (t.name.clone(), sum.unwrap_or_default())
        })
        .collect()
}

/// How a column's values are compared.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// As stored (`col::text`), except JSON compared as jsonb: what a downgrade restores.
    Stored,
    /// By meaning, before the upgrade: instants as seconds since the epoch (a naive timestamp
    /// counted as UTC), JSON as jsonb, addresses as their text.
    MeaningBefore,
    /// By meaning, after the upgrade: the same, reading the new types.
    MeaningAfter,
}

/// One md5 per column of every table of `model`, over every row in id order.
fn column_digests(
    client: &mut Client,
    model: &Schema,
    reading: Reading,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for table in model.tables.values() {
        let legacy = table.name.name.ends_with("_simple");
        let name = if reading == Reading::MeaningAfter {
            at_head(&table.name)
        } else {
            table.name.name.clone()
        };
        for c in &table.columns {
            let col = migrate_core::render::quote_ident(&c.name);
            let expr = match (&c.ty, reading) {
                (ColumnType::Json, _) => format!("{col}::jsonb::text"),
                (ColumnType::Timestamp, Reading::MeaningBefore | Reading::MeaningAfter)
                    if !legacy =>
                {
                    format!("extract(epoch FROM {col})::text")
                }
                (_, Reading::MeaningAfter) if !legacy && IP_COLUMNS.contains(&c.name.as_str()) => {
                    format!("abbrev({col})")
                }
                _ => format!("{col}::text"),
            };
            let sql = format!(
                "SELECT md5(string_agg(coalesce({expr}, 'NULL'), ',' ORDER BY id)) FROM {name}"
            );
            let sum: Option<String> = client.query_one(&sql, &[]).unwrap().get(0);
            out.insert(
                format!("{}.{}", table.name.name, c.name),
                sum.unwrap_or_default(),
            );
        }
    }
    out
}

/// Asserts two digest maps are equal, naming only the entries that differ.
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

fn counts(client: &mut Client, model: &Schema, at_head_names: bool) -> BTreeMap<String, i64> {
    model
        .tables
        .keys()
        .map(|t| {
            let name = if at_head_names {
                at_head(t)
            } else {
                t.name.clone()
            };
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .unwrap()
                .get(0);
            (t.name.clone(), n)
        })
        .collect()
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
        schema: describe_schema(&mut client, &["public", "legacy"]),
        versions: versions(&mut client),
        rows: raw_checksums(&mut client, model, false),
    }
}

/// Edge rows the seed does not write, all valid: mixed-case emails that do not collide, IPv4,
/// IPv6, IPv4-mapped and network addresses, microseconds, `infinity`, a DST-gap local time (which
/// means nothing in UTC), nested JSON, and rows in the two leftover tables (one with an address
/// that is not one: the leftovers keep their types, so it must not be refused).
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
     '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
    ('e0000000-0000-4000-8000-000000000013', 'e0000000-0000-4000-8000-000000000002', 'edge-s3',
     NULL, '[]', '2001:db8:85a3::8a2e:370:7334', '{}', true, '2030-01-01 00:00:00',
     '2024-01-01 00:00:00', '2024-01-01 00:00:00');
INSERT INTO user_activity_logs (id, user_id, action, details, ip_address, \"timestamp\")
VALUES
    ('e0000000-0000-4000-8000-000000000021', 'e0000000-0000-4000-8000-000000000001', 'login',
     '{\"nested\": {\"k\": [1, {\"x\": null}]}, \"a\": \"\\u00e9\"}', '203.0.113.7',
     '2024-02-29 23:59:59.999999');
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

#[test]
fn upgrade_to_head_keeps_every_row_and_the_downgrade_gives_them_back() {
    let graph = graph();
    let model = enhanced_model(&graph);
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(500), 7).expect("seed");
    client.batch_execute(EDGE_ROWS).unwrap();

    let schema_before = describe_schema(&mut client, &["public"]);
    let counts_before = counts(&mut client, &model, false);
    let raw_before = raw_checksums(&mut client, &model, false);
    let meaning_before = column_digests(&mut client, &model, Reading::MeaningBefore);
    let stored_before = column_digests(&mut client, &model, Reading::Stored);
    assert!(counts_before["users"] >= 502 && counts_before["user_activity_logs"] > 1000);

    up(&db, &graph, "head").expect("upgrade to head");
    let mut client = db.client();
    assert_eq!(versions(&mut client), [HEAD]);
    // Every row kept, each value with the same meaning: instants (counted as UTC before), JSON
    // (as jsonb), addresses (their text).
    assert_same(
        &counts(&mut client, &model, true),
        &counts_before,
        "row counts",
    );
    assert_same(
        &column_digests(&mut client, &model, Reading::MeaningAfter),
        &meaning_before,
        "values (by meaning)",
    );
    // The same, spelled out on edge rows, in a session that is not in UTC.
    let row = client
        .query_one(
            "SELECT created_at = '1999-12-31 23:59:59.999999+00', locked_until = 'infinity', \
                    last_login_ip = '2001:db8::1'::inet, privacy_settings = '{\"a\": [1, 2], \"b\": 1}', \
                    current_setting('TimeZone') \
             FROM users WHERE id = 'e0000000-0000-4000-8000-000000000001'",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1) && row.get::<_, bool>(2));
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, String>(4), "America/New_York");
    let addresses: Vec<String> = client
        .query(
            "SELECT abbrev(ip_address) FROM user_sessions WHERE session_token_hash LIKE 'edge-%' \
             ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        addresses,
        [
            "::ffff:192.0.2.128",
            "198.51.100.0/24",
            "2001:db8:85a3::8a2e:370:7334"
        ]
    );
    // The leftovers moved, rows and all, with their (invalid) address untouched.
    let legacy: String = client
        .query_one(
            "SELECT ip_address FROM legacy.user_activities_simple \
             WHERE id = 'e0000000-0000-4000-8000-000000000031'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(legacy, "unknown");

    // `updated_at` follows every UPDATE, even one that sets it (rolled back: the rows must stay
    // as they were for the downgrade's comparison).
    for table in [
        "organizations",
        "users",
        "user_profiles",
        "mfa_methods",
        "user_preferences",
    ] {
        let mut tx = client.transaction().unwrap();
        let row = tx
            .query_one(
                &format!(
                    "UPDATE {table} SET updated_at = '2000-01-01 00:00:00+00' \
                     WHERE id = (SELECT id FROM {table} ORDER BY id LIMIT 1) \
                     RETURNING updated_at = now()"
                ),
                &[],
            )
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "{table}.updated_at is now() after UPDATE"
        );
        tx.rollback().unwrap();
    }
    let mut tx = client.transaction().unwrap();
    let row = tx
        .query_one(
            "UPDATE users SET first_name = 'Z' WHERE id = 'e0000000-0000-4000-8000-000000000001' \
             RETURNING updated_at = now()",
            &[],
        )
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "an UPDATE that does not name updated_at moves it too"
    );
    tx.rollback().unwrap();
    drop(client);

    down(&db, &graph, ENHANCED).expect("downgrade to 68d314520251");
    let mut client = db.client();
    assert_eq!(versions(&mut client), [ENHANCED]);
    assert_eq!(describe_schema(&mut client, &["public"]), schema_before);
    let legacy_schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'legacy'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(legacy_schemas, 0);
    assert_same(
        &counts(&mut client, &model, false),
        &counts_before,
        "row counts",
    );
    // Byte for byte, as stored, every column but JSON ones, and these as jsonb: jsonb keeps a
    // document, not its spelling (whitespace, key order), so `json` text written compactly by the
    // seed comes back as jsonb prints it.
    assert_same(
        &column_digests(&mut client, &model, Reading::Stored),
        &stored_before,
        "stored values",
    );
    // And the brief's whole-row checksum is identical for every table without a JSON column
    // (timestamps, addresses and the leftovers round-trip exactly).
    let raw_after = raw_checksums(&mut client, &model, false);
    for table in model.tables.values() {
        let has_json = table.columns.iter().any(|c| c.ty == ColumnType::Json);
        let name = &table.name.name;
        if has_json {
            continue;
        }
        assert_eq!(raw_after[name], raw_before[name], "{name} checksum");
    }
    // JSON spelled as jsonb prints it comes back byte for byte.
    let edge: String = client
        .query_one(
            "SELECT notification_preferences::text FROM users \
             WHERE id = 'e0000000-0000-4000-8000-000000000001'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(edge, "{\"email\": true}");
}

#[test]
fn each_revision_steps_up_and_back_down_to_the_same_schema() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    identity_seed::seed(&mut client, &identity_seed::Scale::users(100), 3).expect("seed");
    let ids: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
    let hardening = &ids[ids.iter().position(|i| i == ENHANCED).unwrap() + 1..];
    let mut seen = vec![describe_schema(&mut client, &["public", "legacy"])];
    for id in hardening {
        up(&db, &graph, "+1").unwrap_or_else(|e| panic!("up to {id}: {e}"));
        assert_eq!(versions(&mut client), std::slice::from_ref(id));
        seen.push(describe_schema(&mut client, &["public", "legacy"]));
    }
    for (i, id) in hardening.iter().enumerate().rev() {
        down(&db, &graph, "-1").unwrap_or_else(|e| panic!("down from {id}: {e}"));
        assert_eq!(
            describe_schema(&mut client, &["public", "legacy"]),
            seen[i],
            "schema after undoing {id}"
        );
    }
    assert_eq!(versions(&mut client), [ENHANCED]);
}

/// Asserts that upgrading to head is refused with a message containing each of `expected`, and
/// that the database is exactly as before.
fn assert_refused(db: &TestDb, graph: &RevisionGraph, model: &Schema, expected: &[&str]) -> String {
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
    assert_eq!(
        state(db, model),
        before,
        "a refused upgrade changes nothing"
    );
    assert_eq!(before.versions, [ENHANCED]);
    error
}

#[test]
fn an_address_that_is_not_one_refuses_the_upgrade_naming_it() {
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
    let error = assert_refused(
        &db,
        &graph,
        &model,
        &[
            "not IP addresses (2 found",
            "users.e0000000-0000-4000-8000-000000000002: last_login_ip = 'not-an-ip'",
            "user_sessions.e0000000-0000-4000-8000-000000000012: ip_address = '10.0.0.300'",
        ],
    );
    assert!(error.contains("789a88e5bf21"), "{error}");
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
fn a_soft_deleted_case_variant_does_not_block_the_upgrade() {
    let graph = graph();
    let db = database_at_enhanced(&graph);
    db.client()
        .batch_execute(&two_users("'2024-06-01'"))
        .unwrap();
    up(&db, &graph, "head").expect("upgrade to head");
    let mut client = db.client();
    assert_eq!(versions(&mut client), [HEAD]);

    // At head the index refuses a third live case variant...
    let error = client
        .batch_execute("INSERT INTO users (email, password_hash) VALUES ('a@X.IO', 'h')")
        .expect_err("a live case variant is refused");
    assert_eq!(
        error.as_db_error().map(|e| e.constraint()),
        Some(Some("uq_users_lower_email_live"))
    );
    // ...and lets a new user take the address of a soft-deleted one.
    client
        .batch_execute(
            "UPDATE users SET deleted_at = now() WHERE id = 'a0000000-0000-4000-8000-000000000001'; \
             INSERT INTO users (id, email, password_hash) \
                 VALUES ('a0000000-0000-4000-8000-000000000003', 'A@x.io', 'h')",
        )
        .unwrap();
    // The old schema has room for one `A@x.io` only: the downgrade refuses, listing both users,
    // and stays at head.
    let before = describe_schema(&mut client, &["public", "legacy"]);
    let error = down(&db, &graph, ENHANCED)
        .expect_err("the downgrade is refused")
        .to_string();
    assert!(
        error.contains(
            "'A@x.io': users.a0000000-0000-4000-8000-000000000001, \
             users.a0000000-0000-4000-8000-000000000003"
        ),
        "{error}"
    );
    assert_eq!(versions(&mut client), [HEAD]);
    assert_eq!(describe_schema(&mut client, &["public", "legacy"]), before);
}

#[test]
fn values_outside_the_new_checks_refuse_the_upgrade_listing_them() {
    let graph = graph();
    let model = enhanced_model(&graph);
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    client.batch_execute(&two_users("'2024-06-01'")).unwrap();
    client
        .batch_execute(
            "UPDATE users SET status = 'banned', failed_login_attempts = -1 \
                 WHERE id = 'a0000000-0000-4000-8000-000000000001'",
        )
        .unwrap();
    assert_refused(
        &db,
        &graph,
        &model,
        &[
            "cannot add the CHECK constraints",
            "(2 found",
            "users.a0000000-0000-4000-8000-000000000001: failed_login_attempts = '-1'",
            "users.a0000000-0000-4000-8000-000000000001: status = 'banned'",
        ],
    );
}

#[test]
fn json_holding_a_key_twice_reads_the_same_after_the_upgrade() {
    // jsonb keeps the last value of a key given twice, the one json readers already got.
    let graph = graph();
    let db = database_at_enhanced(&graph);
    let mut client = db.client();
    client.batch_execute(&two_users("'2024-06-01'")).unwrap();
    let read = "SELECT privacy_settings -> 'a' ->> 'k' FROM users \
                WHERE id = 'a0000000-0000-4000-8000-000000000001'";
    client
        .batch_execute(
            "UPDATE users SET privacy_settings = '{\"a\": {\"k\": 1, \"k\": 2}}' \
                 WHERE id = 'a0000000-0000-4000-8000-000000000001'",
        )
        .unwrap();
    let before: String = client.query_one(read, &[]).unwrap().get(0);
    assert_eq!(before, "2");
    up(&db, &graph, "head").expect("upgrade to head");
    let after: String = db.client().query_one(read, &[]).unwrap().get(0);
    assert_eq!(after, before);
}

#[test]
fn at_head_a_writer_gives_only_what_is_specific_to_the_row() {
    let graph = graph();
    let db = TestDb::new();
    up(&db, &graph, "head").expect("upgrade to head");
    let mut client = db.client();
    // Only the NOT NULL columns without a default (tests/models.rs lists them).
    client
        .batch_execute(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme');
             INSERT INTO users (email, password_hash) VALUES ('u@x.io', 'h');
             INSERT INTO user_profiles (user_id) SELECT id FROM users;
             INSERT INTO user_sessions (user_id, session_token_hash, expires_at)
                 SELECT id, 's', now() + interval '1 day' FROM users;
             INSERT INTO mfa_methods (user_id, method_type, identifier)
                 SELECT id, 'totp', 'app' FROM users;
             INSERT INTO mfa_challenges (user_id, mfa_method_id, challenge_code_hash,
                     challenge_type, expires_at)
                 SELECT user_id, id, 'c', 'totp', now() FROM mfa_methods;
             INSERT INTO email_verifications (user_id, email, token_hash, expires_at)
                 SELECT id, email, 't', now() FROM users;
             INSERT INTO password_resets (user_id, token_hash, expires_at)
                 SELECT id, 'r', now() FROM users;
             INSERT INTO user_activity_logs (user_id, action) SELECT id, 'login' FROM users;
             INSERT INTO user_preferences (user_id, preference_key, preference_value,
                     preference_type)
                 SELECT id, 'ui.theme', '\"dark\"', 'string' FROM users;",
        )
        .unwrap();
    let row = client
        .query_one(
            "SELECT status, theme_preference, language_code, timezone, failed_login_attempts,
                    is_active, is_verified, notification_preferences::text, created_at = now()
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
    let skills: String = client
        .query_one("SELECT skills::text FROM user_profiles", &[])
        .unwrap()
        .get(0);
    assert_eq!(skills, "[]");
    // The CHECK constraints hold for every writer.
    for (sql, constraint) in [
        ("UPDATE users SET status = 'banned'", "users_status_check"),
        (
            "UPDATE organizations SET country_code = 'fr'",
            "organizations_country_code_check",
        ),
        (
            "UPDATE mfa_challenges SET attempts = -1",
            "mfa_challenges_attempts_check",
        ),
    ] {
        let error = client.batch_execute(sql).expect_err(sql);
        assert_eq!(
            error.as_db_error().and_then(|e| e.constraint()),
            Some(constraint),
            "{sql}"
        );
    }
}
