//! The command channel: poll with Idle, answer each command from the model, until the server has nothing
//! left (an empty 200).

use plist::{Dictionary, Value};
use protocol::command::{Command, ObliterationBehavior, Status};

use super::{ClientError, MAX_COMMANDS_PER_POLL, VirtualMac};
use crate::mac::{EraseOutcome, FetchReason, OsVersion, Served};
use crate::reports;

/// The MDMOptions keys macOS knows; a Settings item that leaves one out sets it to false.
const MDM_OPTION_KEYS: [&str; 3] = [
    "BootstrapTokenAllowed",
    "PromptUserToAllowBootstrapTokenForAuthentication",
    "ActivationLockAllowedWhileSupervised",
];

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// `(RequestType, Status we answered)` in order.
    pub answered: Vec<(String, &'static str)>,
    /// The Mac was erased (it stops polling: the enrollment is gone).
    pub erased: bool,
}

/// How the Mac answers one command.
struct Answer {
    status: Status,
    result: Dictionary,
    error: Option<(i64, &'static str)>,
}

impl Answer {
    fn ack(result: Dictionary) -> Answer {
        Answer {
            status: Status::Acknowledged,
            result,
            error: None,
        }
    }

    fn error(code: i64, text: &'static str) -> Answer {
        Answer {
            status: Status::Error,
            result: Dictionary::new(),
            error: Some((code, text)),
        }
    }
}

impl VirtualMac {
    /// Poll the command channel and answer commands until the server sends none.
    pub async fn poll(&mut self) -> Result<PollSummary, ClientError> {
        let mut summary = PollSummary::default();
        let body = reports::report(&self.mac, Status::Idle, None, Dictionary::new(), None)?;
        let (mut status, mut reply) = self.connect(body).await?;
        for _ in 0..MAX_COMMANDS_PER_POLL {
            if status != 200 {
                return Err(ClientError::Status {
                    what: "command report",
                    status,
                });
            }
            if reply.is_empty() {
                break;
            }
            let erases_before = self.mac.erase_count;
            let (uuid, request_type, answer) = match Command::from_raw_plist(&reply) {
                Ok(cmd) => {
                    let answer = self.answer(&cmd).await?;
                    (cmd.uuid, cmd.request_type, answer)
                }
                Err(_) => {
                    // Real Macs answer CommandFormatError; without a readable UUID there is nobody to answer.
                    let uuid = command_uuid_of(&reply).unwrap_or_default();
                    if uuid.is_empty() {
                        break;
                    }
                    let answer = Answer {
                        status: Status::CommandFormatError,
                        result: Dictionary::new(),
                        error: None,
                    };
                    (uuid, "?".into(), answer)
                }
            };
            summary
                .answered
                .push((request_type.clone(), answer.status.as_str()));
            let body = reports::report(
                &self.mac,
                answer.status,
                Some(&uuid),
                answer.result,
                answer.error,
            )?;
            (status, reply) = self.connect(body).await?;
            if self.mac.erase_count > erases_before {
                summary.erased = true;
                break;
            }
        }
        Ok(summary)
    }

    async fn answer(&mut self, cmd: &Command) -> Result<Answer, ClientError> {
        Ok(match cmd.request_type.as_str() {
            "SecurityInfo" => Answer::ack(reports::security_info(&self.mac)),
            "UserList" => Answer::ack(reports::user_list(&self.mac)),
            "DeviceInformation" => {
                let queries: Vec<String> = match cmd.body.get("Queries") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_string().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                Answer::ack(reports::device_information(&self.mac, &queries))
            }
            "Settings" => self.settings(&cmd.body),
            "DeviceConfigured" => {
                match self.setup_plan.take() {
                    // A primary account that cannot be made (a name clash) leaves no user; the command itself
                    // still succeeded, as on a real Mac.
                    Some(plan) => {
                        let _ = self.mac.finish_setup_assistant(plan.primary);
                    }
                    None => self.mac.device_configured(),
                }
                Answer::ack(Dictionary::new())
            }
            "AccountConfiguration" => {
                match protocol::accounts::AccountConfiguration::from_body(&cmd.body) {
                    Err(_) => Answer {
                        status: Status::CommandFormatError,
                        result: Dictionary::new(),
                        error: None,
                    },
                    Ok(config) => match self.mac.account_configuration(&config) {
                        Ok(()) => Answer::ack(Dictionary::new()),
                        Err(crate::mac::MacError::NotAwaitingConfiguration) => Answer::error(
                            12070,
                            "AccountConfiguration is only allowed while the device awaits configuration",
                        ),
                        Err(_) => Answer::error(12071, "The account could not be created"),
                    },
                }
            }
            "RestartDevice" => self.restart(&cmd.body).await?,
            "EraseDevice" => self.erase(&cmd.body).await?,
            "InstallProfile" => match cmd.body.get("Payload").and_then(Value::as_data) {
                Some(payload) => match self.install_profile_payload(payload).await? {
                    Ok(()) => Answer::ack(Dictionary::new()),
                    Err((code, text)) => Answer::error(code, text),
                },
                None => Answer::error(4000, "InstallProfile carries no Payload"),
            },
            _ => Answer::error(12021, "Unknown command"),
        })
    }

