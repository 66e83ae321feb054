use super::*;

#[test]
fn dates_and_timestamps_parse() {
    assert_eq!(parse_instant("1970-01-01"), Ok(0));
    assert_eq!(parse_instant("2025-01-31"), Ok(1_738_281_600_000));
    assert_eq!(parse_instant("2025-01-31T00:00:00Z"), Ok(1_738_281_600_000));
    assert_eq!(
        parse_instant("2025-01-31t01:02:03.4z"),
        Ok(1_738_285_323_400)
    );
    assert_eq!(
        parse_instant("2025-01-31T02:00:00+02:00"),
        parse_instant("2025-01-31T00:00:00Z")
    );
    assert_eq!(
        parse_instant("2025-01-30T22:30:00-01:30"),
        parse_instant("2025-01-31T00:00:00Z")
    );
    assert_eq!(
        parse_instant("2024-02-29T12:00:00.123456789Z"),
        Ok(1_709_208_000_123)
    );
}

#[test]
fn malformed_timestamps_are_refused() {
    for bad in [
        "",
        "2025-1-31",
        "2025-02-30",
        "2023-02-29",
        "2025-13-01",
        "2025-01-31T24:00:00Z",
        "2025-01-31T12:00:00",
        "2025-01-31T12:00Z",
        "2025-01-31T12:00:00.Z",
        "2025-01-31T12:00:00+0200",
        "2025-01-31T12:00:00Zjunk",
        "yesterday",
        "2025-01-31T12:00:00+2x:00",
    ] {
        assert!(parse_instant(bad).is_err(), "{bad}");
    }
}

#[test]
fn formatting_round_trips() {
    for ms in [
        0,
        1_738_285_323_400,
        1_709_208_000_000,
        951_782_400_000,
        -86_400_000,
    ] {
        assert_eq!(parse_instant(&format_rfc3339(ms)), Ok(ms), "{ms}");
    }
    assert_eq!(
        format_rfc3339(1_738_285_323_400),
        "2025-01-31T01:02:03.400Z"
    );
    assert_eq!(UtcDay::containing(1_738_285_323_400).iso(), "2025-01-31");
    assert_eq!(UtcDay::containing(-1).iso(), "1969-12-31");
}
