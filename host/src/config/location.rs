//! Places in a config file, as people and editors count them: line and column from 1.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a config file, shown as `FILE:LINE:COLUMN` (the form editors jump to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The place of byte `offset` of `text`, read from `file`. An offset past the end, or inside
    /// a character, counts as the nearest character boundary before it.
    pub fn of(file: &Path, text: &str, offset: usize) -> Self {
        let offset = floor_boundary(text, offset);
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            file: file.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The line holding byte `offset` of `text`, with a caret under its column, ready to follow an
/// error message; empty when the line is empty.
pub(super) fn snippet(text: &str, offset: usize) -> String {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim_end_matches('\r');
    if line.trim().is_empty() {
        return String::new();
    }
    // Control characters would garble the terminal, and tabs the caret's position.
    let shown: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let column = text[line_start..offset].chars().count();
    format!("\n    | {shown}\n    | {}^", " ".repeat(column))
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
