//! Pseudo-terminal and session plumbing for [`crate::tools`].
//!
//! Why a pty: `profiles install -type bootstraptoken` asks for the admin's name and password interactively
//! (tokens doc §1.8), and password prompts read the controlling terminal, not stdin. The child gets a new
//! session whose controlling terminal is a fresh pty with echo off, so a password typed at a prompt is never
//! echoed into the transcript.
//!
//! Why rustix: it is already in the dependency tree (through tempfile), exposes `openpt`/`grantpt`/`unlockpt`/
//! `ptsname`, termios and `setsid`/`TIOCSCTTY` as thin syscall wrappers, and adds no crate. `portable-pty`
//! would pull in a dozen crates for the same three syscalls; `nix` would be a second libc binding.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{LocalModes, OptionalActions};

use crate::tools::{Answer, Reply, Tool, ToolError, Tools};

const POLL: Duration = Duration::from_millis(10);

/// Makes the child the leader of a new session (and so of a new process group): it has no controlling
/// terminal to read a password from behind our back, and a timeout can kill it with all its children.
#[allow(unsafe_code)]
pub(crate) fn own_session(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes the async-signal-safe setsid syscall.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
}

/// Like [`own_session`], and makes the pty on stdin the controlling terminal.
#[allow(unsafe_code)]
fn own_session_with_tty(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: as above; TIOCSCTTY on fd 0 is a single async-signal-safe ioctl.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
}

/// Kills the child's whole process group (the child leads its own session).
pub(crate) fn kill_group(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    if rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_err() {
        let _ = child.kill();
    }
}

fn pty_err(tool: Tool) -> impl Fn(std::io::Error) -> ToolError {
    move |source| ToolError::Pty {
        tool: tool.name(),
        source,
    }
}

fn open_pty(tool: Tool) -> Result<(OwnedFd, OwnedFd), ToolError> {
    let err = pty_err(tool);
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).map_err(|e| err(e.into()))?;
    rustix::pty::grantpt(&master).map_err(|e| err(e.into()))?;
    rustix::pty::unlockpt(&master).map_err(|e| err(e.into()))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(|e| err(e.into()))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let mut termios = rustix::termios::tcgetattr(&slave).map_err(|e| err(e.into()))?;
    termios
        .local_modes
        .remove(LocalModes::ECHO | LocalModes::ECHONL);
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios)
        .map_err(|e| err(e.into()))?;
    Ok((master, slave))
}

/// Runs `program` on a new pty, answering `answers` in order. Returns (exit code, transcript, truncated).
pub(crate) fn run(
    tools: &Tools,
    tool: Tool,
    program: &Path,
    args: &[&str],
    answers: &[Answer<'_>],
) -> Result<(Option<i32>, String, bool), ToolError> {
    let err = pty_err(tool);
    let (master, slave) = open_pty(tool)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::from(slave.try_clone().map_err(&err)?))
        .stdout(Stdio::from(slave.try_clone().map_err(&err)?))
        .stderr(Stdio::from(slave));
    own_session_with_tty(&mut command);
    let mut child = command.spawn().map_err(|source| ToolError::Spawn {
        tool: tool.name(),
        source,
    })?;
    drop(command); // closes our copies of the slave, so the master sees EOF/EIO when the tool is done

    let mut writer = std::fs::File::from(master.try_clone().map_err(&err)?);
    let mut reader = std::fs::File::from(master);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let cap = tools.output_cap;
    let mut transcript: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut next_answer = 0;
    let mut answered_at = 0; // transcript offset after the last answered prompt
    let deadline = Instant::now() + tools.timeout;
    let mut exit: Option<Option<i32>> = None;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(chunk) => {
                let room = cap.saturating_sub(transcript.len());
                truncated |= chunk.len() > room;
                transcript.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if exit.is_none() {
                    exit = Some(tools.wait(tool, &mut child)?);
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(answer) = answers.get(next_answer) {
            let fresh = String::from_utf8_lossy(&transcript[answered_at..]).to_lowercase();
            if fresh.contains(&answer.prompt.to_lowercase()) {
                let mut line: Vec<u8> = match answer.reply {
                    Reply::Text(t) => t.as_bytes().to_vec(),
                    Reply::Secret(s) => s.expose().as_bytes().to_vec(),
                };
                line.push(b'\n');
                let line = vault::Secret::new(line);
                let _ = writer.write_all(line.expose());
                next_answer += 1;
                answered_at = transcript.len();
            }
        }
        if exit.is_none() {
            match child.try_wait() {
                Ok(Some(status)) => exit = Some(status.code()),
                Ok(None) => {}
                Err(_) => exit = Some(None),
            }
        }
        if Instant::now() >= deadline {
            if exit.is_none() {
                kill_group(&mut child);
                let _ = child.wait();
                return Err(ToolError::TimedOut {
                    tool: tool.name(),
                    seconds: tools.timeout.as_secs(),
                });
            }
            break; // exited, but something still holds the terminal open: keep what we have
        }
    }
    let code = exit.unwrap_or(None);
    Ok((
        code,
        String::from_utf8_lossy(&transcript).into_owned(),
        truncated,
    ))
}
