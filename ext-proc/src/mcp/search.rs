//! `search_tools`: a ranked search over the approved tools' names, descriptions and
//! parameter names (BM25, with the fields weighted: a word in the tool's name counts more
//! than one in its description). Words are split at `_`, `-`, `.` and camelCase, lower-cased,
//! stripped of common English endings and of stop words, the same way for tools and queries.

use std::collections::HashMap;

/// How much one occurrence counts, by field.
const NAME_WEIGHT: f32 = 3.0;
const SERVER_WEIGHT: f32 = 1.0;
const PARAMETER_WEIGHT: f32 = 1.5;
const DESCRIPTION_WEIGHT: f32 = 1.0;
const PARAMETER_DESCRIPTION_WEIGHT: f32 = 0.5;
/// BM25's usual constants.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// What is searched of one tool.
pub struct Searchable<'a> {
    pub server: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a serde_json::Value,
}

/// The index over a list of tools; results are positions in that list.
#[derive(Debug, Default)]
pub struct Index {
    docs: Vec<Doc>,
    /// In how many tools each term occurs.
    df: HashMap<String, u32>,
    avg_len: f32,
}

#[derive(Debug)]
struct Doc {
    /// Weighted term frequencies.
    terms: HashMap<String, f32>,
    len: f32,
}

impl Index {
    pub fn build<'a>(tools: impl IntoIterator<Item = Searchable<'a>>) -> Self {
        let mut docs = Vec::new();
        let mut df: HashMap<String, u32> = HashMap::new();
        for t in tools {
            let mut terms: HashMap<String, f32> = HashMap::new();
            let mut add = |text: &str, weight: f32| {
                for term in terms_of(text) {
                    *terms.entry(term).or_default() += weight;
                }
            };
            add(t.name, NAME_WEIGHT);
            add(t.server, SERVER_WEIGHT);
            add(t.description, DESCRIPTION_WEIGHT);
            if let Some(props) = t.input_schema.get("properties").and_then(|p| p.as_object()) {
                for (name, prop) in props {
                    add(name, PARAMETER_WEIGHT);
                    if let Some(d) = prop.get("description").and_then(|d| d.as_str()) {
                        add(d, PARAMETER_DESCRIPTION_WEIGHT);
                    }
                }
            }
            for term in terms.keys() {
                *df.entry(term.clone()).or_default() += 1;
            }
            let len = terms.values().sum();
            docs.push(Doc { terms, len });
        }
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            docs.iter().map(|d| d.len).sum::<f32>() / docs.len() as f32
        };
        Self { docs, df, avg_len }
    }

    /// The best `limit` matches among the tools `visible` admits, best first, with their
    /// scores; tools matching no query word are left out.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        visible: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let mut words = terms_of(query);
        words.sort();
        words.dedup();
        let n = self.docs.len() as f32;
        let mut scored: Vec<(usize, f32)> = self
            .docs
            .iter()
            .enumerate()
            .filter(|(i, _)| visible(*i))
            .filter_map(|(i, d)| {
                let mut score = 0.0;
                for w in &words {
                    let Some(&tf) = d.terms.get(w) else { continue };
                    let df = self.df.get(w).copied().unwrap_or(0) as f32;
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    score +=
                        idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * d.len / self.avg_len));
                }
                (score > 0.0).then_some((i, score))
            })
            .collect();
        // Ties keep the tools' order, so results are stable.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored
    }
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "get", "how", "i",
    "in", "is", "it", "me", "my", "of", "on", "or", "please", "some", "that", "the", "this", "to",
    "tool", "use", "want", "what", "which", "with", "you",
];

/// The search terms of `text`.
pub fn terms_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in split_words(text) {
        let w = word.to_lowercase();
        if w.len() < 2 || STOP_WORDS.contains(&w.as_str()) {
            continue;
        }
        out.push(stem(&w));
    }
    out
}

/// Words at non-alphanumerics and camelCase boundaries (`listS3Objects` → list, S3, Objects).
fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let bytes = text.as_bytes();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
            continue;
        }
        // A capital after a lower-case letter or a digit starts a word.
        let after = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let boundary = c.is_uppercase() && i > 0 && after(bytes[i - 1]) && start.is_some();
        if boundary {
            if let Some(s) = start {
                words.push(&text[s..i]);
            }
            start = Some(i);
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

/// Common English endings off, so `issues`/`issue` and `listing`/`list` meet.
fn stem(w: &str) -> String {
    let cut = |suffix: &str, min: usize, with: &str| -> Option<String> {
        (w.len() >= min && w.ends_with(suffix))
            .then(|| format!("{}{with}", &w[..w.len() - suffix.len()]))
    };
    cut("ies", 5, "y")
        .or_else(|| cut("sses", 6, "ss"))
        .or_else(|| cut("ing", 6, ""))
        .or_else(|| cut("ed", 5, ""))
        .or_else(|| (!w.ends_with("ss")).then(|| cut("s", 4, "")).flatten())
        .unwrap_or_else(|| w.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_split_and_stem() {
        assert_eq!(
            terms_of("listS3Objects github_create_issues Sending the e-mail"),
            ["list", "s3", "object", "github", "create", "issue", "send", "mail"]
        );
        assert_eq!(terms_of("address queries"), ["address", "query"]);
    }

    #[test]
    fn ranks_by_name_then_description_and_parameters() {
        let schema = |p: serde_json::Value| json!({"type": "object", "properties": p});
        let tools = [
            (
                "github",
                "create_issue",
                "Open a new issue in a repository",
                schema(json!({"repo": {}, "title": {}})),
            ),
            (
                "jira",
                "create_ticket",
                "Create a ticket; like a GitHub issue but in Jira",
                schema(json!({"project": {}})),
            ),
            (
                "weather",
                "forecast",
                "Weather forecast for a city",
                schema(json!({"city": {"description": "city name"}})),
            ),
        ];
        let index = Index::build(tools.iter().map(|(s, n, d, i)| Searchable {
            server: s,
            name: n,
            description: d,
            input_schema: i,
        }));
        let top = |q: &str| {
            index
                .search(q, 3, |_| true)
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(top("create a github issue")[0], 0);
        assert_eq!(top("new jira ticket")[0], 1);
        assert_eq!(top("what is the weather in Paris"), [2]);
        assert_eq!(top("city"), [2], "parameter names are searched");
        assert!(top("kubernetes").is_empty());
        // Hidden tools are never found.
        assert!(index
            .search("github issue", 3, |i| i != 0)
            .iter()
            .all(|r| r.0 != 0));
    }
}
