//! Checksums: SHA-256 of a revision's rendered SQL, in the dialect of the database that records
//! it, so that an edit of either dialect's SQL (a `RawSql` body, a CHECK's SQLite spelling) is
//! seen by the databases it changes.
//!
//! One op after the other (no grouping of column changes): a faster rendering of the same
//! revision never reads as an edit of it.
//!
//! Every revision's upgrade is rendered against the schema that the graph's one stable order
//! leaves before it, so recording and verifying always agree, whatever subset of the graph a
//! database holds.

use crate::graph::RevisionGraph;
use crate::op::apply_all;
use crate::render::{render_ops_one_by_one, Dialect, RenderError};
use crate::revision::Direction;
use crate::schema::Schema;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The PostgreSQL checksum of every revision, by id, as lowercase hex.
pub fn checksums(graph: &RevisionGraph) -> Result<HashMap<String, String>, RenderError> {
    checksums_for(graph, Dialect::Postgres)
}

/// The checksum in `dialect` of every revision that the dialect can render, by id, as lowercase
/// hex. A revision it cannot render has none: it can never be applied there, so no checksum of
/// it is ever recorded or compared.
pub fn checksums_for(
    graph: &RevisionGraph,
    dialect: Dialect,
) -> Result<HashMap<String, String>, RenderError> {
    let mut schema = Schema::new();
    let mut out = HashMap::with_capacity(graph.revisions().len());
    for r in graph.revisions() {
        let before = schema.clone();
        let statements =
            match render_ops_one_by_one(&r.id, Direction::Up, &r.upgrade, &mut schema, dialect) {
                Ok(statements) => statements,
                Err(RenderError::Unsupported { .. }) => {
                    schema = before;
                    apply_all(&mut schema, &r.upgrade).map_err(|(op, error)| {
                        RenderError::Model {
                            revision: r.id.clone(),
                            direction: Direction::Up,
                            op,
                            error,
                        }
                    })?;
                    continue;
                }
                Err(e) => return Err(e),
            };
        let mut hasher = Sha256::new();
        for s in &statements {
            hasher.update(s.sql.as_bytes());
            hasher.update(b";\n");
        }
        out.insert(r.id.clone(), hex(&hasher.finalize()));
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
