//! The UDP tracker protocol (BEP 15): packet views and writers ([`packet`]), stateless
//! connection IDs ([`conn_id`]), and the server ([`Tracker::handle_datagram`](crate::Tracker::handle_datagram)).

pub mod conn_id;
pub mod packet;
pub(crate) mod server;
