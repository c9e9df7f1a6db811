//! Long jobs from the command line: many devices named on the command line, in a file (`-` for standard input)
//! or by group, sent to the API in batches; paging through every device; progress on stderr. Progress bars
//! are hidden with `--json` and whenever stderr is not a terminal (indicatif draws only to a terminal), so
//! scripts and logs see only the result.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use apitypes::DevicePage;

use crate::admin::enc;
use crate::admin::typed::{self, Typed};
use crate::client::ServerArgs;

/// Longest device id accepted from a file or the command line (enrollment ids are UDIDs, well under this).
pub const MAX_ID_LEN: usize = 255;
/// Largest id file read (about 300,000 UDIDs).
pub const MAX_ID_FILE: u64 = 16 << 20;
/// The API's page and batch limit.
pub const API_MAX: u32 = 1000;

/// Which devices a bulk command is for: any mix of ids, a file of ids and a group.
#[derive(clap::Args, Debug)]
pub struct Targets {
    /// Device ids (UDIDs).
    pub devices: Vec<String>,
    /// Read device ids from FILE, one per line (`-` reads standard input); blank lines and lines starting
    /// with `#` are skipped.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Every device of this group (its id; see `escrowd groups list`).
    #[arg(long, value_name = "GROUP_ID")]
    pub group: Option<String>,
    /// Devices per API call (1-1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
}

/// A progress bar of `len` steps on stderr, or a hidden one.
pub fn bar(len: u64, hidden: bool, template: &str) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A spinner with a count (the total is not known ahead) on stderr, or a hidden one.
pub fn spinner(hidden: bool, template: &str) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Checks one device id; the error says what is wrong with it.
fn check_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_LEN {
        return Err(format!("an id longer than {MAX_ID_LEN} characters"));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{:?} holds a space or control character",
            id.chars().take(60).collect::<String>()
        ));
    }
    Ok(())
}

/// Device ids from the text of an id file: one a line, blank lines and `#` comments skipped. The first bad
/// line is an error naming `source` and the line number; nothing is sent then.
pub fn parse_ids(text: &str, source: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        if let Err(why) = check_id(id) {
            bail!(
                "{source} line {}: {why}; put one device id (UDID) per line",
                n + 1
            );
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

fn read_id_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut bytes = Vec::new();
    let (source, read) = if path == Path::new("-") {
        (
            "standard input".to_string(),
            std::io::stdin()
                .lock()
                .take(MAX_ID_FILE + 1)
                .read_to_end(&mut bytes),
        )
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open --from-file {}", path.display()))?;
        (
            path.display().to_string(),
            file.take(MAX_ID_FILE + 1).read_to_end(&mut bytes),
        )
    };
    read.with_context(|| format!("reading {source}"))?;
    if bytes.len() as u64 > MAX_ID_FILE {
        bail!(
            "{source} is larger than {} MiB: split it and run once per part",
            MAX_ID_FILE >> 20
        );
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("{source} is not UTF-8 text: put one device id (UDID) per line")
    })?;
    parse_ids(&text, &source)
}

