//! The control socket: protocol, daemon-side server, CLI-side client.

pub mod client;
pub mod protocol;
pub mod request;
pub mod server;
pub mod slots;
