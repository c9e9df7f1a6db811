//! Answers read into the shared `apitypes` types (on top of the client's JSON answers), and tables made from
//! typed rows. `--json` prints the answer as the server sent it.

use anyhow::Context;
use comfy_table::Table;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::ServerArgs;

/// An answer read as `T`, with the answer as sent (for `--json`).
pub(crate) struct Typed<T> {
    pub raw: Value,
    pub value: T,
}

/// `method path` with `body`; a non-2xx answer is an error carrying the server's message.
pub(crate) async fn call<T: DeserializeOwned>(
    server: &ServerArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Typed<T>> {
    let raw = server.ok(method, path, body).await?.json()?;
    let value = serde_json::from_value(raw.clone()).with_context(|| {
        format!("the server's answer to {method} {path} is not the shape this escrowd knows (a different version?)")
    })?;
    Ok(Typed { raw, value })
}

/// An answer already in hand (e.g. pages gathered by `bulk`), read as `T`.
pub(crate) fn read<T: DeserializeOwned>(raw: Value) -> anyhow::Result<Typed<T>> {
    let value = serde_json::from_value(raw.clone()).context(
        "the server's answer is not the shape this escrowd knows (a different version?)",
    )?;
    Ok(Typed { raw, value })
}

/// `GET path`, read as `T`.
pub(crate) async fn get<T: DeserializeOwned>(
    server: &ServerArgs,
    path: &str,
) -> anyhow::Result<Typed<T>> {
    call(server, "GET", path, None).await
}

/// How a value shows in a table cell: as its JSON text would (strings bare), `-` for nothing.
pub(crate) trait Cell {
    fn cell(&self) -> String;
}

impl Cell for String {
    fn cell(&self) -> String {
        self.clone()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or_else(|| "-".into(), Cell::cell)
    }
}

macro_rules! cell_by_display {
    ($($t:ty),+) => {
        $(impl Cell for $t {
            fn cell(&self) -> String {
                self.to_string()
            }
        })+
    };
}

cell_by_display!(
    bool,
    i64,
    u64,
    apitypes::TokenLabel,
    apitypes::EnrollmentType,
    apitypes::FactSource,
    apitypes::Outcome,
    apitypes::CommandStatus,
    apitypes::Severity,
    apitypes::PrimaryAccount
);

/// A column: its header and how a row shows in it.
pub(crate) type Column<'a, T> = (&'a str, fn(&T) -> String);

/// A table of `rows`.
pub(crate) fn rows<T>(rows: &[T], cols: &[Column<'_, T>]) -> Table {
    let mut t = Table::new();
    t.set_header(cols.iter().map(|(h, _)| *h));
    for r in rows {
        t.add_row(cols.iter().map(|(_, cell)| cell(r)));
    }
    t
}

/// The answer as sent with `--json`, else the table of `list`.
pub(crate) fn print<T>(server: &ServerArgs, raw: &Value, list: &[T], cols: &[Column<'_, T>]) {
    if server.json {
        println!("{raw}");
    } else {
        println!("{}", rows(list, cols));
    }
}
