//! The one setting the load tool needs from the server's configuration: the argon2
//! parameters, so that the argon2 ceiling is measured at the cost the child server pays.
//!
//! They are read as `tessera` reads them: the built-in defaults, then `[policy.argon2]` in
//! the configuration file, then the `TESSERA_POLICY__ARGON2__*` environment variables, each
//! overriding the one before. The child server inherits the same environment and file, so
//! both sides agree.

use std::path::Path;

use tessera_core::Policy;
use tessera_core::policy::Argon2Params;

use crate::Failure;

const ENV_PREFIX: &str = "TESSERA_POLICY__ARGON2__";

/// The argon2 parameters from `file` (if any) and `env`, checked as the server checks them.
pub fn argon2(
    file: Option<&Path>,
    env: impl Iterator<Item = (String, String)>,
) -> Result<Argon2Params, Failure> {
    let mut table = match toml::Value::try_from(Argon2Params::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => {
            return Err(Failure::new(
                "the default argon2 parameters are not a table",
            ));
        }
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure(format!("cannot read config file {}: {e}", path.display())))?;
        let tree: toml::Table = toml::from_str(&text).map_err(|e| {
            Failure(format!(
                "config file {} is not valid TOML: {e}",
                path.display()
            ))
        })?;
        if let Some(toml::Value::Table(from_file)) =
            tree.get("policy").and_then(|p| p.get("argon2")).cloned()
        {
            table.extend(from_file);
        }
    }
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let number: i64 = value
            .trim()
            .parse()
            .map_err(|_| Failure(format!("{name}={value}: not a whole number")))?;
        table.insert(key.to_ascii_lowercase(), toml::Value::Integer(number));
    }
    let argon2: Argon2Params = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Failure(format!("argon2 parameters: {e}")))?;
    Policy {
        argon2,
        ..Policy::default()
    }
    .validate()
    .map_err(|e| Failure(format!("configuration is not valid: {e}")))?;
    Ok(argon2)
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
    fn defaults_then_file_then_environment() {
        assert_eq!(argon2(None, env(&[])).ok(), Some(Argon2Params::OWASP));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[policy.argon2]\nmemory_kib = 8192\niterations = 3\nparallelism = 1\n",
        )
        .expect("write");
        let p = argon2(
            Some(&path),
            env(&[
                ("TESSERA_POLICY__ARGON2__ITERATIONS", "4"),
                ("TESSERA_HTTP__HASH_QUEUE_MAX", "128"),
            ]),
        )
        .expect("valid");
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (8192, 4, 1));
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(argon2(None, env(&[("TESSERA_POLICY__ARGON2__MEMORY_KIB", "lots")])).is_err());
        assert!(argon2(None, env(&[("TESSERA_POLICY__ARGON2__SPEED", "3")])).is_err());
        assert!(argon2(None, env(&[("TESSERA_POLICY__ARGON2__ITERATIONS", "0")])).is_err());
    }
}
