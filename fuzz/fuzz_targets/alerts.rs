//! The alert engine against a simple model: random raises, clears, silences and time. What
//! a receiver was last told of each key is what the model says holds: a key raised `after`
//! times in a row (and not silenced) has been told firing; a clear of a key told firing
//! tells it resolved, with the firing's fingerprint and start; nothing else is ever
//! resolved, and nothing pending is notified.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use metasystem_actors::alerts::alert::{Alert, Severity, Status};
use metasystem_actors::alerts::engine::{Decision, Engine, Policy};

#[derive(Arbitrary, Debug)]
enum Op {
    Raise { key: u8, critical: bool },
    Clear { key: u8 },
    /// Milliseconds pass (up to about 18 hours).
    Wait(u16, u8),
    Reminders,
}

/// What the model knows of a key.
#[derive(Default, Debug)]
struct Key {
    /// Raises since the last clear.
    run: u32,
    /// The firing notification told and not yet resolved: its fingerprint and start.
    told: Option<(String, i64)>,
}

fn alert(key: u8, critical: bool) -> Alert {
    let severity = if critical {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let mut a = Alert::new(severity, format!("condition {}", key % 4), "fuzz");
    a.key = Some(format!("k{}", key % 4));
    a
}

fuzz_target!(|ops: Vec<Op>| {
    let policy = Policy::default();
    let mut engine = Engine::new(policy.clone());
    let mut keys: HashMap<String, Key> = HashMap::new();
    let mut now: i64 = 1_700_000_000_000;
    let check_told = |k: &mut Key, n: &metasystem_actors::alerts::alert::Notification| {
        match n.status {
            Status::Firing => {
                if let Some((fp, start)) = &k.told {
                    assert_eq!((&n.fingerprint, n.starts_at_ms), (fp, *start), "a reminder");
                }
                k.told = Some((n.fingerprint.clone(), n.starts_at_ms));
            }
            Status::Resolved => panic!("a raise resolved {n:?}"),
        }
    };
    for op in ops.into_iter().take(256) {
        match op {
            Op::Raise { key, critical } => {
                let a = alert(key, critical);
                let k = keys.entry(a.key()).or_default();
                k.run += 1;
                match engine.raise(&a, now) {
                    Decision::Notify(n) => check_told(k, &n),
                    Decision::Pending { .. } => {
                        assert!(k.told.is_none(), "pending while told firing");
                    }
                    Decision::Deduplicated { .. } => {
                        assert!(k.told.is_some(), "deduplicated but never told");
                    }
                    Decision::Silenced { .. } => panic!("no silence was set"),
                }
                // Past its threshold, a key has been told it fires.
                if k.run >= policy.after_for(&a) {
                    assert!(k.told.is_some(), "{} raises, never told: {k:?}", k.run);
                }
            }
            Op::Clear { key } => {
                let name = format!("k{}", key % 4);
                let k = keys.entry(name.clone()).or_default();
                k.run = 0;
                match (engine.clear(&name, now), k.told.take()) {
                    (Some(n), Some((fp, start))) => {
                        assert_eq!(n.status, Status::Resolved);
                        assert_eq!((n.fingerprint, n.starts_at_ms), (fp, start));
                        assert_eq!(n.ends_at_ms, Some(now));
                    }
                    (None, None) => {}
                    (got, told) => panic!("clear: got {got:?}, told {told:?}"),
                }
            }
            Op::Wait(ms, hours) => {
                now += i64::from(ms) + i64::from(hours % 19) * 3_600_000;
            }
            Op::Reminders => {
                for (name, k) in keys.iter_mut() {
                    let a = alert(name[1..].parse().unwrap_or(0), false);
                    let mut a = a;
                    a.key = Some(name.clone());
                    if let Some(n) = engine.remind(&a, now) {
                        assert!(k.told.is_some(), "a reminder of a key never told");
                        check_told(k, &n);
                    }
                }
            }
        }
    }
});
