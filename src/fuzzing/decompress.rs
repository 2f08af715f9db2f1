//! The capped decoders (gzip, xz, zstd, none) chosen by magic, as ADD and
//! layer reading use them: output must stop at the cap.
use crate::archive::decompress::{decoder_for, Compression, Integrity};

const CAP: u64 = 1 << 20;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let c = Compression::from_magic(data);
    for integrity in [Integrity::Check, Integrity::AlreadyVerified] {
        if let Ok(mut r) = decoder_for(c, data, CAP, integrity) {
            let mut counted = CountingSink(0);
            let _ = std::io::copy(&mut r, &mut counted);
            assert!(
                counted.0 <= CAP,
                "decoder produced {} bytes past the cap",
                counted.0
            );
        }
    }
}

struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
