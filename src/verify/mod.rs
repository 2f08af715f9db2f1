//! Trust: digests, OpenPGP verification of Debian/Ubuntu release files.
//!
//! Everything here is pure: bytes in, verdicts out.

pub mod clearsign;
pub mod digest;
pub mod pgp;

pub use self::clearsign::{split_clearsigned, ClearSignError, ClearSigned};
pub use self::digest::{
    sha256_hex, HashingReader, HashingWriter, Sha256Digest, ThreadedHashingWriter,
};
pub use self::pgp::{
    verify_detached, verify_inrelease, DetachedVerified, Keyring, KeyringError, Verified,
    VerifyError,
};
