//! The `troubleshoot` action's commands (SOTI's list) run through the agent library against the fake macOS
//! tools: the right commands in order, `profiles validate` only with an admin, the password never in argv or
//! output, hostile output (huge, binary, control characters) cleaned and capped, a hung tool reported.

mod support;

use agent::actions::Credentials;
use agent::mac::Mac;
use agent::troubleshoot;
use protocol::agent_profile::{CommandRunWire, MAX_COMMAND_OUTPUT};
use support::{FakeMac, typical_mac};
use vault::Secret;

fn run(mac: &FakeMac, admin: Option<(&str, &str)>) -> Vec<CommandRunWire> {
    let creds = admin.map(|(user, pw)| Credentials {
        user: user.into(),
        password: Secret::new(pw.into()),
    });
    troubleshoot::run(&Mac::new(mac.tools()), creds.as_ref())
}

fn lines(commands: &[CommandRunWire]) -> Vec<&str> {
    commands.iter().map(|c| c.command.as_str()).collect()
}

#[test]
fn without_an_admin_it_runs_the_read_only_commands_for_every_local_user() {
    let mac = typical_mac();
    let commands = run(&mac, None);
    assert_eq!(
        lines(&commands),
        [
            "profiles status -type bootstraptoken",
            "fdesetup list",
            "sysadminctl -secureTokenStatus alice",
            "sysadminctl -secureTokenStatus ladmin",
            "diskutil apfs listcryptousers /",
        ]
    );
    assert!(
        commands
            .iter()
            .all(|c| c.exit_code == Some(0) && !c.truncated)
    );
    assert!(commands[0].output.contains("escrowed to server: NO"));
    assert!(commands[1].output.starts_with("ladmin,"));
    assert!(
        commands[2]
            .output
            .contains("Secure token is DISABLED for user Alice B. Zoë")
    );
    assert!(
        commands[4]
            .output
            .contains("Cryptographic users for disk3s5")
    );
    assert!(troubleshoot::problems(&commands).is_empty());
    assert!(!mac.argv_log().contains("validate"));
}

#[test]
fn with_an_admin_it_also_validates_with_the_password_at_the_prompt_only() {
    let mac = typical_mac();
    mac.set("bt_escrowed", "YES");
    mac.set("bt_on_server", "");
    let commands = run(&mac, Some(("ladmin", "Adm1n-pw!")));
    let last = commands.last().unwrap();
    assert_eq!(
        last.command,
        "profiles validate -type bootstraptoken -user ladmin"
    );
    assert!(
        last.output.contains("Bootstrap Token validated"),
        "{last:?}"
    );
    assert!(troubleshoot::problems(&commands).is_empty());
    let argv = mac.argv_log();
    assert!(argv.contains("profiles validate -type bootstraptoken -user ladmin"));
    for c in &commands {
        assert!(!c.output.contains("Adm1n-pw!") && !c.command.contains("Adm1n-pw!"));
    }
    assert!(!argv.contains("Adm1n-pw!"));
}

#[test]
fn a_wrong_admin_password_or_a_token_the_server_lacks_is_a_problem() {
    let mac = typical_mac();
    let commands = run(&mac, Some(("ladmin", "wrong-pw")));
    let problems = troubleshoot::problems(&commands);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("did not get the Bootstrap Token back"));
    assert!(
        commands
            .last()
            .unwrap()
            .output
            .contains("Unable to authenticate")
    );
}

#[test]
fn an_admin_that_is_not_a_local_user_is_still_checked() {
    let mac = typical_mac();
    let commands = run(&mac, Some(("ladmin_ade", "x")));
    assert!(lines(&commands).contains(&"sysadminctl -secureTokenStatus ladmin_ade"));
}

#[test]
fn hostile_output_is_cleaned_capped_and_a_leaked_password_redacted() {
    let mac = typical_mac();
    let mut hostile = b"\x1b[2J\x1b]0;pwned\x07\x00\xff\xfe binary \r\n".to_vec();
    hostile.extend(std::iter::repeat_n(b'A', 200_000));
    std::fs::write(mac.path("override_fdesetup"), &hostile).unwrap();
    mac.set(
        "override_profiles",
        "profiles: password is Adm1n-pw! \u{202e}gnp.exe\n",
    );
    let commands = run(&mac, Some(("ladmin", "Adm1n-pw!")));
    let fde = commands
        .iter()
        .find(|c| c.command == "fdesetup list")
        .unwrap();
    assert!(fde.truncated);
    assert!(fde.output.len() <= MAX_COMMAND_OUTPUT);
    assert!(
        fde.output.starts_with(
            "\u{fffd}[2J\u{fffd}]0;pwned\u{fffd}\u{fffd}\u{fffd}\u{fffd} binary \nAAA"
        )
    );
    for c in &commands {
        assert!(
            !c.output
                .chars()
                .any(|ch| ch.is_control() && ch != '\n' && ch != '\t'),
            "{c:?}"
        );
        assert!(!c.output.contains("Adm1n-pw!"), "{c:?}");
        assert!(!c.output.contains('\u{202e}'));
    }
    let status = &commands[0];
    assert!(
        status.output.contains("password is [redacted]"),
        "{status:?}"
    );
}

#[test]
fn a_hung_or_missing_tool_is_reported_without_an_exit_code() {
    let mac = typical_mac();
    mac.set("hang_diskutil", "");
    let mut tools = mac.tools();
    tools.timeout = std::time::Duration::from_secs(1);
    let commands = troubleshoot::run(&Mac::new(tools), None);
    let disk = commands.last().unwrap();
    assert_eq!(disk.command, "diskutil apfs listcryptousers /");
    assert_eq!(disk.exit_code, None);
    assert!(disk.output.contains("did not finish"), "{disk:?}");
    assert!(
        troubleshoot::problems(&commands)
            .iter()
            .any(|p| p.contains("diskutil"))
    );

    // No tools at all: every command says so, and no user can be listed.
    let nothing = troubleshoot::run(
        &Mac::new(agent::tools::Tools::with_path("/nonexistent")),
        None,
    );
    assert_eq!(
        lines(&nothing),
        [
            "profiles status -type bootstraptoken",
            "fdesetup list",
            "dscl . -list /Users UniqueID",
            "diskutil apfs listcryptousers /",
        ]
    );
    assert!(
        nothing
            .iter()
            .all(|c| c.exit_code.is_none() && c.output.contains("not found on PATH"))
    );
}
