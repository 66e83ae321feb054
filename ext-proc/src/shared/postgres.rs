//! Budget and token-limit holds in PostgreSQL, shared by every replica.
//!
//! - A call's holds are one statement, `aigw_reserve` (migration `0002_shared_counters.sql`):
//!   each counter row is updated only if `used + reserved + amount <= cap`, all counters or
//!   none, so concurrent calls on any number of replicas never pass a cap. No read-then-write.
//! - `aigw_settle` replaces the holds by the actual amounts when the call ends. A settle that
//!   fails (database down) is retried in the background until it lands.
//! - Each replica heartbeats into `aigw_replicas` (database clock). Every heartbeat also
//!   gives back the holds of replicas silent for longer than the hold expiry: a crashed
//!   replica's reservations do not block the others for longer than that.
//! - Connections: a few pipelined `tokio-postgres` clients, taken round-robin, so no call
//!   waits for a pool slot; a broken one is reconnected in the background while the others
//!   serve. Statements are prepared once per connection.

use super::{Unavailable, DECISION_TIMEOUT};
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, NoTls, Statement};

const BACKEND: &str = "postgres";
/// Connections per sidecar; each pipelines many calls.
const CONNECTIONS: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Settles waiting for the database at most; past that they are dropped (and logged).
const MAX_PENDING_SETTLES: usize = 100_000;
/// Token-limit windows and given-back holds older than this are deleted (budget windows are
/// kept as history).
const RETENTION_S: i64 = 2 * 86_400;

/// One counter a call wants to hold on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// `budget:<agent>` or `limit:<rule>:<kind>:<caller>`.
    pub key: String,
    /// Unix seconds of the window's start.
    pub window_start: i64,
    pub amount: u64,
    pub cap: u64,
}

/// A counter's state after a hold, or when it refused one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterState {
    pub used: u64,
    pub reserved: u64,
}

#[derive(Debug)]
pub enum Reserved {
    /// Held; `states[i]` belongs to `wants[i]`.
    Admitted {
        hold: SharedHold,
        states: Vec<CounterState>,
    },
    /// `wants[index]` had no room; nothing is held.
    Refused { index: usize, state: CounterState },
}

/// The holds of one call, to settle when it ends.
#[derive(Debug)]
pub struct SharedHold {
    id: i64,
    keys: Vec<String>,
    windows: Vec<i64>,
    amounts: Vec<u64>,
    /// Position of each held counter in the caller's `wants`.
    order: Vec<usize>,
}

/// The shared counters; cheap to clone.
#[derive(Clone)]
pub struct Counters {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    slots: Vec<Slot>,
    next: AtomicUsize,
    replica: AtomicI64,
    replica_name: String,
    expiry_ms: i64,
    pending_settles: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    conn: ArcSwapOption<Conn>,
    connecting: AtomicBool,
}

struct Conn {
    client: Client,
    reserve: Statement,
    settle: Statement,
}

