//! Which files of a watched folder are synced, decided from the relative path alone.
//!
//! Left out, always:
//! - p2phost's own part files, `NAME.p2phost-part` (a file being received, renamed into place
//!   when complete);
//! - other programs' partial downloads, `*.part` (Firefox, KDE and others write `NAME.part` and
//!   rename it when done): deletions are not synced, so a half-written file synced once would stay
//!   on every peer after it was renamed here; the finished file syncs under its own name. A file of
//!   the user's own so named stays here too (rename it to sync it);
//! - temporary and lock files of editors and file managers: `*.tmp`, `*~`, `.#*`, `#*#`, `.*.swp`,
//!   `.*.swx`, `.~lock.*#` (LibreOffice), `~$*` (Microsoft Office), `.DS_Store`, `Thumbs.db`;
//! - anything inside a `.p2phost` folder, at any depth.
//!
//! Then the folder's own `ignore` patterns, matched against the path and against each folder on
//! the way to it, as `.gitignore` does: `node_modules` or `cache/**` leaves out everything inside.
//!
//! Sync-conflict copies (`NAME.sync-conflict-DATE-PEER.EXT`) are ordinary files and are synced.

use super::Glob;

/// The name of p2phost's own folder; nothing inside it is synced.
pub const P2PHOST_DIR: &str = ".p2phost";

/// The filter of one folder: the built-in rules plus its ignore patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderFilter {
    ignore: Vec<Glob>,
}

impl FolderFilter {
    /// The built-in rules plus `ignore`.
    pub fn new(ignore: Vec<Glob>) -> Self {
        Self { ignore }
    }

    /// The folder's own patterns.
    pub fn ignore(&self) -> &[Glob] {
        &self.ignore
    }

    /// Whether the file at `rel_path` (relative to the folder, `/`-separated) is synced.
    pub fn syncs_file(&self, rel_path: &str) -> bool {
        is_syncable(rel_path, &self.ignore)
    }

    /// Whether a walk goes into the folder at `rel_path`: not `.p2phost`, not ignored. The
    /// built-in file-name rules do not apply to folders (a folder named `x.tmp` is walked).
    pub fn enters_dir(&self, rel_path: &str) -> bool {
        let components: Vec<&str> = components(rel_path).collect();
        !components.is_empty()
            && !components.contains(&P2PHOST_DIR)
            && !ignored_at_any_level(&components, &self.ignore)
    }
}

/// Whether the file at `rel_path` (relative to its folder, `/`-separated) is synced: not a
/// part file or temporary file, not inside `.p2phost`, and matched by none of `ignore` (neither
/// itself nor a folder on its way).
pub fn is_syncable(rel_path: &str, ignore: &[Glob]) -> bool {
    let components: Vec<&str> = components(rel_path).collect();
    let Some(name) = components.last() else {
        return false;
    };
    !is_temporary_name(name)
        && !components.contains(&P2PHOST_DIR)
        && !ignored_at_any_level(&components, ignore)
}

/// Whether `name` is a part file (p2phost's or a download's) or an editor's or file manager's
/// temporary or lock file.
pub fn is_temporary_name(name: &str) -> bool {
    let ends_with_ignore_case = |suffix: &str| {
        name.len() > suffix.len()
            && name
                .get(name.len() - suffix.len()..)
                .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
    };
    crate::store::is_part_name(name)
        || ends_with_ignore_case(".part")
        || ends_with_ignore_case(".tmp")
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() >= 2 && name.starts_with('#') && name.ends_with('#'))
        || (name.starts_with('.') && (name.ends_with(".swp") || name.ends_with(".swx")))
        || (name.starts_with(".~lock.") && name.ends_with('#'))
        || name.starts_with("~$")
        || name == ".DS_Store"
        || name.eq_ignore_ascii_case("Thumbs.db")
}

fn components(rel_path: &str) -> impl Iterator<Item = &str> {
    rel_path.split('/').filter(|c| !c.is_empty())
}

