//! [`BackupName`]: the one reading and writing of a backup's name, for sync (which takes
//! backups and restores them) and heal's `prune_backups` (which removes old ones).
//!
//! Relative to a target's backups folder, a backup of `REL` taken at `STAMP`
//! (`YYYYMMDD-HHMMSS`, UTC, the run's ID) is `REL-STAMP.bak`; the `N`th more taken in the same
//! second `REL-STAMP.N.bak`; and when `REL`'s last name is too long to take the suffix,
//! `REL/STAMP.bak` (`REL/STAMP.N.bak`): the name as a folder.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::fsops::{parse_stamp, stamp, NAME_MAX};

/// A backup's name (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupName {
    /// The original path, relative to the primary.
    pub original: String,
    /// When it was taken (whole seconds: the name says no more).
    pub taken: SystemTime,
    /// Which of that second's backups of `original` (0: the first).
    pub dup: u32,
}

impl BackupName {
    pub fn new(original: impl Into<String>, taken: SystemTime, dup: u32) -> BackupName {
        BackupName {
            original: original.into(),
            taken,
            dup,
        }
    }

    /// Whether the original's last name is too long for the suffix: the backup is then a
    /// file in a folder of that name.
    fn long(&self) -> bool {
        let name = self.original.rsplit('/').next().unwrap_or(&self.original);
        // `-` + stamp (15) + `.N` (room for 4 digits) + `.bak`.
        name.len() + 1 + 15 + 5 + 4 > NAME_MAX
    }

    /// When a backup was taken, from its file name alone (what a walk of the folder sees):
    /// `NAME-STAMP[.N].bak`, or `STAMP[.N].bak` inside a long name's folder.
    pub fn taken_from_file_name(name: &str) -> Option<SystemTime> {
        if let Ok(b) = name.parse::<BackupName>() {
            return Some(b.taken);
        }
        let (stamp, _) = split_dup(name.strip_suffix(".bak")?);
        parse_stamp(stamp)
    }
}

/// `STEM` without its `.N` duplicate number, and the number (0 without one).
fn split_dup(stem: &str) -> (&str, u32) {
    match stem.rsplit_once('.') {
        Some((head, n))
            if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (head, n.parse().unwrap_or(0))
        }
        _ => (stem, 0),
    }
}

impl fmt::Display for BackupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.long() { '/' } else { '-' };
        write!(f, "{}{sep}{}", self.original, stamp(self.taken))?;
        if self.dup > 0 {
            write!(f, ".{}", self.dup)?;
        }
        f.write_str(".bak")
    }
}

impl FromStr for BackupName {
    type Err = String;

    /// A name relative to the backups folder.
    fn from_str(rel: &str) -> Result<BackupName, String> {
        let bad = || {
            format!(
                "{rel:?} is not a backup's name (REL-YYYYMMDD-HHMMSS.bak, as `metasystem \
                 backups` lists them)"
            )
        };
        let stem = rel.strip_suffix(".bak").ok_or_else(bad)?;
        // `REL-STAMP` or `REL/STAMP`, each maybe with `.N`; a stamp is 15 bytes.
        let try_split = |stem: &str, dup: u32| -> Option<BackupName> {
            let at = stem.len().checked_sub(15)?;
            let (head, st) = (stem.get(..at)?, stem.get(at..)?);
            let taken = parse_stamp(st)?;
            let (original, sep) = (
                head.get(..head.len().checked_sub(1)?)?,
                head.get(head.len() - 1..)?,
            );
            // A relative path of named parts: no empty one (`a/`, `/a`, `a//b`), which no
            // backup of a file has and which a walk of the folder could not read back.
            if original.split('/').any(str::is_empty) || (sep != "-" && sep != "/") {
                return None;
            }
            let b = BackupName::new(original, taken, dup);
            // The separator is the one the name's length calls for.
            ((sep == "/") == b.long()).then_some(b)
        };
        let (head, dup) = split_dup(stem);
        if dup > 0 || head.len() != stem.len() {
            if let Some(b) = try_split(head, dup) {
                return Ok(b);
            }
        }
        try_split(stem, 0).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {

    /// Regression (found by the `names` fuzz target): `no2/2502/-20240901-030405.bak` read
    /// as a backup of the path `no2/2502/`, which no file has, and which a walk of the folder
    /// (file name `-20240901-030405.bak`) could not date, so it was listed and never pruned.
    #[test]
    fn an_original_with_an_empty_part_is_not_a_backup() {
        for name in [
            "no2/2502/-20240901-030405.bak",
            "/a-20240901-030405.bak",
            "a//b-20240901-030405.bak",
            "a//20240901-030405.bak",
        ] {
            assert!(name.parse::<BackupName>().is_err(), "{name}");
        }
        assert!("a/b-20240901-030405.bak".parse::<BackupName>().is_ok());
    }
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn names_round_trip() {
        let long = "n".repeat(240);
        for (original, dup) in [
            ("notes.db", 0),
            ("sub/notes.db", 0),
            ("sub/notes.db", 2),
            ("v.2", 0),
            ("v.2", 12),
            ("a-b-20240101-000000", 0),
            (long.as_str(), 0),
            (long.as_str(), 3),
        ] {
            let b = BackupName::new(format!("dir/{original}"), at(1_704_164_645), dup);
            let text = b.to_string();
            assert_eq!(text.parse::<BackupName>(), Ok(b.clone()), "{text}");
            assert!(text.rsplit('/').next().unwrap().len() <= NAME_MAX, "{text}");
            assert_eq!(
                BackupName::taken_from_file_name(text.rsplit('/').next().unwrap()),
                Some(b.taken),
                "{text}"
            );
        }
        assert_eq!(
            BackupName::new("notes.db", at(1_704_164_645), 0).to_string(),
            "notes.db-20240102-030405.bak"
        );
        assert_eq!(
            BackupName::new("notes.db", at(1_704_164_645), 2).to_string(),
            "notes.db-20240102-030405.2.bak"
        );
        assert!(BackupName::new(long.as_str(), at(0), 0)
            .to_string()
            .ends_with("/19700101-000000.bak"));
    }

    #[test]
    fn other_names_are_not_backups() {
        for not in [
            "notes.db",
            "notes.bak",
            "-20240102-030405.bak",
            "notes-20240102-030405.bak.tmp",
            "notes-20240102030405.bak",
            "notes-20241302-030405.bak",
            "notes-20230229-030405.bak",
            "notes.conflict-20240102-030405",
            "short/20240102-030405.bak",
            "",
        ] {
            assert!(not.parse::<BackupName>().is_err(), "{not}");
        }
        // A file alone: the first form, or a long name's `STAMP[.N].bak`.
        assert_eq!(
            BackupName::taken_from_file_name("20240102-030405.3.bak"),
            Some(at(1_704_164_645))
        );
        assert_eq!(BackupName::taken_from_file_name("notes.bak"), None);
    }
}
