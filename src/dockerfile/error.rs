//! The one error type of the Dockerfile module: what went wrong, and on which lines.

use super::expand::ExpandError;

/// A Dockerfile that cannot be parsed or turned into instructions.
///
/// `line`/`end_line` are 1-based and span the instruction at fault (equal for
/// single-line problems; 0 when the file has no lines at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub end_line: usize,
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn at(line: usize, end_line: usize, kind: ParseErrorKind) -> Self {
        ParseError {
            line,
            end_line,
            kind,
        }
    }
}

/// The messages follow BuildKit's wording so users can search for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("file with no instructions")]
    NoInstructions,
    #[error("dockerfile line greater than max allowed size of {max}")]
    LineTooLong { max: usize },
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    #[error("{0} must have two arguments")]
    NeedsTwoArguments(String),
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    #[error("{0}")]
    Lex(ExpandError),
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(String),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(String),
    #[error("{0} requires at least two arguments")]
    AtLeastTwoArguments(String),
    #[error("{0} names can not be blank")]
    BlankNames(String),
    #[error("Bad input to {0}, too many arguments")]
    TooManyArguments(String),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    #[error("duplicate stage name {0:?}")]
    DuplicateStageName(String),
    #[error("{0} instruction must come after a FROM instruction")]
    NoStage(String),
    #[error("arg should start with -- : {0}")]
    FlagWithoutDashes(String),
    #[error("unknown flag: {0}")]
    UnknownFlag(String),
    #[error("duplicate flag specified: {0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: {0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    NotBoolean { flag: String, value: String },
    #[error("invalid {flag} value {value:?}: {reason}")]
    InvalidFlagValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}
