//! The MCP gateway: one MCP endpoint for the approved upstream MCP servers, served on the
//! sidecar's port (Envoy routes `/mcp` and `/mcp/<route>` there) over the Streamable HTTP
//! transport by the official Rust SDK, `rmcp`.
//!
//! A request, top to bottom:
//! 1. [`authenticate`] (axum middleware): the gateway token, as on the LLM routes (an OIDC
//!    access token or a gateway API key), and the route; failures are the gateway's JSON
//!    errors, before any MCP handling.
//! 2. [`Endpoint`] (an rmcp `ServerHandler`): `tools/list` shows the route's tools the
//!    caller may use, in the route's mode:
//!    - **aggregate**: every one, named `<server>__<tool>`;
//!    - **deferred**: only `search_tools` (ranked search, [`search`], returning full schemas)
//!      and `call_tool` (any of them by name).
//! 3. `tools/call`: access again, the arguments checked against the tool's input schema
//!    ([`catalog`]), then the upstream's session ([`upstream`]) with its timeout; every call
//!    is recorded ([`record`]) through the usage store's sink.
//!
//! Upstream sessions are the gateway's, one per server, kept open and reopened with
//! backoff; their tool lists are cached and listed again on `list_changed`, and clients of
//! the gateway are told in turn.

pub mod catalog;
pub mod record;
pub mod search;
pub mod upstream;

use crate::auth::{access, Principal};
use crate::gateway::Gateway;
use aigw_core::config::{GatewayConfig, McpMode};
use aigw_core::{ErrorKind, GatewayError};
use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use catalog::Catalog;
use record::{ToolCallRecord, ToolCallStatus};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use upstream::Upstream;

pub const PATH: &str = "/mcp";
/// The deferred mode's tools.
pub const SEARCH_TOOL: &str = "search_tools";
pub const CALL_TOOL: &str = "call_tool";
/// The route name of `/mcp` itself, in records.
pub const DEFAULT_ROUTE: &str = "default";

/// The MCP gateway's state: the upstream sessions, the merged catalog, and the clients to
/// tell when it changes.
pub struct McpGateway {
    gw: Arc<Gateway>,
    upstreams: Vec<Arc<Upstream>>,
    catalog: ArcSwap<Catalog>,
    /// Sessions (handshake-era clients) and subscriptions (2026-07-28 clients) told of a
    /// changed tool list; touched when one opens and when the list changes.
    listeners: Mutex<Listeners>,
    stop: CancellationToken,
    me: Weak<Self>,
}

#[derive(Default)]
struct Listeners {
    peers: Vec<Peer<RoleServer>>,
    sinks: Vec<SubscriptionSink>,
}

impl McpGateway {
    /// Starts a session to every configured server (in the background: a server that is
    /// down does not hold up the start, or the other servers).
    pub fn start(gw: Arc<Gateway>, stop: CancellationToken) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| format!("MCP HTTP client: {e}"))?;
        let servers = gw.live().config.mcp.servers.clone();
        Ok(Arc::new_cyclic(|me: &Weak<Self>| {
            let upstreams = servers
                .into_iter()
                .map(|s| {
                    let me = me.clone();
                    let changed: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                        if let Some(m) = me.upgrade() {
                            m.rebuild();
                        }
                    });
                    Upstream::start(
                        s,
                        Arc::clone(&gw.secrets),
                        http.clone(),
                        changed,
                        stop.child_token(),
                    )
                })
                .collect();
            Self {
                gw,
                upstreams,
                catalog: Default::default(),
                listeners: Default::default(),
                stop,
                me: me.clone(),
            }
        }))
    }

    /// A server's listing changed: a new catalog, and every client is told.
    fn rebuild(&self) {
        self.catalog
            .store(Arc::new(Catalog::build(&self.upstreams)));
        let (peers, sinks) = {
            let l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            (l.peers.clone(), l.sinks.clone())
        };
        if peers.is_empty() && sinks.is_empty() {
            return;
        }
        let me = self.me.clone();
        tokio::spawn(async move {
            for p in &peers {
                let _ = p.notify_tool_list_changed().await;
            }
            for s in &sinks {
                let _ = s.notify_tool_list_changed().await;
            }
            if let Some(m) = me.upgrade() {
                let mut l = m.listeners.lock().unwrap_or_else(|p| p.into_inner());
                l.peers.retain(|p| !p.is_transport_closed());
            }
        });
    }

    /// Every server's state, for the admin API and the dashboard.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.upstreams
            .iter()
            .map(|u| {
                let l = u.listing();
                ServerStatus {
                    name: u.config.name.clone(),
                    url: u.config.url.clone(),
                    connected: l.connected,
                    tools: l.tools.len(),
                    error: l.error.clone(),
                }
            })
            .collect()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// One upstream as `GET /api/v1/mcp/servers` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub url: String,
    pub connected: bool,
    pub tools: usize,
    pub error: Option<String>,
}

