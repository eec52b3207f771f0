//! Cluster mode: the state every node shares, kept in etcd.
//!
//! `etcd` is the client, the only code that knows etcd's wire types.

pub mod etcd;
