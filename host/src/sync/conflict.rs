//! Names for the losing side of a conflict, as Syncthing writes them:
//! `NAME.sync-conflict-YYYYMMDD-HHMMSS-BY.EXT`, where BY is the first group of the id of the host
//! whose change lost its name, and the time is UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `name` (a file name, no folder) is a conflict copy: such files sync like any other.
pub fn is_conflict_copy(name: &str) -> bool {
    name.contains(".sync-conflict-")
}

/// The conflict copy's file name for `name`, changed at `when` by the host whose id starts with
/// `by`.
pub fn conflict_name(name: &str, when: SystemTime, by: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        // A leading dot starts a hidden name, not an extension.
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    format!("{stem}.sync-conflict-{}-{by}{ext}", utc_stamp(when))
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp(when: SystemTime) -> String {
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn names_keep_the_extension_last() {
        // 2026-11-26 15:07:09 UTC.
        let when = at(1_795_705_629);
        assert_eq!(
            conflict_name("report.txt", when, "ZXEQUSG"),
            "report.sync-conflict-20261126-150709-ZXEQUSG.txt"
        );
        assert_eq!(
            conflict_name("archive.tar.gz", when, "AB"),
            "archive.tar.sync-conflict-20261126-150709-AB.gz"
        );
        assert_eq!(
            conflict_name("Makefile", when, "AB"),
            "Makefile.sync-conflict-20261126-150709-AB"
        );
        assert_eq!(
            conflict_name(".bashrc", when, "AB"),
            ".bashrc.sync-conflict-20261126-150709-AB"
        );
        assert!(is_conflict_copy(&conflict_name("a.txt", when, "AB")));
        assert!(!is_conflict_copy("a.txt"));
    }

    #[test]
    fn dates_are_right_across_leap_years_and_centuries() {
        assert_eq!(utc_stamp(at(0)), "19700101-000000");
        assert_eq!(utc_stamp(at(951_782_400)), "20000229-000000");
        assert_eq!(utc_stamp(at(4_102_444_799)), "20991231-235959");
        assert_eq!(utc_stamp(at(4_102_444_800)), "21000101-000000");
    }
}
