//! Redaction, applied by the log writer before a body is stored: values at JSON paths
//! become `"[REDACTED]"`, then matches of the patterns become `[REDACTED]`. A body that
//! cannot be read as JSON while JSON paths are configured (cut by the size cap, or not
//! JSON) is not stored at all: the paths could not be honoured.

use aigw_core::RequestLogConfig;
use regex::{Regex, RegexSet};
use serde_json::Value;
use serde_json_path::JsonPath;
use std::borrow::Cow;

pub const REDACTED: &str = "[REDACTED]";
/// Stored instead of a body the JSON paths could not be applied to.
pub const UNREDACTABLE: &str =
    "[not stored: the body is not whole JSON, so its JSON-path redaction could not be applied]";

pub struct Redactor {
    paths: Vec<JsonPath>,
    /// A quick "does anything match" before the rewrite.
    any: RegexSet,
    patterns: Vec<Regex>,
}

/// A rule that does not compile, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadRule {
    pub field: String,
    pub message: String,
}

impl Redactor {
    pub fn new(config: &RequestLogConfig) -> Result<Self, BadRule> {
        let paths = config
            .json_paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                JsonPath::parse(p).map_err(|e| BadRule {
                    field: format!("request_logs.redact.json_paths[{i}]"),
                    message: format!("'{p}' is not a JSON path: {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        let patterns = config
            .patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Regex::new(p).map_err(|e| BadRule {
                    field: format!("request_logs.redact.patterns[{i}]"),
                    message: format!("not a regular expression: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let any = RegexSet::new(patterns.iter().map(Regex::as_str)).map_err(|e| BadRule {
            field: "request_logs.redact.patterns".into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            paths,
            any,
            patterns,
        })
    }

    /// A JSON body (request, or a non-streamed response): paths, then patterns.
    pub fn body(&self, body: String, truncated: bool) -> String {
        if body.is_empty() {
            return body;
        }
        let body = if self.paths.is_empty() {
            body
        } else {
            match serde_json::from_str::<Value>(&body) {
                Ok(mut v) if !truncated => {
                    if self.redact_paths(&mut v) {
                        v.to_string()
                    } else {
                        body
                    }
                }
                _ => return UNREDACTABLE.to_string(),
            }
        };
        self.text(body)
    }

    /// Plain text (a stream's assembled text): patterns only.
    pub fn text(&self, text: String) -> String {
        if !self.any.is_match(&text) {
            return text;
        }
        let mut out = Cow::Owned(text);
        for re in &self.patterns {
            if let Cow::Owned(s) = re.replace_all(&out, REDACTED) {
                out = Cow::Owned(s);
            }
        }
        out.into_owned()
    }

    /// Whether anything was replaced.
    fn redact_paths(&self, v: &mut Value) -> bool {
        let mut pointers = Vec::new();
        for p in &self.paths {
            pointers.extend(p.query_located(v).locations().map(|l| l.to_json_pointer()));
        }
        let mut changed = false;
        for ptr in pointers {
            if let Some(slot) = v.pointer_mut(&ptr) {
                *slot = Value::String(REDACTED.into());
                changed = true;
            }
        }
        changed
    }
}
