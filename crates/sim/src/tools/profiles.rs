//! `profiles … -type bootstraptoken` (§1.8). Offline: "the server" is the model's `server_copy`, which
//! accepts an escrow whenever the Mac may escrow (capability advertised, enrolled).

use super::{Stdin, ToolOutput, ask, flag_value};
use crate::mac::{Checkin, FetchReason, Mac, MacError, Served};

const UNABLE_TO_AUTHENTICATE: &str = "Unable to authenticate user information.\n";

pub(super) fn run(args: &[String], mac: &mut Mac, stdin: &mut dyn Stdin) -> ToolOutput {
    let Some(verb) = args.first().map(String::as_str) else {
        return ToolOutput::usage(
            "profiles",
            "usage: profiles <status|install|remove|validate> -type bootstraptoken",
        );
    };
    if flag_value(args, "-type").as_deref() != Some("bootstraptoken") {
        return ToolOutput::usage("profiles", "only -type bootstraptoken is simulated");
    }
    match verb {
        "status" => status(mac),
        "install" => install(args, mac, stdin),
        "remove" => remove(mac),
        "validate" => validate(args, mac, stdin),
        other => ToolOutput::usage("profiles", &format!("unknown verb {other:?}")),
    }
}

/// §1.8: two lines on stdout, or one line when the server does not support it.
fn status(mac: &Mac) -> ToolOutput {
    let (supported, escrowed) = mac.profiles_status();
    if !supported {
        return ToolOutput::out("profiles: Bootstrap Token supported on server: NO\n");
    }
    ToolOutput::out(format!(
        "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: {}\n",
        if escrowed { "YES" } else { "NO" }
    ))
}

/// §1.8: prompts `Enter the admin user name:` and `Enter the password for user '<name>':` unless `-user` and
/// `-password` are given.
fn install(args: &[String], mac: &mut Mac, stdin: &mut dyn Stdin) -> ToolOutput {
    let mut prompts = String::new();
    let user = match flag_value(args, "-user") {
        Some(u) => u,
        None => ask(stdin, &mut prompts, "Enter the admin user name:")
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    let password = match flag_value(args, "-password") {
        Some(p) => p,
        None => ask(
            stdin,
            &mut prompts,
            &format!("Enter the password for user '{user}':"),
        )
        .unwrap_or_default(),
    };
    let mut out = match mac.profiles_install(&user, &password) {
        Ok(Checkin::SetBootstrapToken(token)) => {
            mac.escrow_answered(&token, true);
            // §1.8: one script waits for this line (unverified upstream).
            ToolOutput::out("profiles: Bootstrap Token escrowed successfully\n")
        }
        Ok(_) => ToolOutput::err("profiles: unexpected state\n", 1),
        Err(MacError::BadCredentials(_) | MacError::NoSuchUser(_)) => {
            ToolOutput::err(UNABLE_TO_AUTHENTICATE, 1)
        }
        // Not documented: our wording.
        Err(e) => ToolOutput::err(
            format!("profiles: Unable to install Bootstrap Token: {e}\n"),
            1,
        ),
    };
    out.stdout.insert_str(0, &prompts);
    out
}

/// Not documented: prints nothing on success.
fn remove(mac: &mut Mac) -> ToolOutput {
    match mac.profiles_remove() {
        Ok(_) => {
            mac.clear_answered(true);
            ToolOutput::default()
        }
        Err(e) => ToolOutput::err(
            format!("profiles: Unable to remove Bootstrap Token: {e}\n"),
            1,
        ),
    }
}

/// §1.8: `profiles: Bootstrap Token validated.`, `Unable to authenticate user information.` or
/// `Unable to verify token (err = -69594).` (streams and exit codes inferred: success on stdout with 0,
/// failures on stderr with 1). Without `-password` it prompts for it, as `install` does.
fn validate(args: &[String], mac: &mut Mac, stdin: &mut dyn Stdin) -> ToolOutput {
    let mut prompts = String::new();
    let user = flag_value(args, "-user").unwrap_or_default();
    let password = match flag_value(args, "-password") {
        Some(p) => p,
        None => ask(
            stdin,
            &mut prompts,
            &format!("Enter the password for user '{user}':"),
        )
        .unwrap_or_default(),
    };
    let mut out = validate_with(mac, &user, &password);
    out.stdout.insert_str(0, &prompts);
    out
}

fn validate_with(mac: &mut Mac, user: &str, password: &str) -> ToolOutput {
    match mac.profiles_validate(user, password) {
        Ok(_) => {
            let served = mac.server_copy.as_ref().map(|t| t.bytes());
            match mac.bootstrap_token_served(&FetchReason::Validate, served.as_deref()) {
                Served::Matched => ToolOutput::out("profiles: Bootstrap Token validated.\n"),
                Served::Empty | Served::Mismatch => {
                    ToolOutput::err("Unable to verify token (err = -69594).\n", 1)
                }
            }
        }
        Err(MacError::BadCredentials(_) | MacError::NoSuchUser(_)) => {
            ToolOutput::err(UNABLE_TO_AUTHENTICATE, 1)
        }
        Err(_) => ToolOutput::err("Unable to verify token (err = -69594).\n", 1),
    }
}
