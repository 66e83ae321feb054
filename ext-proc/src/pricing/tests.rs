use super::*;
use crate::usage::{ApiFormat, OpenaiDialect, UsageExtractor};

fn day(s: &str) -> Day {
    Day::parse(s).unwrap()
}

/// Prices checked on the snapshot date of providers.md.
const SNAPSHOT: &str = "2026-12-01";

fn nanousd(cost: &Cost) -> u128 {
    match cost {
        Cost::Priced { nanousd, .. } => *nanousd,
        Cost::Unpriced { reason } => panic!("unpriced: {reason}"),
    }
}

fn priced_as(cost: &Cost) -> &PricedAs {
    match cost {
        Cost::Priced { priced_as, .. } => priced_as,
        Cost::Unpriced { reason } => panic!("unpriced: {reason}"),
    }
}

fn cost(kind: ProviderKind, model: &str, usage: &Usage) -> Cost {
    Catalog::builtin().cost_on(kind, model, usage, day(SNAPSHOT))
}

fn extract_fixture(format: ApiFormat, name: &str) -> Usage {
    let path = format!(
        "{}/../metering/tests/fixtures/usage/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut x = UsageExtractor::new(format, None, None);
    x.feed(&std::fs::read(path).unwrap());
    x.finish().usage.unwrap()
}

// ---- Price ----------------------------------------------------------------------------

#[test]
fn prices_parse_exactly() {
    let cases = [
        ("0.075", 75),
        ("10", 10_000),
        ("12.50", 12_500),
        ("0.0750", 75),
        ("0.001", 1),
        ("0", 0),
        ("1000000", 1_000_000_000),
    ];
    for (text, nano) in cases {
        assert_eq!(
            Price::parse(text).map(Price::nanousd_per_token),
            Ok(nano),
            "{text}"
        );
    }
    assert_eq!(
        Price::parse("0.0001"),
        Err(PriceError::TooPrecise("0.0001".into()))
    );
    for bad in [
        "", ".5", "5.", "-1", "1e3", "1,5", " 1", "1.2.3", "0x10", "١",
    ] {
        assert_eq!(
            Price::parse(bad),
            Err(PriceError::NotDecimal(bad.into())),
            "{bad:?}"
        );
    }
    for big in ["1000000.001", "1000001", "99999999999999999999999"] {
        assert_eq!(
            Price::parse(big),
            Err(PriceError::TooLarge(big.into())),
            "{big}"
        );
    }
}

#[test]
fn prices_print_back_as_decimals() {
    for (text, shown) in [
        ("0.075", "0.075"),
        ("12.50", "12.5"),
        ("10", "10"),
        ("0.10", "0.1"),
    ] {
        assert_eq!(Price::parse(text).unwrap().to_string(), shown);
    }
    let json = serde_json::to_string(&Price::parse("2.50").unwrap()).unwrap();
    assert_eq!(json, "\"2.5\"");
}

#[test]
fn microusd_view_rounds_half_up() {
    for (nano, micro) in [
        (0, 0),
        (499, 0),
        (500, 1),
        (1499, 1),
        (1500, 2),
        (2_000_000, 2000),
    ] {
        assert_eq!(nanousd_to_microusd_rounded(nano), micro, "{nano}");
    }
}

// ---- The catalog ----------------------------------------------------------------------

#[test]
fn builtin_catalog_is_valid_and_sourced() {
    let catalog = Catalog::builtin();
    let mut count = 0;
    for kind in [
        ProviderKind::Anthropic,
        ProviderKind::Openai,
        ProviderKind::Google,
    ] {
        for e in catalog.entries(kind) {
            assert!(e.source.starts_with("https://"), "{:?}", e.models);
            assert!(e.taken <= day(SNAPSHOT), "{:?}", e.models);
            assert!(
                e.prices.input.is_some() && e.prices.output.is_some(),
                "{:?}",
                e.models
            );
            count += 1;
        }
    }
    assert_eq!(count, 12);
    assert!(catalog.entries(ProviderKind::Bedrock).is_empty());
    assert!(catalog.entries(ProviderKind::OpenaiCompatible).is_empty());
}

/// providers.md §8: above 272K input, input and cache 2×, output 1.5×.
#[test]
fn openai_long_context_rows_follow_the_documented_multipliers() {
    let catalog = Catalog::builtin();
    let nano = |p: Option<Price>| p.map(Price::nanousd_per_token);
    for e in catalog.entries(ProviderKind::Openai) {
        let [tier] = e.tiers.as_slice() else {
            panic!("{:?} has no long-context tier", e.models)
        };
        assert_eq!(tier.above_prompt_tokens, 272_000);
        for bucket in Bucket::ALL {
            let base = nano(e.prices.get(bucket));
            let want = base.map(|b| match bucket {
                Bucket::Output => b * 3 / 2,
                _ => b * 2,
            });
            assert_eq!(
                nano(tier.prices.get(bucket)),
                want,
                "{:?} {bucket:?}",
                e.models
            );
        }
    }
}

#[test]
fn catalog_errors_are_named() {
    let entry = |models: &str, extra: &str| {
        format!(
            r#"{{"models": {models}, "input": "1", "taken": "2026-01-01", "source": "https://x"{extra}}}"#
        )
    };
    let file =
        |entries: &[String]| format!(r#"{{"providers": {{"openai": [{}]}}}}"#, entries.join(","));
    let dup = file(&[entry(r#"["a"]"#, ""), entry(r#"["b", "a"]"#, "")]);
    assert!(matches!(
        Catalog::from_json(&dup),
        Err(CatalogError::Duplicate { .. })
    ));
    let dated = file(&[
        entry(r#"["a"]"#, ""),
        entry(r#"["a"]"#, r#", "effective_from": "2027-01-01""#),
    ]);
    assert!(Catalog::from_json(&dated).is_ok());
    let tiers = file(&[entry(
        r#"["a"]"#,
        r#", "tiers": [{"above_prompt_tokens": 10, "input": "2"}, {"above_prompt_tokens": 5, "input": "3"}]"#,
    )]);
    assert!(matches!(
        Catalog::from_json(&tiers),
        Err(CatalogError::TiersOutOfOrder { .. })
    ));
    for bad in [
        file(&[entry(r#"["a"]"#, r#", "inptu": "1""#)]),
        file(&[entry(r#"["a"]"#, r#", "model": "x""#)]),
        file(&[entry(
            r#"["a"]"#,
            r#", "tiers": [{"above_prompt_tokens": 1, "source": "x"}]"#,
        )]),
        file(&[entry(r#"["a"]"#, r#", "output": 1.5"#)]),
        file(&[entry(r#"["a"]"#, r#", "output": "0.00001""#)]),
        file(&[entry(r#"["a"]"#, r#", "taken": "2026-02-30""#)]),
        r#"{"providers": {"azure": []}}"#.to_string(),
    ] {
        assert!(
            matches!(Catalog::from_json(&bad), Err(CatalogError::Json(_))),
            "{bad}"
        );
    }
    let empty =
        file(&[r#"{"models": [], "input": "1", "taken": "2026-01-01", "source": "s"}"#.into()]);
    assert!(matches!(
        Catalog::from_json(&empty),
        Err(CatalogError::NoModels { .. })
    ));
}

// ---- Cost formulas, providers.md §6 ---------------------------------------------------

/// Anthropic: input·in + e5m·w5 + e1h·w1h + read·r + output·out (Opus 5: 5, 6.25, 10,
/// 0.50, 25).
#[test]
fn anthropic_cost_formula() {
    let usage = extract_fixture(ApiFormat::AnthropicMessages, "anthropic/messages.json");
    let c = cost(
        ProviderKind::Anthropic,
        usage.model.as_deref().unwrap(),
        &usage,
    );
    let want = 100 * 5_000 + 1000 * 6_250 + 2000 * 10_000 + 5000 * 500 + 800 * 25_000;
    assert_eq!(nanousd(&c), want);
    assert_eq!(want, 49_250_000); // $0.04925
    let Cost::Priced {
        breakdown,
        priced_as,
        ..
    } = &c
    else {
        unreachable!()
    };
    assert_eq!(breakdown.cache_write_1h, 20_000_000);
    assert_eq!(breakdown.output, 20_000_000);
    assert_eq!(priced_as.model, "claude-opus-5");
    assert!(!priced_as.overridden);
    assert_eq!(c.microusd_rounded(), Some(49_250));
}

/// Haiku 5.5 above a 100k prompt: every price of the long-context row.
#[test]
fn anthropic_long_prompt_tier() {
    let usage = Usage {
        input: 1,
        cache_read: 90_000,
        cache_write_5m: 9_999,
        output: 10,
        ..Usage::default()
    };
    let at_limit = cost(ProviderKind::Anthropic, "claude-haiku-5-5", &usage);
    assert_eq!(
        nanousd(&at_limit),
        100 + 90_000 * 10 + 9_999 * 125 + 10 * 500
    );
    assert_eq!(priced_as(&at_limit).tier_above_prompt_tokens, None);
    let above = Usage { input: 2, ..usage };
    let c = cost(ProviderKind::Anthropic, "claude-haiku-5-5-20261001", &above);
    assert_eq!(
        nanousd(&c),
        2 * 500 + 90_000 * 50 + 9_999 * 625 + 10 * 2_500
    );
    assert_eq!(priced_as(&c).tier_above_prompt_tokens, Some(100_000));
}

/// OpenAI: (prompt − cached − write)·in + cached·read + write·w + completion·out
/// (gpt-6-luna: 0.10, 0.01, 0.125, 0.50).
#[test]
fn openai_cost_formula() {
    let usage = extract_fixture(
        ApiFormat::OpenaiChat(OpenaiDialect::Openai),
        "openai/chat.json",
    );
    let (prompt, cached, written, completion) = (2000, 1200, 300, 500);
    let want = (prompt - cached - written) * 100 + cached * 10 + written * 125 + completion * 500;
    let c = cost(
        ProviderKind::Openai,
        usage.model.as_deref().unwrap(),
        &usage,
    );
    assert_eq!(nanousd(&c), want);
    assert_eq!(want, 349_500);
    assert_eq!(priced_as(&c).model, "gpt-6-luna");
}

/// Above 272K input the whole request is at 2× input and cache, 1.5× output.
#[test]
fn openai_long_context_and_ttl_buckets() {
    let usage = extract_fixture(
        ApiFormat::OpenaiResponses(OpenaiDialect::Openai),
        "openai/responses.json",
    );
    assert_eq!(usage.prompt_tokens(), 300_000);
    let c = cost(ProviderKind::Openai, "gpt-6.2-sol", &usage);
    let want = 50_000 * 4_000 + 200_000 * 200 + 20_000 * 5_000 + 30_000 * 10_000 + 4000 * 15_000;
    assert_eq!(nanousd(&c), want);
    assert_eq!(priced_as(&c).tier_above_prompt_tokens, Some(272_000));
    // Just below the threshold: the base prices.
    let small = Usage {
        input: 72_000,
        ..usage.clone()
    };
    assert_eq!(small.prompt_tokens(), 322_000);
    let small = Usage {
        input: 22_000,
        ..usage.clone()
    };
    assert_eq!(small.prompt_tokens(), 272_000);
    let c = cost(ProviderKind::Openai, "gpt-6.2-sol-2026-11-01", &small);
    let want = 22_000 * 2_000 + 200_000 * 100 + 20_000 * 2_500 + 30_000 * 5_000 + 4000 * 10_000;
    assert_eq!(nanousd(&c), want);
    // gpt-6-luna has no 12-hour write price: unpriced, not free.
    let c = cost(ProviderKind::Openai, "gpt-6-luna", &usage);
    assert_eq!(
        c,
        Cost::Unpriced {
            reason: Unpriced::MissingPrice {
                kind: ProviderKind::Openai,
                model: "gpt-6-luna".into(),
                bucket: Bucket::CacheWrite12h,
                tokens: 30_000
            }
        }
    );
}

/// Gemini: (prompt − cached)·in + cached·r + (candidates + thoughts)·out, with the
/// tool-use prompt as input (3.8 Flash: 0.75, 0.075, 3.75).
#[test]
fn gemini_cost_formula() {
    let usage = extract_fixture(ApiFormat::GeminiGenerateContent, "gemini/generate.json");
    let (prompt, cached, tool_use, candidates, thoughts) = (10_000, 6000, 500, 700, 1200);
    let want = (prompt - cached + tool_use) * 750 + cached * 75 + (candidates + thoughts) * 3_750;
    let c = cost(ProviderKind::Google, "gemini-3.8-flash", &usage);
    assert_eq!(nanousd(&c), want);
    assert_eq!(want, 10_950_000);
}

#[test]
fn gemini_dated_price_change() {
    let catalog = Catalog::builtin();
    let plain = Usage {
        input: 1000,
        output: 100,
        ..Usage::default()
    };
    let before = catalog.cost_on(
        ProviderKind::Google,
        "gemini-3.8-flash",
        &plain,
        day("2026-12-31"),
    );
    let after = catalog.cost_on(
        ProviderKind::Google,
        "gemini-3.8-flash",
        &plain,
        day("2027-01-01"),
    );
    assert_eq!(nanousd(&before), 1000 * 750 + 100 * 3_750);
    assert_eq!(nanousd(&after), 1000 * 1_500 + 100 * 7_500);
    // The new price lists no cache read.
    let cached = Usage {
        cache_read: 5,
        ..plain
    };
    let after = catalog.cost_on(
        ProviderKind::Google,
        "models/gemini-3.8-flash",
        &cached,
        day("2027-02-01"),
    );
    assert!(matches!(
        after,
        Cost::Unpriced {
            reason: Unpriced::MissingPrice {
                bucket: Bucket::CacheRead,
                ..
            }
        }
    ));
}

#[test]
fn gemini_pro_long_prompt_tier_and_unchecked_cache_price() {
    let usage = Usage {
        input: 200_001,
        output: 10,
        ..Usage::default()
    };
    let c = cost(ProviderKind::Google, "gemini-3.1-pro-preview", &usage);
    assert_eq!(nanousd(&c), 200_001 * 4_000 + 10 * 18_000);
    let usage = Usage {
        input: 10,
        cache_read: 10,
        ..Usage::default()
    };
    let c = cost(ProviderKind::Google, "gemini-3.5-flash-001", &usage);
    assert!(matches!(
        c,
        Cost::Unpriced {
            reason: Unpriced::MissingPrice {
                bucket: Bucket::CacheRead,
                tokens: 10,
                ..
            }
        }
    ));
}

/// Bedrock: inputTokens·in + read·r + write·w + output·out; unpriced unless configured.
#[test]
fn bedrock_cost_formula_with_an_override() {
    let usage = extract_fixture(ApiFormat::BedrockConverse, "bedrock/converse.json");
    let model = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-5-20261001-v1:0";
    let mut catalog = Catalog::builtin();
    assert_eq!(
        catalog.cost_on(ProviderKind::Bedrock, model, &usage, day(SNAPSHOT)),
        Cost::Unpriced {
            reason: Unpriced::UnknownModel {
                kind: ProviderKind::Bedrock,
                model: model.into()
            }
        }
    );
    let o: PriceOverride = serde_json::from_str(
        r#"{"model": "anthropic.claude-opus-5", "input": "3", "cache_read": "0.30", "cache_write_5m": "3.75", "cache_write_1h": "6", "output": "15"}"#,
    )
    .unwrap();
    catalog.set_override(ProviderKind::Bedrock, o).unwrap();
    let c = catalog.cost_on(ProviderKind::Bedrock, model, &usage, day(SNAPSHOT));
    let (input, read, write_5m, write_1h, output) = (50, 4000, 500, 1000, 300);
    assert_eq!(
        nanousd(&c),
        input * 3_000 + read * 300 + write_5m * 3_750 + write_1h * 6_000 + output * 15_000
    );
    assert!(priced_as(&c).overridden);
}

#[test]
fn bedrock_can_opt_into_anthropic_prices() {
    let usage = Usage {
        input: 10,
        cache_write_1h: 10,
        output: 10,
        ..Usage::default()
    };
    let mut catalog = Catalog::builtin();
    catalog.set_bedrock_uses_anthropic_prices(true);
    for model in [
        "anthropic.claude-opus-5-20261001-v1:0",
        "us.anthropic.claude-opus-5-20261001-v1:0",
        "global.anthropic.claude-opus-5-v1",
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-opus-5-20261001-v1:0",
    ] {
        let c = catalog.cost_on(ProviderKind::Bedrock, model, &usage, day(SNAPSHOT));
        assert_eq!(
            nanousd(&c),
            10 * 5_000 + 10 * 10_000 + 10 * 25_000,
            "{model}"
        );
        assert_eq!(priced_as(&c).kind, ProviderKind::Anthropic);
    }
    // Not Anthropic, or an opaque application inference profile: still unpriced.
    for model in [
        "meta.llama4-8b-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
    ] {
        let c = catalog.cost_on(ProviderKind::Bedrock, model, &usage, day(SNAPSHOT));
        assert!(matches!(c, Cost::Unpriced { .. }), "{model}");
    }
}

// ---- Lookup, overrides, limits --------------------------------------------------------

#[test]
fn unknown_models_are_unpriced_never_free() {
    let usage = Usage {
        input: 1,
        ..Usage::default()
    };
    for (kind, model) in [
        (ProviderKind::Anthropic, "claude-opus-9"),
        (ProviderKind::Openai, "gpt-6-luna-mini"),
        (ProviderKind::Openai, "claude-opus-5"),
        (ProviderKind::OpenaiCompatible, "gpt-6-luna"),
        (ProviderKind::Google, "gemini-3.8-flash-lite"),
    ] {
        let c = cost(kind, model, &usage);
        assert_eq!(
            c,
            Cost::Unpriced {
                reason: Unpriced::UnknownModel {
                    kind,
                    model: model.into()
                }
            }
        );
        assert_eq!(c.nanousd(), None);
    }
    assert_eq!(
        cost(ProviderKind::Openai, "  ", &usage),
        Cost::Unpriced {
            reason: Unpriced::NoModel
        }
    );
    let msg = Unpriced::MissingPrice {
        kind: ProviderKind::Google,
        model: "gemini-3.5-flash".into(),
        bucket: Bucket::CacheRead,
        tokens: 7,
    }
    .to_string();
    assert_eq!(
        msg,
        "google model `gemini-3.5-flash` has no cache_read price for 7 tokens"
    );
}

#[test]
fn names_match_exactly_or_by_documented_suffixes_only() {
    let usage = Usage {
        input: 1,
        ..Usage::default()
    };
    let matched = |kind, model| priced_as(&cost(kind, model, &usage)).model.clone();
    assert_eq!(
        matched(ProviderKind::Anthropic, "claude-opus-5-20261001"),
        "claude-opus-5"
    );
    assert_eq!(
        matched(ProviderKind::Anthropic, "claude-opus-5-5-20261101"),
        "claude-opus-5-5"
    );
    assert_eq!(
        matched(ProviderKind::Anthropic, "claude-opus-4-5@20251101"),
        "claude-opus-4-5"
    );
    assert_eq!(
        matched(ProviderKind::Openai, "gpt-6-luna-2026-08-01"),
        "gpt-6-luna"
    );
    assert_eq!(
        matched(ProviderKind::Google, "models/gemini-3.5-flash-001"),
        "gemini-3.5-flash"
    );
    // No loose prefixes.
    for (kind, model) in [
        (ProviderKind::Anthropic, "claude-opus-5-preview"),
        (ProviderKind::Anthropic, "claude-opus-5-2026100"),
        (ProviderKind::Openai, "gpt-6-luna-2026-08"),
        (ProviderKind::Google, "gemini-3.8-flash-exp"),
    ] {
        assert!(
            matches!(cost(kind, model, &usage), Cost::Unpriced { .. }),
            "{model}"
        );
    }
}

#[test]
fn overrides_win_over_the_catalog() {
    let mut catalog = Catalog::builtin();
    let o: PriceOverride =
        serde_json::from_str(r#"{"model": "claude-opus-5", "input": "1.25", "output": "2"}"#)
            .unwrap();
    catalog.set_override(ProviderKind::Anthropic, o).unwrap();
    let usage = Usage {
        input: 1000,
        output: 1000,
        ..Usage::default()
    };
    let c = catalog.cost_on(
        ProviderKind::Anthropic,
        "claude-opus-5-20261001",
        &usage,
        day(SNAPSHOT),
    );
    assert_eq!(nanousd(&c), 1000 * 1_250 + 1000 * 2_000);
    assert!(priced_as(&c).overridden);
    // The override replaces the entry: buckets it leaves out are unpriced.
    let cached = Usage {
        cache_read: 1,
        ..usage.clone()
    };
    let c = catalog.cost_on(
        ProviderKind::Anthropic,
        "claude-opus-5",
        &cached,
        day(SNAPSHOT),
    );
    assert!(matches!(
        c,
        Cost::Unpriced {
            reason: Unpriced::MissingPrice {
                bucket: Bucket::CacheRead,
                ..
            }
        }
    ));
    // Other providers and models keep the catalog.
    let c = catalog.cost_on(
        ProviderKind::Anthropic,
        "claude-opus-5-5",
        &usage,
        day(SNAPSHOT),
    );
    assert!(!priced_as(&c).overridden);
    // Self-hosted models can be priced too.
    let o: PriceOverride =
        serde_json::from_str(r#"{"model": "llama3.3:8b", "input": "0.01", "output": "0.02"}"#)
            .unwrap();
    catalog
        .set_override(ProviderKind::OpenaiCompatible, o)
        .unwrap();
    let c = catalog.cost_on(
        ProviderKind::OpenaiCompatible,
        "llama3.3:8b",
        &usage,
        day(SNAPSHOT),
    );
    assert_eq!(nanousd(&c), 1000 * 10 + 1000 * 20);
}

#[test]
fn overrides_are_checked() {
    let parse = |s: &str| serde_json::from_str::<PriceOverride>(s);
    assert!(parse(r#"{"model": "m", "input": "1", "inptu": "2"}"#).is_err());
    assert!(parse(r#"{"model": "m", "input": 1.25}"#).is_err());
    assert!(parse(r#"{"model": "m", "input": "1.0001"}"#).is_err());
    assert!(parse(r#"{"input": "1"}"#).is_err());
    assert!(parse(r#"{"model": "m", "models": ["m"], "input": "1"}"#).is_err());
    let empty = parse(r#"{"model": "m"}"#).unwrap();
    let mut catalog = Catalog::default();
    assert!(matches!(
        catalog.set_override(ProviderKind::Openai, empty),
        Err(CatalogError::NoPrices { .. })
    ));
}

#[test]
fn huge_token_counts_do_not_overflow() {
    let max = u64::MAX;
    let usage = Usage {
        input: max,
        cache_read: max,
        cache_write_5m: max,
        cache_write_1h: max,
        cache_write_30m: max,
        cache_write_12h: max,
        output: max,
        ..Usage::default()
    };
    let top = "1000000".to_string();
    let o: PriceOverride = serde_json::from_value(serde_json::json!({
        "model": "m", "input": top, "cache_read": top, "cache_write_5m": top,
        "cache_write_1h": top, "cache_write_30m": top, "cache_write_12h": top, "output": top,
    }))
    .unwrap();
    let mut catalog = Catalog::default();
    catalog.set_override(ProviderKind::Openai, o).unwrap();
    let c = catalog.cost_on(ProviderKind::Openai, "m", &usage, day(SNAPSHOT));
    assert_eq!(nanousd(&c), 7 * u128::from(max) * 1_000_000_000);
    // Real prices too.
    let c = cost(
        ProviderKind::Anthropic,
        "claude-fable-5-1",
        &Usage {
            output: max,
            ..Usage::default()
        },
    );
    assert_eq!(nanousd(&c), u128::from(max) * 50_000);
}

#[test]
fn days() {
    assert_eq!(Day::from_unix_days(0), day("1970-01-01"));
    assert_eq!(Day::from_unix_days(20_788), day("2026-12-01"));
    assert_eq!(Day::from_unix_days(11_016), day("2000-02-29"));
    assert!(Day::today() >= day(SNAPSHOT));
    for bad in [
        "2026-13-01",
        "2026-02-29",
        "2026-1-01",
        "20261201",
        "2026-12-00",
        "abcd-ef-gh",
    ] {
        assert!(Day::parse(bad).is_err(), "{bad}");
    }
    assert!(Day::parse("2028-02-29").is_ok());
    assert_eq!(day("2026-03-04").to_string(), "2026-03-04");
}

#[test]
fn cost_serializes_for_records() {
    let c = cost(
        ProviderKind::Openai,
        "gpt-6-luna",
        &Usage {
            input: 10,
            ..Usage::default()
        },
    );
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["status"], "priced");
    assert_eq!(json["nanousd"], 1000);
    assert_eq!(json["breakdown"]["input"], 1000);
    let u = cost(ProviderKind::Openai, "nope", &Usage::default());
    let json = serde_json::to_value(&u).unwrap();
    assert_eq!(json["status"], "unpriced");
    assert_eq!(json["reason"]["why"], "unknown_model");
}