/// Whether a pattern matches the path or one of the folders on its way.
fn ignored_at_any_level(components: &[&str], ignore: &[Glob]) -> bool {
    if ignore.is_empty() {
        return false;
    }
    let mut prefix = String::new();
    for component in components {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if ignore.iter().any(|glob| glob.matches(&prefix)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Vec<Glob> {
        patterns
            .iter()
            .map(|p| Glob::new(p).unwrap_or_else(|e| panic!("{p}: {e}")))
            .collect()
    }

    #[test]
    fn built_in_rules_and_ignore_patterns_by_table() {
        let ignore = globs(&["*.raw", "cache/**", "node_modules", "/top.txt", "docs/*.md"]);
        let cases: &[(&str, bool)] = &[
            // Ordinary files.
            ("a.txt", true),
            ("photos/2026/IMG_0001.JPG", true),
            (".hidden", true),
            (".gitignore", true),
            ("notes.md", true),
            ("sub/top.txt", true),
            ("docs/sub/a.md", true),
            ("cachefile", true),
            ("part", true),
            (".part", true),
            ("a.partial", true),
            ("tmp", true),
            ("#", true),
            ("swp", true),
            ("x.tmp.d/a.txt", true),
            // Sync-conflict copies are files like any other.
            ("a.sync-conflict-20260501-101500-MFZWI3D.txt", true),
            ("d/report.sync-conflict-20260501-101500-MFZWI3D", true),
            // p2phost's own part files, and other programs' partial downloads.
            ("a.txt.p2phost-part", false),
            ("sub/IMG_0001.JPG.p2phost-part", false),
            ("A.P2PHOST-PART", false),
            ("a.txt.part", false),
            ("sub/IMG_0001.JPG.part", false),
            ("A.PART", false),
            ("a.p2phost-parts", true),
            // Temporary and lock files.
            ("a.tmp", false),
            ("d/A.TMP", false),
            ("a.txt~", false),
            ("~", false),
            (".#a.txt", false),
            ("#a.txt#", false),
            ("##", false),
            (".a.txt.swp", false),
            ("d/.a.txt.swx", false),
            (".~lock.report.odt#", false),
            ("~$report.docx", false),
            (".DS_Store", false),
            ("d/.DS_Store", false),
            ("Thumbs.db", false),
            ("d/thumbs.db", false),
            // p2phost's folder, at any depth.
            (".p2phost/state.redb", false),
            ("d/.p2phost/x", false),
            (".p2phost", false),
            // The folder's patterns.
            ("a.raw", false),
            ("2026/a.raw", false),
            ("cache/a", false),
            ("cache/x/y", false),
            ("sub/cache/a", true),
            ("node_modules/x/y.js", false),
            ("web/node_modules/x.js", false),
            ("top.txt", false),
            ("docs/a.md", false),
            // Not a file.
            ("", false),
            ("/", false),
        ];
        let filter = FolderFilter::new(ignore.clone());
        for &(path, expected) in cases {
            assert_eq!(is_syncable(path, &ignore), expected, "{path:?}");
            assert_eq!(filter.syncs_file(path), expected, "{path:?}");
        }
        // Without patterns only the built-in rules apply.
        assert!(is_syncable("a.raw", &[]));
        assert!(!is_syncable("a.tmp", &[]));
    }

    #[test]
    fn folders_are_entered_unless_ignored_or_p2phost() {
        let filter = FolderFilter::new(globs(&["cache/**", "build", "*.bak"]));
        let cases: &[(&str, bool)] = &[
            ("photos", true),
            ("photos/2026", true),
            ("x.tmp", true),
            ("dir~", true),
            ("sub/cache", true),
            (".p2phost", false),
            ("a/.p2phost", false),
            ("cache", false),
            ("cache/x", false),
            ("build", false),
            ("src/build", false),
            ("old.bak", false),
            ("", false),
        ];
        for &(path, expected) in cases {
            assert_eq!(filter.enters_dir(path), expected, "{path:?}");
        }
    }
}
