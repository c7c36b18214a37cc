//! The hand-written head schema against the revisions, and the hardening it promises, checked on
//! the model alone (no database).

use identity_schema::{graph, models, revisions};
use migrate_core::render::schema_at;
use migrate_core::{ColumnType, ConstraintKind, IndexKey, Schema, Table, TableName};
use std::collections::BTreeSet;

/// The schema with every revision applied.
fn folded_head() -> Schema {
    let all: BTreeSet<String> = revisions().into_iter().map(|r| r.id).collect();
    schema_at(&graph(), &all).unwrap_or_else(|e| panic!("fold to head: {e}"))
}

/// The schema at `68d314520251`, the original's head.
fn original_head() -> Schema {
    let ids: BTreeSet<String> = ["974799e38366", "68d314520251"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    schema_at(&graph(), &ids).unwrap_or_else(|e| panic!("fold to 68d314520251: {e}"))
}

/// The tables of the default schema (the service's own; `legacy` holds history).
fn public_tables(schema: &Schema) -> impl Iterator<Item = &Table> {
    schema.tables.values().filter(|t| t.name.schema.is_none())
}

#[test]
fn models_equal_the_fold_of_every_revision() {
    let models = models();
    let folded = folded_head();
    // Table by table first, so that a failure points at the table that drifted.
    let names: BTreeSet<&TableName> = models.tables.keys().chain(folded.tables.keys()).collect();
    for name in names {
        assert_eq!(
            models.tables.get(name),
            folded.tables.get(name),
            "table {name}: models.rs (left) and the revisions (right) disagree"
        );
    }
    assert_eq!(models.schemas, folded.schemas, "database schemas");
    assert_eq!(models.functions, folded.functions, "functions");
    assert_eq!(models, folded);
}

#[test]
fn instants_are_timestamptz_documents_jsonb_and_addresses_inet() {
    let models = models();
    for table in public_tables(&models) {
        for c in &table.columns {
            let at = format!("{}.{}", table.name, c.name);
            assert_ne!(c.ty, ColumnType::Timestamp, "{at} is a naive timestamp");
            assert_ne!(c.ty, ColumnType::Json, "{at} is json, not jsonb");
            if c.name == "ip_address" || c.name == "last_login_ip" {
                assert_eq!(c.ty, ColumnType::Inet, "{at}");
            }
        }
    }
}

/// Per table, the NOT NULL columns a writer must still give: what is specific to the row. Every
/// other NOT NULL column has the server default the original kept in Python (spec defect 4).
const MUST_GIVE: [(&str, &[&str]); 10] = [
    ("organizations", &["name", "slug"]),
    ("users", &["email", "password_hash"]),
    ("user_profiles", &["user_id"]),
    (
        "user_sessions",
        &["user_id", "session_token_hash", "expires_at"],
    ),
    ("mfa_methods", &["user_id", "method_type", "identifier"]),
    (
        "mfa_challenges",
        &[
            "user_id",
            "mfa_method_id",
            "challenge_code_hash",
            "challenge_type",
            "expires_at",
        ],
    ),
    (
        "email_verifications",
        &["user_id", "email", "token_hash", "expires_at"],
    ),
    ("password_resets", &["user_id", "token_hash", "expires_at"]),
    ("user_activity_logs", &["user_id", "action"]),
    (
        "user_preferences",
        &[
            "user_id",
            "preference_key",
            "preference_value",
            "preference_type",
        ],
    ),
];

#[test]
fn a_writer_gives_only_what_is_specific_to_the_row() {
    let models = models();
    assert_eq!(public_tables(&models).count(), MUST_GIVE.len());
    for (table, expected) in MUST_GIVE {
        let t = &models.tables[&TableName::new(table)];
        let required: Vec<&str> = t
            .columns
            .iter()
            .filter(|c| !c.nullable && c.default.is_none())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            required, expected,
            "{table}: NOT NULL columns without a default"
        );
        // Nullable columns need no default: NULL is theirs.
        for c in t.columns.iter().filter(|c| c.nullable) {
            assert_eq!(c.default, None, "{table}.{}", c.name);
        }
    }
}

