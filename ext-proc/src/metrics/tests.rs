use super::*;
use crate::store::tests::{assert_fixture, record, unpriced, JAN_31};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the text format: every sample belongs to a family declared by one
/// `# HELP` and one `# TYPE` line before it, names and labels are well formed, values parse.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(
                helps.insert(name.to_string(), help.to_string()).is_none(),
                "{line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
        };
        assert!(valid_name(name), "{line}");
        assert!(labels.keys().all(|k| valid_name(k)), "{line}");
        let family = if types.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
                .unwrap_or_else(|| panic!("undeclared family: {line}"))
        };
        assert!(types.contains_key(family));
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{s}");
        let mut value = String::new();
        loop {
            match chars.next().unwrap() {
                '\\' => match chars.next().unwrap() {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c} in {s}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        assert!(labels.insert(key, value).is_none(), "{s}");
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => panic!("unexpected {c} in {s}"),
        }
    }
    labels
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// Three OpenAI requests (one streamed, one unpriced, one 429), an Anthropic stream, an
/// upstream that never answered.
fn sample_records() -> Vec<UsageRecord> {
    let mut streamed = record(JAN_31, "openai", "gpt-4o");
    streamed.streamed = true;
    streamed.ttfb_ms = Some(120);
    streamed.latency_ms = 3_000;
    let mut limited = unpriced(record(JAN_31, "openai", "gpt-4o"));
    limited.status = 429;
    limited.usage_reported = false;
    limited.usage = Default::default();
    let mut claude = record(JAN_31, "anthropic", "claude-sonnet-4");
    claude.provider_type = "anthropic".into();
    claude.api_path = "/v1/messages".into();
    claude.streamed = true;
    claude.ttfb_ms = Some(5);
    claude.usage.input = 10_000;
    let mut gone = record(JAN_31, "bedrock-east", "anthropic.claude-3-haiku");
    gone.provider_type = "bedrock".into();
    gone.api_path = "/model/anthropic.claude-3-haiku/converse-stream".into();
    gone.status = 0;
    gone.usage_reported = false;
    gone.cost_nanousd = Some(0);
    vec![
        record(JAN_31, "openai", "gpt-4o"),
        streamed,
        limited,
        claude,
        gone,
    ]
}

