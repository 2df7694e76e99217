//! Just enough JSON-RPC for the gateway's own answers: find the `id`(s) of a request so an error
//! the gateway makes can be a JSON-RPC error the client can correlate. This runs only on error
//! paths; the hot path never parses bodies.

use serde::Deserialize;
use serde_json::value::RawValue;

/// What a request body was, as far as error answers are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestShape {
    /// A single JSON-RPC message; `id` is the raw JSON of its id (`null` for notifications).
    Single {
        /// Raw JSON of the id, kept exactly (`0`, `"a"`, ...).
        id: String,
    },
    /// A batch (2025-03-26): raw ids of the requests in it (notifications omitted).
    Batch {
        /// Raw JSON ids.
        ids: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

impl Probe<'_> {
    fn is_jsonrpc(&self) -> bool {
        self.jsonrpc.is_some_and(|v| v.get() == "\"2.0\"")
    }

    fn raw_id(&self) -> String {
        self.id
            .map_or_else(|| "null".to_string(), |v| v.get().to_string())
    }
}

/// Classifies a request body; `None` when it is not JSON-RPC.
pub fn request_shape(body: &[u8]) -> Option<RequestShape> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let items: Vec<Probe<'_>> = serde_json::from_slice(body).ok()?;
        if items.is_empty() || !items.iter().all(Probe::is_jsonrpc) {
            return None;
        }
        let ids = items
            .iter()
            .filter(|p| p.id.is_some_and(|v| v.get() != "null"))
            .map(Probe::raw_id)
            .collect();
        Some(RequestShape::Batch { ids })
    } else {
        let p: Probe<'_> = serde_json::from_slice(body).ok()?;
        p.is_jsonrpc()
            .then(|| RequestShape::Single { id: p.raw_id() })
    }
}

/// A JSON-RPC error response body for `shape`.
pub fn error_body(
    shape: &RequestShape,
    code: i64,
    message: &str,
    data: &serde_json::Value,
) -> Vec<u8> {
    let one = |id: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{},"data":{data}}}}}"#,
            serde_json::Value::from(message)
        )
    };
    match shape {
        RequestShape::Single { id } => one(id).into_bytes(),
        RequestShape::Batch { ids } if ids.is_empty() => one("null").into_bytes(),
        RequestShape::Batch { ids } => format!(
            "[{}]",
            ids.iter().map(|i| one(i)).collect::<Vec<_>>().join(",")
        )
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(body: &str) -> Option<String> {
        match request_shape(body.as_bytes()) {
            Some(RequestShape::Single { id }) => Some(id),
            _ => None,
        }
    }

    #[test]
    fn ids_are_kept_exactly() {
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#).as_deref(),
            Some("0")
        );
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":"a-1","method":"x"}"#).as_deref(),
            Some("\"a-1\"")
        );
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).as_deref(),
            Some("null")
        );
        assert_eq!(id_of(r#"{"id":1,"method":"x"}"#), None);
        assert_eq!(id_of("not json"), None);
        assert_eq!(id_of(""), None);
    }

    #[test]
    fn batches_list_request_ids() {
        let b = r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"x","method":"b"}]"#;
        assert_eq!(
            request_shape(b.as_bytes()),
            Some(RequestShape::Batch {
                ids: vec!["1".into(), "\"x\"".into()]
            })
        );
        assert_eq!(request_shape(b"[]"), None);
    }

    #[test]
    fn error_bodies_are_valid_json() {
        let data = serde_json::json!({"status": 502});
        let body = error_body(
            &RequestShape::Single { id: "0".into() },
            -32000,
            "upstream \"down\"",
            &data,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 0);
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["error"]["message"], "upstream \"down\"");
        let batch = error_body(
            &RequestShape::Batch {
                ids: vec!["1".into(), "2".into()],
            },
            -1,
            "m",
            &data,
        );
        let v: serde_json::Value = serde_json::from_slice(&batch).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
    }
}
