//! OpenPGP clearsigned files and armoured/binary detached signatures: the
//! strict splitter, then armour and packet parsing (an empty keyring, so
//! nothing can verify; everything before that step is reached).
use crate::verify::{pgp, split_clearsigned};
use std::time::{Duration, SystemTime};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let keyring = pgp::Keyring::default();
    let _ = split_clearsigned(data);
    let _ = pgp::verify_inrelease(data, &keyring, now);
    let _ = pgp::verify_detached(b"Origin: x\n", data, &keyring, now);
}
