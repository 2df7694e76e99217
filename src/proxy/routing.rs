//! Matching a request to an endpoint: exact path, then method (404 / 405). Several endpoints
//! may share a path with different methods; a 405 lists the methods of all of them.

use crate::error::GatewayError;
use crate::runtime::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// The endpoint whose path and method match `req`. When only the path matches, the endpoint the
/// refusal is counted for (for a CORS preflight, one with CORS that serves the requested method
/// if there is one) and the 405 to answer with.
pub fn route(snapshot: &Snapshot, req: &RequestHeader) -> (Option<usize>, Option<GatewayError>) {
    let group = snapshot.routes(req.uri.path());
    let Some(&(first, first_ep)) = group.first() else {
        return (None, Some(GatewayError::NotFound));
    };
    if let Some(&(index, _)) = group.iter().find(|(_, e)| e.allows(&req.method)) {
        return (Some(index), None);
    }
    let wanted = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| http::Method::from_bytes(v.as_bytes()).ok());
    let with_cors = |want: Option<&http::Method>| {
        group
            .iter()
            .find(|(_, e)| e.policies.cors.is_some() && want.is_none_or(|m| e.allows(m)))
    };
    let (index, _) = wanted
        .as_ref()
        .and_then(|m| with_cors(Some(m)))
        .or_else(|| with_cors(None))
        .copied()
        .unwrap_or((first, first_ep));
    (
        Some(index),
        Some(GatewayError::MethodNotAllowed {
            allow: first_ep.allow.clone(),
        }),
    )
}
