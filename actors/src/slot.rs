//! A slot holding the current incarnation of a singleton actor (the metrics actor, the alerts
//! actor), so every other actor can reach it without a name registry and without holding an
//! `ActorRef` that dies with a restart.

use std::sync::{Arc, RwLock};

use ractor::{ActorId, ActorRef};

pub struct Slot<M: Send + 'static> {
    current: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M: Send + 'static> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Slot {
            current: self.current.clone(),
        }
    }
}

impl<M: Send + 'static> Default for Slot<M> {
    fn default() -> Self {
        Slot {
            current: Arc::new(RwLock::new(None)),
        }
    }
}

impl<M: ractor::Message> Slot<M> {
    /// The running incarnation, if any.
    pub fn get(&self) -> Option<ActorRef<M>> {
        // A panic cannot leave an `Option` half-written: a poisoned lock is still good.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Called by the actor when it starts.
    pub fn attach(&self, actor: ActorRef<M>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }

    /// Called by the actor when it stops: empties the slot if it still holds `id` (a newer
    /// incarnation may already have taken it).
    pub fn detach(&self, id: ActorId) {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|a| a.get_id() == id) {
            *slot = None;
        }
    }
}
