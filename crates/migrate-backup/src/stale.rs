//! What an interrupted backup or restore leaves, removed by the next one.
//!
//! A backup stages its files in `.<name>.partial-<pid>` beside the destination, with an `owner`
//! file naming the host, the process id and that process's start time. A later backup in the
//! same directory removes every partial whose owner is gone: same host, and no process with
//! that id, or one started at another time (the id was reused). A partial of another host (a
//! shared volume) is left alone and named: this host cannot know whether it still runs.
//!
//! A restore holds a session-level advisory lock on the maintenance database, keyed by its
//! target, for as long as it runs. Under that lock no other restore of the target can be
//! running, so every `<target>__restore_*` scratch database is debris of one that was killed,
//! and is dropped, as is an empty `<target>__before_*` (a swap done just before the kill, whose
//! empty predecessor was not dropped yet). A `__before_` that holds anything is the previous
//! content, kept as promised until the operator drops it.

use crate::{quote_ident, BackupError};
use postgres::Client;
use std::fs;
use std::path::Path;

/// Marks a staging directory as this process's.
pub(crate) fn write_owner(dir: &Path) -> Result<(), BackupError> {
    let me = std::process::id();
    let text = format!(
        "{}\n{me}\n{}\n",
        hostname(),
        start_time(me).unwrap_or_default()
    );
    crate::write_private(&dir.join("owner"), &text)
}

/// Removes the partials in `parent` whose process is gone, saying so.
pub(crate) fn remove_partials(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = partial_pid(&name) else {
            continue;
        };
        let path = entry.path();
        match owner_state(&path, pid) {
            Owner::Gone => {
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => log::info!(
                        "removed {}: left by an interrupted backup (process {pid} is gone)",
                        path.display()
                    ),
                    Err(e) => log::warn!(
                        "cannot remove {}, left by an interrupted backup: {e}",
                        path.display()
                    ),
                }
            }
            Owner::OtherHost(host) => log::warn!(
                "left {}: a backup of host {host} (it may still run; remove it by hand if not)",
                path.display()
            ),
            Owner::Running => {}
        }
    }
}

enum Owner {
    Running,
    Gone,
    OtherHost(String),
}

/// `.<name>.partial-<pid>`: the pid.
fn partial_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, pid) = name.rsplit_once(".partial-")?;
    pid.parse().ok()
}

fn owner_state(path: &Path, pid: u32) -> Owner {
    let owner = fs::read_to_string(path.join("owner")).unwrap_or_default();
    let mut lines = owner.lines();
    let host = lines.next().unwrap_or_default();
    let _ = lines.next();
    let started = lines.next().unwrap_or_default();
    if !host.is_empty() && host != hostname() {
        return Owner::OtherHost(host.to_owned());
    }
    if pid == std::process::id() {
        return Owner::Running;
    }
    match start_time(pid) {
        None => Owner::Gone,
        // Without a recorded start time (a partial of an older version, or one killed before
        // it wrote its owner file), a live process with that id is taken for the owner.
        Some(now) if started.is_empty() || now == started => Owner::Running,
        Some(_) => Owner::Gone,
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22): with the
/// id, it names one process for the life of the host.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_owned)
}

/// The advisory lock class of restores (the key is the target's name hashed by the server).
const RESTORE_LOCK_CLASS: i32 = 0x1d3a_2a18;

/// Takes the restore lock of `target` on the maintenance session `admin` (held until it
/// disconnects); refused if another restore of the same target holds it.
pub(crate) fn lock_restore(admin: &mut Client, target: &str) -> Result<(), BackupError> {
    let got: bool = admin
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&RESTORE_LOCK_CLASS, &target],
        )
        .map_err(crate::pg_error)?
        .get(0);
    if got {
        Ok(())
    } else {
        Err(BackupError::Io(format!(
            "another restore of {target} is running: wait for it to finish"
        )))
    }
}

