//! Test support: drives one full MCP session against the demo server (directly or through the
//! gateway) with the official rmcp client, and reports what it observed.
//!
//! The session is the stateful streamable-HTTP kind (protocol 2025-11-25): `initialize` returns
//! an `Mcp-Session-Id`, the client opens its standalone GET SSE stream, every POST is answered
//! as SSE, and closing the client sends DELETE.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
        GetPromptRequestParams, Implementation, JsonObject, ProgressNotificationParam,
        ProtocolVersion, ReadResourceRequestParams, ResourceContents,
    },
    service::{NotificationContext, RunningService},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ClientHandler, RoleClient, ServiceExt,
};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

/// Error type of [`run_session`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bound on every wait, so a broken relay fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);
/// Steps requested from `slow_count`.
const SLOW_COUNT: usize = 3;

/// What one session observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionReport {
    /// Protocol version the server answered `initialize` with.
    pub protocol_version: String,
    /// `serverInfo.name` from `initialize`.
    pub server_name: String,
    /// Tool names from `tools/list`.
    pub tools: Vec<String>,
    /// Text result of `echo` with `text: "hello"`.
    pub echo: String,
    /// Text result of `add` with `a: 2, b: 3`.
    pub add: String,
    /// Progress notifications received for `slow_count` with `count: 3`.
    pub progress_events: usize,
    /// How long before the `slow_count` result the first progress notification arrived. With
    /// 200 ms between steps it is about 400 ms when the relay streams SSE event by event, and
    /// about zero when it buffers the response.
    pub progress_lead: Duration,
    /// Text result of `slow_count` (`"counted to 3"`).
    pub slow_result: String,
    /// The `notifications/resources/list_changed` that the `notify` tool triggers arrived. The
    /// server sends it after the tool call has been answered, so it can only travel on the
    /// standalone GET SSE stream.
    pub notification_on_get_stream: bool,
    /// Resource URIs from `resources/list`.
    pub resources: Vec<String>,
    /// Text of `demo://readme` from `resources/read`.
    pub readme: String,
    /// Prompt names from `prompts/list`.
    pub prompts: Vec<String>,
    /// Text of the `greet` prompt for `name: "gateway"`.
    pub greeting: String,
}

/// Runs a full MCP session with the rmcp client against `url` (e.g.
/// `http://127.0.0.1:PORT/mcp`) and returns what it observed.
///
/// The session is always closed at the end, which makes the client send DELETE with the session
/// id (rmcp's transport worker does this on shutdown; its outcome is only logged by rmcp).
/// The transport neither accepts a sessionless server nor silently re-initializes on 404, so
/// a relay that loses `Mcp-Session-Id` makes this fail.
pub async fn run_session(url: &str) -> Result<SessionReport, BoxError> {
    let (progress_tx, progress_rx) = watch::channel(Vec::new());
    let list_changed = Arc::new(Notify::new());
    let observer = Observer {
        progress: progress_tx,
        list_changed: list_changed.clone(),
    };
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
    config.allow_stateless = false;
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut client = within("initialize", observer.serve(transport)).await?;

    let report = exercise(&client, progress_rx, &list_changed).await;
    let closed = client.close_with_timeout(WAIT).await;
    let report = report?;
    match closed {
        Ok(Some(_)) => Ok(report),
        Ok(None) => Err(format!("closing the session took longer than {WAIT:?}").into()),
        Err(error) => Err(format!("closing the session: {error}").into()),
    }
}

type Client = RunningService<RoleClient, Observer>;

