//! `seed`: test data through the identity seeder.

use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::Database;
use crate::report::{self, Format};
use std::io::Write;

pub(super) fn seed_data(
    out: &mut dyn Write,
    cfg: &Resolved,
    users: u64,
    seed: u64,
) -> Result<(), CliError> {
    let settings = Database::resolve(cfg)?.server_settings(|target| {
        format!(
            "seed loads PostgreSQL with COPY, and {target} is SQLite: point DATABASE_URL at a PostgreSQL database"
        )
    })?;
    let mut client = crate::open::plain_session(&settings, "identity-migrate seed")?;
    let scale = identity_seed::Scale::users(users);
    let spinner = crate::progress::spinner(false, "seeding");
    let report = identity_seed::seed_with_progress(&mut client, &scale, seed, &mut |p| match p {
        identity_seed::Progress::Loaded {
            table,
            rows,
            elapsed,
        } => {
            if let Some(bar) = &spinner {
                bar.set_message(format!("seeding: loaded {table}"));
            }
            log::info!(
                "loaded {rows} row(s) into {table} ({:.1} s)",
                elapsed.as_secs_f64()
            );
        }
        identity_seed::Progress::Rebuilt { objects, elapsed } => {
            log::info!(
                "rebuilt {objects} index(es) and key(s) ({:.1} s)",
                elapsed.as_secs_f64()
            );
        }
    })
    .map_err(|source| CliError::Seed {
        database: settings.redacted(),
        source,
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let report = report?;
    let report = report::Seeded {
        tables: report
            .rows
            .iter()
            .map(|(table, rows)| report::SeededTable {
                table: table.clone(),
                rows: *rows,
            })
            .collect(),
        rows: report.total(),
    };
    report::emit(out, &report, Format::Text).map_err(io_error)
}