    fn settings(&mut self, body: &Dictionary) -> Answer {
        let Some(Value::Array(items)) = body.get("Settings") else {
            return Answer {
                status: Status::CommandFormatError,
                result: Dictionary::new(),
                error: None,
            };
        };
        for item in items.iter().filter_map(Value::as_dictionary) {
            if item.get("Item").and_then(Value::as_string) != Some("MDMOptions") {
                continue;
            }
            let Some(options) = item.get("MDMOptions").and_then(Value::as_dictionary) else {
                continue;
            };
            // The Mac takes the item as the whole set: a key left out resets to false.
            let mut set: Vec<(String, bool)> = MDM_OPTION_KEYS
                .iter()
                .map(|k| ((*k).to_string(), false))
                .collect();
            for (k, v) in options {
                if let Some(b) = v.as_boolean() {
                    set.retain(|(name, _)| name != k);
                    set.push((k.clone(), b));
                }
            }
            // 10.15 only: MDMOptions BootstrapTokenAllowed stands in for the server capability.
            let is_10_15 = self.mac.os.major == 10 && self.mac.os.minor == 15;
            if is_10_15 {
                self.mac.bt_capability =
                    set.iter().any(|(k, v)| k == "BootstrapTokenAllowed" && *v);
            }
            self.mac.mdm_options = set;
        }
        Answer::ack(Dictionary::new())
    }

    async fn restart(&mut self, body: &Dictionary) -> Result<Answer, ClientError> {
        let rebuild = body
            .get("RebuildKernelCache")
            .and_then(Value::as_boolean)
            .unwrap_or(false);
        if !rebuild {
            return Ok(Answer::ack(Dictionary::new()));
        }
        // §1.6: RebuildKernelCache on Apple silicon needs owner authorisation through the BT.
        match self
            .mac
            .owner_authorized_action(FetchReason::RebuildKernelCache)
        {
            Ok(None) => Ok(Answer::ack(Dictionary::new())),
            Ok(Some(c)) => {
                let d = self.deliver(c).await?;
                Ok(if d.served == Some(Served::Matched) {
                    Answer::ack(Dictionary::new())
                } else {
                    Answer::error(12076, "The bootstrap token could not be retrieved")
                })
            }
            Err(_) => Ok(Answer::error(12076, "Bootstrap token is not available")),
        }
    }

    async fn erase(&mut self, body: &Dictionary) -> Result<Answer, ClientError> {
        let behavior = match body.get("ObliterationBehavior").and_then(Value::as_string) {
            Some("DoNotObliterate") => Some(ObliterationBehavior::DoNotObliterate),
            Some("ObliterateWithWarning") => Some(ObliterationBehavior::ObliterateWithWarning),
            Some("Always") => Some(ObliterationBehavior::Always),
            Some(_) => Some(ObliterationBehavior::Default),
            None => None,
        };
        // ObliterationBehavior exists from macOS 12; older Macs ignore it.
        let behavior = behavior.filter(|_| self.mac.os >= OsVersion::new(12, 0, 0));
        let eacs_ok = match self.mac.erase_preflight() {
            Some(c) => self.deliver(c).await?.served == Some(Served::Matched),
            None => false,
        };
        Ok(match self.mac.finish_erase(eacs_ok, behavior) {
            EraseOutcome::Acknowledged => Answer::ack(Dictionary::new()),
            EraseOutcome::ErrorThenObliterated | EraseOutcome::ErrorNotErased => Answer::error(
                12090,
                "Erase All Content and Settings preflight failed: no Bootstrap Token",
            ),
        })
    }
}

fn command_uuid_of(reply: &[u8]) -> Option<String> {
    protocol::guard::check_xml_plist(
        reply,
        protocol::guard::DEFAULT_MAX_DEPTH,
        protocol::guard::DEFAULT_MAX_BODY,
    )
    .ok()?;
    let v = Value::from_reader_xml(reply).ok()?;
    v.as_dictionary()?
        .get("CommandUUID")?
        .as_string()
        .map(str::to_owned)
}
