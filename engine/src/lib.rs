//! The functional core of the `seednode` binary: the pure, clock-free parts of the engine (the
//! peer session, the choker, rate limits, the dial rules and every engine limit), kept in a
//! library so that fuzz targets and simulation tests drive them exactly as the event loop does.
//!
//! Nothing here performs I/O or reads a clock: every input carries `now`. The event loop that
//! feeds these machines is `engine/src/reactor/` in the binary. The one exception is [`bench`],
//! the load generators of `seednode bench` (shared with the harnesses in `benches/`): a
//! measuring tool's shell, kept apart from the node's core.

pub mod ban;
pub mod bench;
pub mod blossom;
pub mod choker;
pub mod dial;
pub mod fuzzing;
pub mod limits;
pub mod nostr_auth;
pub mod nostr_msg;
pub mod rate;
pub mod session;
