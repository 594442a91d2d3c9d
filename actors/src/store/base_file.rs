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
//! A run that changed few paths (at most [`JOURNAL_MAX`], and an eighth of the base) does not
//! write the whole base again (140 MB at a million paths, for a run that changed 100): it
//! writes the changes since the base file, `<same>.delta`, which names the base file's
//! generation and the one it brings the base to. Each is written to a temp file, flushed to
//! disk and renamed over the old one, so a crash leaves the old file or the new one, never a
//! torn one.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::sync::{
    base as read_rows, base_len, generation, Base, BaseChange, BaseEntry, SideState, JOURNAL_MAX,
};
use super::Store;

const MAGIC: &[u8; 8] = b"MSBASE\0\x01";
const DELTA_MAGIC: &[u8; 8] = b"MSDELT\0\x01";
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

/// The delta file beside the base file `base`.
pub fn delta_path(base: &Path) -> PathBuf {
    base.with_extension("delta")
}

/// Writes `path` through a temp file: `fill` writes the contents, which are flushed to disk
/// before the rename over `path` (and the folder after it).
fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(BUF, file);
    fill(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Writes `base` as of generation `gen` to `path`.
pub fn write(path: &Path, gen: i64, base: &Base) -> io::Result<()> {
    write_atomic(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&gen.to_le_bytes())?;
        w.write_all(&(base.len() as u64).to_le_bytes())?;
        w.write_all(&(base.path_bytes() as u64).to_le_bytes())?;
        base.encode(w)
    })
}

/// The changes that bring the base file of generation `from` to generation `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub from: i64,
    pub to: i64,
    pub changes: Vec<BaseChange>,
}

/// A side as a delta holds it: hash, size, time, stamp, mode.
const SIDE_LEN: usize = 32 + 8 + 8 + 8 + 4;

fn put_side(w: &mut impl Write, s: &SideState) -> io::Result<()> {
    w.write_all(&s.hash)?;
    w.write_all(&s.size.to_le_bytes())?;
    w.write_all(&s.mtime_ns.to_le_bytes())?;
    w.write_all(&s.stamp.to_le_bytes())?;
    w.write_all(&s.mode.to_le_bytes())
}

fn side_of(b: &[u8]) -> SideState {
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[..32]);
    SideState {
        hash,
        size: word(32),
        mtime_ns: word(40) as i64,
        stamp: word(48),
        mode: u32::from_le_bytes([b[56], b[57], b[58], b[59]]),
    }
}

/// Writes `delta` to `path`.
pub fn write_delta(path: &Path, delta: &Delta) -> io::Result<()> {
    write_atomic(path, |w| {
        w.write_all(DELTA_MAGIC)?;
        w.write_all(&delta.from.to_le_bytes())?;
        w.write_all(&delta.to.to_le_bytes())?;
        w.write_all(&(delta.changes.len() as u64).to_le_bytes())?;
        for c in &delta.changes {
            let p = c.path().as_bytes();
            w.write_all(&[u8::from(matches!(c, BaseChange::Put(..)))])?;
            w.write_all(&(p.len() as u32).to_le_bytes())?;
            w.write_all(p)?;
            if let BaseChange::Put(_, e) = c {
                put_side(w, &e.local)?;
                put_side(w, &e.remote)?;
            }
        }
        Ok(())
    })
}

