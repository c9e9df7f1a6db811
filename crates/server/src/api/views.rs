//! JSON shapes of the admin API and their schemas (`components/schemas`), side by side so a change to one
//! shows next to the other. Built from metadata only: no function here can see a token or a key hash.

use serde_json::{Value, json};
use service::admin::{Fact, MergedUser};
use service::diagnosis::Finding;
use service::status::DeviceStatus;
use store::{ApiKey, DeviceRecord, Event, Group, QueuedCommand};

use super::Api;
use super::schema::{
    array, boolean, described, extend, integer, millis, nullable, object, one_of, reference, string,
};

/// The shared shapes: the views below, the error answer, and a device's detail.
pub(super) fn components(api: Api) -> Api {
    let text = || nullable(string());
    let flag = || nullable(boolean());
    let device = object(&[
        ("id", string()),
        ("serial_number", text()),
        ("device_name", text()),
        ("model", text()),
        ("model_name", text()),
        ("os_version", text()),
        ("build_version", text()),
        ("enrolled", boolean()),
        ("enrolled_at", millis()),
        ("last_seen_at", millis()),
        (
            "enrollment_type",
            one_of(&[
                "user_enrollment",
                "automated_device_enrollment",
                "user_approved",
                "device",
                "unknown",
            ]),
        ),
        ("supervised", flag()),
        (
            "group",
            nullable(object(&[
                ("id", string()),
                ("name", text()),
                ("bootstrap_escrow_enabled", flag()),
            ])),
        ),
        (
            "bootstrap_token",
            described(
                object(&[
                    (
                        "status",
                        one_of(&["not_supported", "not_escrowed", "escrowed"]),
                    ),
                    ("label", one_of(&["NA", "Not configured", "Configured"])),
                    (
                        "reason",
                        described(
                            text(),
                            "why, shown beside the label: \"escrow is off for group Lab\", or what makes a Mac NA",
                        ),
                    ),
                    ("escrowed_at", nullable(millis())),
                    ("verified", flag()),
                    ("last_requested_at", nullable(millis())),
                ]),
                "metadata only: the token itself is never returned",
            ),
        ),
        ("apple_silicon", flag()),
        ("bootstrap_token_allowed_for_authentication", text()),
        ("bootstrap_token_required_for_software_update", flag()),
        (
            "bootstrap_token_required_for_kernel_extension_approval",
            flag(),
        ),
        ("eacs_preflight", text()),
        ("filevault_enabled", flag()),
        ("users", integer()),
        ("users_without_secure_token", integer()),
        (
            "identity",
            described(
                object(&[
                    ("certificate_expires_at", nullable(millis())),
                    ("blocked_at", nullable(millis())),
                    ("pending_identity", boolean()),
                ]),
                "the bound identity certificate's notAfter, an admin's block, and whether a second identity \
                 claims this Mac (see /api/v1/devices/{id}/identities)",
            ),
        ),
        (
            "inventory_at",
            object(&[
                ("device_information", nullable(millis())),
                ("security_info", nullable(millis())),
            ]),
        ),
    ]);
    let detail = extend(
        device.clone(),
        &[
            (
                "push",
                object(&[
                    ("has_token", boolean()),
                    ("topic", text()),
                    (
                        "token_refused",
                        nullable(object(&[("at", millis()), ("reason", string())])),
                    ),
                ]),
            ),
            (
                "identity_renewal",
                described(
                    nullable(super::renewal::renewal_schema()),
                    "the renewal profile outstanding for this Mac (queued, its challenge unexpired), if any",
                ),
            ),
        ],
    );
    let fact = || nullable(reference("Fact"));
    api.component("Device", device)
        .component("DeviceDetail", detail)
        .component(
            "Fact",
            described(
                object(&[
                    ("value", boolean()),
                    ("source", one_of(&["mdm", "agent"])),
                    ("at", millis()),
                    (
                        "conflict",
                        described(
                            nullable(object(&[
                                ("value", boolean()),
                                ("source", one_of(&["mdm", "agent"])),
                                ("at", millis()),
                            ])),
                            "another source said otherwise, earlier (or at the same time); the newest word wins",
                        ),
                    ),
                ]),
                "one fact about a user, with the source that said it and when",
            ),
        )
        .component(
            "User",
            object(&[
                ("user_key", string()),
                ("guid", text()),
                ("short_name", text()),
                ("full_name", text()),
                ("uid", nullable(integer())),
                ("has_secure_token", fact()),
                ("mobile_account", fact()),
                ("is_logged_in", fact()),
                ("is_admin", fact()),
                ("filevault_enabled", fact()),
                ("volume_owner", fact()),
                ("managed_admin", fact()),
            ]),
        )
        .component(
            "Event",
            object(&[
                ("id", integer()),
                ("subject", string()),
                ("enrollment_id", text()),
                ("kind", string()),
                ("outcome", one_of(&["success", "failure", "refused"])),
                ("detail", string()),
                ("at", millis()),
            ]),
        )
        .component(
            "EventPage",
            object(&[
                ("events", array(reference("Event"))),
                (
                    "next_before_id",
                    described(
                        nullable(integer()),
                        "pass as before_id for the next page; null on the last page",
                    ),
                ),
            ]),
        )
        .component("Group", group_schema())
        .component(
            "Command",
            object(&[
                ("enrollment_id", string()),
                ("uuid", string()),
                ("request_type", string()),
                (
                    "status",
                    one_of(&[
                        "pending",
                        "notnow",
                        "acknowledged",
                        "error",
                        "command_format_error",
                    ]),
                ),
                (
                    "result",
                    described(text(), "the device's report plist (XML)"),
                ),
                (
                    "carries_secret",
                    described(
                        boolean(),
                        "the command holds a secret (PIN, password, registration secret): sealed at rest, \
                         shown redacted",
                    ),
                ),
                (
                    "payload",
                    described(
                        string(),
                        "the command plist (XML) as stored; secret values read [redacted]",
                    ),
                ),
                ("created_at", millis()),
                ("updated_at", millis()),
            ]),
        )
        .component(
            "Finding",
            object(&[
                ("code", string()),
                ("severity", one_of(&["info", "warning", "critical"])),
                ("summary", string()),
                ("evidence", array(string())),
                ("fix", string()),
            ]),
        )
        .component("ApiKey", api_key_schema())
        .component(
            "Error",
            object(&[(
                "error",
                described(string(), "what went wrong and what to do"),
            )]),
        )
}

