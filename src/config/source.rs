//! Where configuration text came from: positions in files, problems at a position, and the
//! small value readers every part of the configuration shares. A leaf of `config`: `validate`
//! and `gslb` both build on it, neither on the other's helpers.

use super::Problem;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A position in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) file: PathBuf,
    pub(crate) line: u32,
    pub(crate) col: u32,
}

impl Loc {
    pub(crate) fn of<T>(file: &Path, s: &Spanned<T>) -> Loc {
        Loc {
            file: file.to_path_buf(),
            line: s.referenced.line() as u32,
            col: s.referenced.column() as u32,
        }
    }
    pub(crate) fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
    pub(crate) fn short(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

pub(crate) fn problem_at<T>(file: &Path, s: &Spanned<T>, message: impl Into<String>) -> Problem {
    Loc::of(file, s).problem(message)
}

/// Reads a duration such as `500ms`, `10s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 500ms, 10s, 2m)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)")),
    })
}
