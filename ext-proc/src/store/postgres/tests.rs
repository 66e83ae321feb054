//! Against a real server ([`super::test_server`]): migrations, the advisory lock, the
//! same answers as SQLite for the same records, atomic batches, reconnection.

use super::test_server::{self, TestServer};
use super::*;
use crate::metrics::Metrics;
use crate::store::sqlite::SqliteStore;
use crate::store::tests::{latency_behaves, record, request_logs_behave, unpriced, JAN_31};
use crate::store::time::MS_PER_HOUR;
use crate::store::{Granularity, GroupBy, RecordSink, SinkConfig};
use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::time::Instant;

const DAY: i64 = MS_PER_DAY;

fn all() -> TimeRange {
    TimeRange {
        from_ms: 0,
        to_ms: i64::MAX,
    }
}

fn client(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap()
}

fn count(store: &dyn UsageStore) -> usize {
    store.records(all(), usize::MAX).unwrap().len()
}

fn applied(url: &str) -> i64 {
    client(url)
        .query_one("SELECT COUNT(*) FROM aigw_schema_migrations", &[])
        .unwrap()
        .get(0)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

#[test]
fn open_migrates_once_and_reopening_changes_nothing() {
    let url = test_server::database();
    let store = PostgresStore::open(&url).unwrap();
    assert_eq!(store.backend(), "postgres");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(applied(&url), MIGRATIONS.len() as i64);
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();
    drop(store);

    let reopened = PostgresStore::open(&url).unwrap();
    assert_eq!(count(&reopened), 1);
    assert_eq!(applied(&url), MIGRATIONS.len() as i64);
    // `migrate` on any client is idempotent too, and leaves it outside a transaction.
    let mut c = client(&url);
    migrate(&mut c).unwrap();
    migrate(&mut c).unwrap();
    assert_eq!(applied(&url), MIGRATIONS.len() as i64);
    c.batch_execute("BEGIN; COMMIT").unwrap();

    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        tables.contains(&"aigw_usage_records".to_string()),
        "{tables:?}"
    );
    assert!(tables.iter().all(|t| t.starts_with("aigw_")), "{tables:?}");
    let versions: Vec<i32> = c
        .query(
            "SELECT version FROM aigw_schema_migrations WHERE applied_at <= now() ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, expected);
}

#[test]
fn migration_versions_increase() {
    assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(MIGRATIONS[0].0, 1);
}

#[test]
fn concurrent_opens_of_a_fresh_database_all_succeed() {
    for _ in 0..3 {
        let url = test_server::database();
        const N: usize = 4;
        let barrier = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PostgresStore::open(&url).map(drop)
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
        assert_eq!(applied(&url), MIGRATIONS.len() as i64);
    }
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let url = test_server::database();
    drop(PostgresStore::open(&url).unwrap());
    client(&url)
        .execute(
            "INSERT INTO aigw_schema_migrations (version) VALUES (999)",
            &[],
        )
        .unwrap();
    let expect_too_new = |result: Result<(), StoreError>| match result {
        Err(StoreError::SchemaTooNew {
            found: 999,
            supported,
        }) => assert_eq!(supported, i64::from(SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    };
    expect_too_new(PostgresStore::open(&url).map(drop));
    expect_too_new(migrate(&mut client(&url)));
    let error = PostgresStore::open(&url).err().unwrap().to_string();
    assert!(error.contains("999"), "{error}");
}

/// Records that exercise every column, grouping and ordering rule.
fn varied_records() -> Vec<UsageRecord> {
    let mut records = Vec::new();
    for (i, (provider, model)) in [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4"),
        ("Bedrock", "nova"),
        ("azure", "Gpt-4o"),
        ("openai", "o3"),
    ]
    .iter()
    .enumerate()
    {
        let i = i as i64;
        records.push(record(JAN_31 - i * DAY + i * 7, provider, model));
        records.push(record(JAN_31 + i * MS_PER_HOUR, provider, model));
        records.push(unpriced(record(
            JAN_31 - 3 * DAY + i * MS_PER_HOUR,
            provider,
            model,
        )));
    }
    let mut bob = record(JAN_31 + 1, "openai", "gpt-4o");
    bob.user = Some("bob".into());
    bob.agent = Some("triage".into());
    bob.usage.cache_write_5m = 9;
    bob.usage.cache_write_12h = 11;
    let mut upper = record(JAN_31 + 2, "openai", "gpt-4o");
    upper.user = Some("Zed".into());
    upper.agent = Some("Planner".into());
    let mut anonymous = record(JAN_31 + 3, "anthropic", "claude");
    anonymous.user = None;
    anonymous.agent = Some("planner".into());
    anonymous.usage.cache_write_1h = 4;
    anonymous.usage.input = 0;
    let mut not_answered = record(JAN_31 + 4, "openai", "gpt-4o");
    not_answered.model_answered = None;
    let mut no_model = record(JAN_31 + 5, "openai", "gpt-4o");
    no_model.model_answered = None;
    no_model.model_requested = None;
    let mut tomorrow = record(JAN_31 + DAY + 10, "google", "gemini");
    tomorrow.provider_type = "google".into();
    tomorrow.outcome = Outcome::UpstreamError;
    tomorrow.status = 0;
    tomorrow.ttfb_ms = None;
    tomorrow.usage_reported = false;
    tomorrow.usage = Usage::default();
    records.extend([bob, upper, anonymous, not_answered, no_model, tomorrow]);
    // Same instant, inserted in this order: `records` keeps it.
    for n in 0..3 {
        let mut tie = record(JAN_31 + 6, "openai", "gpt-4o");
        tie.request_id = format!("tie-{n}");
        records.push(tie);
    }
    records
}

/// Every query of the trait, over both stores, must answer the same.
fn assert_same_as_sqlite(pg: &PostgresStore, records: &[UsageRecord]) {
    let sqlite = SqliteStore::open_in_memory().unwrap();
    sqlite.insert_batch(records).unwrap();
    pg.insert_batch(records).unwrap();

    let today = UtcDay::containing(JAN_31);
    for (day, days) in [
        (today, 7),
        (today, 1),
        (today, 0),
        (today.plus(1), 30),
        (today.plus(100), 7),
    ] {
        assert_eq!(
            pg.provider_summary(day, days).unwrap(),
            sqlite.provider_summary(day, days).unwrap(),
            "provider_summary({}, {days})",
            day.iso()
        );
    }

    let filters = [
        SeriesFilter::default(),
        SeriesFilter {
            provider: Some("openai".into()),
            ..SeriesFilter::default()
        },
        SeriesFilter {
            model: Some("gpt-4o-2025-01-01".into()),
            ..SeriesFilter::default()
        },
        SeriesFilter {
            model: Some("gpt-4o".into()),
            ..SeriesFilter::default()
        },
        SeriesFilter {
            user: Some("alice".into()),
            agent: Some("triage".into()),
            ..SeriesFilter::default()
        },
        SeriesFilter {
            provider: Some("openai".into()),
            model: Some("gpt-4o-2025-01-01".into()),
            user: Some("bob".into()),
            agent: Some("triage".into()),
        },
        SeriesFilter {
            provider: Some("OpenAI".into()),
            ..SeriesFilter::default()
        },
    ];
    let ranges = [
        all(),
        TimeRange {
            from_ms: JAN_31 - 2 * DAY,
            to_ms: JAN_31 + 3,
        },
        TimeRange {
            from_ms: JAN_31 + 5,
            to_ms: JAN_31 + 5,
        },
    ];
    for group_by in [
        GroupBy::Provider,
        GroupBy::Model,
        GroupBy::TokenType,
        GroupBy::User,
        GroupBy::Agent,
    ] {
        for granularity in [Granularity::Hour, Granularity::Day] {
            for filter in &filters {
                for range in ranges {
                    let query = SeriesQuery {
                        range,
                        granularity,
                        group_by,
                        filter: filter.clone(),
                    };
                    assert_eq!(
                        pg.usage_series(&query).unwrap(),
                        sqlite.usage_series(&query).unwrap(),
                        "{query:?}"
                    );
                }
            }
        }
    }

    for range in ranges {
        for limit in [0, 1, 2, 7, usize::MAX] {
            assert_eq!(
                pg.records(range, limit).unwrap(),
                sqlite.records(range, limit).unwrap(),
                "records({range:?}, {limit})"
            );
        }
    }
}

#[test]
fn every_query_answers_as_sqlite_does() {
    let pg = PostgresStore::open(&test_server::database()).unwrap();
    let records = varied_records();
    assert_same_as_sqlite(&pg, &records);
    // Non-trivial answers, so the comparison means something.
    assert_eq!(count(&pg), records.len());
    let by_user = pg
        .usage_series(&SeriesQuery {
            range: all(),
            granularity: Granularity::Day,
            group_by: GroupBy::User,
            filter: SeriesFilter::default(),
        })
        .unwrap();
    let jan_31: Vec<Option<&str>> = by_user
        .iter()
        .filter(|p| p.bucket_ms == JAN_31)
        .map(|p| p.key.as_deref())
        .collect();
    // Bytewise, NULL last: as SQLite.
    assert_eq!(jan_31, [Some("Zed"), Some("alice"), Some("bob"), None]);
}

#[test]
fn the_database_collation_does_not_change_the_order() {
    let server = test_server::shared();
    let url = server.create_database_with(
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    );
    let mut c = client(&url);
    let natural: Vec<String> = c
        .query(
            "SELECT x FROM (VALUES ('B'), ('a')) AS v (x) ORDER BY x",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(natural, ["a", "B"], "the database sorts linguistically");
    let pg = PostgresStore::open(&url).unwrap();
    assert_same_as_sqlite(&pg, &varied_records());
}

#[test]
fn records_round_trip_with_saturation() {
    let mut full = record(JAN_31 + 2, "anthropic", "claude-sonnet-4");
    full.provider_type = "anthropic".into();
    full.agent = Some("planner".into());
    full.streamed = true;
    full.status = 529;
    full.conversation_id = Some("conv-1".into());
    full.outcome = Outcome::ClientDisconnected;
    full.usage.service_tier = Some("priority".into());
    full.usage.cache_write_1h = 7;
    full.usage.output = u64::MAX;
    full.cost_nanousd = Some(u64::MAX);
    let bare = unpriced(record(JAN_31 + 1, "openai", "gpt-4o"));
    let store = PostgresStore::open(&test_server::database()).unwrap();
    store
        .insert_batch(&[
            full.clone(),
            bare.clone(),
            record(JAN_31 + 3, "openai", "x"),
        ])
        .unwrap();

    let mut saturated = full.clone();
    saturated.cost_nanousd = Some(i64::MAX as u64);
    saturated.usage.output = i64::MAX as u64;
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

    // Sums past i64::MAX saturate instead of failing.
    let mut also_max = full.clone();
    also_max.time_ms += 1;
    store.insert_batch(&[also_max]).unwrap();
    let summary = store
        .provider_summary(UtcDay::containing(JAN_31), 1)
        .unwrap();
    let anthropic = &summary[0];
    assert_eq!(anthropic.totals.cost_nanousd, i64::MAX as u64);
    assert_eq!(anthropic.totals.tokens.output, i64::MAX as u64);
}

#[test]
fn a_nul_in_a_string_is_replaced_not_fatal() {
    let store = PostgresStore::open(&test_server::database()).unwrap();
    let mut odd = record(JAN_31, "openai", "gpt\0evil");
    odd.user = Some("a\0b".into());
    store.insert_batch(&[odd]).unwrap();
    let got = store.records(all(), 10).unwrap();
    assert_eq!(got[0].model_requested.as_deref(), Some("gpt\u{FFFD}evil"));
    let points = store
        .usage_series(&SeriesQuery {
            range: all(),
            granularity: Granularity::Day,
            group_by: GroupBy::User,
            filter: SeriesFilter {
                user: Some("a\0b".into()),
                ..SeriesFilter::default()
            },
        })
        .unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].key.as_deref(), Some("a\u{FFFD}b"));
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
    let store = PostgresStore::open(&test_server::database()).unwrap();
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o"), anthropic])
        .unwrap();
    let points = store
        .usage_series(&SeriesQuery {
            range: all(),
            granularity: Granularity::Day,
            group_by: GroupBy::TokenType,
            filter: SeriesFilter::default(),
        })
        .unwrap();
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
fn a_failed_batch_keeps_nothing_and_the_store_goes_on() {
    let url = test_server::database();
    let store = PostgresStore::open(&url).unwrap();
    client(&url)
        .batch_execute(
            "ALTER TABLE aigw_usage_records
             ADD CONSTRAINT test_no_poison CHECK (provider <> 'poison')",
        )
        .unwrap();
    let batch = [
        record(JAN_31, "openai", "gpt-4o"),
        record(JAN_31 + 1, "poison", "gpt-4o"),
        record(JAN_31 + 2, "openai", "gpt-4o"),
    ];
    match store.insert_batch(&batch) {
        Err(e @ StoreError::Postgres(_)) => {
            let message = e.to_string();
            assert!(
                message.starts_with("postgres: db error: ERROR: "),
                "{message}"
            );
            assert!(message.contains("test_no_poison"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&store), 0);

    client(&url)
        .batch_execute("ALTER TABLE aigw_usage_records DROP CONSTRAINT test_no_poison")
        .unwrap();
    store.insert_batch(&batch).unwrap();
    assert_eq!(count(&store), 3);
}

/// Kills the server side of every other connection to `url`'s database, and waits until
/// they are gone.
fn terminate_other_connections(url: &str) {
    let mut c = client(url);
    let killed: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    assert!(wait_until(Duration::from_secs(10), || {
        let left: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        left == 0
    }));
}

#[test]
fn calls_after_the_server_killed_the_connections_succeed() {
    let url = test_server::database();
    let store = PostgresStore::open(&url).unwrap();
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 1);

    terminate_other_connections(&url);
    store
        .insert_batch(&[record(JAN_31 + 1, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 2);

    terminate_other_connections(&url);
    assert_eq!(count(&store), 2);
    assert_eq!(
        store
            .provider_summary(UtcDay::containing(JAN_31), 1)
            .unwrap()
            .len(),
        1
    );
    store
        .insert_batch(&[record(JAN_31 + 2, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 3);
}

#[test]
fn the_store_survives_a_server_restart() {
    let server = TestServer::start();
    let url = server.create_database();
    let store = PostgresStore::open(&url).unwrap();
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();

    server.stop();
    let started = Instant::now();
    let error = store
        .insert_batch(&[record(JAN_31 + 1, "openai", "gpt-4o")])
        .unwrap_err();
    assert!(matches!(error, StoreError::Postgres(_)), "{error:?}");
    assert!(store.records(all(), 10).is_err());
    assert!(store.records(all(), 10).is_err(), "still down");
    assert!(started.elapsed() < Duration::from_secs(10));

    server.resume();
    store
        .insert_batch(&[record(JAN_31 + 1, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 2);

    // A restart between two calls is not even seen by the caller.
    server.stop();
    server.resume();
    store
        .insert_batch(&[record(JAN_31 + 2, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 3);
    drop(store);
    server.stop();
}

#[test]
fn the_sink_keeps_records_while_the_server_is_down() {
    let server = TestServer::start();
    let store = Arc::new(PostgresStore::open(&server.create_database()).unwrap());
    let metrics = Arc::new(Metrics::default());
    let config = SinkConfig {
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(100),
        ..SinkConfig::default()
    };
    let sink = RecordSink::start(store.clone(), metrics.clone(), config).unwrap();
    server.stop();
    for i in 0..50 {
        sink.submit(record(JAN_31 + i, "openai", "gpt-4o"));
    }
    assert!(wait_until(Duration::from_secs(10), || metrics
        .store_write_errors()
        >= 2));
    assert_eq!(sink.stats().committed, 0);
    server.resume();
    assert!(wait_until(Duration::from_secs(10), || sink
        .stats()
        .committed
        == 50));
    let report = sink.shutdown(Duration::from_secs(5));
    assert_eq!((report.stats.committed, report.stats.lost), (50, 0));
    assert_eq!(count(store.as_ref()), 50);
    drop(store);
    server.stop();
}

#[test]
fn errors_never_show_the_password() {
    const SECRET: &str = "hunter2-s3cret";
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("postgres://aigw:{SECRET}@127.0.0.1:{port}/x"),
        format!("postgres://aigw:{SECRET}@127.0.0.1:notaport/x"),
        format!("postgres://aigw:{SECRET}@[::1/x"),
        format!("host=127.0.0.1 password={SECRET} port='{port}"),
        format!("host=127.0.0.1 password='{SECRET}"),
        format!("host=127.0.0.1 password={SECRET} bogus_option=1"),
    ] {
        let error = PostgresStore::open(&url).err().expect(&url);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(SECRET), "{url}: {shown}");
        assert!(!shown.contains("hunter2"), "{url}: {shown}");
    }
}

#[test]
fn an_unreachable_server_fails_within_the_connect_timeout() {
    let started = Instant::now();
    // TEST-NET-1: packets go nowhere (or the network is unreachable: fails at once).
    assert!(PostgresStore::open("postgres://aigw@192.0.2.1:5432/x").is_err());
    assert!(
        started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn filtered_queries_can_use_their_indexes() {
    let url = test_server::database();
    drop(PostgresStore::open(&url).unwrap());
    let mut c = client(&url);
    c.batch_execute("SET enable_seqscan = off").unwrap();
    let mut plan = |sql: &str| -> String {
        c.query(&format!("EXPLAIN {sql}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let range = "time_ms >= 0 AND time_ms < 10";
    let p = plan(&format!(
        "SELECT COUNT(*) FROM aigw_usage_records WHERE {range}"
    ));
    assert!(p.contains("aigw_usage_records_"), "{p}");
    for (column, index) in [
        ("provider", "aigw_usage_records_provider_time"),
        ("model", "aigw_usage_records_model_time"),
        ("user_id", "aigw_usage_records_user_time"),
        ("agent_id", "aigw_usage_records_agent_time"),
    ] {
        let p = plan(&format!(
            "SELECT COUNT(*) FROM aigw_usage_records WHERE {range} AND {column} = 'x'"
        ));
        assert!(p.contains(index), "{column}: {p}");
    }
}

#[test]
fn a_record_is_committed_within_100ms() {
    let store = PostgresStore::open(&test_server::database()).unwrap();
    crate::store::tests::commits_within_100ms(Arc::new(store));
}

#[test]
fn shutdown_drains_every_record_in_flight() {
    let store = PostgresStore::open(&test_server::database()).unwrap();
    crate::store::tests::shutdown_drains(Arc::new(store));
}

/// The sync driver inside tokio: straight from async code, from `spawn_blocking`, and the
/// store dropped on an async thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_async_code() {
    let url = test_server::database();
    let store = Arc::new(PostgresStore::open(&url).unwrap());
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(store.as_ref()), 1);
    let blocking = store.clone();
    let n = tokio::task::spawn_blocking(move || count(blocking.as_ref()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(store);
}

#[tokio::test(flavor = "current_thread")]
async fn works_from_a_current_thread_runtime() {
    let store = PostgresStore::open(&test_server::database()).unwrap();
    store
        .insert_batch(&[record(JAN_31, "openai", "gpt-4o")])
        .unwrap();
    assert_eq!(count(&store), 1);
}

#[test]
fn tool_calls_round_trip() {
    let store = PostgresStore::open(&test_server::database()).unwrap();
    crate::store::tests::tool_calls_round_trip(&store);
}

#[test]
fn request_logs_answer_as_in_sqlite() {
    let pg = PostgresStore::open(&test_server::database()).unwrap();
    request_logs_behave(&pg);
}

#[test]
fn latency_answers_as_in_sqlite() {
    let pg = PostgresStore::open(&test_server::database()).unwrap();
    latency_behaves(&pg);
}
