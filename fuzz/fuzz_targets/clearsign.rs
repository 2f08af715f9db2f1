//! OpenPGP clearsigned files and armoured/binary detached signatures: the
//! strict splitter, then armour and packet parsing (an empty keyring, so
//! nothing can verify; everything before that step is reached).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::verify::{pgp, split_clearsigned};
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let keyring = pgp::Keyring::default();
    let _ = split_clearsigned(data);
    let _ = pgp::verify_inrelease(data, &keyring, now);
    let _ = pgp::verify_detached(b"Origin: x\n", data, &keyring, now);
});
