use super::*;
use crate::store::tests::{record, unpriced, JAN_31};
use crate::store::time::MS_PER_HOUR;
use crate::store::{Granularity, GroupBy};

const DAY: i64 = MS_PER_DAY;

fn all() -> TimeRange {
    TimeRange {
        from_ms: 0,
        to_ms: i64::MAX,
    }
}

fn store_with(records: &[UsageRecord]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    store.insert_batch(records).unwrap();
    store
}

fn series(store: &SqliteStore, group_by: GroupBy, granularity: Granularity) -> Vec<SeriesPoint> {
    store
        .usage_series(&SeriesQuery {
            range: all(),
            granularity,
            group_by,
            filter: SeriesFilter::default(),
        })
        .unwrap()
}

/// `(bucket, key, requests, tokens, cost)`, for compact asserts.
type Row<'a> = (i64, Option<&'a str>, u64, u64, Option<u64>);

fn rows(points: &[SeriesPoint]) -> Vec<Row<'_>> {
    points
        .iter()
        .map(|p| {
            (
                p.bucket_ms,
                p.key.as_deref(),
                p.requests,
                p.tokens,
                p.cost_nanousd,
            )
        })
        .collect()
}

#[test]
fn open_creates_the_directory_in_wal_mode_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/usage.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    {
        let conn = lock(&store.writer);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // 1 = NORMAL.
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(reopened.records(all(), 10).unwrap().len(), 1);
    let applied: i64 = lock(&reopened.writer)
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, MIGRATIONS.len() as i64);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_version VALUES (999, 0)", [])
        .unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::SchemaTooNew {
            found: 999,
            supported,
        }) => {
            assert_eq!(supported, SCHEMA_VERSION)
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn records_round_trip_in_time_order_within_a_half_open_range() {
    let mut full = record(JAN_31 + 2, "anthropic", "claude-sonnet-4");
    full.provider_type = "anthropic".into();
    full.agent = Some("planner".into());
    full.streamed = true;
    full.status = 529;
    full.conversation_id = Some("conv-1".into());
    full.outcome = Outcome::ClientDisconnected;
    full.usage.service_tier = Some("priority".into());
    full.usage.cache_write_1h = 7;
    full.cost_nanousd = Some(u64::MAX);
    let bare = unpriced(record(JAN_31 + 1, "openai", "gpt-4o"));
    let store = store_with(&[
        full.clone(),
        bare.clone(),
        record(JAN_31 + 3, "openai", "x"),
    ]);

    let mut saturated = full.clone();
    saturated.cost_nanousd = Some(i64::MAX as u64);
    let got = store
        .records(
            TimeRange {
                from_ms: JAN_31 + 1,
                to_ms: JAN_31 + 3,
            },
            10,
        )
        .unwrap();
    assert_eq!(got, vec![bare.clone(), saturated]);
    assert_eq!(store.records(all(), 1).unwrap(), vec![bare]);
}

#[test]
fn provider_summary_covers_seven_zero_filled_days_ending_today() {
    let today = UtcDay::containing(JAN_31);
    let mut old = record(JAN_31 - 7 * DAY, "openai", "gpt-4o");
    old.usage.input = 1_000_000;
    let store = store_with(&[
        old,
        record(JAN_31 - 6 * DAY, "openai", "gpt-4o"),
        record(JAN_31 + 5, "openai", "gpt-4o"),
        unpriced(record(JAN_31 + DAY - 1, "openai", "o3")),
        record(JAN_31 - 2 * DAY, "anthropic", "claude"),
        record(JAN_31 + DAY, "anthropic", "tomorrow"),
    ]);
    let summary = store.provider_summary(today, 7).unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|s| s.provider.as_str())
            .collect::<Vec<_>>(),
        ["anthropic", "openai"]
    );
    let openai = &summary[1];
    assert_eq!(openai.totals.requests, 3);
    assert_eq!(openai.totals.unpriced_requests, 1);
    assert_eq!(openai.totals.cost_nanousd, 3_000_000);
    assert_eq!(
        openai.totals.tokens,
        TokenTotals {
            input: 300,
            cache_read: 60,
            cache_write_30m: 15,
            output: 150,
            reasoning: 30,
            ..TokenTotals::default()
        }
    );
    assert_eq!(openai.totals.tokens.total(), 525);
    let days: Vec<(String, u64)> = openai
        .daily
        .iter()
        .map(|d| (d.day.iso(), d.totals.requests))
        .collect();
    assert_eq!(
        days,
        [
            ("2025-01-25".to_string(), 1),
            ("2025-01-26".to_string(), 0),
            ("2025-01-27".to_string(), 0),
            ("2025-01-28".to_string(), 0),
            ("2025-01-29".to_string(), 0),
            ("2025-01-30".to_string(), 0),
            ("2025-01-31".to_string(), 2),
        ]
    );
    assert_eq!(openai.daily[6].totals.unpriced_requests, 1);
    assert_eq!(openai.daily[6].totals.cost_nanousd, 1_500_000);
    let anthropic = &summary[0];
    assert_eq!(anthropic.totals.requests, 1);
    assert_eq!(anthropic.daily[4].totals.requests, 1);
}

