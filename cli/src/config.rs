//! The configuration: built-in defaults, then a TOML file, then `TESSERA_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every key has an environment variable: upper-case, `TESSERA_` prefix, and `__` between
//! nesting levels, so `[policy.session] idle_timeout_ms` is
//! `TESSERA_POLICY__SESSION__IDLE_TIMEOUT_MS`. Values are read as TOML (`30`, `true`,
//! `["a"]`) and fall back to a plain string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_core::Policy;
use tessera_http::HttpConfig;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub storage: StorageConfig,
    pub policy: Policy,
    pub http: HttpConfig,
    /// External sign-in providers: `[[upstream]]` tables.
    pub upstream: Vec<tessera_http::config::UpstreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./tessera-data"),
            log: LogConfig::default(),
            store: StoreConfig::default(),
            storage: StorageConfig::default(),
            policy: Policy::default(),
            http: HttpConfig::default(),
            upstream: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `tessera_http=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// Walk the whole hash chain before serving.
    pub verify_on_start: bool,
    /// Commands decided and synced together at most.
    pub batch_commands_max: usize,
    /// Commands waiting for the writer at most; beyond it, 503.
    pub queue_commands_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 256 * 1024 * 1024,
            verify_on_start: true,
            batch_commands_max: 512,
            queue_commands_max: 8192,
        }
    }
}

/// Where the log lives: sled in the data folder (the default), or PostgreSQL, shared by
/// every node that points at the same database.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sled` or `postgres`.
    pub backend: String,
    /// With `postgres`: a `postgres://user@host:port/database` URL.
    pub url: String,
    /// With `postgres`: the database password, overriding the URL's; best set as
    /// `TESSERA_STORAGE__PASSWORD` rather than written in a file.
    pub password: String,
    /// With `postgres`: the `host:port` other nodes forward writes to while this node
    /// holds the writer lease. Empty: the listen address.
    pub advertise: String,
    /// With `postgres`: how often a node looks at the log and the lease when no
    /// notification woke it, milliseconds (also how soon a follower notices the leader's
    /// lease is free).
    pub follow_interval_ms: u64,
    /// With `postgres`: how long a batch keeps retrying while the database cannot be
    /// reached, milliseconds, before the writer gives up and stops.
    pub retry_window_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: "sled".into(),
            url: String::new(),
            password: String::new(),
            advertise: String::new(),
            follow_interval_ms: 200,
            retry_window_ms: 30_000,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("backend", &self.backend)
            .field("url", &"(redacted)")
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    fn validate(&self) -> Result<(), String> {
        match self.backend.as_str() {
            "sled" => Ok(()),
            "postgres" if self.url.is_empty() => Err(
                "storage.backend is \"postgres\" but storage.url is empty: set it to postgres://user@host:port/database".into(),
            ),
            "postgres" if self.follow_interval_ms == 0 => {
                Err("storage.follow_interval_ms must be at least 1".into())
            }
            "postgres" => Ok(()),
            other => Err(format!(
                "storage.backend is \"{other}\": it must be \"sled\" or \"postgres\""
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {why}")]
    Read { path: String, why: String },
    #[error("config file {path} is not valid TOML: {why}")]
    Parse { path: String, why: String },
    #[error("configuration is not valid: {0}")]
    Invalid(String),
}

/// Builds the configuration from the file (if any) and the given environment.
pub fn load(
    file: Option<&Path>,
    env: impl Iterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut tree = toml::Value::try_from(Config::default())
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let file_tree: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        merge(&mut tree, file_tree);
    }
    let top_keys: Vec<String> = tree
        .as_table()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    let env: Vec<(String, String)> = env.collect();
    for (name, value) in &env {
        let Some(rest) = name.strip_prefix("TESSERA_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        // Other TESSERA_ variables (test switches, say) are not configuration.
        if !path.first().is_some_and(|k| top_keys.contains(k)) {
            continue;
        }
        set(&mut tree, &path, parse_scalar(value));
    }
    let mut config: Config = tree
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
    // A provider's secret from the environment wins over the file, so that the file can be
    // shared without it.
    for upstream in &mut config.upstream {
        let variable = upstream.secret_variable();
        if let Some((_, secret)) = env.iter().find(|(name, _)| *name == variable) {
            upstream.client_secret = Some(tessera_http::config::ClientSecret(secret.clone()));
        }
    }
    config.http.upstreams.clone_from(&config.upstream);
    config.policy.validate().map_err(ConfigError::Invalid)?;
    config.http.validate().map_err(ConfigError::Invalid)?;
    config.storage.validate().map_err(ConfigError::Invalid)?;
    Ok(config)
}

fn parse_scalar(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set(tree: &mut toml::Value, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        let toml::Value::Table(table) = node else {
            return;
        };
        node = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    if let toml::Value::Table(table) = node {
        // A string where the default is a number is still a type error, reported by serde.
        let value = match (table.get(last), value) {
            (
                Some(toml::Value::String(_)),
                v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)),
            ) => toml::Value::String(v.to_string()),
            (_, v) => v,
        };
        table.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_work_on_a_laptop() {
        let c = load(None, env(&[])).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data, PathBuf::from("./tessera-data"));
        assert_eq!(c.policy.session.idle_timeout_ms, 30 * 60 * 1000);
    }

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[policy.session]\nidle_timeout_ms = 600000\n",
        )
        .expect("write");
        let c = load(
            Some(&path),
            env(&[
                ("TESSERA_POLICY__SESSION__IDLE_TIMEOUT_MS", "900000"),
                ("TESSERA_DATA", "/tmp/x"),
                ("TESSERA_BLESS", "1"),
                ("TESSERA_HTTP__ALLOWED_ORIGINS", "[\"https://app.example\"]"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.policy.session.idle_timeout_ms, 900_000);
        assert_eq!(c.data, PathBuf::from("/tmp/x"));
        assert_eq!(
            c.http.allowed_origins,
            vec!["https://app.example".to_owned()]
        );
    }

    #[test]
    fn the_postgres_backend_needs_a_url_and_takes_its_password_from_the_environment() {
        assert!(matches!(
            load(None, env(&[("TESSERA_STORAGE__BACKEND", "postgres")])),
            Err(ConfigError::Invalid(m)) if m.contains("storage.url")
        ));
        assert!(matches!(
            load(None, env(&[("TESSERA_STORAGE__BACKEND", "mysql")])),
            Err(ConfigError::Invalid(m)) if m.contains("sled")
        ));
        let c = load(
            None,
            env(&[
                ("TESSERA_STORAGE__BACKEND", "postgres"),
                (
                    "TESSERA_STORAGE__URL",
                    "postgres://tessera@127.0.0.1:5432/tessera",
                ),
                ("TESSERA_STORAGE__PASSWORD", "s3cret"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.storage.password, "s3cret");
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the password is never printed"
        );
    }

    #[test]
    fn upstreams_come_from_the_file_with_their_secret_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("tessera-upstream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tessera.toml");
        std::fs::write(
            &file,
            r#"
[[upstream]]
name = "corp-sso"
display_name = "Corp SSO"
kind = "oidc"
issuer = "https://id.corp.example"
client_id = "tessera"
scopes = ["email", "profile"]
trusted_for_mfa = true

[[upstream]]
name = "github"
display_name = "GitHub"
kind = "oauth2"
client_id = "Iv1.abc"
client_secret = "from-the-file"
authorize_url = "https://github.com/login/oauth/authorize"
token_url = "https://github.com/login/oauth/access_token"
user_info_url = "https://api.github.com/user"
first_sign_in = "link_only"
fields = { subject = "id", username = "login", email = "email" }
"#,
        )
        .unwrap();
        let config = load(
            Some(&file),
            env(&[(
                "TESSERA_UPSTREAM_CORP_SSO_CLIENT_SECRET",
                "sso-secret-from-env",
            )]),
        )
        .unwrap();
        assert_eq!(config.http.upstreams.len(), 2);
        let sso = &config.http.upstreams[0];
        assert_eq!(
            sso.client_secret.as_ref().map(|s| s.0.as_str()),
            Some("sso-secret-from-env")
        );
        assert!(sso.trusted_for_mfa);
        let github = &config.http.upstreams[1];
        assert_eq!(
            github.first_sign_in,
            tessera_core::identity::FirstSignIn::LinkOnly
        );
        // Never in Debug (and so never in a log line that prints the configuration).
        let shown = format!("{config:?}");
        assert!(!shown.contains("sso-secret-from-env") && !shown.contains("from-the-file"));

        // Without its secret, a provider is refused with the variable to set.
        let missing = load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            missing.contains("TESSERA_UPSTREAM_CORP_SSO_CLIENT_SECRET"),
            "{missing}"
        );
        std::fs::write(
            &file,
            "[[upstream]]\nname = \"Bad Name\"\ndisplay_name = \"x\"\nkind = \"oidc\"\nclient_id = \"c\"\nclient_secret = \"s\"\nissuer = \"https://x.example\"\n",
        )
        .unwrap();
        let bad = load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(bad.contains("lower-case"), "{bad}");
        std::fs::write(
            &file,
            "[[upstream]]\nname = \"plain\"\ndisplay_name = \"x\"\nkind = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\nauthorize_url = \"http://example.com/a\"\ntoken_url = \"https://example.com/t\"\nuser_info_url = \"https://example.com/u\"\n",
        )
        .unwrap();
        let insecure = load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(insecure.contains("authorize_url"), "{insecure}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(matches!(
            load(None, env(&[("TESSERA_POLICY__SESSION__IDLE_TIMEOUT", "5")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            load(None, env(&[("TESSERA_LISTEN", "nonsense")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            load(
                None,
                env(&[("TESSERA_POLICY__SESSION__TOUCH_INTERVAL_MS", "99999999")])
            ),
            Err(ConfigError::Invalid(_))
        ));
    }
}
