//! Circuit breaker benchmark: the cost of asking a breaker and reporting the outcome.
//!
//!   RUNS=5 cargo bench -p metasystem-actors --bench breakers
//!
//! Measures one `allow` + `record` pair, CLOSED, 1 call in 10 a failure (with a failure-rate
//! window, so the window is maintained; the breaker never opens):
//! - through the [`Breaker`] handle (the machine behind a mutex, the wall clock read by the
//!   handle), uncontended: each pair timed alone (the figure includes one `Instant::now`,
//!   printed apart) and in batches of 100 (the batch's time / 100); then with 2 threads
//!   contending for the same breaker, each timing its own pairs;
//! - as messages to a small ractor actor owning a [`Machine`]: `Allow` and `Record` are both
//!   calls (so a pair is two round trips), made from a spawned task on a current-thread runtime
//!   as in the daemon (a call from the `block_on` body runs off the scheduler and costs ~20x);
//! - the bare machine, no lock and no actor, as the floor.
//!
//! Every figure is the median over RUNS runs (default 5) of that run's p50 / p99; the runs are
//! printed too. Sizes: PAIRS (default 1,000,000 per run and per thread).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use metasystem_actors::breakers::{
    no_notifier, wall_clock_ms, Breaker, BreakerConfig, Machine, Permit, Rejected, StateName,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const BATCH: usize = 100;

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

/// p50 and p99 of one run's samples (ns).
fn p50_p99(mut ns: Vec<f64>) -> (f64, f64) {
    ns.sort_by(f64::total_cmp);
    (percentile(&ns, 0.5), percentile(&ns, 0.99))
}

/// A failure-rate rule over the default count window, so `record` maintains the window; one
/// call in 10 fails, which never reaches the 50 % rate or 5 failures in a row.
fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate: Some(0.5),
        ..BreakerConfig::default()
    }
}

fn ok(i: usize) -> bool {
    i % 10 != 0
}

fn pair(b: &Breaker, i: usize) {
    match b.allow() {
        Ok(p) => b.record(p, ok(i)),
        Err(r) => panic!("the breaker refused a call: {r}"),
    }
}

/// `pairs` pairs through `b`, each timed alone (ns each).
fn timed_each(b: &Breaker, pairs: usize) -> Vec<f64> {
    let mut ns = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let t = Instant::now();
        pair(b, i);
        ns.push(t.elapsed().as_nanos() as f64);
    }
    ns
}

