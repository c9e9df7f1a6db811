//! Human-readable output of the agent binary: the inventory table and one run cycle's summary.

use std::time::Duration;

use agent::client;
use agent::inventory::Inventory;

pub(crate) fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

pub(crate) fn print_inventory_table(inv: &Inventory) {
    let mut table = comfy_table::Table::new();
    table.set_header([
        "User",
        "UID",
        "Name",
        "Admin",
        "Secure Token",
        "FileVault",
        "Volume owner",
    ]);
    for u in &inv.users {
        let name = if u.managed_admin {
            format!("{} (managed admin)", u.short_name)
        } else {
            u.short_name.clone()
        };
        table.add_row([
            name,
            u.uid.to_string(),
            u.real_name.clone().unwrap_or_default(),
            yes_no(Some(u.admin)).into(),
            yes_no(u.secure_token).into(),
            yes_no(Some(u.filevault)).into(),
            yes_no(u.volume_owner).into(),
        ]);
    }
    println!("{table}");
    if let Some(os) = &inv.os_version {
        println!("macOS {os}");
    }
    match inv.bootstrap_token {
        Some(bt) => println!(
            "Bootstrap Token: supported on server {}, escrowed {}",
            yes_no(Some(bt.supported)),
            yes_no(Some(bt.escrowed))
        ),
        None => println!("Bootstrap Token: unknown"),
    }
    if let Some(c) = &inv.crypto_users {
        println!(
            "APFS crypto users on {}: {} ({} Secure Token holder(s); Bootstrap Token key {})",
            c.disk,
            c.users.len(),
            c.token_holder_count(),
            if c.has_bootstrap_token_key() {
                "present"
            } else {
                "absent"
            }
        );
    }
    for p in &inv.problems {
        eprintln!("warning: {p}");
    }
}

/// Prints one run cycle and when the next comes; true when every action succeeded and every report was
/// delivered.
pub(crate) fn print_cycle(
    cycle: &Result<client::CycleReport, client::ClientError>,
    json: bool,
    next: Option<Duration>,
) -> bool {
    let next_secs = next.map(|d| d.as_secs());
    let report = match cycle {
        Ok(r) => r,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "actions": [], "inventory_users": null, "errors": [e.to_string()], "next_poll_secs": next_secs})
                );
            } else {
                eprintln!("error: {e}");
                if let Some(n) = next_secs {
                    println!("next poll in {n}s (backing off after failures)");
                }
            }
            return false;
        }
    };
    let ok = report.errors.is_empty() && report.actions.iter().all(|(_, _, r)| r.succeeded);
    if json {
        let actions: Vec<_> = report
            .actions
            .iter()
            .map(|(id, kind, r)| serde_json::json!({"id": id, "kind": kind, "succeeded": r.succeeded, "reason": r.reason}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"ok": ok, "actions": actions, "inventory_users": report.inventory_users, "errors": report.errors, "next_poll_secs": next_secs})
        );
    } else {
        for (id, kind, r) in &report.actions {
            match &r.reason {
                None => println!("action {id} {kind}: succeeded"),
                Some(reason) => println!("action {id} {kind}: failed: {reason}"),
            }
        }
        if let Some(n) = report.inventory_users {
            println!("inventory: {n} user(s) reported");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        match next_secs {
            Some(n) if !report.errors.is_empty() => {
                println!("next poll in {n}s (backing off after failures)")
            }
            Some(n) => println!("next poll in {n}s"),
            None => {}
        }
    }
    ok
}
