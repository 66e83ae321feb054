//! Request-rate counters in Redis, shared by every replica.
//!
//! One script call per request checks every matching counter and, only if all have room,
//! increments them all (Redis runs a script atomically, so concurrent replicas cannot both
//! take the last slot). Counters are fixed UTC windows; each key carries its window number
//! and expires with it. All keys share the hash tag `{aigw}`, so on a Redis Cluster they are
//! on one node, as a multi-key script requires.
//!
//! Why Redis and not Envoy's global rate limit service: the sidecar already decides every
//! limited call (it knows the authenticated principal, which no header carries), so a script
//! call from it costs one round trip, where the rate limit service would add a second gRPC
//! filter and its own Redis behind it.

use super::{Unavailable, DECISION_TIMEOUT};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const BACKEND: &str = "redis";

/// `KEYS[i]`: counter keys; `ARGV[2i-1]`: limit, `ARGV[2i]`: time to live in ms.
/// Returns `{0, used_1, ...}` when counted, or `{i, used_i}` for the first counter without room.
const TAKE: &str = r"
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + 1 > tonumber(ARGV[2 * i - 1]) then
    return {i, used}
  end
end
local out = {0}
for i = 1, #KEYS do
  local used = redis.call('INCR', KEYS[i])
  if used == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
  end
  out[#out + 1] = used
end
return out
";

/// One request counter a call counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The rule, kind and caller, without the window (added here).
    pub name: String,
    pub window: u64,
    pub limit: u64,
    /// Until the window ends, plus a margin for clock skew between replicas.
    pub ttl_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Counted; the used count of each counter after.
    Counted(Vec<u64>),
    /// `counters[index]` is full (`used` of `limit`); nothing was counted.
    Refused { index: usize, used: u64 },
}

#[derive(Clone)]
pub struct RequestCounters {
    conn: ConnectionManager,
    script: redis::Script,
}

impl RequestCounters {
    /// Connects (and checks the server answers) at start; reconnects by itself later.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DECISION_TIMEOUT))
            .set_response_timeout(Some(DECISION_TIMEOUT))
            .set_max_delay(std::time::Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            conn,
            script: redis::Script::new(TAKE),
        })
    }

    /// Counts the request on every counter, or on none.
    pub async fn take(&self, counters: &[Counter]) -> Result<Taken, Unavailable> {
        if counters.is_empty() {
            return Ok(Taken::Counted(Vec::new()));
        }
        let mut call = self.script.prepare_invoke();
        for c in counters {
            call.key(key(c)).arg(c.limit).arg(c.ttl_ms.max(1));
        }
        let mut conn = self.conn.clone();
        let answer =
            tokio::time::timeout(DECISION_TIMEOUT, call.invoke_async::<Vec<u64>>(&mut conn))
                .await
                .map_err(|_| Unavailable::new(BACKEND, "redis did not answer in time"))?
                .map_err(|e| Unavailable::new(BACKEND, e))?;
        match answer.as_slice() {
            [0, used @ ..] if used.len() == counters.len() => Ok(Taken::Counted(used.to_vec())),
            [i, used] if *i >= 1 && (*i as usize) <= counters.len() => Ok(Taken::Refused {
                index: *i as usize - 1,
                used: *used,
            }),
            _ => Err(Unavailable::new(
                BACKEND,
                "unexpected answer from the limit script",
            )),
        }
    }

    /// Takes a counted request back (the call was refused by a later check). Best effort.
    pub async fn give_back(&self, counters: &[Counter]) {
        let mut pipe = redis::pipe();
        for c in counters {
            pipe.decr(key(c), 1).ignore();
        }
        let mut conn = self.conn.clone();
        let _ = tokio::time::timeout(DECISION_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
    }
}

fn key(c: &Counter) -> String {
    format!("aigw:{{aigw}}:{}:{}", c.name, c.window)
}
