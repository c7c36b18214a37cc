//! What the live database tells lint: its tables' sizes and the server's major version.

use migrate_core::driver::DriverError;
use migrate_core::lint::TableSize;
use migrate_core::schema::TableName;
use postgres::Client;
use std::collections::BTreeMap;

/// Live table sizes of the database (`pg_class.reltuples` and the total relation size), keyed
/// as the schema model names the tables: unqualified in the configured schema.
pub fn live_sizes(
    client: &mut Client,
    schema: &str,
) -> Result<BTreeMap<TableName, TableSize>, DriverError> {
    // A table never analyzed has reltuples -1 (PostgreSQL 14 and later) or 0: it is counted
    // when that is cheap, else its pages give an estimate.
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, \
                    pg_total_relation_size(c.oid)::int8, pg_relation_size(c.oid)::int8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .map_err(|e| DriverError::Statement {
            code: e.code().map(|c| c.code().to_owned()),
            message: format!("cannot read table sizes: {e}"),
        })?;
    let mut sizes = BTreeMap::new();
    for row in rows {
        let nsp: String = row.get(0);
        let name: String = row.get(1);
        let reltuples: f64 = row.get(2);
        // A table dropped between the catalog scan and the size functions reads as NULL.
        let (Some(total), Some(heap)) =
            (row.get::<_, Option<i64>>(3), row.get::<_, Option<i64>>(4))
        else {
            continue;
        };
        let rows = if reltuples > 0.0 {
            // A positive row estimate, far below u64::MAX; the fraction means nothing.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let estimate = reltuples as u64;
            estimate
        } else if heap <= 64 * 1024 * 1024 {
            let sql = format!(
                "SELECT count(*) FROM {}.{}",
                migrate_core::render::quote_ident(&nsp),
                migrate_core::render::quote_ident(&name)
            );
            client
                .query_one(sql.as_str(), &[])
                .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
                .unwrap_or(0)
        } else {
            // About 100 bytes a row for an identity table: only to give an order of magnitude.
            u64::try_from(heap / 100).unwrap_or(0)
        };
        let key = if nsp == schema {
            TableName::new(name)
        } else {
            TableName::qualified(nsp, name)
        };
        sizes.insert(
            key,
            TableSize {
                rows,
                bytes: u64::try_from(total).unwrap_or(0),
            },
        );
    }
    Ok(sizes)
}

/// The server's major version (`server_version_num` / 10000).
pub fn server_major(client: &mut Client) -> Option<u32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .ok()?;
    u32::try_from(row.get::<_, i32>(0) / 10_000).ok()
}
