//! Syntax-tree nodes → typed instructions, grouped into build stages, with
//! BuildKit's validation messages.
//!
//! Words that BuildKit expands (see [`Instruction::expands_variables`]) are
//! kept as written, quotes included; the builder expands them with the
//! environment of the moment via [`Instruction::expand`].

use std::collections::HashMap;
use std::time::Duration;

use super::error::{ParseError, ParseErrorKind};
use super::expand::{EnvLookup, ExpandError, Lexer};
use super::heredoc::{parse_heredoc, Heredoc};
use super::mounts::parse_mount;
use super::node::Node;
use super::parser::Dockerfile;

/// A command line in shell form (run through the SHELL) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

impl ShellOrExec {
    fn from_node(node: &Node, args: &[String]) -> ShellOrExec {
        if node.json || args.is_empty() {
            ShellOrExec::Exec(args.to_vec())
        } else {
            ShellOrExec::Shell(args.join(" "))
        }
    }
}

/// What a RUN executes once its heredocs are taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    Exec(Vec<String>),
    /// A shell command line; heredoc bodies are appended after it as shell
    /// heredocs, so the shell sees `cmd <<EOF\nbody\nEOF`.
    Shell(String),
    /// The command was a single heredoc (`RUN <<EOF`): its body is a script
    /// file, run directly when it starts with `#!`, else by the shell.
    Script {
        name: String,
        content: String,
    },
}

/// Inline file content of COPY/ADD given as a heredoc source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The heredoc name, used as the file name.
    pub name: String,
    /// Content with leading tabs already removed for `<<-`.
    pub data: String,
    /// Whether `$VAR`s in `data` are to be expanded.
    pub expand: bool,
}

