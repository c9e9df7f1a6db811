//! Asking a person for a password: a no-echo terminal prompt, or a native dialog through `osascript`.
//!
//! The password is read straight into a `Secret`; it never appears on a command line (`osascript` gets the
//! dialog's text in argv and hands the answer back on its stdout).

use vault::Secret;

use crate::tools::{Tool, Tools};

/// The screens of the self-service escrow flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Welcome,
    Success,
    Failure,
}

pub trait Prompter {
    fn show(&mut self, screen: Screen, message: &str);
    /// `None` when the person cancels (or input ends).
    fn ask_password(&mut self, message: &str) -> Option<Secret<String>>;
}

/// Messages on stderr; passwords from the terminal with echo off, or one line per password from stdin when
/// stdin is not a terminal (automation, tests).
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn show(&mut self, screen: Screen, message: &str) {
        let tag = match screen {
            Screen::Welcome => "",
            Screen::Success => "✔ ",
            Screen::Failure => "✘ ",
        };
        eprintln!("{tag}{message}");
    }

    fn ask_password(&mut self, message: &str) -> Option<Secret<String>> {
        read_password(message).ok().flatten()
    }
}

/// Reads one password (see [`::prompt::read_password`]); the prompt shows even when stdin is piped.
pub fn read_password(message: &str) -> std::io::Result<Option<Secret<String>>> {
    ::prompt::read_password(message, true)
}

/// Native dialogs through `osascript` (macOS).
pub struct DialogPrompter {
    pub tools: Tools,
    pub title: String,
}

fn applescript_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

impl Prompter for DialogPrompter {
    fn show(&mut self, screen: Screen, message: &str) {
        let icon = match screen {
            Screen::Failure => "caution",
            _ => "note",
        };
        let script = format!(
            "display dialog {} with title {} buttons {{\"OK\"}} default button \"OK\" with icon {icon}",
            applescript_string(message),
            applescript_string(&self.title)
        );
        let _ = self.tools.run(Tool::Osascript, &["-e", &script]);
    }

    fn ask_password(&mut self, message: &str) -> Option<Secret<String>> {
        let script = format!(
            "text returned of (display dialog {} with title {} default answer \"\" with hidden answer buttons {{\"Cancel\", \"OK\"}} default button \"OK\")",
            applescript_string(message),
            applescript_string(&self.title)
        );
        let out = self.tools.run(Tool::Osascript, &["-e", &script]).ok()?;
        let answer = Secret::new(out.stdout);
        if out.code != Some(0) {
            return None; // Cancel exits non-zero
        }
        Some(Secret::new(
            answer.expose().trim_end_matches(['\n', '\r']).to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applescript_strings_escape_quotes_backslashes_and_drop_control_characters() {
        assert_eq!(applescript_string("a\"b\\c\u{7}d"), "\"a\\\"b\\\\cd\"");
    }
}
