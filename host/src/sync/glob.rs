//! File patterns for ignore lists and routing rules, in the spirit of `.gitignore`:
//!
//! - `*` matches any run of characters within one path component, `?` one character;
//! - `**` as a whole component matches any number of components (`cache/**`, `**/build/*.o`);
//! - a pattern without `/` matches a file's name at any depth (`*.raw`); one with `/` matches the
//!   path from the folder's root (a leading `/` only says so explicitly);
//! - everything else is literal, `[` and `]` included (file names use them more than patterns do).

use std::fmt;

/// A checked pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    /// Components to match from the root, or `None` for a name-only pattern.
    anchored: bool,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// `**`.
    AnyDepth,
    /// A component with `*` and `?`.
    Component(Vec<char>),
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// Nothing to match.
    #[error("the pattern is empty")]
    Empty,
    /// `**` inside a component, like `a**`.
    #[error("`**` must be a whole path component, like `cache/**` or `**/*.o`")]
    DoubleStar,
    /// An empty component, like `a//b`, or `.`/`..`.
    #[error("a pattern cannot hold empty, `.` or `..` components")]
    BadComponent,
}

impl Glob {
    /// Checks `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let trimmed = pattern.strip_prefix('/').unwrap_or(pattern);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(GlobError::Empty);
        }
        let anchored = pattern.starts_with('/') || trimmed.contains('/');
        let mut parts = Vec::new();
        for component in trimmed.split('/') {
            match component {
                "" | "." | ".." => return Err(GlobError::BadComponent),
                "**" => parts.push(Part::AnyDepth),
                c if c.contains("**") => return Err(GlobError::DoubleStar),
                c => parts.push(Part::Component(c.chars().collect())),
            }
        }
        Ok(Self {
            text: pattern.to_owned(),
            anchored,
            parts,
        })
    }

    /// Whether the file at `path` (relative to its folder, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if self.anchored {
            match_parts(&self.parts, &components)
        } else {
            components
                .last()
                .is_some_and(|name| match_parts(&self.parts, &[name]))
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

fn match_parts(parts: &[Part], components: &[&str]) -> bool {
    match parts.split_first() {
        None => components.is_empty(),
        Some((Part::AnyDepth, rest)) => {
            (0..=components.len()).any(|skip| match_parts(rest, &components[skip..]))
        }
        Some((Part::Component(pattern), rest)) => match components.split_first() {
            Some((first, others)) => {
                let name: Vec<char> = first.chars().collect();
                match_component(pattern, &name) && match_parts(rest, others)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one component, iteratively with one backtrack point (linear enough for
/// names; no exponential blow-up on `*a*a*a*b`).
fn match_component(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> Glob {
        Glob::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    #[test]
    fn a_name_pattern_matches_at_any_depth() {
        let raw = glob("*.raw");
        assert!(raw.matches("a.raw"));
        assert!(raw.matches("2026/may/a.raw"));
        assert!(!raw.matches("a.raw.jpg"));
        assert!(!raw.matches("a.RAW"));
        assert!(glob("IMG_????.jpg").matches("x/IMG_0042.jpg"));
        assert!(!glob("IMG_????.jpg").matches("IMG_42.jpg"));
        assert!(glob("[draft] *.txt").matches("[draft] notes.txt"));
    }

    #[test]
    fn a_pattern_with_a_slash_is_anchored_at_the_root() {
        let cache = glob("cache/**");
        assert!(cache.matches("cache/a"));
        assert!(cache.matches("cache/x/y/z"));
        assert!(!cache.matches("sub/cache/a"));
        assert!(glob("/notes.txt").matches("notes.txt"));
        assert!(!glob("/notes.txt").matches("a/notes.txt"));
        let objects = glob("**/build/*.o");
        assert!(objects.matches("build/a.o"));
        assert!(objects.matches("x/y/build/a.o"));
        assert!(!objects.matches("x/build/sub/a.o"));
        assert!(glob("docs/*.md").matches("docs/a.md"));
        assert!(!glob("docs/*.md").matches("docs/x/a.md"));
    }

    #[test]
    fn stars_do_not_cross_components_and_do_not_blow_up() {
        assert!(!glob("a*b").matches("a/b"));
        assert!(glob("*").matches("anything"));
        let evil = glob("*a*a*a*a*a*a*a*a*b");
        let name = "a".repeat(5000);
        assert!(!evil.matches(&name));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("/"), Err(GlobError::Empty));
        assert_eq!(Glob::new("a**"), Err(GlobError::DoubleStar));
        assert_eq!(Glob::new("a//b"), Err(GlobError::BadComponent));
        assert_eq!(Glob::new("../x"), Err(GlobError::BadComponent));
    }
}