/// `pairs` pairs through `b` in batches of [`BATCH`], each batch timed (ns per pair).
fn timed_batches(b: &Breaker, pairs: usize) -> Vec<f64> {
    let mut ns = Vec::with_capacity(pairs / BATCH);
    let mut i = 0;
    for _ in 0..pairs / BATCH {
        let t = Instant::now();
        for _ in 0..BATCH {
            pair(b, i);
            i += 1;
        }
        ns.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    ns
}

/// The handle's pairs on `threads` threads sharing one breaker, released together: every
/// thread's samples, pooled, and the pairs per second of all threads together.
fn handle_run(threads: usize, pairs: usize, batched: bool) -> (Vec<f64>, f64) {
    let b = Breaker::new("bench", config(), no_notifier());
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let b = b.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                let samples = if batched {
                    timed_batches(&b, pairs)
                } else {
                    timed_each(&b, pairs)
                };
                (samples, t.elapsed())
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(threads * pairs);
    let mut longest = Duration::ZERO;
    for w in workers {
        let (s, took) = w.join().expect("no panic");
        samples.extend(s);
        longest = longest.max(took);
    }
    let c = b.snapshot().counters;
    assert_eq!(b.state(), StateName::Closed);
    assert_eq!(c.calls, (threads * pairs) as u64, "every pair counted");
    assert_eq!(c.successes + c.failures, c.calls);
    (samples, (threads * pairs) as f64 / longest.as_secs_f64())
}

/// The bare machine, no lock: the same pairs with the same clock reads, in batches.
fn machine_run(pairs: usize) -> Vec<f64> {
    let mut m = Machine::new(config(), wall_clock_ms());
    let mut ns = Vec::with_capacity(pairs / BATCH);
    let mut i = 0;
    for _ in 0..pairs / BATCH {
        let t = Instant::now();
        for _ in 0..BATCH {
            let permit = m.allow(wall_clock_ms()).expect("closed");
            let _ = m.record(permit, ok(i), wall_clock_ms());
            i += 1;
        }
        ns.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    assert_eq!(m.state_name(), StateName::Closed);
    ns
}

/// What `Instant::now` + `elapsed` costs on its own (ns, median of 100,000).
fn timer_overhead() -> f64 {
    let mut ns: Vec<f64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    percentile(&ns, 0.5)
}

// ------------------------------------------------------------------------------------------
// The same pair as messages.

struct MachineActor;

enum Msg {
    Allow(RpcReplyPort<Result<Permit, Rejected>>),
    Record(Permit, bool, RpcReplyPort<()>),
}

impl Actor for MachineActor {
    type Msg = Msg;
    type State = Machine;
    type Arguments = BreakerConfig;

    async fn pre_start(
        &self,
        _myself: ActorRef<Msg>,
        config: BreakerConfig,
    ) -> Result<Machine, ActorProcessingErr> {
        Ok(Machine::new(config, wall_clock_ms()))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Msg>,
        message: Msg,
        machine: &mut Machine,
    ) -> Result<(), ActorProcessingErr> {
        // The clock is read by the owner of the machine, as the handle does.
        match message {
            Msg::Allow(reply) => {
                let _ = reply.send(machine.allow(wall_clock_ms()));
            }
            Msg::Record(permit, ok, reply) => {
                let _ = machine.record(permit, ok, wall_clock_ms());
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

async fn message_pair(actor: &ActorRef<Msg>, i: usize) {
    let permit = ractor::call!(actor, Msg::Allow)
        .expect("allow answered")
        .expect("allowed");
    ractor::call!(actor, Msg::Record, permit, ok(i)).expect("record answered");
}

/// `pairs` pairs as calls to the actor, from this (spawned) task, each timed (ns each).
async fn message_run(pairs: usize) -> Vec<f64> {
    let (actor, handle) = Actor::spawn(None, MachineActor, config())
        .await
        .expect("spawn");
    // Warm up the channels and the allocator.
    for i in 0..10_000 {
        message_pair(&actor, i).await;
    }
    let mut ns = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let t = Instant::now();
        message_pair(&actor, i).await;
        ns.push(t.elapsed().as_nanos() as f64);
    }
    actor.stop(None);
    handle.await.expect("stopped");
    ns
}

fn report(what: &str, runs: &[(f64, f64)]) {
    let p50 = median(runs.iter().map(|r| r.0).collect());
    let p99 = median(runs.iter().map(|r| r.1).collect());
    let raw: Vec<String> = runs.iter().map(|(a, b)| format!("{a:.0}/{b:.0}")).collect();
    println!(
        "{what:<62} p50 {p50:>6.0} ns  p99 {p99:>6.0} ns  (runs p50/p99: {})",
        raw.join(" ")
    );
}

fn main() {
    let runs = env("RUNS", 5);
    let pairs = env("PAIRS", 1_000_000);
    println!(
        "== allow + record pairs, CLOSED, 1 in 10 a failure, failure-rate window; {pairs} pairs per run (per thread), {runs} runs, medians of each run's p50 / p99"
    );
    println!(
        "== Instant::now + elapsed alone: {:.0} ns (included in the per-pair figures)",
        timer_overhead()
    );
    let mut each = Vec::new();
    let mut batched = Vec::new();
    let mut each2 = Vec::new();
    let mut batched2 = Vec::new();
    let mut bare = Vec::new();
    let (mut rate1, mut rate2) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        each.push(p50_p99(handle_run(1, pairs, false).0));
        let (ns, rate) = handle_run(1, pairs, true);
        batched.push(p50_p99(ns));
        rate1.push(rate);
        each2.push(p50_p99(handle_run(2, pairs, false).0));
        let (ns, rate) = handle_run(2, pairs, true);
        batched2.push(p50_p99(ns));
        rate2.push(rate);
        bare.push(p50_p99(machine_run(pairs)));
    }
    report("handle, 1 thread, each pair timed", &each);
    report("handle, 1 thread, batches of 100 (per pair)", &batched);
    report("handle, 2 threads contending, each pair timed", &each2);
    report(
        "handle, 2 threads contending, batches of 100 (per pair)",
        &batched2,
    );
    report("bare machine, no lock, batches of 100 (per pair)", &bare);
    let mpairs = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{:.2}", r / 1e6))
            .collect::<Vec<_>>()
    };
    println!(
        "handle throughput (batched runs): 1 thread {:.2} M pairs/s {:?}; 2 threads together {:.2} M pairs/s {:?}",
        median(rate1.clone()) / 1e6,
        mpairs(&rate1),
        median(rate2.clone()) / 1e6,
        mpairs(&rate2)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let message: Vec<(f64, f64)> = rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..runs {
            let ns = tokio::spawn(message_run(pairs)).await.expect("run");
            out.push(p50_p99(ns));
        }
        out
    });
    report(
        "message: call Allow + call Record to an actor, spawned task",
        &message,
    );
    let handle_p50 = median(each.iter().map(|r| r.0).collect());
    let message_p50 = median(message.iter().map(|r| r.0).collect());
    println!(
        "targets: handle p50 {:.3} us (< 1 us: {}), message p50 {:.3} us (< 5 us: {}); message / handle {:.1}x",
        handle_p50 / 1e3,
        if handle_p50 < 1_000.0 { "met" } else { "NOT met" },
        message_p50 / 1e3,
        if message_p50 < 5_000.0 { "met" } else { "NOT met" },
        message_p50 / handle_p50
    );
}
