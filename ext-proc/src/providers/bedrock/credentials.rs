//! Where a Bedrock provider's AWS credentials come from, and their cache.
//!
//! - Static keys in the secret store: read from the current secret snapshot on every request,
//!   so a rotated key file takes effect at once. No network, nothing to cache.
//! - Anything temporary (STS assume-role on top of the static keys or of the default chain;
//!   the default chain itself: environment, EKS web identity, shared files, ...): fetched at
//!   start, cached, and refreshed in the background ahead of expiry. A request waits only if
//!   the cached credentials have (nearly) expired (refresh failed for that long).

use crate::secrets::{SecretStore, Snapshot};
use aigw_core::config::{AwsCredentials, ProviderConfig};
use arc_swap::ArcSwapOption;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are refreshed this long before they expire (less for short-lived ones).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry are re-read this often (shared files may change).
const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// A credentials fetch (STS, metadata) that takes longer is abandoned and retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Credentials this close to expiry count as expired: AWS checks the token when the request
/// arrives, so one signed in the last instant could land after the expiry and get a 403.
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// A request finding its credentials expired waits this long for the refresh, then fails
/// with a clear 503 instead of running into Envoy's message timeout.
const REQUEST_WAIT: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub enum CredentialSource {
    Secrets(SecretKeys),
    Cached(Arc<CredentialCache>),
}

impl CredentialSource {
    pub async fn get(&self, secrets: &Snapshot) -> Result<Credentials, CredentialsError> {
        match self {
            Self::Secrets(keys) => keys.resolve(secrets),
            Self::Cached(cache) => cache.get().await,
        }
    }
}

/// Secret references of static keys.
#[derive(Debug, Clone)]
pub struct SecretKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl SecretKeys {
    fn resolve(&self, snap: &Snapshot) -> Result<Credentials, CredentialsError> {
        let get = |name: &str| {
            snap.get(name)
                .map(|v| v.expose().to_string())
                .ok_or_else(|| CredentialsError::not_loaded(format!("secret {name} not found")))
        };
        let token = match &self.session_token {
            Some(t) => Some(get(t)?),
            None => None,
        };
        Ok(Credentials::new(
            get(&self.access_key_id)?,
            get(&self.secret_access_key)?,
            token,
            None,
            "aigw-secret-store",
        ))
    }
}

/// Static keys from the live secret store as a credentials provider (the base of assume-role).
#[derive(Debug)]
struct SecretStoreProvider {
    store: Arc<SecretStore>,
    keys: SecretKeys,
}

impl ProvideCredentials for SecretStoreProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.keys.resolve(&self.store.snapshot()))
    }
}

#[derive(Debug)]
struct Cached {
    creds: Credentials,
    refresh_at: SystemTime,
}

#[derive(Debug)]
pub struct CredentialCache {
    provider: SharedCredentialsProvider,
    current: ArcSwapOption<Cached>,
    refreshing: tokio::sync::Mutex<()>,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            current: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn get(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.current.load().as_ref() {
            if !is_expired(&c.creds, SystemTime::now()) {
                return Ok(c.creds.clone());
            }
        }
        tokio::time::timeout(REQUEST_WAIT, self.refresh(false))
            .await
            .unwrap_or_else(|_| Err(CredentialsError::provider_timed_out(REQUEST_WAIT)))
    }

    /// Fetches new credentials unless the current ones are still good: not expired, or (for
    /// the scheduled refresh) not yet at their refresh time. So a request that refreshed
    /// just before the schedule does not get a second fetch right after it.
    async fn refresh(&self, scheduled: bool) -> Result<Credentials, CredentialsError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let now = SystemTime::now();
        if let Some(c) = self.current.load().as_ref() {
            let good = if scheduled {
                now < c.refresh_at
            } else {
                !is_expired(&c.creds, now)
            };
            if good {
                return Ok(c.creds.clone());
            }
        }
        let creds = tokio::time::timeout(FETCH_TIMEOUT, self.provider.provide_credentials())
            .await
            .map_err(|_| CredentialsError::provider_timed_out(FETCH_TIMEOUT))??;
        let refresh_at = refresh_time(&creds, now);
        self.current.store(Some(Arc::new(Cached {
            creds: creds.clone(),
            refresh_at,
        })));
        Ok(creds)
    }

    /// Refreshes ahead of expiry until the cache is dropped (a reload replaced the provider).
    fn spawn_refresh(self: &Arc<Self>, provider: String) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                let wait = cache
                    .current
                    .load()
                    .as_ref()
                    .and_then(|c| c.refresh_at.duration_since(SystemTime::now()).ok())
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_REFRESH_INTERVAL);
                drop(cache);
                tokio::time::sleep(wait).await;
                let Some(cache) = weak.upgrade() else { return };
                let refreshed = cache.refresh(true).await;
                drop(cache);
                match refreshed {
                    Ok(c) => {
                        tracing::debug!(%provider, expiry = ?c.expiry(), "AWS credentials refreshed")
                    }
                    Err(e) => {
                        tracing::warn!(%provider, error = %e, "AWS credentials refresh failed; retrying");
                        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    }
                }
            }
        });
    }
}

