//! Paths that come from a peer: relative, `/`-separated, and harmless on every platform we write to.

use std::fmt;
use std::path::{Path, PathBuf};

/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name, in bytes (the common filesystem limit).
pub const MAX_NAME_BYTES: usize = 255;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// A validated relative path: each component is a plain name, so joining it to a directory can
/// only ever name something inside that directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafePath {
    components: Vec<String>,
}

/// Why a path from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or an empty component (`a//b`, a trailing `/`).
    #[error("empty path or path component in {0:?}")]
    Empty(String),
    /// Starts with `/`, or a drive or UNC prefix.
    #[error("{0:?} is absolute; only relative paths are accepted")]
    Absolute(String),
    /// `.` or `..` as a component.
    #[error("{0:?} contains '.' or '..'")]
    Traversal(String),
    /// A NUL, control character, backslash or another character Windows or Unix filesystems cannot hold.
    #[error("{0:?} contains a character not allowed in file names ({1:?})")]
    BadCharacter(String, char),
    /// A name Windows reserves for devices (`CON`, `NUL`, `COM1`…), one ending in a dot or space, or
    /// the name of a p2phost part file (`NAME.p2phost-part`).
    #[error("{0:?} uses a reserved or unportable name {1:?}")]
    Reserved(String, String),
    /// Over [`MAX_PATH_BYTES`], [`MAX_NAME_BYTES`] or [`MAX_DEPTH`].
    #[error("{0:?} is too long or too deep")]
    TooLong(String),
}

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

impl SafePath {
    /// Validates a path as a peer sent it.
    pub fn from_peer(path: &str) -> Result<Self, PathError> {
        let owned = || path.to_owned();
        if path.is_empty() {
            return Err(PathError::Empty(owned()));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(owned()));
        }
        if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
            return Err(PathError::Absolute(owned()));
        }
        let mut components = Vec::new();
        for name in path.split('/') {
            check_name(path, name)?;
            components.push(name.to_owned());
        }
        if components.len() > MAX_DEPTH {
            return Err(PathError::TooLong(owned()));
        }
        Ok(Self { components })
    }

    /// The path under `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        path.extend(&self.components);
        path
    }

    /// Its names, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.components.last().map_or("", String::as_str)
    }

    /// The path with its last component changed to `name` (for `NAME.part`, conflict copies…).
    pub fn with_file_name(&self, name: &str) -> Result<Self, PathError> {
        let mut components = self.components.clone();
        components.pop();
        components.push(name.to_owned());
        Self::from_peer(&components.join("/"))
    }

    /// How many components deep it is.
    pub fn depth(&self) -> usize {
        self.components.len()
    }
}

fn check_name(path: &str, name: &str) -> Result<(), PathError> {
    let owned = || path.to_owned();
    if name.is_empty() {
        return Err(PathError::Empty(owned()));
    }
    if name == "." || name == ".." {
        return Err(PathError::Traversal(owned()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::TooLong(owned()));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
    {
        return Err(PathError::BadCharacter(owned(), bad));
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    // A part file's name is p2phost's own: a peer offering one could pass a file off as the
    // partial file of another.
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem))
        || name.ends_with(['.', ' '])
        || super::is_part_name(name)
    {
        return Err(PathError::Reserved(owned(), name.to_owned()));
    }
    Ok(())
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_relative_paths() {
        for ok in [
            "a.txt",
            "photos/2026/IMG_0001.JPG",
            "Ünïcødé ✓/日本語.md",
            ".hidden",
            "a..b",
            "console.log",
        ] {
            let path = SafePath::from_peer(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(path.to_string(), ok);
            assert!(path.under(Path::new("/dest")).starts_with("/dest"));
        }
    }

    #[test]
    fn refuses_hostile_paths() {
        type Expect = fn(&PathError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, PathError::Empty(_))),
            ("a//b", |e| matches!(e, PathError::Empty(_))),
            ("a/", |e| matches!(e, PathError::Empty(_))),
            ("/etc/passwd", |e| matches!(e, PathError::Absolute(_))),
            ("C:/Windows", |e| matches!(e, PathError::Absolute(_))),
            ("c:evil", |e| matches!(e, PathError::Absolute(_))),
            ("../x", |e| matches!(e, PathError::Traversal(_))),
            ("a/../../x", |e| matches!(e, PathError::Traversal(_))),
            ("./x", |e| matches!(e, PathError::Traversal(_))),
            ("..", |e| matches!(e, PathError::Traversal(_))),
            ("a\\..\\b", |e| {
                matches!(e, PathError::BadCharacter(_, '\\'))
            }),
            ("a\0b", |e| matches!(e, PathError::BadCharacter(_, '\0'))),
            ("bell\x07", |e| {
                matches!(e, PathError::BadCharacter(_, '\x07'))
            }),
            ("esc\x1b[31m", |e| {
                matches!(e, PathError::BadCharacter(_, '\x1b'))
            }),
            ("del\x7f", |e| {
                matches!(e, PathError::BadCharacter(_, '\x7f'))
            }),
            ("c1\u{9b}", |e| {
                matches!(e, PathError::BadCharacter(_, '\u{9b}'))
            }),
            ("file:stream", |e| {
                matches!(e, PathError::BadCharacter(_, ':'))
            }),
            ("what?", |e| matches!(e, PathError::BadCharacter(_, '?'))),
            ("CON", |e| matches!(e, PathError::Reserved(..))),
            ("dir/nul.txt", |e| matches!(e, PathError::Reserved(..))),
            ("Com1.log", |e| matches!(e, PathError::Reserved(..))),
            // Windows treats CON.anything as the device, directories too.
            ("con.txt.d/file", |e| matches!(e, PathError::Reserved(..))),
            ("trailing.", |e| matches!(e, PathError::Reserved(..))),
            ("trailing ", |e| matches!(e, PathError::Reserved(..))),
            ("a.txt.p2phost-part", |e| {
                matches!(e, PathError::Reserved(..))
            }),
            ("d/A.TXT.P2PHOST-PART", |e| {
                matches!(e, PathError::Reserved(..))
            }),
        ];
        for (path, expected) in cases {
            match SafePath::from_peer(path) {
                Err(e) => assert!(expected(&e), "{path:?}: {e:?}"),
                Ok(p) => panic!("{path:?} accepted as {p}"),
            }
        }
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            SafePath::from_peer(&long_name),
            Err(PathError::TooLong(_))
        ));
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(matches!(
            SafePath::from_peer(&deep),
            Err(PathError::TooLong(_))
        ));
        let long = vec!["abcdefgh"; 600].join("/");
        assert!(matches!(
            SafePath::from_peer(&long),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn renaming_keeps_it_safe() {
        let path = SafePath::from_peer("a/b.txt").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            path.with_file_name("b.txt.part").map(|p| p.to_string()),
            Ok("a/b.txt.part".to_owned())
        );
        assert!(path.with_file_name("..").is_err());
        assert_eq!(path.file_name(), "b.txt");
        assert_eq!(path.depth(), 2);
    }
}
