//! API keys: a text file of hashes, looked up by the hash of the presented key.
//!
//! The file has one key a line, `PLAN SHA256-HEX-OF-KEY [NAME]`, and `#` comments. Keys
//! themselves are never stored; a presented key is hashed with SHA-256 and its digest compared in
//! constant time. The file is re-read on SIGHUP; a file that does not parse keeps the keys already
//! loaded, and says why on stderr.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Its usage plan.
    pub plan: String,
    /// Its name (the hash prefix when the file gives none).
    pub name: String,
    digest: [u8; 32],
}

/// The loaded keys.
#[derive(Debug)]
pub struct KeyStore {
    path: Option<PathBuf>,
    keys: RwLock<Arc<HashMap<[u8; 32], KeyEntry>>>,
}

/// SHA-256 of a key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a key file's text.
pub fn parse(text: &str) -> Result<HashMap<[u8; 32], KeyEntry>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(plan), Some(hash)) = (parts.next(), parts.next()) else {
            return Err(format!("line {}: expected `PLAN SHA256-HEX [NAME]`", n + 1));
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "line {}: `{hash}` is not a SHA-256 hex digest",
                n + 1
            ));
        }
        let mut d = [0u8; 32];
        for (i, chunk) in hash.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).unwrap_or("00");
            d[i] = u8::from_str_radix(s, 16).unwrap_or(0);
        }
        let name = parts
            .next()
            .map(str::to_string)
            .unwrap_or_else(|| hash[..12].to_string());
        out.insert(
            d,
            KeyEntry {
                plan: plan.to_string(),
                name,
                digest: d,
            },
        );
    }
    Ok(out)
}

impl KeyStore {
    /// No keys.
    pub fn empty() -> KeyStore {
        KeyStore {
            path: None,
            keys: RwLock::new(Arc::new(HashMap::new())),
        }
    }

