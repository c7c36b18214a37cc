//! `identity-migrate`: the identity service's database migrations.
//!
//! Results go to stdout; logs and errors to stderr, one line per error, with a non-zero exit.

mod args;
mod commands;
mod config;

mod env_file;
mod error;
mod logger;
mod open;
mod output;
mod progress;
mod report;
mod signals;

use clap::Parser;

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "error: internal error ({}): please report it",
            one_line(&msg)
        );
    }));
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // Help and version: clap prints them to stdout, exit 0.
            let _ = e.print();
            return e.exit_code();
        }
        Err(e) => {
            // Usage errors are one line too, like every other error.
            let text = e.render().to_string();
            let first = text.split("\n\n").next().unwrap_or_default();
            let first = first.strip_prefix("error:").unwrap_or(first);
            eprintln!("error: {} (see identity-migrate --help)", one_line(first));
            return error::EXIT_BAD_INPUT;
        }
    };
    if !cli.global.no_dotenv {
        if let Err(e) = env_file::load() {
            eprintln!("error: {}", one_line(&e));
            return error::EXIT_BAD_INPUT;
        }
    }
    if let Err(e) = logger::init(
        cli.global.verbose,
        cli.global.quiet,
        cli.global.log_file.as_deref(),
    ) {
        eprintln!("error: {}", one_line(&e));
        return error::EXIT_BAD_INPUT;
    }
    progress::set_quiet(cli.global.quiet);
    signals::install();
    let result = commands::run(cli);
    // A signal decides the exit code, whatever the interrupted work returned: the operator
    // (or Kubernetes) asked the tool to stop, and it did.
    if let Some(signal) = signals::received() {
        let what = match &result {
            Ok(()) => "the work had finished".to_owned(),
            Err(e) => e.to_string(),
        };
        return signals::finish(signal, &one_line(&what));
    }
    match result {
        Ok(()) | Err(error::CliError::OutputClosed) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            e.exit_code()
        }
    }
}

/// Longest word of an error line echoed in full: input pasted by mistake (a whole file as an
/// argument) must not flood a terminal or a log.
const MAX_ECHOED_WORD: usize = 200;

/// Errors are one line, whatever the server or the OS put in them, with no huge word.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace()
        .map(|word| {
            let chars = word.chars().count();
            if chars <= MAX_ECHOED_WORD {
                word.to_owned()
            } else {
                let kept: String = word.chars().take(MAX_ECHOED_WORD).collect();
                format!("{kept}... ({chars} characters)")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
