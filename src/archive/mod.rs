//! Archive formats read from untrusted input: tar (in .deb, .apk and ADD),
//! ar (the .deb wrapper) and the compressions around them.

pub mod ar;
pub mod decompress;
pub mod tar;
