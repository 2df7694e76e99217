//! Built-in demo MCP server: the upstream of `mcpgate demo` and of the integration tests.
//!
//! It speaks streamable HTTP at `/mcp` with stateful sessions (`Mcp-Session-Id`), answers
//! POSTs as SSE streams, keeps a standalone GET SSE stream per session and ends a session on
//! DELETE. Clients that negotiate 2026-07-28 are served statelessly, as rmcp does.
//!
//! Tools: `echo`, `add`, `slow_count` (progress notifications on the request's SSE stream) and
//! `notify` (a `notifications/resources/list_changed` ~100 ms later, which rmcp sends on the
//! session's standalone GET stream). Resource: `demo://readme`. Prompt: `greet`.

use std::{sync::Arc, time::Duration};

use rmcp::{
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        wrapper::Parameters,
    },
    model::{
        Implementation, ListResourcesResult, PaginatedRequestParams, ProgressNotificationParam,
        PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        RequestMetaObject, Resource, ResourceContents, Role, ServerCapabilities, ServerConfig,
    },
    prompt, prompt_handler, prompt_router,
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, Peer, RoleServer, ServerHandler,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// rmcp answers a session-ending DELETE with `202 Accepted`; the Python SDK accepts only 200 or
/// 204 there (it logs "Session termination failed: 202"), and the TypeScript SDK any 2xx. The
/// demo answers `200 OK` with the same empty body, which every official SDK accepts.
async fn session_end_answers_ok(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::OK;
    }
    response
}

/// URI of the demo's only resource.
const README_URI: &str = "demo://readme";
const README_TEXT: &str = "mcpgate demo server. Tools: echo, add, slow_count, notify. \
Resource: demo://readme. Prompt: greet.";
/// Upper bounds for `slow_count`, so one call cannot tie up the server.
const MAX_COUNT: u64 = 100;
const MAX_INTERVAL_MS: u64 = 5_000;
/// Delay between the `notify` tool's answer and its notification.
const NOTIFY_DELAY: Duration = Duration::from_millis(100);

/// Serves the demo MCP server on `listener` at path `/mcp` (streamable HTTP, stateful sessions,
/// SSE) until the future is dropped.
///
/// rmcp's own `Host` allow-list (loopback only) stays on: the gateway sends the upstream's own
/// address as `Host`, and the demo must stay safe when run alone (`--upstream-only`).
/// Dropping the future cancels every session and ends their open SSE streams.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let config = StreamableHttpServerConfig::default();
    let _cancel_sessions_on_drop = config.cancellation_token.clone().drop_guard();
    let service = StreamableHttpService::new(
        || Ok(DemoServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn(session_end_answers_ok));
    tracing::info!(addr = ?listener.local_addr().ok(), "demo MCP server listening on /mcp");
    axum::serve(listener, router).await
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// Text to send back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddArgs {
    /// First addend.
    a: f64,
    /// Second addend.
    b: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SlowCountArgs {
    /// Number of steps (default 3, at most 100).
    #[serde(default = "default_count")]
    count: u64,
    /// Pause before each step in milliseconds (default 200, at most 5000).
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
}

fn default_count() -> u64 {
    3
}

fn default_interval_ms() -> u64 {
    200
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NotifyArgs {
    /// Free text, logged by the server and echoed in the result.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

/// One instance per session; the routers are built once per session.
#[derive(Clone)]
struct DemoServer {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl DemoServer {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }
}

#[tool_router]
impl DemoServer {
    #[tool(description = "Returns the given text unchanged.")]
    fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    #[tool(description = "Returns the sum a + b as text.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(
        description = "Counts to `count`, one step every `interval_ms`, sending a progress \
                       notification per step when the request has a progress token."
    )]
    async fn slow_count(
        &self,
        Parameters(args): Parameters<SlowCountArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> String {
        let count = args.count.min(MAX_COUNT);
        let interval = Duration::from_millis(args.interval_ms.min(MAX_INTERVAL_MS));
        let token = meta.get_progress_token();
        for step in 1..=count {
            tokio::time::sleep(interval).await;
            let Some(token) = &token else { continue };
            let progress = ProgressNotificationParam::new(token.clone(), step as f64)
                .with_total(count as f64)
                .with_message(format!("step {step} of {count}"));
            if let Err(error) = peer.notify_progress(progress).await {
                tracing::warn!(%error, "demo: could not send progress notification");
            }
        }
        format!("counted to {count}")
    }

    #[tool(
        description = "Returns at once; ~100 ms later the server sends a request-less \
                       notifications/resources/list_changed (on the session's GET stream)."
    )]
    fn notify(
        &self,
        Parameters(NotifyArgs { message }): Parameters<NotifyArgs>,
        peer: Peer<RoleServer>,
    ) -> String {
        tracing::info!(%message, "demo: notification requested");
        tokio::spawn(async move {
            tokio::time::sleep(NOTIFY_DELAY).await;
            if let Err(error) = peer.notify_resource_list_changed().await {
                tracing::warn!(%error, "demo: could not send resources/list_changed");
            }
        });
        format!("will notify: {message}")
    }
}

#[prompt_router]
impl DemoServer {
    #[prompt(name = "greet", description = "Asks the model to greet `name`.")]
    fn greet(&self, Parameters(GreetArgs { name }): Parameters<GreetArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Please greet {name} warmly."),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .enable_resources_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "mcpgate-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(README_TEXT)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let readme = Resource::new(README_URI, "readme")
            .with_description("What the demo server offers.")
            .with_mime_type("text/plain");
        Ok(ListResourcesResult::with_all_items(vec![readme]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != README_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        let contents = ResourceContents::text(README_TEXT, README_URI).with_mime_type("text/plain");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
