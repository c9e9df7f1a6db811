//! `escrowd enroll-token create|list|revoke` and `escrowd profile --group NAME`: enrollment over the admin API.

use std::io::Write;

use anyhow::{Context, bail};
use apitypes::{EnrollmentToken, EnrollmentTokenCreated, EnrollmentTokens, NewEnrollmentToken};
use clap::{Args, Subcommand};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use crate::admin::typed::{self, Cell, Typed};
use crate::client::ServerArgs;
use crate::when::when_or_dash;

#[derive(Subcommand, Debug)]
pub enum EnrollTokenCommand {
    /// Create a token for a group; prints the token and its /enroll URL once (they cannot be shown again).
    #[command(
        after_help = "Examples:\n  escrowd enroll-token create --group Lab                 # one Mac, never expires\n  escrowd enroll-token create --group Lab --uses 25 --expires 7d\n  escrowd enroll-token create --group Staff --unlimited --expires 12h --json"
    )]
    Create(CreateArgs),
    /// List tokens (never the token values): uses, expiry, revoked.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id; profiles already downloaded keep working until their one-time challenge expires.
    #[command(after_help = "Examples:\n  escrowd enroll-token revoke 6f1c…")]
    Revoke {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Group id or name the enrolled Macs land in.
    #[arg(long)]
    group: String,
    /// How many Macs may enroll with it (default 1).
    #[arg(long, conflicts_with = "unlimited", value_parser = clap::value_parser!(i64).range(1..))]
    uses: Option<i64>,
    /// Any number of Macs may enroll with it.
    #[arg(long)]
    unlimited: bool,
    /// Lifetime: 30m, 12h, 7d (default: never expires).
    #[arg(long, value_parser = parse_duration_secs)]
    expires: Option<i64>,
    /// A name to recognise it by in `enroll-token list`.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd profile --group Lab > lab.mobileconfig\n  openssl cms -verify -inform DER -in lab.mobileconfig -CAfile DATA_DIR/profile-signing.pem"
)]
pub struct ProfileArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Group id or name; the profile carries the group's static SCEP challenge (treat the file as a secret).
    #[arg(long)]
    group: String,
}

/// `30m`, `12h`, `7d`, `90s` → seconds.
fn parse_duration_secs(value: &str) -> Result<i64, String> {
    let err = || format!("{value:?} is not a duration like 30m, 12h or 7d");
    let (digits, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
    let n: i64 = digits.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    match n.checked_mul(mult) {
        Some(s) if s > 0 && s <= 10 * 365 * 86_400 => Ok(s),
        _ => Err(format!("{value:?} must be between 1s and 10 years")),
    }
}

pub async fn enroll_token(cmd: EnrollTokenCommand) -> anyhow::Result<()> {
    match cmd {
        EnrollTokenCommand::Create(a) => {
            let body = serde_json::to_value(NewEnrollmentToken {
                group: a.group,
                name: a.name,
                max_uses: (!a.unlimited).then(|| a.uses.unwrap_or(1)),
                expires_in_seconds: a.expires,
            })?;
            let created: Typed<EnrollmentTokenCreated> =
                typed::call(&a.server, "POST", "/api/v1/enrollment-tokens", Some(body)).await?;
            if a.server.json {
                println!("{}", created.raw);
            } else {
                let v = &created.value;
                let uses = v
                    .info
                    .max_uses
                    .map_or_else(|| "unlimited".to_string(), |m| m.to_string());
                println!("token:      {}", v.token);
                println!("enroll URL: {}", v.enroll_url);
                println!("id:         {}", v.info.id);
                println!("uses:       {uses}");
                println!("expires:    {}", when_or_dash(v.info.expires_at));
                println!();
                println!(
                    "Shown once. Send the enroll URL to the Mac's user (open it in Safari, then install the"
                );
                println!(
                    "profile in System Settings). Revoke with: escrowd enroll-token revoke {}",
                    v.info.id
                );
            }
        }
        EnrollTokenCommand::List { server } => {
            let list: Typed<EnrollmentTokens> =
                typed::get(&server, "/api/v1/enrollment-tokens").await?;
            typed::print(
                &server,
                &list.raw,
                &list.value.tokens,
                &[
                    ("id", |t: &EnrollmentToken| t.id.cell()),
                    ("name", |t| t.name.cell()),
                    ("group", |t| t.group_id.cell()),
                    ("uses", |t| match t.max_uses {
                        Some(max) => format!("{}/{max}", t.uses),
                        None => format!("{}/unlimited", t.uses),
                    }),
                    ("expires", |t| when_or_dash(t.expires_at)),
                    ("revoked", |t| when_or_dash(t.revoked_at)),
                ],
            );
        }
        EnrollTokenCommand::Revoke { server, id } => {
            let path = format!(
                "/api/v1/enrollment-tokens/{}",
                utf8_percent_encode(&id, NON_ALPHANUMERIC)
            );
            server.ok("DELETE", &path, None).await?;
            if server.json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked token {id}");
            }
        }
    }
    Ok(())
}

pub async fn profile(a: ProfileArgs) -> anyhow::Result<()> {
    // Accept a group name: resolve it to an id first (the API takes either, but a name may need encoding).
    let path = format!(
        "/api/v1/groups/{}/profile",
        utf8_percent_encode(&a.group, NON_ALPHANUMERIC)
    );
    let answer = a.server.ok("GET", &path, None).await?;
    if answer.body.first() != Some(&0x30) {
        bail!("the server's answer is not a signed profile (DER)");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&answer.body)
        .context("writing the profile to standard output")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_secs("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        for bad in ["", "7", "d", "0d", "7w", "-1d", "99999999999d"] {
            assert!(parse_duration_secs(bad).is_err(), "{bad}");
        }
    }
}