/// Drops the scratch databases of interrupted restores of `target` (and empty predecessors);
/// the caller holds the restore lock of `target`. Returns their names.
pub(crate) fn drop_scratch(
    admin: &mut Client,
    settings: &migrate_postgres::url::ConnectionSettings,
    target: &str,
) -> Result<Vec<String>, BackupError> {
    let names: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_restore\\_%' OR datname LIKE '%\\_\\_before\\_%' ORDER BY 1",
            &[],
        )
        .map_err(crate::pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dropped = Vec::new();
    for name in names {
        let Some((kind, prefix)) = scratch_of(&name) else {
            continue;
        };
        // Names are cut to 63 bytes: a long target's prefix stands for it.
        if !(prefix == target || (name.len() == 63 && target.starts_with(prefix))) {
            continue;
        }
        if kind == "__before_" && !is_empty(settings, &name) {
            log::info!(
                "kept {name}: the database an earlier restore of {target} replaced (DROP DATABASE \"{name}\" once it is no longer needed)"
            );
            continue;
        }
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            ))
            .map_err(crate::pg_error)?;
        log::info!(
            "dropped {name}: left by an interrupted restore of {target} ({})",
            if kind == "__restore_" {
                "its scratch database"
            } else {
                "the empty database it replaced"
            }
        );
        dropped.push(name);
    }
    Ok(dropped)
}

/// `(infix, target)` of `<target>__restore_<stamp>` or `<target>__before_<stamp>`.
fn scratch_of(name: &str) -> Option<(&'static str, &str)> {
    ["__restore_", "__before_"].into_iter().find_map(|infix| {
        let (prefix, stamp) = name.rsplit_once(infix)?;
        let stamp_ok = stamp.chars().all(|c| c.is_ascii_digit() || c == '_') && stamp.len() >= 15;
        stamp_ok.then_some((infix, prefix))
    })
}

fn is_empty(settings: &migrate_postgres::url::ConnectionSettings, name: &str) -> bool {
    let mut other = settings.clone();
    other.dbname = name.to_owned();
    crate::connect(&other)
        .and_then(|mut c| crate::relation_count(&mut c))
        .is_ok_and(|n| n == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_and_scratch_names_are_recognised() {
        assert_eq!(
            partial_pid(".identity_service_backup_20260101_000000.partial-4242"),
            Some(4242)
        );
        assert_eq!(partial_pid("identity_service_backup.partial-1"), None);
        assert_eq!(partial_pid(".x.partial-abc"), None);
        assert_eq!(
            scratch_of("app__restore_20260101_120000"),
            Some(("__restore_", "app"))
        );
        assert_eq!(
            scratch_of("app__before_20260101_120000_2"),
            Some(("__before_", "app"))
        );
        assert_eq!(scratch_of("app__before_yesterday"), None);
    }

    #[test]
    fn this_process_is_running_and_a_dead_one_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mine = dir
            .path()
            .join(format!(".b.partial-{}", std::process::id()));
        fs::create_dir(&mine).expect("mkdir");
        write_owner(&mine).expect("owner");
        assert!(matches!(
            owner_state(&mine, std::process::id()),
            Owner::Running
        ));
        // A finished child's id, with this host and a start time that cannot match.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let gone = dir.path().join(format!(".b.partial-{dead}"));
        fs::create_dir(&gone).expect("mkdir");
        fs::write(gone.join("owner"), format!("{}\n{dead}\n1\n", hostname())).expect("owner");
        assert!(matches!(owner_state(&gone, dead), Owner::Gone));
        let other = dir.path().join(".b.partial-1");
        fs::create_dir(&other).expect("mkdir");
        fs::write(other.join("owner"), "elsewhere\n1\n1\n").expect("owner");
        assert!(matches!(owner_state(&other, 1), Owner::OtherHost(_)));
        remove_partials(dir.path());
        assert!(mine.exists() && other.exists() && !gone.exists());
    }
}
