//! Bulk-load preparation, as `pg_restore` does it: drop the indexes and key constraints of the
//! (empty) tables, load, then recreate them from their own catalog definitions.
//!
//! Why: loaded row by row into live indexes, a million users cost ~12 million random B-tree
//! insertions (each with a full-page image in the WAL after every checkpoint) and ~11 million
//! per-row foreign-key trigger queries. Building each index once from sorted data and
//! validating each foreign key with one join is several times faster. Everything happens in the
//! seeding transaction, so other sessions only ever see the schema as it was, and a failure
//! leaves it untouched.

use postgres::Transaction;

/// Finds the foreign keys that involve `tables`, their primary-key and unique constraints and
/// their other indexes; drops them; returns the statements that recreate them (and their
/// comments), in an order that works: keys, then indexes, then foreign keys.
///
/// Left alone, because a drop and recreate would lose something: exclusion constraints,
/// indexes that are clustered on or are the replica identity, and the constraints they back.
pub(crate) fn defer_indexes_and_keys(
    tx: &mut Transaction<'_>,
    tables: &[&str],
) -> Result<Vec<String>, postgres::Error> {
    let rows = tx.query(
        "WITH t AS (SELECT to_regclass(quote_ident(n)) AS oid FROM unnest($1::text[]) n),
         kept AS (SELECT indexrelid FROM pg_index WHERE indisclustered OR indisreplident),
         deferred AS (
             SELECT CASE c.contype WHEN 'f' THEN 1 ELSE 2 END AS phase,
                    c.conrelid::regclass::text AS tbl, c.conname::text AS name,
                    format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname)
                        AS drop_sql,
                    format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                           pg_get_constraintdef(c.oid)) AS create_sql,
                    format('COMMENT ON CONSTRAINT %I ON %s IS %L', c.conname,
                           c.conrelid::regclass, d.description) AS comment_sql
             FROM pg_constraint c
             LEFT JOIN pg_description d
                 ON d.objoid = c.oid AND d.classoid = 'pg_constraint'::regclass
             WHERE (c.contype = 'f'
                    AND (c.conrelid IN (SELECT oid FROM t) OR c.confrelid IN (SELECT oid FROM t)))
                OR (c.contype IN ('p', 'u') AND c.conrelid IN (SELECT oid FROM t)
                    AND c.conindid NOT IN (SELECT indexrelid FROM kept))
             UNION ALL
             SELECT 3, i.indrelid::regclass::text, i.indexrelid::regclass::text,
                    format('DROP INDEX %s', i.indexrelid::regclass),
                    pg_get_indexdef(i.indexrelid),
                    format('COMMENT ON INDEX %s IS %L', i.indexrelid::regclass, d.description)
             FROM pg_index i
             LEFT JOIN pg_description d
                 ON d.objoid = i.indexrelid AND d.classoid = 'pg_class'::regclass
             WHERE i.indrelid IN (SELECT oid FROM t)
               AND i.indexrelid NOT IN (SELECT indexrelid FROM kept)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                               WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                 AND c.contype IN ('p', 'u', 'x')))
         SELECT phase, drop_sql, create_sql, comment_sql FROM deferred
         ORDER BY phase, tbl, name",
        &[&tables],
    )?;
    let mut drops = Vec::new();
    let mut creates: [Vec<String>; 3] = Default::default();
    let mut comments = Vec::new();
    for row in &rows {
        let phase: i32 = row.get(0);
        drops.push(row.get::<_, String>(1));
        // Foreign keys (phase 1) go last: they need the referenced keys back first.
        let slot = match phase {
            1 => 2,
            2 => 0,
            _ => 1,
        };
        creates[slot].push(row.get(2));
        // format() with a NULL %L argument yields 'NULL': only comments that exist.
        let comment: Option<String> = row.get(3);
        if let Some(c) = comment.filter(|c| !c.ends_with(" IS NULL")) {
            comments.push(c);
        }
    }
    for sql in &drops {
        tx.batch_execute(sql)?;
    }
    Ok(creates.into_iter().flatten().chain(comments).collect())
}
