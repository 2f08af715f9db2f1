//! The ar reader on its own, then as a .deb (member order, debian-binary,
//! control.tar) down to the capped data.tar decoder.
use crate::archive::{ar::ArReader, decompress::Integrity};
use crate::distro::deb::debfile::DebFile;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let mut ar = ArReader::new(data);
    for _ in 0..10_000 {
        match ar.next_member() {
            Ok(Some(_)) => {
                if std::io::copy(&mut ar, &mut std::io::sink()).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    if let Ok(deb) = DebFile::read(data, "fuzz.deb") {
        let _ = deb.control.control_text();
        let _ = deb.control.conffiles();
        if let Ok(mut tar) = deb.into_data(1 << 20, Integrity::Check) {
            let _ = std::io::copy(&mut tar, &mut std::io::sink());
        }
    }
}
