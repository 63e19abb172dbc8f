//! RESP2/RESP3 framing, around the `redis-protocol` crate: requests in ([`parse`]), replies out
//! ([`Reply`]). Bytes never leave this module and the server's connection loop.

pub mod parse;
mod reply;

pub use parse::{Limits, Parser, ProtocolError};
pub use reply::{format_double, format_g, Protocol, Reply};
