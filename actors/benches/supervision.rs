//! Supervision benchmark, with Erlang/OTP measured side by side in the same invocation when
//! `erl`/`erlc` are installed (Debian: `apt-get install erlang-base`).
//!
//!   cargo bench -p metasystem-actors --bench supervision
//!
//! Measures, on the real engine (`Tree`, `SupervisorActor`, a worker actor):
//! - restart latency: crash the worker -> the restarted worker, found again by its path in the
//!   directory, answers a call; p50/p99, paced (1 ms apart) and burst (back to back), plus the
//!   burst rate;
//! - the start of a tree of 1,000 children (median of 20);
//! - cast throughput of one actor (median of 3).
//!
//! The Erlang peer (benches/erlang/sup_bench.erl) does the same with a real OTP supervisor and
//! gen_server: crash by cast, poll `whereis` for the new pid, `gen_server:call` it. Sizes are
//! shared through BENCH_PACED, BENCH_BURST, BENCH_TREES, BENCH_MSGS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use metasystem_actors::testkit::{worker, Probe, TestMsg, TestWorker, TestWorkerArgs};
use metasystem_actors::{EventSink, Strategy, SupervisorSpec, Tree};
use ractor::rpc::CallResult;
use ractor::Actor;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

type Results = BTreeMap<&'static str, f64>;

fn record(results: &mut Results, key: &'static str, key99: &'static str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    results.insert(key, percentile(&us, 0.50));
    results.insert(key99, percentile(&us, 0.99));
}

/// Crash the worker, find its next incarnation by path, call it. Microseconds.
async fn restart_once(tree: &Tree) -> f64 {
    let dir = tree.directory();
    let Some(old) = dir.get::<TestMsg>(PATH) else {
        panic!("worker not running")
    };
    let t0 = Instant::now();
    if old.cast(TestMsg::Crash("bench".into())).is_err() {
        panic!("cast failed");
    }
    let new = loop {
        match dir.get::<TestMsg>(PATH) {
            Some(new) if new.get_id() != old.get_id() => break new,
            _ => tokio::task::yield_now().await,
        }
    };
    match new.call(TestMsg::Ping, None).await {
        Ok(CallResult::Success(_)) => {}
        _ => panic!("restarted worker did not answer"),
    }
    t0.elapsed().as_secs_f64() * 1e6
}

