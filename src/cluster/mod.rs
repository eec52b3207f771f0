//! Cluster mode: the state every node shares, kept in etcd.
//!
//! `etcd` is the client, the only code that knows etcd's wire types; `keys` is where each part
//! of the state lives under the prefix. `meridian cluster push` and `pull` move that state
//! between a node's files and etcd (`files`): `documents` is the state as the text etcd keeps
//! and what a push changes, `diff` says it in the configuration's terms.

pub mod diff;
pub mod documents;
pub mod etcd;
pub mod files;
pub mod keys;
