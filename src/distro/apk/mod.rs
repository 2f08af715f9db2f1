//! Alpine (apk-tools compatible) back end: versions, signed APKINDEX, v2 .apk
//! packages, the solver and the installed database writer.
//!
//! Everything here is pure: functions take bytes and return values.

pub mod version;
