//! `escrowd enroll-token create|list|revoke` and `escrowd profile --group NAME`: enrollment over the admin API.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::Table;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::client::ServerArgs;

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

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn when(v: &Value) -> String {
    v.as_i64().and_then(chrono_like).unwrap_or_else(|| text(v))
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`, without a date crate.
fn chrono_like(ms: i64) -> Option<String> {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    ))
}

pub async fn enroll_token(cmd: EnrollTokenCommand) -> anyhow::Result<()> {
    match cmd {
        EnrollTokenCommand::Create(a) => {
            let max_uses = if a.unlimited {
                Value::Null
            } else {
                json!(a.uses.unwrap_or(1))
            };
            let mut body =
                json!({"group": a.group, "max_uses": max_uses, "expires_in_seconds": a.expires});
            if let Some(name) = &a.name {
                body["name"] = json!(name);
            }
            let v = a
                .server
                .ok("POST", "/api/v1/enrollment-tokens", Some(body))
                .await?
                .json()?;
            if a.server.json {
                println!("{v}");
            } else {
                let uses = if v["max_uses"].is_null() {
                    "unlimited".to_string()
                } else {
                    text(&v["max_uses"])
                };
                println!("token:      {}", text(&v["token"]));
                println!("enroll URL: {}", text(&v["enroll_url"]));
                println!("id:         {}", text(&v["id"]));
                println!("uses:       {uses}");
                println!("expires:    {}", when(&v["expires_at"]));
                println!();
                println!(
                    "Shown once. Send the enroll URL to the Mac's user (open it in Safari, then install the"
                );
                println!(
                    "profile in System Settings). Revoke with: escrowd enroll-token revoke {}",
                    text(&v["id"])
                );
            }
        }
        EnrollTokenCommand::List { server } => {
            let v = server
                .ok("GET", "/api/v1/enrollment-tokens", None)
                .await?
                .json()?;
            if server.json {
                println!("{v}");
                return Ok(());
            }
            let mut t = Table::new();
            t.set_header(["id", "name", "group", "uses", "expires", "revoked"]);
            for r in v["tokens"].as_array().into_iter().flatten() {
                let uses = match r["max_uses"].as_i64() {
                    Some(max) => format!("{}/{max}", text(&r["uses"])),
                    None => format!("{}/unlimited", text(&r["uses"])),
                };
                t.add_row([
                    text(&r["id"]),
                    text(&r["name"]),
                    text(&r["group_id"]),
                    uses,
                    when(&r["expires_at"]),
                    when(&r["revoked_at"]),
                ]);
            }
            println!("{t}");
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

    #[test]
    fn dates_render() {
        assert_eq!(chrono_like(0).unwrap(), "1970-01-01 00:00 UTC");
        assert_eq!(
            chrono_like(1_700_000_000_000).unwrap(),
            "2023-11-14 22:13 UTC"
        );
    }
}