/// The common part of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySpec {
    pub srcs: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dst: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Cmd {
        test: ShellOrExec,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        /// Lower-cased stage name from `AS name`.
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        cmd: ShellOrExec,
        /// Raw `--mount` values (`type=cache,target=/x`); expand, then
        /// [`parse_mount`] each.
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Copy {
        spec: CopySpec,
        from: Option<String>,
        parents: bool,
    },
    Add {
        spec: CopySpec,
        checksum: Option<String>,
        keep_git_dir: bool,
        unpack: Option<bool>,
    },
    Workdir(String),
    User(String),
    Label(Vec<(String, String)>),
    Maintainer(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    OnBuild {
        /// The trigger as text, re-parsed when a child image builds FROM this one.
        expression: String,
        instruction: Box<Instruction>,
    },
}

impl Instruction {
    /// For RUN: the command as BuildKit executes it (see [`RunCommand`]).
    pub fn run_command(&self) -> Option<RunCommand> {
        let Instruction::Run { cmd, heredocs, .. } = self else {
            return None;
        };
        Some(match cmd {
            ShellOrExec::Exec(args) => RunCommand::Exec(args.clone()),
            ShellOrExec::Shell(line) => match heredocs.as_slice() {
                [only] if parse_heredoc(line).ok().flatten().is_some() => RunCommand::Script {
                    name: only.name.clone(),
                    content: only.chomped_content(),
                },
                docs => {
                    let mut script = line.clone();
                    for doc in docs {
                        script.push('\n');
                        script.push_str(&doc.content);
                        script.push_str(&doc.name);
                    }
                    RunCommand::Shell(script)
                }
            },
        })
    }

    /// The upper-case instruction keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Copy { .. } => "COPY",
            Instruction::Add { .. } => "ADD",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::OnBuild { .. } => "ONBUILD",
        }
    }

    /// Whether the builder expands `$VAR` in this instruction's words
    /// (BuildKit's list: ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
    /// VOLUME WORKDIR, and ARG default values). RUN/CMD/ENTRYPOINT/SHELL/
    /// HEALTHCHECK are left to the shell at run time; ONBUILD triggers are
    /// expanded when they fire; MAINTAINER is literal.
    pub fn expands_variables(&self) -> bool {
        matches!(
            self,
            Instruction::Add { .. }
                | Instruction::Copy { .. }
                | Instruction::Env(_)
                | Instruction::Expose(_)
                | Instruction::From { .. }
                | Instruction::Label(_)
                | Instruction::StopSignal(_)
                | Instruction::User(_)
                | Instruction::Volume(_)
                | Instruction::Workdir(_)
                | Instruction::Arg(_)
        )
    }

    /// Returns the instruction with its expandable words processed (variables
    /// substituted, quotes and escapes removed); others are returned unchanged.
    /// COPY/ADD heredoc bodies with unquoted terminators get variables and
    /// escapes processed but keep their quotes.
    pub fn expand(&self, env: EnvLookup<'_>, escape: char) -> Result<Instruction, ExpandError> {
        let lexer = Lexer::new(escape);
        let word = |s: &str| lexer.process_word(s, env);
        let opt = |s: &Option<String>| s.as_deref().map(word).transpose();
        let list = |v: &[String]| v.iter().map(|s| word(s)).collect::<Result<Vec<_>, _>>();
        let pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, val)| Ok((word(k)?, word(val)?)))
                .collect::<Result<Vec<_>, ExpandError>>()
        };
        let body_lexer = Lexer {
            skip_process_quotes: true,
            ..lexer
        };
        let spec = |s: &CopySpec| -> Result<CopySpec, ExpandError> {
            let inline = s
                .inline
                .iter()
                .map(|src| {
                    let data = if src.expand {
                        body_lexer.process_word(&src.data, env)?
                    } else {
                        src.data.clone()
                    };
                    Ok(InlineSource {
                        data,
                        ..src.clone()
                    })
                })
                .collect::<Result<Vec<_>, ExpandError>>()?;
            Ok(CopySpec {
                srcs: list(&s.srcs)?,
                inline,
                dst: word(&s.dst)?,
                chown: opt(&s.chown)?,
                chmod: opt(&s.chmod)?,
                exclude: list(&s.exclude)?,
                ..s.clone()
            })
        };
        Ok(match self {
            Instruction::From {
                image,
                name,
                platform,
            } => Instruction::From {
                image: word(image)?,
                name: name.clone(),
                platform: opt(platform)?,
            },
            Instruction::Env(v) => Instruction::Env(pairs(v)?),
            Instruction::Label(v) => Instruction::Label(pairs(v)?),
            Instruction::Arg(v) => Instruction::Arg(
                v.iter()
                    .map(|(k, val)| Ok((word(k)?, opt(val)?)))
                    .collect::<Result<Vec<_>, ExpandError>>()?,
            ),
            Instruction::Copy {
                spec: s,
                from,
                parents,
            } => Instruction::Copy {
                spec: spec(s)?,
                from: opt(from)?,
                parents: *parents,
            },
            Instruction::Add {
                spec: s,
                checksum,
                keep_git_dir,
                unpack,
            } => Instruction::Add {
                spec: spec(s)?,
                checksum: opt(checksum)?,
                keep_git_dir: *keep_git_dir,
                unpack: *unpack,
            },
            Instruction::Workdir(p) => Instruction::Workdir(word(p)?),
            Instruction::User(u) => Instruction::User(word(u)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(word(s)?),
            // EXPOSE splits after expansion: `EXPOSE $PORTS` may name several.
            Instruction::Expose(v) => {
                let mut ports = Vec::new();
                for p in v {
                    ports.extend(lexer.process_words(p, env)?);
                }
                Instruction::Expose(ports)
            }
            Instruction::Volume(v) => Instruction::Volume(list(v)?),
            other => other.clone(),
        })
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    /// The logical line as written (continuations joined).
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
}

impl Command {
    /// Expands like [`Instruction::expand`], reporting a failure at this
    /// command's lines.
    pub fn expand(&self, env: EnvLookup<'_>, escape: char) -> Result<Instruction, ParseError> {
        self.instruction
            .expand(env, escape)
            .map_err(|e| ParseError::at(self.start_line, self.end_line, ParseErrorKind::Lex(e)))
    }
}

/// A build stage: a FROM and the commands after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image reference as written (expand it with the global args).
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    /// Lines of the FROM instruction.
    pub start_line: usize,
    pub end_line: usize,
    pub commands: Vec<Command>,
}

/// All stages, plus the ARGs declared before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    pub global_args: Vec<Command>,
    pub stages: Vec<Stage>,
    pub escape: char,
}

