//! How a request ended, in a small fixed vocabulary, and which real error (if any) it met, under
//! the gateway's own stable names (never Pingora's internal type names).
//!
//! The same classification fills the access log's `end` and `error` fields, the `end` label of
//! `mcpgate_request_ends_total`, the span's error attribute, and decides whether Pingora's own
//! "Fail to proxy" line is written (only for real errors).

use super::metrics::REQUEST_ENDS;
use crate::error::GatewayError;
use pingora::{Error, ErrorSource, ErrorType};
use std::borrow::Cow;

/// How a request ended. The string forms are `metrics::REQUEST_ENDS`, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The whole response reached the client (an SSE response to a POST included once the
    /// upstream finished it; see `UpstreamClosed` for streams).
    Complete = 0,
    /// An SSE stream that the upstream ended with a proper end of body.
    UpstreamClosed,
    /// The client went away (closed or reset its connection or stream) before the response was
    /// complete.
    ClientClosed,
    /// The client was too slow sending its request or reading the response.
    ClientTimeout,
    /// The upstream was silent for longer than the endpoint's `idle_timeout`.
    IdleTimeout,
    /// A draining process (upgrade or stop) ended a GET stream so its client reconnects.
    Drained,
    /// The gateway answered itself and refused the request (a policy, routing, limits, bad
    /// input); the upstream never saw it.
    Refused,
    /// The upstream could not be reached, or failed while answering.
    UpstreamError,
    /// Something went wrong inside the gateway.
    GatewayError,
}

impl End {
    /// Every value, in the order of `REQUEST_ENDS`.
    pub const ALL: [End; 9] = [
        End::Complete,
        End::UpstreamClosed,
        End::ClientClosed,
        End::ClientTimeout,
        End::IdleTimeout,
        End::Drained,
        End::Refused,
        End::UpstreamError,
        End::GatewayError,
    ];

    /// The value logged and used as the metric label.
    pub fn as_str(self) -> &'static str {
        REQUEST_ENDS[self as usize]
    }
}

/// What happened to one request, as far as the end of the request is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The final (non-1xx) response status sent to the client, if a response header went out.
    pub status: Option<u16>,
    /// The response was an SSE stream.
    pub sse: bool,
    /// A drain ended this request's stream on purpose.
    pub drained: bool,
    /// The answer the gateway made itself, if any.
    pub gateway: Option<&'a GatewayError>,
    /// The error Pingora ended the request with, if any.
    pub error: Option<&'a Error>,
}

/// How a request ended, and its real error, if it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// A real error, under a stable name (`reason` or `reason: detail`).
    pub error: Option<Cow<'static, str>>,
}

impl Outcome {
    fn new(end: End, error: Option<Cow<'static, str>>) -> Self {
        Outcome { end, error }
    }
}

/// Classifies a finished request.
pub fn classify(f: &Facts<'_>) -> Outcome {
    if f.drained {
        return Outcome::new(End::Drained, None);
    }
    let upstream_read_timeout = f.error.is_some_and(|e| {
        e.esource() == &ErrorSource::Upstream && e.etype() == &ErrorType::ReadTimedout
    });
    if let Some(g) = f.gateway {
        let end = match g {
            GatewayError::UpstreamTimeout if upstream_read_timeout || f.error.is_none() => {
                End::IdleTimeout
            }
            GatewayError::UpstreamTimeout
            | GatewayError::UpstreamUnreachable
            | GatewayError::UpstreamFailed
            | GatewayError::CircuitOpen { .. }
            | GatewayError::UnreadableAnswer { .. } => End::UpstreamError,
            GatewayError::Internal => End::GatewayError,
            _ => End::Refused,
        };
        let error = match (g, f.error.and_then(detail)) {
            (GatewayError::UpstreamUnreachable | GatewayError::UpstreamFailed, Some(d)) => {
                format!("{}: {d}", g.reason())
            }
            _ => g.log_reason(),
        };
        return Outcome::new(end, Some(Cow::Owned(error)));
    }
    let Some(e) = f.error else {
        let end = if f.sse && f.status.is_some() {
            End::UpstreamClosed
        } else {
            End::Complete
        };
        return Outcome::new(end, None);
    };
    match e.esource() {
        // The client's side of the connection ended. Whatever the exact type (a read or write
        // error, a close, an HTTP/2 reset), the client is gone: not the gateway's error.
        ErrorSource::Downstream => match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Outcome::new(End::ClientTimeout, None)
            }
            _ => Outcome::new(End::ClientClosed, None),
        },
        ErrorSource::Upstream if upstream_read_timeout => {
            // A silent stream cut after its header is how `idle_timeout` ends streams; any other
            // response cut short is a failed answer.
            let error =
                (!(f.sse && f.status.is_some())).then_some(Cow::Borrowed("upstream_timeout"));
            Outcome::new(End::IdleTimeout, error)
        }
        ErrorSource::Upstream => {
            let error = match detail(e) {
                Some(d) => Cow::Owned(format!("upstream_failed: {d}")),
                None => Cow::Borrowed("upstream_failed"),
            };
            Outcome::new(End::UpstreamError, Some(error))
        }
        ErrorSource::Internal | ErrorSource::Unset => {
            Outcome::new(End::GatewayError, Some(Cow::Borrowed("internal_error")))
        }
    }
}

