use super::*;
use aigw_core::feed::FastKey as WireKey;

use aigw_core::hex::encode as hex;

fn snapshot() -> Snapshot {
    Snapshot {
        version: "v7".into(),
        keys: vec![WireKey {
            sha256: hex(&Sha256::digest(b"gw-key-1")),
            subject: "app".into(),
            user: Some("alice".into()),
            agent: Some("bot".into()),
            providers: vec!["openai".into()],
        }],
        providers: vec![
            FastProvider {
                name: "openai".into(),
                set_headers: vec![("authorization".into(), "Bearer sk-up".into())],
                default_headers: vec![],
            },
            FastProvider {
                name: "anthropic".into(),
                set_headers: vec![("x-api-key".into(), "sk-ant".into())],
                default_headers: vec![("anthropic-version".into(), "2023-06-01".into())],
            },
        ],
        config: String::new(),
    }
}

#[test]
fn admits_a_listed_key_on_its_listed_provider_only() {
    let t = FastTable::new(snapshot()).unwrap();
    let a = t.admit("openai", "gw-key-1").expect("admitted");
    assert_eq!(a.principal.subject, "app");
    assert_eq!(a.principal.agent.as_deref(), Some("bot"));
    assert_eq!(a.provider.set_headers[0].1, "Bearer sk-up");
    // Provider served by the fast path, but not for this key (a budget, or access).
    assert!(t.admit("anthropic", "gw-key-1").is_none());
    // Unknown key, empty credential, provider not in the snapshot.
    assert!(t.admit("openai", "gw-key-2").is_none());
    assert!(t.admit("openai", "").is_none());
    assert!(t.admit("bedrock", "gw-key-1").is_none());
}

#[test]
fn a_bad_digest_refuses_the_snapshot() {
    let mut s = snapshot();
    s.keys[0].sha256 = "abc".into();
    assert!(FastTable::new(s).unwrap_err().contains("key 'app'"));
}

#[test]
fn the_table_is_used_while_fresh_and_while_records_have_room() {
    let mut f = FastPath::default();
    assert!(f.table(1_000).is_none(), "no snapshot yet");
    f.confirmed(1_000, Some(FastTable::new(snapshot()).unwrap()));
    assert!(f.table(1_000 + STALE_AFTER_MS).is_some());
    assert!(
        f.table(1_001 + STALE_AFTER_MS).is_none(),
        "stale: sidecar path"
    );
    f.confirmed(10_000, None); // "unchanged" keeps the table and renews it
    assert_eq!(f.version(), Some("v7"));
    assert!(f.table(10_000).is_some());
    f.outbox = vec![b'x'; MAX_PENDING_RECORD_BYTES];
    assert!(f.table(10_000).is_none(), "backlog full: sidecar path");
}

#[test]
fn polls_once_per_interval_and_one_at_a_time() {
    let mut f = FastPath::default();
    assert!(f.poll_due(POLL_INTERVAL_MS));
    f.polled(POLL_INTERVAL_MS, Some(3));
    assert!(!f.poll_due(POLL_INTERVAL_MS * 5), "one on its way");
    assert_eq!(f.answered(4), None, "not ours");
    assert_eq!(f.answered(3), Some(Call::Poll));
    assert!(!f.poll_due(POLL_INTERVAL_MS * 2 - 1));
    assert!(f.poll_due(POLL_INTERVAL_MS * 2));
}

#[test]
fn an_unsent_or_unanswered_poll_drops_the_table() {
    let mut f = FastPath::default();
    f.confirmed(0, Some(FastTable::new(snapshot()).unwrap()));
    f.polled(1_000, None);
    assert!(f.table(1_000).is_none(), "poll not sent");
    f.confirmed(2_000, Some(FastTable::new(snapshot()).unwrap()));
    f.polled(2_000, Some(9));
    assert!(!f.poll_due(2_000 + CALL_LOST_AFTER_MS));
    assert!(
        f.poll_due(2_001 + CALL_LOST_AFTER_MS),
        "its answer is taken as lost"
    );
    assert!(f.table(2_001).is_none());
}

#[test]
fn batches_are_whole_lines_and_failed_ones_are_sent_again_first() {
    let mut f = FastPath::default();
    let line = |c: u8, n: usize| {
        let mut v = vec![c; n];
        v.push(b'\n');
        v
    };
    f.outbox.extend(line(b'a', MAX_BATCH_BYTES / 2));
    f.outbox.extend(line(b'b', MAX_BATCH_BYTES / 2));
    f.outbox.extend(line(b'c', 10));
    let first = f.next_batch(0).unwrap();
    assert_eq!(
        first,
        line(b'a', MAX_BATCH_BYTES / 2),
        "cut at the last whole line"
    );
    f.flush_sent(0, Some(1));
    assert!(f.next_batch(0).is_none(), "one batch at a time");
    f.outbox.extend(line(b'd', 1));
    assert_eq!(f.answered(1), Some(Call::Flush));
    f.flushed(false);
    assert!(f.outbox.starts_with(&first), "the failed batch goes first");
    assert_eq!(
        f.pending_bytes(),
        first.len() + MAX_BATCH_BYTES / 2 + 1 + 11 + 2
    );
    f.next_batch(0).unwrap();
    f.flush_sent(0, Some(2));
    f.flushed(true);
    assert_eq!(f.pending_bytes(), MAX_BATCH_BYTES / 2 + 1 + 11 + 2);
    // Not sent at all, or never answered: sent again.
    let b = f.next_batch(0).unwrap();
    f.flush_sent(0, None);
    assert_eq!(f.next_batch(0).unwrap(), b);
    f.flush_sent(0, Some(3));
    assert!(f.next_batch(CALL_LOST_AFTER_MS).is_none());
    assert_eq!(f.next_batch(CALL_LOST_AFTER_MS + 1).unwrap(), b);
}
