//! Data checks that refuse a revision, naming the offending rows, before it changes anything.
//!
//! The withdrawn 0.1.0 revisions use some of these too: what those render must not change
//! (`tests/withdrawn.rs` pins their checksums), so a helper they call keeps its output.
//!
//! PostgreSQL would refuse most of these changes by itself, but with a message that names at
//! best one value (`invalid input syntax for type inet: "x"`) or none (`check constraint ... is
//! violated by some row`). Each check here is an `Op::Sql` placed before the first change of its
//! revision: a `DO` block that counts the offending rows and raises an exception listing the
//! first 20 of them as `table.id: what`. A revision runs in one transaction, so the exception
//! also means that nothing of it stays.
//!
//! The checks are PostgreSQL only (`sqlite: None`): SQLite has no procedural block to raise
//! from. There, the constraint or index itself refuses the offending rows when the table is
//! rebuilt (`CHECK constraint failed: <name>`, `UNIQUE constraint failed: <index>`), in the
//! same transaction, so nothing changes either; only the list of rows is missing.

use migrate_core::render::{quote_ident, quote_literal};
use migrate_core::{Op, RawSql};

/// How many offending rows an exception lists; the count says how many there are in all.
const LISTED: usize = 20;

/// A CHECK constraint a revision adds: its table, name, the column it guards and its expression.
///
/// Kept as data so that the constraint and the check that reports its violations before it is
/// added are written once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Check {
    /// The table.
    pub table: &'static str,
    /// The constraint's name.
    pub name: &'static str,
    /// The one column the expression reads (shown with each offending row).
    pub column: &'static str,
    /// The boolean expression, as SQL.
    pub expr: &'static str,
    /// Its SQLite spelling, where `expr` is PostgreSQL's own.
    pub sqlite: Option<&'static str>,
}

/// A `DO` block that raises `problem` when `offenders` returns rows.
///
/// `offenders` is a `SELECT` of one text column `line` per offending row. The block counts them
/// all, lists the first [`LISTED`] in `line` order (stable from run to run), and raises with
/// `errcode`, so the operator sees what to fix and a client sees the usual SQLSTATE.
fn refuse_if_any(
    description: &str,
    problem: &str,
    errcode: &str,
    hint: &str,
    offenders: &str,
) -> Op {
    refuse_if_any_unless(description, problem, errcode, hint, offenders, &[])
}

/// [`refuse_if_any`], skipping the search for offenders when every statement of `proof` runs
/// without a data error: a scan that casts every value proves them all valid at a twentieth of
/// the cost of testing each in PL/pgSQL, and only when a cast fails are the offenders found.
fn refuse_if_any_unless(
    description: &str,
    problem: &str,
    errcode: &str,
    hint: &str,
    offenders: &str,
    proof: &[String],
) -> Op {
    // The message is a RAISE format string: `%` would be a placeholder and `'` would end it.
    assert!(
        !problem.contains(['%', '\'']),
        "check message {problem:?} must not contain % or '"
    );
    let offenders = offenders.trim_end().replace('\n', "\n        ");
    let proof = if proof.is_empty() {
        String::new()
    } else {
        format!(
            "\
BEGIN
        {};
        RETURN;
    EXCEPTION WHEN data_exception THEN
        NULL; -- a value does not cast: find and list every one
    END;
    ",
            proof.join(";\n        ")
        )
    };
    let sql = format!(
        "\
DO $check$
DECLARE
    total bigint;
    listed text;
BEGIN
    {proof}SELECT count(*), string_agg(line, '; ' ORDER BY line) FILTER (WHERE n <= {LISTED})
    INTO total, listed
    FROM (SELECT line, row_number() OVER (ORDER BY line) AS n FROM (
        {offenders}
    ) AS offending) AS numbered;
    IF total > 0 THEN
        RAISE EXCEPTION '{problem} (% found, nothing was changed; up to {LISTED} listed): %', total, listed
            USING ERRCODE = {errcode}, HINT = {hint};
    END IF;
END
$check$",
        errcode = quote_literal(errcode),
        hint = quote_literal(hint),
    );
    postgres_only(description, sql)
}

