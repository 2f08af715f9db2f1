//! Per-instruction argument parsing of one logical line (after continuation
//! lines were joined), producing the argument nodes BuildKit's AST holds.
//! No variable expansion happens here.

use super::error::ParseErrorKind;
use super::node::Node;

/// The argument nodes of one instruction and whether they came from a JSON array.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) next: Vec<Node>,
    pub(crate) json: bool,
}

impl Args {
    fn words<I: IntoIterator<Item = String>>(words: I) -> Args {
        Args {
            next: words.into_iter().map(Node::word).collect(),
            json: false,
        }
    }
}

/// BuildKit's `[\t\v\f\r ]+`.
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]`, like Go's `regexp.Split(s, n)`.
fn split_token_space(s: &str, limit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        if limit.is_some_and(|n| parts.len() + 1 == n) {
            parts.push(rest);
            return parts;
        }
        match rest.find(is_token_space) {
            Some(start) => {
                parts.push(&rest[..start]);
                let after = &rest[start..];
                let run = after.len() - after.trim_start_matches(is_token_space).len();
                rest = &after[run..];
            }
            None => {
                parts.push(rest);
                return parts;
            }
        }
    }
}

/// Splits a logical line into (instruction name as written, flags, rest).
pub(crate) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let mut parts = split_token_space(trimmed, Some(2)).into_iter();
    let cmd = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(rest) => {
            let (rest, flags) = extract_builder_flags(rest);
            (cmd, flags, rest.trim().to_string())
        }
        None => (cmd, Vec::new(), String::new()),
    }
}

/// Takes the leading `--flag[=value]` words off the argument text; a bare
/// `--` ends the flags. Quotes and `\` escapes inside flags are resolved.
pub(crate) fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return ("", flags);
        };
        if !line[start..].starts_with("--") {
            return (&line[start..], flags);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut ended_at_space = None;
        while let Some((pos, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    ended_at_space = Some(pos);
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    // A trailing backslash is dropped.
                    if let Some((_, escaped)) = chars.next() {
                        word.push(escaped);
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            return match ended_at_space {
                Some(pos) => (&line[pos..], flags),
                None => ("", flags),
            };
        }
        if !word.is_empty() {
            flags.push(word);
        }
        if ended_at_space.is_none() {
            return ("", flags);
        }
    }
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words
/// (they are removed later, during expansion).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            None => {
                if ch.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                in_word = true;
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the end of the text is dropped; otherwise
                    // it is kept together with the character it escapes.
                    let Some(next) = chars.next() else { continue };
                    word.push(ch);
                    word.push(next);
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Unknown instructions keep a single empty argument node, as BuildKit does.
pub(crate) fn parse_ignore(_: &str) -> Result<Args, ParseErrorKind> {
    Ok(Args::words([String::new()]))
}

/// ENV and LABEL: `KEY value` (legacy, one pair) or `k=v k2="v 2"` pairs.
/// Each pair becomes three nodes: key, value and the separator (`""` or `=`).
pub(crate) fn parse_name_val(rest: &str, cmd: &str, escape: char) -> Result<Args, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::default());
    };
    if !first.contains('=') {
        let parts = split_token_space(rest, Some(2));
        if parts.len() < 2 {
            return Err(ParseErrorKind::NeedsTwoArguments(cmd.to_uppercase()));
        }
        return Ok(Args::words([
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]));
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word));
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(Args::words(out))
}

/// ARG: each word is `name` or `name=value`, kept verbatim.
pub(crate) fn parse_name_or_name_val(rest: &str, escape: char) -> Result<Args, ParseErrorKind> {
    Ok(Args::words(parse_words(rest, escape)))
}

pub(crate) fn parse_strings_whitespace_delimited(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    Ok(Args::words(
        split_token_space(rest, None)
            .into_iter()
            .map(str::to_string),
    ))
}

pub(crate) fn parse_string(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    Ok(Args::words([rest.to_string()]))
}

enum JsonOutcome {
    Array(Vec<String>),
    NotStrings,
    NotJson,
}

/// Decodes the first JSON value of `rest` (trailing text is ignored, as Go's
/// `json.Decoder` does) and requires it to be an array of strings.
fn parse_json(rest: &str) -> JsonOutcome {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonOutcome::NotJson;
    }
    let mut de = serde_json::Deserializer::from_str(rest);
    let value: serde_json::Value = match serde::Deserialize::deserialize(&mut de) {
        Ok(v) => v,
        Err(_) => return JsonOutcome::NotJson,
    };
    let serde_json::Value::Array(items) = value else {
        return JsonOutcome::NotJson;
    };
    let mut strings = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => strings.push(s),
            _ => return JsonOutcome::NotStrings,
        }
    }
    JsonOutcome::Array(strings)
}

/// RUN/CMD/ENTRYPOINT/SHELL: a JSON array (exec form) or the text as one
/// argument (shell form).
pub(crate) fn parse_maybe_json(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    match parse_json(rest) {
        JsonOutcome::Array(words) => Ok(Args {
            json: true,
            ..Args::words(words)
        }),
        JsonOutcome::NotStrings => Err(ParseErrorKind::JsonNotStringArray),
        JsonOutcome::NotJson => Ok(Args::words([rest.to_string()])),
    }
}

/// ADD/COPY/VOLUME: a JSON array or whitespace-separated words.
pub(crate) fn parse_maybe_json_to_list(rest: &str) -> Result<Args, ParseErrorKind> {
    match parse_json(rest) {
        JsonOutcome::Array(words) => Ok(Args {
            json: true,
            ..Args::words(words)
        }),
        JsonOutcome::NotStrings => Err(ParseErrorKind::JsonNotStringArray),
        JsonOutcome::NotJson => parse_strings_whitespace_delimited(rest),
    }
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`) followed by a maybe-JSON command.
pub(crate) fn parse_health_config(rest: &str) -> Result<Args, ParseErrorKind> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Args::default());
    }
    let typ = &rest[..sep];
    let cmd = parse_maybe_json(rest[sep..].trim_start())?;
    let mut next = vec![Node::word(typ.to_string())];
    next.extend(cmd.next);
    Ok(Args {
        next,
        json: cmd.json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_split_off() {
        let (cmd, flags, rest) = split_command("COPY --from=build --chown=\"a b\" src /dst");
        assert_eq!(cmd, "COPY");
        assert_eq!(flags, ["--from=build", "--chown=a b"]);
        assert_eq!(rest, "src /dst");
        let (_, flags, rest) = split_command("CMD --doit -- [ \"a\" ]");
        assert_eq!(flags, ["--doit"]);
        assert_eq!(rest, "[ \"a\" ]");
        let (_, flags, rest) = split_command("COPY -- --odd /dst");
        assert!(flags.is_empty());
        assert_eq!(rest, "--odd /dst");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"a="b c" d\ e 'f\'"#, '\\'),
            [r#"a="b c""#, r"d\ e", r"'f\'"]
        );
        assert_eq!(parse_words("x ''", '\\'), ["x", "''"]);
    }

    #[test]
    fn json_trailing_text_is_ignored_like_go() {
        let args = parse_maybe_json(r#"["a", "b"] trailing"#).unwrap();
        assert!(args.json);
        assert_eq!(args.next.len(), 2);
        assert!(matches!(
            parse_maybe_json(r#"["a", 1]"#),
            Err(ParseErrorKind::JsonNotStringArray)
        ));
    }

    #[test]
    fn regexp_split_semantics() {
        assert_eq!(split_token_space("a  b\tc", None), ["a", "b", "c"]);
        assert_eq!(split_token_space("a  b c", Some(2)), ["a", "b c"]);
        assert_eq!(split_token_space("a", Some(2)), ["a"]);
    }
}