impl Stages {
    /// A stage by name (names are lower-case) or by index (`"0"`).
    pub fn find(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

impl Stages {
    /// The environment FROM lines are expanded with: `predefined` (e.g.
    /// TARGETPLATFORM), then each global ARG in order, taking the build
    /// argument if given, else its default expanded with the values so far.
    /// An ARG with neither stays unset.
    pub fn global_arg_values(
        &self,
        build_args: &HashMap<String, String>,
        predefined: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, ParseError> {
        let mut values = predefined.clone();
        for command in &self.global_args {
            let Instruction::Arg(pairs) = &command.instruction else {
                continue;
            };
            for (name, default) in pairs {
                let value = match (build_args.get(name), default) {
                    (Some(given), _) => given.clone(),
                    (None, Some(default)) => {
                        let lookup = |n: &str| values.get(n).cloned();
                        Lexer::new(self.escape)
                            .process_word(default, &lookup)
                            .map_err(|e| {
                                ParseError::at(
                                    command.start_line,
                                    command.end_line,
                                    ParseErrorKind::Lex(e),
                                )
                            })?
                    }
                    (None, None) => continue,
                };
                values.insert(name.clone(), value);
            }
        }
        Ok(values)
    }

    /// A stage's base image reference and platform with global args expanded.
    pub fn expand_base(
        &self,
        stage: &Stage,
        global: &HashMap<String, String>,
    ) -> Result<(String, Option<String>), ParseError> {
        let lexer = Lexer::new(self.escape);
        let lookup = |n: &str| global.get(n).cloned();
        let at = |e| ParseError::at(stage.start_line, stage.end_line, ParseErrorKind::Lex(e));
        let base = lexer.process_word(&stage.base, &lookup).map_err(at)?;
        let platform = match &stage.platform {
            Some(p) => Some(lexer.process_word(p, &lookup).map_err(at)?),
            None => None,
        };
        if base.is_empty() {
            return Err(ParseError::at(
                stage.start_line,
                stage.end_line,
                ParseErrorKind::Invalid(format!("base name ({}) should not be blank", stage.base)),
            ));
        }
        Ok((base, platform))
    }
}

/// Converts a parsed file into stages.
pub fn parse_instructions(file: &Dockerfile) -> Result<Stages, ParseError> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &file.children {
        let at = |kind| ParseError::at(node.start_line, node.end_line, kind);
        let instruction = parse_instruction(node).map_err(at)?;
        let command = Command {
            instruction,
            original: node.original.clone(),
            start_line: node.start_line,
            end_line: node.end_line,
        };
        match (&command.instruction, stages.last_mut()) {
            (
                Instruction::From {
                    image,
                    name,
                    platform,
                },
                _,
            ) => {
                if let Some(n) = name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(at(ParseErrorKind::DuplicateStageName(n.clone())));
                    }
                }
                stages.push(Stage {
                    base: image.clone(),
                    name: name.clone(),
                    platform: platform.clone(),
                    start_line: node.start_line,
                    end_line: node.end_line,
                    commands: Vec::new(),
                });
            }
            (Instruction::Arg(_), None) => global_args.push(command),
            (_, None) => {
                return Err(at(ParseErrorKind::Invalid(
                    "no build stage in current context".into(),
                )))
            }
            (_, Some(stage)) => stage.commands.push(command),
        }
    }
    Ok(Stages {
        global_args,
        stages,
        escape: file.escape,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    Strings,
}

/// Flags of one instruction after validation against what it accepts.
struct Flags {
    values: HashMap<&'static str, Vec<String>>,
}

impl Flags {
    fn parse(raw: &[String], spec: &[(&'static str, FlagKind)]) -> Result<Flags, ParseErrorKind> {
        let mut values: HashMap<&'static str, Vec<String>> = HashMap::new();
        for arg in raw {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(ParseErrorKind::FlagWithoutDashes(arg.clone()));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                return Err(ParseErrorKind::UnknownFlag(with_suggestion(name, &known)));
            };
            let slot = values.entry(key).or_default();
            if !slot.is_empty() && kind != FlagKind::Strings {
                return Err(ParseErrorKind::DuplicateFlag(name.to_string()));
            }
            let value = match (kind, value) {
                (FlagKind::Bool, Some("")) => {
                    return Err(ParseErrorKind::MissingFlagValue(name.to_string()))
                }
                (FlagKind::Bool, None) => "true".to_string(),
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(ParseErrorKind::NotBoolean {
                            flag: name.to_string(),
                            value: v.to_string(),
                        })
                    }
                },
                (_, None) => return Err(ParseErrorKind::MissingFlagValue(name.to_string())),
                (_, Some(v)) => v.to_string(),
            };
            slot.push(value);
        }
        Ok(Flags { values })
    }

    fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }

