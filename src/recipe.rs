//! Recipe files.
