//! What the tool started stops with it: its child tools and its running statements.
//!
//! The child tools (`pg_dump`, `pg_restore`, `psql`) die with the tool.
//!
//! Each runs in a process group of its own (so that a terminal's Ctrl-C reaches the tool, which
//! decides, rather than the children behind its back) and, through util-linux `setpriv`, under a
//! parent-death signal: if the tool is killed with `kill -9`, the kernel signals the group's
//! small supervising shell at once, which kills the group (the tool and its parallel workers)
//! instead of letting it go on writing a full-size dump nobody will read. The groups of the
//! running children are recorded, so that the tool's signal handling can kill them (and their
//! own workers, `pg_dump --jobs`) with [`interrupt`], which also cancels the statement running
//! on every session registered with [`cancel_on_interrupt`].
//!
//! The parent-death signal follows the *thread* that started the child: every child here is
//! started and waited for by the same thread.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Mutex;

/// util-linux `setpriv`, present on Debian and most distributions; without it, children still
/// get their own process group (killed by [`kill_all`]), only not the parent-death signal.
const SETPRIV: &str = "/usr/bin/setpriv";

/// Process groups of the children running now (each child leads its own).
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The shell that stands between `setpriv` and the tool: the parent-death signal reaches only
/// the process it was set on, and `pg_dump --jobs` and `pg_restore --jobs` fork workers that
/// would go on with their current table. The shell leads the process group, runs the tool (its
/// standard input passed on through descriptor 3: a background job's is `/dev/null` otherwise), and at the
/// signal kills the whole group, workers included. It exits with the tool's status.
const SUPERVISOR: &str = "trap 'kill -s KILL 0' TERM; exec 3<&0; \"$0\" \"$@\" <&3 3<&- & \
     wait $!; status=$?; trap - TERM; exit $status";

/// A command for `tool` that dies with this process, with every process it starts.
pub fn command(tool: &Path) -> Command {
    let mut cmd = if Path::new(SETPRIV).is_file() {
        let mut c = Command::new(SETPRIV);
        c.args(["--pdeathsig", "TERM", "--", "/bin/sh", "-c", SUPERVISOR])
            .arg(tool);
        c
    } else {
        Command::new(tool)
    };
    cmd.process_group(0);
    cmd
}

/// Records the process group of a child started from [`command`] until [`finished`].
pub fn track(child: &Child) {
    if let Ok(mut running) = RUNNING.lock() {
        running.insert(child.id());
    }
}

/// The child has been waited for: its group is no longer this tool's to kill.
pub fn finished(child: &Child) {
    if let Ok(mut running) = RUNNING.lock() {
        running.remove(&child.id());
    }
}

/// Cancel tokens of the sessions whose running statement an interruption cancels (a token of a
/// closed session is harmless: the server ignores a cancel it cannot match).
static SESSIONS: Mutex<Vec<postgres::CancelToken>> = Mutex::new(Vec::new());

/// Registers a session whose running statement [`interrupt`] cancels.
pub fn cancel_on_interrupt(client: &postgres::Client) {
    if let Ok(mut sessions) = SESSIONS.lock() {
        sessions.push(client.cancel_token());
    }
}

/// Kills every running child's process group and cancels the statement running on every
/// registered session: what was under way fails at once, and the caller's cleanup runs.
pub fn interrupt() {
    // Cancels first, children last: the caller's cleanup starts when a child dies, and its
    // statements must not meet a cancel still on its way.
    let sessions: Vec<postgres::CancelToken> =
        SESSIONS.lock().map(|s| s.clone()).unwrap_or_default();
    for token in sessions {
        // Best effort: nothing may be running, or the server may be gone.
        let _ = token.cancel_query(postgres::NoTls);
    }
    kill_children();
}

/// Kills the process group of every running child (SIGKILL: a dump or restore cut short is
/// thrown away anyway, and the server rolls back what their sessions had begun).
fn kill_children() {
    let groups: Vec<u32> = RUNNING
        .lock()
        .map(|running| running.iter().copied().collect())
        .unwrap_or_default();
    for group in groups {
        let pid = i32::try_from(group)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}