/// Raw PostgreSQL, skipped on other dialects.
fn postgres_only(description: &str, sql: String) -> Op {
    Op::Sql(RawSql {
        description: description.to_owned(),
        postgres: Some(sql),
        sqlite: None,
    })
}

/// `'<table>.' || id || ': <column> = ' || quote_nullable(<column>::text)`: an offending row,
/// with its value.
fn row_with_value(table: &str, column: &str) -> String {
    format!(
        "{} || id || {} || quote_nullable({}::text)",
        quote_literal(&format!("{table}.")),
        quote_literal(&format!(": {column} = ")),
        quote_ident(column)
    )
}

/// The session-local helper the address check calls, created in `pg_temp` so that it leaves no
/// trace in the schema (and dropped by [`drop_inet_helper`] once the check has run).
///
/// It tries the cast: PostgreSQL 15 has no `pg_input_is_valid`, and a regular expression would
/// disagree with the `inet` parser at the edges.
pub(super) fn create_inet_helper() -> Op {
    create_cast_helper("inet", "whether a text is an IP address")
}

/// Drops the function of [`create_inet_helper`]: the migrating session outlives the revision.
pub(super) fn drop_inet_helper() -> Op {
    drop_cast_helper("inet", "drop the helper of the address check")
}

/// The helper of [`uuids`]: whether a text is a UUID (as [`create_inet_helper`]).
pub(super) fn create_uuid_helper() -> Op {
    create_cast_helper("uuid", "whether a text is a UUID")
}

/// Drops the function of [`create_uuid_helper`].
pub(super) fn drop_uuid_helper() -> Op {
    drop_cast_helper("uuid", "drop the helper of the UUID check")
}

/// `pg_temp.identity_is_<ty>(text)`: whether the text casts to `ty`.
fn create_cast_helper(ty: &str, what: &str) -> Op {
    postgres_only(
        &format!("helper for a data check: {what}"),
        format!(
            "\
CREATE OR REPLACE FUNCTION pg_temp.identity_is_{ty}(value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $helper$
BEGIN
    PERFORM value::{ty};
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$helper$"
        ),
    )
}

fn drop_cast_helper(ty: &str, description: &str) -> Op {
    postgres_only(
        description,
        format!("DROP FUNCTION pg_temp.identity_is_{ty}(text)"),
    )
}

/// Refuses when a `(table, column)` holds a value that is not an IP address (needs
/// [`create_inet_helper`]).
pub(super) fn ip_addresses(columns: &[(&str, &str)]) -> Op {
    not_castable(
        "inet",
        columns,
        "refuse IP address columns holding text that is not an IP address",
        "cannot convert the IP address columns to inet: some values are not IP addresses",
        "correct these values (or set them to NULL, which means unknown), then upgrade again",
    )
}

/// Refuses when a `(table, column)` holds a value that is not an IP address, before a CHECK
/// that says so is validated (needs [`create_inet_helper`] when one is not).
pub(super) fn valid_ip_addresses(columns: &[(&str, &str)]) -> Op {
    castable_or_refused(
        "inet",
        columns,
        "refuse IP address columns holding text that is not an IP address",
        "cannot check that the IP address columns hold IP addresses: some values are not",
        "correct these values (or set them to NULL, which means unknown), then upgrade again",
    )
}

/// Refuses when a `(table, column)` holds a value that is not a UUID (needs
/// [`create_uuid_helper`] when one is not).
pub(super) fn uuids(columns: &[(&str, &str)]) -> Op {
    castable_or_refused(
        "uuid",
        columns,
        "refuse text that is not a UUID in columns about to become uuid",
        "cannot convert to uuid: some values are not UUIDs",
        "correct these values (or set them to NULL, which means unknown), then upgrade again",
    )
}

