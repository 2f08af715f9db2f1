//! `RUN --mount=type=…,target=…` specifications, validated as BuildKit does.
//!
//! Values may contain variables, which the builder expands with the stage's
//! environment before calling [`parse_mount`]; the instruction parser only
//! pre-validates specs that contain no `$`.

use super::error::ParseErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn parse(value: &str) -> Result<MountType, ParseErrorKind> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return Err(invalid(format!("unsupported mount type {value:?}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// One parsed `--mount` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// Stage name or image for bind/cache sources (`from=`).
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    /// Relative targets are relative to the working directory (the builder
    /// resolves them).
    /// Bind, secret and ssh mounts default to read-only; cache and tmpfs to read-write.
    pub read_only: bool,
    /// Cache id, or secret/ssh id.
    pub id: Option<String>,
    pub sharing: Option<CacheSharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as this environment variable.
    pub env: Option<String>,
}

fn invalid(message: String) -> ParseErrorKind {
    ParseErrorKind::Invalid(message)
}

/// Splits CSV fields (comma-separated, `"…"` quoting with `""` for a quote).
fn csv_fields(value: &str) -> Result<Vec<String>, ParseErrorKind> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(invalid(format!("unterminated quote in mount {value:?}")));
    }
    fields.push(field);
    Ok(fields)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ParseErrorKind> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(format!("invalid value for {key}: {value}"))),
    }
}

fn parse_u32(key: &str, value: &str, radix: u32) -> Result<u32, ParseErrorKind> {
    u32::from_str_radix(value, radix)
        .map_err(|_| invalid(format!("invalid value for {key}: {value}")))
}

/// `64m`, `1g`, `1024` (bytes); suffixes b/k/m/g/t, optionally followed by `b`.
fn parse_size(value: &str) -> Result<u64, ParseErrorKind> {
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let number: u64 = lower[..digits_end]
        .parse()
        .map_err(|_| invalid(format!("invalid size: {value}")))?;
    let shift = match lower[digits_end..].trim_end_matches('b').trim() {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(invalid(format!("invalid size: {value}"))),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| invalid(format!("invalid size: {value}")))
}

/// Parses one `--mount` value with BuildKit's rules and messages.
pub fn parse_mount(value: &str) -> Result<Mount, ParseErrorKind> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: true,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut read_only_set = false;
    let secret_or_ssh = |m: &Mount| matches!(m.kind, MountType::Secret | MountType::Ssh);
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "readwrite" | "rw" => m.read_only = false,
                "required" if secret_or_ssh(&m) => m.required = true,
                "required" => {
                    return Err(invalid(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind.as_str()
                    )))
                }
                _ => return Err(invalid(format!("unexpected key '{key}' in '{field}'"))),
            }
            read_only_set |= key != "required";
            continue;
        };
        match key.as_str() {
            "type" => m.kind = MountType::parse(&val)?,
            "from" => m.from = Some(val),
            "source" | "src" => m.source = Some(val),
            "target" | "dst" | "destination" => m.target = Some(val),
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &val)?;
                read_only_set = true;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &val)?;
                read_only_set = true;
            }
            "required" if secret_or_ssh(&m) => m.required = parse_bool(&key, &val)?,
            "sharing" => {
                if m.kind != MountType::Cache {
                    return Err(invalid(format!(
                        "unexpected key 'sharing' for mount type '{}'",
                        m.kind.as_str()
                    )));
                }
                m.sharing = Some(match val.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(invalid(format!("unsupported sharing value {val:?}"))),
                });
            }
            "mode" => m.mode = Some(parse_u32(&key, &val, 8)?),
            "uid" => m.uid = Some(parse_u32(&key, &val, 10)?),
            "gid" => m.gid = Some(parse_u32(&key, &val, 10)?),
            "id" => m.id = Some(val),
            "size" if m.kind == MountType::Tmpfs => m.size = Some(parse_size(&val)?),
            "env" if m.kind == MountType::Secret => m.env = Some(val),
            "required" | "size" | "env" => {
                return Err(invalid(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind.as_str()
                )))
            }
            _ => return Err(invalid(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    validate(&mut m, read_only_set)?;
    Ok(m)
}

fn validate(m: &mut Mount, read_only_set: bool) -> Result<(), ParseErrorKind> {
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(invalid(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.as_str()
                )));
            }
        }
    }
    if !read_only_set {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(invalid("secret mount should not have a from".into()));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err(invalid(
                "invalid secret mount. one of source, target required".into(),
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(invalid("both source and id can't be set".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount_defaults_to_read_write() {
        let m =
            parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert!(!m.read_only);
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
    }

    #[test]
    fn bind_mount_defaults_to_read_only() {
        let m = parse_mount("target=/src,from=build,source=/out").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        assert!(!parse_mount("type=bind,target=/src,rw").unwrap().read_only);
    }

    #[test]
    fn secrets_and_errors() {
        let m = parse_mount("type=secret,id=npmrc,required,env=TOKEN").unwrap();
        assert!(m.required && m.read_only);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let size = parse_mount("type=tmpfs,target=/t,size=64m").unwrap().size;
        assert_eq!(size, Some(64 << 20));
        for bad in [
            "type=bogus,target=/x",
            "type=bind,target=/x,mode=0644",
            "type=bind,target=/x,sharing=locked",
            "type=secret,from=x,id=y",
            "type=bind,target=/x,foo",
            "type=cache,target=\"/x",
            "type=bind,target=/x,size=1m",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quoting() {
        let m = parse_mount("type=bind,\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }
}
