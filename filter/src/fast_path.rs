//! The fast path: calls the filter completes without the sidecar's round trip.
//!
//! The sidecar decides what qualifies and says so in a [`Snapshot`] the filter polls
//! (see [`aigw_core::feed`]): gateway API keys (as SHA-256 digests) with the providers each
//! may use on the fast path (access allowed, no budget to reserve against), and those
//! providers' upstream credential headers. A call whose key and provider are both listed is
//! rewritten and metered here; any other call (OIDC tokens, unknown keys, budgets, Bedrock,
//! model lists, a snapshot gone stale, a backlog of unsent records) takes the sidecar path,
//! which answers every error itself. So the fast path changes no answer, only its cost.
//! A poll the sidecar does not answer drops the table at once, so a dead or hung sidecar
//! fails calls closed within one poll interval, as on the sidecar path.
//!
//! [`FastPath`] is the per-VM state shared by the root context (polling, flushing) and the
//! HTTP contexts (admission, records); a VM is single-threaded, so it sits in a `RefCell`.

use aigw_core::feed::{
    FastProvider, Snapshot, MAX_PENDING_RECORD_BYTES, POLL_INTERVAL_MS, STALE_AFTER_MS,
};
use aigw_metering::accounting::Principal;
use aigw_metering::record::UsageRecord;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::rc::Rc;

/// One snapshot, indexed for lookups.
#[derive(Debug, Default)]
pub struct FastTable {
    version: String,
    keys: HashMap<[u8; 32], FastKey>,
    providers: HashMap<String, FastProvider>,
}

#[derive(Debug)]
struct FastKey {
    principal: Principal,
    providers: Vec<String>,
}

/// A call admitted to the fast path.
#[derive(Debug)]
pub struct Admitted<'a> {
    pub principal: &'a Principal,
    pub provider: &'a FastProvider,
}

impl FastTable {
    /// Indexes a snapshot; a key digest that is not 64 hex digits is refused.
    pub fn new(s: Snapshot) -> Result<Self, String> {
        let mut keys = HashMap::with_capacity(s.keys.len());
        for k in s.keys {
            let digest = aigw_core::hex::decode32(&k.sha256)
                .ok_or_else(|| format!("key '{}': sha256 is not 64 hex digits", k.subject))?;
            keys.insert(
                digest,
                FastKey {
                    principal: Principal {
                        subject: k.subject,
                        user: k.user,
                        agent: k.agent,
                    },
                    providers: k.providers,
                },
            );
        }
        let providers = s
            .providers
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        Ok(Self {
            version: s.version,
            keys,
            providers,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The principal and provider, if `credential` may use `provider` on the fast path.
    /// The lookup is by digest, so timing says nothing useful about the key.
    pub fn admit(&self, provider: &str, credential: &str) -> Option<Admitted<'_>> {
        if credential.is_empty() {
            return None;
        }
        let p = self.providers.get(provider)?;
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let key = self.keys.get(&digest)?;
        key.providers
            .iter()
            .any(|n| n == provider)
            .then_some(Admitted {
                principal: &key.principal,
                provider: p,
            })
    }
}

/// The per-VM fast-path state.
#[derive(Debug, Default)]
pub struct FastPath {
    table: Option<Rc<FastTable>>,
    /// When the sidecar last confirmed the table (a new one or "unchanged"), Unix ms.
    confirmed_ms: u64,
    last_poll_ms: u64,
    /// The poll on its way: its token and when it was sent.
    poll: Option<(u32, u64)>,
    /// Records (JSON lines) not yet sent, and the batch on its way.
    outbox: Vec<u8>,
    sending: Vec<u8>,
    flush: Option<(u32, u64)>,
}

/// Largest batch per POST: whole lines, under the sidecar's body limit.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// A call whose answer has not come this long after it was sent (its timeout is 1 s or
/// 5 s) is taken as lost, so one missing callback cannot stop the polls or the records.
pub const CALL_LOST_AFTER_MS: u64 = 10_000;

/// Which call an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Poll,
    Flush,
}

impl FastPath {
    /// The table, if it is fresh and there is room for the call's record.
    pub fn table(&self, now_ms: u64) -> Option<Rc<FastTable>> {
        let fresh = now_ms.saturating_sub(self.confirmed_ms) <= STALE_AFTER_MS;
        let room = self.outbox.len() + self.sending.len() < MAX_PENDING_RECORD_BYTES;
        self.table.as_ref().filter(|_| fresh && room).cloned()
    }

