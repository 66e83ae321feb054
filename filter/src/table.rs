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
