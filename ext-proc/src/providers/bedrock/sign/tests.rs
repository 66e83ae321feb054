use super::*;
use std::path::PathBuf;
use std::time::Duration;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4")
}

/// `2015-08-30T12:36:00Z` as a SystemTime.
fn parse_time(s: &str) -> SystemTime {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn signature_of(headers: &[(String, String)]) -> (String, String) {
    let auth = &headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1;
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let sig = auth.split("Signature=").nth(1).unwrap();
    (signed.to_string(), sig.to_string())
}

#[test]
fn aws_test_suite() {
    let dir = fixtures().join("aws-suite");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8);
    for case in cases {
        let ctx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("context.json")).unwrap())
                .unwrap();
        let raw = std::fs::read_to_string(case.join("request.txt")).unwrap();
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap();
        let mut parts = first.splitn(3, ' ');
        let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
        let mut host = String::new();
        let mut extra: Vec<(String, String)> = Vec::new();
        for l in lines {
            let (k, v) = l.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "host" => host = v.to_string(),
                "x-amz-date" => {}
                k => extra.push((k.to_string(), v.to_string())),
            }
        }
        let extra_refs: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let c = &ctx["credentials"];
        let creds = Credentials::new(
            c["access_key_id"].as_str().unwrap(),
            c["secret_access_key"].as_str().unwrap(),
            c["token"].as_str().map(String::from),
            None,
            "test",
        );
        let req = Request {
            method,
            authority: &host,
            path_and_query: path,
            headers: &extra_refs,
            body: body.as_bytes(),
        };
        let out = sign(
            &creds,
            ctx["region"].as_str().unwrap(),
            ctx["service"].as_str().unwrap(),
            &req,
            parse_time(ctx["timestamp"].as_str().unwrap()),
            ctx["sign_body"].as_bool().unwrap_or(false),
        )
        .unwrap();
        let want = std::fs::read_to_string(case.join("header-signature.txt")).unwrap();
        assert_eq!(signature_of(&out).1, want.trim(), "{}", case.display());
    }
}

#[test]
fn matches_botocore_for_bedrock_paths() {
    let f: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("botocore-bedrock.json")).unwrap(),
    )
    .unwrap();
    for case in f["cases"].as_array().unwrap() {
        let s = |k: &str| case[k].as_str().unwrap();
        let creds = Credentials::new(
            s("access_key_id"),
            s("secret_access_key"),
            case["session_token"].as_str().map(String::from),
            None,
            "test",
        );
        let req = Request {
            method: s("method"),
            authority: s("host"),
            path_and_query: s("path"),
            headers: &[],
            body: s("body").as_bytes(),
        };
        let out = sign(
            &creds,
            s("region"),
            s("service"),
            &req,
            parse_time(s("timestamp")),
            true,
        )
        .unwrap();
        let (signed, sig) = signature_of(&out);
        assert_eq!(signed, s("signed_headers"), "{}", s("name"));
        assert_eq!(sig, s("signature"), "{}", s("name"));
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"x-amz-date") && names.contains(&"x-amz-content-sha256"));
        assert_eq!(
            names.contains(&"x-amz-security-token"),
            case["session_token"].is_string()
        );
    }
}
