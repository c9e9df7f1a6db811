//! `escrowd devices | device | users | commands | events | groups | command | push | report`: the admin API from the
//! command line. Tables by default, `--json` for scripts; errors carry the server's message and what to do.
//!
//! One file per command family: [`devices`] (devices, device, users, commands, clear-token), [`groups`] (groups,
//! events), [`enqueue`] (command, push, report). Answers are read into the shared `apitypes` types ([`typed`]);
//! the helpers here are the shared table and time formatting.

mod devices;
mod enqueue;
mod groups;
pub(crate) mod typed;

pub(crate) use devices::clear_token;
pub use devices::{CommandsArgs, DeviceCmdArgs, DevicesArgs, commands, device, devices, users};
pub use enqueue::{CommandArgs, PushArgs, ReportArgs, command, push, report};
pub use groups::{EventsArgs, GroupsCommand, events, groups};

use clap::Args;
use comfy_table::Table;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::client::ServerArgs;

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(rows: &[Value], cols: &[(&str, &str)]) -> Table {
    let mut t = Table::new();
    t.set_header(cols.iter().map(|(h, _)| *h));
    for r in rows {
        t.add_row(
            cols.iter()
                .map(|(_, ptr)| text(r.pointer(ptr).unwrap_or(&Value::Null))),
        );
    }
    t
}

pub(crate) fn print(server: &ServerArgs, v: &Value, rows: &str, cols: &[(&str, &str)]) {
    if server.json {
        println!("{v}");
    } else {
        let empty = Vec::new();
        let list = v.pointer(rows).and_then(Value::as_array).unwrap_or(&empty);
        println!("{}", table(list, cols));
    }
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    id: String,
}

impl DeviceArgs {
    pub(crate) fn parts(&self) -> (&ServerArgs, &str) {
        (&self.server, &self.id)
    }
}

/// A Unix-ms time as `2026-12-03 (in 12 days)` relative to now; `-` for none.
pub(crate) fn when_or_dash(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), when)
}

fn when(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let days = (ms - now) / 86_400_000;
    let rel = match days {
        0 if ms >= now => "today".to_string(),
        0 => "today, past".to_string(),
        d if d > 0 => format!("in {d} days"),
        d => format!("{} days ago", -d),
    };
    let date = chrono_like(ms);
    format!("{date} ({rel})")
}

/// `YYYY-MM-DD` of a Unix-ms time (UTC), without a date library.
fn chrono_like(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}
