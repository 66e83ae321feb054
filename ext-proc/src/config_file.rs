//! Reads the gateway configuration from the Envoy YAML the filter is configured with, so both
//! sides use one provider table. The file may also be a bare gateway config (the JSON or YAML
//! of the plugin configuration itself), as an Istio `WasmPlugin.pluginConfig` would be.

use aigw_core::GatewayConfig;
use serde_yaml_ng::Value;
use std::path::Path;

/// The wasm filter's `root_id` that marks our plugin in the Envoy YAML.
pub const ROOT_ID: &str = "aigw";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: String,
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: no wasm filter with root_id '{ROOT_ID}' and a string configuration found")]
    NoPlugin { path: String },
    #[error("{path}: the '{ROOT_ID}' plugin is configured differently in two places; keep one configuration")]
    Conflicting { path: String },
    #[error("{path}: invalid gateway configuration: {source}")]
    Invalid {
        path: String,
        source: aigw_core::config::ConfigErrors,
    },
}

/// A config file as read: its text, and the gateway config in it with that config's JSON
/// (what the filter's plugin configuration holds).
#[derive(Debug)]
pub struct Loaded {
    pub path: std::path::PathBuf,
    pub text: String,
    pub config: GatewayConfig,
    pub json: String,
}

pub fn load(path: &Path) -> Result<Loaded, ConfigFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: p.clone(),
        source,
    })?;
    let (config, json) = parse(&p, &text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        text,
        config,
        json,
    })
}

/// A bare config given as text, as if read from `path` (tests, tools).
pub fn from_text(path: &Path, text: &str) -> Result<Loaded, ConfigFileError> {
    let (config, json) = parse(&path.display().to_string(), text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        text: text.to_string(),
        config,
        json,
    })
}

/// The gateway config in `text` (an Envoy YAML or a bare config), and its JSON.
pub fn parse(path: &str, text: &str) -> Result<(GatewayConfig, String), ConfigFileError> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|source| ConfigFileError::Yaml {
        path: path.into(),
        source,
    })?;
    let json = if doc.get("static_resources").is_some() {
        let mut found = Vec::new();
        find_plugin_configs(&doc, &mut found);
        found.dedup();
        match found.as_slice() {
            [] => return Err(ConfigFileError::NoPlugin { path: path.into() }),
            [one] => one.clone(),
            _ => return Err(ConfigFileError::Conflicting { path: path.into() }),
        }
    } else {
        // A bare gateway config: YAML is a superset of JSON; hand its JSON form to the parser.
        serde_json::to_string(&doc).unwrap_or_default()
    };
    let config = GatewayConfig::from_json(&json).map_err(|source| ConfigFileError::Invalid {
        path: path.into(),
        source,
    })?;
    Ok((config, json))
}

/// Every `config.configuration.value` of a wasm plugin whose `root_id` is ours.
fn find_plugin_configs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            if m.get("root_id").and_then(Value::as_str) == Some(ROOT_ID) {
                if let Some(s) = m
                    .get("configuration")
                    .and_then(|c| c.get("value"))
                    .and_then(Value::as_str)
                {
                    out.push(s.to_string());
                }
            }
            for (_, child) in m {
                find_plugin_configs(child, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| find_plugin_configs(c, out)),
        Value::Tagged(t) => find_plugin_configs(&t.value, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_envoy_yaml() {
        let c = load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../envoy/envoy.yaml"
        )))
        .unwrap()
        .config;
        assert!(c.provider("demo").is_some());
        assert!(c.provider("openai").is_some());
    }

    #[test]
    fn bare_yaml_config() {
        let c = parse(
            "x.yaml",
            "providers:\n  - name: v\n    type: openai-compatible\n    base_url: http://h:1/v1\n",
        )
        .unwrap()
        .0;
        assert_eq!(c.providers[0].upstream.authority, "h:1");
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse("x.yaml", "providers:\n  - name: V\n    type: openai\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("x.yaml: invalid gateway configuration: providers[0].name"),
            "{msg}"
        );
        let e = parse("e.yaml", "static_resources: {}\n").unwrap_err();
        assert!(matches!(e, ConfigFileError::NoPlugin { .. }));
    }
}