    /// Loads `path`.
    pub fn from_file(path: PathBuf) -> Result<KeyStore, String> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the API key file `{}`: {e}", path.display()))?;
        let keys =
            parse(&text).map_err(|e| format!("the API key file `{}`, {e}", path.display()))?;
        Ok(KeyStore {
            path: Some(path),
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Re-reads the file; on failure the loaded keys stay and the error is returned.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the API key file `{}`: {e}", path.display()))?;
        let keys =
            parse(&text).map_err(|e| format!("the API key file `{}`, {e}", path.display()))?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// The record of a presented key.
    pub fn lookup(&self, presented: &str) -> Option<KeyEntry> {
        let d = digest(presented);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let entry = keys.get(&d)?;
        // The map found it by digest; confirm in constant time all the same.
        bool::from(entry.digest.ct_eq(&d)).then(|| entry.clone())
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no keys are loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new random key (256 bits).
pub fn new_key() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("gw_{}{}", hex(a.as_bytes()), hex(b.as_bytes()))
}

/// The hex SHA-256 of a key, as stores keep it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub fn digest_hex(key: &str) -> String {
    hex(&digest(key))
}

fn check_names(plan: &str, name: Option<&str>) -> Result<(), String> {
    if plan.is_empty() || plan.contains(char::is_whitespace) || plan.contains('#') {
        return Err(format!("`{plan}` is not a usable plan name"));
    }
    if let Some(n) = name {
        if n.contains(char::is_whitespace) || n.contains('#') {
            return Err(format!("`{n}` is not a usable key name"));
        }
    }
    Ok(())
}

/// `keys add --plan P --file F [--name N]`: makes a random key, appends its hash to the file, and
/// returns the key (printed once; it is stored nowhere else).
pub fn add(plan: &str, file: &std::path::Path, name: Option<&str>) -> Result<String, String> {
    check_names(plan, name)?;
    let key = new_key();
    let line = format!(
        "{plan} {}{}\n",
        hex(&digest(&key)),
        name.map(|n| format!(" {n}")).unwrap_or_default()
    );
    use std::io::Write;
    let existing = std::fs::read_to_string(file).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("cannot open `{}`: {e}", file.display()))?;
    if !existing.is_empty() && !existing.ends_with('\n') {
        f.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    f.write_all(line.as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
    Ok(key)
}

/// API keys in Redis: one hash a key, `PREFIXapikey:SHA256-HEX` with fields `plan` and `name`,
/// so every gateway instance sees a key the moment it is added, and a deleted key at once.
#[cfg(feature = "redis")]
pub mod redis_store {
    use super::{check_names, digest_hex, new_key, KeyEntry};

    /// The Redis key of a key's record.
    pub fn record_key(prefix: &str, digest_hex: &str) -> String {
        format!("{prefix}apikey:{digest_hex}")
    }

    /// A connection to the store, made on first use and re-made after failures.
    pub struct RedisKeys {
        client: redis::Client,
        prefix: String,
        conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    }

    impl std::fmt::Debug for RedisKeys {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisKeys")
                .field("prefix", &self.prefix)
                .finish()
        }
    }

    impl RedisKeys {
        /// A store at `url` (`redis://HOST:PORT/DB`).
        pub fn new(url: &str, prefix: &str) -> Result<RedisKeys, String> {
            let client = redis::Client::open(url)
                .map_err(|e| format!("the Redis URL `{url}` is not usable: {e}"))?;
            Ok(RedisKeys {
                client,
                prefix: prefix.to_string(),
                conn: tokio::sync::OnceCell::new(),
            })
        }

        async fn conn(&self) -> Result<redis::aio::ConnectionManager, String> {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
                .set_response_timeout(Some(std::time::Duration::from_secs(2)))
                .set_number_of_retries(1);
            self.conn
                .get_or_try_init(|| async {
                    redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .cloned()
        }

        /// The record of a presented key; `Err` when Redis cannot answer. A connection that broke
        /// since the last request (Redis restarted) is re-made once before giving up.
        pub async fn lookup(&self, presented: &str) -> Result<Option<KeyEntry>, String> {
            match self.lookup_once(presented).await {
                Ok(v) => Ok(v),
                Err(_) => self.lookup_once(presented).await,
            }
        }

        async fn lookup_once(&self, presented: &str) -> Result<Option<KeyEntry>, String> {
            let mut conn = self.conn().await?;
            let d = super::digest(presented);
            let key = record_key(&self.prefix, &digest_hex(presented));
            let fields: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&key)
                .arg("plan")
                .arg("name")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(
                match (
                    fields.first().cloned().flatten(),
                    fields.get(1).cloned().flatten(),
                ) {
                    (Some(plan), name) => Some(KeyEntry {
                        plan,
                        name: name.unwrap_or_else(|| digest_hex(presented)[..12].to_string()),
                        digest: d,
                    }),
                    _ => None,
                },
            )
        }
    }

    /// `keys add --plan P --redis URL [--prefix X] [--name N]`: makes a key and stores its hash.
    pub fn add(plan: &str, url: &str, prefix: &str, name: Option<&str>) -> Result<String, String> {
        check_names(plan, name)?;
        let key = new_key();
        let client = redis::Client::open(url).map_err(|e| format!("the Redis URL `{url}`: {e}"))?;
        let mut conn = client
            .get_connection_with_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| format!("cannot reach Redis at `{url}`: {e}"))?;
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| digest_hex(&key)[..12].to_string());
        redis::cmd("HSET")
            .arg(record_key(prefix, &digest_hex(&key)))
            .arg("plan")
            .arg(plan)
            .arg("name")
            .arg(&name)
            .query::<()>(&mut conn)
            .map_err(|e| format!("cannot store the key in Redis: {e}"))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip() {
        let dir = std::env::temp_dir().join(format!("gwgen-keys-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("keys.txt");
        let _ = std::fs::remove_file(&file);
        let k1 = add("free", &file, Some("alice")).unwrap();
        let store = KeyStore::from_file(file.clone()).unwrap();
        assert_eq!(store.lookup(&k1).map(|e| e.plan), Some("free".into()));
        assert!(store.lookup("gw_wrong").is_none());
        let k2 = add("pro", &file, None).unwrap();
        assert!(store.lookup(&k2).is_none());
        assert_eq!(store.reload(), Ok(2));
        assert_eq!(store.lookup(&k2).map(|e| e.plan), Some("pro".into()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&k1), "keys are stored hashed");
        std::fs::write(&file, "broken line\n").unwrap();
        assert!(store.reload().is_err());
        assert!(
            store.lookup(&k1).is_some(),
            "a bad file keeps the loaded keys"
        );
        assert!(add("two words", &file, None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
