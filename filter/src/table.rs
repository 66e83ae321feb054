//! The provider table, built once from the plugin configuration and shared by every request
//! through an `Rc` (a VM is single-threaded).

use aigw_core::config::{ConfigErrors, GatewayConfig, ProviderConfig};
use aigw_core::handoff::Route;
use std::collections::HashMap;

/// One provider with everything a request needs already rendered.
#[derive(Debug)]
pub struct ProviderEntry {
    pub config: ProviderConfig,
    /// The [`Route`] line handed to the sidecar, rendered once.
    pub route_line: String,
}

#[derive(Debug, Default)]
pub struct ProviderTable {
    by_name: HashMap<String, ProviderEntry>,
    /// The config's `fast_path` switch.
    pub fast_path: bool,
}

impl ProviderTable {
    pub fn from_json(json: &str) -> Result<Self, ConfigErrors> {
        Ok(Self::new(GatewayConfig::from_json(json)?))
    }

    pub fn new(config: GatewayConfig) -> Self {
        let fast_path = config.fast_path;
        let by_name = config
            .providers
            .into_iter()
            .map(|p| {
                let route_line = Route::of(&p).encode();
                (
                    p.name.clone(),
                    ProviderEntry {
                        config: p,
                        route_line,
                    },
                )
            })
            .collect();
        Self { by_name, fast_path }
    }

    /// The table of the sidecar's live configuration `json` when it differs from
    /// `current`, the one ours was built from (the sidecar reloaded its config file).
    /// Empty: a sidecar that does not send it.
    pub fn reloaded(current: &str, json: &str) -> Option<Result<Self, ConfigErrors>> {
        (!json.is_empty() && json != current).then(|| Self::from_json(json))
    }

    pub fn get(&self, name: &str) -> Option<&ProviderEntry> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"providers":[{"name":"a","type":"openai","api_key_secret":"K"}]}"#;
    const TWO: &str = r#"{"providers":[{"name":"a","type":"openai","api_key_secret":"K"},
        {"name":"b","type":"openai-compatible","base_url":"http://h:1/v1"}]}"#;

    #[test]
    fn follows_a_different_configuration_only() {
        assert!(ProviderTable::reloaded(ONE, ONE).is_none());
        assert!(ProviderTable::reloaded(ONE, "").is_none());
        let t = ProviderTable::reloaded(ONE, TWO).unwrap().unwrap();
        assert!(t.get("b").is_some());
        let e = ProviderTable::reloaded(ONE, r#"{"providers":[{"name":"B"}]}"#).unwrap();
        assert!(e.unwrap_err().to_string().contains("providers[0]"));
    }
}
