//! The agent binary's command implementations, by concern: the command line (`args`), actions, output, and
//! talking to the server between cycles.

pub(crate) mod actions;
pub(crate) mod args;
pub(crate) mod output;
pub(crate) mod server;
