//! Seeding against a real server: counts, referential and value checks, determinism, and
//! refusal to seed a database that is not an empty identity schema.

use identity_seed::{seed, Scale, SeedError, SeedReport, TABLES};
use migrate_testkit::TestDb;

/// A fresh database upgraded to the identity schema's head by the real engine: where users
/// run `identity-migrate seed`.
fn migrated_db() -> TestDb {
    migrated_db_at("head")
}

/// A fresh database upgraded to `target` by the real engine.
fn migrated_db_at(target: &str) -> TestDb {
    let db = TestDb::new();
    let settings = migrate_postgres::url::parse_with_process_env(&db.url()).expect("test URL");
    let driver = migrate_postgres::PostgresDriver::connect(&settings, Default::default())
        .expect("connect driver");
    let graph = identity_schema::graph();
    let options = migrate_engine::Options::new(migrate_engine::RunIdentity {
        os_user: "t".into(),
        host: "t".into(),
        tool_version: "0".into(),
    });
    migrate_engine::Engine::new(Box::new(driver), &graph, options)
        .run(&migrate_engine::Intent::Upgrade(target.into()), &mut |_| {})
        .unwrap_or_else(|e| panic!("upgrade to {target}: {e}"));
    db
}

/// What seeding must leave as it found: the tables (columns, constraints, indexes), in every
/// schema of the identity graph, and the triggers on them, which `describe_schema` leaves out.
fn catalog(client: &mut postgres::Client) -> String {
    let mut out = migrate_testkit::describe_schema(client, &["public", "legacy"]);
    for row in client
        .query(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t \
             WHERE NOT t.tgisinternal ORDER BY t.tgrelid::regclass::text, t.tgname",
            &[],
        )
        .expect("list triggers")
    {
        out += &format!("trigger {}\n", row.get::<_, String>(0));
    }
    out
}

/// One md5 per table over every row's text, in id order.
fn checksums(client: &mut postgres::Client) -> Vec<(String, Option<String>)> {
    TABLES
        .iter()
        .map(|t| {
            let sql = format!("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {t} t");
            let row = client.query_one(&sql, &[]).expect("checksum");
            (t.to_string(), row.get(0))
        })
        .collect()
}

fn count(client: &mut postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).expect(sql).get(0)
}

fn assert_between(report: &SeedReport, table: &str, lo: u64, hi: u64) {
    let n = report.get(table).expect("table in report");
    assert!(
        (lo..=hi).contains(&n),
        "{table}: {n} rows, expected {lo}..={hi}"
    );
}

