//! Checksums: SHA-256 of a revision's canonical rendered SQL.
//!
//! Canonical means PostgreSQL's, one op after the other (no grouping of column changes), so
//! that a faster rendering of the same revision never reads as an edit of it.
//!
//! Every revision's upgrade is rendered for PostgreSQL against the schema that the graph's one
//! stable order leaves before it, so recording and verifying always agree, whatever subset of the
//! graph a database holds.

use crate::graph::RevisionGraph;
use crate::render::{render_ops_one_by_one, Dialect, RenderError};
use crate::revision::Direction;
use crate::schema::Schema;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The checksum of every revision, by id, as lowercase hex.
pub fn checksums(graph: &RevisionGraph) -> Result<HashMap<String, String>, RenderError> {
    let mut schema = Schema::new();
    let mut out = HashMap::with_capacity(graph.revisions().len());
    for r in graph.revisions() {
        let statements = render_ops_one_by_one(
            &r.id,
            Direction::Up,
            &r.upgrade,
            &mut schema,
            Dialect::Postgres,
        )?;
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