impl Counters {
    /// Connects (the schema must be migrated: the usage store does it at open) and registers
    /// this replica.
    pub async fn connect(url: &str, replica_name: &str, expiry: Duration) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("aigw-ext-proc");
        let inner = Arc::new(Inner {
            config,
            slots: (0..CONNECTIONS).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            replica: AtomicI64::new(0),
            replica_name: replica_name.to_string(),
            expiry_ms: i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX),
            pending_settles: AtomicUsize::new(0),
        });
        for slot in &inner.slots {
            let conn = inner.open().await.map_err(|e| e.reason)?;
            slot.conn.store(Some(Arc::new(conn)));
        }
        let counters = Self { inner };
        counters.register().await.map_err(|e| e.reason)?;
        Ok(counters)
    }

    /// Holds every want, or none. `Err`: the database did not answer in time.
    pub async fn reserve(&self, wants: &[Want]) -> Result<Reserved, Unavailable> {
        // Sorted by key: every call locks counter rows in the same order (no deadlock).
        let mut order: Vec<usize> = (0..wants.len()).collect();
        order.sort_by(|&a, &b| {
            (&wants[a].key, wants[a].window_start).cmp(&(&wants[b].key, wants[b].window_start))
        });
        let keys: Vec<&str> = order.iter().map(|&i| wants[i].key.as_str()).collect();
        let windows: Vec<i64> = order.iter().map(|&i| wants[i].window_start).collect();
        let amounts: Vec<i64> = order.iter().map(|&i| sql_int(wants[i].amount)).collect();
        let caps: Vec<i64> = order.iter().map(|&i| sql_int(wants[i].cap)).collect();
        let replica = self.inner.replica.load(Ordering::Relaxed);
        let rows = self
            .inner
            .call(|c| {
                let (keys, windows, amounts, caps) = (&keys, &windows, &amounts, &caps);
                async move {
                    c.client
                        .query(&c.reserve, &[&replica, keys, windows, amounts, caps])
                        .await
                }
            })
            .await?;
        let mut states = vec![CounterState::default(); wants.len()];
        let mut hold = 0;
        for row in &rows {
            let (id, idx, used, reserved, admitted): (i64, i32, i64, i64, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            hold = id;
            let state = CounterState {
                used: from_sql(used),
                reserved: from_sql(reserved),
            };
            // 1-based position in the sorted arrays.
            let Some(&want) = usize::try_from(idx - 1).ok().and_then(|p| order.get(p)) else {
                return Err(Unavailable::new(
                    BACKEND,
                    "aigw_reserve answered out of range",
                ));
            };
            if !admitted {
                // Rows before a refusal were rolled back with it.
                return Ok(Reserved::Refused { index: want, state });
            }
            states[want] = state;
        }
        Ok(Reserved::Admitted {
            hold: SharedHold {
                id: hold,
                keys: keys.iter().map(|k| k.to_string()).collect(),
                windows,
                amounts: order.iter().map(|&i| wants[i].amount).collect(),
                order,
            },
            states,
        })
    }

    /// Replaces the hold on `wants[i]` (of `held`) by `actual(i, held)`; 0 gives it back.
    /// When the database is down the settle is retried in the background until it lands.
    pub async fn settle(&self, hold: SharedHold, actual: impl Fn(usize, u64) -> u64) {
        let actuals: Vec<i64> = hold
            .order
            .iter()
            .zip(&hold.amounts)
            .map(|(&i, &held)| sql_int(actual(i, held)))
            .collect();
        if self.try_settle(&hold, &actuals).await.is_ok() {
            return;
        }
        if self.inner.pending_settles.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_SETTLES {
            self.inner.pending_settles.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                hold = hold.id,
                "too many settles waiting for the database; one is dropped"
            );
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                tokio::time::sleep(wait).await;
                if this.try_settle(&hold, &actuals).await.is_ok() {
                    break;
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            this.inner.pending_settles.fetch_sub(1, Ordering::Relaxed);
        });
    }

    async fn try_settle(&self, hold: &SharedHold, actuals: &[i64]) -> Result<(), Unavailable> {
        let actuals = actuals.to_vec();
        self.inner
            .call(|c| {
                let (keys, windows, actuals) = (&hold.keys, &hold.windows, &actuals);
                async move {
                    c.client
                        .execute(&c.settle, &[&hold.id, keys, windows, actuals])
                        .await
                }
            })
            .await
            .map(drop)
    }

    /// Counters whose key starts with `prefix`, in windows starting at or after `since_s`:
    /// `(key, window_start, state)`.
    pub async fn list(
        &self,
        prefix: &str,
        since_s: i64,
    ) -> Result<Vec<(String, i64, CounterState)>, Unavailable> {
        let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
        let rows = self
            .inner
            .call(|c| {
                let pattern = &pattern;
                async move {
                    c.client
                        .query(
                            "SELECT key, window_start, used, reserved FROM aigw_counters \
                             WHERE key LIKE $1 AND window_start >= $2 ORDER BY key, window_start",
                            &[pattern, &since_s],
                        )
                        .await
                }
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let state = CounterState {
                    used: from_sql(r.get(2)),
                    reserved: from_sql(r.get(3)),
                };
                (r.get(0), r.get(1), state)
            })
            .collect())
    }

    /// Heartbeats every third of the hold expiry and gives back dead replicas' holds.
    pub fn spawn_heartbeat(&self) {
        let this = self.clone();
        let every = Duration::from_millis((self.inner.expiry_ms / 3).clamp(100, 10_000) as u64);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut beats = 0u64;
            loop {
                tick.tick().await;
                beats += 1;
                if let Err(e) = this.heartbeat(beats.is_multiple_of(100)).await {
                    tracing::warn!(error = %e, "shared state heartbeat failed");
                }
            }
        });
    }

    async fn heartbeat(&self, tidy: bool) -> Result<(), Unavailable> {
        let id = self.inner.replica.load(Ordering::Relaxed);
        let seen = self
            .inner
            .call(|c| async move {
                c.client
                    .execute(
                        "UPDATE aigw_replicas SET seen_ms = aigw_now_ms() WHERE id = $1",
                        &[&id],
                    )
                    .await
            })
            .await?;
        if seen == 0 {
            // Thought dead (silent past the expiry): our holds were given back; start anew.
            tracing::warn!(
                replica = id,
                "this replica was silent past the hold expiry; registering again"
            );
            self.register().await?;
        }
        let expiry = self.inner.expiry_ms;
        let expired = self
            .inner
            .call(|c| async move {
                c.client
                    .query_one("SELECT aigw_expire_holds($1)", &[&expiry])
                    .await
            })
            .await?;
        let n: i64 = expired.get(0);
        if n > 0 {
            tracing::info!(
                holds = n,
                "gave back the holds of replicas that went silent"
            );
        }
        if tidy {
            self.tidy().await?;
        }
        Ok(())
    }

    /// Deletes token-limit windows and given-back holds older than the retention, in small
    /// batches: each statement is quick, so calls pipelined behind it on the connection do
    /// not wait for a long scan.
    async fn tidy(&self) -> Result<(), Unavailable> {
        const BATCH: u64 = 1000;
        const STATEMENTS: [&str; 2] = [
            "DELETE FROM aigw_counters WHERE (key, window_start) IN (SELECT key, window_start \
             FROM aigw_counters WHERE window_start < $1 AND key LIKE 'limit:%' AND reserved = 0 \
             LIMIT 1000)",
            "DELETE FROM aigw_holds WHERE (hold, key) IN (SELECT hold, key FROM aigw_holds \
             WHERE expired_ms < $1::BIGINT * 1000 LIMIT 1000)",
        ];
        let before = crate::store::time::now_ms() / 1000 - RETENTION_S;
        for sql in STATEMENTS {
            loop {
                let deleted = self
                    .inner
                    .call(|c| async move { c.client.execute(sql, &[&before]).await })
                    .await?;
                if deleted < BATCH {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn register(&self) -> Result<(), Unavailable> {
        let name = &self.inner.replica_name;
        let row = self
            .inner
            .call(|c| async move {
                c.client
                    .query_one(
                        "INSERT INTO aigw_replicas (name) VALUES ($1) RETURNING id",
                        &[name],
                    )
                    .await
            })
            .await?;
        let id: i64 = row.get(0);
        self.inner.replica.store(id, Ordering::Relaxed);
        tracing::info!(replica = id, name = %name, "registered with the shared state");
        Ok(())
    }
}

impl Inner {
    async fn open(&self) -> Result<Conn, Unavailable> {
        let down = |e: tokio_postgres::Error| Unavailable::new(BACKEND, e);
        let (client, connection) = self.config.connect(NoTls).await.map_err(down)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "shared state connection closed");
            }
        });
        let reserve = client
            .prepare(
                "SELECT hold, idx, used, reserved, admitted FROM aigw_reserve($1, $2, $3, $4, $5)",
            )
            .await
            .map_err(down)?;
        let settle = client
            .prepare("SELECT aigw_settle($1, $2, $3, $4)")
            .await
            .map_err(down)?;
        Ok(Conn {
            client,
            reserve,
            settle,
        })
    }

    /// Runs `f` on a live connection within the decision timeout; a deadlock victim is
    /// retried once.
    async fn call<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, Unavailable>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let attempt = async {
            let mut last = None;
            for _ in 0..2 {
                let conn = self.live()?;
                match f(conn).await {
                    Ok(v) => return Ok(v),
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
                    {
                        last = Some(e);
                    }
                    Err(e) => return Err(Unavailable::new(BACKEND, e)),
                }
            }
            Err(Unavailable::new(
                BACKEND,
                last.map_or_else(String::new, |e| e.to_string()),
            ))
        };
        tokio::time::timeout(DECISION_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(Unavailable::new(
                    BACKEND,
                    "the database did not answer in time",
                ))
            })
    }

    /// A connection that is not closed; closed ones are reconnected in the background.
    fn live(self: &Arc<Self>) -> Result<Arc<Conn>, Unavailable> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let at = (start + i) % n;
            if let Some(c) = self.slots[at].conn.load_full() {
                if !c.client.is_closed() {
                    return Ok(c);
                }
            }
            self.reconnect(at);
        }
        Err(Unavailable::new(BACKEND, "no connection to the database"))
    }

    fn reconnect(self: &Arc<Self>, at: usize) {
        if self.slots[at].connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                match this.open().await {
                    Ok(conn) => {
                        this.slots[at].conn.store(Some(Arc::new(conn)));
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "shared state reconnect failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
            this.slots[at].connecting.store(false, Ordering::Release);
        });
    }
}

fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests;