/// The delta in `path`; `None` if there is none; an error if it is damaged.
pub fn read_delta(path: &Path) -> io::Result<Option<Delta>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut r = BufReader::with_capacity(BUF, file);
    let mut h = [0u8; 32];
    r.read_exact(&mut h)?;
    if &h[..8] != DELTA_MAGIC {
        return Err(bad("not a delta file of this version"));
    }
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let (from, to, n) = (word(8) as i64, word(16) as i64, word(24));
    if n > JOURNAL_MAX as u64 {
        return Err(bad("more changes than a delta holds"));
    }
    let mut changes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut head = [0u8; 5];
        r.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len == 0 || len > 1 << 16 {
            return Err(bad("a path of a length no path has"));
        }
        let mut p = vec![0u8; len];
        r.read_exact(&mut p)?;
        let p = String::from_utf8(p).map_err(|_| bad("a path that is not UTF-8"))?;
        changes.push(match head[0] {
            0 => BaseChange::Forget(p),
            1 => {
                let mut b = [0u8; 2 * SIDE_LEN];
                r.read_exact(&mut b)?;
                BaseChange::Put(
                    p,
                    BaseEntry {
                        local: side_of(&b[..SIDE_LEN]),
                        remote: side_of(&b[SIDE_LEN..]),
                    },
                )
            }
            _ => return Err(bad("a change of no known kind")),
        });
    }
    if r.read(&mut [0u8; 1])? != 0 {
        return Err(bad("more than the header says"));
    }
    Ok(Some(Delta { from, to, changes }))
}

/// The base in `path` if it is of generation `gen`; `None` if there is none or it is of
/// another; an error if it is damaged.
pub fn read(path: &Path, gen: i64) -> io::Result<Option<Base>> {
    Ok(read_if(path, |g| g == gen)?.map(|(_, b)| b))
}

/// The base in `path` and its generation, if `wanted` takes the generation.
fn read_if(path: &Path, wanted: impl Fn(i64) -> bool) -> io::Result<Option<(i64, Base)>> {
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
    let gen = word(8) as i64;
    if !wanted(gen) {
        return Ok(None);
    }
    let (len, bytes) = (word(16), word(24));
    let (Ok(len), Ok(bytes)) = (usize::try_from(len), usize::try_from(bytes)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a count too large",
        ));
    };
    Base::decode(&mut r, len, bytes).map(|b| Some((gen, b)))
}

/// A target's base as a run or job takes it, and where it came from (for [`keep`]).
pub struct Loaded {
    pub base: Base,
    /// The store's generation when it was read.
    pub gen: i64,
    /// Read from the files (not the rows): the base file of this generation, or the base file
    /// and the delta that brings it here ([`Loaded::delta`]).
    pub from_file: bool,
    /// The delta applied to the base file (its generation is `delta.from`), if any.
    pub delta: Option<Delta>,
}

