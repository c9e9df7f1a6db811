//! `escrowd keys`: rotate, inspect and retire the key-encryption keys in the data directory's key file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::Table;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new key, make it active and re-wrap every escrowed secret under it. Safe while the server runs.
    Rotate(KeyArgs),
    /// Show the keys and how many secrets each one seals.
    Status(KeyArgs),
    /// Remove an old key from the key file; refused while any secret is still sealed under it.
    Retire {
        #[command(flatten)]
        args: KeyArgs,
        /// Id of the key to retire (see `escrowd keys status`).
        key_id: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// Data directory holding vault.key (and the database unless --database is given).
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
    json: bool,
}

impl KeyArgs {
    fn key_file(&self) -> PathBuf {
        server::datadir::DataDir::new(&self.data_dir).vault_key()
    }

    async fn store(&self) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
        let url = self
            .database
            .clone()
            .unwrap_or_else(|| server::datadir::DataDir::new(&self.data_dir).database_url());
        store::connect(&url)
            .await
            .with_context(|| format!("opening database {}", server::app::redact_url(&url)))
    }

    fn require_key_file(&self) -> anyhow::Result<PathBuf> {
        let path = self.key_file();
        if !path.exists() {
            anyhow::bail!(
                "no key file at {} (start the server once with `escrowd serve --data-dir {}` to create it)",
                path.display(),
                self.data_dir.display()
            );
        }
        Ok(path)
    }
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate(args) => rotate(args).await,
        KeysCommand::Status(args) => status(args).await,
        KeysCommand::Retire { args, key_id } => retire(args, key_id).await,
    }
}

async fn rotate(args: KeyArgs) -> anyhow::Result<()> {
    let path = args.require_key_file()?;
    let store = args.store().await?;
    let new_id = vault::Keyring::rotate_file(&path)?;
    let vault = vault::Vault::open_or_create(&path)?;
    let total = service::keys::count_sealed_secrets(store.as_ref()).await?;
    let bar = crate::bulk::bar(
        total,
        args.json,
        "re-wrapping {bar:40} {pos}/{len} secrets ({eta})",
    );
    let report = service::keys::rewrap_all(&store, &vault, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    if args.json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(o, f, r)| serde_json::json!({"owner": o, "field": f, "reason": r}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "active_key": new_id, "rewrapped": report.rewrapped, "already_current": report.already_current,
                "changed_concurrently": report.changed_concurrently, "failed": failed,
            })
        );
    } else {
        println!("new active key: {new_id}");
        println!(
            "re-wrapped {} secrets ({} already current, {} written concurrently under the new key)",
            report.rewrapped, report.already_current, report.changed_concurrently
        );
        for (owner, field, reason) in &report.failed {
            println!("could not re-wrap {owner}/{field}: {reason}");
        }
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} secrets could not be re-wrapped; their old key must be kept",
            report.failed.len()
        );
    }
    Ok(())
}

async fn status(args: KeyArgs) -> anyhow::Result<()> {
    let path = args.require_key_file()?;
    let keyring = vault::Keyring::load(&path)?;
    let store = args.store().await?;
    let counts = store.sealed_secret_key_counts().await?;
    let count_of = |id: &str| {
        counts
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    if args.json {
        let keys: Vec<_> = keyring
            .key_ids()
            .iter()
            .map(|id| serde_json::json!({"id": id, "active": id == keyring.active_key_id(), "secrets": count_of(id)}))
            .collect();
        println!("{}", serde_json::json!({ "keys": keys }));
        return Ok(());
    }
    let mut table = Table::new();
    table.set_header(vec!["key", "active", "secrets sealed"]);
    for id in keyring.key_ids() {
        let active = if id == keyring.active_key_id() {
            "yes"
        } else {
            ""
        };
        table.add_row(vec![
            id.clone(),
            active.to_string(),
            count_of(&id).to_string(),
        ]);
    }
    println!("{table}");
    for (id, n) in &counts {
        if !keyring.key_ids().contains(id) {
            println!(
                "warning: {n} secrets are sealed under key {id:?}, which is not in {}",
                path.display()
            );
        }
    }
    Ok(())
}

async fn retire(args: KeyArgs, key_id: String) -> anyhow::Result<()> {
    let path = args.require_key_file()?;
    let store = args.store().await?;
    let counts = store.sealed_secret_key_counts().await?;
    if let Some((_, n)) = counts.iter().find(|(k, n)| *k == key_id && *n > 0) {
        anyhow::bail!("key {key_id:?} still seals {n} secrets; run `escrowd keys rotate` first");
    }
    vault::Keyring::retire_key_in_file(&path, &key_id)?;
    println!("retired key {key_id}");
    Ok(())
}
