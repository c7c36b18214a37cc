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
    let mut engine = engine(&db, &graph);
    let status = engine.status().unwrap();
    assert_eq!(status.current, heads(&["974799e38366"]));
    assert_eq!((status.pending, status.at_head), (1, false));
    // Status reads only: it creates no table.
    assert!(!relation_exists(&db, HISTORY_TABLE));

    let (result, events) = run_collecting(&mut engine, &up("head"));
    let reports = result.unwrap();
    // One step, from the recorded revision: no stamp, nothing re-applied.
    assert_eq!(report_ids(&reports), ["68d314520251"]);
    assert_eq!(reports[0].step.direction, Direction::Up);
    assert_eq!(reports[0].step.heads_before, heads(&["974799e38366"]));
    match events.first() {
        Some(Event::Planned { steps }) => assert_eq!(step_ids(steps), ["68d314520251"]),
        other => panic!("first event should be the plan, got {other:?}"),
    }

    assert_eq!(describe(&db), fixture("68d314520251"));
    assert_eq!(versions(&db), ["68d314520251"]);
    let history = history(&db);
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].revision.as_str(), history[0].outcome.as_str()),
        ("68d314520251", "applied")
    );

    // The tables the schema keeps keep every row, byte for byte.
    assert_eq!(full_rows(&db, "user_sessions_simple"), sessions);
    assert_eq!(full_rows(&db, "user_activities_simple"), activities);
    // The dropped tables' rows arrive in their successors.
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
            "SELECT id || '|' || user_id || '|' || email || '|' || token_hash || '|' || expires_at \
             FROM email_verifications ORDER BY id",
        ),
        verifications
    );
    // What users_simple left empty got the application's defaults, and what it said is kept.
    assert_eq!(
        texts(
            &db,
            "SELECT concat_ws('|', language_code, timezone, status, is_verified, is_active, \
             failed_login_attempts, bio, created_at IS NOT NULL, deleted_at) FROM users ORDER BY id"
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
            "SELECT created_at::text FROM users WHERE email = 'alice@example.com'"
        ),
        ["2023-12-31 23:59:59.123456"]
    );

    let status = engine.status().unwrap();
    assert!(status.at_head);
    assert_eq!(status.pending, 0);
}

#[test]
fn a_database_left_at_68d314520251_by_alembic_is_already_at_head_and_migrate_does_nothing() {
    let db = TestDb::new();
    let graph = identity_schema::graph();
    // The original's tables, as this project's revisions describe them (the engine's rendering
    // is used only to obtain the statements; a plain client runs them, with no bookkeeping).
    let prepared = prepare(
        &graph,
        &PostgresStateSql,
        &options(),
        &up("head"),
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
         DROP TABLE IF EXISTS identity_migrate_history; \
         INSERT INTO users (id, email, password_hash, language_code, timezone, theme_preference, \
           notification_preferences, privacy_settings, status, is_verified, is_active, \
           failed_login_attempts, created_at, updated_at) VALUES \
           ('11111111-1111-1111-1111-111111111111', 'a@x.io', 'h', 'en', 'UTC', 'dark', '{}', '{}', \
            'active', true, true, 0, '2024-01-01', '2024-01-01');",
    );
    assert_eq!(describe(&db), fixture("68d314520251"));
    assert!(!relation_exists(&db, HISTORY_TABLE));
    let users = full_rows(&db, "users");

    let mut engine = engine(&db, &graph);
    let status = engine.status().unwrap();
    assert!(status.at_head, "{status:?}");
    assert_eq!(status.pending, 0);
    assert_eq!(status.current, heads(&["68d314520251"]));

    let script = engine.script(&up("head")).unwrap();
    assert!(script.steps.is_empty(), "{script:?}");

    let (result, events) = run_collecting(&mut engine, &up("head"));
    assert!(result.unwrap().is_empty());
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Planned { steps } if steps.is_empty())),
        "{events:?}"
    );
    assert_eq!(describe(&db), fixture("68d314520251"));
    assert_eq!(versions(&db), ["68d314520251"]);
    assert!(history(&db).is_empty());
    assert_eq!(full_rows(&db, "users"), users);
}
