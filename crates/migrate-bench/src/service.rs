//! `migrate-bench --service`: the identity service's login lookup and user insert at
//! `68d314520251` and at head, side by side in one run.
//!
//! Two databases are migrated to `68d314520251` by the engine and seeded with the same data
//! (`identity_seed`, N users); the second is then migrated to head, and that upgrade is timed.
//! Then, in rounds that alternate between the two databases (so that load on the machine hits
//! both alike):
//!
//! - the login lookup as SQLAlchemy compiles it for the service (`SELECT` of every model column
//!   of `users` `WHERE users.email = $1::VARCHAR`), one prepared statement, an existing email
//!   per query, timed per query;
//! - the user insert as SQLAlchemy compiles it (`INSERT` naming all 28 model columns with the
//!   ORM's casts, the Python defaults filled in, NULL for the rest), one transaction per insert
//!   as the service commits per request, timed per insert.
//!
//! Parameters are sent as text into the ORM's casts (`$n::UUID`, `$n::VARCHAR`...). The plan of
//! the lookup on each database is reported too. `--quick` seeds 2,000 users and runs a few
//! hundred statements: a check that the harness works, in seconds.

use super::{environment, fmt_ms, loadavg, ms, progress, Res, Row, Stats};
use identity_schema::{graph, models, WITHDRAWN_AFTER};
use migrate_core::{ColumnType, TableName};
use migrate_engine::{Engine, Intent};
use migrate_postgres::{PostgresDriver, SessionSettings};
use migrate_testkit::TestDb;
use postgres::types::Type;
use postgres::Client;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How much the service benchmark does.
pub(crate) struct ServicePlan {
    pub(crate) users: u64,
    /// Lookups per database per round.
    pub(crate) lookups: usize,
    /// Inserts per database per round.
    pub(crate) inserts: usize,
    pub(crate) rounds: usize,
}

impl ServicePlan {
    pub(crate) fn new(quick: bool, users: Option<u64>) -> ServicePlan {
        if quick {
            ServicePlan {
                users: users.unwrap_or(2_000),
                lookups: 100,
                inserts: 50,
                rounds: 2,
            }
        } else {
            ServicePlan {
                users: users.unwrap_or(1_000_000),
                lookups: 4_000,
                inserts: 500,
                rounds: 5,
            }
        }
    }
}

/// One of the two databases.
struct Side {
    label: &'static str,
    db: TestDb,
    client: Client,
    lookup: postgres::Statement,
    insert: postgres::Statement,
    lookups: Vec<Duration>,
    inserts: Vec<Duration>,
}

