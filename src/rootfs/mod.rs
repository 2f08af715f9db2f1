//! Root filesystem construction: safe writes inside the root, extraction,
//! the sandbox that runs package scripts and RUN steps.

pub mod emulation;
pub mod export;
pub mod extract;
pub mod image_sink;
pub mod isolation;
pub mod merge;
pub mod safe;
pub mod sandbox;
