//! Databases that the original Alembic tooling managed are adopted in place: no stamp, no
//! manual step, no row lost.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::{Direction, Heads};
use migrate_engine::{prepare, Event};
use migrate_postgres::PostgresStateSql;
use migrate_testkit::TestDb;

/// What Alembic 1.14 with SQLAlchemy 2.0 runs for `974799e38366` on PostgreSQL, written out by
/// hand (the version table as Alembic creates it, and no history table).
const ORIGINAL_974799E38366: &str = "
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE users_simple (
    id UUID NOT NULL,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_verified BOOLEAN,
    status VARCHAR(30),
    first_name VARCHAR(150),
    last_name VARCHAR(150),
    phone_number VARCHAR(20),
    bio TEXT,
    avatar_url VARCHAR(500),
    timezone VARCHAR(50),
    language VARCHAR(10),
    last_login_at TIMESTAMP WITHOUT TIME ZONE,
    password_changed_at TIMESTAMP WITHOUT TIME ZONE,
    failed_login_attempts INTEGER,
    locked_until TIMESTAMP WITHOUT TIME ZONE,
    created_at TIMESTAMP WITHOUT TIME ZONE,
    updated_at TIMESTAMP WITHOUT TIME ZONE,
    deleted_at TIMESTAMP WITHOUT TIME ZONE,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_users_simple_email ON users_simple (email);

CREATE TABLE email_verifications_simple (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    email VARCHAR(255) NOT NULL,
    token_hash VARCHAR(255) NOT NULL,
    verification_type VARCHAR(30),
    is_verified BOOLEAN,
    verified_at TIMESTAMP WITHOUT TIME ZONE,
    created_at TIMESTAMP WITHOUT TIME ZONE,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users_simple (id)
);
CREATE UNIQUE INDEX ix_email_verifications_simple_token_hash ON email_verifications_simple (token_hash);

CREATE TABLE user_activities_simple (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    activity_type VARCHAR(50) NOT NULL,
    description TEXT,
    ip_address VARCHAR(45),
    user_agent TEXT,
    activity_metadata TEXT,
    created_at TIMESTAMP WITHOUT TIME ZONE,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users_simple (id)
);

CREATE TABLE user_sessions_simple (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    session_token VARCHAR(255) NOT NULL,
    refresh_token VARCHAR(255) NOT NULL,
    device_name VARCHAR(255),
    device_type VARCHAR(50),
    user_agent TEXT,
    ip_address VARCHAR(45),
    country VARCHAR(100),
    region VARCHAR(100),
    city VARCHAR(100),
    is_active BOOLEAN,
    last_activity TIMESTAMP WITHOUT TIME ZONE,
    created_at TIMESTAMP WITHOUT TIME ZONE,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users_simple (id)
);
CREATE UNIQUE INDEX ix_user_sessions_simple_refresh_token ON user_sessions_simple (refresh_token);
CREATE UNIQUE INDEX ix_user_sessions_simple_session_token ON user_sessions_simple (session_token);

INSERT INTO alembic_version (version_num) VALUES ('974799e38366');
";

/// Rows as the service wrote them: every column the application sets, some left NULL (the
/// original has no server defaults), odd text included.
const ROWS: &str = "
INSERT INTO users_simple VALUES
 ('11111111-1111-1111-1111-111111111111', 'alice@example.com', '$argon2id$v=19$a', true, 'active',
  'Alice', 'Liddell', '+33100000000', 'bio with ''quotes'' and
 a newline', 'https://x.io/a.png', 'Europe/Paris', 'fr', '2024-05-01 10:00:00', '2024-01-01 00:00:00',
  0, NULL, '2023-12-31 23:59:59.123456', '2024-05-01 10:00:00', NULL),
 ('22222222-2222-2222-2222-222222222222', 'Bob@Example.com', '$2b$12$b', NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('33333333-3333-3333-3333-333333333333', 'carol@example.com', 'h3', false, 'suspended',
  'Carol', NULL, NULL, NULL, NULL, 'UTC', 'en', NULL, NULL, 5, '2030-01-01 00:00:00',
  '2024-02-02 02:02:02', NULL, '2024-06-06 06:06:06');
INSERT INTO email_verifications_simple VALUES
 ('e1111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'alice@example.com',
  'tok-a', 'registration', true, '2024-01-01 01:00:00', '2024-01-01 00:00:00', '2024-01-02 00:00:00'),
 ('e2222222-2222-2222-2222-222222222222', '22222222-2222-2222-2222-222222222222', 'Bob@Example.com',
  'tok-b', NULL, NULL, NULL, NULL, '2030-01-01 00:00:00');
INSERT INTO user_sessions_simple VALUES
 ('51111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'sess-a', 'ref-a',
  'Alice''s phone', 'mobile', 'Mozilla/5.0', '2001:db8::1', 'France', 'IDF', 'Paris', true,
  '2024-05-01 10:00:00', '2024-05-01 09:00:00', '2024-06-01 00:00:00'),
 ('52222222-2222-2222-2222-222222222222', '22222222-2222-2222-2222-222222222222', 'sess-b', 'ref-b',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2030-01-01 00:00:00');
INSERT INTO user_activities_simple VALUES
 ('a1111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'login',
  'signed in', '192.0.2.1', 'curl/8', '{\"k\": [1, 2]}', '2024-05-01 10:00:00'),
 ('a2222222-2222-2222-2222-222222222222', '33333333-3333-3333-3333-333333333333', 'locked',
  NULL, NULL, NULL, NULL, NULL);
";

fn full_rows(db: &TestDb, table: &str) -> Vec<String> {
    texts(db, &format!("SELECT t::text FROM {table} t ORDER BY id"))
}

/// The name at head of a column of `68d314520251`: the series renames some to the identity
/// service's names.
fn name_at_head(table: &str, column: &str) -> String {
    identity_schema::revisions::r3ffba08b0d3f_align_with_the_service_models::RENAMES
        .iter()
        .find(|(t, from, _)| *t == table && *from == column)
        .map_or(column, |(_, _, to)| to)
        .to_owned()
}

/// Every row of `schema.table` in id order, each column of `68d314520251` as `name=value`
/// under its name there (found under its name at head when `at_head`; columns added later are
/// left out), spelled so that a type change that keeps the value leaves the text alone: an
/// instant as its naive UTC time (what the original stored), a JSON document as `jsonb`
/// prints it, an address as `host()` prints it.
fn rows_by_value(
    db: &TestDb,
    schema: &str,
    table: &str,
    at_head: Option<&[String]>,
) -> Vec<String> {
    let qualified = format!("{schema}.{table}");
    let columns: Vec<(String, String)> = db
        .client()
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&qualified],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!columns.is_empty(), "no table {qualified}");
    let labelled: Vec<(String, String, String)> = match at_head {
        None => columns
            .iter()
            .map(|(name, ty)| (name.clone(), name.clone(), ty.clone()))
            .collect(),
        Some(original) => original
            .iter()
            .map(|label| {
                let name = name_at_head(table, label);
                let ty = columns
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("{table}.{name} is gone"))
                    .1
                    .clone();
                (label.clone(), name, ty)
            })
            .collect(),
    };
    let fields: Vec<String> = labelled
        .iter()
        .map(|(label, name, ty)| {
            let c = format!("\"{name}\"");
            let value = match ty.as_str() {
                "timestamp with time zone" => format!("({c} AT TIME ZONE 'UTC')::text"),
                "json" => format!("{c}::jsonb::text"),
                "inet" => format!("host({c})"),
                _ => format!("{c}::text"),
            };
            format!("'{label}=' || coalesce({value}, 'NULL')")
        })
        .collect();
    let rows = texts(
        db,
        &format!(
            "SELECT concat_ws(', ', {}) FROM {qualified} ORDER BY id",
            fields.join(", ")
        ),
    );
    assert!(!rows.is_empty(), "{qualified} has rows to compare");
    rows
}

