//! Root filesystem construction: safe writes inside the root, extraction.

pub mod extract;
pub mod safe;
//! (module under construction)
pub mod sandbox;
