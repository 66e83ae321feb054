use super::*;
use crate::store::tests::{assert_fixture, record, unpriced, JAN_31};

#[test]
fn usd_is_exact_with_two_decimals_at_least() {
    for (nano, usd) in [
        (0, "0.00"),
        (1, "0.000000001"),
        (10_000_000, "0.01"),
        (1_500_000, "0.0015"),
        (1_234_500_000, "1.2345"),
        (12_000_000_000, "12.00"),
        (u64::MAX, "18446744073.709551615"),
    ] {
        assert_eq!(nanousd_to_usd(nano), usd, "{nano}");
    }
}

#[test]
fn fields_are_quoted_and_formulas_defused() {
    assert_eq!(field("plain"), "plain");
    assert_eq!(field("a,b"), "\"a,b\"");
    assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(field("two\nlines"), "\"two\nlines\"");
    assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(field("+1"), "'+1");
    assert_eq!(field("-x"), "'-x");
    assert_eq!(field("@sum"), "'@sum");
}

#[test]
fn series_csv_has_a_header_and_one_row_per_point() {
    let points = [
        SeriesPoint {
            bucket_ms: JAN_31,
            key: Some("openai".into()),
            requests: 2,
            tokens: 350,
            cost_nanousd: Some(3_000_000),
            unpriced_requests: 1,
        },
        SeriesPoint {
            bucket_ms: JAN_31 + 3_600_000,
            key: None,
            requests: 1,
            tokens: 5,
            cost_nanousd: None,
            unpriced_requests: 0,
        },
    ];
    assert_eq!(
        series_csv("provider", &points),
        "bucket,provider,requests,tokens,cost_nanousd,cost_usd,unpriced_requests\r\n\
         2025-01-31T00:00:00Z,openai,2,350,3000000,0.003,1\r\n\
         2025-01-31T01:00:00Z,,1,5,,,0\r\n"
    );
}

#[test]
fn records_csv_matches_its_fixture() {
    let mut odd = unpriced(record(JAN_31 + 1_250, "openai", "gpt-4o"));
    odd.user = Some("=cmd|' /C calc'!A0".into());
    odd.agent = Some("planner, \"v2\"".into());
    odd.ttfb_ms = None;
    odd.streamed = true;
    let csv = records_csv(&[record(JAN_31, "openai", "gpt-4o"), odd]);
    assert_eq!(csv.lines().count(), 3);
    assert_fixture("records.csv", &csv);
}
