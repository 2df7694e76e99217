//! Matching a request to an endpoint: exact path, then method (404 / 405).

use crate::error::GatewayError;
use crate::runtime::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// The endpoint whose path matches `req` (also when the method is refused, so the refusal is
/// counted for that endpoint), and the error to answer with, if any.
pub fn route(snapshot: &Snapshot, req: &RequestHeader) -> (Option<usize>, Option<GatewayError>) {
    match snapshot.route(req.uri.path()) {
        None => (None, Some(GatewayError::NotFound)),
        Some((index, endpoint)) if endpoint.allows(&req.method) => (Some(index), None),
        Some((index, endpoint)) => (
            Some(index),
            Some(GatewayError::MethodNotAllowed {
                allow: endpoint.allow.clone(),
            }),
        ),
    }
}