/// `target`'s base: from its files when they are of the store's generation, else from the
/// rows (slow at a million paths; the file is written after the run). Its changes from here on
/// are kept ([`Base::start_journal`]) for [`keep`].
pub async fn load(store: &Store, target: &str) -> Result<Loaded, String> {
    let gen = generation(store.reader(), target).await?;
    let path = path_of(store.path(), target);
    let shown = path.clone();
    let read = tokio::task::spawn_blocking(move || -> io::Result<Option<(Base, Option<Delta>)>> {
        let delta = match read_delta(&delta_path(&path)) {
            Ok(d) => d.filter(|d| d.to == gen),
            // A damaged delta: only the base file of this generation will do.
            Err(e) => {
                tracing::warn!(file = %delta_path(&path).display(), error = %e, "cannot read the sync base's delta (damaged or unreadable): only a base file of the store's generation is used");
                None
            }
        };
        let from = delta.as_ref().map(|d| d.from);
        let Some((at, mut base)) = read_if(&path, |g| g == gen || Some(g) == from)? else {
            return Ok(None);
        };
        // The base file of an older generation: the delta brings it here.
        let delta = match delta {
            Some(d) if at == d.from && at != gen => {
                base.apply(d.changes.clone());
                Some(d)
            }
            _ => None,
        };
        Ok(Some((base, delta)))
    })
    .await;
    match read {
        Ok(Ok(Some((mut base, delta)))) => {
            base.start_journal();
            return Ok(Loaded {
                base,
                gen,
                from_file: true,
                delta,
            });
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(
            file = %shown.display(), error = %e,
            "cannot read the sync base's file (damaged or unreadable): the store is read instead"
        ),
        Err(e) => tracing::warn!(error = %e, "reading the sync base's file failed"),
    }
    let mut base = read_rows(store.reader(), target).await?;
    base.start_journal();
    Ok(Loaded {
        base,
        gen,
        from_file: false,
        delta: None,
    })
}

/// How [`keep`] keeps a base.
#[derive(Debug)]
enum Keeping {
    /// The files hold it already.
    Nothing,
    /// The base file of the store's generation.
    Whole(i64),
    /// A delta over the base file there is.
    Delta(Delta),
    /// Not at all: the files are removed (the next run reads the rows).
    Remove,
}

/// After a run or job: keeps `base` in its files unless they hold it already (read from them,
/// and the store still at that generation): a delta over the base file when the run changed
/// few paths, else the whole base. Then lets it go (and what it held goes back to the
/// system). A base whose count is not the store's is not kept (the files are removed: the
/// next run reads the rows). Returns how many paths the base holds.
pub async fn keep(store: &Store, target: &str, loaded: Loaded) -> usize {
    let Loaded {
        mut base,
        gen,
        from_file,
        delta,
    } = loaded;
    let len = base.len();
    let path = path_of(store.path(), target);
    let keeping = match generation(store.reader(), target).await {
        Ok(now) if now == gen && from_file => Keeping::Nothing,
        Ok(now) => match base_len(store.reader(), target).await {
            Ok(n) if n == len => {
                let journal = base.take_journal();
                match (from_file, journal) {
                    (true, Some(j)) => {
                        let (from, mut changes) = match delta {
                            Some(d) => (d.from, d.changes),
                            None => (gen, Vec::new()),
                        };
                        changes.extend(j);
                        if changes.len() <= JOURNAL_MAX.min((len / 8).max(1024)) {
                            Keeping::Delta(Delta {
                                from,
                                to: now,
                                changes,
                            })
                        } else {
                            Keeping::Whole(now)
                        }
                    }
                    _ => Keeping::Whole(now),
                }
            }
            Ok(n) => {
                tracing::warn!(
                    target, held = len, stored = n,
                    "the sync base held does not match the store's: not kept (the next run reads the store)"
                );
                Keeping::Remove
            }
            Err(_) => Keeping::Remove,
        },
        Err(_) => Keeping::Remove,
    };
    let target = target.to_string();
    let done = tokio::task::spawn_blocking(move || {
        let delta = delta_path(&path);
        let written = match &keeping {
            Keeping::Nothing => Ok(()),
            Keeping::Whole(gen) => {
                write(&path, *gen, &base).and_then(|()| match std::fs::remove_file(&delta) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                })
            }
            Keeping::Delta(d) => write_delta(&delta, d),
            Keeping::Remove => {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&delta);
                Ok(())
            }
        };
        if let Err(e) = written {
            tracing::warn!(target, file = %path.display(), error = %e,
                "cannot write the sync base's file (the next run reads the store)");
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&delta);
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
    fn a_delta_written_reads_back_the_same_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.delta");
        assert_eq!(read_delta(&path).unwrap(), None);
        let delta = Delta {
            from: -3,
            to: 99,
            changes: vec![
                BaseChange::Put("é/a".into(), entry(4, true)),
                BaseChange::Forget("b".into()),
                BaseChange::Put("c".into(), entry(5, false)),
            ],
        };
        write_delta(&path, &delta).unwrap();
        assert_eq!(read_delta(&path).unwrap(), Some(delta));
        let good = std::fs::read(&path).unwrap();
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        cases.push([good.as_slice(), &[0]].concat());
        let mut b = good.clone();
        b[32] = 7; // the first change's kind
        cases.push(b);
        for (i, case) in cases.iter().enumerate() {
            std::fs::write(&path, case).unwrap();
            assert!(read_delta(&path).is_err(), "case {i} read as a delta");
        }
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
