//! The command channel under odd input from the server: unknown commands, malformed commands, a queue
//! longer than one poll.

use protocol::command::{Command, Status};
use sim::mac::MacSpec;

use crate::common::*;

fn raw(uuid: &str, body: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict><key>CommandUUID</key>\
         <string>{uuid}</string><key>Command</key><dict>{body}</dict></dict></plist>"
    )
    .into_bytes()
}

#[tokio::test]
async fn unknown_commands_get_an_error_report_and_a_settings_without_items_a_format_error() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("ODD")).await;
    // Answer the inventory queued on enrollment first.
    vm.poll().await.unwrap();
    let ids = vec!["ODD".to_string()];
    let mdm = &ts.running().state.mdm;
    let unknown = mdm
        .enqueue_raw(
            &ids,
            &raw(
                "U-1",
                "<key>RequestType</key><string>InstallWidget</string>",
            ),
        )
        .await
        .unwrap();
    let settings = mdm
        .enqueue_raw(
            &ids,
            &raw("U-2", "<key>RequestType</key><string>Settings</string>"),
        )
        .await
        .unwrap();
    let summary = vm.poll().await.unwrap();
    assert_eq!(
        summary.answered,
        [
            ("InstallWidget".to_string(), "Error"),
            ("Settings".to_string(), "CommandFormatError")
        ]
    );
    let report =
        protocol::command::parse_report(&command_result(&ts, "ODD", &unknown).await).unwrap();
    assert_eq!(report.status, Status::Error);
    assert_eq!(report.error_chain[0].error_code, Some(12021));
    let report =
        protocol::command::parse_report(&command_result(&ts, "ODD", &settings).await).unwrap();
    assert_eq!(report.status, Status::CommandFormatError);
}

#[tokio::test]
async fn one_poll_answers_at_most_the_cap_and_the_next_poll_drains_the_rest() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("MANY")).await;
    // Answer the inventory queued on enrollment first.
    vm.poll().await.unwrap();
    let extra = 6;
    for _ in 0..sim::client::MAX_COMMANDS_PER_POLL + extra {
        ts.running()
            .state
            .mdm
            .enqueue(&["MANY".to_string()], &Command::security_info(new_uuid()))
            .await
            .unwrap();
    }
    assert_eq!(
        vm.poll().await.unwrap().answered.len(),
        sim::client::MAX_COMMANDS_PER_POLL
    );
    assert_eq!(vm.poll().await.unwrap().answered.len(), extra);
    assert_eq!(ts.store().active_queue_len("MANY").await.unwrap(), 0);
}

#[tokio::test]
async fn settings_mdm_options_are_kept_and_reported_back_in_device_information() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("OPTS")).await;
    let options = protocol::command::MdmOptions {
        prompt_user_to_allow_bootstrap_token_for_authentication: true,
        ..Default::default()
    };
    run_command(
        &ts,
        &mut vm,
        Command::settings_mdm_options(new_uuid(), &options),
    )
    .await;
    let uuid = run_command(
        &ts,
        &mut vm,
        Command::device_information(new_uuid(), &["MDMOptions"]),
    )
    .await;
    let report =
        protocol::command::parse_report(&command_result(&ts, "OPTS", &uuid).await).unwrap();
    let info = protocol::command::DeviceInformation::from_report(&report)
        .unwrap()
        .unwrap();
    let opts = info.mdm_options.unwrap();
    assert_eq!(
        opts.get("PromptUserToAllowBootstrapTokenForAuthentication")
            .and_then(|v| v.as_boolean()),
        Some(true)
    );
}
