//! Helpers shared by integration tests (`mod common;`).
#![allow(dead_code)]

pub mod apkrepo;
pub mod debrepo;
pub mod httpd;
pub mod signing;
