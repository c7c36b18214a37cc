//! `completions` and `man`: generated from the clap definition, so they never disagree with
//! the parser. Revision arguments complete to the ids of the binary's own graph.

use crate::args::{Cli, ShellArg};
use crate::error::io_error;
use crate::error::CliError;
use clap::builder::PossibleValuesParser;
use clap::{Command, CommandFactory};
use migrate_core::RevisionGraph;
use std::io::Write;

/// The words a revision argument (`REV`) accepts besides ids.
const REVISION_WORDS: [&str; 3] = ["head", "heads", "base"];

/// `cmd` with every `REV` argument (and its subcommands') completing to `words`. Only for
/// generating completions: the parser keeps accepting prefixes and relative steps.
fn with_revisions(mut cmd: Command, words: &[&'static str]) -> Command {
    let revision_args: Vec<String> = cmd
        .get_arguments()
        .filter(|a| {
            a.get_value_names()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == "REV"))
        })
        .map(|a| a.get_id().to_string())
        .collect();
    for id in revision_args {
        let words = words.to_vec();
        cmd = cmd.mut_arg(id, move |a| {
            a.value_parser(PossibleValuesParser::new(words))
        });
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, |c| with_revisions(c, words));
    }
    cmd
}

/// Prints the completion script of `shell`.
pub fn completions(
    out: &mut dyn Write,
    graph: &RevisionGraph,
    shell: ShellArg,
) -> Result<(), CliError> {
    // clap keeps possible values as &'static str: the ids live as long as this short process.
    let mut words: Vec<&'static str> = REVISION_WORDS.to_vec();
    words.extend(
        graph
            .revisions()
            .iter()
            .rev()
            .map(|r| &*Box::leak(r.id.clone().into_boxed_str())),
    );
    let mut cmd = with_revisions(Cli::command(), &words);
    let name = cmd.get_name().to_owned();
    let mut buffer = Vec::new();
    let generator = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, name.clone(), &mut buffer);
    if shell == ShellArg::Bash {
        buffer = fix_bash_labels(&String::from_utf8_lossy(&buffer), &name).into_bytes();
    }
    out.write_all(&buffer).map_err(io_error)
}

/// clap_complete's bash script spells the state of a subcommand of a hyphenated binary two
/// ways (`identity__migrate__subcmd__wait` where it walks the words, but
/// `identity__subcmd__migrate__subcmd__wait` in the `case` arms), so nothing past the first
/// word completes (clap-rs/clap#6421, open). The arms are respelled the way the walk spells
/// them; the completion test proves the result.
fn fix_bash_labels(script: &str, bin_name: &str) -> String {
    let wrong = bin_name.replace('-', "__subcmd__");
    let right = bin_name.replace('-', "__");
    if wrong == right {
        return script.to_owned();
    }
    script.replace(&wrong, &right)
}

/// Prints the man page: the command as clap_mangen renders it, then a section with every
/// subcommand's own help (one page, so `man -l` of it tells everything).
pub fn man(out: &mut dyn Write) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut buffer = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buffer)
        .map_err(io_error)?;
    buffer.extend_from_slice(b".SH \"COMMAND DETAILS\"\n");
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let help = sub.render_long_help().to_string();
        buffer.extend_from_slice(
            format!(".SS \"identity-migrate {}\"\n.nf\n", sub.get_name()).as_bytes(),
        );
        for line in help.lines() {
            buffer.extend_from_slice(roff_line(line).as_bytes());
            buffer.push(b'\n');
        }
        buffer.extend_from_slice(b".fi\n");
    }
    out.write_all(&buffer).map_err(io_error)
}

/// A line of text as roff shows it literally: backslashes escaped, and a leading `.` or `'`
/// (which roff would read as a request) protected.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
