//! Query-string parsing and validation. Parsing never fails (bad percent-encoding is
//! decoded lossily, unknown parameters are ignored); validation of the parameters a route
//! uses answers 400 with a message naming the parameter.

use recsys_features::{Attributes, ExternalId};

use crate::config::ServerConfig;
use crate::error::ApiError;

/// Prefix of user-attribute parameters: `attr.city=north` is the attribute `city`.
pub const ATTRIBUTE_PREFIX: &str = "attr.";

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

/// At most this much of a bad value is echoed in an error message.
const ECHO: usize = 40;

fn echo(value: &str) -> String {
    let mut cut: String = value.chars().take(ECHO).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

impl QueryParams {
    /// Parses `raw` (the part after `?`, `None` for no query).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        QueryParams { pairs }
    }

    /// The last value of `key`.
    pub fn last(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `n`: absent → `config.default_n`; otherwise an integer in `1..=config.max_n`.
    pub fn n(&self, config: &ServerConfig) -> Result<usize, ApiError> {
        let Some(text) = self.last("n") else {
            return Ok(config.default_n);
        };
        let range = || format!("between 1 and {}", config.max_n);
        let n: usize = text.trim().parse().map_err(|_| {
            ApiError::bad_param(
                "n",
                format!("n must be an integer {}, got {}", range(), echo(text)),
            )
        })?;
        if n == 0 || n > config.max_n {
            return Err(ApiError::bad_param(
                "n",
                format!("n must be {}, got {n}", range()),
            ));
        }
        Ok(n)
    }

    /// An optional id parameter: absent or blank → `None`.
    pub fn id(&self, key: &str, config: &ServerConfig) -> Result<Option<ExternalId>, ApiError> {
        match self.last(key) {
            None => Ok(None),
            Some(text) => parse_id(key, text, config),
        }
    }

    /// `exclude`: comma-separated ids, the parameter may repeat; blanks are skipped.
    pub fn exclude(&self, config: &ServerConfig) -> Result<Vec<ExternalId>, ApiError> {
        let mut ids = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(k, _)| k == "exclude") {
            for part in value.split(',') {
                if let Some(id) = parse_id("exclude", part, config)? {
                    if ids.len() == config.max_exclude {
                        return Err(ApiError::bad_param(
                            "exclude",
                            format!("at most {} ids may be excluded", config.max_exclude),
                        ));
                    }
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    /// User attributes from `attr.<column>=value` parameters (last value per column; blank
    /// values are skipped).
    pub fn attributes(&self, config: &ServerConfig) -> Result<Attributes, ApiError> {
        let mut attributes = Attributes::new();
        for (key, value) in &self.pairs {
            let Some(column) = key.strip_prefix(ATTRIBUTE_PREFIX) else {
                continue;
            };
            if column.is_empty() || column.len() > config.max_id_len {
                return Err(ApiError::bad_param(
                    key,
                    format!(
                        "attribute names must be 1 to {} bytes long",
                        config.max_id_len
                    ),
                ));
            }
            if value.len() > config.max_id_len {
                return Err(ApiError::bad_param(
                    key,
                    format!(
                        "attribute values must be at most {} bytes long",
                        config.max_id_len
                    ),
                ));
            }
            if value.trim().is_empty() {
                continue;
            }
            attributes.insert(column.to_string(), value.trim().to_string());
            if attributes.len() > config.max_attributes {
                return Err(ApiError::bad_param(
                    key,
                    format!("at most {} attributes may be given", config.max_attributes),
                ));
            }
        }
        Ok(attributes)
    }
}

/// An id from text: blank → `None`; longer than `config.max_id_len` bytes → 400; canonical
/// integers become [`ExternalId::Int`] (they match integer ids stored in MongoDB).
pub fn parse_id(
    param: &str,
    text: &str,
    config: &ServerConfig,
) -> Result<Option<ExternalId>, ApiError> {
    if text.len() > config.max_id_len {
        return Err(ApiError::bad_param(
            param,
            format!(
                "{param} is {} bytes long; at most {} are accepted",
                text.len(),
                config.max_id_len
            ),
        ));
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(ExternalId::parse(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let config = ServerConfig::default();
        let q = QueryParams::parse(Some(
            "n=5&userId=%2042&productId=&exclude=1,a,,2&exclude=3&attr.city=north&x=%zz",
        ));
        assert_eq!(q.n(&config).unwrap(), 5);
        assert_eq!(q.id("userId", &config).unwrap(), Some(ExternalId::Int(42)));
        assert_eq!(q.id("productId", &config).unwrap(), None);
        assert_eq!(q.exclude(&config).unwrap().len(), 4);
        assert_eq!(q.attributes(&config).unwrap()["city"], "north");
        assert_eq!(QueryParams::parse(None).n(&config).unwrap(), 10);
        for bad in ["n=abc", "n=0", "n=101", "n=-1", "n=", "n=1e3"] {
            let err = QueryParams::parse(Some(bad)).n(&config).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("n"), "{bad}");
        }
        let long = format!("userId={}", "x".repeat(129));
        assert!(QueryParams::parse(Some(&long))
            .id("userId", &config)
            .is_err());
    }
}