#[test]
fn series_group_by_provider_per_day_and_hour() {
    let store = store_with(&[
        record(JAN_31 + 10, "openai", "gpt-4o"),
        unpriced(record(JAN_31 + MS_PER_HOUR + 1, "openai", "gpt-4o")),
        record(JAN_31 + 2 * MS_PER_HOUR, "anthropic", "claude"),
        record(JAN_31 + DAY, "openai", "gpt-4o"),
    ]);
    let by_day = series(&store, GroupBy::Provider, Granularity::Day);
    assert_eq!(
        rows(&by_day),
        [
            (JAN_31, Some("anthropic"), 1, 175, Some(1_500_000)),
            (JAN_31, Some("openai"), 2, 350, Some(1_500_000)),
            (JAN_31 + DAY, Some("openai"), 1, 175, Some(1_500_000)),
        ]
    );
    assert_eq!(by_day[1].unpriced_requests, 1);
    let by_hour = series(&store, GroupBy::Provider, Granularity::Hour);
    assert_eq!(
        rows(&by_hour)
            .iter()
            .map(|r| (r.0, r.1))
            .collect::<Vec<_>>(),
        [
            (JAN_31, Some("openai")),
            (JAN_31 + MS_PER_HOUR, Some("openai")),
            (JAN_31 + 2 * MS_PER_HOUR, Some("anthropic")),
            (JAN_31 + DAY, Some("openai")),
        ]
    );
}

#[test]
fn series_by_model_falls_back_to_the_requested_model() {
    let mut not_answered = record(JAN_31, "openai", "gpt-4o");
    not_answered.model_answered = None;
    let mut no_model = record(JAN_31, "openai", "gpt-4o");
    no_model.model_answered = None;
    no_model.model_requested = None;
    let store = store_with(&[record(JAN_31, "openai", "gpt-4o"), not_answered, no_model]);
    let keys: Vec<_> = series(&store, GroupBy::Model, Granularity::Day)
        .into_iter()
        .map(|p| (p.key, p.requests))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("gpt-4o".to_string()), 1),
            (Some("gpt-4o-2025-01-01".to_string()), 1),
            (None, 1),
        ]
    );
}

#[test]
fn series_filters_match_exactly_and_combine() {
    let mut bob = record(JAN_31, "openai", "gpt-4o");
    bob.user = Some("bob".into());
    bob.agent = Some("triage".into());
    let mut anonymous = record(JAN_31, "anthropic", "claude");
    anonymous.user = None;
    let store = store_with(&[record(JAN_31, "openai", "gpt-4o"), bob, anonymous]);
    let run = |group_by, filter: SeriesFilter| {
        store
            .usage_series(&SeriesQuery {
                range: all(),
                granularity: Granularity::Day,
                group_by,
                filter,
            })
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(GroupBy::User, SeriesFilter::default()),
        [
            (Some("alice".into()), 1),
            (Some("bob".into()), 1),
            (None, 1)
        ]
    );
    assert_eq!(
        run(
            GroupBy::Agent,
            SeriesFilter {
                provider: Some("openai".into()),
                ..SeriesFilter::default()
            }
        ),
        [(Some("triage".into()), 1), (None, 1)]
    );
    assert_eq!(
        run(
            GroupBy::Provider,
            SeriesFilter {
                model: Some("gpt-4o-2025-01-01".into()),
                user: Some("bob".into()),
                agent: Some("triage".into()),
                ..SeriesFilter::default()
            }
        ),
        [(Some("openai".into()), 1)]
    );
    assert_eq!(
        run(
            GroupBy::Provider,
            SeriesFilter {
                model: Some("gpt-4o".into()),
                ..SeriesFilter::default()
            }
        ),
        [],
        "the answered model wins over the requested one"
    );
    assert_eq!(
        run(
            GroupBy::Provider,
            SeriesFilter {
                provider: Some("OpenAI".into()),
                ..SeriesFilter::default()
            }
        ),
        [],
        "exact match"
    );
}

#[test]
fn token_type_series_has_each_billable_bucket() {
    let mut anthropic = record(JAN_31, "anthropic", "claude");
    anthropic.usage = Usage {
        input: 3,
        cache_read: 4,
        cache_write_5m: 5,
        cache_write_1h: 6,
        output: 7,
        reasoning: 2,
        ..Usage::default()
    };
    let store = store_with(&[record(JAN_31, "openai", "gpt-4o"), anthropic]);
    let points = series(&store, GroupBy::TokenType, Granularity::Day);
    let got: Vec<_> = points
        .iter()
        .map(|p| {
            (
                p.key.as_deref().unwrap(),
                p.tokens,
                p.requests,
                p.cost_nanousd,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("input", 103, 2, None),
            ("cache_read", 24, 2, None),
            ("cache_write_5m", 5, 1, None),
            ("cache_write_1h", 6, 1, None),
            ("cache_write_30m", 5, 1, None),
            ("cache_write_12h", 0, 0, None),
            ("output", 57, 2, None),
        ]
    );
    assert!(points.iter().all(|p| p.bucket_ms == JAN_31));
}

#[test]
fn queries_use_the_time_indexes() {
    let store = SqliteStore::open_in_memory().unwrap();
    let conn = lock(&store.writer);
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        details.join("; ")
    };
    let range = "time_ms >= 0 AND time_ms < 10";
    assert!(
        plan(&format!("SELECT COUNT(*) FROM usage_records WHERE {range}"))
            .contains("usage_records_time"),
    );
    for (column, index) in [
        ("provider", "usage_records_provider_time"),
        ("model", "usage_records_model_time"),
        ("user_id", "usage_records_user_time"),
        ("agent_id", "usage_records_agent_time"),
    ] {
        let p = plan(&format!(
            "SELECT COUNT(*) FROM usage_records WHERE {range} AND {column} = 'x'"
        ));
        assert!(p.contains(index), "{column}: {p}");
    }
}

#[test]
fn tool_calls_round_trip() {
    crate::store::tests::tool_calls_round_trip(&SqliteStore::open_in_memory().unwrap());
}
