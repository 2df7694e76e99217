//! `modifier/martian` static header modifiers (`header.Modifier`, `header.Append`,
//! `header.Blacklist`, `header.Copy`, nested in `fifo.Group`) as mcpgate header operations.
//! Every modifier declares its `scope` (`request`, `response` or both); one inside a group
//! runs only where the group runs too.

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
    modifier(v, at, &["request", "response"], request, response, cx)
}

fn modifier(
    v: &Value,
    at: &str,
    within: &[&str],
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
        let scope = o.strs("scope", cx).unwrap_or_else(|| {
            cx.error(
                format!("{kat}.scope"),
                "required: [\"request\"], [\"response\"] or both",
            );
            Vec::new()
        });
        for s in &scope {
            if s != "request" && s != "response" {
                cx.error(format!("{kat}.scope"), format!("unknown scope {s:?}"));
            }
        }
        let inner: Vec<&str> = ["request", "response"]
            .into_iter()
            .filter(|s| within.contains(s) && scope.iter().any(|x| x == s))
            .collect();
        let ops: Vec<Value> = match kind.as_str() {
            "fifo.Group" => {
                o.bool("aggregateErrors", cx);
                let list = o.get("modifiers").and_then(Value::as_array).cloned();
                o.finish(true, cx);
                if list.as_ref().is_none_or(|l| l.is_empty()) {
                    cx.error(format!("{kat}.modifiers"), "required: a list of modifiers");
                }
                for (i, m) in list.iter().flatten().enumerate() {
                    let mat = format!("{kat}.modifiers[{i}]");
                    modifier(m, &mat, &inner, request, response, cx);
                }
                continue;
            }
            "header.Modifier" | "header.Append" => {
                let name = required(o.str("name", cx), &kat, "name", cx);
                let value = required(o.str("value", cx), &kat, "value", cx);
                let op = if kind == "header.Modifier" {
                    "set"
                } else {
                    "append"
                };
                vec![json!({op: {"name": name, "value": value}})]
            }
            "header.Blacklist" => {
                let names = o.strs("names", cx).unwrap_or_default();
                if names.is_empty() {
                    cx.error(format!("{kat}.names"), "required: the headers to remove");
                }
                names.into_iter().map(|n| json!({"remove": n})).collect()
            }
            "header.Copy" => {
                let from = required(o.str("from", cx), &kat, "from", cx);
                let to = required(o.str("to", cx), &kat, "to", cx);
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
        for s in inner {
            match s {
                "request" => request.extend(ops.iter().cloned()),
                _ => response.extend(ops.iter().cloned()),
            }
        }
    }
}

/// A required string of a modifier.
fn required(v: Option<String>, kat: &str, key: &str, cx: &mut Cx) -> String {
    v.unwrap_or_else(|| {
        cx.error(format!("{kat}.{key}"), "required");
        String::new()
    })
}
