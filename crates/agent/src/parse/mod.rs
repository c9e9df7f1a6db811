//! Parsers for the exact text Apple's command-line tools print (tokens doc §1.8).
//!
//! Every parser takes the tool's captured output as `&str`, refuses input over [`MAX_INPUT`] bytes, and
//! returns a typed [`ParseError`] on anything it does not recognise. None of them panics on any input; the
//! hostile-input tests in each module hold them to that. Error messages quote at most [`QUOTE_LIMIT`]
//! characters of the offending line, with control characters replaced, so a parser error can be logged.

pub mod diskutil;
pub mod dscl;
pub mod fdesetup;
pub mod profiles;
pub mod sysadminctl;

/// Largest tool output a parser accepts (1 MiB); real outputs are a few kilobytes.
pub const MAX_INPUT: usize = 1024 * 1024;
/// How many characters of an unrecognised line an error quotes.
pub const QUOTE_LIMIT: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{tool} printed nothing")]
    Empty { tool: &'static str },
    #[error("{tool} output is {len} bytes, over the {limit}-byte limit")]
    Oversized {
        tool: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{tool} output not recognised: {line:?}")]
    Unrecognized { tool: &'static str, line: String },
    #[error("{tool} output is cut short: {what}")]
    Truncated {
        tool: &'static str,
        what: &'static str,
    },
    #[error("{tool} reported an error: {message:?}")]
    ToolError { tool: &'static str, message: String },
}

/// Refuses empty and oversized input; returns the text otherwise.
pub(crate) fn guard<'a>(tool: &'static str, text: &'a str) -> Result<&'a str, ParseError> {
    if text.len() > MAX_INPUT {
        return Err(ParseError::Oversized {
            tool,
            len: text.len(),
            limit: MAX_INPUT,
        });
    }
    if text.trim().is_empty() {
        return Err(ParseError::Empty { tool });
    }
    Ok(text)
}

/// A short, printable quote of a line for an error message.
pub(crate) fn quote(line: &str) -> String {
    line.chars()
        .take(QUOTE_LIMIT)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

pub(crate) fn unrecognized(tool: &'static str, line: &str) -> ParseError {
    ParseError::Unrecognized {
        tool,
        line: quote(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_long_lines_and_replaces_control_characters() {
        let q = quote(&format!("a\u{1b}[31m{}", "x".repeat(500)));
        assert_eq!(q.chars().count(), QUOTE_LIMIT);
        assert!(q.starts_with("a\u{fffd}[31m"));
    }

    #[test]
    fn guard_refuses_empty_whitespace_and_oversized_input() {
        assert_eq!(guard("t", " \n\t"), Err(ParseError::Empty { tool: "t" }));
        let big = "a".repeat(MAX_INPUT + 1);
        assert!(matches!(
            guard("t", &big),
            Err(ParseError::Oversized { .. })
        ));
        assert_eq!(guard("t", "ok"), Ok("ok"));
    }
}