pub(super) fn group_schema() -> Value {
    object(&[
        ("id", string()),
        ("name", string()),
        ("bootstrap_escrow_enabled", boolean()),
        (
            "prompt_user_to_allow_bootstrap_token_for_authentication",
            boolean(),
        ),
        ("created_at", millis()),
        ("updated_at", millis()),
    ])
}

pub(super) fn api_key_schema() -> Value {
    object(&[
        ("id", string()),
        ("name", string()),
        ("scope", one_of(&["read", "operate", "admin"])),
        ("created_at", millis()),
        ("revoked_at", nullable(millis())),
    ])
}

pub(super) fn device(d: &DeviceRecord) -> Value {
    let e = &d.enrollment;
    let inv = d.inventory.as_ref();
    let dev = inv.and_then(|i| i.device.as_ref());
    let sec = inv.and_then(|i| i.security.as_ref());
    let status = d.status();
    json!({
        "id": e.id,
        "serial_number": dev.and_then(|f| f.serial_number.clone()).or_else(|| e.serial_number.clone()),
        "device_name": dev.and_then(|f| f.device_name.clone()).or_else(|| e.device_name.clone()),
        "model": dev.and_then(|f| f.model.clone()).or_else(|| e.model.clone()),
        "model_name": dev.and_then(|f| f.model_name.clone()).or_else(|| e.model_name.clone()),
        "os_version": dev.and_then(|f| f.os_version.clone()).or_else(|| e.os_version.clone()),
        "build_version": dev.and_then(|f| f.build_version.clone()).or_else(|| e.build_version.clone()),
        "enrolled": e.enabled,
        "enrolled_at": e.enrolled_at,
        "last_seen_at": e.last_seen_at,
        "enrollment_type": enrollment_type(d),
        "supervised": dev.and_then(|f| f.is_supervised),
        "group": e.group_id.as_ref().map(|id| json!({"id": id, "name": d.group_name, "bootstrap_escrow_enabled": d.group_escrow_enabled})),
        "bootstrap_token": {
            "status": status.as_str(),
            "label": status.label(),
            "reason": d.status_reason(),
            "escrowed_at": d.token.as_ref().map(|t| t.escrowed_at),
            "verified": d.token.as_ref().map(|t| t.verified),
            "last_requested_at": d.token.as_ref().and_then(|t| t.last_requested_at),
        },
        "apple_silicon": dev.and_then(|f| f.is_apple_silicon),
        "bootstrap_token_allowed_for_authentication": sec.and_then(|s| s.bt_allowed_for_authentication.clone()),
        "bootstrap_token_required_for_software_update": sec.and_then(|s| s.bt_required_for_software_update),
        "bootstrap_token_required_for_kernel_extension_approval": sec.and_then(|s| s.bt_required_for_kext_approval),
        "eacs_preflight": dev.and_then(|f| f.eacs_preflight.clone()),
        "filevault_enabled": sec.and_then(|s| s.filevault_enabled),
        "users": d.user_count,
        "users_without_secure_token": d.users_without_secure_token,
        "identity": {
            "certificate_expires_at": e.cert_not_after,
            "blocked_at": e.blocked_at,
            "pending_identity": e.has_pending,
        },
        "inventory_at": {
            "device_information": dev.map(|f| f.at),
            "security_info": sec.map(|s| s.at),
        },
    })
}

