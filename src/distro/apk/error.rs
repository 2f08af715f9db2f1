use thiserror::Error;

/// Everything that can go wrong reading or verifying Alpine repository data.
/// `what` names the file or package at fault (e.g. `APKINDEX.tar.gz`, `busybox-1.36.1-r2`).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApkError {
    #[error("{what}: gzip member at byte {offset}: {reason}")]
    Gzip {
        what: String,
        offset: usize,
        reason: String,
    },
    #[error("{what}: {reason} (FORMAT_INVALID)")]
    Format { what: String, reason: String },
    #[error("{what}: tar entry {entry:?}: {reason}")]
    Tar {
        what: String,
        entry: String,
        reason: String,
    },
    #[error("{what}: not signed (no .SIGN.* entry); refusing without allow-untrusted")]
    Unsigned { what: String },
    #[error("{what}: signed only by untrusted key(s) {keys:?}")]
    UntrustedKey { what: String, keys: Vec<String> },
    #[error("{what}: signature entry {entry:?} is {size} bytes, over the 64 KiB limit")]
    SignatureTooLarge {
        what: String,
        entry: String,
        size: u64,
    },
    #[error("{what}: signature entry {entry:?} uses an unknown algorithm")]
    UnknownSignatureAlgorithm { what: String, entry: String },
    #[error("{what}: signature by {key} does not verify (BAD signature)")]
    BadSignature { what: String, key: String },
    #[error("trusted key {file}: {reason}")]
    Key { file: String, reason: String },
    #[error("{what}: line {line}: {reason}")]
    IndexSyntax {
        what: String,
        line: usize,
        reason: String,
    },
    #[error("{what}: control identity {actual} does not match the index C:{expected}")]
    IdentityMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: size {actual} does not match the index S:{expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: data member sha256 {actual} does not match .PKGINFO datahash {expected}")]
    DataHashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: file {entry:?} content does not match its APK-TOOLS.checksum.SHA1 (FILE_INTEGRITY)")]
    FileChecksumMismatch { what: String, entry: String },
}

impl ApkError {
    pub(crate) fn format(what: &str, reason: impl Into<String>) -> Self {
        ApkError::Format {
            what: what.to_string(),
            reason: reason.into(),
        }
    }
}
