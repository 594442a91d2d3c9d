//! Supervision benchmark, with Erlang/OTP measured side by side in the same invocation when
//! `erl`/`erlc` are installed (Debian: `apt-get install erlang-base`).
//!
//!   cargo bench -p metasystem-actors --bench supervision
//!
//! Measures, on the real engine (`Tree`, `SupervisorActor`, a worker actor):
//! - restart latency: crash the worker -> (the supervisor's `restarted` event) -> the restarted
//!   worker, found again by its path in the directory, answers a call; p50/p99, paced (1 ms
//!   apart) and in bursts of 200 and of 2,000 back to back, plus the burst rates;
//! - the start of a tree of 1,000 children (median);
//! - cast throughput of one actor (median).
//!
//! The Erlang peer (benches/erlang/sup_bench.erl) does the same with a real OTP supervisor and
//! gen_server: crash by cast, wait for the new worker's notice from its init/1, `gen_server:call`
//! it by registered name. Both sides wait for a message rather than spin: a spinning poller
//! competes with the supervisor for the two cores and makes both sides swing 2x run to run.
//!
//! The peer is one long-lived `erl` that takes commands on stdin, and the harness alternates
//! blocks of Rust and Erlang measurements (BENCH_ROUNDS of them), so both sides sample the same
//! machine noise; ratios are then comparable even on a noisy machine. Sizes: BENCH_PACED,
//! BENCH_TREES, BENCH_MSGS, BENCH_ROUNDS; BENCH_PEER=none skips
//! Erlang (for profiling).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use metasystem_actors::testkit::{worker, Probe, TestMsg, TestWorker, TestWorkerArgs};
use metasystem_actors::{EventKind, EventSink, LifecycleEvent, Strategy, SupervisorSpec, Tree};
use ractor::rpc::CallResult;
use ractor::Actor;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc::UnboundedReceiver;

const PATH: &str = "root/bench_worker";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Bursts of back-to-back restarts, measured at two lengths. OTP's supervisor keeps every
/// restart of the last `period` (>= 1 s) in a list it walks on each restart, so its cost per
/// restart grows with the burst's length; a short burst is its best case.
const BURSTS: [usize; 2] = [200, 2000];

#[derive(Default)]
struct Burst {
    us: Vec<f64>,
    restarts: usize,
    secs: f64,
}

/// Measurements of one side.
#[derive(Default)]
struct Side {
    paced_us: Vec<f64>,
    bursts: [Burst; 2],
    tree_ms: Vec<f64>,
    casts_per_s: Vec<f64>,
}

impl Side {
    fn results(self) -> BTreeMap<String, f64> {
        let paced = sorted(self.paced_us);
        let mut out = BTreeMap::from([
            ("paced_p50_us".to_string(), percentile(&paced, 0.50)),
            ("paced_p99_us".to_string(), percentile(&paced, 0.99)),
            (
                "tree1000_start_ms".to_string(),
                percentile(&sorted(self.tree_ms), 0.5),
            ),
            (
                "cast_throughput_per_s".to_string(),
                percentile(&sorted(self.casts_per_s), 0.5),
            ),
        ]);
        for (len, burst) in BURSTS.iter().zip(self.bursts) {
            let us = sorted(burst.us);
            out.insert(format!("burst{len}_p50_us"), percentile(&us, 0.50));
            out.insert(format!("burst{len}_p99_us"), percentile(&us, 0.99));
            out.insert(
                format!("burst{len}_rate_per_s"),
                burst.restarts as f64 / burst.secs,
            );
        }
        out
    }
}

/// The Rust side: a tree with one worker to crash, and its event stream.
struct Rust {
    tree: Tree,
    events: UnboundedReceiver<LifecycleEvent>,
}