    fn opt_bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

fn no_flags(node: &Node) -> Result<(), ParseErrorKind> {
    Flags::parse(&node.flags, &[]).map(|_| ())
}

/// The argument list BuildKit's instruction parser sees: ONBUILD's wrapped
/// instruction shows up as its name followed by its dump.
fn node_args(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for arg in &node.next {
        match arg.children.first() {
            None => out.push(arg.value.clone()),
            Some(child) => {
                out.push(child.value.clone());
                out.push(super::dump::dump_node(child));
            }
        }
    }
    out
}

fn exactly_one(keyword: &str, args: &[String]) -> Result<String, ParseErrorKind> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(ParseErrorKind::ExactlyOneArgument(keyword.into())),
    }
}

fn at_least_one(keyword: &str, args: &[String]) -> Result<(), ParseErrorKind> {
    if args.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument(keyword.into()));
    }
    Ok(())
}

/// Converts one node into an instruction.
pub fn parse_instruction(node: &Node) -> Result<Instruction, ParseErrorKind> {
    let args = node_args(node);
    let keyword = node.value.to_ascii_uppercase();
    use FlagKind::*;
    Ok(match keyword.as_str() {
        "FROM" => {
            let flags = Flags::parse(&node.flags, &[("platform", String)])?;
            let name = match args.as_slice() {
                [_] => None,
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !is_valid_stage_name(&lower) {
                        return Err(ParseErrorKind::InvalidStageName(name.clone()));
                    }
                    Some(lower)
                }
                _ => return Err(ParseErrorKind::FromArguments),
            };
            Instruction::From {
                image: args[0].clone(),
                name,
                platform: flags.string("platform"),
            }
        }
        "RUN" => {
            let flags = Flags::parse(
                &node.flags,
                &[
                    ("mount", Strings),
                    ("network", String),
                    ("security", String),
                ],
            )?;
            if args.is_empty() && node.heredocs.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument(keyword));
            }
            let mounts = flags.strings("mount");
            // Specs with variables can only be checked once expanded.
            for spec in mounts.iter().filter(|m| !m.contains('$')) {
                parse_mount(spec)?;
            }
            Instruction::Run {
                cmd: ShellOrExec::from_node(node, &args),
                mounts,
                network: flags.string("network"),
                security: flags.string("security"),
                heredocs: node.heredocs.clone(),
            }
        }
        "CMD" => {
            no_flags(node)?;
            Instruction::Cmd(ShellOrExec::from_node(node, &args))
        }
        "ENTRYPOINT" => {
            no_flags(node)?;
            Instruction::Entrypoint(ShellOrExec::from_node(node, &args))
        }
        "ENV" => {
            no_flags(node)?;
            Instruction::Env(key_value_triples(&keyword, &args)?)
        }
        "LABEL" => {
            no_flags(node)?;
            Instruction::Label(key_value_triples(&keyword, &args)?)
        }
        "ARG" => {
            no_flags(node)?;
            at_least_one(&keyword, &args)?;
            let mut pairs = Vec::with_capacity(args.len());
            for arg in &args {
                let (name, value) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (arg.as_str(), None),
                };
                if name.is_empty() {
                    return Err(ParseErrorKind::BlankNames(keyword));
                }
                pairs.push((name.to_string(), value));
            }
            Instruction::Arg(pairs)
        }
        "COPY" => {
            let flags = Flags::parse(
                &node.flags,
                &[
                    ("from", String),
                    ("chown", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("parents", Bool),
                    ("exclude", Strings),
                ],
            )?;
            Instruction::Copy {
                spec: copy_spec(&keyword, node, &args, &flags)?,
                from: flags.string("from"),
                parents: flags.bool("parents"),
            }
        }
        "ADD" => {
            let flags = Flags::parse(
                &node.flags,
                &[
                    ("chown", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("keep-git-dir", Bool),
                    ("checksum", String),
                    ("exclude", Strings),
                    ("unpack", Bool),
                ],
            )?;
            Instruction::Add {
                spec: copy_spec(&keyword, node, &args, &flags)?,
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                unpack: flags.opt_bool("unpack"),
            }
        }
        "WORKDIR" => {
            no_flags(node)?;
            Instruction::Workdir(exactly_one(&keyword, &args)?)
        }
        "USER" => {
            no_flags(node)?;
            Instruction::User(exactly_one(&keyword, &args)?)
        }
        "MAINTAINER" => {
            no_flags(node)?;
            Instruction::Maintainer(exactly_one(&keyword, &args)?)
        }
        "STOPSIGNAL" => {
            no_flags(node)?;
            Instruction::StopSignal(exactly_one(&keyword, &args)?)
        }
        "EXPOSE" => {
            no_flags(node)?;
            at_least_one(&keyword, &args)?;
            Instruction::Expose(args)
        }
        "VOLUME" => {
            no_flags(node)?;
            at_least_one(&keyword, &args)?;
            if args.iter().any(|v| v.trim().is_empty()) {
                return Err(ParseErrorKind::Invalid(
                    "VOLUME specified can not be an empty string".into(),
                ));
            }
            Instruction::Volume(args)
        }
        "SHELL" => {
            no_flags(node)?;
            at_least_one(&keyword, &args)?;
            if !node.json {
                return Err(ParseErrorKind::Invalid(
                    "SHELL requires the arguments to be in JSON form".into(),
                ));
            }
            Instruction::Shell(args)
        }
        "HEALTHCHECK" => Instruction::Healthcheck(parse_healthcheck(node, &args)?),
        "ONBUILD" => parse_onbuild(node, &args)?,
        _ => {
            return Err(ParseErrorKind::UnknownInstruction(with_suggestion(
                &node.value,
                &KEYWORDS,
            )))
        }
    })
}