#[test]
fn exposition_parses_and_counts_each_record_once() {
    let metrics = Metrics::default();
    let records = sample_records();
    metrics.observe(&records[..2]);
    metrics.observe(&records[2..]);
    metrics.record_dropped();
    metrics.store_write_failed();
    metrics.set_store_pending(3);
    let text = metrics.render();
    let (types, samples) = parse(&text);
    assert_eq!(types["gen_ai_client_token_usage"], "histogram");
    assert_eq!(
        types["gen_ai_client_operation_duration_seconds"],
        "histogram"
    );
    assert_eq!(
        types["gen_ai_server_time_to_first_token_seconds"],
        "histogram"
    );
    assert_eq!(types["aigw_requests_total"], "counter");
    assert_eq!(types["aigw_store_pending_records"], "gauge");

    let openai = [
        ("gen_ai_provider_name", "openai"),
        ("gen_ai_request_model", "gpt-4o"),
        ("gen_ai_operation_name", "chat"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut l = openai.to_vec();
        l.push(extra);
        l
    };
    // Requests by status class; 429 apart from 4xx.
    assert_eq!(
        value(&samples, "aigw_requests_total", &with(("status", "2xx"))),
        2.0
    );
    assert_eq!(
        value(&samples, "aigw_requests_total", &with(("status", "429"))),
        1.0
    );
    let total: f64 = find(&samples, "aigw_requests_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 5.0);
    assert_eq!(
        value(
            &samples,
            "aigw_requests_total",
            &[("gen_ai_provider_name", "bedrock-east"), ("status", "none")]
        ),
        1.0
    );
    // Tokens: only records with reported usage; input is every prompt token.
    let input = with(("gen_ai_token_type", "input"));
    assert_eq!(
        value(&samples, "gen_ai_client_token_usage_count", &input),
        2.0
    );
    assert_eq!(
        value(&samples, "gen_ai_client_token_usage_sum", &input),
        250.0
    );
    let output = with(("gen_ai_token_type", "output"));
    assert_eq!(
        value(&samples, "gen_ai_client_token_usage_sum", &output),
        100.0
    );
    let mut le = input.clone();
    le.push(("le", "64"));
    assert_eq!(
        value(&samples, "gen_ai_client_token_usage_bucket", &le),
        0.0
    );
    le.pop();
    le.push(("le", "256"));
    assert_eq!(
        value(&samples, "gen_ai_client_token_usage_bucket", &le),
        2.0
    );
    // Duration in seconds, per status.
    let ok = with(("status", "2xx"));
    assert_eq!(
        value(
            &samples,
            "gen_ai_client_operation_duration_seconds_sum",
            &ok
        ),
        3.25
    );
    let mut le = ok.clone();
    le.push(("le", "0.32"));
    assert_eq!(
        value(
            &samples,
            "gen_ai_client_operation_duration_seconds_bucket",
            &le
        ),
        1.0
    );
    // Time to first token: streamed requests only.
    assert_eq!(
        value(
            &samples,
            "gen_ai_server_time_to_first_token_seconds_count",
            &openai
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "gen_ai_server_time_to_first_token_seconds_sum",
            &openai
        ),
        0.12
    );
    assert_eq!(
        find(
            &samples,
            "gen_ai_server_time_to_first_token_seconds_count",
            &[]
        )
        .len(),
        2
    );
    // Cost and unpriced.
    assert_eq!(
        value(&samples, "aigw_cost_nanousd_total", &openai),
        3_000_000.0
    );
    assert_eq!(
        value(&samples, "aigw_unpriced_requests_total", &openai),
        1.0
    );
    assert_eq!(value(&samples, "aigw_records_dropped_total", &[]), 1.0);
    assert_eq!(value(&samples, "aigw_store_write_errors_total", &[]), 1.0);
    assert_eq!(value(&samples, "aigw_store_pending_records", &[]), 3.0);
}

#[test]
fn histograms_are_cumulative_and_end_at_the_count() {
    let metrics = Metrics::default();
    metrics.observe(&sample_records());
    let (types, samples) = parse(&metrics.render());
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let counts = find(&samples, &format!("{family}_count"), &[]);
        assert!(!counts.is_empty(), "{family}");
        for count in counts {
            let mut labels: Vec<(&str, &str)> = count
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            labels.sort();
            let buckets: Vec<&Sample> = find(&samples, &format!("{family}_bucket"), &labels)
                .into_iter()
                .filter(|b| b.labels.len() == count.labels.len() + 1)
                .collect();
            assert!(
                buckets.windows(2).all(|w| w[0].value <= w[1].value),
                "{family}"
            );
            let bounds: Vec<f64> = buckets
                .iter()
                .map(|b| match b.labels["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap(),
                })
                .collect();
            assert!(
                bounds.windows(2).all(|w| w[0] < w[1]),
                "{family}: {bounds:?}"
            );
            let last = buckets.last().unwrap();
            assert_eq!(last.labels["le"], "+Inf");
            assert_eq!(last.value, count.value, "{family}");
        }
    }
}

#[test]
fn exposition_matches_its_fixture() {
    let metrics = Metrics::default();
    metrics.observe(&sample_records());
    assert_fixture("metrics.prom", &metrics.render());
}

#[test]
fn models_are_capped_per_provider() {
    let metrics = Metrics::new(2);
    let mut records: Vec<UsageRecord> = ["a", "b", "c", "a", "d"]
        .iter()
        .map(|m| record(JAN_31, "openai", m))
        .collect();
    records.push(record(JAN_31, "other-provider", "z"));
    let mut long = record(JAN_31, "other-provider", &"m".repeat(500));
    long.model_requested = Some("m".repeat(500));
    records.push(long);
    metrics.observe(&records);
    let (_, samples) = parse(&metrics.render());
    let models = |provider: &str| -> Vec<(String, f64)> {
        find(
            &samples,
            "aigw_requests_total",
            &[("gen_ai_provider_name", provider)],
        )
        .iter()
        .map(|s| (s.labels["gen_ai_request_model"].clone(), s.value))
        .collect()
    };
    assert_eq!(
        models("openai"),
        [("a".into(), 2.0), ("b".into(), 1.0), ("other".into(), 2.0)]
    );
    assert_eq!(
        models("other-provider"),
        [("m".repeat(MAX_LABEL_CHARS), 1.0), ("z".into(), 1.0)]
    );
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::default();
    metrics.observe(&[record(JAN_31, "openai", "we\"ird\\model\nname")]);
    let text = metrics.render();
    assert!(text.contains(r#"gen_ai_request_model="we\"ird\\model\nname""#));
    let (_, samples) = parse(&text);
    assert_eq!(
        find(&samples, "aigw_requests_total", &[])[0].labels["gen_ai_request_model"],
        "we\"ird\\model\nname"
    );
}

#[test]
fn a_model_is_labelled_by_what_was_requested_else_answered() {
    let metrics = Metrics::default();
    let mut answered_only = record(JAN_31, "openai", "ignored");
    answered_only.model_requested = None;
    answered_only.model_answered = Some("gpt-4o-mini".into());
    let mut none = record(JAN_31, "openai", "ignored");
    none.model_requested = None;
    none.model_answered = None;
    metrics.observe(&[answered_only, none]);
    let (_, samples) = parse(&metrics.render());
    let models: Vec<&str> = find(&samples, "aigw_requests_total", &[])
        .iter()
        .map(|s| s.labels["gen_ai_request_model"].as_str())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "unknown"]);
}

#[test]
fn operations_are_named_from_the_api_path() {
    for (provider_type, path, operation) in [
        ("openai", "/v1/chat/completions", "chat"),
        ("openai", "/v1/completions", "text_completion"),
        ("openai", "/v1/responses", "chat"),
        ("openai", "/v1/embeddings", "embeddings"),
        ("openai", "/v1/models", "other"),
        ("openai-compatible", "/base/v1/chat/completions", "chat"),
        ("openai-compatible", "/v1/messages", "chat"),
        ("anthropic", "/v1/messages", "chat"),
        ("anthropic", "/v1/messages/count_tokens", "count_tokens"),
        (
            "google",
            "/v1beta/models/gemini-2.5-pro:generateContent",
            "generate_content",
        ),
        (
            "google",
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            "generate_content",
        ),
        (
            "google",
            "/v1beta/models/text-embedding-004:embedContent",
            "embeddings",
        ),
        (
            "google",
            "/v1beta/models/gemini-2.5-pro:countTokens",
            "count_tokens",
        ),
        (
            "bedrock",
            "/model/anthropic.claude-3-haiku/converse",
            "chat",
        ),
        (
            "bedrock",
            "/model/anthropic.claude-3-haiku/converse-stream",
            "chat",
        ),
        (
            "bedrock",
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
            "invoke_model",
        ),
        (
            "bedrock",
            "/model/x/invoke-with-response-stream",
            "invoke_model",
        ),
        ("bedrock", "/model/x/count-tokens", "count_tokens"),
        ("martian", "/v1/chat/completions", "other"),
    ] {
        assert_eq!(
            operation_name(provider_type, path),
            operation,
            "{provider_type} {path}"
        );
    }
}

#[test]
fn statuses_fall_into_bounded_classes() {
    for (status, label) in [
        (0, "none"),
        (101, "1xx"),
        (200, "2xx"),
        (204, "2xx"),
        (304, "3xx"),
        (400, "4xx"),
        (429, "429"),
        (499, "4xx"),
        (503, "5xx"),
        (529, "5xx"),
        (600, "other"),
        (42, "other"),
    ] {
        assert_eq!(status_label(status), label, "{status}");
    }
}