#[test]
fn seeds_a_small_scale_with_valid_related_rows() {
    let db = migrated_db();
    let mut client = db.client();
    let users = 2_000;
    // Head has partial expression unique indexes, CHECK constraints and triggers: all must be
    // there, as they were, after the seed.
    let schema_before = catalog(&mut client);
    for part in [
        "index uq_users_lower_email_live CREATE UNIQUE INDEX uq_users_lower_email_live ON users \
         (lower((email)::text)) WHERE (deleted_at IS NULL)",
        "constraint organizations_country_code_check CHECK",
        "trigger CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.users",
    ] {
        assert!(schema_before.contains(part), "{part} in\n{schema_before}");
    }
    let report = seed(&mut client, &Scale::users(users), 42).expect("seed");
    // Indexes and keys were dropped and recreated around the load: the schema is unchanged.
    assert_eq!(catalog(&mut client), schema_before);

    // The report is what the tables hold.
    assert_eq!(report.rows.len(), 10);
    for (table, rows) in &report.rows {
        let n = count(&mut client, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(u64::try_from(n).ok(), Some(*rows), "{table}");
    }
    assert_eq!(report.get("organizations"), Some(20));
    assert_eq!(report.get("users"), Some(users));
    assert_between(&report, "user_profiles", 850, 1150);
    assert_between(&report, "user_sessions", 3700, 4300);
    assert_between(&report, "mfa_methods", 650, 950);
    assert_between(&report, "mfa_challenges", 650, 1000);
    assert_between(&report, "email_verifications", 1950, 2250);
    assert_between(&report, "password_resets", 170, 320);
    assert_between(&report, "user_activity_logs", 9400, 10600);
    assert_between(&report, "user_preferences", 3700, 4300);
    assert_eq!(
        report.total(),
        report.rows.iter().map(|(_, n)| n).sum::<u64>()
    );

    // Shares of users: with an organization (~90 %), with MFA (~30 %), with a reset (~10 %).
    let with_org = count(
        &mut client,
        "SELECT count(*) FROM users WHERE organization_id IS NOT NULL",
    );
    assert!((1700..=1900).contains(&with_org), "{with_org}");
    let with_mfa = count(
        &mut client,
        "SELECT count(DISTINCT user_id) FROM mfa_methods",
    );
    assert!((500..=700).contains(&with_mfa), "{with_mfa}");
    let with_reset = count(
        &mut client,
        "SELECT count(DISTINCT user_id) FROM password_resets",
    );
    assert!((140..=260).contains(&with_reset), "{with_reset}");
    let managed = count(
        &mut client,
        "SELECT count(*) FROM user_profiles WHERE manager_user_id IS NOT NULL",
    );
    assert!(managed > 200, "{managed}");

    // Referential integrity (the database enforces the declared keys; these are the facts it
    // does not check).
    let checks = [
        "SELECT count(*) FROM mfa_challenges c JOIN mfa_methods m ON m.id = c.mfa_method_id \
         WHERE m.user_id <> c.user_id",
        "SELECT count(*) FROM user_profiles WHERE manager_user_id = user_id",
        "SELECT count(*) FROM user_activity_logs a WHERE session_id IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM user_sessions s WHERE s.id = a.session_id AND s.user_id = a.user_id)",
        "SELECT count(*) FROM users u LEFT JOIN organizations o ON o.id = u.organization_id \
         WHERE u.organization_id IS NOT NULL AND o.id IS NULL",
        // Application value sets.
        "SELECT count(*) FROM users WHERE status NOT IN \
         ('active','inactive','pending_verification','suspended','deleted')",
        "SELECT count(*) FROM users WHERE theme_preference NOT IN ('light','dark','auto')",
        "SELECT count(*) FROM organizations WHERE organization_type NOT IN \
         ('individual','small_business','enterprise','non_profit')",
        "SELECT count(*) FROM mfa_methods WHERE method_type NOT IN \
         ('email','sms','totp','backup_codes','webauthn')",
        // Soft deletion is consistent.
        "SELECT count(*) FROM users WHERE (status = 'deleted') <> (deleted_at IS NOT NULL)",
        // Emails: lowercase, unique (also case-insensitively).
        "SELECT count(*) FROM users WHERE email <> lower(email)",
        "SELECT count(*) - count(DISTINCT lower(email)) FROM users",
        "SELECT count(*) FROM users WHERE password_hash !~ \
         '^\\$argon2id\\$v=19\\$m=65536,t=3,p=4\\$[A-Za-z0-9+/]{22}\\$[A-Za-z0-9+/]{43}$'",
        "SELECT count(*) FROM organizations WHERE country_code !~ '^[A-Z]{2}$'",
        "SELECT count(*) FROM user_sessions WHERE access_token_jti !~ '^[0-9a-f]{64}$'",
    ];
    for sql in checks {
        assert_eq!(count(&mut client, sql), 0, "{sql}");
    }
    let deleted = count(
        &mut client,
        "SELECT count(*) FROM users WHERE deleted_at IS NOT NULL",
    );
    assert!(deleted > 20, "a few soft-deleted users: {deleted}");
    let v6 = count(
        &mut client,
        "SELECT count(*) FROM user_sessions WHERE family(ip_address::inet) = 6",
    );
    let sessions = i64::try_from(report.get("user_sessions").unwrap_or(0)).expect("a count");
    assert!(
        v6 > sessions / 5 && v6 < sessions / 2,
        "IPv6 share: {v6} of {sessions}"
    );

    // The fixed calendar, read as UTC instants (see also
    // seeding_at_68d314520251_then_upgrading_gives_what_seeding_at_head_gives).
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM users WHERE created_at < '2019-01-01 00:00:00+00' \
             OR created_at >= '2025-01-01 00:00:00+00' OR updated_at < created_at"
        ),
        0
    );

    // COPY escaping carried newlines, tabs and backslashes through, in text and in JSON.
    let escaped = count(
        &mut client,
        "SELECT count(*) FROM users WHERE bio LIKE E'%\\n%' OR bio LIKE E'%\\t%' OR bio LIKE E'%\\\\\\\\%'",
    );
    assert!(escaped > 0);
    let note: Option<String> = client
        .query_one(
            "SELECT event_metadata::jsonb ->> 'note' FROM user_activity_logs \
             WHERE action = 'support.note' LIMIT 1",
            &[],
        )
        .expect("a support note")
        .get(0);
    assert_eq!(note.as_deref(), Some("line one\nline two"));
}

