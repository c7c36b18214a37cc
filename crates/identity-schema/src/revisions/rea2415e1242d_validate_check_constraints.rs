//! `ea2415e1242d`: validates the CHECK constraints `094916cde150` added `NOT VALID`.
//!
//! `VALIDATE CONSTRAINT` reads every row under a `SHARE UPDATE EXCLUSIVE` lock, which lets the
//! service read and write meanwhile, where an `ADD CONSTRAINT` that checks the rows would hold
//! an exclusive lock for the whole scan. It has to be a revision of its own: in the same
//! transaction as the ADD, the exclusive lock would still be held.
//!
//! Rows that break a constraint are listed first, by table, id and value, and the revision
//! refused; the constraints already guard every new row, so the database is usable meanwhile.
//! Fix the rows and run `migrate` again. Validation cannot be undone and needs no undoing: the
//! downgrade does nothing, and `094916cde150`'s downgrade drops the constraints.
//!
//! SQLite validated each constraint when it was added; `VALIDATE` renders nothing there.

use super::checks;
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
    .upgrade(upgrade)
    .downgrade(Vec::new())
}