fn is_expired(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_some_and(|e| e <= now + EXPIRY_MARGIN)
}

/// When to refresh: `REFRESH_MARGIN` before expiry, or a quarter of the lifetime before it
/// for credentials that live shorter than that; never later than they count as expired
/// (`EXPIRY_MARGIN`), so requests do not wait for the refresh.
fn refresh_time(c: &Credentials, now: SystemTime) -> SystemTime {
    match c.expiry() {
        None => now + MAX_REFRESH_INTERVAL,
        Some(exp) => {
            let life = exp.duration_since(now).unwrap_or(Duration::ZERO);
            let margin = REFRESH_MARGIN.min(life / 4).max(EXPIRY_MARGIN).min(life);
            exp - margin
        }
    }
}

/// Builds the credential source of a Bedrock provider. Temporary credentials are fetched
/// once here, so a provider whose credentials cannot be had is refused at start.
pub async fn build(
    p: &ProviderConfig,
    store: &Arc<SecretStore>,
) -> Result<CredentialSource, String> {
    let region = Region::new(p.region.clone().unwrap_or_default());
    let aws = p.aws.as_ref().ok_or("no aws credentials configured")?;
    let base = match &aws.credentials {
        AwsCredentials::Secrets {
            access_key_id_secret,
            secret_access_key_secret,
            session_token_secret,
        } => {
            let keys = SecretKeys {
                access_key_id: access_key_id_secret.clone(),
                secret_access_key: secret_access_key_secret.clone(),
                session_token: session_token_secret.clone(),
            };
            if aws.assume_role.is_none() {
                return Ok(CredentialSource::Secrets(keys));
            }
            SharedCredentialsProvider::new(SecretStoreProvider {
                store: Arc::clone(store),
                keys,
            })
        }
        AwsCredentials::DefaultChain => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .region(region.clone())
                .build()
                .await,
        ),
    };
    let provider = match &aws.assume_role {
        None => base,
        Some(role) => {
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .region(region.clone())
                .credentials_provider(base.clone())
                .load()
                .await;
            let mut b = AssumeRoleProvider::builder(&role.role_arn)
                .region(region)
                .session_name(&role.session_name)
                .configure(&sdk);
            if let Some(x) = &role.external_id {
                b = b.external_id(x);
            }
            SharedCredentialsProvider::new(b.build_from_provider(base).await)
        }
    };
    let cache = Arc::new(CredentialCache::new(provider));
    cache
        .refresh(true)
        .await
        .map_err(|e| format!("cannot get AWS credentials: {}", describe(&e)))?;
    cache.spawn_refresh(p.name.clone());
    Ok(CredentialSource::Cached(cache))
}

/// The error and its causes on one line (aws errors put the useful part in `source()`).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_of_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Credentials::new("a", "s", None, Some(now + Duration::from_secs(3600)), "t");
        assert_eq!(refresh_time(&hour, now), now + Duration::from_secs(3300));
        let short = Credentials::new("a", "s", None, Some(now + Duration::from_secs(40)), "t");
        assert_eq!(refresh_time(&short, now), now + Duration::from_secs(30));
        let brief = Credentials::new("a", "s", None, Some(now + Duration::from_secs(3)), "t");
        assert_eq!(
            refresh_time(&brief, now),
            now + Duration::from_secs(2),
            "not inside the margin"
        );
        let never = Credentials::new("a", "s", None, None, "t");
        assert_eq!(refresh_time(&never, now), now + MAX_REFRESH_INTERVAL);
        assert!(is_expired(&short, now + Duration::from_secs(40)));
        assert!(
            is_expired(&short, now + Duration::from_millis(39_500)),
            "margin before expiry"
        );
        assert!(!is_expired(&short, now + Duration::from_secs(38)));
        assert!(!is_expired(&never, now));
    }

    #[test]
    fn static_keys_follow_the_snapshot() {
        use crate::secrets::SecretValue;
        let keys = SecretKeys {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
            session_token: Some("ST".into()),
        };
        let mut snap = Snapshot::from([
            ("AK".into(), SecretValue::new("AKIA1")),
            ("SK".into(), SecretValue::new("secret1")),
            ("ST".into(), SecretValue::new("token1")),
        ]);
        let c = keys.resolve(&snap).unwrap();
        assert_eq!(
            (c.access_key_id(), c.session_token()),
            ("AKIA1", Some("token1"))
        );
        snap.remove("ST");
        assert!(keys.resolve(&snap).is_err());
    }
}