pub(crate) fn run(plan: &ServicePlan) -> Res<String> {
    let mut out = String::new();
    environment(&mut out, None)?;
    let load_start = loadavg();
    let graph = graph();
    let mut setup: Vec<(String, Duration)> = Vec::new();

    let mut sides = Vec::new();
    for (label, to_head) in [("68d314520251", false), ("head", true)] {
        let db = TestDb::new();
        migrate(&db, &graph, WITHDRAWN_AFTER)?;
        progress(&format!("{label}: seed {} users", plan.users));
        let started = Instant::now();
        let mut client = db.client();
        identity_seed::seed(&mut client, &identity_seed::Scale::users(plan.users), 42)
            .map_err(|e| format!("seed: {e}"))?;
        setup.push((
            format!("seed {} users at 68d314520251 ({label} side)", plan.users),
            started.elapsed(),
        ));
        if to_head {
            progress("head: migrate 68d314520251 → head");
            let started = Instant::now();
            migrate(&db, &graph, "head")?;
            setup.push((
                format!(
                    "`migrate` 68d314520251 → head at {} users (engine, in-process)",
                    plan.users
                ),
                started.elapsed(),
            ));
        }
        let mut client = db.client();
        client
            .batch_execute("VACUUM (ANALYZE) users")
            .map_err(|e| format!("VACUUM: {e}"))?;
        let (lookup, insert) = prepare(&mut client)?;
        sides.push(Side {
            label,
            db,
            client,
            lookup,
            insert,
            lookups: Vec::new(),
            inserts: Vec::new(),
        });
    }

    // The same existing emails on both sides (same seed, same users).
    let emails: Vec<String> = sides[0]
        .client
        .query(
            "SELECT email FROM users ORDER BY md5(id::text) LIMIT $1",
            &[&i64::try_from(plan.lookups).unwrap_or(i64::MAX)],
        )
        .map_err(|e| format!("sample emails: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut plans = Vec::new();
    for side in &mut sides {
        plans.push(plan_of(&mut side.client, &emails[0])?);
    }

    progress("rounds");
    let mut serial = 0u64;
    for round in 0..plan.rounds {
        // Alternate which side goes first.
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for &i in &order {
            let side = &mut sides[i];
            for email in &emails {
                let started = Instant::now();
                let rows = side
                    .client
                    .query(&side.lookup, &[email])
                    .map_err(|e| format!("{} lookup: {e}", side.label))?;
                side.lookups.push(started.elapsed());
                if rows.len() != 1 {
                    return Err(format!(
                        "{} lookup of {email}: {} rows",
                        side.label,
                        rows.len()
                    ));
                }
            }
        }
        for &i in &order {
            let side = &mut sides[i];
            for _ in 0..plan.inserts {
                serial += 1;
                let values = insert_values(round, serial);
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let started = Instant::now();
                side.client
                    .execute(&side.insert, &params)
                    .map_err(|e| format!("{} insert: {e}", side.label))?;
                side.inserts.push(started.elapsed());
            }
        }
    }

    let _ = writeln!(
        out,
        "{} users ({} lookups and {} inserts per database, in {} alternating rounds). Load average (1, 5, 15 min) at start: {load_start}; at end: {}.\n",
        plan.users,
        plan.lookups * plan.rounds,
        plan.inserts * plan.rounds,
        plan.rounds,
        loadavg()
    );
    out.push_str("## Setup\n\n| step | took |\n|---|---:|\n");
    for (what, t) in &setup {
        let _ = writeln!(out, "| {what} | {:.1} s |", t.as_secs_f64());
    }
    out.push('\n');
    let mut rows = Vec::new();
    for (side, plan_text) in sides.iter().zip(&plans) {
        rows.push(
            Row::new(
                "S",
                &format!(
                    "login lookup `users.email = $1::VARCHAR`, at {}",
                    side.label
                ),
                Stats::of(side.lookups.clone()),
            )
            .note(&format!("plan: {plan_text}")),
        );
    }
    for side in &sides {
        rows.push(Row::new(
            "S",
            &format!(
                "user insert (the ORM's 28-column INSERT, own transaction), at {}",
                side.label
            ),
            Stats::of(side.inserts.clone()),
        ));
    }
    super::table(&mut out, &rows);
    let lookup = compare(&sides[0].lookups, &sides[1].lookups);
    let insert = compare(&sides[0].inserts, &sides[1].inserts);
    out.push_str("## Aims\n\n| aim | measured | verdict |\n|---|---|---|\n");
    for (what, (old, new, diff)) in [("login lookup", lookup), ("user insert", insert)] {
        let _ = writeln!(
            out,
            "| {what} at head no slower than at 68d314520251 (medians, within 10%) | {} vs {} ({diff:+.1}%) | {} |",
            fmt_ms(new),
            fmt_ms(old),
            if diff <= 10.0 { "**met**" } else { "**not met**" }
        );
    }
    out.push('\n');
    for side in sides {
        drop(side.client);
        drop(side.db);
    }
    Ok(out)
}

/// Medians of the old and the new side, and how much slower the new one is, in percent.
fn compare(old: &[Duration], new: &[Duration]) -> (Duration, Duration, f64) {
    let (o, n) = (
        Stats::of(old.to_vec()).median,
        Stats::of(new.to_vec()).median,
    );
    (o, n, (ms(n) / ms(o).max(f64::MIN_POSITIVE) - 1.0) * 100.0)
}

fn migrate(db: &TestDb, graph: &migrate_core::RevisionGraph, target: &str) -> Res<()> {
    let settings = super::settings_of(db)?;
    let driver = PostgresDriver::connect(&settings, SessionSettings::default())
        .map_err(|e| format!("connect: {e}"))?;
    Engine::new(Box::new(driver), graph, super::options(false))
        .run(&Intent::Upgrade(target.to_owned()), &mut |_| {})
        .map_err(|e| format!("migrate to {target}: {e}"))?;
    Ok(())
}

/// The `users` columns of the service's model, with the cast SQLAlchemy's asyncpg dialect puts
/// on a bind of each (the model's columns are the database's at `68d314520251` and at head).
fn model_columns() -> Vec<(String, &'static str)> {
    models().tables[&TableName::new("users")]
        .columns
        .iter()
        .map(|c| {
            let cast = match c.ty {
                ColumnType::Uuid => "UUID",
                ColumnType::Json | ColumnType::Jsonb => "JSON",
                ColumnType::Timestamp => "TIMESTAMP WITHOUT TIME ZONE",
                ColumnType::Boolean => "BOOLEAN",
                ColumnType::Integer => "INTEGER",
                _ => "VARCHAR",
            };
            (c.name.clone(), cast)
        })
        .collect()
}

/// The login lookup as SQLAlchemy compiles it: every model column, by email.
fn lookup_sql() -> String {
    let list = model_columns()
        .iter()
        .map(|(c, _)| format!("users.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {list} FROM users WHERE users.email = $1::VARCHAR")
}

fn prepare(client: &mut Client) -> Res<(postgres::Statement, postgres::Statement)> {
    let columns = model_columns();
    let lookup = client
        .prepare_typed(&lookup_sql(), &[Type::TEXT])
        .map_err(|e| format!("prepare the lookup: {e}"))?;
    let names = columns
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let binds = columns
        .iter()
        .enumerate()
        .map(|(i, (_, cast))| format!("${}::{cast}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = client
        .prepare_typed(
            &format!("INSERT INTO users ({names}) VALUES ({binds})"),
            &vec![Type::TEXT; columns.len()],
        )
        .map_err(|e| format!("prepare the insert: {e}"))?;
    Ok((lookup, insert))
}

/// The first line of the lookup's plan: which index (if any) serves it.
fn plan_of(client: &mut Client, email: &str) -> Res<String> {
    let rows = client
        .query(&format!("EXPLAIN {}", lookup_sql()), &[&email])
        .map_err(|e| format!("EXPLAIN: {e}"))?;
    let first: String = rows.first().map(|r| r.get(0)).unwrap_or_default();
    Ok(first
        .split("  (cost")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// What the ORM binds for a new user: the registration's values, the model's Python defaults,
/// NULL for the rest (text, in the model's column order).
// The id's fields take the low bits on purpose: truncation is the point.
#[allow(clippy::cast_possible_truncation)]
fn insert_values(round: usize, serial: u64) -> Vec<Option<String>> {
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        serial as u32,
        round as u16,
        (serial >> 32) & 0xfff,
        serial & 0xfff,
        serial.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
    );
    let now = "2026-12-03 12:00:00.123456".to_owned();
    model_columns()
        .iter()
        .map(|(name, _)| {
            let v = match name.as_str() {
                "id" => id.clone(),
                "email" => format!("bench.{serial}.{round}@example.com"),
                "username" => format!("bench_{serial}_{round}"),
                "password_hash" => "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".to_owned(),
                "first_name" => "Grace".to_owned(),
                "last_name" => "Hopper".to_owned(),
                "language_code" => "en".to_owned(),
                "timezone" => "UTC".to_owned(),
                "theme_preference" => "light".to_owned(),
                "notification_preferences" | "privacy_settings" => "{}".to_owned(),
                "status" => "pending_verification".to_owned(),
                "is_verified" => "false".to_owned(),
                "is_active" => "true".to_owned(),
                "failed_login_attempts" => "0".to_owned(),
                "created_at" | "updated_at" => now.clone(),
                _ => return None,
            };
            Some(v)
        })
        .collect()
}