#[test]
fn a_database_left_at_974799e38366_by_alembic_upgrades_to_head_in_place_without_losing_rows() {
    let db = TestDb::new();
    exec(&db, ORIGINAL_974799E38366);
    exec(&db, ROWS);
    // The hand-written original matches the spec, so the test starts where the field is.
    assert_eq!(describe(&db), fixture("974799e38366"));
    assert!(!relation_exists(&db, HISTORY_TABLE));

    let sessions = full_rows(&db, "user_sessions_simple");
    let activities = full_rows(&db, "user_activities_simple");
    let users = texts(
        &db,
        "SELECT id || '|' || email || '|' || password_hash FROM users_simple ORDER BY id",
    );
    let verifications = texts(
        &db,
        "SELECT id || '|' || user_id || '|' || email || '|' || token_hash || '|' || expires_at \
         FROM email_verifications_simple ORDER BY id",
    );
    assert_eq!((sessions.len(), activities.len(), users.len()), (2, 2, 3));

    let graph = identity_schema::graph();
    let ids = revision_ids(&graph);
    assert_eq!(ids[0], "974799e38366");
    let head = head_of(&graph);
    let mut engine = engine(&db, &graph);
    let status = engine.status().unwrap();
    assert_eq!(status.current, heads(&["974799e38366"]));
    assert_eq!((status.pending, status.at_head), (ids.len() - 1, false));
    // Status reads only: it creates no table.
    assert!(!relation_exists(&db, HISTORY_TABLE));

    let (result, events) = run_collecting(&mut engine, &up("head"));
    let reports = result.unwrap();
    // From the recorded revision on: no stamp, nothing re-applied.
    assert_eq!(report_ids(&reports), ids[1..]);
    assert!(reports.iter().all(|r| r.step.direction == Direction::Up));
    assert_eq!(reports[0].step.heads_before, heads(&["974799e38366"]));
    match events.first() {
        Some(Event::Planned { steps }) => assert_eq!(step_ids(steps), ids[1..]),
        other => panic!("first event should be the plan, got {other:?}"),
    }

    assert_schema_at(&db, &graph, Some(&head));
    assert_eq!(versions(&db), [head]);
    let history = history(&db);
    assert_eq!(
        history
            .iter()
            .map(|h| (
                h.revision.as_str(),
                h.direction.as_str(),
                h.outcome.as_str()
            ))
            .collect::<Vec<_>>(),
        ids[1..]
            .iter()
            .map(|id| (id.as_str(), "up", "applied"))
            .collect::<Vec<_>>()
    );

    // The tables the schema keeps keep every row, byte for byte (their types are frozen), under
    // the `legacy_` names they were given.
    assert!(!relation_exists(&db, "user_sessions_simple"));
    assert!(!relation_exists(&db, "user_activities_simple"));
    assert_eq!(full_rows(&db, "legacy_user_sessions_simple"), sessions);
    assert_eq!(full_rows(&db, "legacy_user_activities_simple"), activities);
    // The dropped tables' rows arrive in their successors, with the naive UTC times the
    // original wrote.
    assert_eq!(
        texts(
            &db,
            "SELECT id || '|' || email || '|' || password_hash FROM users ORDER BY id"
        ),
        users
    );
    assert_eq!(
        texts(
            &db,
            "SELECT id || '|' || user_id || '|' || email || '|' || token_hash || '|' || \
             expires_at FROM email_verifications ORDER BY id",
        ),
        verifications
    );
    // What users_simple left empty got the application's defaults, and what it said is kept.
    assert_eq!(
        texts(
            &db,
            "SELECT concat_ws('|', language_code, timezone, status, is_verified, is_active, \
             failed_login_attempts, bio, created_at IS NOT NULL, deleted_at) \
             FROM users ORDER BY id"
        ),
        [
            "fr|Europe/Paris|active|t|t|0|bio with 'quotes' and\n a newline|t",
            "en|UTC|active|f|t|0|t",
            "en|UTC|suspended|f|t|5|t|2024-06-06 06:06:06",
        ]
    );
    assert_eq!(
        texts(
            &db,
            "SELECT created_at::text FROM users \
             WHERE email = 'alice@example.com'"
        ),
        ["2023-12-31 23:59:59.123456"]
    );

    let status = engine.status().unwrap();
    assert!(status.at_head);
    assert_eq!(status.pending, 0);
}

