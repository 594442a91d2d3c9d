//! Temp files: every file a sync writes goes to a temp name beside its destination first.
//!
//! A temp name has a fixed length whatever its destination's (`.msync-NONCE-SEQ.tmp`, 36
//! bytes), so any legal name (255 bytes) syncs. The nonce is one per run or operator's job,
//! recorded in the store for the target before its first temp is created; a later run removes
//! only the temps whose nonce the store lists for this target. A user's file that merely looks
//! like a temp, another target's temp (two targets sharing a primary) or another host's (a
//! shared target) is never deleted: it is left alone and reported.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::store::{unix_ms, DurableOp, Store};

/// How a temp name starts.
const PREFIX: &str = ".msync-";
/// How it ends.
const SUFFIX: &str = ".tmp";
/// Its length: prefix, 16 hex digits, `-`, 8 hex digits, suffix.
pub const LEN: usize = PREFIX.len() + 16 + 1 + 8 + SUFFIX.len();
/// The mark of temp names of versions before nonces were recorded (`.NAME.msync-tmp-HEX`).
const LEGACY_MARK: &str = ".msync-tmp-";

/// The temp names of one run or job.
#[derive(Debug)]
pub struct Temps {
    nonce: u64,
    seq: AtomicU32,
    /// Whether the store lists the nonce already.
    registered: AtomicBool,
}

impl Default for Temps {
    fn default() -> Self {
        Temps::new()
    }
}

impl Temps {
    pub fn new() -> Temps {
        Temps {
            nonce: fastrand::u64(..),
            seq: AtomicU32::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// The nonce as the store and the names carry it.
    pub fn nonce(&self) -> String {
        format!("{:016x}", self.nonce)
    }

    /// A fresh temp name beside `dest` (registered first: see [`Temps::register`]).
    pub fn beside(&self, dest: &Path) -> PathBuf {
        debug_assert!(
            self.registered.load(Ordering::Relaxed),
            "a temp before its nonce"
        );
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        dest.with_file_name(format!("{PREFIX}{:016x}-{seq:08x}{SUFFIX}", self.nonce))
    }

    /// Records the nonce in the store for `target` (once; durable before it answers), so that a
    /// later run may remove what a killed one left.
    pub async fn register(&self, store: &Store, target: &str) -> Result<(), String> {
        if self.registered.load(Ordering::Relaxed) {
            return Ok(());
        }
        store
            .durable(
                DurableOp::SyncTemps {
                    target: target.to_string(),
                    add: Some(self.nonce()),
                    forget: Vec::new(),
                    at_ms: unix_ms(std::time::SystemTime::now()),
                },
                Some(std::time::Duration::from_secs(60)),
            )
            .await
            .map_err(|e| format!("cannot record the temp files of {target}: {e}"))?;
        self.registered.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Names for a test that writes no store.
    #[cfg(test)]
    pub fn unregistered() -> Temps {
        let t = Temps::new();
        t.registered.store(true, Ordering::Relaxed);
        t
    }
}

/// The nonce of a temp name, if it is one (`.msync-` 16 hex `-` 8 hex `.tmp`).
pub fn nonce_of(name: &str) -> Option<&str> {
    // A snapshot that failed its check is kept aside for a while as `TEMP.damaged`.
    let name = name.strip_suffix(".damaged").unwrap_or(name);
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (nonce, seq) = rest.split_once('-')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(nonce, 16) && hex(seq, 8)).then_some(nonce)
}

/// Whether `name` is a temp name of this tool, of any run, host or version.
pub fn is_temp(name: &str) -> bool {
    nonce_of(name).is_some() || is_legacy(name)
}

/// A temp name of a version before nonces were recorded: `.NAME.msync-tmp-` and 16 hex
/// digits. Never synced, never deleted (it may be a user's file): reported.
pub fn is_legacy(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(LEGACY_MARK)
            .is_some_and(|(_, r)| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_have_one_length_and_carry_their_nonce() {
        let t = Temps::unregistered();
        let long = "x".repeat(255);
        for dest in ["a", long.as_str(), "d/notes.db"] {
            let p = t.beside(Path::new(dest));
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(name.len(), LEN, "{name}");
            assert_eq!(nonce_of(name), Some(t.nonce().as_str()));
            assert!(is_temp(name));
        }
        assert_ne!(t.beside(Path::new("a")), t.beside(Path::new("a")));
    }

    #[test]
    fn only_names_of_the_exact_form_are_temps() {
        for name in [
            ".msync-0123456789abcdef-00000001.tmp",
            ".notes.db.msync-tmp-0123456789abcdef",
        ] {
            assert!(is_temp(name), "{name}");
        }
        for name in [
            ".msync-0123456789abcdef-00000001.tmp.x",
            "msync-0123456789abcdef-00000001.tmp",
            ".msync-0123456789abcdeg-00000001.tmp",
            ".msync-0123456789abcdef-0000001.tmp",
            "notes.msync-tmp-0123456789abcdef",
            ".c.msync-tmp-0123456789abcdeg",
            "report.tmp",
        ] {
            assert!(!is_temp(name), "{name}");
        }
        assert!(is_legacy(".a.msync-tmp-0123456789abcdef"));
        assert_eq!(
            nonce_of(".msync-0123456789abcdef-00000001.tmp"),
            Some("0123456789abcdef")
        );
    }
}
