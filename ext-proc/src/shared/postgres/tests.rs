//! Against a real PostgreSQL server (`store::postgres::test_server`).

use super::*;
use crate::store::postgres::{migrate, test_server};

/// A fresh, migrated database and a replica connected to it.
async fn replica(url: &str, expiry_ms: u64) -> Counters {
    Counters::connect(url, "test", Duration::from_millis(expiry_ms))
        .await
        .expect("connect")
}

async fn fresh_database() -> String {
    tokio::task::spawn_blocking(|| {
        let url = test_server::database();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        migrate(&mut c).expect("migrate");
        url
    })
    .await
    .unwrap()
}

fn want(key: &str, amount: u64, cap: u64) -> Want {
    Want {
        key: key.into(),
        window_start: 1_000,
        amount,
        cap,
    }
}

async fn state(c: &Counters, key: &str) -> CounterState {
    c.list(key, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map_or(CounterState::default(), |(_, _, s)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_never_pass_the_cap_across_replicas() {
    let url = fresh_database().await;
    let (a, b) = (replica(&url, 30_000).await, replica(&url, 30_000).await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            c.reserve(&[want("budget:x", 10, 100)]).await.unwrap()
        }));
    }
    let mut holds = Vec::new();
    for t in tasks {
        if let Reserved::Admitted { hold, states } = t.await.unwrap() {
            assert!(states[0].used + states[0].reserved <= 100);
            holds.push(hold);
        }
    }
    assert_eq!(holds.len(), 10, "room for exactly 10 holds of 10 in 100");
    assert_eq!(
        state(&a, "budget:x").await,
        CounterState {
            used: 0,
            reserved: 100
        }
    );
    for h in holds {
        a.settle(h, |_, held| held / 2).await;
    }
    assert_eq!(
        state(&b, "budget:x").await,
        CounterState {
            used: 50,
            reserved: 0
        }
    );
}

#[tokio::test]
async fn all_or_nothing_and_the_refusing_counter_is_named() {
    let url = fresh_database().await;
    let c = replica(&url, 30_000).await;
    let wants = [
        want("limit:z", 5, 100),
        want("budget:y", 50, 100),
        want("limit:a", 20, 10),
    ];
    match c.reserve(&wants).await.unwrap() {
        Reserved::Refused { index, state } => {
            assert_eq!(index, 2, "the counter without room, in the caller's order");
            assert_eq!(state, CounterState::default());
        }
        other => panic!("admitted: {other:?}"),
    }
    assert_eq!(
        state(&c, "budget:y").await,
        CounterState::default(),
        "nothing held"
    );
    assert_eq!(state(&c, "limit:z").await, CounterState::default());
    let Reserved::Admitted { hold, states } = c.reserve(&wants[..2]).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(
        states[0],
        CounterState {
            used: 0,
            reserved: 5
        }
    );
    assert_eq!(
        states[1],
        CounterState {
            used: 0,
            reserved: 50
        }
    );
    c.settle(hold, |i, _| [3, 40][i]).await;
    assert_eq!(
        state(&c, "limit:z").await,
        CounterState {
            used: 3,
            reserved: 0
        }
    );
    assert_eq!(
        state(&c, "budget:y").await,
        CounterState {
            used: 40,
            reserved: 0
        }
    );
}

#[tokio::test]
async fn a_silent_replicas_holds_are_given_back() {
    let url = fresh_database().await;
    let dead = replica(&url, 500).await;
    let alive = replica(&url, 500).await;
    let Reserved::Admitted { hold, .. } = dead.reserve(&[want("budget:d", 30, 100)]).await.unwrap()
    else {
        panic!("refused")
    };
    // `dead` never heartbeats; `alive` does, and expires `dead` once it is silent for 500 ms.
    alive.heartbeat(false).await.unwrap();
    assert_eq!(
        state(&alive, "budget:d").await.reserved,
        30,
        "not yet expired"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    alive.heartbeat(false).await.unwrap();
    assert_eq!(
        state(&alive, "budget:d").await,
        CounterState {
            used: 0,
            reserved: 0
        }
    );
    // The call still ends: what it spent counts, and the given-back hold is not taken twice.
    dead.settle(hold, |_, _| 12).await;
    assert_eq!(
        state(&alive, "budget:d").await,
        CounterState {
            used: 12,
            reserved: 0
        }
    );
    // The silent replica notices on its next heartbeat and registers anew.
    let before = dead.inner.replica.load(Ordering::Relaxed);
    dead.heartbeat(false).await.unwrap();
    assert_ne!(dead.inner.replica.load(Ordering::Relaxed), before);
}

#[tokio::test]
async fn broken_connections_are_replaced() {
    let url = fresh_database().await;
    let c = replica(&url, 30_000).await;
    let killer = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut k = postgres::Client::connect(&killer, postgres::NoTls).unwrap();
        k.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    })
    .await
    .unwrap();
    // Every connection was cut: calls fail until the background reconnect lands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match c.reserve(&[want("budget:r", 1, 10)]).await {
            Ok(Reserved::Admitted { .. }) => break,
            Ok(other) => panic!("{other:?}"),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("not reconnected: {e}"),
        }
    }
}

#[tokio::test]
async fn a_settle_that_is_retried_counts_once() {
    let url = fresh_database().await;
    let (dead, alive) = (replica(&url, 300).await, replica(&url, 300).await);
    let hold = |c: Counters, key: &'static str| async move {
        match c.reserve(&[want(key, 30, 100)]).await.unwrap() {
            Reserved::Admitted { hold, .. } => hold,
            Reserved::Refused { .. } => panic!("refused"),
        }
    };
    // A live hold: the first settle committed but its answer was lost, so it runs again.
    let live = hold(alive.clone(), "budget:live").await;
    alive.try_settle(&live, &[7]).await.unwrap();
    alive.try_settle(&live, &[7]).await.unwrap();
    let settled = CounterState {
        used: 7,
        reserved: 0,
    };
    assert_eq!(state(&alive, "budget:live").await, settled);
    // A hold given back while its replica was silent, then settled twice.
    let late = hold(dead.clone(), "budget:late").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    alive.heartbeat(false).await.unwrap();
    assert_eq!(state(&alive, "budget:late").await.reserved, 0, "expired");
    dead.try_settle(&late, &[7]).await.unwrap();
    dead.try_settle(&late, &[7]).await.unwrap();
    assert_eq!(state(&alive, "budget:late").await, settled);
    // The tidy-up's statements run against this schema (their parameter types included).
    alive.tidy().await.expect("tidy");
}
