//! edgeprov: an on-premises provisioning server for IP desk phones.

pub mod admin;
pub mod backup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dhcp;
pub mod dns;
pub mod firmware;
pub mod fsutil;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod open_files;
pub mod per_source;
pub mod phone;
pub mod pki;
pub mod reload;
pub mod retention;
pub mod serve;
pub mod settings;
pub mod store;
pub mod storm;
pub mod supervise;
pub mod sync;
