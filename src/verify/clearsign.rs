//! Strict splitting of an OpenPGP clearsigned file (Debian `InRelease`),
//! following apt's `SplitClearSignedFile`: the stricter the split, the fewer
//! ways to smuggle unsigned text past a signature check (CVE-2013-1051).
//!
//! Pure: takes bytes, returns values.

const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &str = "-----END PGP SIGNATURE-----";

/// A clearsigned file split into its message and signature blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearSigned {
    /// The message with dash-escaping removed, `\n` line ends, exactly one
    /// final `\n` (what a Release parser should read, once verified).
    pub text: String,
    /// The exact bytes the signature covers (RFC 4880 §7.1): trailing spaces
    /// and tabs removed from every line, lines joined with CR LF, no final
    /// line break.
    pub signed_data: Vec<u8>,
    /// Values of the `Hash:` armour headers, in order.
    pub hash_headers: Vec<String>,
    /// Each ASCII-armoured signature block, BEGIN to END line inclusive,
    /// with `\n` line endings.
    pub signature_blocks: Vec<String>,
}

/// Why a file is not an acceptable clearsigned message. Line numbers are
/// 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClearSignError {
    #[error("clearsigned file is not valid UTF-8")]
    NotUtf8,
    #[error("not signed: the file does not start with {BEGIN_MESSAGE:?} (a captive portal or proxy page?)")]
    NoBeginLine,
    #[error("line {line}: armour header {header:?} is not allowed (only \"Hash:\")")]
    ForbiddenHeader { line: usize, header: String },
    #[error("line {line}: a message line starting with '-' is not dash-escaped: {text:?}")]
    UnescapedDash { line: usize, text: String },
    #[error("clearsigned message is empty")]
    EmptyMessage,
    #[error("clearsigned file has no signature block")]
    NoSignature,
    #[error("signature block starting at line {line} has no END line")]
    UnterminatedSignature { line: usize },
    #[error("line {line}: unsigned text after the signature: {text:?}")]
    TrailingData { line: usize, text: String },
    #[error("clearsigned file ends inside the armour headers")]
    TruncatedHeaders,
}

enum State {
    Headers,
    Message,
    Signature { start: usize },
    AfterSignature,
}

/// Splits a clearsigned file the strict way.
pub fn split_clearsigned(data: &[u8]) -> Result<ClearSigned, ClearSignError> {
    let input = std::str::from_utf8(data).map_err(|_| ClearSignError::NotUtf8)?;
    let mut lines = input.split('\n').map(strip_cr).enumerate();

    match lines.next() {
        Some((_, first)) if first == BEGIN_MESSAGE => {}
        _ => return Err(ClearSignError::NoBeginLine),
    }

    let mut state = State::Headers;
    let mut hash_headers = Vec::new();
    let mut message: Vec<&str> = Vec::new();
    let mut signature_blocks = Vec::new();
    let mut current_block = String::new();

    for (index, line) in lines {
        let line_no = index + 1;
        match state {
            State::Headers => {
                if line.is_empty() {
                    state = State::Message;
                } else if let Some(value) = line.strip_prefix("Hash:") {
                    hash_headers.push(value.trim().to_string());
                } else {
                    return Err(ClearSignError::ForbiddenHeader {
                        line: line_no,
                        header: line.to_string(),
                    });
                }
            }
            State::Message => {
                if line == BEGIN_SIGNATURE {
                    state = State::Signature { start: line_no };
                    current_block = format!("{line}\n");
                } else if let Some(rest) = line.strip_prefix("- ") {
                    message.push(rest);
                } else if line.starts_with('-') {
                    return Err(ClearSignError::UnescapedDash {
                        line: line_no,
                        text: line.to_string(),
                    });
                } else {
                    message.push(line);
                }
            }
            State::Signature { .. } => {
                current_block.push_str(line);
                current_block.push('\n');
                if line == END_SIGNATURE {
                    signature_blocks.push(std::mem::take(&mut current_block));
                    state = State::AfterSignature;
                }
            }
            State::AfterSignature => {
                if line == BEGIN_SIGNATURE {
                    state = State::Signature { start: line_no };
                    current_block = format!("{line}\n");
                } else if !line.is_empty() {
                    // Blank lines carry nothing; any text would be unsigned.
                    return Err(ClearSignError::TrailingData {
                        line: line_no,
                        text: line.to_string(),
                    });
                }
            }
        }
    }

    match state {
        State::Headers => Err(ClearSignError::TruncatedHeaders),
        State::Message => Err(ClearSignError::NoSignature),
        State::Signature { start } => Err(ClearSignError::UnterminatedSignature { line: start }),
        State::AfterSignature if message.is_empty() => Err(ClearSignError::EmptyMessage),
        State::AfterSignature => Ok(ClearSigned {
            text: message_text(&message),
            signed_data: canonical_signed_data(&message),
            hash_headers,
            signature_blocks,
        }),
    }
}

fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// The signed lines in LF form, ending in exactly one `\n` whether or not
/// the signer included a final line break (deb822 parsers want one).
fn message_text(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn canonical_signed_data(lines: &[&str]) -> Vec<u8> {
    let stripped: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_end_matches([' ', '\t']))
        .collect();
    stripped.join("\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n=abcd\n-----END PGP SIGNATURE-----\n";

    fn doc(body: &str) -> String {
        format!("{BEGIN_MESSAGE}\nHash: SHA256\n\n{body}{SIG}")
    }

    #[test]
    fn splits_a_normal_file() {
        let s = split_clearsigned(doc("Origin: Debian\nSuite: stable  \n").as_bytes()).unwrap();
        assert_eq!(s.text, "Origin: Debian\nSuite: stable  \n");
        assert_eq!(s.signed_data, b"Origin: Debian\r\nSuite: stable");
        assert_eq!(s.hash_headers, vec!["SHA256"]);
        assert_eq!(s.signature_blocks, vec![SIG.to_string()]);
    }

    #[test]
    fn crlf_input_gives_same_result() {
        let lf = doc("A: b\nC: d\n");
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(
            split_clearsigned(lf.as_bytes()).unwrap(),
            split_clearsigned(crlf.as_bytes()).unwrap()
        );
    }

    #[test]
    fn dash_escape_is_removed() {
        let s =
            split_clearsigned(doc("- -----BEGIN PGP SIGNATURE-----\n- x\n").as_bytes()).unwrap();
        assert_eq!(s.text, "-----BEGIN PGP SIGNATURE-----\nx\n");
    }

    #[test]
    fn unescaped_dash_line_is_rejected() {
        let err = split_clearsigned(doc("A: b\n-x\n").as_bytes()).unwrap_err();
        assert_eq!(
            err,
            ClearSignError::UnescapedDash {
                line: 5,
                text: "-x".into()
            }
        );
    }

    #[test]
    fn must_start_with_begin_line() {
        let d = format!("junk\n{}", doc("A: b\n"));
        assert_eq!(
            split_clearsigned(d.as_bytes()),
            Err(ClearSignError::NoBeginLine)
        );
        let d = format!("\n{}", doc("A: b\n"));
        assert_eq!(
            split_clearsigned(d.as_bytes()),
            Err(ClearSignError::NoBeginLine)
        );
    }

    #[test]
    fn only_hash_headers() {
        let d = format!("{BEGIN_MESSAGE}\nHash: SHA256\nComment: hi\n\nA: b\n{SIG}");
        assert!(matches!(
            split_clearsigned(d.as_bytes()),
            Err(ClearSignError::ForbiddenHeader { line: 3, .. })
        ));
    }

    #[test]
    fn appended_unsigned_text_is_rejected() {
        let d = format!("{}Origin: Evil\n", doc("A: b\n"));
        assert!(matches!(
            split_clearsigned(d.as_bytes()),
            Err(ClearSignError::TrailingData { .. })
        ));
        let d = format!("{}\n\n \n", doc("A: b\n"));
        assert!(matches!(
            split_clearsigned(d.as_bytes()),
            Err(ClearSignError::TrailingData { line: 12, .. })
        ));
        let blank_tail = format!("{}\n\n", doc("A: b\n"));
        assert!(split_clearsigned(blank_tail.as_bytes()).is_ok());
    }

    #[test]
    fn further_signature_blocks_are_allowed() {
        let d = format!("{}{SIG}", doc("A: b\n"));
        let s = split_clearsigned(d.as_bytes()).unwrap();
        assert_eq!(s.signature_blocks.len(), 2);
    }

    #[test]
    fn structural_errors() {
        let no_sig = format!("{BEGIN_MESSAGE}\n\nA: b\n");
        assert_eq!(
            split_clearsigned(no_sig.as_bytes()),
            Err(ClearSignError::NoSignature)
        );
        let open = format!("{BEGIN_MESSAGE}\n\nA: b\n{BEGIN_SIGNATURE}\nAAAA\n");
        assert_eq!(
            split_clearsigned(open.as_bytes()),
            Err(ClearSignError::UnterminatedSignature { line: 4 })
        );
        let empty = format!("{BEGIN_MESSAGE}\n\n{SIG}");
        assert_eq!(
            split_clearsigned(empty.as_bytes()),
            Err(ClearSignError::EmptyMessage)
        );
        assert_eq!(split_clearsigned(b"\xff\xfe"), Err(ClearSignError::NotUtf8));
        assert_eq!(
            split_clearsigned(format!("{BEGIN_MESSAGE}\nHash: SHA256").as_bytes()),
            Err(ClearSignError::TruncatedHeaders)
        );
    }
}
