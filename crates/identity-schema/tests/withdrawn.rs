//! The series 0.1.0 released after `68d314520251` and 0.2.0 withdrew: kept, unchanged, so that a
//! database that ran it is recognised and taken back (the command-line scenario is
//! `crates/identity-migrate/tests/withdrawn.rs`).

use identity_schema::{graph, withdrawal, WITHDRAWN_AFTER};
use migrate_core::checksum::checksums_for;
use migrate_core::{Dialect, Heads, ResolveError};

/// The withdrawn revisions, oldest first.
const WITHDRAWN: [&str; 6] = [
    "789a88e5bf21",
    "e402adbc3a16",
    "7a2f57a8aa25",
    "f64382621770",
    "1caa05d921dd",
    "487af69e669a",
];

/// The checksums identity-migrate 0.1.0 recorded for the chain it released, per dialect (its
/// `revisions__checksums_are_stable` snapshot for PostgreSQL). A database at a withdrawn
/// revision compares its history with these before its rollback runs: any change to how they
/// render would make it report them as edited.
const RECORDED: [(&str, &str, &str); 8] = [
    (
        "974799e38366",
        "1c47e0476558af0e9fa5b85dc1f8324aa4961bd42411c16a2010722b33c01a8a",
        SQLITE_974799E38366,
    ),
    (
        "68d314520251",
        "3af8ed31383622bcb451f6676fb0dde625e428a4245f93cb8b81ac907d491ee2",
        SQLITE_68D314520251,
    ),
    (
        "789a88e5bf21",
        "432dffa6a2447c93fe34b8edb7d348b03741762a3f61c99f515c1aa4ae409d36",
        SQLITE_789A88E5BF21,
    ),
    (
        "e402adbc3a16",
        "c51986724f2e8623f39be5c7921c16f7f85d2d09595a0784b9fe8a04e729089b",
        SQLITE_E402ADBC3A16,
    ),
    (
        "7a2f57a8aa25",
        "6ad007f63f6d83d45a74db60b2d4defc496eb7bff7b611ffeddcd431428e2f56",
        SQLITE_7A2F57A8AA25,
    ),
    (
        "f64382621770",
        "71829bfd0d9623dfef04dff81ac911e3c8230278b2ecaeb52c47b8c1fa4f8f49",
        SQLITE_F64382621770,
    ),
    (
        "1caa05d921dd",
        "5db955bfc4eb35de748da9e8e41c6b050f988ad1ddaa6213b1407cdac51d4163",
        SQLITE_1CAA05D921DD,
    ),
    (
        "487af69e669a",
        "e26fda34a39cc1ec4577ed1be78c628632baafd70b53d261f8230c10594caf20",
        SQLITE_487AF69E669A,
    ),
];

// Computed by 0.1.0's own code (`checksums_for(&graph(), Dialect::Sqlite)` at the commit before
// the series was rewritten).
const SQLITE_974799E38366: &str =
    "82cbdac1060d546bacf513796abc75ebe178e76879655e998b70ccafc8cb9702";
const SQLITE_68D314520251: &str =
    "0b4aa2857d0240553757168f1c435f7651b68157c5c04148fc0161d5cc347706";
const SQLITE_789A88E5BF21: &str =
    "6aa5918ca32b2394ff72e73c36a6076c54be37f7f8d58686f1ecdd30fcd837e4";
const SQLITE_E402ADBC3A16: &str =
    "c8204edce2cd1bba19a88f6caa05e2995104a803b490dfff6b0b1940f45446a6";
const SQLITE_7A2F57A8AA25: &str =
    "d69cb2af5d5e9421b1d8a3ad4931ed033e92c9100103a0edf787d581e000c07a";
const SQLITE_F64382621770: &str =
    "ec660d4c1be7a3c8e293f49944e243c3bfdc9e1aaf6fc5086a38cd799348c29f";
const SQLITE_1CAA05D921DD: &str =
    "2b8eccdba2b1946570e9e5b1677460d7a82e243e3d83fd7d9bb85e15610beeb8";
const SQLITE_487AF69E669A: &str =
    "c56a0bded1badce07db08a3e90c887831af324f8f18a4a6c21df5f50bcee173c";

#[test]
fn the_released_chain_is_the_one_0_1_0_shipped() {
    let released = &withdrawal().released;
    let ids: Vec<&str> = released.revisions().iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<&str> = RECORDED.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, expected);
    assert_eq!(released.heads(), ["487af69e669a"]);
    // Both chains share everything up to where the series was withdrawn, and nothing after.
    let current = graph();
    assert_eq!(withdrawal().back_to, WITHDRAWN_AFTER);
    for r in released.revisions() {
        let shared = current.get(&r.id);
        if WITHDRAWN.contains(&r.id.as_str()) {
            assert!(shared.is_none(), "{} is withdrawn, its id not reused", r.id);
        } else {
            assert_eq!(shared, Some(r), "{} is the same revision in both", r.id);
        }
    }
}

#[test]
fn its_checksums_are_the_ones_0_1_0_recorded() {
    let released = &withdrawal().released;
    let postgres = checksums_for(released, Dialect::Postgres).expect("renders");
    let sqlite = checksums_for(released, Dialect::Sqlite).expect("renders");
    for (id, pg, lite) in RECORDED {
        assert_eq!(postgres[id], pg, "{id} on PostgreSQL");
        assert_eq!(sqlite[id], lite, "{id} on SQLite");
    }
}

#[test]
fn a_database_at_a_withdrawn_revision_is_told_the_way_forward() {
    for id in WITHDRAWN {
        let current = Heads::from([id.to_owned()]);
        let error = withdrawal()
            .applied(&graph(), &current)
            .expect_err("not a revision of the current chain");
        assert!(matches!(error, ResolveError::Withdrawn { .. }), "{error:?}");
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        for part in [
            id,
            "withdrawn in identity-migrate 0.2.0",
            "run `identity-migrate rollback 68d314520251`",
            "then `identity-migrate migrate`",
        ] {
            assert!(line.contains(part), "{part:?} is not in: {line}");
        }
    }
    // An id neither chain has is still one from a newer version, and one the current chain has
    // is no business of the withdrawal.
    let error = withdrawal()
        .applied(&graph(), &Heads::from(["0123456789ab".to_owned()]))
        .expect_err("unknown");
    assert!(
        matches!(error, ResolveError::UnknownCurrent(_)),
        "{error:?}"
    );
    let at_head = Heads::from([graph().heads()[0].to_owned()]);
    assert!(withdrawal().applied(&graph(), &at_head).is_ok());
}
