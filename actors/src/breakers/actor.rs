//! The breakers actor: owns the configured breakers in the shared registry ([`Breakers`]),
//! restores them from the store at start, persists every transition (and the counts, every
//! minute and at stop) on the durable lane, drives OPEN → HALF_OPEN by timer, and turns
//! transitions into samples and alerts.
//!
//! Callers never wait on it: they use the [`Breaker`] handles in the registry. A transition
//! reaches the actor through the registry's notifier ([`notifier`]), which reports the sample and
//! the alert itself and hands the persisting to whichever incarnation of the actor runs.
//!
//! A notification only tells the actor to look: what it stores comes from the breaker itself —
//! its live state, and the transitions since the last one stored, from the breaker's own
//! history ([`Breaker::transitions_after`]), in order. So a notification that arrives late (two
//! threads notify in either order) stores nothing older than what is stored, and notifications
//! still queued when the actor stops (ractor drops them) are stored at its stop, or by the next
//! incarnation when the registry kept the breaker.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{wall_clock_ms, Breaker, Breakers, Notifier};
use super::machine::{BreakerConfig, Machine, Snapshot, StateName, Transition};
use crate::alerts::{Alert, Alerts, Severity};
use crate::metrics::{Metric, Metrics, Sample};
use crate::slot::Slot;
use crate::store::health::{self, BreakerSave};
use crate::store::{DurableOp, Store, StoredEvent};

/// How often the counts of breakers that saw calls are saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(60);
/// How long a durable write may take before the actor goes on (the write still happens).
const STORE_WAIT: Duration = Duration::from_secs(5);

pub struct BreakersActor;

#[derive(Clone)]
pub struct BreakersArgs {
    /// Its own tree path, for events.
    pub path: String,
    pub store: Store,
    /// The registry the daemon and the other actors share; the actor fills it.
    pub registry: Breakers,
    /// Where the running incarnation attaches itself (the notifier finds it there).
    pub slot: Slot<BreakersMessage>,
    pub metrics: Metrics,
    pub alerts: Alerts,
    /// The configured breakers, by name.
    pub breakers: Vec<(String, BreakerConfig)>,
}

pub enum BreakersMessage {
    /// A breaker changed state (from the notifier): store what it has that the store lacks,
    /// and re-arm the timer. The snapshot is stored only for a breaker no longer in the registry.
    Transition {
        name: String,
        transition: Transition,
        snapshot: Box<Snapshot>,
    },
    /// Internal: a breaker's wait may be over.
    Tick,
    /// Internal: save the counts of breakers that saw calls.
    Save,
    /// `call PATH status`.
    Status(RpcReplyPort<Vec<BreakerStatus>>),
}

/// One breaker, as `breakers` and `status` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BreakerStatus {
    pub name: String,
    pub state: StateName,
    pub snapshot: Snapshot,
}

pub struct BreakersState {
    args: BreakersArgs,
    /// The time the tick timer is set for, if any.
    timer_at: Option<i64>,
    /// What the store holds of each breaker: only what changed since is written.
    stored: HashMap<String, Stored>,
}

/// A breaker as far as its stored row goes: the number of its last stored transition and its
/// calls + rejections then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stored {
    transitions: u64,
    activity: u64,
}

impl Stored {
    fn of(s: &Snapshot) -> Stored {
        Stored {
            transitions: s.counters.transitions,
            activity: s.counters.calls + s.counters.rejections,
        }
    }
}

/// The notifier every breaker in the registry calls on a transition: a sample, an alert when
/// it opens (cleared when it closes), an event, and the persisting handed to the actor (or,
/// with no actor running, written straight to the store).
pub fn notifier(
    slot: Slot<BreakersMessage>,
    store: Store,
    metrics: Metrics,
    alerts: Alerts,
    path: String,
) -> Notifier {
    std::sync::Arc::new(move |name: &str, t: &Transition, snapshot: &Snapshot| {
        metrics.report(
            Sample::event(Metric::BreakerTransitions, name.to_string())
                .outcome(t.to == StateName::Closed),
        );
        match t.to {
            StateName::Open => alerts.raise(open_alert(&path, name, &t.reason, snapshot)),
            StateName::Closed | StateName::Disabled => alerts.clear(alert_key(name)),
            _ => {}
        }
        let mut event = StoredEvent::new(
            &path,
            crate::store::events::Kind::Breaker,
            format!("breaker {name}: {} -> {} ({})", t.from, t.to, t.reason),
        );
        event.data = serde_json::json!({
            "breaker": name, "from": t.from, "to": t.to, "reason": t.reason,
        });
        store.record(event);
        let message = BreakersMessage::Transition {
            name: name.to_string(),
            transition: t.clone(),
            snapshot: Box::new(snapshot.clone()),
        };
        let unsent = match slot.get() {
            Some(actor) => match actor.cast(message) {
                Ok(()) => None,
                Err(ractor::MessagingErr::SendErr(back)) => Some(back),
                Err(_) => None,
            },
            None => Some(message),
        };
        if let Some(BreakersMessage::Transition {
            name,
            transition,
            snapshot,
        }) = unsent
        {
            save_later(&store, vec![save_of(&name, Some(&transition), &snapshot)]);
        }
    })
}

