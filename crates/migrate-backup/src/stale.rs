//! What an interrupted backup or restore leaves, removed by the next one.
//!
//! A backup stages its files in `.<name>.partial-<pid>` beside the destination, with an `owner`
//! file naming the host, the process id and that process's start time. A later backup in the
//! same directory removes every partial whose owner is gone: same host, and no process with
//! that id, or one started at another time (the id was reused). A partial of another host (a
//! shared volume) is left alone and named: this host cannot know whether it still runs.
//!
//! What an interrupted restore leaves in the database server is its driver's to clean up.

use crate::BackupError;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_are_recognised() {
        assert_eq!(
            partial_pid(".identity_service_backup_20260101_000000.partial-4242"),
            Some(4242)
        );
        assert_eq!(partial_pid("identity_service_backup.partial-1"), None);
        assert_eq!(partial_pid(".x.partial-abc"), None);
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
