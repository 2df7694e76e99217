//! OpenTelemetry request tracing: one SERVER span per request, exported over OTLP/HTTP
//! (protobuf) by the SDK's batch processor on its own thread. The W3C `traceparent` of the
//! request is the parent; the span's context goes to the upstream in `traceparent` (also when
//! the sampler dropped the span: flags `00` carry that decision). Sampling is parent-based, with
//! `sample_ratio` for requests that arrive without a parent.
//!
//! Off unless `tracing:` is configured, and then nothing exists: no provider, no thread, and one
//! `Option` check per request. Tracing settings apply at start (a reload reports a change as
//! needing a restart or upgrade). The provider is built by a background service, after Pingora
//! has daemonized (threads do not survive `fork`), and flushed before the process exits.

use super::metrics::metrics;
use crate::config::{parse_duration, Problem};
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span as SdkSpan,
};
use opentelemetry_sdk::Resource;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The `tracing:` block.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP/HTTP traces URL, used as given, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the spans (default `mcpgate`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Share of requests without a sampled parent that are traced, 0.0 to 1.0 (default 1.0).
    /// A request whose `traceparent` says sampled (or not) follows it.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// Headers sent with every export (an API key, say; `${ENV}` keeps it out of the file).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time allowed for one export (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// How long spans wait to be sent in one batch (default `5s`).
    #[serde(default)]
    pub batch_delay: Option<String>,
}

impl TracingConfig {
    /// Checks the block; every problem with its path.
    pub fn check(&self, at: &str, problems: &mut Vec<Problem>) {
        match url::Url::parse(&self.endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(_) => problems.push(Problem::new(
                format!("{at}.endpoint"),
                "must be an http:// or https:// URL",
            )),
            Err(e) => problems.push(Problem::new(
                format!("{at}.endpoint"),
                format!("invalid URL {:?}: {e}", self.endpoint),
            )),
        }
        if let Some(r) = self.sample_ratio {
            if !(0.0..=1.0).contains(&r) {
                problems.push(Problem::new(
                    format!("{at}.sample_ratio"),
                    format!("must be between 0.0 and 1.0, not {r}"),
                ));
            }
        }
        for (field, v) in [
            ("timeout", &self.timeout),
            ("batch_delay", &self.batch_delay),
        ] {
            if let Some(Err(m)) = v.as_deref().map(parse_duration) {
                problems.push(Problem::new(format!("{at}.{field}"), m));
            }
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(Problem::new(
                    format!("{at}.headers"),
                    format!("{name:?} is not a header name"),
                ));
            }
        }
    }

    fn duration(v: &Option<String>, default: Duration) -> Duration {
        v.as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(default)
    }
}

/// Process-wide tracing, set once the provider is built.
static TRACER: OnceLock<Tracing> = OnceLock::new();

struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The OTLP HTTP client.
    #[error("cannot build the OTLP HTTP client: {0}")]
    Client(String),
    /// The exporter.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

fn build(cfg: &TracingConfig) -> Result<Tracing, TracingError> {
    let timeout = TracingConfig::duration(&cfg.timeout, Duration::from_secs(10));
    let headers = cfg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Export::new(timeout)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(timeout)
        .with_headers(headers)
        .build()?;
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(TracingConfig::duration(
            &cfg.batch_delay,
            Duration::from_secs(5),
        ))
        .build();
    let ratio = cfg.sample_ratio.unwrap_or(1.0);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build(),
        )
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone().unwrap_or("mcpgate".into()))
                .build(),
        )
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer_with_scope(
        &provider,
        InstrumentationScope::builder("mcpgate")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    Ok(Tracing { provider, tracer })
}

/// Builds the provider (when configured) after the process has daemonized.
pub struct TracingService(pub TracingConfig);

#[async_trait]
impl BackgroundService for TracingService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let cfg = self.0.clone();
        // The blocking HTTP client must not be built on an async thread.
        match tokio::task::spawn_blocking(move || build(&cfg)).await {
            Ok(Ok(t)) => {
                tracing::info!(endpoint = %self.0.endpoint, "tracing: exporting spans over OTLP/HTTP");
                let _ = TRACER.set(t);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "tracing is off"),
            Err(e) => tracing::error!(error = %e, "tracing is off"),
        }
    }
}

/// Sends the spans still queued; called right before the process exits.
pub fn flush() {
    if let Some(t) = TRACER.get() {
        if let Err(e) = t.provider.shutdown() {
            tracing::warn!(error = %e, "tracing: spans lost at exit");
        }
    }
}

/// One request's span.
pub struct RequestSpan {
    span: SdkSpan,
    method: http::Method,
}

