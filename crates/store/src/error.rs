//! The store's one error type. Guarantees: no message carries a bound parameter value (sealed blobs, push
//! tokens, fingerprints) or a database password; driver errors are reduced to the database's own message.

/// Everything a [`crate::Store`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is not supported: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// Result of every store call.
pub type Result<T> = std::result::Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                // The database's primary message names constraints and types, never bound values
                // (PostgreSQL puts those in `detail`, which is deliberately left out).
                let msg = match db.code() {
                    Some(code) => format!("{} (code {code})", db.message()),
                    None => db.message().to_string(),
                };
                if db.is_unique_violation() {
                    StoreError::Conflict(msg)
                } else if db.is_foreign_key_violation() {
                    StoreError::NotFound(msg)
                } else {
                    StoreError::Database(msg)
                }
            }
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            // The source of an encode/decode error may quote the value: name the column only.
            sqlx::Error::Encode(_) => StoreError::Database("a value could not be encoded".into()),
            sqlx::Error::Decode(_) => {
                StoreError::Database("a stored value could not be decoded".into())
            }
            sqlx::Error::ColumnDecode { index, .. } => StoreError::Database(format!(
                "stored value in column {index} could not be decoded"
            )),
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e.to_string())
    }
}

/// `url` with any password replaced by `***`, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_hides_the_password_and_keeps_the_rest() {
        let r = redact_url("mysql://admin:hunter2@db.example:3306/escrow?x=1");
        assert_eq!(r, "mysql://admin:***@db.example:3306/escrow?x=1");
    }

    #[test]
    fn redacted_url_without_credentials_is_unchanged() {
        assert_eq!(
            redact_url("mysql://db.example/escrow"),
            "mysql://db.example/escrow"
        );
        assert_eq!(
            redact_url("mysql://root@db/escrow"),
            "mysql://root@db/escrow"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn redacted_url_with_at_sign_in_the_password_hides_all_of_it() {
        let r = redact_url("mysql://u:p@ss@host/db");
        assert!(!r.contains("p@ss"), "{r}");
        assert!(r.ends_with("@host/db"), "{r}");
    }

    #[test]
    fn row_not_found_maps_to_not_found() {
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound(_)
        ));
    }

    #[test]
    fn decode_errors_do_not_echo_the_value() {
        let e = StoreError::from(sqlx::Error::ColumnDecode {
            index: "\"blob\"".into(),
            source: "value 0xdeadbeef is not valid".into(),
        });
        let text = e.to_string();
        assert!(!text.contains("deadbeef"), "{text}");
        assert!(text.contains("blob"), "{text}");
    }
}
