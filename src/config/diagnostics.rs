//! What loading reports: a [`Problem`] at a position in a file, naming the field at fault, and
//! the [`Diagnostics`] that collect them. The leaf of `config`: every other part raises its
//! problems through here.

use serde_saphyr::Spanned;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong in a file, at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    pub message: String,
    /// The field path at fault (`dns.listen`, `datacenters.eu.endpoints[0].address`,
    /// `records.www.A`, `ns`), when the problem concerns one field. The admin API reports it;
    /// it is data, never read back out of `message`.
    pub field: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found while loading; never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A position in a file (1-based line and column).
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
    /// The start of `file`: for problems with the whole file (it cannot be read, say).
    pub(crate) fn start(file: &Path) -> Loc {
        Loc {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
        }
    }
    /// `file:line:col`, to point at a second place from a message.
    pub(crate) fn short(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.line, self.col)
    }
    /// A problem here that names no field.
    pub(crate) fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
            field: None,
        }
    }
}

/// Where a problem is: a value read from the file being checked, or a position already known.
pub(crate) trait Place {
    fn loc(&self, file: &Path) -> Loc;
}

impl<T> Place for Spanned<T> {
    fn loc(&self, file: &Path) -> Loc {
        Loc::of(file, self)
    }
}

impl Place for Loc {
    fn loc(&self, _: &Path) -> Loc {
        self.clone()
    }
}

/// The problems found in one file so far. Validation reports every problem it can find, so
/// checks push here and go on with a stand-in value instead of returning early.
pub(crate) struct Diagnostics {
    file: PathBuf,
    problems: Vec<Problem>,
}

impl Diagnostics {
    /// Problems in `file` (the file spanned values are positions in).
    pub(crate) fn new(file: &Path) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            problems: Vec::new(),
        }
    }

    /// The file spanned values are positions in.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The usual shape, `field: message`, with `field` kept as the problem's field path.
    pub(crate) fn at(&mut self, at: &(impl Place + ?Sized), field: &str, message: impl fmt::Display) {
        self.say(at, Some(field), format_args!("{field}: {message}"));
    }

    /// `message` as it is; `field`, if any, is the field path at fault.
    pub(crate) fn say(
        &mut self,
        at: &(impl Place + ?Sized),
        field: Option<&str>,
        message: impl fmt::Display,
    ) {
        let Loc { file, line, col } = at.loc(&self.file);
        self.problems.push(Problem {
            file,
            line,
            col,
            message: message.to_string(),
            field: field.map(str::to_string),
        });
    }

    /// Takes in the problems of another file.
    pub(crate) fn append(&mut self, problems: Vec<Problem>) {
        self.problems.extend(problems);
    }

    /// How many problems so far: a check compares this before and after to know whether the
    /// value it built is sound.
    pub(crate) fn count(&self) -> usize {
        self.problems.len()
    }

    /// Every problem found, for a caller that stops here.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<Problem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// The name among `known` nearest to `typed`, to suggest for a typo: close enough to be a slip
/// of the keyboard (at most one edit in four characters, and at least one), and the only one that
/// close. `None` when nothing is near, or when two names are equally near.
pub(crate) fn nearest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (typed.chars().count() / 4).max(1);
    let mut best: Option<(usize, &str)> = None;
    let mut tie = false;
    for name in known {
        if name == typed {
            continue;
        }
        let dist = edit_distance(&typed.to_lowercase(), &name.to_lowercase());
        if dist > limit {
            continue;
        }
        match best {
            Some((b, _)) if dist > b => {}
            Some((b, n)) if dist == b => tie |= n != name,
            _ => {
                best = Some((dist, name));
                tie = false;
            }
        }
    }
    best.filter(|_| !tie).map(|(_, n)| n)
}

/// The edit distance of `a` and `b` (optimal string alignment): insertions, deletions,
/// substitutions and swaps of two neighbours count one each, the usual typing slips.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the dynamic-programming table: two back (for swaps), one back, this one.
    let mut two_back = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(two_back[j - 2] + 1);
            }
        }
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `, did you mean `x`?` when a name among `known` is near `typed`, else nothing.
pub(crate) fn did_you_mean<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(typed, known).map_or_else(String::new, |n| format!(", did you mean `{n}`?"))
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, nearest};

    #[test]
    fn edit_distance_counts_typing_slips() {
        for (a, b, want) in [
            ("", "", 0),
            ("ttl", "ttl", 0),
            ("tll", "ttl", 1),
            ("endponts", "endpoints", 1),
            ("eu-wst", "eu-west", 1),
            ("kitten", "sitting", 3),
            ("abc", "", 3),
        ] {
            assert_eq!(edit_distance(a, b), want, "{a} → {b}");
        }
    }

    #[test]
    fn nearest_suggests_one_close_name_or_none() {
        let known = ["eu-west", "eu-east", "us-east", "endpoints", "ttl"];
        for (typed, want) in [
            ("eu-wset", Some("eu-west")),
            ("EU-West", Some("eu-west")),
            ("endponts", Some("endpoints")),
            ("tll", Some("ttl")),
            // As near to eu-west as to eu-east: no guess.
            ("eu-est", None),
            ("ap-south", None),
            ("x", None),
        ] {
            assert_eq!(nearest(typed, known), want, "{typed}");
        }
    }
}
