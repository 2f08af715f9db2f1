//! Alpine (apk-tools compatible) back end.
