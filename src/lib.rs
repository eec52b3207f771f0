//! Meridian: an authoritative DNS server that is a global server load balancer.
//!
//! Data flows one way: files → `config` (raw → validate) → `model` → `state::Snapshot`
//! (published through ArcSwap) → `answer::respond` → `dns` (wire and listeners).

pub mod admin;
pub mod answer;
pub mod app;
pub mod cluster;
pub mod config;
pub mod control;
pub mod ctl;
pub mod dns;
pub mod events;
pub mod explain;
pub mod file_id;
pub mod files;
pub mod geo;
pub mod health;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod name;
pub mod overrides;
pub mod rng;
pub mod select;
pub mod state;
