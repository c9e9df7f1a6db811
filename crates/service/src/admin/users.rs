//! Merging a device's user rows from every source (MDM's UserList, the agent) into one row per user, each
//! fact with its source and time, the newest observation winning.

use store::{DeviceUser, FactSource, Millis};

/// One fact about a user with where it came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub source: FactSource,
    pub at: Millis,
    /// Another source said otherwise (earlier, or at the same time): shown as a conflict, not used.
    pub conflict: Option<Conflict<T>>,
}

impl<T> Fact<T> {
    pub fn new(value: T, source: FactSource, at: Millis) -> Self {
        Fact {
            value,
            source,
            at,
            conflict: None,
        }
    }
}

/// What the losing source said about a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<T> {
    pub value: T,
    pub source: FactSource,
    pub at: Millis,
}

/// One local user of a device, merging every source: MDM's UserList row and the agent's row of the same user
/// (same UserGUID / GeneratedUID, else same short name) are one user; per fact the newest observation wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedUser {
    pub user_key: String,
    /// The user's GUID (MDM's UserGUID, the agent's GeneratedUID), when a source reported it.
    pub guid: Option<String>,
    pub short_name: Option<String>,
    pub full_name: Option<String>,
    pub uid: Option<i64>,
    pub has_secure_token: Option<Fact<bool>>,
    pub mobile_account: Option<Fact<bool>>,
    pub is_logged_in: Option<Fact<bool>>,
    pub is_admin: Option<Fact<bool>>,
    pub filevault_enabled: Option<Fact<bool>>,
    pub volume_owner: Option<Fact<bool>>,
    /// The agent's word that this is the ADE managed admin (the management account).
    pub managed_admin: Option<Fact<bool>>,
}

impl MergedUser {
    /// The short name, else the key: how findings and reports name the user.
    pub fn name(&self) -> &str {
        self.short_name.as_deref().unwrap_or(&self.user_key)
    }

    /// Every fact with a conflict, by field name.
    pub fn conflicts(&self) -> Vec<(&'static str, &Fact<bool>)> {
        [
            ("has_secure_token", &self.has_secure_token),
            ("mobile_account", &self.mobile_account),
            ("is_logged_in", &self.is_logged_in),
            ("is_admin", &self.is_admin),
            ("filevault_enabled", &self.filevault_enabled),
            ("volume_owner", &self.volume_owner),
            ("managed_admin", &self.managed_admin),
        ]
        .into_iter()
        .filter_map(|(n, f)| f.as_ref().filter(|f| f.conflict.is_some()).map(|f| (n, f)))
        .collect()
    }
}

/// Whether `new` beats `old` for one fact: the newer observation wins; at the same time the agent's (it reads
/// the Mac's own tools). `store`'s SQL counts (`shared/devices.rs`, `lacks_secure_token!`) use the same rule.
fn newer(new: (FactSource, Millis), old: (FactSource, Millis)) -> bool {
    new.1 > old.1 || (new.1 == old.1 && new.0 == FactSource::Agent && old.0 != FactSource::Agent)
}

/// Group rows into users: rows sharing a key (MDM and agent rows of one user share its GUID key) are one user;
/// a group that carries no GUID (an older agent's row keyed by short name) joins the one other group with the
/// same short name.
fn group_rows(rows: Vec<DeviceUser>) -> Vec<Vec<DeviceUser>> {
    let mut groups: Vec<Vec<DeviceUser>> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|g| g[0].user_key == r.user_key) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let short = |g: &Vec<DeviceUser>| g.iter().find_map(|r| r.short_name.clone());
    let mut i = 0;
    while i < groups.len() {
        let lone = groups[i].iter().all(|r| r.guid.is_none());
        let name = short(&groups[i]);
        let partners: Vec<usize> = match (&name, lone) {
            (Some(n), true) => (0..groups.len())
                .filter(|&j| j != i && short(&groups[j]).as_ref() == Some(n))
                .collect(),
            _ => Vec::new(),
        };
        if let [j] = partners[..] {
            let moved = groups.remove(i);
            let j = if j > i { j - 1 } else { j };
            groups[j].extend(moved);
            i = 0;
        } else {
            i += 1;
        }
    }
    groups
}

