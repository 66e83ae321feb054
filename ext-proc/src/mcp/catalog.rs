//! Every approved tool of every upstream, as the gateway shows them: named
//! `<server>__<tool>`, with its input schema compiled for argument checks and indexed for
//! `search_tools`. Rebuilt whenever a server's listing changes, never on a request.

use super::search::{Index, Searchable};
use super::upstream::Upstream;
use aigw_core::config::mcp::TOOL_SEPARATOR;
use rmcp::model::Tool;
use std::collections::HashMap;
use std::sync::Arc;

pub struct CatalogTool {
    /// Position of its server in the gateway's upstreams.
    pub server: usize,
    pub server_name: String,
    /// The server's own name for it.
    pub name: String,
    /// As shown to clients: `<server>__<tool>`.
    pub exposed: Tool,
    /// `None` when the server's schema does not compile: arguments are not checked.
    validator: Option<jsonschema::Validator>,
}

#[derive(Default)]
pub struct Catalog {
    pub tools: Vec<CatalogTool>,
    by_name: HashMap<String, usize>,
    pub index: Index,
}

impl Catalog {
    pub fn build(upstreams: &[Arc<Upstream>]) -> Self {
        let mut tools = Vec::new();
        for (i, up) in upstreams.iter().enumerate() {
            for t in &up.listing().tools {
                let mut exposed = t.clone();
                exposed.name = format!("{}{TOOL_SEPARATOR}{}", up.config.name, t.name).into();
                let schema = serde_json::Value::Object((*t.input_schema).clone());
                let validator = match jsonschema::validator_for(&schema) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(server = %up.config.name, tool = %t.name, error = %e, "tool input schema does not compile; its arguments go unchecked");
                        None
                    }
                };
                tools.push(CatalogTool {
                    server: i,
                    server_name: up.config.name.clone(),
                    name: t.name.to_string(),
                    exposed,
                    validator,
                });
            }
        }
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.exposed.name.to_string(), i))
            .collect();
        let schemas: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| serde_json::Value::Object((*t.exposed.input_schema).clone()))
            .collect();
        let index = Index::build(tools.iter().zip(&schemas).map(|(t, schema)| Searchable {
            server: &t.server_name,
            name: &t.name,
            description: t.exposed.description.as_deref().unwrap_or(""),
            input_schema: schema,
        }));
        Self {
            tools,
            by_name,
            index,
        }
    }

    /// The tool shown as `exposed` (`<server>__<tool>`).
    pub fn get(&self, exposed: &str) -> Option<(usize, &CatalogTool)> {
        let i = *self.by_name.get(exposed)?;
        Some((i, &self.tools[i]))
    }
}

impl CatalogTool {
    /// Why `arguments` do not match the tool's input schema, if they do not.
    pub fn check(&self, arguments: &serde_json::Value) -> Result<(), String> {
        let Some(v) = &self.validator else {
            return Ok(());
        };
        let errors: Vec<String> = v
            .iter_errors(arguments)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
