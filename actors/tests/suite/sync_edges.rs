//! Sync runs at the edges, on real folders and a real store: the progress counters a run
//! publishes while it copies.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::store::sync::BaseEntry;
use metasystem_actors::store::Store;
use metasystem_actors::sync::engine::{self, Progress};
use metasystem_actors::sync::{
    Direction, Outcome, RunOptions, RunReport, Selection, Strategy, SyncSpec,
};

struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    spec: SyncSpec,
    base: HashMap<String, BaseEntry>,
    progress: Arc<Progress>,
}

impl Fx {
    /// A primary in a temp dir and the target at `target` (created if absent).
    async fn new(target: PathBuf) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("primary");
        fs::create_dir_all(&primary).unwrap();
        fs::create_dir_all(&target).unwrap();
        let store = match Store::open(&dir.path().join("s.db"), Duration::from_secs(86_400)).await {
            Ok((s, _)) => s,
            Err(e) => panic!("store: {e}"),
        };
        let spec = SyncSpec {
            name: "t1".into(),
            primary,
            target,
            selection: Selection::default(),
            direction: Direction::Bidirectional,
            strategy: Strategy::Newest,
            backups: dir.path().join("backups"),
            retention: Duration::from_secs(30 * 86_400),
            max_delete: 0.5,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(3600),
            host: "testhost".into(),
        };
        Fx {
            _dir: dir,
            store,
            spec,
            base: HashMap::new(),
            progress: Arc::new(Progress::default()),
        }
    }

    async fn run(&mut self) -> RunReport {
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            engine::run(
                &self.spec,
                &RunOptions::default(),
                &self.store,
                &mut self.base,
                &[],
                &self.progress,
            ),
        )
        .await
        .expect("a run took over 120 s");
        let stored = metasystem_actors::store::sync::base(self.store.reader(), &self.spec.name)
            .await
            .unwrap();
        assert_eq!(stored, self.base, "the base cache and the store differ");
        r
    }

    fn local(&self, rel: &str) -> PathBuf {
        self.spec.primary.join(rel)
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

/// The counters move while a run copies (within one commit batch of up to 2,000 files), which
/// is what `sync status` and the CLI's progress bar show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_moves_while_the_files_are_copied() {
    let remote = tempfile::tempdir().unwrap();
    let mut fx = Fx::new(remote.path().join("target")).await;
    const FILES: u64 = 1_500;
    for i in 0..FILES {
        write(
            &fx.local(&format!("d{:02}/f{i:05}.txt", i % 30)),
            format!("file {i} {}", "x".repeat(2_000)).as_bytes(),
        );
    }
    let progress = fx.progress.clone();
    let watching = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let (done, total) = (
                progress.files_done.load(Ordering::Relaxed),
                progress.files_total.load(Ordering::Relaxed),
            );
            if seen.last() != Some(&(done, total)) {
                seen.push((done, total));
            }
            if total > 0 && done >= total {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let r = fx.run().await;
    assert_eq!(r.outcome, Outcome::Success, "{r:#?}");
    assert_eq!(r.copied_to_remote, FILES as usize);
    let seen = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .expect("the counters never reached the total")
        .unwrap();
    assert!(
        seen.iter()
            .any(|&(done, total)| total == FILES && done > 0 && done < FILES),
        "no count between none and all (a run of {} ms): {seen:?}",
        r.took_ms
    );
}