#[test]
fn every_foreign_key_leads_an_index() {
    let models = models();
    for table in public_tables(&models) {
        // Key lists of every index the table has, plain columns only (a partial or expression
        // index does not serve a foreign key's lookups).
        let mut leading: Vec<Vec<String>> = table
            .constraints
            .values()
            .filter(|c| c.kind.has_index())
            .map(|c| c.kind.columns().to_vec())
            .collect();
        leading.extend(
            table
                .indexes
                .values()
                .filter(|i| i.predicate.is_none())
                .map(|i| i.columns().map(str::to_owned).collect()),
        );
        for c in table.constraints.values() {
            if let ConstraintKind::ForeignKey(fk) = &c.kind {
                assert!(
                    leading.iter().any(|keys| keys.starts_with(&fk.columns)),
                    "{}: foreign key {} ({:?}) leads no index",
                    table.name,
                    c.name,
                    fk.columns
                );
            }
        }
    }
}

#[test]
fn each_unique_key_has_one_unique_index() {
    let models = models();
    for table in models.tables.values() {
        let mut keys: Vec<(Vec<IndexKey>, Option<String>)> = table
            .constraints
            .values()
            .filter(|c| c.kind.has_index())
            .map(|c| {
                let keys = c.kind.columns().iter().cloned().map(IndexKey::Column);
                (keys.collect(), None)
            })
            .collect();
        keys.extend(
            table
                .indexes
                .values()
                .filter(|i| i.unique)
                .map(|i| (i.keys.clone(), i.predicate.clone())),
        );
        let distinct: BTreeSet<String> = keys.iter().map(|k| format!("{k:?}")).collect();
        assert_eq!(
            distinct.len(),
            keys.len(),
            "{}: a unique key is indexed twice",
            table.name
        );
    }
}

#[test]
fn email_and_username_are_unique_up_to_case_among_live_users_only() {
    let models = models();
    let users = &models.tables[&TableName::new("users")];
    for column in ["email", "username"] {
        let expr = IndexKey::Expr(format!("lower({column})"));
        let index = users
            .indexes
            .values()
            .find(|i| i.keys == [expr.clone()])
            .unwrap_or_else(|| panic!("an index on lower({column})"));
        assert!(index.unique, "{}", index.name);
        assert_eq!(index.predicate.as_deref(), Some("deleted_at IS NULL"));
        // And nothing else makes the bare column unique (a soft-deleted user would hold it).
        assert!(!users.constraints.values().any(|c| c.kind
            == ConstraintKind::Unique {
                columns: vec![column.to_owned()]
            }));
    }
}

#[test]
fn every_table_with_updated_at_keeps_it_by_trigger() {
    let models = models();
    let function = TableName::new("set_updated_at");
    assert!(models.functions.contains_key(&function));
    for table in public_tables(&models) {
        let has_column = table.find_column("updated_at").is_some();
        let has_trigger = table.triggers.values().any(|t| t.function == function);
        assert_eq!(has_column, has_trigger, "{}", table.name);
    }
}

#[test]
fn the_leftover_tables_are_in_legacy_exactly_as_the_original_left_them() {
    let models = models();
    let original = original_head();
    assert_eq!(models.schemas, BTreeSet::from(["legacy".to_owned()]));
    for name in ["user_activities_simple", "user_sessions_simple"] {
        let mut then = original.tables[&TableName::new(name)].clone();
        then.name = TableName::qualified("legacy", name);
        assert_eq!(
            models.tables.get(&then.name),
            Some(&then),
            "legacy.{name} is the original's {name}, moved"
        );
        assert!(!models.tables.contains_key(&TableName::new(name)));
    }
    // The ten tables keep their names, columns (in order) and nullability; only types and
    // defaults changed.
    for table in public_tables(&original).filter(|t| !t.name.name.ends_with("_simple")) {
        let now = &models.tables[&table.name];
        let shape = |t: &Table| -> Vec<(String, bool)> {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.nullable))
                .collect()
        };
        assert_eq!(shape(now), shape(table), "{}", table.name);
    }
}