async fn exercise(
    client: &Client,
    mut progress: watch::Receiver<Vec<Instant>>,
    list_changed: &Notify,
) -> Result<SessionReport, BoxError> {
    let info = client.peer_info().ok_or("no initialize result")?;
    let protocol_version = info.protocol_version.to_string();
    let server_name = info
        .server_info
        .as_ref()
        .map(|server| server.name.clone())
        .unwrap_or_default();

    let tools = within("tools/list", client.list_all_tools()).await?;
    let tools = tools
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect();
    let echo = call(client, "echo", json!({ "text": "hello" })).await?;
    let add = call(client, "add", json!({ "a": 2, "b": 3 })).await?;

    let before = progress.borrow().len();
    let slow_args = json!({ "count": SLOW_COUNT, "interval_ms": 200 });
    let slow_result = call(client, "slow_count", slow_args).await?;
    let result_at = Instant::now();
    // rmcp hands each notification to the handler on its own task, so the last progress
    // notification may be handled just after the result.
    let all_progress = progress.wait_for(|arrivals| arrivals.len() >= before + SLOW_COUNT);
    let _ = tokio::time::timeout(WAIT, all_progress).await;
    let (progress_events, progress_lead) = {
        let arrivals = &progress.borrow()[before..];
        let lead = arrivals
            .first()
            .map(|first| result_at.saturating_duration_since(*first));
        (arrivals.len(), lead.unwrap_or_default())
    };

    // `Notify` keeps a permit, so a notification that lands before this wait still counts.
    call(client, "notify", json!({ "message": "from run_session" })).await?;
    let notified = tokio::time::timeout(WAIT, list_changed.notified()).await;
    let notification_on_get_stream = notified.is_ok();

    let resources = within("resources/list", client.list_all_resources()).await?;
    let resources = resources.into_iter().map(|resource| resource.uri).collect();
    let read = ReadResourceRequestParams::new("demo://readme");
    let readme = within("resources/read", client.read_resource(read)).await?;
    let readme = readme
        .contents
        .into_iter()
        .find_map(|contents| match contents {
            ResourceContents::TextResourceContents { text, .. } => Some(text),
            _ => None,
        })
        .ok_or("demo://readme has no text")?;

    let prompts = within("prompts/list", client.list_all_prompts()).await?;
    let prompts = prompts.into_iter().map(|prompt| prompt.name).collect();
    let greet = GetPromptRequestParams::new("greet").with_arguments(object(json!({
        "name": "gateway"
    }))?);
    let greeting = within("prompts/get", client.get_prompt(greet)).await?;
    let greeting = greeting
        .messages
        .iter()
        .find_map(|message| text_of(&message.content))
        .ok_or("greet prompt has no text")?;

    Ok(SessionReport {
        protocol_version,
        server_name,
        tools,
        echo,
        add,
        progress_events,
        progress_lead,
        slow_result,
        notification_on_get_stream,
        resources,
        readme,
        prompts,
        greeting,
    })
}

/// Calls `tool` and returns the first text content of its (successful) result.
async fn call(client: &Client, tool: &'static str, arguments: Value) -> Result<String, BoxError> {
    let params = CallToolRequestParams::new(tool).with_arguments(object(arguments)?);
    let result: CallToolResult = within(tool, client.call_tool(params)).await?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {:?}", result.content).into());
    }
    result
        .content
        .iter()
        .find_map(text_of)
        .ok_or_else(|| format!("{tool} returned no text").into())
}

fn text_of(content: &ContentBlock) -> Option<String> {
    content.as_text().map(|text| text.text.clone())
}

fn object(value: Value) -> Result<JsonObject, BoxError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("not a JSON object: {other}").into()),
    }
}

/// Awaits `future` for at most [`WAIT`], naming `what` in the error.
async fn within<T, E>(what: &str, future: impl Future<Output = Result<T, E>>) -> Result<T, BoxError>
where
    E: std::fmt::Display,
{
    match tokio::time::timeout(WAIT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}").into()),
        Err(_) => Err(format!("{what}: no answer within {WAIT:?}").into()),
    }
}

/// Client handler that records the notifications the test looks for.
struct Observer {
    progress: watch::Sender<Vec<Instant>>,
    list_changed: Arc<Notify>,
}

impl ClientHandler for Observer {
    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let now = Instant::now();
        self.progress.send_modify(|arrivals| arrivals.push(now));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpgate-test-client", "0.1.0"),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}
