//! Trust: digests, OpenPGP verification of Debian/Ubuntu release files, and
//! the trust anchors (`keys`: the shipped keys and a recipe's key lookup).
//!
//! Everything here but `keys` (which reads a recipe's key files) is pure:
//! bytes in, verdicts out.

pub mod clearsign;
pub mod digest;
pub mod keys;
pub mod pgp;

pub use self::clearsign::{split_clearsigned, ClearSignError, ClearSigned};
pub use self::digest::{
    sha256_hex, HashingReader, HashingWriter, Sha256Digest, ThreadedHashingWriter,
};
pub use self::pgp::{
    verify_detached, verify_inrelease, DetachedVerified, Keyring, KeyringError, Verified,
    VerifyError,
};
