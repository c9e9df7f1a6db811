//! Key-encryption keys (KEKs) and the key file that holds them.
//!
//! Guarantees: key bytes never appear in `Debug` output, errors or logs, and are zeroized when dropped. A key file
//! that group or others may read or write is refused, with advice to `chmod 600`. The file is only ever replaced
//! atomically (0600 temp file, fsync, rename, fsync of the directory), and every read-modify-write (create, rotate,
//! retire) holds an exclusive lock on `<key file>.lock`, so two `escrowd keys` runs cannot lose a key.
//!
//! Format: `{"version":1,"active":"k1","keys":{"k1":"<base64 of 32 bytes>"}}`.

use crate::error::VaultError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use file::{create_parent_dir, lock_key_file, write_atomically};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::path::Path;
use zeroize::{Zeroize as _, Zeroizing};

mod file;

/// Length of every KEK and DEK: AES-256.
pub(crate) const KEY_LEN: usize = 32;
/// Longest key id accepted, so a blob header stays small and its length fits one byte.
pub(crate) const MAX_KEY_ID_LEN: usize = 64;
/// A key file holds a few hundred bytes per key; anything bigger than this is not a key file.
const MAX_KEY_FILE_LEN: u64 = 1 << 20;
const FORMAT_VERSION: u64 = 1;

