//! `modifier/martian` static header modifiers (`header.Modifier`, `header.Append`,
//! `header.Blacklist`, `header.Copy`, nested in `fifo.Group`) as mcpgate header operations.

use super::obj::Obj;
use super::Cx;
use serde_json::{json, Value};

/// Adds the operations of one Martian modifier (tree) to the request and response lists.
pub(crate) fn modifiers(
    v: &Value,
    at: &str,
    request: &mut Vec<Value>,
    response: &mut Vec<Value>,
    cx: &mut Cx,
) {
    let Some(map) = v.as_object() else {
        cx.error(at, format!("expected an object, found {v}"));
        return;
    };
    if map.len() != 1 {
        cx.error(
            at,
            "expected exactly one modifier (group several in fifo.Group)",
        );
    }
    for (kind, body) in map {
        let kat = format!("{at}.{kind}");
        let mut o = Obj::new(body, &kat, true, cx);
        let scope = o
            .strs("scope", cx)
            .unwrap_or_else(|| vec!["request".into()]);
        let ops: Vec<Value> = match kind.as_str() {
            "fifo.Group" => {
                o.accept(&["aggregateErrors"]);
                let list = o
                    .get("modifiers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                o.finish(true, cx);
                for (i, m) in list.iter().enumerate() {
                    modifiers(m, &format!("{kat}.modifiers[{i}]"), request, response, cx);
                }
                continue;
            }
            "header.Modifier" | "header.Append" => {
                let name = o.str("name", cx).unwrap_or_default();
                let value = o.str("value", cx).unwrap_or_default();
                let op = if kind == "header.Modifier" {
                    "set"
                } else {
                    "append"
                };
                vec![json!({op: {"name": name, "value": value}})]
            }
            "header.Blacklist" => o
                .strs("names", cx)
                .unwrap_or_default()
                .into_iter()
                .map(|n| json!({"remove": n}))
                .collect(),
            "header.Copy" => {
                let from = o.str("from", cx).unwrap_or_default();
                let to = o.str("to", cx).unwrap_or_default();
                vec![json!({"copy": {"from": from, "to": to}})]
            }
            _ => {
                cx.error(&kat, "Martian modifier not supported by mcpgate (header.Modifier, header.Append, header.Blacklist, header.Copy and fifo.Group are)");
                o.accept(&[
                    "name",
                    "value",
                    "names",
                    "from",
                    "to",
                    "modifiers",
                    "aggregateErrors",
                ]);
                o.finish(true, cx);
                continue;
            }
        };
        o.finish(true, cx);
        for s in &scope {
            match s.as_str() {
                "request" => request.extend(ops.iter().cloned()),
                "response" => response.extend(ops.iter().cloned()),
                other => cx.error(format!("{kat}.scope"), format!("unknown scope {other:?}")),
            }
        }
    }
}