/// `GET /api/v1/mcp/servers`, for the admin router.
pub fn admin_router(mcp: Arc<McpGateway>) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/v1/mcp/servers",
            axum::routing::get(|State(m): State<Arc<McpGateway>>| async move {
                axum::Json(json!({ "servers": m.servers() }))
            }),
        )
        .with_state(mcp)
}

/// The authenticated caller of one MCP request and the route it came by.
#[derive(Clone)]
struct Caller {
    principal: Arc<Principal>,
    /// `None`: `/mcp` itself.
    route: Option<String>,
}

/// `/mcp` and `/mcp/{route}`, behind [`authenticate`].
pub fn router(mcp: Arc<McpGateway>) -> axum::Router {
    let endpoint = Endpoint {
        mcp: Arc::clone(&mcp),
    };
    // Envoy is in front and every request carries a gateway token, so the SDK's
    // DNS-rebinding guard (loopback Host names only) does not apply.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(mcp.stop.child_token());
    let service = StreamableHttpService::new(
        move || Ok(endpoint.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .route_service(PATH, service.clone())
        .route_service(&format!("{PATH}/{{route}}"), service)
        .layer(axum::middleware::from_fn_with_state(mcp, authenticate))
}

/// The gateway token and the route, before any MCP handling.
async fn authenticate(
    State(mcp): State<Arc<McpGateway>>,
    mut req: Request,
    next: Next,
) -> Response {
    let live = mcp.gw.live();
    let route = req
        .uri()
        .path()
        .strip_prefix(PATH)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if let Some(r) = &route {
        if live.config.mcp.route(r).is_none() {
            let e = GatewayError::new(ErrorKind::NotFound, format!("no MCP route named '{r}'"));
            return crate::unified::error_response(&e);
        }
    }
    let principal = match crate::unified::authenticate(&mcp.gw, &live, req.headers()).await {
        Ok(p) => p,
        Err(e) => return crate::unified::error_response(&e),
    };
    req.extensions_mut().insert(Caller { principal, route });
    next.run(req).await
}

/// The MCP server the clients see; one per session (a cheap clone).
#[derive(Clone)]
pub struct Endpoint {
    mcp: Arc<McpGateway>,
}

/// What one request may see: the tools (catalog positions) and the route's mode.
struct View {
    caller: Caller,
    mode: McpMode,
    /// The most tools `search_tools` returns.
    search_results: usize,
    catalog: Arc<Catalog>,
    visible: Vec<usize>,
}

impl Endpoint {
    fn view(&self, ext: &rmcp::model::Extensions) -> Result<View, ErrorData> {
        let caller = ext
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("unauthenticated request", None))?;
        let live = self.mcp.gw.live();
        let mcp = &live.config.mcp;
        let route = caller.route.as_deref().and_then(|r| mcp.route(r));
        let mode = route.map_or(mcp.mode, |r| r.mode);
        let catalog = self.mcp.catalog.load_full();
        let visible = catalog
            .tools
            .iter()
            .enumerate()
            .filter(|(_, t)| route.is_none_or(|r| r.includes(&t.server_name)))
            .filter(|(_, t)| may_use(&live.config, &t.server_name, &t.name, &caller.principal))
            .map(|(i, _)| i)
            .collect();
        Ok(View {
            caller,
            mode,
            search_results: mcp.search_results,
            catalog,
            visible,
        })
    }

    /// Calls the tool shown as `name` for the caller, recorded.
    async fn call(
        &self,
        view: &View,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let time_ms = crate::store::time::now_ms();
        let request_bytes = arguments
            .as_ref()
            .map_or(0, |a| serde_json::to_vec(a).map_or(0, |v| v.len() as u64));
        let found = view.catalog.get(name);
        let record = |server: &str,
                      tool: &str,
                      status: ToolCallStatus,
                      response_bytes: u64,
                      error: Option<String>| {
            let p = &view.caller.principal;
            self.mcp.gw.submit_tool_call(ToolCallRecord {
                time_ms,
                route: view
                    .caller
                    .route
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ROUTE.into()),
                server: server.to_string(),
                tool: tool.to_string(),
                principal: p.subject.clone(),
                user: p.user.clone(),
                agent: p.agent.clone(),
                status,
                latency_ms: started.elapsed().as_millis() as u64,
                request_bytes,
                response_bytes,
                error,
            });
        };
        let Some((i, tool)) = found else {
            let (server, tool) = name
                .split_once(aigw_core::config::mcp::TOOL_SEPARATOR)
                .unwrap_or(("", name));
            record(server, tool, ToolCallStatus::UnknownTool, 0, None);
            return Err(ErrorData::invalid_params(
                format!("no tool named '{name}'"),
                None,
            ));
        };
        if !view.visible.contains(&i) {
            record(
                &tool.server_name,
                &tool.name,
                ToolCallStatus::Denied,
                0,
                None,
            );
            return Err(ErrorData::invalid_params(
                format!("the tool '{name}' is not permitted for this caller"),
                None,
            ));
        }
        // Checked as a JSON value, then handed on without a copy.
        let sent = arguments.is_some();
        let args_value = Value::Object(arguments.unwrap_or_default());
        if let Err(why) = tool.check(&args_value) {
            // A tool execution error, so a model can correct its arguments (MCP 2025-11-25).
            let msg = format!("invalid arguments for '{name}': {why}");
            let result = CallToolResult::error(vec![ContentBlock::text(msg.clone())]);
            record(
                &tool.server_name,
                &tool.name,
                ToolCallStatus::InvalidArguments,
                size(&result),
                Some(msg),
            );
            return Ok(result);
        }
        let arguments = match args_value {
            Value::Object(map) if sent => Some(map),
            _ => None,
        };
        let upstream = &self.mcp.upstreams[tool.server];
        match upstream.call(&tool.name, arguments).await {
            Ok(mut result) => {
                // As read from an older-protocol session it has none; rmcp drops it again
                // for clients of those versions (2026-07-28 requires it).
                result.result_type = Some(rmcp::model::ResultType::COMPLETE);
                let status = if result.is_error == Some(true) {
                    ToolCallStatus::ToolError
                } else {
                    ToolCallStatus::Ok
                };
                record(&tool.server_name, &tool.name, status, size(&result), None);
                Ok(result)
            }
            Err(why) => {
                let result = CallToolResult::error(vec![ContentBlock::text(why.clone())]);
                record(
                    &tool.server_name,
                    &tool.name,
                    ToolCallStatus::UpstreamError,
                    size(&result),
                    Some(why),
                );
                Ok(result)
            }
        }
    }

    /// `search_tools`: the best matches with their full definitions.
    fn search(&self, view: &View, arguments: &JsonObject) -> Result<CallToolResult, ErrorData> {
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("`query` (a string) is required", None))?;
        let max = view.search_results;
        let limit = arguments
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(max, |l| (l as usize).clamp(1, max));
        let hits = view
            .catalog
            .index
            .search(query, limit, |i| view.visible.binary_search(&i).is_ok());
        let tools: Vec<Value> = hits
            .iter()
            .map(|(i, _)| {
                let t = &view.catalog.tools[*i].exposed;
                serde_json::to_value(t).unwrap_or(Value::Null)
            })
            .collect();
        let none = tools.is_empty();
        let mut result = CallToolResult::structured(json!({ "tools": Value::Array(tools) }));
        if none {
            result.content = vec![ContentBlock::text(format!(
                "no tool matches '{query}'; try other words"
            ))];
        }
        Ok(result)
    }
}