const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// `word`, followed by ` (did you mean x?)` when a known name is a close
/// misspelling (case-insensitive edit distance at most a third of the
/// length, at least 1).
fn with_suggestion(word: &str, known: &[&str]) -> String {
    // Long words are never typos of a keyword, and would make the distance
    // table large.
    if word.chars().count() > 64 {
        return word.to_string();
    }
    let lower = word.to_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    let best = known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d);
    match best {
        Some((_, k)) if !lower.is_empty() => {
            let k = if word.chars().any(char::is_lowercase) {
                k.to_lowercase()
            } else {
                k.to_string()
            };
            format!("{word} (did you mean {k}?)")
        }
        _ => word.to_string(),
    }
}

/// Edit distance counting an adjacent transposition as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `^[a-z][a-z0-9-_.]*$`
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// ENV/LABEL arguments come as (key, value, separator) triples.
fn key_value_triples(
    keyword: &str,
    args: &[String],
) -> Result<Vec<(String, String)>, ParseErrorKind> {
    at_least_one(keyword, args)?;
    if args.len() % 3 != 0 {
        return Err(ParseErrorKind::TooManyArguments(keyword.into()));
    }
    args.chunks(3)
        .map(|t| {
            if t[0].is_empty() {
                Err(ParseErrorKind::BlankNames(keyword.into()))
            } else {
                Ok((t[0].clone(), t[1].clone()))
            }
        })
        .collect()
}

