//! Progress on stderr for long work, drawn only on a terminal: never into a pipe or a log file,
//! never with `--json` (a machine reads that output) and never with `--quiet`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

/// Every bar drawn, so that a log line can be printed between two draws rather than into one.
static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// Runs `f` (which writes to stderr) with the bars cleared, and draws them again after.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    BARS.suspend(f)
}

/// Set by `--quiet`: no progress either.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns progress off for the whole run (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress may be drawn: stderr is a terminal, and neither `--json` nor `--quiet`.
pub fn wanted(json: bool) -> bool {
    !json && !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A spinner with a message and the elapsed time, ticking on its own; `None` off a terminal.
pub fn spinner(json: bool, message: &str) -> Option<ProgressBar> {
    if !wanted(json) {
        return None;
    }
    let bar = BARS.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// A spinner that also shows bytes written, for backups and restores (appears after a second,
/// so quick work draws nothing).
pub struct Transfer {
    bar: Option<ProgressBar>,
    what: &'static str,
}

impl Transfer {
    /// Progress of `what` ("backup", "restore"), drawn on a terminal only.
    pub fn new(what: &'static str) -> Self {
        Transfer { bar: None, what }
    }

    /// Called by the backup code with what it has done so far.
    pub fn update(&mut self, p: migrate_backup::Progress) {
        if p.elapsed.as_secs_f64() < 1.0 {
            return;
        }
        if self.bar.is_none() {
            self.bar = spinner(false, self.what);
        }
        if let Some(bar) = &self.bar {
            if p.bytes > 0 {
                bar.set_message(format!("{}: {:.1} MB", self.what, p.bytes as f64 / 1e6));
            }
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