fn size(result: &CallToolResult) -> u64 {
    serde_json::to_vec(result).map_or(0, |v| v.len() as u64)
}

/// Whether `p` may list and call `tool` of `server`: the tool's own rules, else the
/// server's, else `default_access`.
fn may_use(config: &GatewayConfig, server: &str, tool: &str, p: &Principal) -> bool {
    let Some(s) = config.mcp.server(server) else {
        return false; // removed by a reload
    };
    if s.allowed_tools
        .as_ref()
        .is_some_and(|a| !a.iter().any(|t| t == tool))
    {
        return false;
    }
    let rules = s
        .tool_access
        .get(tool)
        .map(Vec::as_slice)
        .or(s.access.as_deref())
        .or(config.default_access.as_deref());
    access::permits(rules, p)
}

fn meta_tools(search_results: usize) -> Vec<Tool> {
    let schema = |v: Value| Arc::new(v.as_object().cloned().unwrap_or_default());
    vec![
        Tool::new(
            SEARCH_TOOL,
            "Find tools for a task. Describe what you want to do in a few words (for example \
             'create a GitHub issue' or 'convert currency'); returns the best matching tools \
             with their full input schemas. Then run one with call_tool.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What you want to do, in words"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": search_results,
                              "description": "How many tools to return at most"}
                },
                "required": ["query"]
            })),
        ),
        Tool::new(
            CALL_TOOL,
            "Run a tool found with search_tools, by its exact name, with arguments matching \
             its input schema.",
            schema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name as search_tools gave it"},
                    "arguments": {"type": "object", "description": "The tool's arguments"}
                },
                "required": ["name"]
            })),
        ),
    ]
}

