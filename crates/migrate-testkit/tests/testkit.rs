//! The test kit against a real server: databases are private and go away, the oracle prints
//! what the catalog holds, and the password server checks passwords.

use migrate_testkit::{auth_server, describe_schema, TestDb};

#[test]
fn describe_schema_prints_columns_constraints_and_indexes() {
    let db = TestDb::new();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE TABLE parent (id integer PRIMARY KEY);
             CREATE TABLE child (
                 id uuid NOT NULL,
                 code varchar(20),
                 parent_id integer REFERENCES parent (id) ON DELETE SET NULL,
                 \"timestamp\" timestamp NOT NULL DEFAULT now(),
                 payload jsonb,
                 CONSTRAINT child_pkey PRIMARY KEY (id),
                 CONSTRAINT uq_child_code UNIQUE (code));
             CREATE INDEX ix_child_timestamp ON child (\"timestamp\");
             CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
             CREATE SCHEMA legacy;
             CREATE TABLE legacy.t (n bigint, at timestamptz);",
        )
        .expect("create tables");
    let expected = "\
table child
  column id uuid not null
  column code varchar(20) null
  column parent_id integer null
  column timestamp timestamp not null default now()
  column payload jsonb null
  constraint child_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE SET NULL
  constraint child_pkey PRIMARY KEY (id)
  constraint uq_child_code UNIQUE (code)
  index child_pkey CREATE UNIQUE INDEX child_pkey ON child (id)
  index ix_child_timestamp CREATE INDEX ix_child_timestamp ON child (\"timestamp\")
  index uq_child_code CREATE UNIQUE INDEX uq_child_code ON child (code)

table parent
  column id integer not null
  constraint parent_pkey PRIMARY KEY (id)
  index parent_pkey CREATE UNIQUE INDEX parent_pkey ON parent (id)
";
    assert_eq!(describe_schema(&mut client, &["public"]), expected);
    assert_eq!(
        describe_schema(&mut client, &["legacy"]),
        "table legacy.t\n  column n bigint null\n  column at timestamptz null\n"
    );
    assert_eq!(describe_schema(&mut client, &["nothing_here"]), "");
}

#[test]
fn test_databases_are_distinct_and_dropped() {
    let (a, b) = (TestDb::new(), TestDb::new());
    assert_ne!(a.name(), b.name());
    assert!(a.url().ends_with(&format!("/{}", a.name())));
    let name = a.name().to_string();
    let mut other = b.client();
    let exists = |c: &mut postgres::Client| {
        c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .expect("query pg_database")
            .is_some()
    };
    assert!(exists(&mut other));
    let _still_connected = a.client();
    drop(a);
    assert!(!exists(&mut other), "{name} survived its TestDb");
}

#[test]
fn auth_server_checks_passwords() {
    let server = auth_server();
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls)
        .expect("log in with the right password");
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .expect("ask who we are")
        .get(0);
    assert_eq!(user, server.user);
    let wrong = postgres::Client::connect(&server.url_with_password("wrong"), postgres::NoTls);
    let err = wrong.err().expect("a wrong password must be refused");
    assert_eq!(
        err.as_db_error().map(|e| e.code()),
        Some(&postgres::error::SqlState::INVALID_PASSWORD),
        "unexpected error: {err:?}"
    );
}
