//! Helpers shared by the integration tests (`tests/integration`) and, for
//! [`skip`], the sandbox binary.
#![allow(dead_code)]

pub mod apkrepo;
pub mod conformance;
pub mod debrepo;
pub mod fixture;
pub mod httpd;
pub mod minirootfs;
pub mod push_registry;
pub mod run;
pub mod signing;
pub mod skip;