#[test]
fn the_same_seed_gives_the_same_content() {
    let scale = Scale::users(500);
    let (a, b, c) = (migrated_db(), migrated_db(), migrated_db());
    let mut ca = a.client();
    let mut cb = b.client();
    let mut cc = c.client();
    let ra = seed(&mut ca, &scale, 7).expect("seed a");
    let rb = seed(&mut cb, &scale, 7).expect("seed b");
    let rc = seed(&mut cc, &scale, 8).expect("seed c");
    assert_eq!(ra, rb);
    assert_eq!(rc.get("users"), Some(500));
    let (sa, sb, sc) = (checksums(&mut ca), checksums(&mut cb), checksums(&mut cc));
    assert_eq!(sa, sb);
    for ((table, x), (_, z)) in sa.iter().zip(&sc) {
        assert_ne!(x, z, "{table}: another seed should give other rows");
    }
}

#[test]
fn a_second_seed_is_refused_and_changes_nothing() {
    let db = migrated_db();
    let mut client = db.client();
    seed(&mut client, &Scale::users(300), 1).expect("first seed");
    let before = checksums(&mut client);
    match seed(&mut client, &Scale::users(300), 2) {
        Err(SeedError::NotEmpty(tables)) => {
            let mut tables = tables;
            tables.sort();
            let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
            expected.sort();
            assert_eq!(tables, expected);
        }
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    assert_eq!(checksums(&mut client), before);
}

#[test]
fn one_non_empty_table_is_enough_to_refuse() {
    let db = migrated_db();
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO organizations (id, name, slug, organization_type, subscription_tier,
                 subscription_status, settings, is_active, is_verified, created_at, updated_at)
             VALUES ('6f1c2a9e-0000-4000-8000-000000000001', 'Pre', 'pre', 'individual', 'free',
                 'active', '{}', true, false, '2024-01-01 00:00:00', '2024-01-01 00:00:00')",
        )
        .expect("insert one organization");
    let err = seed(&mut client, &Scale::users(10), 1).expect_err("must refuse");
    assert!(matches!(&err, SeedError::NotEmpty(t) if t == &["organizations".to_string()]));
    assert!(err.to_string().contains("organizations"), "{err}");
    assert_eq!(count(&mut client, "SELECT count(*) FROM organizations"), 1);
    assert_eq!(count(&mut client, "SELECT count(*) FROM users"), 0);
}

#[test]
fn a_database_without_the_schema_is_refused() {
    let db = TestDb::new();
    let mut client = db.client();
    let err = seed(&mut client, &Scale::users(10), 1).expect_err("must refuse");
    match &err {
        SeedError::MissingTables(t) => assert_eq!(t.len(), 10),
        other => panic!("expected MissingTables, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade"), "{err}");
}

#[test]
fn scale_derives_organizations_from_users() {
    assert_eq!(Scale::users(1_000_000).organizations, 10_000);
    assert_eq!(Scale::users(50).organizations, 1);
    assert_eq!(Scale::users(0).organizations, 1);
}

#[test]
fn zero_organizations_leaves_users_without_one() {
    let db = migrated_db();
    let mut client = db.client();
    let scale = Scale {
        organizations: 0,
        users: 50,
    };
    let report = seed(&mut client, &scale, 3).expect("seed");
    assert_eq!(report.get("organizations"), Some(0));
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM users WHERE organization_id IS NOT NULL"
        ),
        0
    );
}