fn copy_spec(
    keyword: &str,
    node: &Node,
    args: &[String],
    flags: &Flags,
) -> Result<CopySpec, ParseErrorKind> {
    let Some((dst, srcs)) = args.split_last().filter(|(_, srcs)| !srcs.is_empty()) else {
        return Err(ParseErrorKind::Invalid(format!(
            "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    };
    let as_heredoc = |word: &str| {
        if node.json {
            None
        } else {
            parse_heredoc(word).ok().flatten()
        }
    };
    if as_heredoc(dst).is_some() {
        return Err(ParseErrorKind::Invalid(format!(
            "{keyword} cannot accept a heredoc as a destination"
        )));
    }
    let mut spec = CopySpec {
        dst: dst.clone(),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        exclude: flags.strings("exclude"),
        ..CopySpec::default()
    };
    for src in srcs {
        match as_heredoc(src) {
            Some(marker) => {
                let body = node.heredocs.iter().find(|h| h.name == marker.name);
                let data = body.map(Heredoc::chomped_content).unwrap_or_default();
                spec.inline.push(InlineSource {
                    name: marker.name,
                    data,
                    expand: marker.expand,
                });
            }
            None => spec.srcs.push(src.clone()),
        }
    }
    Ok(spec)
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Healthcheck, ParseErrorKind> {
    let Some((typ, rest)) = args.split_first() else {
        return Err(ParseErrorKind::AtLeastOneArgument("HEALTHCHECK".into()));
    };
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        no_flags(node)?;
        if !rest.is_empty() {
            return Err(ParseErrorKind::Invalid(
                "HEALTHCHECK NONE takes no arguments".into(),
            ));
        }
        return Ok(Healthcheck::None);
    }
    use FlagKind::String;
    let flags = Flags::parse(
        &node.flags,
        &[
            ("interval", String),
            ("timeout", String),
            ("start-period", String),
            ("start-interval", String),
            ("retries", String),
        ],
    )?;
    if typ != "CMD" {
        return Err(ParseErrorKind::Invalid(format!(
            "Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"
        )));
    }
    if rest.is_empty() {
        return Err(ParseErrorKind::Invalid(
            "Missing command after HEALTHCHECK CMD".into(),
        ));
    }
    let interval = |name: &str| -> Result<Option<Duration>, ParseErrorKind> {
        let Some(value) = flags.string(name) else {
            return Ok(None);
        };
        let d = parse_go_duration(&value).map_err(|reason| ParseErrorKind::InvalidFlagValue {
            flag: name.into(),
            value: value.clone(),
            reason,
        })?;
        if d.is_zero() {
            return Ok(None);
        }
        if d < Duration::from_millis(1) {
            return Err(ParseErrorKind::Invalid(format!(
                "Interval \"{name}\" cannot be less than 1ms"
            )));
        }
        Ok(Some(d))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| ParseErrorKind::InvalidFlagValue {
                    flag: "retries".into(),
                    value: v.clone(),
                    reason: "must be a non-negative integer".into(),
                })?,
        ),
    };
    Ok(Healthcheck::Cmd {
        test: ShellOrExec::from_node(node, rest),
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

fn parse_onbuild(node: &Node, args: &[String]) -> Result<Instruction, ParseErrorKind> {
    no_flags(node)?;
    let Some(inner) = node.next.first().and_then(|n| n.children.first()) else {
        return Err(ParseErrorKind::AtLeastOneArgument("ONBUILD".into()));
    };
    let trigger = args
        .first()
        .map(|a| a.trim().to_ascii_uppercase())
        .unwrap_or_default();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(ParseErrorKind::Invalid(
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
            ))
        }
        "MAINTAINER" | "FROM" => {
            return Err(ParseErrorKind::Invalid(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )))
        }
        _ => {}
    }
    let instruction = parse_instruction(inner)?;
    let trimmed = node.original.trim_start();
    let mut expression = trimmed
        .get(..7)
        .filter(|kw| kw.eq_ignore_ascii_case("onbuild"))
        .map_or(trimmed, |_| trimmed[7..].trim_start())
        .to_string();
    for heredoc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    Ok(Instruction::OnBuild {
        expression,
        instruction: Box::new(instruction),
    })
}

/// Go's `time.ParseDuration` for the unsigned case: `1h30m`, `1.5s`, `300ms`.
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') || s.starts_with('+') {
        return Err("invalid duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit in duration {s:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn stages(text: &str) -> Result<Stages, ParseError> {
        parse_instructions(&parse(text)?)
    }

    fn only(text: &str) -> Instruction {
        let s = stages(&format!("FROM scratch\n{text}")).unwrap();
        s.stages[0].commands[0].instruction.clone()
    }

    #[test]
    fn stages_and_global_args() {
        let s = stages(
            "ARG V=1\nfrom node:16 as Builder\nRUN make\nFROM alpine\nCOPY --from=builder /a /b\n",
        )
        .unwrap();
        assert_eq!(s.global_args.len(), 1);
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].name.as_deref(), Some("builder"));
        assert_eq!(s.stages[0].base, "node:16");
        assert!(s.find("BUILDER").is_some());
        assert_eq!(s.find("1").unwrap().base, "alpine");
        match &s.stages[1].commands[0].instruction {
            Instruction::Copy { from, spec, .. } => {
                assert_eq!(from.as_deref(), Some("builder"));
                assert_eq!(spec.srcs, ["/a"]);
                assert_eq!(spec.dst, "/b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_args_expand_from() {
        let s = stages(
            "ARG REG=docker.io\nARG IMAGE=${REG}/library/alpine\nARG TAG\nFROM --platform=$TARGETPLATFORM $IMAGE:${TAG:-3.20}\n",
        )
        .unwrap();
        let predefined = HashMap::from([("TARGETPLATFORM".to_string(), "linux/arm64".to_string())]);
        let global = s.global_arg_values(&HashMap::new(), &predefined).unwrap();
        assert!(!global.contains_key("TAG"));
        let (base, platform) = s.expand_base(&s.stages[0], &global).unwrap();
        assert_eq!(base, "docker.io/library/alpine:3.20");
        assert_eq!(platform.as_deref(), Some("linux/arm64"));

        let build_args = HashMap::from([("REG".to_string(), "example.org".to_string())]);
        let global = s.global_arg_values(&build_args, &HashMap::new()).unwrap();
        assert_eq!(
            s.expand_base(&s.stages[0], &global).unwrap().0,
            "example.org/library/alpine:3.20"
        );

        let s = stages("ARG B\nFROM $B\n").unwrap();
        let err = s.expand_base(&s.stages[0], &HashMap::new()).unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn validation_errors_carry_lines() {
        let err = stages("FROM a\n\nWORKDIR\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:3: WORKDIR requires exactly one argument"
        );
        let err = stages("FROM a\nCOPY --bogus=1 a b\n").unwrap_err();
        assert_eq!(err.to_string(), "Dockerfile:2: unknown flag: bogus");
        let err = stages("RUN x\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = stages("FROM a AS 1x\n").unwrap_err();
        assert!(matches!(err.kind, ParseErrorKind::InvalidStageName(_)));
        let err = stages("FROM a\nFOO bar\n").unwrap_err();
        assert_eq!(err.to_string(), "Dockerfile:2: unknown instruction: FOO");
        let err = stages("FROM a\nWORKDIRR /x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:2: unknown instruction: WORKDIRR (did you mean WORKDIR?)"
        );
        let err = stages("FROM a\nCOPY --chwon=1 a b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:2: unknown flag: chwon (did you mean chown?)"
        );
        let err = stages("FROM a\nCOPY onlyone\n").unwrap_err();
        assert!(err
            .to_string()
            .contains("Destination could not be determined"));
        let err = stages("FROM a AS x\nFROM b AS X\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = stages("FROM a\nRUN --mount=type=bogus,target=/x make\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:2: unsupported mount type \"bogus\""
        );
        let err = stages("FROM a\nCOPY --link=maybe a b\n").unwrap_err();
        assert!(matches!(err.kind, ParseErrorKind::NotBoolean { .. }));
    }

    #[test]
    fn run_forms_and_flags() {
        match only("RUN --mount=type=cache,target=/c --network=none [\"a\", \"b\"]") {
            Instruction::Run {
                cmd,
                mounts,
                network,
                ..
            } => {
                assert_eq!(cmd, ShellOrExec::Exec(vec!["a".into(), "b".into()]));
                assert_eq!(mounts, ["type=cache,target=/c"]);
                assert_eq!(network.as_deref(), Some("none"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(only("CMD echo hi"), Instruction::Cmd(ShellOrExec::Shell(s)) if s == "echo hi")
        );
    }

    #[test]
    fn run_heredoc_forms() {
        let script = only("RUN <<-EOF\n\t#!/usr/bin/env python3\n\tprint(1)\nEOF\n");
        assert_eq!(
            script.run_command(),
            Some(RunCommand::Script {
                name: "EOF".into(),
                content: "#!/usr/bin/env python3\nprint(1)\n".into()
            })
        );
        let shell = only("RUN cat <<A > /a && cat <<B > /b\none\nA\ntwo\nB\n");
        assert_eq!(
            shell.run_command(),
            Some(RunCommand::Shell(
                "cat <<A > /a && cat <<B > /b\none\nA\ntwo\nB".into()
            ))
        );
        assert_eq!(
            only("RUN [\"a\"]").run_command(),
            Some(RunCommand::Exec(vec!["a".into()]))
        );
        assert_eq!(only("CMD x").run_command(), None);
    }

    #[test]
    fn copy_heredoc_becomes_inline_source() {
        match only("COPY <<-EOF /etc/motd\n\thello $USER\n\tEOF\n") {
            Instruction::Copy { spec, .. } => {
                assert!(spec.srcs.is_empty());
                assert_eq!(spec.inline.len(), 1);
                assert_eq!(spec.inline[0].data, "hello $USER\n");
                assert!(spec.inline[0].expand);
                assert_eq!(spec.dst, "/etc/motd");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_and_arg_expand() {
        let env_i = only("ENV A=\"x y\" B=$HOME/bin");
        let lookup = |n: &str| (n == "HOME").then(|| "/root".to_string());
        assert!(env_i.expands_variables());
        assert_eq!(
            env_i.expand(&lookup, '\\').unwrap(),
            Instruction::Env(vec![
                ("A".into(), "x y".into()),
                ("B".into(), "/root/bin".into())
            ])
        );
        assert_eq!(only("ARG X"), Instruction::Arg(vec![("X".into(), None)]));
        let run = only("RUN echo $HOME");
        assert!(!run.expands_variables());
        assert_eq!(run.expand(&lookup, '\\').unwrap(), run);
    }

    #[test]
    fn expansion_errors_carry_lines() {
        let s = stages("FROM a\n\nENV A=\"unterminated\n").unwrap();
        let err = s.stages[0].commands[0].expand(&|_| None, '\\').unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().contains("matching double-quote"), "{err}");
    }

    #[test]
    fn deeply_nested_substitution_in_a_dockerfile_is_bounded() {
        let depth = 10_000;
        let text = format!(
            "FROM a\nENV X={}v{}\n",
            "${a:-".repeat(depth),
            "}".repeat(depth)
        );
        let s = stages(&text).unwrap();
        let err = s.stages[0].commands[0].expand(&|_| None, '\\').unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn copy_heredoc_and_expose_expansion() {
        let lookup = |n: &str| match n {
            "NAME" => Some("world".to_string()),
            "PORTS" => Some("80 443/tcp".to_string()),
            _ => None,
        };
        let copy = only("COPY <<EOF <<'RAW' /dst/\nhi \"$NAME\"\nEOF\nhi $NAME\nRAW\n");
        match copy.expand(&lookup, '\\').unwrap() {
            Instruction::Copy { spec, .. } => {
                assert_eq!(spec.inline[0].data, "hi \"world\"\n");
                assert_eq!(spec.inline[1].data, "hi $NAME\n");
            }
            other => panic!("{other:?}"),
        }
        let expose = only("EXPOSE $PORTS 8080");
        assert_eq!(
            expose.expand(&lookup, '\\').unwrap(),
            Instruction::Expose(vec!["80".into(), "443/tcp".into(), "8080".into()])
        );
    }

    #[test]
    fn healthcheck_forms() {
        assert_eq!(
            only("HEALTHCHECK NONE"),
            Instruction::Healthcheck(Healthcheck::None)
        );
        match only("HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/") {
            Instruction::Healthcheck(Healthcheck::Cmd {
                test,
                interval,
                retries,
                ..
            }) => {
                assert_eq!(test, ShellOrExec::Shell("curl -f http://x/".into()));
                assert_eq!(interval, Some(Duration::from_secs(90)));
                assert_eq!(retries, Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(stages("FROM a\nHEALTHCHECK --interval=10 CMD x\n").is_err());
        assert!(stages("FROM a\nHEALTHCHECK CONNECT TCP 7000\n").is_err());
    }

    #[test]
    fn onbuild_wraps_and_rejects_chains() {
        match only("ONBUILD RUN echo hi") {
            Instruction::OnBuild {
                expression,
                instruction,
            } => {
                assert_eq!(expression, "RUN echo hi");
                assert_eq!(instruction.keyword(), "RUN");
            }
            other => panic!("{other:?}"),
        }
        assert!(stages("FROM a\nONBUILD ONBUILD RUN x\n").is_err());
        assert!(stages("FROM a\nONBUILD FROM x\n").is_err());
    }

    #[test]
    fn shell_requires_json() {
        assert_eq!(
            only("SHELL [\"/bin/bash\", \"-c\"]"),
            Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert!(stages("FROM a\nSHELL /bin/bash -c\n").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("1h2m").unwrap(),
            Duration::from_secs(3720)
        );
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("-1s").is_err());
    }
}
