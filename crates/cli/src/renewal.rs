//! `escrowd device renew-identity UDID`: renew a Mac's identity
//! certificate the way Macs do (its enrollment profile again, with a one-time challenge minted for it).

use apitypes::RenewalQueued;
use comfy_table::Table;

use crate::admin::typed::{self, Typed};
use crate::admin::{DeviceArgs, enc, when_or_dash};

pub(crate) async fn renew(a: DeviceArgs) -> anyhow::Result<()> {
    let (server, id) = a.parts();
    let path = format!("/api/v1/devices/{}/renew-identity", enc(id));
    let v: Typed<RenewalQueued> = typed::call(server, "POST", &path, None).await?;
    if server.json {
        println!("{}", v.raw);
        return Ok(());
    }
    let r = &v.value.renewal;
    let mut t = Table::new();
    t.set_header(["field", "value"]);
    for (k, value) in [
        ("device", v.value.device.clone()),
        ("renewal command", r.command_uuid.clone()),
        ("queued at", when_or_dash(Some(r.queued_at))),
        (
            "challenge valid until",
            when_or_dash(Some(r.challenge_expires_at)),
        ),
        (
            "renews certificate expiring",
            when_or_dash(r.renews_certificate_expiring_at),
        ),
    ] {
        t.add_row([k.to_string(), value]);
    }
    println!("{t}");
    eprintln!(
        "the Mac installs the profile at its next check-in, gets a new certificate over SCEP and keeps its token"
    );
    Ok(())
}