/// Every device the API lists for `query` (filters without paging), page by page ([`API_MAX`] at a time),
/// counted on `progress`: `each` gets every page as it arrives (read as [`DevicePage`], with the answer as
/// sent) and the pages are not kept, so listing a fleet of any size holds one page at a time.
pub async fn each_device_page<F>(
    server: &ServerArgs,
    query: &[String],
    progress: &ProgressBar,
    mut each: F,
) -> anyhow::Result<()>
where
    F: FnMut(Typed<DevicePage>) -> anyhow::Result<()>,
{
    let mut after: Option<String> = None;
    loop {
        let mut q = query.to_vec();
        q.push(format!("limit={API_MAX}"));
        if let Some(a) = &after {
            q.push(format!("after={}", enc(a)));
        }
        let page: Typed<DevicePage> =
            typed::get(server, &format!("/api/v1/devices?{}", q.join("&"))).await?;
        let next = page.value.next.clone();
        progress.inc(page.value.devices.len() as u64);
        each(page)?;
        match next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Sends `ids` in batches of `size`, one `send` (an API call) each, with a progress bar on stderr, and returns
/// each batch's answer. A failed call ends the run; the error says how many devices earlier batches already
/// covered (`verbs`: what the bar shows, what the error says), so a re-run can pick up the rest.
pub async fn in_batches<F, Fut>(
    server: &ServerArgs,
    ids: &[String],
    size: u32,
    verbs: (&str, &str),
    mut send: F,
) -> anyhow::Result<Vec<Value>>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let (doing, done_word) = verbs;
    let batches: Vec<&[String]> = ids.chunks(size.max(1) as usize).collect();
    let progress = bar(
        ids.len() as u64,
        server.json,
        &format!("{doing} {{bar:40}} {{pos}}/{{len}} devices ({{eta}})"),
    );
    let mut answers = Vec::with_capacity(batches.len());
    let mut done = 0;
    for (i, batch) in batches.iter().enumerate() {
        match send(batch.to_vec()).await {
            Ok(answer) => answers.push(answer),
            Err(e) if batches.len() == 1 => {
                progress.abandon();
                return Err(e);
            }
            Err(e) => {
                progress.abandon();
                bail!(
                    "batch {} of {} failed: {e:#}. {done} of {} devices were {done_word} before it; nothing was \
                     sent for the other {}. Fix the cause and re-run for those.",
                    i + 1,
                    batches.len(),
                    ids.len(),
                    ids.len() - done
                );
            }
        }
        done += batch.len();
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    Ok(answers)
}

impl Targets {
    /// The ids named, read and listed, in that order, each once. Bad ids, an unreadable file or an unknown
    /// group are errors before anything is sent.
    pub async fn resolve(&self, server: &ServerArgs) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for id in &self.devices {
            if let Err(why) = check_id(id) {
                bail!("device id: {why}");
            }
            ids.push(id.clone());
        }
        if let Some(path) = &self.from_file {
            let from_file = read_id_file(path)?;
            if from_file.is_empty() {
                bail!(
                    "{} holds no device ids: put one UDID per line",
                    path.display()
                );
            }
            ids.extend(from_file);
        }
        if let Some(group) = &self.group {
            let listing = spinner(server.json, "{spinner} listing group devices: {pos}");
            // Only the ids are kept, not the listed devices.
            let mut members = 0usize;
            let listed = each_device_page(
                server,
                &[format!("group={}", enc(group))],
                &listing,
                |page| {
                    members += page.value.devices.len();
                    ids.extend(page.value.devices.into_iter().map(|d| d.id));
                    Ok(())
                },
            )
            .await;
            listing.finish_and_clear();
            listed.with_context(|| format!("listing the devices of group {group}"))?;
            if members == 0 {
                bail!("group {group} has no devices");
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        if ids.is_empty() {
            bail!(
                "no devices: name UDIDs, or use --from-file FILE (one UDID per line, - for standard input) or \
                 --group GROUP_ID"
            );
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_files_skip_blanks_and_comments_and_trim() {
        let ids = parse_ids("A\n\n  B  \r\n# note\nC", "f").unwrap();
        assert_eq!(ids, ["A", "B", "C"]);
        assert!(parse_ids("", "f").unwrap().is_empty());
    }

    #[test]
    fn a_bad_line_is_named_by_number_and_nothing_is_returned() {
        let e = parse_ids("A\nB C\n", "ids.txt").unwrap_err().to_string();
        assert!(e.starts_with("ids.txt line 2:"), "{e}");
        assert!(e.contains("one device id"), "{e}");
        let long = format!("A\n{}\n", "x".repeat(MAX_ID_LEN + 1));
        let e = parse_ids(&long, "f").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("longer"), "{e}");
        let e = parse_ids("A\u{0}B\n", "f").unwrap_err().to_string();
        assert!(e.contains("control"), "{e}");
    }

    #[test]
    fn an_oversized_or_binary_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.txt");
        std::fs::write(&big, vec![b'A'; (MAX_ID_FILE + 1) as usize]).unwrap();
        let e = read_id_file(&big).unwrap_err().to_string();
        assert!(e.contains("split it"), "{e}");
        let bin = dir.path().join("bin.txt");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        let e = read_id_file(&bin).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = read_id_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot open --from-file"), "{e}");
    }
}
