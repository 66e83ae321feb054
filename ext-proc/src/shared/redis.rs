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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A throwaway `redis-server` on a Unix socket in a temp dir, killed on drop.
    struct Server {
        child: Child,
        dir: tempfile::TempDir,
    }

    impl Server {
        fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let sock = dir.path().join("redis.sock");
            let child = Command::new("redis-server")
                .args(["--port", "0", "--save", "", "--appendonly", "no"])
                .arg("--unixsocket")
                .arg(&sock)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (make deps installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !sock.exists() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Self { child, dir }
        }

        fn url(&self) -> String {
            format!(
                "redis+unix://{}",
                self.dir.path().join("redis.sock").display()
            )
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn counter(name: &str, limit: u64) -> Counter {
        Counter {
            name: name.into(),
            window: 7,
            limit,
            ttl_ms: 60_000,
        }
    }

    #[tokio::test]
    async fn counts_on_every_counter_or_on_none() {
        let server = Server::start();
        let redis = RequestCounters::connect(&server.url()).await.unwrap();
        let (wide, narrow) = (counter("wide", 10), counter("narrow", 2));
        let both = [wide.clone(), narrow.clone()];
        assert_eq!(redis.take(&both).await.unwrap(), Taken::Counted(vec![1, 1]));
        assert_eq!(redis.take(&both).await.unwrap(), Taken::Counted(vec![2, 2]));
        // `narrow` is full: refused, and `wide` not counted either.
        assert_eq!(
            redis.take(&both).await.unwrap(),
            Taken::Refused { index: 1, used: 2 }
        );
        assert_eq!(
            redis.take(std::slice::from_ref(&wide)).await.unwrap(),
            Taken::Counted(vec![3])
        );
        // A count given back makes room again.
        redis.give_back(std::slice::from_ref(&narrow)).await;
        assert_eq!(redis.take(&both).await.unwrap(), Taken::Counted(vec![4, 2]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takes_never_pass_the_limit() {
        let server = Server::start();
        let redis = RequestCounters::connect(&server.url()).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let r = redis.clone();
                tokio::spawn(async move { r.take(&[counter("burst", 10)]).await.unwrap() })
            })
            .collect();
        let mut counted = 0;
        for t in tasks {
            if let Taken::Counted(_) = t.await.unwrap() {
                counted += 1;
            }
        }
        assert_eq!(counted, 10);
    }

    #[tokio::test]
    async fn a_server_that_is_gone_is_unavailable_in_time() {
        let server = Server::start();
        let redis = RequestCounters::connect(&server.url()).await.unwrap();
        drop(server);
        let t0 = Instant::now();
        let e = redis.take(&[counter("x", 1)]).await.unwrap_err();
        assert_eq!(e.backend, "redis");
        assert!(t0.elapsed() < DECISION_TIMEOUT * 3, "{:?}", t0.elapsed());
    }
}
