//! `escrowd device renew-identity UDID`: renew a Mac's identity
//! certificate the way Macs do (its enrollment profile again, with a one-time challenge minted for it).

use comfy_table::Table;

use crate::admin::{self, DeviceArgs, enc};

pub(crate) async fn renew(a: DeviceArgs) -> anyhow::Result<()> {
    let (server, id) = a.parts();
    let v = server
        .ok(
            "POST",
            &format!("/api/v1/devices/{}/renew-identity", enc(id)),
            None,
        )
        .await?
        .json()?;
    if server.json {
        println!("{v}");
        return Ok(());
    }
    let r = &v["renewal"];
    let mut t = Table::new();
    t.set_header(["field", "value"]);
    for (k, p) in [
        ("device", "/device"),
        ("renewal command", "/renewal/command_uuid"),
        ("queued at", "/renewal/queued_at"),
        ("challenge valid until", "/renewal/challenge_expires_at"),
        (
            "renews certificate expiring",
            "/renewal/renews_certificate_expiring_at",
        ),
    ] {
        t.add_row([k.to_string(), admin::when_or_text(v.pointer(p))]);
    }
    println!("{t}");
    if r.is_object() {
        eprintln!(
            "the Mac installs the profile at its next check-in, gets a new certificate over SCEP and keeps its token"
        );
    }
    Ok(())
}
