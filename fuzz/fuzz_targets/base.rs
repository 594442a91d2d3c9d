//! The sync base loader: random batches of puts and forgets written by the store's own
//! `apply_base` and read back by `base` agree with a `BTreeMap` model, in path order; rows
//! written by hand (any bytes in the path and hash columns, any integers) load or fail with an
//! error, never a panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use metasystem_actors::store::sync::{apply_base, base, BaseChange, BaseEntry, SideState};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Side {
    hash: [u8; 32],
    size: u64,
    mtime_ns: i64,
    stamp: u64,
    mode: u16,
}

impl Side {
    fn state(self) -> SideState {
        SideState {
            hash: self.hash,
            // Sizes are stored as SQLite's signed integers.
            size: self.size >> 1,
            mtime_ns: self.mtime_ns,
            stamp: self.stamp,
            mode: u32::from(self.mode),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Put(String, Side, Option<Side>),
    Forget(String),
    /// A batch committed now (the changes so far).
    Commit,
    /// A row written by hand (a store edited or damaged).
    Raw {
        path: Vec<u8>,
        text: bool,
        hash: Vec<u8>,
        size: i64,
        stamp: i64,
        mode: i64,
    },
}

fn runtime() -> &'static (tokio::runtime::Runtime, SqlitePool) {
    static RT: OnceLock<(tokio::runtime::Runtime, SqlitePool)> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let pool = rt.block_on(async {
            let options = SqliteConnectOptions::new().in_memory(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .expect("an in-memory database");
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors/migrations");
            sqlx::migrate::Migrator::new(std::path::Path::new(dir))
                .await
                .expect("the migrations")
                .run(&pool)
                .await
                .expect("migrated");
            pool
        });
        (rt, pool)
    })
}

fuzz_target!(|ops: Vec<Op>| {
    let (rt, pool) = runtime();
    rt.block_on(async {
        sqlx::query("DELETE FROM sync_base")
            .execute(pool)
            .await
            .expect("cleared");
        let mut model: BTreeMap<String, BaseEntry> = BTreeMap::new();
        let mut batch: Vec<BaseChange> = Vec::new();
        let mut raw = false;
        let mut conn = pool.acquire().await.expect("the connection");
        for op in ops.into_iter().take(256) {
            match op {
                Op::Put(path, local, remote) => {
                    let e = BaseEntry {
                        local: local.state(),
                        remote: remote.unwrap_or(local).state(),
                    };
                    model.insert(path.clone(), e.clone());
                    batch.push(BaseChange::Put(path, e));
                }
                Op::Forget(path) => {
                    model.remove(&path);
                    batch.push(BaseChange::Forget(path));
                }
                Op::Commit => {
                    apply_base(&mut conn, "t", &batch).await.expect("applied");
                    batch.clear();
                }
                Op::Raw { path, text, hash, size, stamp, mode } => {
                    apply_base(&mut conn, "t", &batch).await.expect("applied");
                    batch.clear();
                    raw = true;
                    let q = if text {
                        "INSERT OR REPLACE INTO sync_base (target, path, local_hash, local_size, \
                         local_mtime_ns, remote_hash, remote_size, remote_mtime_ns, local_stamp, \
                         remote_stamp, local_mode, remote_mode) \
                         VALUES ('t', CAST(? AS TEXT), ?, ?, 0, ?, ?, 0, ?, ?, ?, ?)"
                    } else {
                        "INSERT OR REPLACE INTO sync_base (target, path, local_hash, local_size, \
                         local_mtime_ns, remote_hash, remote_size, remote_mtime_ns, local_stamp, \
                         remote_stamp, local_mode, remote_mode) \
                         VALUES ('t', ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?)"
                    };
                    let _ = sqlx::query(q)
                        .bind(&path)
                        .bind(&hash)
                        .bind(size)
                        .bind(&hash)
                        .bind(size)
                        .bind(stamp)
                        .bind(stamp)
                        .bind(mode)
                        .bind(mode)
                        .execute(&mut *conn)
                        .await;
                }
            }
        }
        apply_base(&mut conn, "t", &batch).await.expect("applied");
        drop(conn);
        let loaded = base(pool, "t").await;
        if raw {
            // Loads or refuses; whatever it loads is in path order.
            if let Ok(b) = loaded {
                let paths: Vec<&str> = b.iter().map(|(p, _)| p).collect();
                assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
            }
            return;
        }
        let b = loaded.expect("a base written by apply_base loads");
        let got: Vec<(String, BaseEntry)> = b.iter().map(|(p, e)| (p.to_string(), e)).collect();
        let want: Vec<(String, BaseEntry)> = model.into_iter().collect();
        assert_eq!(got, want);
    });
});
