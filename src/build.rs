//! Build pipeline orchestration.
