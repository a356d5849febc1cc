//! Wire codecs: the MPREG-compatible JSON client protocol and our CBOR fabric
//! protocol. Pure functions over bytes; nothing here touches a socket.

pub mod client;
pub mod fabric;
