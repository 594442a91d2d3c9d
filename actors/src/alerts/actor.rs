//! The alerts actor.

use super::alert::Alert;

pub enum AlertsMessage {
    /// An occurrence of a condition.
    Raise(Alert),
    /// The condition with this key has cleared.
    Clear(String),
}