    /// Whether to poll now: none on its way, and the interval has passed.
    pub fn poll_due(&mut self, now_ms: u64) -> bool {
        if self
            .poll
            .is_some_and(|(_, sent)| now_ms.saturating_sub(sent) > CALL_LOST_AFTER_MS)
        {
            self.poll = None;
            self.lost();
        }
        self.poll.is_none() && now_ms.saturating_sub(self.last_poll_ms) >= POLL_INTERVAL_MS
    }

    /// A poll was sent (`Some(token)`) or could not be (`None`: the table is dropped).
    pub fn polled(&mut self, now_ms: u64, token: Option<u32>) {
        self.last_poll_ms = now_ms;
        self.poll = token.map(|t| (t, now_ms));
        if token.is_none() {
            self.lost();
        }
    }

    /// Which call of ours `token` answers, if any; it is no longer on its way.
    pub fn answered(&mut self, token: u32) -> Option<Call> {
        if self.poll.is_some_and(|(t, _)| t == token) {
            self.poll = None;
            Some(Call::Poll)
        } else if self.flush.is_some_and(|(t, _)| t == token) {
            Some(Call::Flush)
        } else {
            None
        }
    }

    /// The version to send with the poll, so an unchanged snapshot costs an empty answer.
    pub fn version(&self) -> Option<&str> {
        self.table.as_ref().map(|t| t.version())
    }

    /// The sidecar answered the poll: a new table, or `None` for "unchanged".
    pub fn confirmed(&mut self, now_ms: u64, table: Option<FastTable>) {
        if let Some(t) = table {
            self.table = Some(Rc::new(t));
        }
        self.confirmed_ms = now_ms;
    }

    /// The sidecar did not answer the poll: drop the table until it does.
    pub fn lost(&mut self) {
        self.table = None;
    }

    pub fn push_record(&mut self, r: &UsageRecord) {
        if serde_json::to_writer(&mut self.outbox, r).is_ok() {
            self.outbox.push(b'\n');
        }
    }

    /// The next batch to send (whole lines, at most [`MAX_BATCH_BYTES`] unless one line is
    /// longer), if none is on its way; a batch unanswered for too long is sent again.
    pub fn next_batch(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        if self
            .flush
            .is_some_and(|(_, sent)| now_ms.saturating_sub(sent) > CALL_LOST_AFTER_MS)
        {
            self.flushed(false);
        }
        if self.flush.is_some() || self.outbox.is_empty() {
            return None;
        }
        let cut = if self.outbox.len() <= MAX_BATCH_BYTES {
            self.outbox.len()
        } else {
            match self.outbox[..MAX_BATCH_BYTES]
                .iter()
                .rposition(|&b| b == b'\n')
            {
                Some(i) => i + 1,
                None => self
                    .outbox
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(self.outbox.len(), |i| i + 1),
            }
        };
        let rest = self.outbox.split_off(cut);
        self.sending = std::mem::replace(&mut self.outbox, rest);
        // A copy: the VM's state is not borrowed while Envoy has the call.
        Some(self.sending.clone())
    }

    /// The batch went out with `token` (`None`: it could not, it waits for the next tick).
    pub fn flush_sent(&mut self, now_ms: u64, token: Option<u32>) {
        match token {
            Some(t) => self.flush = Some((t, now_ms)),
            None => self.flushed(false),
        }
    }

    /// The batch arrived (`true`) or must be sent again (`false`, ahead of newer records).
    pub fn flushed(&mut self, delivered: bool) {
        self.flush = None;
        let mut batch = std::mem::take(&mut self.sending);
        if !delivered {
            batch.extend_from_slice(&self.outbox);
            self.outbox = batch;
        }
    }

    pub fn pending_bytes(&self) -> usize {
        self.outbox.len() + self.sending.len()
    }
}

#[cfg(test)]
mod tests;