/// A stable name for what went wrong on a connection (bounded list), from Pingora's error type
/// and, for I/O errors, the operating system's error.
fn detail(e: &Error) -> Option<&'static str> {
    use ErrorType::*;
    let io = e
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind);
    if let Some(kind) = io {
        match kind {
            std::io::ErrorKind::ConnectionReset => return Some("connection_reset"),
            std::io::ErrorKind::ConnectionRefused => return Some("connection_refused"),
            std::io::ErrorKind::BrokenPipe => return Some("broken_pipe"),
            _ => {}
        }
    }
    Some(match e.etype() {
        ConnectTimedout => "connect_timeout",
        ConnectRefused => "connection_refused",
        ConnectNoRoute => "no_route",
        ConnectError | SocketError | BindError | ConnectProxyFailure => "connect_failed",
        TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | TLSWantX509Lookup => {
            "tls_failed"
        }
        ConnectionClosed => "connection_closed",
        ReadError => "read_failed",
        WriteError => "write_failed",
        ReadTimedout => "read_timeout",
        WriteTimedout => "write_timeout",
        InvalidHTTPHeader | H1Error | H2Error | H2Downgrade | InvalidH2 => "protocol_error",
        Custom(crate::error::NO_HOST) => "no_host_left",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(status: Option<u16>, sse: bool, error: Option<&'a Error>) -> Facts<'a> {
        Facts {
            status,
            sse,
            drained: false,
            gateway: None,
            error,
        }
    }

    fn err(etype: ErrorType, source: ErrorSource) -> Box<Error> {
        let mut e = Error::new(etype);
        match source {
            ErrorSource::Upstream => e.as_up(),
            ErrorSource::Downstream => e.as_down(),
            _ => e.as_in(),
        }
        e
    }

    fn outcome(end: End, error: Option<&str>) -> Outcome {
        Outcome {
            end,
            error: error.map(|s| Cow::Owned(s.to_string())),
        }
    }

    #[test]
    fn names_follow_the_metric_label_values() {
        for (i, end) in End::ALL.iter().enumerate() {
            assert_eq!(*end as usize, i);
            assert_eq!(end.as_str(), REQUEST_ENDS[i]);
        }
        assert_eq!(End::ALL.len(), REQUEST_ENDS.len());
    }

    #[test]
    fn normal_ends_carry_no_error() {
        assert_eq!(
            classify(&facts(Some(200), false, None)),
            outcome(End::Complete, None)
        );
        // An upstream's own 4xx or 5xx is its answer, relayed whole.
        assert_eq!(
            classify(&facts(Some(503), false, None)),
            outcome(End::Complete, None)
        );
        assert_eq!(
            classify(&facts(Some(200), true, None)),
            outcome(End::UpstreamClosed, None)
        );
        for etype in [
            ErrorType::ConnectionClosed,
            ErrorType::ReadError,
            ErrorType::WriteError,
            ErrorType::H2Error,
        ] {
            let e = err(etype, ErrorSource::Downstream);
            for status in [None, Some(200)] {
                assert_eq!(
                    classify(&facts(status, true, Some(&e))),
                    outcome(End::ClientClosed, None)
                );
            }
        }
        let slow = err(ErrorType::ReadTimedout, ErrorSource::Downstream);
        assert_eq!(
            classify(&facts(None, false, Some(&slow))),
            outcome(End::ClientTimeout, None)
        );
        let silent = err(ErrorType::ReadTimedout, ErrorSource::Upstream);
        assert_eq!(
            classify(&facts(Some(200), true, Some(&silent))),
            outcome(End::IdleTimeout, None)
        );
        let cut = err(ErrorType::ConnectionClosed, ErrorSource::Upstream);
        let drained = Facts {
            drained: true,
            ..facts(Some(200), true, Some(&cut))
        };
        assert_eq!(classify(&drained), outcome(End::Drained, None));
    }

    #[test]
    fn failures_carry_stable_names() {
        let silent = err(ErrorType::ReadTimedout, ErrorSource::Upstream);
        // A JSON body cut by the idle timeout is a failed answer.
        assert_eq!(
            classify(&facts(Some(200), false, Some(&silent))),
            outcome(End::IdleTimeout, Some("upstream_timeout"))
        );
        let answered = Facts {
            gateway: Some(&GatewayError::UpstreamTimeout),
            ..facts(Some(504), false, Some(&silent))
        };
        assert_eq!(
            classify(&answered),
            outcome(End::IdleTimeout, Some("upstream_timeout"))
        );
        let refused = err(ErrorType::ConnectRefused, ErrorSource::Upstream);
        let unreachable = Facts {
            gateway: Some(&GatewayError::UpstreamUnreachable),
            ..facts(Some(502), false, Some(&refused))
        };
        assert_eq!(
            classify(&unreachable),
            outcome(
                End::UpstreamError,
                Some("upstream_unreachable: connection_refused")
            )
        );
        let reset = Error::because(
            ErrorType::ReadError,
            "reading the body",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        let mut reset = reset;
        reset.as_up();
        assert_eq!(
            classify(&facts(Some(200), true, Some(&reset))),
            outcome(
                End::UpstreamError,
                Some("upstream_failed: connection_reset")
            )
        );
        let closed = err(ErrorType::ConnectionClosed, ErrorSource::Upstream);
        assert_eq!(
            classify(&facts(Some(200), false, Some(&closed))),
            outcome(
                End::UpstreamError,
                Some("upstream_failed: connection_closed")
            )
        );
        let internal = err(ErrorType::InternalError, ErrorSource::Internal);
        assert_eq!(
            classify(&facts(None, false, Some(&internal))),
            outcome(End::GatewayError, Some("internal_error"))
        );
        let denied = Facts {
            gateway: Some(&GatewayError::NotFound),
            ..facts(Some(404), false, None)
        };
        assert_eq!(classify(&denied), outcome(End::Refused, Some("not_found")));
    }
}
