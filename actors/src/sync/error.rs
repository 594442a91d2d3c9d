//! Why an operator's operation on a sync target (resolve a conflict, restore a backup) did not
//! happen, typed so the daemon can say it with the right code: what is asked for is not
//! there, the target is not there, something else holds it, the request cannot be done as
//! asked, or the disk or the store refused.

/// Why an operator's sync operation did not happen; the message says it for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// What was named is not there: no such open conflict, backup or run.
    #[error("{0}")]
    NotFound(String),
    /// The target is not there (unplugged, unmounted), or is not the folder synced before
    /// (no marker): nothing is changed until it is back.
    #[error("{0}")]
    Offline(String),
    /// Something else holds what the operation needs: another run's lock on the target, a
    /// live database (a `-wal` beside it). Trying again later may do it.
    #[error("{0}")]
    Busy(String),
    /// It cannot be done as asked: a name that is not a backup's, a path outside the
    /// selection, a file that changed since the operator looked.
    #[error("{0}")]
    Refused(String),
    /// The disk refused: reading or writing a file failed.
    #[error("{0}")]
    Io(String),
    /// The store could not be read or written.
    #[error("{0}")]
    Store(String),
}

impl OpError {
    /// The same error, its message led by `what` (`icloud: notes.db: ...`).
    pub fn context(self, what: impl std::fmt::Display) -> OpError {
        let lead = |m: String| format!("{what}: {m}");
        match self {
            OpError::NotFound(m) => OpError::NotFound(lead(m)),
            OpError::Offline(m) => OpError::Offline(lead(m)),
            OpError::Busy(m) => OpError::Busy(lead(m)),
            OpError::Refused(m) => OpError::Refused(lead(m)),
            OpError::Io(m) => OpError::Io(lead(m)),
            OpError::Store(m) => OpError::Store(lead(m)),
        }
    }

    /// The message without its kind.
    pub fn message(&self) -> &str {
        match self {
            OpError::NotFound(m)
            | OpError::Offline(m)
            | OpError::Busy(m)
            | OpError::Refused(m)
            | OpError::Io(m)
            | OpError::Store(m) => m,
        }
    }
}
