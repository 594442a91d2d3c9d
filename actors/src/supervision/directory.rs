//! Actors find each other by tree path here, never by holding an `ActorRef` that dies with a
//! restart. Supervisors register each child incarnation when it starts and remove it when it
//! exits; one directory per tree (so several trees, as in tests, never collide, which ractor's
//! process-global name registry would).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ractor::{ActorCell, ActorId, ActorRef, ActorStatus, Message};

#[derive(Clone, Default, Debug)]
pub struct Directory {
    inner: Arc<RwLock<HashMap<String, ActorCell>>>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, ActorCell>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is one
        // insert or remove), so a poisoned lock is safe to keep using.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, ActorCell>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, path: &str, cell: ActorCell) {
        self.write().insert(path.to_string(), cell);
    }

    /// Removes `path` if it still names the incarnation `id` (a newer one stays).
    pub(crate) fn unregister(&self, path: &str, id: ActorId) {
        let mut map = self.write();
        if map.get(path).is_some_and(|c| c.get_id() == id) {
            map.remove(path);
        }
    }

    /// Removes everything below `path` (a supervisor that exited took its subtree with it).
    pub(crate) fn unregister_below(&self, path: &str) {
        let prefix = format!("{path}/");
        self.write().retain(|k, _| !k.starts_with(&prefix));
    }

    /// The live actor at `path`, if one is running there now.
    pub fn lookup(&self, path: &str) -> Option<ActorCell> {
        self.read()
            .get(path)
            .filter(|c| c.get_status() < ActorStatus::Stopping)
            .cloned()
    }

    /// The live actor at `path` as a typed reference, if it takes messages of type `M`.
    pub fn get<M: Message>(&self, path: &str) -> Option<ActorRef<M>> {
        self.lookup(path)
            .filter(|c| c.is_message_type_of::<M>() == Some(true))
            .map(ActorRef::from)
    }

    /// Number of paths registered (live or not yet cleaned up).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}
