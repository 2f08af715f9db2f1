//! Helpers shared by integration tests (`mod common;`).
#![allow(dead_code)]

pub mod apkrepo;
pub mod debrepo;
pub mod fixture;
pub mod httpd;
pub mod minirootfs;
pub mod run;
pub mod signing;
