//! The hand-written head schema against the revisions, and the hardening it promises, checked on
//! the model alone (no database).

use identity_schema::revisions::r3ffba08b0d3f_align_with_the_service_models::RENAMES;
use identity_schema::{graph, models, revisions};
use migrate_core::render::schema_at;
use migrate_core::{ColumnType, ConstraintKind, DefaultExpr, IndexKey, Schema, Table, TableName};
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

/// The tables of the default schema (all of them at head).
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

/// The ten tables of `68d314520251`.
fn original_tables(original: &Schema) -> impl Iterator<Item = &Table> {
    public_tables(original).filter(|t| !t.name.name.ends_with("_simple"))
}

/// The service's ten tables at head (not the two leftovers).
fn service_tables(models: &Schema) -> impl Iterator<Item = &Table> {
    public_tables(models).filter(|t| !t.name.name.starts_with("legacy_"))
}

#[test]
fn no_column_of_the_original_is_dropped_and_none_changes_type_but_to_a_wider_one() {
    let models = models();
    let original = original_head();
    for table in original_tables(&original) {
        let now = &models.tables[&table.name];
        for c in &table.columns {
            let name = RENAMES
                .iter()
                .find(|(t, from, _)| *t == table.name.name && *from == c.name)
                .map_or(c.name.as_str(), |(_, _, to)| to);
            let at = format!("{}.{}", table.name, c.name);
            let kept = now
                .find_column(name)
                .unwrap_or_else(|| panic!("{at} is gone at head"));
            // Nothing the ORM binds or reads changes type (spec §5): the same type, or a wider
            // text, or the model's uuid for the one column that held UUIDs as text.
            let widened = matches!(
                (&c.ty, &kept.ty),
                (ColumnType::Varchar(Some(a)), ColumnType::Varchar(Some(b))) if b > a
            ) || (matches!(c.ty, ColumnType::Varchar(_))
                && kept.ty == ColumnType::Text);
            let to_uuid = at == "user_activity_logs.session_id" && kept.ty == ColumnType::Uuid;
            assert!(
                kept.ty == c.ty || widened || to_uuid,
                "{at}: {:?} became {:?}",
                c.ty,
                kept.ty
            );
        }
    }
}

#[test]
fn renamed_columns_are_the_models_names_for_the_same_data() {
    let models = models();
    let original = original_head();
    for (table, from, to) in RENAMES {
        let t = TableName::new(table);
        assert!(
            original.tables[&t].find_column(from).is_some(),
            "{table}.{from}"
        );
        assert!(
            original.tables[&t].find_column(to).is_none(),
            "{table}.{to}"
        );
        assert!(models.tables[&t].find_column(to).is_some(), "{table}.{to}");
        assert!(
            models.tables[&t].find_column(from).is_none(),
            "{table}.{from}"
        );
    }
}

#[test]
fn instants_are_naive_documents_json_and_addresses_checked_text() {
    let models = models();
    for table in service_tables(&models) {
        for c in &table.columns {
            let at = format!("{}.{}", table.name, c.name);
            // The ORM reads timestamptz back aware, and binds no value an inet column takes.
            assert_ne!(c.ty, ColumnType::TimestampTz, "{at}");
            assert_ne!(c.ty, ColumnType::Inet, "{at}");
            // json and jsonb read back alike; converting would rewrite eight tables.
            assert_ne!(c.ty, ColumnType::Jsonb, "{at}");
            if c.name == "ip_address" || c.name == "last_login_ip" {
                assert_eq!(c.ty, ColumnType::varchar(45), "{at}");
                let check = format!("{}_{}_check", table.name, c.name);
                assert!(table.constraints.contains_key(&check), "{at}: no {check}");
            }
        }
    }
}

#[test]
fn server_defaults_have_the_forms_the_orm_reads_back() {
    let models = models();
    for table in service_tables(&models) {
        for c in &table.columns {
            let at = format!("{}.{}", table.name, c.name);
            match c.default {
                // A plain now() stores the session's local time in a timestamp; the canonical
                // 36-character UUID text is never found by SQLAlchemy on SQLite.
                Some(DefaultExpr::Now | DefaultExpr::RandomUuid | DefaultExpr::Sql(_)) => {
                    panic!("{at}: {:?}", c.default)
                }
                Some(DefaultExpr::UtcNow) => assert_eq!(c.ty, ColumnType::Timestamp, "{at}"),
                Some(DefaultExpr::RandomUuidHex) => assert_eq!(c.name, "id", "{at}"),
                _ => {}
            }
            if c.name == "id" {
                assert_eq!(c.default, Some(DefaultExpr::RandomUuidHex), "{at}");
            }
            if c.name == "created_at" || c.name == "updated_at" {
                assert_eq!(c.default, Some(DefaultExpr::UtcNow), "{at}");
            }
        }
    }
}

/// Per table, the NOT NULL columns a writer must give: the model's NOT NULL columns without a
/// Python default (spec §1), the ones a minimal row sets. Every other NOT NULL column has a
/// server default, and every database-only column is nullable or has one (§5, condition 2).
/// Three model NOT NULL columns are nullable here (`mfa_challenges.destination`,
/// `password_resets.email`, `user_preferences.category`): rows from before have none.
const MUST_GIVE: [(&str, &[&str]); 10] = [
    ("organizations", &["name", "slug"]),
    ("users", &["email", "password_hash"]),
    ("user_profiles", &["user_id"]),
    (
        "user_sessions",
        &["user_id", "access_token_jti", "expires_at"],
    ),
    ("mfa_methods", &["user_id", "method_type"]),
    (
        "mfa_challenges",
        &[
            "user_id",
            "mfa_method_id",
            "code_hash",
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
    ("user_preferences", &["user_id", "key"]),
];

#[test]
fn a_writer_gives_only_what_is_specific_to_the_row() {
    let models = models();
    assert_eq!(service_tables(&models).count(), MUST_GIVE.len());
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
fn email_and_username_are_unique_as_given_and_up_to_case_among_live_users() {
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
        // The plain key stays: it serves the service's `= $1` lookup, which no lower() index
        // does, and the model declares it.
        assert!(users.constraints.values().any(|c| c.kind
            == ConstraintKind::Unique {
                columns: vec![column.to_owned()]
            }));
    }
}

#[test]
fn every_table_with_updated_at_keeps_it_by_trigger_in_naive_utc() {
    let models = models();
    let function = TableName::new("set_updated_at");
    assert!(models.functions[&function]
        .body
        .contains("NEW.updated_at := now() AT TIME ZONE 'utc';"));
    for table in public_tables(&models) {
        let has_column = table.find_column("updated_at").is_some();
        let has_trigger = table.triggers.values().any(|t| t.function == function);
        assert_eq!(has_column, has_trigger, "{}", table.name);
    }
}

#[test]
fn the_leftover_tables_are_renamed_legacy_and_otherwise_as_the_original_left_them() {
    let models = models();
    let original = original_head();
    assert!(
        models.schemas.is_empty(),
        "no database schema besides the default"
    );
    for name in ["user_activities_simple", "user_sessions_simple"] {
        let mut then = original.tables[&TableName::new(name)].clone();
        then.name = TableName::new(format!("legacy_{name}"));
        assert_eq!(
            models.tables.get(&then.name),
            Some(&then),
            "legacy_{name} is the original's {name}, renamed"
        );
        assert!(!models.tables.contains_key(&TableName::new(name)));
    }
}