impl ServerHandler for Endpoint {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("aigw", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let view = self.view(&context.extensions)?;
        let tools = match view.mode {
            McpMode::Aggregate => view
                .visible
                .iter()
                .map(|&i| view.catalog.tools[i].exposed.clone())
                .collect(),
            McpMode::Deferred => meta_tools(view.search_results),
        };
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let view = self.view(&context.extensions)?;
        let result = match (view.mode, request.name.as_ref()) {
            (McpMode::Deferred, SEARCH_TOOL) => {
                self.search(&view, &request.arguments.unwrap_or_default())?
            }
            (McpMode::Deferred, CALL_TOOL) => {
                let mut args = request.arguments.unwrap_or_default();
                let name = match args.remove("name") {
                    Some(Value::String(n)) => n,
                    _ => {
                        return Err(ErrorData::invalid_params(
                            "`name` (a string) is required",
                            None,
                        ))
                    }
                };
                let arguments = match args.remove("arguments") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(o)) => Some(o),
                    Some(_) => {
                        return Err(ErrorData::invalid_params(
                            "`arguments` must be an object",
                            None,
                        ))
                    }
                };
                self.call(&view, &name, arguments).await?
            }
            (McpMode::Deferred, other) => {
                return Err(ErrorData::invalid_params(
                    format!("no tool named '{other}' here: use {SEARCH_TOOL} and {CALL_TOOL}"),
                    None,
                ))
            }
            (McpMode::Aggregate, name) => {
                let name = name.to_string();
                self.call(&view, &name, request.arguments).await?
            }
        };
        Ok(result.into())
    }

    /// A handshake-era session: told when the tool list changes.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut l = self.mcp.listeners.lock().unwrap_or_else(|p| p.into_inner());
        l.peers.retain(|p| !p.is_transport_closed());
        l.peers.push(context.peer.clone());
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// A 2026-07-28 client's subscription: told when the tool list changes, until it ends.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let sink = context.sink().clone();
        self.mcp
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sinks
            .push(sink.clone());
        context.cancelled().await;
        self.mcp
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sinks
            .retain(|s| s.id() != sink.id());
        Ok(())
    }
}
