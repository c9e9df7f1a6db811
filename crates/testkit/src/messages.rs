//! Check-in and report bodies shaped like what real Macs send (see shared/captures).

use plist::{Dictionary, Value};

pub fn to_xml(dict: Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .expect("plist encodes");
    out
}

fn base(message_type: &str, udid: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("MessageType".into(), message_type.into());
    d.insert("UDID".into(), udid.into());
    d
}

pub const TOPIC: &str = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";

pub fn authenticate(udid: &str) -> Vec<u8> {
    let mut d = base("Authenticate", udid);
    d.insert("Topic".into(), TOPIC.into());
    d.insert("BuildVersion".into(), "23A344".into());
    d.insert("OSVersion".into(), "14.0".into());
    d.insert("ProductName".into(), "Mac14,2".into());
    d.insert("Model".into(), "Mac14,2".into());
    d.insert("ModelName".into(), "MacBook Air".into());
    d.insert("DeviceName".into(), format!("Mac {udid}").into());
    d.insert("SerialNumber".into(), "C02TEST0001".into());
    to_xml(d)
}

pub fn token_update(udid: &str, awaiting_configuration: Option<bool>) -> Vec<u8> {
    let mut d = base("TokenUpdate", udid);
    d.insert("Topic".into(), TOPIC.into());
    d.insert(
        "PushMagic".into(),
        "CEFDF0BD-E342-4A27-8742-E930EA116B0A".into(),
    );
    d.insert(
        "Token".into(),
        Value::Data(vec![0x47, 0xe8, 0xee, 0xc0, 0x62, 0xc2, 0xf7, 0x29]),
    );
    if let Some(a) = awaiting_configuration {
        d.insert("AwaitingConfiguration".into(), a.into());
    }
    to_xml(d)
}

pub fn user_token_update(udid: &str, user_id: &str, short_name: &str) -> Vec<u8> {
    let mut d = base("TokenUpdate", udid);
    d.insert("Topic".into(), TOPIC.into());
    d.insert(
        "PushMagic".into(),
        "11111111-E342-4A27-8742-E930EA116B0A".into(),
    );
    d.insert("Token".into(), Value::Data(vec![1, 2, 3, 4]));
    d.insert("UserID".into(), user_id.into());
    d.insert("UserShortName".into(), short_name.into());
    d.insert("UserLongName".into(), format!("{short_name} long").into());
    d.insert("NotOnConsole".into(), false.into());
    to_xml(d)
}

/// `token`: None = key absent; Some(b"") = empty data.
pub fn set_bootstrap_token(
    udid: &str,
    token: Option<&[u8]>,
    awaiting_configuration: Option<bool>,
) -> Vec<u8> {
    let mut d = base("SetBootstrapToken", udid);
    if let Some(t) = token {
        d.insert("BootstrapToken".into(), Value::Data(t.to_vec()));
    }
    if let Some(a) = awaiting_configuration {
        d.insert("AwaitingConfiguration".into(), a.into());
    }
    to_xml(d)
}

pub fn get_bootstrap_token(udid: &str, awaiting_configuration: Option<bool>) -> Vec<u8> {
    let mut d = base("GetBootstrapToken", udid);
    if let Some(a) = awaiting_configuration {
        d.insert("AwaitingConfiguration".into(), a.into());
    }
    to_xml(d)
}

pub fn checkout(udid: &str) -> Vec<u8> {
    let mut d = base("CheckOut", udid);
    d.insert("Topic".into(), TOPIC.into());
    to_xml(d)
}

/// A command-channel report. `extra` holds result keys (SecurityInfo, Users, …) or ErrorChain.
pub fn report(udid: &str, status: &str, command_uuid: Option<&str>, extra: Dictionary) -> Vec<u8> {
    let mut d = Dictionary::new();
    d.insert("UDID".into(), udid.into());
    d.insert("Status".into(), status.into());
    if let Some(u) = command_uuid {
        d.insert("CommandUUID".into(), u.into());
    }
    for (k, v) in extra {
        d.insert(k, v);
    }
    to_xml(d)
}

/// Parse a GetBootstrapToken reply: the `BootstrapToken` data (empty when none is held).
pub fn bootstrap_token_of(reply: &[u8]) -> anyhow::Result<Vec<u8>> {
    let v: Value = plist::from_bytes(reply)?;
    let dict = v
        .as_dictionary()
        .ok_or_else(|| anyhow::anyhow!("reply is not a dict"))?;
    match dict.get("BootstrapToken") {
        Some(Value::Data(d)) => Ok(d.clone()),
        None => Ok(Vec::new()),
        Some(other) => anyhow::bail!("BootstrapToken has the wrong type: {other:?}"),
    }
}