/// [`not_castable`], proven first by one scan per column that casts every value.
fn castable_or_refused(
    ty: &str,
    columns: &[(&str, &str)],
    description: &str,
    problem: &str,
    hint: &str,
) -> Op {
    let proof: Vec<String> = columns
        .iter()
        .map(|(table, column)| {
            format!(
                "PERFORM count({}::{ty}) FROM {}",
                quote_ident(column),
                quote_ident(table)
            )
        })
        .collect();
    refuse_if_any_unless(
        description,
        problem,
        "invalid_text_representation",
        hint,
        &offenders_of(ty, columns),
        &proof,
    )
}

/// Refuses when a `(table, column)` holds a value that `pg_temp.identity_is_<ty>` rejects.
fn not_castable(
    ty: &str,
    columns: &[(&str, &str)],
    description: &str,
    problem: &str,
    hint: &str,
) -> Op {
    refuse_if_any(
        description,
        problem,
        "invalid_text_representation",
        hint,
        &offenders_of(ty, columns),
    )
}

/// The rows of `(table, column)`s whose value `pg_temp.identity_is_<ty>` rejects.
fn offenders_of(ty: &str, columns: &[(&str, &str)]) -> String {
    columns
        .iter()
        .map(|(table, column)| {
            let c = quote_ident(column);
            format!(
                "SELECT {} AS line FROM {} WHERE {c} IS NOT NULL AND NOT pg_temp.identity_is_{ty}({c})",
                row_with_value(table, column),
                quote_ident(table)
            )
        })
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n")
}

/// Refuses when rows violate one of `checks` (which are about to be added).
pub(super) fn rows_pass(checks: &[Check]) -> Op {
    let rules: Vec<(&str, &str, String)> = checks
        .iter()
        .map(|c| (c.table, c.column, c.expr.to_owned()))
        .collect();
    rules_pass(&rules)
}

/// [`rows_pass`] for rules given as `(table, column, expression)`, such as a check's
/// expression spelled with the names its columns have before a rename.
pub(super) fn rules_pass(rules: &[(&str, &str, String)]) -> Op {
    let offenders: Vec<String> = rules
        .iter()
        .map(|(table, column, expr)| {
            // NOT of a NULL is NULL, not true: a row the CHECK would let through is not listed.
            format!(
                "SELECT {} AS line FROM {} WHERE NOT ({expr})",
                row_with_value(table, column),
                quote_ident(table),
            )
        })
        .collect();
    refuse_if_any(
        "refuse rows that the new CHECK constraints would reject",
        "cannot add the CHECK constraints: some rows hold a value outside the allowed set",
        "check_violation",
        "correct these values, then upgrade again",
        &offenders.join("\nUNION ALL\n"),
    )
}

/// Refuses, before a downgrade restores `NOT NULL` on `(table, column)`s, when rows written
/// since the upgrade hold NULL there.
pub(super) fn no_nulls_before_downgrade(columns: &[(&str, &str)]) -> Op {
    let offenders: Vec<String> = columns
        .iter()
        .map(|(table, column)| {
            format!(
                "SELECT {} || id || {} AS line FROM {} WHERE {} IS NULL",
                quote_literal(&format!("{table}.")),
                quote_literal(&format!(": {column} IS NULL")),
                quote_ident(table),
                quote_ident(column)
            )
        })
        .collect();
    refuse_if_any(
        "refuse NULLs in columns the downgrade makes NOT NULL again",
        "cannot restore NOT NULL: rows written since the upgrade hold no value where the older \
         schema requires one",
        "not_null_violation",
        "give these rows a value (or delete them), then downgrade again",
        &offenders.join("\nUNION ALL\n"),
    )
}

