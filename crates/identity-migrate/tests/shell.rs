//! `completions bash|zsh|fish` and `man`: generated from the CLI definition; the bash script
//! passes `bash -n` and completes revision ids, the man page renders with `man -l`.
//!
//! `bash` and `man` (man-db, with groff) must be installed: a missing tool fails the test with
//! one line saying which package to install, never skips it.

mod common;

use common::{chain, run, tempdir, Out};
use std::process::Command;

/// Runs an external tool, failing the test clearly if it is not installed.
fn tool(program: &str, package: &str, command: &mut Command) -> Out {
    let o = command.output().unwrap_or_else(|e| {
        panic!(
            "{program} is needed by this test and cannot be run ({e}): apt-get install {package}"
        )
    });
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn bash_completion_is_valid_and_completes_commands_and_revision_ids() {
    let dir = tempdir();
    let out = run(dir.path(), &["completions", "bash"]).ok();
    let script = dir.path().join("identity-migrate.bash");
    std::fs::write(&script, &out.stdout).expect("write");
    tool("bash", "bash", Command::new("bash").arg("-n").arg(&script)).ok();

    // Sourced in a real bash, it completes `wait --for <TAB>` to the revision ids (through the
    // function it registers with `complete -F`).
    let function = out
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "-F")
        .nth(1)
        .expect("the script registers a function with complete -F")
        .to_owned();
    let probe = format!(
        "source '{}'\n\
         COMP_WORDS=(identity-migrate wait --for '')\n\
         COMP_CWORD=3\n\
         COMP_LINE='identity-migrate wait --for '\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         {function} identity-migrate '' --for\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let completed = tool("bash", "bash", Command::new("bash").args(["-c", &probe])).ok();
    let words: Vec<&str> = completed.stdout.lines().collect();
    for id in chain() {
        assert!(
            words.contains(&id.as_str()),
            "{id} not completed: {words:?}"
        );
    }
    assert!(words.contains(&"head"), "{words:?}");

    // And the commands themselves.
    let probe = format!(
        "source '{}'\n\
         COMP_WORDS=(identity-migrate '')\n\
         COMP_CWORD=1\n\
         {function} identity-migrate '' identity-migrate\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let completed = tool("bash", "bash", Command::new("bash").args(["-c", &probe])).ok();
    for command in ["migrate", "wait", "promote", "status", "completions", "man"] {
        assert!(
            completed.stdout.lines().any(|w| w == command),
            "{command}: {completed}"
        );
    }
}

#[test]
fn zsh_and_fish_completions_name_the_commands_and_revision_ids() {
    let dir = tempdir();
    let head = chain().pop().expect("a head");
    for shell in ["zsh", "fish"] {
        let out = run(dir.path(), &["completions", shell]).ok();
        assert!(out.stdout.contains("promote"), "{shell}");
        assert!(out.stdout.contains(&head), "{shell}: no revision id");
    }
    let out = run(dir.path(), &["completions", "powershell"]);
    common::assert_one_error(&out, 2);
}

#[test]
fn man_page_renders_with_every_command() {
    let dir = tempdir();
    let out = run(dir.path(), &["man"]).ok();
    let page = dir.path().join("identity-migrate.1");
    std::fs::write(&page, &out.stdout).expect("write");
    let rendered = tool(
        "man",
        "man-db groff-base",
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LANG", "C.UTF-8"),
    );
    assert_eq!(rendered.code, 0, "man -l failed: {rendered}");
    assert_eq!(rendered.stderr, "", "groff warnings: {rendered}");
    let text = rendered.stdout;
    for section in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "SUBCOMMANDS",
        "COMMAND DETAILS",
    ] {
        assert!(text.contains(section), "{section}:\n{text}");
    }
    for command in ["migrate", "wait", "promote", "completions"] {
        assert!(
            text.contains(&format!("identity-migrate {command}")),
            "{command}:\n{text}"
        );
    }
    assert!(text.contains("--timeout <SECS>"), "{text}");
}
