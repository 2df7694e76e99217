//! The JSON-RPC inspector (`mcp::inspect::inspect`): any bytes are refused, or read exactly as a
//! lenient JSON parser (the upstream's) reads them, and re-serialising that reading gives the
//! same inspection. What it accepts holds no two members that a case-insensitive decoder reads
//! as one, and no member of the protocol spelled in another case.

use crate::fold;
use mcpgate::mcp::inspect::{
    attributable, inspect as inspect_body, InspectError, Inspected, Message,
};
use serde_json::Value;

const MESSAGE: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
const PARAMS: &[&str] = &["name", "uri", "arguments", "_meta"];

/// The target.
pub fn inspect(data: &[u8]) {
    let got = inspect_body(data);
    let lenient = serde_json::from_slice::<Value>(data);
    let inspected = match got {
        // The strict reading refuses more than a lenient one (duplicates, depth).
        Err(InspectError::Parse(_)) => return,
        Err(InspectError::Invalid(why)) => {
            assert!(
                lenient.is_ok(),
                "-32600 ({why}) for a body that is not JSON"
            );
            return;
        }
        Ok(i) => i,
    };
    let value = match lenient {
        Ok(v) => v,
        Err(e) => panic!("accepted a body serde_json refuses: {e}"),
    };
    if let Err((a, b)) = fold::distinct_members(&value) {
        panic!("accepted members {a:?} and {b:?}, one member for a case-insensitive decoder");
    }
    match (&inspected, &value) {
        (Inspected::Single(m), Value::Object(_)) => same(m, &value),
        (Inspected::Batch(ms), Value::Array(items)) => {
            assert_eq!(ms.len(), items.len(), "batch length");
            assert!(!ms.is_empty(), "an empty batch accepted");
            ms.iter().zip(items).for_each(|(m, v)| same(m, v));
        }
        (i, v) => panic!("{i:?} read from {v}"),
    }
    let again = serde_json::to_vec(&value).map(|b| inspect_body(&b));
    match again {
        Ok(Ok(again)) => assert_eq!(again, inspected, "re-serialised body reads otherwise"),
        other => panic!("re-serialised body refused: {other:?}"),
    }
    let _ = attributable(&inspected);
    for m in inspected.messages() {
        let _ = (m.mirrored_name(), m.tool());
    }
}

/// `m` is what a lenient reader finds in `v`.
fn same(m: &Message, v: &Value) {
    let Value::Object(obj) = v else {
        panic!("accepted a message that is not an object: {v}");
    };
    if let Some(k) = fold::other_spelling(obj, MESSAGE) {
        panic!("accepted member {k:?}, read as a protocol member by a case-insensitive decoder");
    }
    assert_eq!(obj.get("jsonrpc"), Some(&Value::from("2.0")), "jsonrpc");
    assert_eq!(m.id.as_ref(), obj.get("id"), "id");
    if let Some(id) = &m.id {
        assert!(id.is_string() || id.is_number() || id.is_null(), "id {id}");
    }
    assert_eq!(
        m.method.as_deref(),
        obj.get("method").and_then(Value::as_str),
        "method"
    );
    if m.method.is_none() {
        assert!(
            obj.contains_key("result") || obj.contains_key("error"),
            "neither"
        );
    }
    let params = obj.get("params").and_then(Value::as_object);
    if let Some(p) = params {
        if let Some(k) = fold::other_spelling(p, PARAMS) {
            panic!("accepted params member {k:?}, read as another by a case-insensitive decoder");
        }
    }
    let member = |k: &str| params.and_then(|p| p.get(k));
    assert_eq!(
        m.name.as_deref(),
        member("name").and_then(Value::as_str),
        "name"
    );
    assert_eq!(
        m.uri.as_deref(),
        member("uri").and_then(Value::as_str),
        "uri"
    );
    assert_eq!(m.arguments.as_ref(), member("arguments"), "arguments");
    assert_eq!(m.meta.as_ref(), member("_meta"), "_meta");
}