impl Rust {
    async fn start(probe: &Probe) -> Rust {
        // Every lifecycle event goes to a channel, as the daemon sends them to its store.
        let (sink, events) = EventSink::channel();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(worker("bench_worker", probe));
        let tree = match Tree::start(spec, sink).await {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        Rust { tree, events }
    }

    /// Crash the worker, wait for the supervisor's `restarted` event, find the new incarnation
    /// by its path and call it. Microseconds.
    async fn restart_once(&mut self) -> f64 {
        let dir = self.tree.directory();
        let Some(old) = dir.get::<TestMsg>(PATH) else {
            panic!("worker not running")
        };
        let t0 = Instant::now();
        if old.cast(TestMsg::Crash("bench".into())).is_err() {
            panic!("cast failed");
        }
        loop {
            match self.events.recv().await {
                Some(e) if e.path == PATH && matches!(e.kind, EventKind::Restarted { .. }) => break,
                Some(_) => {}
                None => panic!("event stream closed"),
            }
        }
        let Some(new) = dir.get::<TestMsg>(PATH) else {
            panic!("restarted worker not in the directory")
        };
        match new.call(TestMsg::Ping, None).await {
            Ok(CallResult::Success(_)) => {}
            _ => panic!("restarted worker did not answer"),
        }
        t0.elapsed().as_secs_f64() * 1e6
    }

    /// `n` restarts, 1 ms apart or back to back; then the tree is shut down.
    async fn block(mut self, n: usize, paced: bool) -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if paced {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            out.push(self.restart_once().await);
        }
        self.tree.shutdown().await;
        out
    }
}

async fn tree_start(probe: &Probe, n: usize) -> f64 {
    let children = (0..n).map(|i| worker(&format!("w{i}"), probe));
    let spec = SupervisorSpec::new(Strategy::OneForOne).children(children);
    let t0 = Instant::now();
    let tree = match Tree::start(spec, EventSink::none()).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    tree.shutdown().await;
    ms
}

async fn casts(probe: &Probe, n: usize) -> f64 {
    let args = TestWorkerArgs {
        name: "tp".into(),
        probe: probe.clone(),
    };
    let (actor, handle) = match Actor::spawn(None, TestWorker, args).await {
        Ok(started) => started,
        Err(e) => panic!("{e}"),
    };
    let t0 = Instant::now();
    for _ in 0..n {
        let _ = actor.cast(TestMsg::Noop);
    }
    let _ = actor.call(TestMsg::Ping, None).await;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    actor.stop(None);
    let _ = handle.await;
    rate
}