/// Rows in every table of `68d314520251` as the service wrote them there: naive UTC times
/// (fractions of a second included), JSON spelled with spaces and keys out of order, IPv4 and
/// IPv6 addresses, odd text, and a soft-deleted user whose email and username differ only by
/// case from a live one's (which the case-insensitive keys of head allow: they skip deleted
/// users).
const ROWS_AT_68D314520251: &str = r#"
INSERT INTO organizations (id, name, slug, country_code, organization_type, subscription_tier,
    subscription_status, settings, is_active, is_verified, created_at, updated_at) VALUES
 ('0a000000-0000-0000-0000-000000000001', 'Acme', 'acme', 'FR', 'enterprise', 'pro', 'active',
  '{"sso": true,  "domains": ["acme.io"], "a": 1}', true, true, '2023-01-01 00:00:00',
  '2024-02-03 04:05:06.789');
INSERT INTO users (id, email, username, password_hash, bio, language_code, timezone,
    theme_preference, notification_preferences, privacy_settings, status, is_verified, is_active,
    failed_login_attempts, locked_until, last_login_at, last_login_ip, organization_id,
    created_at, updated_at, deleted_at) VALUES
 ('11111111-1111-1111-1111-111111111111', 'a@x.io', 'alice', 'h1', E'tab\tand ''quote''\nline',
  'fr', 'Europe/Paris', 'dark', '{"email": true, "digest": "weekly"}', '{}', 'active', true,
  true, 0, NULL, '2024-05-01 10:00:00', '192.0.2.1', '0a000000-0000-0000-0000-000000000001',
  '2024-01-01 00:00:00', '2024-01-02 03:04:05.123456', NULL),
 ('22222222-2222-2222-2222-222222222222', 'A@x.io', 'Alice', 'h2', NULL, 'en', 'UTC', 'light',
  '{}', '{"profile_visibility": "private"}', 'deleted', false, false, 3, NULL, NULL,
  '2001:db8::1', NULL, '2023-06-01 12:00:00', '2023-07-01 00:00:00', '2023-07-01 00:00:00'),
 ('33333333-3333-3333-3333-333333333333', 'bob@x.io', NULL, 'h3', NULL, 'en', 'UTC', 'auto',
  '{}', '{}', 'suspended', true, false, 5, '2030-01-01 00:00:00', NULL, NULL, NULL,
  '2022-03-27 01:30:00', '2022-03-27 01:30:00', NULL);
