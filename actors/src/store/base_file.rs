//! A target's base between runs: not held in memory (at a million files it is ~140 MB a daemon
//! would hold while idle) but kept in a file beside the store, read at the start of a run or
//! job and written again after one that changed it. The store's rows stay the base (written as
//! files become durable, in transactions); the file is a copy that loads in a fraction of the
//! time (reading a million rows through sqlx took 5.7 s), used only while the store is at the
//! generation it names ([`super::sync::generation`]: a new random one with every change of
//! the rows, by triggers, whoever writes them). A file that is missing, of another generation or damaged is passed over: the
//! rows are read (and the file written again after the run).
//!
//! The file: `sync-base/<SHA-256 of the target's name, 32 hex digits>.base` in the store's
//! folder; the magic, the generation, the paths' count and bytes, then [`Base::encode`].
//! Written to a temp file, flushed to disk and renamed over the old one, so a crash leaves the
//! old file or the new one, never a torn one.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::sync::{base as read_rows, base_len, generation, Base};
use super::Store;

const MAGIC: &[u8; 8] = b"MSBASE\0\x01";
const HEADER_LEN: usize = 8 + 8 + 8 + 8;
/// Buffers of the reads and writes (the file is read and written front to back, once).
const BUF: usize = 1 << 20;

/// The folder of the base files, beside the store's database (never synced: see the sync
/// target kind's daemon files).
pub const FOLDER: &str = "sync-base";

/// `target`'s base file, for the store whose database is `db`.
pub fn path_of(db: &Path, target: &str) -> PathBuf {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(target.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    db.parent()
        .unwrap_or(Path::new("."))
        .join(FOLDER)
        .join(format!("{name}.base"))
}

/// Writes `base` as of generation `gen` to `path` (temp file, fsync, rename, folder fsync).
pub fn write(path: &Path, gen: i64, base: &Base) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("base.tmp");
    let file = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(BUF, file);
    w.write_all(MAGIC)?;
    w.write_all(&gen.to_le_bytes())?;
    w.write_all(&(base.len() as u64).to_le_bytes())?;
    w.write_all(&(base.path_bytes() as u64).to_le_bytes())?;
    base.encode(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The base in `path` if it is of generation `gen`; `None` if there is none or it is of
/// another; an error if it is damaged.
pub fn read(path: &Path, gen: i64) -> io::Result<Option<Base>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut r = BufReader::with_capacity(BUF, file);
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h)?;
    if &h[..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a base file of this version",
        ));
    }
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(a)
    };
    if word(8) as i64 != gen {
        return Ok(None);
    }
    let (len, bytes) = (word(16), word(24));
    let (Ok(len), Ok(bytes)) = (usize::try_from(len), usize::try_from(bytes)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a count too large",
        ));
    };
    Base::decode(&mut r, len, bytes).map(Some)
}

/// A target's base as a run or job takes it, and where it came from (for [`keep`]).
pub struct Loaded {
    pub base: Base,
    /// The store's generation when it was read.
    pub gen: i64,
    /// Read from the file (not the rows): no need to write the file again if unchanged.
    pub from_file: bool,
}

/// `target`'s base: from its file when the file is of the store's generation, else from the
/// rows (slow at a million paths; the file is written after the run).
pub async fn load(store: &Store, target: &str) -> Result<Loaded, String> {
    let gen = generation(store.reader(), target).await?;
    let path = path_of(store.path(), target);
    let shown = path.clone();
    let read = tokio::task::spawn_blocking(move || read(&path, gen)).await;
    match read {
        Ok(Ok(Some(base))) => {
            return Ok(Loaded {
                base,
                gen,
                from_file: true,
            })
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(
            file = %shown.display(), error = %e,
            "the sync base's file is damaged: the store is read instead"
        ),
        Err(e) => tracing::warn!(error = %e, "reading the sync base's file failed"),
    }
    let base = read_rows(store.reader(), target).await?;
    Ok(Loaded {
        base,
        gen,
        from_file: false,
    })
}

/// After a run or job: writes `base` to its file unless the file already holds it (read from
/// it, and the store still at that generation), then lets it go (and what it held goes back to
/// the system). A base whose count is not the store's is not written (the file is removed: the
/// next run reads the rows). Returns how many paths the base holds.
pub async fn keep(store: &Store, target: &str, loaded: Loaded) -> usize {
    let Loaded {
        base,
        gen,
        from_file,
    } = loaded;
    let len = base.len();
    let path = path_of(store.path(), target);
    let now = generation(store.reader(), target).await;
    let write = match now {
        Ok(now) if now == gen && from_file => None,
        Ok(now) => match base_len(store.reader(), target).await {
            Ok(n) if n == len => Some(now),
            Ok(n) => {
                tracing::warn!(
                    target, held = len, stored = n,
                    "the sync base held does not match the store's: not kept (the next run reads the store)"
                );
                None
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    let stale = write.is_none() && !matches!(now, Ok(n) if n == gen && from_file);
    let target = target.to_string();
    let done = tokio::task::spawn_blocking(move || {
        if let Some(gen) = write {
            if let Err(e) = self::write(&path, gen, &base) {
                tracing::warn!(target, file = %path.display(), error = %e,
                    "cannot write the sync base's file (the next run reads the store)");
                let _ = std::fs::remove_file(&path);
            }
        } else if stale {
            let _ = std::fs::remove_file(&path);
        }
        drop(base);
        crate::memory::release_free();
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "keeping the sync base failed");
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::{BaseEntry, SideState};

    fn entry(n: u64, differ: bool) -> BaseEntry {
        let side = SideState {
            hash: [n as u8; 32],
            size: n,
            mtime_ns: -(n as i64),
            stamp: n * 7,
            mode: 0o644,
        };
        BaseEntry {
            local: side,
            remote: if differ {
                SideState {
                    hash: [9; 32],
                    mode: 0o100_600,
                    stamp: 3,
                    ..side
                }
            } else {
                SideState { stamp: 5, ..side }
            },
        }
    }

    fn sample() -> Base {
        let mut b = Base::new();
        for (i, p) in ["a", "a/b", "dir/", "é/ü.txt", "z"].iter().enumerate() {
            b.insert(p.to_string(), entry(i as u64, i % 2 == 1));
        }
        b
    }

    #[test]
    fn a_base_written_reads_back_the_same_at_its_generation_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(&dir.path().join("metastore.db"), "docs");
        let base = sample();
        write(&path, 7, &base).unwrap();
        assert_eq!(read(&path, 7).unwrap(), Some(base.clone()));
        assert_eq!(
            read(&path, 8).unwrap(),
            None,
            "another generation is not used"
        );
        assert_eq!(read(&dir.path().join("none"), 7).unwrap(), None);
        // Written again over the old one.
        write(&path, 8, &Base::new()).unwrap();
        assert_eq!(read(&path, 8).unwrap(), Some(Base::new()));
        assert!(!path.with_extension("base.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_never_a_base() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.base");
        write(&path, 1, &sample()).unwrap();
        let good = std::fs::read(&path).unwrap();
        // Cut anywhere, one byte more, a path's byte changed to break the order or UTF-8,
        // another magic.
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        cases.push([good.as_slice(), &[0]].concat());
        let first_path = HEADER_LEN + 4;
        for byte in [b'z', 0xff] {
            let mut b = good.clone();
            b[first_path] = byte;
            cases.push(b);
        }
        let mut b = good.clone();
        b[0] = b'X';
        cases.push(b);
        for (i, case) in cases.iter().enumerate() {
            std::fs::write(&path, case).unwrap();
            assert!(read(&path, 1).is_err(), "case {i} read as a base");
        }
    }
}
