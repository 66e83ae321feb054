//! CSV exports (RFC 4180: comma-separated, CRLF line ends, a header row).
//!
//! Text fields that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! tab or CR) get a leading `'`: user, agent and model names come from clients, and an
//! export is opened by an admin. Numbers are written as they are; costs come both as
//! integer nano-USD and as exact decimal USD.

use super::time::format_rfc3339;
use super::SeriesPoint;
use crate::record::UsageRecord;
use std::fmt::Write;

/// `bucket,key,requests,tokens,cost_nanousd,cost_usd,unpriced_requests`, one row per
/// point, as the store returns them (sparse). The cost columns are empty for token types.
pub fn series_csv(key_name: &str, points: &[SeriesPoint]) -> String {
    let mut out = String::with_capacity(64 * (points.len() + 1));
    let _ = write!(
        out,
        "bucket,{},requests,tokens,cost_nanousd,cost_usd,unpriced_requests\r\n",
        field(key_name)
    );
    for p in points {
        let (nano, usd) = match p.cost_nanousd {
            Some(n) => (n.to_string(), nanousd_to_usd(n)),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            out,
            "{},{},{},{},{nano},{usd},{}\r\n",
            format_rfc3339(p.bucket_ms),
            p.key.as_deref().map(field).unwrap_or_default(),
            p.requests,
            p.tokens,
            p.unpriced_requests
        );
    }
    out
}

const RECORD_HEADER: &str = "time,request_id,provider,provider_type,model_requested,\
model_answered,principal,user,agent,api_path,status,streamed,input_tokens,cache_read_tokens,\
cache_write_5m_tokens,cache_write_1h_tokens,cache_write_30m_tokens,cache_write_12h_tokens,\
output_tokens,reasoning_tokens,usage_reported,provider_total_tokens,service_tier,\
cost_nanousd,cost_usd,unpriced_reason,latency_ms,ttfb_ms,conversation_id,outcome\r\n";

/// One row per record, every field of [`UsageRecord`]; absent values are empty.
pub fn records_csv(records: &[UsageRecord]) -> String {
    let mut out = String::with_capacity(RECORD_HEADER.len() + 300 * records.len());
    out.push_str(RECORD_HEADER);
    let text = |v: &Option<String>| v.as_deref().map(field).unwrap_or_default();
    let number = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    for r in records {
        let u = &r.usage;
        let fields = [
            format_rfc3339(r.time_ms),
            field(&r.request_id),
            field(&r.provider),
            field(&r.provider_type),
            text(&r.model_requested),
            text(&r.model_answered),
            field(&r.principal),
            text(&r.user),
            text(&r.agent),
            field(&r.api_path),
            r.status.to_string(),
            r.streamed.to_string(),
            u.input.to_string(),
            u.cache_read.to_string(),
            u.cache_write_5m.to_string(),
            u.cache_write_1h.to_string(),
            u.cache_write_30m.to_string(),
            u.cache_write_12h.to_string(),
            u.output.to_string(),
            u.reasoning.to_string(),
            r.usage_reported.to_string(),
            number(u.provider_total),
            text(&u.service_tier),
            number(r.cost_nanousd),
            r.cost_nanousd.map(nanousd_to_usd).unwrap_or_default(),
            text(&r.unpriced_reason),
            r.latency_ms.to_string(),
            number(r.ttfb_ms),
            text(&r.conversation_id),
            r.outcome.as_str().to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Exact decimal USD from nano-USD: `1234500000` → `1.2345`, `0` → `0.00`. At least two
/// decimals, trailing zeros beyond them trimmed.
pub fn nanousd_to_usd(nanousd: u64) -> String {
    let (whole, frac) = (nanousd / 1_000_000_000, nanousd % 1_000_000_000);
    let digits = format!("{frac:09}");
    let trimmed = digits.trim_end_matches('0');
    let decimals = if trimmed.len() < 2 {
        &digits[..2]
    } else {
        trimmed
    };
    format!("{whole}.{decimals}")
}

/// A text field, quoted when it must be and defused when a spreadsheet would run it.
fn field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests;
