//! `ea2415e1242d`: validates the CHECK constraints `094916cde150` added `NOT VALID`.
//!
//! `VALIDATE CONSTRAINT` reads every row under a `SHARE UPDATE EXCLUSIVE` lock, which lets the
//! service read and write meanwhile, where an `ADD CONSTRAINT` that checks the rows would hold
//! an exclusive lock for the whole scan. It has to be a revision of its own: in the same
//! transaction as the ADD, the exclusive lock would still be held.
//!
//! Rows that break a constraint are listed first, by table, id and value, and the revision
//! refused; the constraints already guard every new row, so the database is usable meanwhile.
//! Fix the rows and run `migrate` again. PostgreSQL cannot mark a validated constraint NOT VALID
//! again, so the downgrade drops each and adds it back `NOT VALID` (catalog changes, no scan):
//! the schema is then exactly what `094916cde150` left.
//!
//! SQLite validated each constraint when it was added; `VALIDATE` renders nothing there.

use super::checks;
use super::drop_constraint;
use super::r094916cde150_check_constraints_not_valid::{constraints, CHECKS, IP_ADDRESSES};
use migrate_core::{Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    let mut upgrade = vec![
        checks::create_inet_helper(),
        checks::valid_ip_addresses(&IP_ADDRESSES),
        checks::drop_inet_helper(),
        checks::rows_pass(&CHECKS),
    ];
    upgrade.extend(
        constraints()
            .into_iter()
            .map(|(table, constraint)| Op::ValidateConstraint {
                table: table.into(),
                name: constraint.name,
            }),
    );
    Revision::new(
        "ea2415e1242d",
        &["094916cde150"],
        "Validate the CHECK constraints",
    )
    .created("2026-12-03")
    .allow("unknown-sql", checks::CHECKS_ONLY_READ)
    .upgrade(upgrade)
    .downgrade(
        constraints()
            .into_iter()
            .rev()
            .flat_map(|(table, constraint)| {
                [
                    drop_constraint(table, &constraint.name),
                    Op::AddConstraint {
                        table: table.into(),
                        constraint,
                        not_valid: true,
                    },
                ]
            })
            .collect(),
    )
}