#[test]
fn a_failure_mid_way_leaves_nothing_behind() {
    let db = migrated_db();
    let mut client = db.client();
    // The last table loaded rejects what the seeder writes, after nine tables went in and
    // every index and key was dropped.
    client
        .batch_execute(
            "ALTER TABLE user_preferences ADD CONSTRAINT no_theme CHECK (key <> 'ui.theme')",
        )
        .expect("add a check");
    let schema_before = catalog(&mut client);
    let err = seed(&mut client, &Scale::users(200), 5).expect_err("must fail");
    assert!(matches!(err, SeedError::Postgres(_)), "{err:?}");
    assert!(err.to_string().contains("no_theme"), "{err}");
    for table in TABLES {
        assert_eq!(
            count(&mut client, &format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_eq!(catalog(&mut client), schema_before);
}

#[test]
fn comments_on_indexes_and_keys_survive_the_rebuild() {
    let db = migrated_db();
    let mut client = db.client();
    // At head the unique key on email is a partial unique index on an expression, with no
    // constraint behind it: the seed drops and rebuilds it like any other index.
    client
        .batch_execute(
            "COMMENT ON INDEX uq_users_lower_email_live IS 'lookup by email';
             COMMENT ON CONSTRAINT users_pkey ON users IS 'the key';
             COMMENT ON CONSTRAINT user_sessions_user_id_fkey ON user_sessions IS 'owner';
             COMMENT ON CONSTRAINT users_status_check ON users IS 'the statuses'",
        )
        .expect("add comments");
    seed(&mut client, &Scale::users(50), 5).expect("seed");
    let comments: Vec<Option<String>> = client
        .query_one(
            "SELECT obj_description('uq_users_lower_email_live'::regclass, 'pg_class'),
                    (SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint
                     WHERE conname = 'users_pkey'),
                    (SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint
                     WHERE conname = 'user_sessions_user_id_fkey'),
                    (SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint
                     WHERE conname = 'users_status_check')",
            &[],
        )
        .map(|row| (0..4).map(|i| row.get(i)).collect())
        .expect("read comments");
    assert_eq!(
        comments,
        [
            Some("lookup by email".into()),
            Some("the key".into()),
            Some("owner".into()),
            Some("the statuses".into())
        ]
    );
}

#[test]
fn seeding_at_68d314520251_then_upgrading_gives_what_seeding_at_head_gives() {
    // The seed is also run on databases at the last revision of the original tooling. What it
    // writes there must pass the hardening revisions' checks and conversions (naive times read
    // as UTC, JSON, addresses, CHECKs, case-insensitive keys), and come out as exactly what it
    // writes at head, where its naive UTC times go into timestamptz columns whatever the
    // session's time zone.
    let scale = Scale::users(300);
    let (old, new) = (migrated_db_at("68d314520251"), migrated_db());
    let mut old_client = old.client();
    let before = catalog(&mut old_client);
    assert!(
        before.contains("column created_at timestamp not null"),
        "{before}"
    );
    seed(&mut old_client, &scale, 11).expect("seed at 68d314520251");
    assert_eq!(catalog(&mut old_client), before);

    let mut new_client = new.client();
    // Far from UTC, and with daylight saving time.
    new_client
        .batch_execute("SET TIME ZONE 'America/St_Johns'")
        .expect("set the session time zone");
    seed(&mut new_client, &scale, 11).expect("seed at head");
    // The seed pinned UTC for its own transaction only.
    let zone: String = new_client
        .query_one("SHOW TimeZone", &[])
        .expect("show the time zone")
        .get(0);
    assert_eq!(zone, "America/St_Johns");

    drop(old_client);
    let settings = migrate_postgres::url::parse_with_process_env(&old.url()).expect("test URL");
    let driver = migrate_postgres::PostgresDriver::connect(&settings, Default::default())
        .expect("connect driver");
    let graph = identity_schema::graph();
    let options = migrate_engine::Options::new(migrate_engine::RunIdentity {
        os_user: "t".into(),
        host: "t".into(),
        tool_version: "0".into(),
    });
    let reports = migrate_engine::Engine::new(Box::new(driver), &graph, options)
        .run(&migrate_engine::Intent::Upgrade("head".into()), &mut |_| {})
        .expect("the seeded database upgrades to head");
    assert!(!reports.is_empty());

    let mut old_client = old.client();
    old_client
        .batch_execute("SET TIME ZONE 'America/St_Johns'")
        .expect("set the session time zone");
    assert_eq!(catalog(&mut old_client), catalog(&mut new_client));
    let upgraded = checksums(&mut old_client);
    assert!(
        upgraded.iter().all(|(_, sum)| sum.is_some()),
        "{upgraded:?}"
    );
    assert_eq!(upgraded, checksums(&mut new_client));
}
