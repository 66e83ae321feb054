//! One upstream MCP server: a session the gateway keeps (opened at start, reopened with
//! backoff when it breaks), the server's approved tools (listed again on its
//! `notifications/tools/list_changed`), and tool calls with the server's timeout. A server
//! that is down only makes its own calls fail; its last listed tools stay known.

pub mod sse;

use crate::secrets::SecretStore;
use aigw_core::config::{McpServer, McpTransport};
use arc_swap::{ArcSwap, ArcSwapOption};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    JsonObject, ProtocolVersion, Tool,
};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The longest a connect (TCP, TLS, the MCP handshake and the first listing) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a live session is checked for a closed transport.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// What the gateway knows of a server's tools.
#[derive(Debug, Default)]
pub struct Listing {
    /// The approved tools, as the server lists them.
    pub tools: Vec<Tool>,
    pub connected: bool,
    /// Why the server is not connected (or could not be listed), when it is not.
    pub error: Option<String>,
}

pub struct Upstream {
    pub config: McpServer,
    listing: ArcSwap<Listing>,
    peer: ArcSwapOption<Peer<RoleClient>>,
    /// The server said its list changed.
    relist: Notify,
    /// A call found the session broken.
    reconnect: Notify,
    on_change: Arc<dyn Fn() + Send + Sync>,
}

type Session = RunningService<RoleClient, Handler>;

impl Upstream {
    /// Starts the server's supervisor; `on_change` runs whenever its listing changes.
    pub fn start(
        config: McpServer,
        secrets: Arc<SecretStore>,
        http: reqwest::Client,
        on_change: Arc<dyn Fn() + Send + Sync>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let up = Arc::new(Self {
            config,
            listing: ArcSwap::from_pointee(Listing {
                error: Some("connecting".into()),
                ..Default::default()
            }),
            peer: ArcSwapOption::empty(),
            relist: Notify::new(),
            reconnect: Notify::new(),
            on_change,
        });
        tokio::spawn(Arc::clone(&up).supervise(secrets, http, stop));
        up
    }

    pub fn listing(&self) -> Arc<Listing> {
        self.listing.load_full()
    }

    /// Calls `tool` with `arguments`; `Err` when the server could not be asked or did not
    /// answer in time (a tool's own error is an `Ok` result with `is_error`).
    pub async fn call(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, String> {
        let Some(peer) = self.peer.load_full() else {
            let why = self.listing().error.clone().unwrap_or_default();
            return Err(format!(
                "MCP server '{}' is not connected: {why}",
                self.config.name
            ));
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => Err(format!(
                "MCP server '{}' did not answer within {} ms",
                self.config.name, self.config.timeout_ms
            )),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                if matches!(
                    e,
                    ServiceError::TransportSend(_) | ServiceError::TransportClosed
                ) {
                    self.reconnect.notify_one();
                }
                Err(format!(
                    "MCP server '{}': {}",
                    self.config.name,
                    describe(&e)
                ))
            }
        }
    }

