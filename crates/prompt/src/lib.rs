//! prompt: reading a password from a person: the terminal with echo off when stdin is one, else one line of stdin
//! (automation, tests). The line goes straight into a [`Secret`]. Shared by the `escrowd` CLI and the Mac
//! agent so there is one place where a typed password enters the process.

use std::io::{BufRead, IsTerminal, Write};

use rustix::termios::{LocalModes, OptionalActions};

use vault::Secret;

/// Reads one password; `None` when stdin ends before a line. `message` goes to stderr first (and a newline
/// after the answer, since the typed Enter is not echoed) when stdin is a terminal, or always with
/// `prompt_when_piped`.
pub fn read_password(
    message: &str,
    prompt_when_piped: bool,
) -> std::io::Result<Option<Secret<String>>> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let prompt = interactive || prompt_when_piped;
    if prompt {
        eprint!("{message} ");
        std::io::stderr().flush()?;
    }
    let saved = if interactive {
        let saved = rustix::termios::tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, OptionalActions::Now, &saved);
    }
    if prompt {
        eprintln!();
    }
    let line = Secret::new(line);
    if read? == 0 {
        return Ok(None);
    }
    Ok(Some(Secret::new(
        line.expose().trim_end_matches(['\n', '\r']).to_string(),
    )))
}