/// Refuses, before a downgrade narrows `(table, column)` back to `varchar(length)`, when rows
/// hold a longer value.
pub(super) fn fit_before_downgrade(columns: &[(&str, &str, u32)]) -> Op {
    let offenders: Vec<String> = columns
        .iter()
        .map(|(table, column, length)| {
            let c = quote_ident(column);
            format!(
                "SELECT {} || id || {} || char_length({c}) || {} AS line FROM {} \
                 WHERE char_length({c}) > {length}",
                quote_literal(&format!("{table}.")),
                quote_literal(&format!(": {column} holds ")),
                quote_literal(&format!(" characters (at most {length})")),
                quote_ident(table),
            )
        })
        .collect();
    refuse_if_any(
        "refuse values too long for the types the downgrade restores",
        "cannot restore the shorter column types: rows written since the upgrade hold longer \
         values",
        "string_data_right_truncation",
        "shorten these values, then downgrade again",
        &offenders.join("\nUNION ALL\n"),
    )
}

/// Refuses when rows of `table` share the same `columns` (all of them non-NULL), before a
/// unique key on them is created; `direction` ("upgrade", "downgrade") goes into the hint.
pub(super) fn unique_together(table: &str, columns: &[&str], direction: &str) -> Op {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let key = cols
        .iter()
        .map(|c| format!("quote_nullable({c}::text)"))
        .collect::<Vec<_>>()
        .join(" || ', ' || ");
    let listed = columns.join(", ");
    refuse_if_any(
        &format!("refuse rows of {table} sharing ({listed}) before making them unique"),
        &format!("cannot make {table} ({listed}) unique: several rows hold the same values"),
        "unique_violation",
        &format!(
            "change or remove all but one of each group, then {direction} again"
        ),
        &format!(
            "SELECT {key} || ': {table}.' || string_agg(id::text, ', {table}.' ORDER BY id) AS line\n\
             FROM {t} WHERE {not_null}\n\
             GROUP BY {group} HAVING count(*) > 1",
            t = quote_ident(table),
            not_null = cols
                .iter()
                .map(|c| format!("{c} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND "),
            group = cols.join(", "),
        ),
    )
}

/// Refuses when two rows of `users` not soft-deleted (`deleted_at IS NULL`) hold the same
/// `column` up to case: what the unique index on `lower(column)` about to be created forbids.
pub(super) fn live_users_unique_ignoring_case(column: &str) -> Op {
    let c = quote_ident(column);
    refuse_if_any(
        &format!("refuse live users whose {column} differs only by case"),
        &format!(
            "cannot make users.{column} unique up to case among live users: some values are held \
             by several live users"
        ),
        "unique_violation",
        "merge these accounts, change all but one of the values, or soft-delete the extra users \
         (set deleted_at), then upgrade again",
        &format!(
            "SELECT quote_literal(lower({c})) || ': users.' || string_agg(id::text, ', users.' ORDER BY id) AS line\n\
             FROM users WHERE deleted_at IS NULL AND {c} IS NOT NULL\n\
             GROUP BY lower({c}) HAVING count(*) > 1"
        ),
    )
}

/// Refuses when two rows of `users`, soft-deleted ones included, hold exactly the same `column`:
/// what the plain `UNIQUE (column)` about to be restored forbids.
pub(super) fn all_users_unique(column: &str) -> Op {
    let c = quote_ident(column);
    refuse_if_any(
        &format!("refuse users sharing a {column}, before restoring UNIQUE ({column})"),
        &format!(
            "cannot restore UNIQUE (users.{column}): since the upgrade, several users (soft-deleted \
             ones included) hold the same value"
        ),
        "unique_violation",
        "change or remove all but one of these users (the old schema has room for one only), \
         then downgrade again",
        &format!(
            "SELECT quote_literal({c}) || ': users.' || string_agg(id::text, ', users.' ORDER BY id) AS line\n\
             FROM users WHERE {c} IS NOT NULL\n\
             GROUP BY {c} HAVING count(*) > 1"
        ),
    )
}

/// Why a revision allows `unknown-sql` for its checks: lint cannot read a `DO` block, and these
/// only read (`trace` measures ACCESS SHARE on the tables they count, nothing stronger).
pub(super) const CHECKS_ONLY_READ: &str = "its DO blocks are the data checks of checks.rs: they only read (ACCESS SHARE, as `identity-migrate trace` measures) and raise before anything changes";
