//! NanoMDM's answer to `/v1/enqueue` and `/v1/push`, in NanoMDM's exact shape: every field is left out when
//! empty, so these types are not closed like the other answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happened for one enrollment id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NanoMdmDeviceResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_error: Option<String>,
    /// The apns-id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_error: Option<String>,
}

/// NanoMDM's API result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NanoMdmResult {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status: BTreeMap<String, NanoMdmDeviceResult>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_push: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
}

impl NanoMdmResult {
    /// How many enrollment ids failed (a push or command error).
    pub fn failed(&self) -> usize {
        self.status
            .values()
            .filter(|r| r.push_error.is_some() || r.command_error.is_some())
            .count()
    }
}
