//! The admin API's answers as the shared types of `apitypes`, built from store and service records, and the
//! shared shapes (`components/schemas`) they are documented by. The device view itself (which source wins,
//! the enrollment type) is `service::device_view`. Built from metadata only: no function here can see a token
//! or a key hash.

use apitypes as t;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use service::admin::{Fact, MergedUser};
use service::diagnosis::{Finding, Severity};
use store::{ApiKey, ApiScope, CommandStatus, Event, FactSource, Group, Outcome, QueuedCommand};

use super::Api;

/// The shapes shared by several routes, and the error answer.
pub(super) fn components(api: Api) -> Api {
    api.component_of::<t::Device>()
        .component_of::<t::DeviceDetail>()
        .component_of::<t::User>()
        .component_of::<t::EventPage>()
        .component_of::<t::Group>()
        .component_of::<t::Command>()
        .component_of::<t::Finding>()
        .component_of::<t::ApiKey>()
        .component_of::<t::ErrorAnswer>()
}

/// `value` as a JSON answer with `status`. Serialized through `serde_json::Value` so the keys come out in the
/// same (sorted) order as ever.
pub(crate) fn answer<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an answer did not serialize");
            super::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
        }
    }
}

/// `value` as a 200 JSON answer.
pub(crate) fn ok<T: Serialize>(value: &T) -> Response {
    answer(StatusCode::OK, value)
}

fn source(s: FactSource) -> t::FactSource {
    match s {
        FactSource::Mdm => t::FactSource::Mdm,
        FactSource::Agent => t::FactSource::Agent,
    }
}

fn fact(f: &Option<Fact<bool>>) -> Option<t::Fact> {
    f.as_ref().map(|f| t::Fact {
        value: f.value,
        source: source(f.source),
        at: f.at,
        conflict: f.conflict.as_ref().map(|c| t::Conflict {
            value: c.value,
            source: source(c.source),
            at: c.at,
        }),
    })
}

pub(super) fn user(u: &MergedUser) -> t::User {
    t::User {
        user_key: u.user_key.clone(),
        guid: u.guid.clone(),
        short_name: u.short_name.clone(),
        full_name: u.full_name.clone(),
        uid: u.uid,
        has_secure_token: fact(&u.has_secure_token),
        mobile_account: fact(&u.mobile_account),
        is_logged_in: fact(&u.is_logged_in),
        is_admin: fact(&u.is_admin),
        filevault_enabled: fact(&u.filevault_enabled),
        volume_owner: fact(&u.volume_owner),
        managed_admin: fact(&u.managed_admin),
    }
}

pub(super) fn event(e: &Event) -> t::Event {
    t::Event {
        id: e.id,
        subject: e.subject.clone(),
        enrollment_id: e.enrollment_id.clone(),
        kind: e.kind.clone(),
        outcome: match e.outcome {
            Outcome::Success => t::Outcome::Success,
            Outcome::Failure => t::Outcome::Failure,
            Outcome::Refused => t::Outcome::Refused,
        },
        detail: e.detail.clone(),
        at: e.at,
    }
}

pub(super) fn group(g: &Group) -> t::Group {
    t::Group {
        id: g.id.clone(),
        name: g.name.clone(),
        bootstrap_escrow_enabled: g.bootstrap_escrow_enabled,
        prompt_user_to_allow_bootstrap_token_for_authentication: g
            .prompt_user_to_allow_bootstrap_token_for_authentication,
        created_at: g.created_at,
        updated_at: g.updated_at,
    }
}

pub(super) fn command(c: &QueuedCommand) -> t::Command {
    t::Command {
        enrollment_id: c.enrollment_id.clone(),
        uuid: c.uuid.clone(),
        request_type: c.request_type.clone(),
        status: match c.status {
            CommandStatus::Pending => t::CommandStatus::Pending,
            CommandStatus::NotNow => t::CommandStatus::NotNow,
            CommandStatus::Acknowledged => t::CommandStatus::Acknowledged,
            CommandStatus::Error => t::CommandStatus::Error,
            CommandStatus::CommandFormatError => t::CommandStatus::CommandFormatError,
        },
        result: c
            .result
            .as_ref()
            .map(|r| String::from_utf8_lossy(r).into_owned()),
        carries_secret: c.carries_secret,
        payload: String::from_utf8_lossy(&c.payload).into_owned(),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

pub(super) fn finding(f: &Finding) -> t::Finding {
    t::Finding {
        code: f.code.to_string(),
        severity: match f.severity {
            Severity::Info => t::Severity::Info,
            Severity::Warning => t::Severity::Warning,
            Severity::Critical => t::Severity::Critical,
        },
        summary: f.summary.clone(),
        evidence: f.evidence.clone(),
        fix: f.fix.clone(),
    }
}

pub(super) fn api_key(k: &ApiKey) -> t::ApiKey {
    t::ApiKey {
        id: k.id.clone(),
        name: k.name.clone(),
        scope: match k.scope {
            ApiScope::Read => t::Scope::Read,
            ApiScope::Operate => t::Scope::Operate,
            ApiScope::Admin => t::Scope::Admin,
        },
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    }
}

pub(super) fn renewal(r: &store::IdentityRenewal) -> t::Renewal {
    t::Renewal {
        command_uuid: r.command_uuid.clone(),
        queued_at: r.queued_at,
        challenge_expires_at: r.challenge_expires_at,
        renews_certificate_expiring_at: r.renews_not_after,
    }
}
