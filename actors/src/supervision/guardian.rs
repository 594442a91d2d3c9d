//! The guardian: the root supervisor's own parent. It starts the root, learns how the root
//! ended (including a give-up or a bug's panic, which only a linked parent is told about), and
//! on shutdown stops the root and waits for its ordered shutdown.

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use tokio::sync::watch;

use crate::supervision::directory::Directory;
use crate::supervision::event::{EventKind, EventSink};
use crate::supervision::exit::ExitReason;
use crate::supervision::spec::SupervisorSpec;
use crate::supervision::supervisor::{SupervisorActor, SupervisorArgs};

/// The root's path.
pub const ROOT: &str = "root";

pub struct GuardianActor;

/// The guardian takes no messages: it is stopped to shut the tree down.
pub enum GuardianMessage {}

pub struct GuardianArgs {
    pub spec: SupervisorSpec,
    pub directory: Directory,
    pub events: EventSink,
    /// Set once, to how the root ended.
    pub exit: watch::Sender<Option<ExitReason>>,
}

pub struct GuardianState {
    root: ActorCell,
    events: EventSink,
    exit: watch::Sender<Option<ExitReason>>,
    /// The root's exit has been recorded (and its event emitted).
    recorded: bool,
}

impl GuardianState {
    /// Records how the root ended, once. A give-up the root reported itself wins over what the
    /// guardian observed (a give-up can race the guardian's own shutdown).
    fn record_exit(&mut self, observed: ExitReason) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let reason = self.exit.borrow().clone().unwrap_or(observed);
        self.events.emit(
            ROOT,
            EventKind::Exited {
                reason: reason.clone(),
                incarnation: 1,
            },
        );
        self.exit.send_replace(Some(reason));
    }
}

impl Actor for GuardianActor {
    type Msg = GuardianMessage;
    type State = GuardianState;
    type Arguments = GuardianArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GuardianArgs,
    ) -> Result<GuardianState, ActorProcessingErr> {
        let root_args = SupervisorArgs {
            path: ROOT.to_string(),
            spec: args.spec,
            directory: args.directory.clone(),
            events: args.events.clone(),
            report: Some(args.exit.clone()),
        };
        let (root, _join) =
            match Actor::spawn_linked(None, SupervisorActor, root_args, myself.get_cell()).await {
                Ok(started) => started,
                Err(ractor::SpawnErr::StartupFailed(e)) => return Err(e),
                Err(e) => return Err(e.into()),
            };
        let root = root.get_cell();
        args.directory.register(ROOT, root.clone());
        args.events
            .emit(ROOT, EventKind::Started { incarnation: 1 });
        Ok(GuardianState {
            root,
            events: args.events,
            exit: args.exit,
            recorded: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: GuardianMessage,
        _state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) if cell == state.root => {
                ExitReason::from_stop_reason(reason.as_deref())
            }
            SupervisionEvent::ActorFailed(cell, err) if cell == state.root => {
                ExitReason::from_error(&err)
            }
            _ => return Ok(()),
        };
        if reason.is_abnormal() {
            tracing::error!(%reason, "the root supervisor exited");
        }
        state.record_exit(reason);
        myself.stop(None);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        if state.root.get_status() < ActorStatus::Stopping {
            let _ = state
                .root
                .stop_and_wait(Some("shutdown".to_string()), None)
                .await;
        }
        state.record_exit(ExitReason::Shutdown);
        Ok(())
    }
}