INSERT INTO user_profiles (id, user_id, job_title, manager_user_id, social_links, skills,
    interests, certifications, metadata, custom_fields, created_at, updated_at) VALUES
 ('9f000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'CTO',
  '33333333-3333-3333-3333-333333333333', '{"gh": "alice"}', '["rust", "sql"]', '[]', '[]',
  '{"z": 1, "a": [true, null]}', '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00');
INSERT INTO user_sessions (id, user_id, session_token_hash, refresh_token_hash, device_info,
    ip_address, user_agent, location_info, is_active, expires_at, last_accessed_at,
    created_at) VALUES
 ('5e000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'st1', 'rt1',
  '{"os": "linux"}', '2001:db8:0:1::5', 'curl/8', '{}', true, '2024-06-01 00:00:00',
  '2024-05-01 10:00:00', '2024-05-01 09:00:00'),
 ('5e000000-0000-0000-0000-000000000002', '33333333-3333-3333-3333-333333333333', 'st2', NULL,
  '{}', NULL, NULL, '{"city": "Paris"}', false, '2022-04-01 00:00:00', '2022-03-27 01:30:00',
  '2022-03-27 01:30:00');
INSERT INTO mfa_methods (id, user_id, method_type, identifier, secret_encrypted, is_primary,
    is_verified, verification_attempts, last_used_at, created_at, updated_at) VALUES
 ('3f000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'totp',
  'app', 'c2VjcmV0', true, true, 0, '2024-05-01 10:00:01', '2024-01-01 00:00:00',
  '2024-01-01 00:00:00');
