//! `escrowd push-cert upload | show`: the APNs push certificate through the admin API. The private key and
//! the PKCS#12 password never go on the command line: files for the key, `ESCROWD_PKCS12_PASSWORD` or a
//! no-echo prompt (one line of stdin when it is not a terminal) for the password.

use std::path::PathBuf;

use anyhow::{Context, bail};
use apitypes::PushCertificate;
use base64::Engine;
use clap::{Args, Subcommand};
use comfy_table::Table;
use serde_json::json;
use vault::Secret;

use crate::admin::typed::{self, Typed};
use crate::client::ServerArgs;
use crate::when::when;

#[derive(Subcommand, Debug)]
pub enum PushCertCommand {
    /// Upload (replace) the MDM push certificate; it takes effect at once. Needs an admin-scope key.
    #[command(
        after_help = "Get the certificate at https://identity.apple.com (renew with the same Apple ID to keep the topic).\n\nExamples:\n  escrowd push-cert upload --cert MDM_Push.pem --key push.key\n  ESCROWD_PKCS12_PASSWORD=… escrowd push-cert upload --pkcs12 push.p12\n  escrowd push-cert upload --pkcs12 push.p12 < password.txt\n\nThe PKCS#12 password comes from ESCROWD_PKCS12_PASSWORD, else a prompt (or one line of stdin), never a flag."
    )]
    Upload(UploadArgs),
    /// Show the push certificate: topic, subject, serial, expiry, days left; warns when it expires soon.
    #[command(after_help = "Examples:\n  escrowd push-cert show\n  escrowd push-cert show --json")]
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The push certificate (PEM), with --key.
    #[arg(long, value_name = "PEM", requires = "key", conflicts_with = "pkcs12")]
    cert: Option<PathBuf>,
    /// Its private key (unencrypted PEM), with --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Certificate and key in one PKCS#12 file (.p12, as Keychain Access exports it).
    #[arg(long, value_name = "P12")]
    pkcs12: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(cmd: PushCertCommand) -> anyhow::Result<()> {
    match cmd {
        PushCertCommand::Upload(a) => upload(a).await,
        PushCertCommand::Show(a) => {
            let v: Typed<PushCertificate> =
                typed::get(&a.server, "/api/v1/push-certificate").await?;
            print_info(&a.server, &v);
            Ok(())
        }
    }
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

async fn upload(a: UploadArgs) -> anyhow::Result<()> {
    let body = match (&a.cert, &a.key, &a.pkcs12) {
        (Some(cert), Some(key), None) => {
            let cert = String::from_utf8(read(cert, "--cert")?)
                .context("--cert is not a PEM text file")?;
            let key = Secret::new(read(key, "--key")?);
            let key = std::str::from_utf8(key.expose()).context("--key is not a PEM text file")?;
            json!({"certificate_pem": cert, "private_key_pem": key})
        }
        (None, None, Some(p12)) => {
            let der = Secret::new(read(p12, "--pkcs12")?);
            let password = match std::env::var("ESCROWD_PKCS12_PASSWORD") {
                Ok(p) => Secret::new(p),
                Err(_) => prompt::read_password("PKCS#12 password:", false)?.context(
                    "no PKCS#12 password: set ESCROWD_PKCS12_PASSWORD or type it at the prompt",
                )?,
            };
            json!({
                "pkcs12_base64": base64::engine::general_purpose::STANDARD.encode(der.expose()),
                "password": password.expose(),
            })
        }
        _ => bail!(
            "give --cert FILE --key FILE, or --pkcs12 FILE (see `escrowd push-cert upload --help`)"
        ),
    };
    let v: Typed<PushCertificate> =
        typed::call(&a.server, "PUT", "/api/v1/push-certificate", Some(body)).await?;
    print_info(&a.server, &v);
    if !a.server.json {
        eprintln!("push certificate uploaded; pushes use it from now on");
    }
    Ok(())
}

fn print_info(server: &ServerArgs, v: &Typed<PushCertificate>) {
    let c = &v.value;
    if server.json {
        println!("{}", v.raw);
    } else {
        let mut t = Table::new();
        t.set_header(["field", "value"]);
        for (key, text) in [
            ("topic", c.topic.clone()),
            ("subject", c.subject.clone()),
            ("serial", c.serial.clone()),
            ("fingerprint", c.fingerprint.clone()),
            ("not_after", when(c.not_after)),
            ("days_left", c.days_left.to_string()),
        ] {
            t.add_row([key.to_string(), text]);
        }
        println!("{t}");
    }
    if let Some(w) = &c.warning {
        eprintln!("warning: {w}");
    }
}