fn enrollment_type(d: &DeviceRecord) -> &'static str {
    let sec = d.inventory.as_ref().and_then(|i| i.security.as_ref());
    match sec {
        Some(s) if s.is_user_enrollment == Some(true) => "user_enrollment",
        Some(s) if s.enrolled_via_dep == Some(true) => "automated_device_enrollment",
        Some(s) if s.user_approved_enrollment == Some(true) => "user_approved",
        Some(_) => "device",
        None => "unknown",
    }
}

fn fact(f: &Option<Fact<bool>>) -> Value {
    match f {
        Some(f) => json!({
            "value": f.value, "source": f.source.as_str(), "at": f.at,
            "conflict": f.conflict.as_ref().map(|c| json!({"value": c.value, "source": c.source.as_str(), "at": c.at})),
        }),
        None => Value::Null,
    }
}

pub(super) fn user(u: &MergedUser) -> Value {
    json!({
        "user_key": u.user_key,
        "guid": u.guid,
        "short_name": u.short_name,
        "full_name": u.full_name,
        "uid": u.uid,
        "has_secure_token": fact(&u.has_secure_token),
        "mobile_account": fact(&u.mobile_account),
        "is_logged_in": fact(&u.is_logged_in),
        "is_admin": fact(&u.is_admin),
        "filevault_enabled": fact(&u.filevault_enabled),
        "volume_owner": fact(&u.volume_owner),
        "managed_admin": fact(&u.managed_admin),
    })
}

pub(super) fn event(e: &Event) -> Value {
    json!({
        "id": e.id, "subject": e.subject, "enrollment_id": e.enrollment_id, "kind": e.kind,
        "outcome": e.outcome.as_str(), "detail": e.detail, "at": e.at,
    })
}

pub(super) fn group(g: &Group) -> Value {
    json!({
        "id": g.id, "name": g.name, "bootstrap_escrow_enabled": g.bootstrap_escrow_enabled,
        "prompt_user_to_allow_bootstrap_token_for_authentication": g.prompt_user_to_allow_bootstrap_token_for_authentication,
        "created_at": g.created_at, "updated_at": g.updated_at,
    })
}

pub(super) fn command(c: &QueuedCommand) -> Value {
    json!({
        "enrollment_id": c.enrollment_id, "uuid": c.uuid, "request_type": c.request_type,
        "status": c.status.as_str(),
        "result": c.result.as_ref().map(|r| String::from_utf8_lossy(r).into_owned()),
        "carries_secret": c.carries_secret,
        "payload": String::from_utf8_lossy(&c.payload),
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

pub(super) fn finding(f: &Finding) -> Value {
    json!({
        "code": f.code, "severity": f.severity.as_str(), "summary": f.summary,
        "evidence": f.evidence, "fix": f.fix,
    })
}

pub(super) fn api_key(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "name": k.name, "scope": k.scope.as_str(), "created_at": k.created_at,
        "revoked_at": k.revoked_at,
    })
}