INSERT INTO mfa_challenges (id, user_id, mfa_method_id, challenge_code_hash, challenge_type,
    expires_at, attempts, is_used, ip_address, created_at) VALUES
 ('3c000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111',
  '3f000000-0000-0000-0000-000000000001', 'ch1', 'totp', '2024-05-01 10:05:00', 1, true,
  '198.51.100.7', '2024-05-01 10:00:00');
INSERT INTO email_verifications (id, user_id, email, token_hash, verification_type, expires_at,
    attempts, is_verified, verified_at, ip_address, created_at) VALUES
 ('e0000000-0000-0000-0000-000000000001', '22222222-2222-2222-2222-222222222222', 'A@x.io',
  'ev1', 'registration', '2023-06-02 12:00:00', 0, false, NULL, NULL, '2023-06-01 12:00:00');
INSERT INTO password_resets (id, user_id, token_hash, expires_at, is_used, used_at, ip_address,
    created_at) VALUES
 ('7e000000-0000-0000-0000-000000000001', '33333333-3333-3333-3333-333333333333', 'pr1',
  '2022-03-28 00:00:00', true, '2022-03-27 02:00:00', '203.0.113.9', '2022-03-27 01:45:00');
INSERT INTO user_activity_logs (id, user_id, action, resource_type, details, ip_address,
    session_id, "timestamp") VALUES
 ('a0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'login',
  'session', '{"ok": true, "n": 1.50}', '192.0.2.1', '5e000000-0000-0000-0000-000000000001',
  '2024-05-01 10:00:00.5');
INSERT INTO user_preferences (id, user_id, preference_key, preference_value, preference_type,
    is_encrypted, created_at, updated_at) VALUES
 ('bf000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'ui.theme',
  '"dark"', 'string', false, '2024-01-01 00:00:00', '2024-03-01 00:00:00');
INSERT INTO user_sessions_simple (id, user_id, session_token, refresh_token, ip_address,
    last_activity, created_at, expires_at) VALUES
 ('51111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'sess-a',
  'ref-a', 'not an address', '2021-01-01 00:00:00', NULL, '2021-02-01 00:00:00');
INSERT INTO user_activities_simple (id, user_id, activity_type, activity_metadata,
    created_at) VALUES
 ('a1111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111', 'login',
  '{"k": [1, 2]}', '2021-01-01 00:00:00');
"#;

/// The tables of `68d314520251` that stay in `public` at head.
const KEPT_IN_PUBLIC: [&str; 10] = identity_schema::TABLES;

/// The two tables the original left behind, which head keeps under `legacy_` names.
const LEFT_BEHIND: [&str; 2] = ["user_sessions_simple", "user_activities_simple"];

