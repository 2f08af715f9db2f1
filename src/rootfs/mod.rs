//! (module under construction)

pub mod sandbox;
