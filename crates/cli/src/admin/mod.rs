//! `escrowd devices | device | users | commands | events | groups | command | push | report`: the admin API from the
//! command line. Tables by default, `--json` for scripts; errors carry the server's message and what to do.
//!
//! One file per command family: [`devices`](mod@devices) (devices, device, users, commands, clear-token), [`groups`](mod@groups) (groups,
//! events), [`enqueue`] (command, push, report). Answers are read into the shared `apitypes` types ([`typed`]);
//! times in tables read as people's terms ([`crate::when`]).

mod devices;
mod enqueue;
mod groups;
pub(crate) mod typed;

pub(crate) use devices::clear_token;
pub use devices::{CommandsArgs, DeviceCmdArgs, DevicesArgs, commands, device, devices, users};
pub use enqueue::{CommandArgs, PushArgs, ReportArgs, command, push, report};
pub use groups::{EventsArgs, GroupsCommand, events, groups};

use clap::Args;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::client::ServerArgs;

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
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

pub(crate) use crate::when::{when, when_or_dash};