/// One fact of a user from its rows: the newest value wins; the newest differing value is its conflict.
fn merge_fact(
    rows: &[DeviceUser],
    get: impl Fn(&DeviceUser) -> Option<bool>,
) -> Option<Fact<bool>> {
    let mut said: Vec<(bool, FactSource, Millis)> = rows
        .iter()
        .filter_map(|r| get(r).map(|v| (v, r.source, r.observed_at)))
        .collect();
    // Winner first: newest, a tie to the agent.
    said.sort_by(|a, b| {
        if newer((a.1, a.2), (b.1, b.2)) {
            std::cmp::Ordering::Less
        } else if newer((b.1, b.2), (a.1, a.2)) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let (value, source, at) = *said.first()?;
    let conflict = said
        .iter()
        .find(|(v, _, _)| *v != value)
        .map(|&(value, source, at)| Conflict { value, source, at });
    Some(Fact {
        value,
        source,
        at,
        conflict,
    })
}

/// Merge a device's rows (every source) into one row per user, in key order.
pub fn merge_users(rows: Vec<DeviceUser>) -> Vec<MergedUser> {
    let mut out: Vec<MergedUser> = group_rows(rows)
        .into_iter()
        .map(|mut g| {
            // Newest row first, so names come from the latest report that has them.
            g.sort_by_key(|r| std::cmp::Reverse(r.observed_at));
            let keyed = g.iter().find(|r| r.guid.is_some()).unwrap_or(&g[0]);
            MergedUser {
                user_key: keyed.user_key.clone(),
                guid: g.iter().find_map(|r| r.guid.clone()),
                short_name: g.iter().find_map(|r| r.short_name.clone()),
                full_name: g.iter().find_map(|r| r.full_name.clone()),
                uid: g.iter().find_map(|r| r.uid),
                has_secure_token: merge_fact(&g, |r| r.has_secure_token),
                mobile_account: merge_fact(&g, |r| r.mobile_account),
                is_logged_in: merge_fact(&g, |r| r.is_logged_in),
                is_admin: merge_fact(&g, |r| r.is_admin),
                filevault_enabled: merge_fact(&g, |r| r.filevault_enabled),
                volume_owner: merge_fact(&g, |r| r.volume_owner),
                managed_admin: merge_fact(&g, |r| r.managed_admin),
            }
        })
        .collect();
    out.sort_by(|a, b| a.user_key.cmp(&b.user_key));
    out
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn row(
        source: FactSource,
        key: &str,
        name: &str,
        guid: Option<&str>,
        st: Option<bool>,
        at: Millis,
    ) -> DeviceUser {
        DeviceUser {
            device_id: "D".into(),
            source,
            user_key: key.into(),
            short_name: Some(name.into()),
            full_name: None,
            uid: Some(501),
            guid: guid.map(str::to_string),
            has_secure_token: st,
            mobile_account: None,
            is_logged_in: None,
            is_admin: (source == FactSource::Agent).then_some(true),
            filevault_enabled: None,
            volume_owner: None,
            managed_admin: None,
            observed_at: at,
        }
    }

    const G: &str = "85F41F44-22B3-6CB7-85A1-BCC2EA2B887A";

    #[test]
    fn one_row_per_user_with_the_newest_fact_and_the_older_one_as_a_conflict() {
        let users = merge_users(vec![
            row(FactSource::Agent, G, "ladmin", Some(G), Some(true), 200),
            row(FactSource::Mdm, G, "ladmin", Some(G), Some(false), 100),
        ]);
        assert_eq!(users.len(), 1);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.value, st.source, st.at), (true, FactSource::Agent, 200));
        assert_eq!(
            st.conflict,
            Some(Conflict {
                value: false,
                source: FactSource::Mdm,
                at: 100
            })
        );
        assert_eq!(users[0].conflicts().len(), 1);
        // Agreement is no conflict; a later MDM answer wins.
        let users = merge_users(vec![
            row(FactSource::Agent, G, "ladmin", Some(G), Some(true), 200),
            row(FactSource::Mdm, G, "ladmin", Some(G), Some(true), 300),
        ]);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.source, st.conflict.clone()), (FactSource::Mdm, None));
    }

    #[test]
    fn an_agent_row_without_a_guid_joins_the_user_of_the_same_short_name() {
        let users = merge_users(vec![
            row(FactSource::Agent, "kiosk", "kiosk", None, Some(true), 200),
            row(FactSource::Mdm, G, "kiosk", Some(G), Some(true), 100),
            row(FactSource::Mdm, "B", "bob", Some("B"), Some(false), 100),
        ]);
        assert_eq!(users.len(), 2, "{users:?}");
        let kiosk = users.iter().find(|u| u.name() == "kiosk").unwrap();
        assert_eq!(kiosk.user_key, G);
        assert_eq!(kiosk.guid.as_deref(), Some(G));
        assert_eq!(kiosk.is_admin.as_ref().map(|f| f.value), Some(true));
    }

    #[test]
    fn a_tie_goes_to_the_agent_and_is_still_shown_as_a_conflict() {
        let users = merge_users(vec![
            row(FactSource::Mdm, G, "a", Some(G), Some(true), 100),
            row(FactSource::Agent, G, "a", Some(G), Some(false), 100),
        ]);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.value, st.source), (false, FactSource::Agent));
        assert!(st.conflict.is_some());
    }
}