/// KEKs from a key file. Debug must never print key bytes.
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, Zeroizing<[u8; KEY_LEN]>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Load the key file, or create it (mode 0600, parent dir created) with one fresh key "k1" when it does not
    /// exist. Refuse to load a key file readable by group/other (KeyFile error telling the admin to chmod 600).
    pub fn load_or_create(path: &Path) -> Result<Keyring, VaultError> {
        Self::load_or_create_with_metadata(path).map(|(ring, _)| ring)
    }

    /// Load an existing key file; refuses one that group/other may access, that is oversized or not valid.
    pub fn load(path: &Path) -> Result<Keyring, VaultError> {
        Self::load_with_metadata(path).map(|(ring, _)| ring)
    }

    /// In-memory keyring with one random key (tests, benches).
    ///
    /// # Panics
    /// Only if the operating system's random source fails; use [`Keyring::try_ephemeral`] to get an error instead.
    pub fn ephemeral() -> Keyring {
        match Self::try_ephemeral() {
            Ok(ring) => ring,
            Err(e) => panic!("cannot create an ephemeral keyring: {e}"),
        }
    }

    /// In-memory keyring with one random key "k1".
    pub fn try_ephemeral() -> Result<Keyring, VaultError> {
        let mut keys = BTreeMap::new();
        keys.insert("k1".to_owned(), random_key()?);
        Ok(Keyring {
            active: "k1".to_owned(),
            keys,
        })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// Add a fresh key, make it active, write the file atomically (temp file 0600 + fsync + rename). Returns new id.
    pub fn rotate_file(path: &Path) -> Result<String, VaultError> {
        let _lock = lock_key_file(path)?;
        let mut ring = Self::load(path)?;
        let id = ring.add_fresh_key()?;
        write_atomically(path, &ring.to_json()?)?;
        tracing::info!(key_file = %path.display(), key_id = %id, "key file rotated: new active key");
        Ok(id)
    }

    /// Remove a non-active key from the file (the caller checks first that nothing references it).
    pub fn retire_key_in_file(path: &Path, key_id: &str) -> Result<(), VaultError> {
        let _lock = lock_key_file(path)?;
        let mut ring = Self::load(path)?;
        if ring.active == key_id {
            return Err(VaultError::RetireActive(key_id.to_owned()));
        }
        if ring.keys.remove(key_id).is_none() {
            return Err(VaultError::UnknownKey(key_id.to_owned()));
        }
        write_atomically(path, &ring.to_json()?)?;
        tracing::info!(key_file = %path.display(), key_id = %key_id, "key retired from key file");
        Ok(())
    }

    /// The key with this id, if the ring holds it.
    pub(crate) fn key(&self, key_id: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.get(key_id).map(|k| &**k)
    }

    /// Like [`Keyring::load_or_create`], also returning the metadata of the file the keys were read from.
    pub(crate) fn load_or_create_with_metadata(
        path: &Path,
    ) -> Result<(Keyring, Metadata), VaultError> {
        match fs::metadata(path) {
            Ok(_) => return Self::load_with_metadata(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(VaultError::key_file(
                    path,
                    format!("cannot be checked: {e}"),
                ));
            }
        }
        create_parent_dir(path)?;
        let _lock = lock_key_file(path)?;
        if path.exists() {
            // Another process created it while we waited for the lock.
            return Self::load_with_metadata(path);
        }
        let ring = Self::try_ephemeral()?;
        write_atomically(path, &ring.to_json()?)?;
        tracing::info!(key_file = %path.display(), key_id = %ring.active, "created key file with a fresh key");
        Self::load_with_metadata(path)
    }

    /// Like [`Keyring::load`], also returning the metadata of the opened file (for change detection).
    pub(crate) fn load_with_metadata(path: &Path) -> Result<(Keyring, Metadata), VaultError> {
        let (bytes, meta) = file::read_private(path)?;
        let ring = Self::parse(&bytes).map_err(|reason| VaultError::key_file(path, reason))?;
        Ok((ring, meta))
    }

    /// Parse key file JSON. The error is a reason for the admin and never contains key material.
    fn parse(bytes: &[u8]) -> Result<Keyring, String> {
        // Parse into a Value first: its errors are syntax errors only, so no value is ever quoted back.
        let mut value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("is not valid JSON ({e})"))?;
        let result = Self::from_value(&value);
        if let Some(keys) = value.get_mut("keys").and_then(|k| k.as_object_mut()) {
            for v in keys.values_mut() {
                if let serde_json::Value::String(s) = v {
                    s.zeroize();
                }
            }
        }
        result
    }

    fn from_value(value: &serde_json::Value) -> Result<Keyring, String> {
        const SHAPE: &str =
            r#"expected {"version":1,"active":"k1","keys":{"k1":"<base64 of 32 bytes>"}}"#;
        let obj = value
            .as_object()
            .ok_or_else(|| format!("is not a JSON object; {SHAPE}"))?;
        if let Some(field) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "version" | "active" | "keys"))
        {
            return Err(format!("has an unknown field {field:?}; {SHAPE}"));
        }
        match obj.get("version") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) if v.is_u64() => {
                return Err(format!(
                    "has version {v}; this escrowd reads version {FORMAT_VERSION}"
                ));
            }
            _ => return Err(format!("\"version\" is missing or not a number; {SHAPE}")),
        }
        let active = obj
            .get("active")
            .and_then(|a| a.as_str())
            .ok_or_else(|| format!("\"active\" is missing or not a string; {SHAPE}"))?;
        let entries = obj
            .get("keys")
            .and_then(|k| k.as_object())
            .ok_or_else(|| format!("\"keys\" is missing or not an object; {SHAPE}"))?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in entries {
            if !is_valid_key_id(id) {
                return Err(format!(
                    "key id {id:?} is invalid (1-{MAX_KEY_ID_LEN} characters from A-Z a-z 0-9 . _ -)"
                ));
            }
            let encoded = encoded
                .as_str()
                .ok_or_else(|| format!("key {id:?} is not a base64 string"))?;
            let raw = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| format!("key {id:?} is not valid base64"))?,
            );
            if raw.len() != KEY_LEN {
                return Err(format!(
                    "key {id:?} is {} bytes; keys are {KEY_LEN} bytes",
                    raw.len()
                ));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&raw);
            keys.insert(id.clone(), key);
        }
        if !keys.contains_key(active) {
            return Err(format!("active key {active:?} is not in \"keys\""));
        }
        Ok(Keyring {
            active: active.to_owned(),
            keys,
        })
    }

    /// Key file JSON; zeroized when dropped because it holds every key.
    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        #[derive(serde::Serialize)]
        struct KeyFile<'a> {
            version: u64,
            active: &'a str,
            keys: BTreeMap<&'a str, &'a str>,
        }
        let encoded: Vec<(&str, Zeroizing<String>)> = self
            .keys
            .iter()
            .map(|(id, key)| (id.as_str(), Zeroizing::new(STANDARD.encode(&key[..]))))
            .collect();
        let file = KeyFile {
            version: FORMAT_VERSION,
            active: &self.active,
            keys: encoded.iter().map(|(id, k)| (*id, k.as_str())).collect(),
        };
        // Reserve enough up front so growing the buffer never leaves unzeroized copies behind.
        let mut out = Zeroizing::new(Vec::with_capacity(
            256 + encoded.len() * (MAX_KEY_ID_LEN + 64),
        ));
        serde_json::to_writer_pretty(&mut *out, &file)
            .map_err(|e| VaultError::Crypto(format!("cannot encode key file: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Add a fresh random key with the next free id `k<n>` and make it active.
    fn add_fresh_key(&mut self) -> Result<String, VaultError> {
        let highest = self
            .keys
            .keys()
            .filter_map(|id| id.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        let next = highest
            .checked_add(1)
            .ok_or_else(|| VaultError::Crypto("no free key id left".into()))?;
        let id = format!("k{next}");
        self.keys.insert(id.clone(), random_key()?);
        self.active.clone_from(&id);
        Ok(id)
    }

    #[cfg(test)]
    pub(crate) fn with_keys(active: &str, ids: &[&str]) -> Keyring {
        let mut keys = BTreeMap::new();
        for id in ids {
            keys.insert((*id).to_owned(), random_key().unwrap());
        }
        Keyring {
            active: active.to_owned(),
            keys,
        }
    }
}

/// Key ids go into blob headers and file names of nothing; keep them short and printable.
pub(crate) fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 32 bytes from the operating system's random source.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..])
        .map_err(|e| VaultError::Crypto(format!("random source failed: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests;
