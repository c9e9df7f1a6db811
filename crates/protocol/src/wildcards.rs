//! Enrollment-data wildcards (`%serial%`, `%device_name%`, `%username%`) in action fields, Hexnode style.
//!
//! Only these three exact tokens are replaced; every other `%` is literal, so a password such as `50%off%`
//! passes through untouched. A token whose value is unknown is an error, never an empty string.

use vault::Secret;

#[derive(Debug, Clone, Default)]
pub struct EnrollmentData {
    pub serial: Option<String>,
    pub device_name: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WildcardError {
    #[error("the field uses {wildcard} but this device has no value for it")]
    MissingValue { wildcard: &'static str },
}

pub const WILDCARDS: [&str; 3] = ["%serial%", "%device_name%", "%username%"];

pub fn expand(template: &str, data: &EnrollmentData) -> Result<String, WildcardError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        for (wildcard, value) in [
            ("%serial%", &data.serial),
            ("%device_name%", &data.device_name),
            ("%username%", &data.username),
        ] {
            if let Some(after) = tail.strip_prefix(wildcard) {
                out.push_str(
                    value
                        .as_deref()
                        .ok_or(WildcardError::MissingValue { wildcard })?,
                );
                rest = after;
                continue 'scan;
            }
        }
        out.push('%');
        rest = &tail[1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The same for a password; the expansion never leaves a copy outside a `Secret`.
pub fn expand_secret(
    template: &Secret<String>,
    data: &EnrollmentData,
) -> Result<Secret<String>, WildcardError> {
    expand(template.expose(), data).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> EnrollmentData {
        EnrollmentData {
            serial: Some("C02XK1ZZJGH5".into()),
            device_name: Some("Zoë’s MacBook".into()),
            username: Some("zoe".into()),
        }
    }

    #[test]
    fn all_three_wildcards_expand_anywhere_and_repeatedly() {
        assert_eq!(
            expand("%username%-%serial%@%device_name%/%username%", &data()).unwrap(),
            "zoe-C02XK1ZZJGH5@Zoë’s MacBook/zoe"
        );
    }

    #[test]
    fn other_percent_signs_are_literal() {
        assert_eq!(expand("50%off%", &data()).unwrap(), "50%off%");
        assert_eq!(expand("%", &data()).unwrap(), "%");
        assert_eq!(expand("%%serial%%", &data()).unwrap(), "%C02XK1ZZJGH5%");
        assert_eq!(expand("%SERIAL%", &data()).unwrap(), "%SERIAL%");
        assert_eq!(expand("%serial", &data()).unwrap(), "%serial");
    }

    #[test]
    fn a_wildcard_without_a_value_is_an_error_not_an_empty_string() {
        let err = expand("pw-%serial%", &EnrollmentData::default()).unwrap_err();
        assert_eq!(
            err,
            WildcardError::MissingValue {
                wildcard: "%serial%"
            }
        );
        assert_eq!(
            expand("no wildcards", &EnrollmentData::default()).unwrap(),
            "no wildcards"
        );
    }

    #[test]
    fn secret_expansion_stays_secret() {
        let s = expand_secret(&Secret::new("x%serial%".to_string()), &data()).unwrap();
        assert_eq!(s.expose(), "xC02XK1ZZJGH5");
        assert!(!format!("{s:?}").contains("C02"));
    }
}
