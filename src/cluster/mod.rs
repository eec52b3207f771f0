//! Cluster mode: the state every node shares, kept in etcd.
//!
//! `etcd` is the client, the only code that knows etcd's wire types; `keys` is where each part
//! of the state lives under the prefix.

pub mod etcd;
pub mod keys;