/// The alert "breaker NAME is open" (`why`: the transition's reason).
fn open_alert(path: &str, name: &str, why: &str, snapshot: &Snapshot) -> Alert {
    let mut alert = Alert::new(
        Severity::Warning,
        format!("circuit breaker open: {name}"),
        path,
    )
    .body(format!(
        "breaker {name} opened ({why}); calls are rejected for {}",
        humantime::format_duration(Duration::from_millis(snapshot.wait_ms.max(0) as u64))
    ))
    .label("breaker", name)
    .at_once();
    alert.key = Some(alert_key(name));
    alert
}

/// The alert key of "breaker NAME is open".
pub fn alert_key(name: &str) -> String {
    format!("breaker:{name}")
}

fn save_of(name: &str, t: Option<&Transition>, snapshot: &Snapshot) -> BreakerSave {
    BreakerSave {
        name: name.to_string(),
        state: snapshot.state.name().as_str().to_string(),
        snapshot: serde_json::to_value(snapshot).unwrap_or(serde_json::Value::Null),
        at_ms: t.map_or_else(wall_clock_ms, |t| t.at_ms),
        transition: t.map(|t| {
            (
                t.from.as_str().to_string(),
                t.to.as_str().to_string(),
                t.reason.clone(),
            )
        }),
    }
}

/// Writes without waiting (from the notifier, which may run on any thread, in or out of the
/// runtime).
fn save_later(store: &Store, saves: Vec<BreakerSave>) {
    let store = store.clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = store
                .durable(DurableOp::BreakersSave(saves), Some(STORE_WAIT))
                .await
            {
                tracing::warn!(error = %e, "cannot save a breaker's state yet (the store keeps trying)");
            }
        });
    } else {
        tracing::warn!(
            "a breaker changed state outside the runtime; its state is saved at the next change"
        );
    }
}

/// When the actor must next tick `b`: the machine's next deadline and, in HALF_OPEN, at the
/// latest one `half_open_max_wait` from now. Handing out a trial permit notifies nothing, so the
/// deadline of a permit taken after this arming is unknown here; it is no earlier than that
/// check, which then sees it and arms for it exactly. Without it, a trial never reported would
/// hold HALF_OPEN until some other call came (resilience4j's stuck HALF_OPEN).
fn next_check(b: &Breaker, now: i64) -> Option<i64> {
    let deadline = b.next_deadline();
    if b.state() != StateName::HalfOpen {
        return deadline;
    }
    let max_wait = b.config().half_open_max_wait;
    if max_wait.is_zero() {
        return deadline;
    }
    let wait = i64::try_from(max_wait.as_millis()).unwrap_or(i64::MAX);
    let check = now.saturating_add(wait);
    Some(deadline.map_or(check, |d| d.min(check)))
}

impl BreakersState {
    /// Arms the tick timer for the earliest deadline of any breaker, unless one is set sooner.
    fn arm(&mut self, myself: &ActorRef<BreakersMessage>) {
        let now = wall_clock_ms();
        let next = self
            .args
            .registry
            .all()
            .iter()
            .filter_map(|b| next_check(b, now))
            .min();
        let Some(at) = next else {
            return;
        };
        if self.timer_at.is_some_and(|set| set <= at && set >= now) {
            return;
        }
        self.timer_at = Some(at);
        let delay = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
        myself.send_after(delay, || BreakersMessage::Tick);
    }

    async fn save(&mut self, saves: Vec<BreakerSave>) {
        if saves.is_empty() {
            return;
        }
        if let Err(e) = self
            .args
            .store
            .durable(DurableOp::BreakersSave(saves), Some(STORE_WAIT))
            .await
        {
            tracing::warn!(error = %e, "cannot save breaker state yet (the store keeps trying)");
        }
    }

    /// What `b` has that the store lacks: each transition since the last one stored, in
    /// order, or else its counts if they changed; every row with the live state.
    fn unsaved(&mut self, b: &Breaker) -> Vec<BreakerSave> {
        let snapshot = b.snapshot();
        let now = Stored::of(&snapshot);
        let before = self.stored.get(b.name()).copied().unwrap_or_default();
        if now == before {
            return Vec::new();
        }
        self.stored.insert(b.name().to_string(), now);
        let missed = b.transitions_after(before.transitions);
        if let Some((first, _)) = missed.first() {
            if *first > before.transitions + 1 {
                tracing::warn!(
                    breaker = b.name(),
                    lost = *first - before.transitions - 1,
                    "transitions of a breaker were not stored (too many since the last save)"
                );
            }
        }
        let mut saves: Vec<BreakerSave> = missed
            .iter()
            .filter(|(n, _)| *n <= now.transitions)
            .map(|(_, t)| save_of(b.name(), Some(t), &snapshot))
            .collect();
        if saves.is_empty() {
            saves.push(save_of(b.name(), None, &snapshot));
        }
        saves
    }