/// Starts the span of a request when tracing is on.
pub fn start(req: &RequestHeader) -> Option<Box<RequestSpan>> {
    let t = TRACER.get()?;
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(&req.headers));
    let mut span = t
        .tracer
        .span_builder(req.method.as_str().to_string())
        .with_kind(SpanKind::Server)
        .start_with_context(&t.tracer, &parent);
    if span.is_recording() {
        span.set_attributes([
            KeyValue::new("http.request.method", req.method.as_str().to_string()),
            KeyValue::new("url.path", req.uri.path().to_string()),
        ]);
    }
    Some(Box::new(RequestSpan {
        span,
        method: req.method.clone(),
    }))
}

/// What the request turned out to be, recorded when it ends.
pub struct Outcome<'a> {
    /// The endpoint's name and path.
    pub endpoint: Option<(&'a str, &'a str)>,
    /// MCP method and tool, when known.
    pub mcp_method: Option<&'a str>,
    /// The tool called.
    pub tool: Option<&'a str>,
    /// The status sent (0: none).
    pub status: u16,
    /// Why the gateway answered itself or the request failed.
    pub error: Option<&'a str>,
    /// The upstream host.
    pub upstream: Option<&'a str>,
}

impl RequestSpan {
    /// Writes `traceparent` (and `tracestate`) for the upstream, replacing the client's.
    pub fn inject(&self, upstream: &mut RequestHeader) {
        let cx = Context::new().with_remote_span_context(self.span.span_context().clone());
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(upstream));
    }

    /// Records the outcome and ends the span.
    pub fn end(mut self: Box<Self>, o: Outcome<'_>) {
        let RequestSpan { span, method } = &mut *self;
        if span.is_recording() {
            if let Some((name, path)) = o.endpoint {
                span.set_attribute(KeyValue::new("http.route", path.to_string()));
                span.set_attribute(KeyValue::new("mcpgate.endpoint", name.to_string()));
                span.update_name(format!("{} {path}", method.as_str()));
            }
            if let Some(m) = o.mcp_method {
                span.set_attribute(KeyValue::new("mcp.method.name", m.to_string()));
            }
            if let Some(t) = o.tool {
                span.set_attribute(KeyValue::new("gen_ai.tool.name", t.to_string()));
            }
            if let Some(u) = o.upstream {
                span.set_attribute(KeyValue::new("mcpgate.upstream", u.to_string()));
            }
            if o.status != 0 {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(o.status),
                ));
            }
            if let Some(e) = o.error {
                span.set_attribute(KeyValue::new("mcpgate.error", e.to_string()));
            }
            // Server spans: 5xx (or no answer at all) is an error, 4xx is the client's.
            if o.status >= 500 || o.status == 0 {
                span.set_attribute(KeyValue::new(
                    "error.type",
                    if o.status == 0 {
                        "no_response".to_string()
                    } else {
                        o.status.to_string()
                    },
                ));
                span.set_status(Status::error(format!("HTTP {}", o.status)));
            }
        }
        span.end();
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes into Pingora's request header (which keeps its own case map); an empty value (the
/// SDK always writes `tracestate`) removes the header.
struct HeaderInjector<'a>(&'a mut RequestHeader);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            self.0.remove_header(key);
        } else if self.0.insert_header(key.to_string(), value).is_err() {
            tracing::debug!(header = key, "tracing: cannot set the propagation header");
        }
    }
}

/// OTLP transport: reqwest's blocking client, used on the batch processor's own thread.
#[derive(Debug, Clone)]
struct Export(reqwest::blocking::Client);

impl Export {
    fn new(timeout: Duration) -> Result<Self, TracingError> {
        // Built on a plain thread: reqwest's blocking client starts a runtime of its own, which
        // must not happen inside an async one.
        std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| TracingError::Client("the builder thread panicked".into()))?
        .map(Export)
        .map_err(|e| TracingError::Client(e.to_string()))
    }
}

/// The largest export answer read (OTLP answers are tiny).
const MAX_ANSWER: u64 = 64 * 1024;

#[async_trait]
impl HttpClient for Export {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        use std::io::Read as _;
        let result = (|| -> Result<http::Response<Bytes>, HttpError> {
            let request = reqwest::blocking::Request::try_from(request)?;
            let mut response = self.0.execute(request)?;
            let mut builder = http::Response::builder().status(response.status());
            if let Some(h) = builder.headers_mut() {
                *h = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            response.take(MAX_ANSWER).read_to_end(&mut body)?;
            Ok(builder.body(Bytes::from(body))?)
        })();
        if !result.as_ref().is_ok_and(|r| r.status().is_success()) {
            metrics().trace_export_errors.inc();
        }
        result
    }
}
