//! The `.env` file: read like dotenvy does (the working directory, then its parents), but a
//! line that does not parse is named by its number only: it may hold a password or any other
//! secret the service keeps there (`JWT_SECRET`), and an error message is often shared.

use std::path::{Path, PathBuf};

/// Loads the nearest `.env` into the environment (never overriding a variable already set).
pub fn load() -> Result<(), String> {
    let Some(path) = find() else {
        return Ok(());
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => Err(format!(
            "cannot read {}: syntax error on line {} (the line is not shown, it may hold a secret): write each line as NAME=value",
            path.display(),
            line_number(&path, &line).map_or_else(|| "?".to_owned(), |n| n.to_string())
        )),
        Err(dotenvy::Error::Io(e)) => Err(format!("cannot read {}: {e}", path.display())),
        Err(_) => Err(format!(
            "cannot read {}: a variable it names is not valid Unicode",
            path.display()
        )),
    }
}

fn find() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|dir| dir.join(".env"))
        .find(|candidate| candidate.is_file())
}

/// The 1-based number of the line `bad` starts with (dotenvy gives the text, not the number).
fn line_number(path: &Path, bad: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = bad.lines().next()?.trim();
    if first.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The whole line, else the line holding the text (dotenvy may give part of it, or a value
    // that runs over several lines).
    lines
        .iter()
        .position(|line| *line == first)
        .or_else(|| {
            lines
                .iter()
                .position(|line| !line.is_empty() && (line.contains(first) || first.contains(line)))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_line_is_found_by_its_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\n# note\nB='unterminated secret\nC=3\n").expect("write");
        assert_eq!(line_number(&path, "B='unterminated secret\nC=3"), Some(3));
        assert_eq!(line_number(&path, "nowhere"), None);
    }
}
