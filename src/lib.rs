//! metasystem's runtime: the CLI, the daemon's wiring, telemetry. The supervision engine and
//! the actor kinds live in the `metasystem-actors` crate (`actors/`).

pub mod chaos;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod export;
pub mod kinds;
pub mod telemetry;
pub mod wiring;