#[test]
fn a_database_left_at_68d314520251_by_alembic_is_adopted_and_upgraded_to_head_keeping_every_row() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    let ids = revision_ids(&graph);
    assert_eq!(ids[..2], ["974799e38366", "68d314520251"]);
    let hardening = &ids[2..];
    assert!(!hardening.is_empty());
    let head = head_of(&graph);
    // The original's tables, as this project's revisions describe them (the engine's rendering
    // is used only to obtain the statements; a plain client runs them, with no bookkeeping).
    let prepared = prepare(
        &graph,
        &PostgresStateSql,
        &options(),
        &up("68d314520251"),
        &Heads::new(),
    )
    .unwrap();
    assert_eq!(prepared.len(), 2);
    for step in &prepared {
        let script = step
            .statements
            .iter()
            .map(|s| format!("{s};\n"))
            .collect::<String>();
        exec(&db, &script);
    }
    exec(
        &db,
        "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL, \
           CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)); \
         INSERT INTO alembic_version VALUES ('68d314520251'); \
         DROP TABLE IF EXISTS identity_migrate_history;",
    );
    exec(&db, ROWS_AT_68D314520251);
    assert_eq!(describe(&db), fixture("68d314520251"));
    assert!(!relation_exists(&db, HISTORY_TABLE));
    let kept: Vec<Vec<String>> = KEPT_IN_PUBLIC
        .iter()
        .map(|t| rows_by_value(&db, "public", t, None))
        .collect();
    let original_columns: Vec<Vec<String>> = KEPT_IN_PUBLIC
        .iter()
        .map(|t| {
            texts(
                &db,
                &format!(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.{t}'::regclass \
                     AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ),
            )
        })
        .collect();
    let left_behind: Vec<Vec<String>> = LEFT_BEHIND
        .iter()
        .map(|t| full_rows(&db, &format!("public.{t}")))
        .collect();

    // Adopted as it is: the recorded revision is the current one, the hardening is pending.
    let mut engine = engine(&db, &graph);
    let status = engine.status().unwrap();
    assert_eq!(status.current, heads(&["68d314520251"]));
    assert_eq!((status.pending, status.at_head), (hardening.len(), false));
    assert!(!relation_exists(&db, HISTORY_TABLE), "status wrote nothing");
    let script = engine.script(&up("head")).unwrap();
    assert_eq!(
        script
            .steps
            .iter()
            .map(|s| s.step.revision.clone())
            .collect::<Vec<_>>(),
        hardening
    );
    assert_eq!(script.steps[0].step.heads_before, heads(&["68d314520251"]));

    let (result, events) = run_collecting(&mut engine, &up("head"));
    let reports = result.unwrap();
    assert_eq!(report_ids(&reports), hardening);
    assert!(reports.iter().all(|r| r.step.direction == Direction::Up));
    match events.first() {
        Some(Event::Planned { steps }) => assert_eq!(step_ids(steps), hardening),
        other => panic!("first event should be the plan, got {other:?}"),
    }
    assert_schema_at(&db, &graph, Some(&head));
    assert_eq!(versions(&db), [head.as_str()]);
    // No stamp: the history holds the hardening revisions that ran, nothing for the two the
    // original applied.
    let history = history(&db);
    assert_eq!(
        history
            .iter()
            .map(|h| (
                h.revision.as_str(),
                h.direction.as_str(),
                h.outcome.as_str()
            ))
            .collect::<Vec<_>>(),
        hardening
            .iter()
            .map(|id| (id.as_str(), "up", "applied"))
            .collect::<Vec<_>>()
    );

    // Every row is kept, each value the same, under the service's names where they differ;
    // the left-behind tables byte for byte, under their `legacy_` names.
    for ((table, rows), original) in KEPT_IN_PUBLIC.iter().zip(&kept).zip(&original_columns) {
        assert_eq!(
            &rows_by_value(&db, "public", table, Some(original)),
            rows,
            "{table}"
        );
    }
    for (table, rows) in LEFT_BEHIND.iter().zip(&left_behind) {
        assert!(!relation_exists(&db, table), "{table} is still there");
        assert_eq!(&full_rows(&db, &format!("legacy_{table}")), rows, "{table}");
    }
    // The types the service binds stayed: naive instants, json, text addresses.
    assert_eq!(
        texts(
            &db,
            "SELECT concat_ws(' ', pg_typeof(updated_at), pg_typeof(notification_preferences), \
             pg_typeof(last_login_ip)) FROM users WHERE username = 'alice'"
        ),
        ["timestamp without time zone json character varying"]
    );

    // At head now: a second run has nothing to do and changes nothing.
    let status = engine.status().unwrap();
    assert!(status.at_head, "{status:?}");
    assert_eq!((status.pending, status.current), (0, heads(&[&head])));
    assert!(engine.script(&up("head")).unwrap().steps.is_empty());
    let before = snapshot(&db);
    let (result, events) = run_collecting(&mut engine, &up("head"));
    assert!(result.unwrap().is_empty());
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Planned { steps } if steps.is_empty())),
        "{events:?}"
    );
    assert_eq!(snapshot(&db), before);
    for ((table, rows), original) in KEPT_IN_PUBLIC.iter().zip(&kept).zip(&original_columns) {
        assert_eq!(
            &rows_by_value(&db, "public", table, Some(original)),
            rows,
            "{table}"
        );
    }
}
