//! A small logger: stderr, and optionally a file the operator asked for. Nothing is written to
//! the working directory unless asked.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

struct Logger {
    level: log::LevelFilter,
    file: Option<Mutex<File>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        );
        // Between two draws of a progress spinner, not into one.
        crate::progress::suspend(|| {
            let _ = writeln!(std::io::stderr(), "{line}");
        });
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "{} {line}", unix_time());
            }
        }
    }

    fn flush(&self) {}
}

fn unix_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// Installs the logger; `verbose` counts `-v`, `quiet` keeps only errors.
pub fn init(verbose: u8, quiet: bool, file: Option<&std::path::Path>) -> Result<(), String> {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Info,
        (false, 1) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let file = match file {
        Some(path) => {
            Some(Mutex::new(open_private(path).map_err(|e| {
                format!("cannot open log file {}: {e}", path.display())
            })?))
        }
        None => None,
    };
    log::set_boxed_logger(Box::new(Logger { level, file }))
        .map(|()| log::set_max_level(level))
        .map_err(|e| e.to_string())
}

fn open_private(path: &std::path::Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
