//! `escrowd apikey`: make, list and revoke admin API keys directly in the database (offline, no server
//! needed), so the first admin key can exist before anyone can call the API.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::Table;
use service::apikeys::{self, Actor};
use store::ApiScope;

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Make a new API key and print it once (only its SHA-256 is stored).
    #[command(
        long_about = "Make a new API key and print it once. Only its SHA-256 is stored: keep the \
printed key somewhere safe; it cannot be shown again (make a new one and revoke the old one instead).\n\n\
Scopes: read (look), operate (also send commands and pushes), admin (also groups, escrow settings, clearing \
tokens, keys).\n\nExamples:\n  escrowd apikey create --data-dir /var/lib/escrowd --scope admin --name alice\n  \
escrowd apikey create --database postgres://escrowd@db/escrowd --scope read --name grafana --json\n\nUse it as \
`Authorization: Bearer <key>`, or for NanoMDM tools as HTTP Basic user `nanomdm` with the key as password."
    )]
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// read, operate or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: ApiScope,
        /// A name that says who or what uses the key (shown in audit events).
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List the API keys (never the keys themselves).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke an API key by id, offline (the running server refuses it at once). Audited.
    #[command(
        long_about = "Revoke an API key by its id (see `escrowd apikey list`), directly in the database: no server or admin key is needed, so a leaked or lost admin key can always be revoked. The server refuses the key from its next request on. With a running server and an admin key, `DELETE /api/v1/apikeys/{id}` does the same.\n\nExamples:\n  escrowd apikey revoke 3f9c2a1b4d5e6f70 --data-dir /var/lib/escrowd\n  escrowd apikey revoke 3f9c2a1b4d5e6f70 --database postgres://escrowd@db/escrowd --json"
    )]
    Revoke {
        /// The key id (not the key itself).
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// Data directory holding the SQLite database (unless --database is given).
    #[arg(long, env = "ESCROWD_DATA_DIR", default_value = "escrowd-data")]
    data_dir: PathBuf,
    /// Database URL, when the server runs with --database.
    #[arg(
        long,
        env = "ESCROWD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn parse_scope(s: &str) -> Result<ApiScope, String> {
    ApiScope::parse(s).ok_or_else(|| format!("{s:?} is not a scope: use read, operate or admin"))
}

impl DbArgs {
    pub(crate) async fn store(&self) -> anyhow::Result<Arc<dyn store::Store>> {
        let dir = server::datadir::DataDir::new(&self.data_dir);
        let url = match &self.database {
            Some(url) => url.clone(),
            None => {
                anyhow::ensure!(
                    self.data_dir.exists(),
                    "no data directory at {} (start the server once with `escrowd serve --data-dir {}`, or give \
                     --database)",
                    self.data_dir.display(),
                    self.data_dir.display()
                );
                dir.database_url()
            }
        };
        store::connect(&url)
            .await
            .with_context(|| format!("opening database {}", server::app::redact_url(&url)))
    }
}

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub async fn run(cmd: ApikeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApikeyCommand::Create { db, scope, name } => {
            let store = db.store().await?;
            let by = Actor::offline("escrowd apikey create");
            let (key, secret) =
                apikeys::create_api_key(store.as_ref(), now_millis(), &name, scope, &by).await?;
            store.close().await;
            if db.json {
                println!(
                    "{}",
                    serde_json::json!({"id": key.id, "name": key.name, "scope": scope.as_str(), "key": secret.expose()})
                );
            } else {
                eprintln!(
                    "Created API key {} ({:?}, scope {}). It is shown only this once:",
                    key.id,
                    key.name,
                    scope.as_str()
                );
                println!("{}", secret.expose());
            }
        }
        ApikeyCommand::Revoke { id, db } => {
            let store = db.store().await?;
            let by = Actor::offline("escrowd apikey revoke");
            let result = apikeys::revoke_api_key(store.as_ref(), now_millis(), &id, &by).await;
            store.close().await;
            result.map_err(|e| {
                anyhow::anyhow!(
                    "{e} (list the keys and their ids with `escrowd apikey list`; a revoked key stays revoked)"
                )
            })?;
            if db.json {
                println!("{}", serde_json::json!({"id": id, "revoked": true}));
            } else {
                println!("Revoked API key {id}.");
            }
        }
        ApikeyCommand::List { db } => {
            let store = db.store().await?;
            let keys = store.list_api_keys().await?;
            store.close().await;
            if db.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| serde_json::json!({"id": k.id, "name": k.name, "scope": k.scope.as_str(), "created_at": k.created_at, "revoked_at": k.revoked_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                let mut t = Table::new();
                t.set_header(["id", "name", "scope", "created", "revoked"]);
                for k in &keys {
                    t.add_row([
                        k.id.clone(),
                        k.name.clone(),
                        k.scope.as_str().to_string(),
                        crate::when::when(k.created_at),
                        crate::when::when_or_dash(k.revoked_at),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(())
}