async fn rust_side() -> Results {
    let paced = env("BENCH_PACED", 2000);
    let burst = env("BENCH_BURST", 20000);
    let trees = env("BENCH_TREES", 20);
    let msgs = env("BENCH_MSGS", 1_000_000);
    let mut results = Results::new();
    let probe = Probe::new();

    // Events go where the daemon sends them: a channel drained by another task.
    let (events, mut rx) = EventSink::channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(1))
        .child(worker("bench_worker", &probe));
    let tree = match Tree::start(spec, events).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    for _ in 0..200 {
        restart_once(&tree).await; // warm-up
    }
    let mut samples = Vec::with_capacity(paced);
    for _ in 0..paced {
        tokio::time::sleep(Duration::from_millis(1)).await;
        samples.push(restart_once(&tree).await);
    }
    record(&mut results, "paced_p50_us", "paced_p99_us", samples);
    let mut samples = Vec::with_capacity(burst);
    let t0 = Instant::now();
    for _ in 0..burst {
        samples.push(restart_once(&tree).await);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    record(&mut results, "burst_p50_us", "burst_p99_us", samples);
    results.insert("burst_rate_per_s", burst as f64 / elapsed);
    tree.shutdown().await;
    drain.abort();

    // A tree of 1,000 children, started synchronously in order.
    let mut starts = Vec::with_capacity(trees);
    for round in 0..=trees {
        let children = (0..1000).map(|i| worker(&format!("w{i}"), &probe));
        let spec = SupervisorSpec::new(Strategy::OneForOne).children(children);
        let t0 = Instant::now();
        let tree = match Tree::start(spec, EventSink::none()).await {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if round > 0 {
            starts.push(ms); // round 0 is a warm-up
        }
        tree.shutdown().await;
    }
    results.insert("tree1000_start_ms", median(starts));

    // Cast throughput of one actor.
    let mut rates = Vec::new();
    for _ in 0..3 {
        let args = TestWorkerArgs {
            name: "tp".into(),
            probe: probe.clone(),
        };
        let (actor, handle) = match Actor::spawn(None, TestWorker, args).await {
            Ok(started) => started,
            Err(e) => panic!("{e}"),
        };
        let t0 = Instant::now();
        for _ in 0..msgs {
            let _ = actor.cast(TestMsg::Noop);
        }
        let _ = actor.call(TestMsg::Ping, None).await;
        rates.push(msgs as f64 / t0.elapsed().as_secs_f64());
        actor.stop(None);
        let _ = handle.await;
    }
    results.insert("cast_throughput_per_s", median(rates));
    results
}

/// Compiles and runs the Erlang peer; None when Erlang is not installed or it failed.
fn erlang_side() -> Option<Results> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/erlang/sup_bench.erl");
    let out = std::env::temp_dir().join("metasystem-erlang-bench");
    std::fs::create_dir_all(&out).ok()?;
    let compiled = Command::new("erlc")
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .output();
    match compiled {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("erlc failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(_) => {
            eprintln!(
                "erlc not found: the Erlang/OTP peer is skipped (apt-get install erlang-base)"
            );
            return None;
        }
    }
    let run = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&out)
        .args(["-s", "sup_bench", "main", "-s", "init", "stop"])
        .output()
        .ok()?;
    if !run.status.success() {
        eprintln!("erl failed: {}", String::from_utf8_lossy(&run.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&run.stdout);
    let keys = [
        "paced_p50_us",
        "paced_p99_us",
        "burst_p50_us",
        "burst_p99_us",
        "burst_rate_per_s",
        "tree1000_start_ms",
        "cast_throughput_per_s",
    ];
    let mut results = Results::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if let (Some(key), Ok(value)) = (keys.iter().find(|x| **x == k), v.parse::<f64>()) {
                results.insert(key, value);
            }
            if k == "otp_release" {
                println!("Erlang/OTP {v}");
            }
        }
    }
    Some(results)
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    // Driven from a spawned task: calls from the block_on body run off the worker threads.
    let rust = match runtime.block_on(async { tokio::spawn(rust_side()).await }) {
        Ok(r) => r,
        Err(e) => panic!("benchmark task failed: {e}"),
    };
    drop(runtime);
    let erlang = erlang_side();

    println!("machine: {}", machine());
    println!(
        "{:<24} {:>14} {:>14} {:>10}  target",
        "metric", "metasystem", "Erlang/OTP", "ratio"
    );
    let rows: [(&str, &str, bool); 7] = [
        ("paced_p50_us", "ratio <= 1.0", true),
        ("paced_p99_us", "", true),
        ("burst_p50_us", "", true),
        ("burst_p99_us", "", true),
        ("burst_rate_per_s", "ratio >= 5.0", false),
        ("tree1000_start_ms", "< 20 ms", true),
        ("cast_throughput_per_s", "", false),
    ];
    for (key, target, _lower_is_better) in rows {
        let ours = rust.get(key).copied().unwrap_or(f64::NAN);
        let peer = erlang.as_ref().and_then(|e| e.get(key).copied());
        let (peer_s, ratio_s) = match peer {
            Some(p) => (format!("{p:.3}"), format!("{:.2}", ours / p)),
            None => ("-".into(), "-".into()),
        };
        println!("{key:<24} {ours:>14.3} {peer_s:>14} {ratio_s:>10}  {target}");
    }
    println!("(ratio = metasystem / Erlang; latencies in microseconds, rates per second)");
}