    /// Everything the store lacks, of every breaker.
    async fn save_changed(&mut self) {
        let mut saves = Vec::new();
        for b in self.args.registry.all() {
            saves.extend(self.unsaved(&b));
        }
        self.save(saves).await;
    }

    fn status(&self) -> Vec<BreakerStatus> {
        self.args
            .registry
            .all()
            .iter()
            .map(|b| {
                let snapshot = b.snapshot();
                BreakerStatus {
                    name: b.name().to_string(),
                    state: snapshot.state.name(),
                    snapshot,
                }
            })
            .collect()
    }
}

impl Actor for BreakersActor {
    type Msg = BreakersMessage;
    type State = BreakersState;
    type Arguments = BreakersArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: BreakersArgs,
    ) -> Result<BreakersState, ActorProcessingErr> {
        let now = wall_clock_ms();
        let stored: HashMap<String, Snapshot> = match health::breakers(args.store.reader()).await
        {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|r| match serde_json::from_value::<Snapshot>(r.snapshot) {
                    Ok(s) => Some((r.name, s)),
                    Err(e) => {
                        tracing::warn!(breaker = %r.name, error = %e, "stored breaker state unreadable; it starts closed");
                        None
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the breakers' state; they start closed");
                HashMap::new()
            }
        };
        let notify = notifier(
            args.slot.clone(),
            args.store.clone(),
            args.metrics.clone(),
            args.alerts.clone(),
            args.path.clone(),
        );
        let mut stored_now = HashMap::new();
        for (name, config) in &args.breakers {
            match args.registry.get(name) {
                // An earlier incarnation's breaker: its state is the live one. What the store
                // lacks of it (transitions whose notifications that incarnation never read) is
                // written at the first save, below.
                Some(existing) => {
                    existing.reconfigure(config.clone());
                    let row = stored.get(name).map(Stored::of).unwrap_or_default();
                    stored_now.insert(name.clone(), row);
                }
                None => {
                    let machine = match stored.get(name) {
                        Some(s) => Machine::restore(config.clone(), s, now),
                        None => Machine::new(config.clone(), now),
                    };
                    let breaker = Breaker::from_machine(name.clone(), machine, notify.clone());
                    stored_now.insert(name.clone(), Stored::of(&breaker.snapshot()));
                    args.registry.insert(breaker);
                }
            }
        }
        // Breakers no longer configured leave the registry (their stored rows stay, for a
        // config that brings them back).
        for name in args.registry.names() {
            if !args.breakers.iter().any(|(n, _)| *n == name) {
                args.registry.remove(&name);
                args.alerts.clear(alert_key(&name));
            }
        }
        // What is true of each now (a breaker restored open is still open; one restored
        // closed was maybe notified open before a restart): said before the tree has started.
        for breaker in args.registry.all() {
            let snapshot = breaker.snapshot();
            if snapshot.state.name() == StateName::Open {
                args.alerts.raise(open_alert(
                    &args.path,
                    breaker.name(),
                    "open since before a restart",
                    &snapshot,
                ));
            } else {
                args.alerts.clear(alert_key(breaker.name()));
            }
        }
        args.slot.attach(myself.clone());
        myself.send_interval(SAVE_EVERY, || BreakersMessage::Save);
        let _ = myself.cast(BreakersMessage::Save);
        let mut state = BreakersState {
            args,
            timer_at: None,
            stored: stored_now,
        };
        state.arm(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: BreakersMessage,
        state: &mut BreakersState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BreakersMessage::Transition {
                name,
                transition,
                snapshot,
            } => {
                let saves = match state.args.registry.get(&name) {
                    Some(b) => state.unsaved(&b),
                    // No longer configured: its notification is all there is.
                    None => vec![save_of(&name, Some(&transition), &snapshot)],
                };
                state.save(saves).await;
                state.arm(&myself);
            }
            BreakersMessage::Tick => {
                state.timer_at = None;
                // Transitions come back through the notifier.
                for b in state.args.registry.all() {
                    b.tick();
                }
                state.arm(&myself);
            }
            BreakersMessage::Save => state.save_changed().await,
            BreakersMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut BreakersState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.slot.detach(myself.get_id());
        state.save_changed().await;
        Ok(())
    }
}