/// The Erlang peer: one `erl` serving commands (see sup_bench.erl).
struct Erlang {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Erlang {
    /// Compiles and starts the peer; None (with a note) when Erlang is not installed.
    async fn start() -> Option<Erlang> {
        if std::env::var("BENCH_PEER").as_deref() == Ok("none") {
            return None;
        }
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/erlang/sup_bench.erl");
        let out = std::env::temp_dir().join("metasystem-erlang-bench");
        std::fs::create_dir_all(&out).ok()?;
        match Command::new("erlc")
            .arg("-o")
            .arg(&out)
            .arg(&source)
            .output()
            .await
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("erlc failed: {}", String::from_utf8_lossy(&o.stderr));
                return None;
            }
            Err(_) => {
                eprintln!("erlc not found: Erlang/OTP peer skipped (apt-get install erlang-base)");
                return None;
            }
        }
        let mut child = Command::new("erl")
            .args(["-noshell", "-pa"])
            .arg(&out)
            .args(["-s", "sup_bench", "main", "-s", "init", "stop"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let lines = BufReader::new(child.stdout.take()?).lines();
        Some(Erlang {
            child,
            stdin,
            lines,
        })
    }

    /// Sends one command; returns the numbers of the answer line after its first word.
    async fn ask(&mut self, command: &str) -> Vec<f64> {
        let sent = self
            .stdin
            .write_all(format!("{command}\n").as_bytes())
            .await;
        let line = match (sent, self.lines.next_line().await) {
            (Ok(()), Ok(Some(line))) => line,
            _ => panic!("the Erlang peer stopped answering ({command})"),
        };
        line.split_whitespace()
            .skip(1)
            .map(|w| w.parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    }

    async fn release(&mut self) -> String {
        let _ = self.stdin.write_all(b"release\n").await;
        match self.lines.next_line().await {
            Ok(Some(line)) => line.trim_start_matches("release ").to_string(),
            _ => "?".into(),
        }
    }

    async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.child.wait().await;
    }
}

type Results = BTreeMap<String, f64>;

async fn run() -> (Results, Option<Results>, String) {
    let rounds = env("BENCH_ROUNDS", 10).max(1);
    let paced = env("BENCH_PACED", 3000) / rounds;
    let trees = env("BENCH_TREES", 20);
    let msgs = env("BENCH_MSGS", 1_000_000);

    let probe = Probe::new();
    let mut erlang = Erlang::start().await;
    let release = match erlang.as_mut() {
        Some(e) => e.release().await,
        None => String::new(),
    };
    let (mut ours, mut theirs) = (Side::default(), Side::default());

    // Warm-up, both sides.
    Rust::start(&probe).await.block(200, false).await;
    if let Some(e) = erlang.as_mut() {
        e.ask("burst 200").await;
    }
    // Every block runs on a fresh tree (empty restart history) on both sides.
    for _ in 0..rounds {
        ours.paced_us
            .extend(Rust::start(&probe).await.block(paced, true).await);
        if let Some(e) = erlang.as_mut() {
            let ns = e.ask(&format!("paced {paced}")).await;
            theirs.paced_us.extend(ns.iter().map(|v| v / 1e3));
        }
        for (i, len) in BURSTS.into_iter().enumerate() {
            let rust = Rust::start(&probe).await;
            let t0 = Instant::now();
            let samples = rust.block(len, false).await;
            let ours = &mut ours.bursts[i];
            ours.secs += t0.elapsed().as_secs_f64();
            ours.restarts += len;
            ours.us.extend(samples);
            if let Some(e) = erlang.as_mut() {
                let answer = e.ask(&format!("burst {len}")).await;
                if let Some((elapsed, samples)) = answer.split_first() {
                    let theirs = &mut theirs.bursts[i];
                    theirs.secs += elapsed / 1e9;
                    theirs.restarts += samples.len();
                    theirs.us.extend(samples.iter().map(|v| v / 1e3));
                }
            }
        }
    }
    for round in 0..=trees {
        let ms = tree_start(&probe, 1000).await;
        let peer = match erlang.as_mut() {
            Some(e) => e.ask("tree 1000").await.first().map(|ns| ns / 1e6),
            None => None,
        };
        if round > 0 {
            // round 0 is a warm-up
            ours.tree_ms.push(ms);
            theirs.tree_ms.extend(peer);
        }
    }
    for _ in 0..3 {
        ours.casts_per_s.push(casts(&probe, msgs).await);
        if let Some(e) = erlang.as_mut() {
            if let Some(ns) = e.ask(&format!("casts {msgs}")).await.first() {
                theirs.casts_per_s.push(msgs as f64 / (ns / 1e9));
            }
        }
    }
    let peer = match erlang {
        Some(e) => {
            e.quit().await;
            Some(theirs.results())
        }
        None => None,
    };
    (ours.results(), peer, release)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

fn main() {
    // The daemon's shape by default: one scheduler thread (src/cli.rs). BENCH_WORKERS=N
    // measures a multi-thread runtime with N workers instead.
    let runtime = match env("BENCH_WORKERS", 0) {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    // Driven from a spawned task: calls from the block_on body run off the worker threads.
    let (ours, theirs, release) = match runtime.block_on(async { tokio::spawn(run()).await }) {
        Ok(r) => r,
        Err(e) => panic!("benchmark task failed: {e}"),
    };
    println!("machine: {}", machine());
    match env("BENCH_WORKERS", 0) {
        0 => println!("runtime: tokio current_thread (the daemon's)"),
        n => println!("runtime: tokio multi_thread, {n} workers"),
    }
    if !release.is_empty() {
        println!("peer: Erlang/OTP {release}, interleaved blocks");
    }
    println!(
        "{:<24} {:>14} {:>14} {:>8}  target",
        "metric", "metasystem", "Erlang/OTP", "ratio"
    );
    let rows = [
        ("paced_p50_us", "ratio <= 1.0"),
        ("paced_p99_us", ""),
        ("burst200_p50_us", ""),
        ("burst200_p99_us", ""),
        ("burst200_rate_per_s", "ratio >= 5.0"),
        ("burst2000_p50_us", ""),
        ("burst2000_p99_us", ""),
        ("burst2000_rate_per_s", "ratio >= 5.0"),
        ("tree1000_start_ms", "< 20 ms"),
        ("cast_throughput_per_s", ""),
    ];
    for (key, target) in rows {
        let ours = ours.get(key).copied().unwrap_or(f64::NAN);
        let peer = theirs.as_ref().and_then(|t| t.get(key).copied());
        let (peer_s, ratio_s) = match peer {
            Some(p) => (format!("{p:.3}"), format!("{:.2}", ours / p)),
            None => ("-".into(), "-".into()),
        };
        println!("{key:<24} {ours:>14.3} {peer_s:>14} {ratio_s:>8}  {target}");
    }
    println!("(ratio = metasystem / Erlang; latencies in microseconds, rates per second)");
}
