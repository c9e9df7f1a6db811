//! Commands: typed enqueue (EraseDevice refused without a usable token unless forced), raw plists, push.
//! Push results are reported per device, including "no push certificate is configured".

use apitypes as t;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use protocol::command::ObliterationBehavior;
use serde::Deserialize;
use service::admin::TypedCommand;
use service::apikeys::Actor;
use service::push::PushResult;
use store::ApiScope;

use super::devices::{bad_json, bad_query};
use super::schema::{described, string};
use super::{Api, Body, error, service_error, split_ids, views};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let op = Some(ApiScope::Operate);
    api.route("POST", "/api/v1/commands", "Queue a typed command: {devices: [ids], command: {type: SecurityInfo|UserList|DeviceInformation|DeviceConfigured|Settings|EraseDevice, …}, force?: bool, push?: bool (default true)}. Settings takes bootstrap_token_allowed / prompt_user_to_allow_bootstrap_token_for_authentication / activation_lock_allowed_while_supervised and always sends all three (the Mac resets keys left out): keys not given come from each Mac's effective set (its group's escrow switch and prompt setting, Activation Lock false), 400 when the Macs' groups differ on a key not given; EraseDevice takes pin and obliteration_behavior (Default|DoNotObliterate|ObliterateWithWarning|Always) and is refused (409) when a Mac has no usable Bootstrap Token unless force is true. Audited.", op, post(typed))
        .body::<t::EnqueueCommand>()
        .answer::<t::Enqueued>(201)
        .route("POST", "/api/v1/commands/raw", "Queue a raw command plist (body) for ?devices=a,b; &nopush skips the push. A raw EraseDevice is refused (409) when a Mac has no usable Bootstrap Token unless &force=true. Audited.", op, post(raw))
        .request(Body::Media("application/x-plist", described(string(), "a command plist (XML): {Command: {RequestType, …}, CommandUUID?}")))
        .answer::<t::Enqueued>(201)
        .route("POST", "/api/v1/push", "Push to devices: {devices: [ids]}. Per-device result or error (e.g. no push certificate configured). Audited.", op, post(push))
        .body::<t::PushDevices>()
        .answer::<t::PushResults>(200)
}

fn obliteration(s: &str) -> Option<ObliterationBehavior> {
    Some(match s {
        "Default" => ObliterationBehavior::Default,
        "DoNotObliterate" => ObliterationBehavior::DoNotObliterate,
        "ObliterateWithWarning" => ObliterationBehavior::ObliterateWithWarning,
        "Always" => ObliterationBehavior::Always,
        _ => return None,
    })
}

pub(super) fn push_json(results: &[PushResult]) -> Vec<t::PushResult> {
    results
        .iter()
        .map(|r| t::PushResult {
            enrollment_id: r.enrollment_id.clone(),
            push_id: r.id.clone(),
            error: r.error.clone(),
        })
        .collect()
}

/// Push after a successful enqueue. The command is queued either way, so a failed push is reported per
/// device and never turns the answer into an error.
async fn push_after_enqueue(s: &AppState, ids: &[String], actor: &Actor) -> Vec<t::PushResult> {
    match s.mdm.admin_push(ids, actor).await {
        Ok(r) => push_json(&r),
        Err(e) => ids
            .iter()
            .map(|id| t::PushResult {
                enrollment_id: id.clone(),
                push_id: None,
                error: Some(format!("the command is queued but the push failed: {e}")),
            })
            .collect(),
    }
}

async fn typed(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::EnqueueCommand>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let cmd = match b.command {
        t::CommandSpec::SecurityInfo => TypedCommand::SecurityInfo,
        t::CommandSpec::UserList => TypedCommand::UserList,
        t::CommandSpec::DeviceInformation => TypedCommand::DeviceInformation,
        t::CommandSpec::DeviceConfigured => TypedCommand::DeviceConfigured,
        t::CommandSpec::Settings {
            bootstrap_token_allowed,
            prompt_user_to_allow_bootstrap_token_for_authentication,
            activation_lock_allowed_while_supervised,
        } => TypedCommand::MdmOptions(service::accounts::MdmOptionsChange {
            bootstrap_token_allowed,
            prompt_user_to_allow_bootstrap_token_for_authentication,
            activation_lock_allowed_while_supervised,
        }),
        t::CommandSpec::EraseDevice {
            pin,
            obliteration_behavior,
        } => {
            let obliteration = match obliteration_behavior.as_deref() {
                None => None,
                Some(o) => match obliteration(o) {
                    Some(o) => Some(o),
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!(
                                "obliteration_behavior {o:?} is not Default, DoNotObliterate, ObliterateWithWarning or Always"
                            ),
                        );
                    }
                },
            };
            TypedCommand::EraseDevice { pin, obliteration }
        }
    };
    let uuid = match s.mdm.admin_enqueue(&b.devices, &cmd, b.force, &actor).await {
        Ok(u) => u,
        Err(e) => return service_error(e),
    };
    let push = if b.push.unwrap_or(true) {
        Some(push_after_enqueue(&s, &b.devices, &actor).await)
    } else {
        None
    };
    views::answer(
        StatusCode::CREATED,
        &t::Enqueued {
            command_uuid: uuid,
            push,
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    devices: String,
    nopush: Option<String>,
    /// Queue an EraseDevice even for a Mac without a usable Bootstrap Token.
    #[serde(default)]
    force: bool,
}

async fn raw(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    q: Result<Query<RawQuery>, QueryRejection>,
    body: Bytes,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let ids = match split_ids(&q.devices) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let uuid = match s.mdm.admin_enqueue_raw(&ids, &body, q.force, &actor).await {
        Ok(u) => u,
        Err(e) => return service_error(e),
    };
    let push = if q.nopush.is_none() {
        Some(push_after_enqueue(&s, &ids, &actor).await)
    } else {
        None
    };
    views::answer(
        StatusCode::CREATED,
        &t::Enqueued {
            command_uuid: uuid,
            push,
        },
    )
}

async fn push(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::PushDevices>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    match s.mdm.admin_push(&b.devices, &actor).await {
        Ok(r) => views::ok(&t::PushResults {
            results: push_json(&r),
        }),
        Err(e) => service_error(e),
    }
}