    async fn supervise(
        self: Arc<Self>,
        secrets: Arc<SecretStore>,
        http: reqwest::Client,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                c = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&secrets, &http)) => {
                    c.unwrap_or_else(|_| Err(format!("no answer within {CONNECT_TIMEOUT:?}")))
                }
            };
            match connected {
                Ok(session) => {
                    backoff = BACKOFF_MIN;
                    self.serve(session, &stop).await;
                    if stop.is_cancelled() {
                        return;
                    }
                }
                Err(why) => {
                    tracing::warn!(server = %self.config.name, error = %why, "MCP server unavailable");
                    self.publish_error(why);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Lists the tools, then keeps the session until it breaks, lists again when told.
    async fn serve(&self, session: Session, stop: &CancellationToken) {
        let peer = session.peer().clone();
        if let Err(why) = self.list(&peer).await {
            self.publish_error(why);
            let _ = session.cancel().await;
            return;
        }
        tracing::info!(server = %self.config.name, tools = self.listing().tools.len(), "MCP server connected");
        self.peer.store(Some(Arc::new(peer.clone())));
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        let why = loop {
            tokio::select! {
                _ = stop.cancelled() => break "stopping".to_string(),
                _ = self.relist.notified() => {
                    if let Err(why) = self.list(&peer).await {
                        break why;
                    }
                }
                _ = self.reconnect.notified() => break "the session broke".to_string(),
                _ = health.tick() => {
                    if peer.is_transport_closed() {
                        break "the server closed the session".to_string();
                    }
                }
            }
        };
        self.peer.store(None);
        let _ = session.cancel().await;
        if !stop.is_cancelled() {
            tracing::warn!(server = %self.config.name, reason = %why, "MCP server disconnected; reconnecting");
            self.publish_error(why);
        }
    }

    /// Lists every page of tools and keeps the approved ones.
    async fn list(&self, peer: &Peer<RoleClient>) -> Result<(), String> {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let tools = tokio::time::timeout(timeout, peer.list_all_tools())
            .await
            .map_err(|_| format!("tools/list took longer than {} ms", self.config.timeout_ms))?
            .map_err(|e| format!("tools/list failed: {}", describe(&e)))?;
        let approved = tools
            .into_iter()
            .filter(|t| {
                self.config
                    .allowed_tools
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|n| n == t.name.as_ref()))
            })
            .collect();
        self.listing.store(Arc::new(Listing {
            tools: approved,
            connected: true,
            error: None,
        }));
        (self.on_change)();
        Ok(())
    }

    /// Not connected: the last listed tools stay known (their calls fail until it is back).
    fn publish_error(&self, why: String) {
        let old = self.listing();
        self.listing.store(Arc::new(Listing {
            tools: old.tools.clone(),
            connected: false,
            error: Some(why),
        }));
        // Retries of a server that stays down change nothing a client sees.
        if old.connected {
            (self.on_change)();
        }
    }

    async fn connect(
        self: &Arc<Self>,
        secrets: &SecretStore,
        http: &reqwest::Client,
    ) -> Result<Session, String> {
        let handler = Handler {
            upstream: Arc::downgrade(self),
        };
        // The credential as the secret store holds it now (a rotation applies on reconnect),
        // as the header the server expects.
        let credential = match &self.config.credential {
            None => None,
            Some(c) => {
                let snap = secrets.snapshot();
                let secret = snap
                    .get(&c.secret)
                    .ok_or_else(|| format!("secret {} is not in the secret store", c.secret))?;
                let name = reqwest::header::HeaderName::from_bytes(c.header.as_bytes())
                    .map_err(|e| e.to_string())?;
                let value = reqwest::header::HeaderValue::from_str(&format!(
                    "{}{}",
                    c.prefix,
                    secret.expose()
                ))
                .map_err(|_| format!("secret {} is not a valid header value", c.secret))?;
                Some((name, value))
            }
        };
        let session = match self.config.transport {
            McpTransport::StreamableHttp => {
                let config = StreamableHttpClientTransportConfig::with_uri(self.config.url.clone())
                    .custom_headers(credential.into_iter().collect());
                let transport = StreamableHttpClientTransport::from_config(config);
                handler.serve(transport).await.map_err(|e| e.to_string())?
            }
            McpTransport::Sse => {
                let headers = credential.into_iter().collect();
                let transport = sse::SseTransport::connect(
                    http.clone(),
                    &self.config.url,
                    headers,
                    CONNECT_TIMEOUT,
                )
                .await
                .map_err(|e| e.to_string())?;
                handler.serve(transport).await.map_err(|e| e.to_string())?
            }
        };
        // A listing the server cannot answer is an error, never a stale copy.
        session
            .peer()
            .set_response_cache_config(
                rmcp::ClientCacheConfig::default().with_serve_stale_on_error(false),
            )
            .await;
        Ok(session)
    }
}

/// A session's notifications: a changed tool list is listed again.
struct Handler {
    upstream: Weak<Upstream>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        if let Some(up) = self.upstream.upgrade() {
            tracing::info!(server = %up.config.name, "MCP server's tool list changed");
            up.relist.notify_one();
        }
    }

    fn get_info(&self) -> ClientConfig {
        // The newest version with the `initialize` handshake: every current server speaks
        // it (rmcp's default, 2026-07-28, has no handshake and fewer servers do).
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("aigw", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

fn describe(e: &ServiceError) -> String {
    match e {
        ServiceError::McpError(m) => format!("error {}: {}", m.code.0, m.message),
        other => other.to_string(),
    }
}
