//! Layered configuration: the embedded `config/default.toml`, then an optional file, then the
//! environment (`CLONER__…`).
//!
//! Every value is checked once, here, so the actors can trust what they are given; a bad value
//! is reported with the key that holds it and what would be accepted.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The defaults, compiled in so the binary runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides: `CLONER__N_WORKERS`, `CLONER__UPSTREAM__BASE_URL`, …
pub const ENV_PREFIX: &str = "CLONER";

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Workers started at boot.
    pub n_workers: usize,
    /// Upstream calls per second.
    pub default_rate: f64,
    pub rate_limiter: RateLimiterSettings,
    pub manager: ManagerSettings,
    pub worker: WorkerSettings,
    pub upstream: UpstreamSettings,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterSettings {
    pub burst: u32,
    pub unlimited: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManagerSettings {
    pub max_attempts: u32,
    pub queue_bound: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub attempt_deadline_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub base_url: String,
    pub page_limit: usize,
    pub request_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for Settings {
    /// The embedded defaults. They are validated by a unit test, so this cannot fail.
    fn default() -> Self {
        Settings::from_sources(None, std::iter::empty())
            .expect("embedded config/default.toml is valid")
    }
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_sources(file, std::env::vars())
    }

    /// Like [`Settings::load`] with the environment given explicitly, so tests need not touch
    /// the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: ranges and URL shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: String) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid { key, problem })
        }
        if self.n_workers == 0 || self.n_workers > 1024 {
            return invalid(
                "n_workers",
                format!("must be between 1 and 1024, got {}", self.n_workers),
            );
        }
        if !(self.default_rate.is_finite() && self.default_rate > 0.0) {
            return invalid(
                "default_rate",
                format!(
                    "must be a positive number of calls per second, got {} (to turn the limiter off set rate_limiter.unlimited = true)",
                    self.default_rate
                ),
            );
        }
        if self.rate_limiter.burst == 0 {
            return invalid("rate_limiter.burst", "must be at least 1".into());
        }
        if self.manager.max_attempts == 0 {
            return invalid("manager.max_attempts", "must be at least 1".into());
        }
        if self.manager.queue_bound == 0 {
            return invalid("manager.queue_bound", "must be at least 1".into());
        }
        if self.worker.attempt_deadline_ms == 0 {
            return invalid("worker.attempt_deadline_ms", "must be at least 1".into());
        }
        let u = &self.upstream;
        if !(u.base_url.starts_with("http://") || u.base_url.starts_with("https://")) {
            return invalid(
                "upstream.base_url",
                format!("must start with http:// or https://, got {:?}", u.base_url),
            );
        }
        if u.page_limit == 0 {
            return invalid("upstream.page_limit", "must be at least 1".into());
        }
        if u.request_timeout_ms == 0 {
            return invalid("upstream.request_timeout_ms", "must be at least 1".into());
        }
        if u.max_body_bytes < 1024 {
            return invalid(
                "upstream.max_body_bytes",
                format!("must be at least 1024, got {}", u.max_body_bytes),
            );
        }
        if u.backoff_base_ms > u.backoff_max_ms {
            return invalid(
                "upstream.backoff_base_ms",
                format!(
                    "must not exceed upstream.backoff_max_ms ({} > {})",
                    u.backoff_base_ms, u.backoff_max_ms
                ),
            );
        }
        Ok(())
    }

    pub fn attempt_deadline(&self) -> Duration {
        Duration::from_millis(self.worker.attempt_deadline_ms)
    }
}

impl UpstreamSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::default();
        assert_eq!(s.n_workers, 4);
        assert_eq!(s.default_rate, 6.0);
        assert_eq!(s.upstream.page_limit, 1000);
    }

    #[test]
    fn environment_overrides_top_level_and_nested_keys() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("CLONER__N_WORKERS", "9"),
                ("CLONER__DEFAULT_RATE", "2.5"),
                ("CLONER__UPSTREAM__BASE_URL", "http://127.0.0.1:1234"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.n_workers, 9);
        assert_eq!(s.default_rate, 2.5);
        assert_eq!(s.upstream.base_url, "http://127.0.0.1:1234");
    }

    #[test]
    fn file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("cloner-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("local.toml");
        std::fs::write(&file, "n_workers = 7\n[manager]\nmax_attempts = 5\n").unwrap();
        let s = Settings::from_sources(Some(&file), env(&[("CLONER__N_WORKERS", "8")])).unwrap();
        assert_eq!(s.n_workers, 8, "environment wins over the file");
        assert_eq!(s.manager.max_attempts, 5, "the file wins over the defaults");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("CLONER__N_WORKERS", "0", "n_workers"),
            ("CLONER__N_WORKERS", "many", "n_workers"),
            ("CLONER__DEFAULT_RATE", "0", "default_rate"),
            ("CLONER__RATE_LIMITER__BURST", "0", "rate_limiter.burst"),
            ("CLONER__UPSTREAM__BASE_URL", "ftp://x", "upstream.base_url"),
            ("CLONER__MANAGER__MAX_ATTEMPTS", "0", "manager.max_attempts"),
        ];
        for (key, value, named) in cases {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(named),
                "{key}={value}: error {err:?} does not name {named}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir =
            std::env::temp_dir().join(format!("cloner-config-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("typo.toml");
        std::fs::write(&file, "n_wokers = 7\n").unwrap();
        let err = Settings::from_sources(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("n_wokers"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
