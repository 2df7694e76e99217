//! Reading the servers' answers and merging them into one: a JSON-RPC response found in a JSON
//! or SSE body, the negotiated protocol version, the union of capabilities, the instructions
//! under their aliases, and list items with their names and URIs exposed.

use super::names;
use serde_json::{json, Map, Value};

/// The list methods that fan out, with the key of their items.
pub const LISTS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// The items key of a list method.
pub fn list_key(method: &str) -> Option<&'static str> {
    LISTS.iter().find(|(m, _)| *m == method).map(|(_, k)| *k)
}

/// The JSON-RPC response with `id` in a server's answer (`application/json`, or an SSE stream
/// whose `data:` lines carry messages); `None` when there is none.
pub fn find_response(content_type: &str, body: &[u8], id: &Value) -> Option<Value> {
    let is_response = |v: &Value| {
        v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some())
    };
    if content_type
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
    {
        let text = std::str::from_utf8(body).ok()?;
        let mut data = String::new();
        // Events end at a blank line; their `data:` lines join with `\n`.
        for line in text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .chain([""])
        {
            if line.is_empty() {
                if !data.is_empty() {
                    if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        if is_response(&v) {
                            return Some(v);
                        }
                    }
                }
                data.clear();
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    match v {
        Value::Array(items) => items.into_iter().find(is_response),
        v if is_response(&v) => Some(v),
        _ => None,
    }
}

/// The version answered to the client: the client's when every required server answered it,
/// else the oldest version a required server answered (versions are dates). `answered` holds
/// (required, version) for the servers in the session.
pub fn negotiate(client: &str, answered: &[(bool, &str)]) -> String {
    let required: Vec<&str> = answered
        .iter()
        .filter(|(r, _)| *r)
        .map(|(_, v)| *v)
        .collect();
    let pool: Vec<&str> = if required.is_empty() {
        answered.iter().map(|(_, v)| *v).collect()
    } else {
        required
    };
    if pool.iter().all(|v| *v == client) {
        return client.to_string();
    }
    pool.into_iter().min().unwrap_or(client).to_string()
}

/// The union of the servers' capabilities, with `listChanged` on for every list they offer
/// (a gateway's lists change when a server's do, or when the config changes).
pub fn capabilities<'a>(servers: impl Iterator<Item = &'a Value>) -> Value {
    let mut out = Map::new();
    for caps in servers.filter_map(Value::as_object) {
        for (k, v) in caps {
            let slot = out.entry(k.clone()).or_insert_with(|| json!({}));
            if let (Some(slot), Some(v)) = (slot.as_object_mut(), v.as_object()) {
                for (sk, sv) in v {
                    if sv.as_bool() == Some(true) || !slot.contains_key(sk) {
                        slot.insert(sk.clone(), sv.clone());
                    }
                }
            }
        }
    }
    for list in ["tools", "prompts", "resources"] {
        if let Some(o) = out.get_mut(list).and_then(Value::as_object_mut) {
            o.insert("listChanged".into(), Value::Bool(true));
        }
    }
    Value::Object(out)
}

/// The servers' instructions, each under its alias; `None` when none gave any.
pub fn instructions<'a>(
    servers: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<String> {
    let parts: Vec<String> = servers
        .filter_map(|(alias, text)| Some(format!("## {alias}\n{}", text?.trim())))
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The items of one server's list page with their names or URIs exposed (a URI keeps the
/// server's own when prefixing is off); items without a usable name or URI are dropped.
pub fn expose_items(method: &str, alias: &str, prefix: bool, items: Vec<Value>) -> Vec<Value> {
    let field = match method {
        "tools/list" | "prompts/list" => "name",
        "resources/list" => "uri",
        "resources/templates/list" => "uriTemplate",
        _ => return Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|mut item| {
            let own = item.get(field)?.as_str()?.to_string();
            let exposed = match field {
                "name" => names::expose(alias, &own, prefix),
                _ if prefix => names::expose_uri(alias, &own),
                _ => own,
            };
            item.as_object_mut()?
                .insert(field.into(), Value::String(exposed));
            Some(item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_response_in_json_and_sse() {
        let id = json!(7);
        let body = br#"{"jsonrpc":"2.0","id":7,"result":{"ok":true}}"#;
        assert_eq!(
            find_response("application/json", body, &id).map(|v| v["result"]["ok"].clone()),
            Some(json!(true))
        );
        let sse = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\nid: 3\ndata: {\"jsonrpc\":\"2.0\",\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\ndata: \"result\":{\"n\":1}}\n\n";
        let found = find_response("text/event-stream; charset=utf-8", sse, &id);
        assert_eq!(found.map(|v| v["result"]["n"].clone()), Some(json!(1)));
        // Another id, a request with the same id, garbage: nothing.
        assert_eq!(find_response("application/json", body, &json!("7")), None);
        let req = br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        assert_eq!(find_response("application/json", req, &id), None);
        assert_eq!(find_response("application/json", b"nope", &id), None);
        assert_eq!(
            find_response("text/event-stream", b"data: x\n\n", &id),
            None
        );
    }

    #[test]
    fn versions_are_negotiated_never_hard_coded() {
        let c = "2025-11-25";
        assert_eq!(negotiate(c, &[(true, c), (false, "2025-03-26")]), c);
        assert_eq!(
            negotiate(c, &[(true, c), (true, "2025-06-18")]),
            "2025-06-18"
        );
        assert_eq!(negotiate(c, &[(false, "2025-06-18")]), "2025-06-18");
        assert_eq!(
            negotiate("2025-03-26", &[(true, "2025-03-26")]),
            "2025-03-26"
        );
    }

    #[test]
    fn capabilities_are_united_with_list_changed() {
        let a = json!({"tools": {"listChanged": false}, "logging": {}});
        let b = json!({"resources": {"subscribe": true}, "prompts": {}, "tools": {}});
        let m = capabilities([&a, &b].into_iter());
        assert_eq!(m["tools"]["listChanged"], json!(true));
        assert_eq!(m["prompts"]["listChanged"], json!(true));
        assert_eq!(m["resources"]["subscribe"], json!(true));
        assert_eq!(m["resources"]["listChanged"], json!(true));
        assert_eq!(m["logging"], json!({}));
        assert!(m.get("completions").is_none());
    }

    #[test]
    fn items_are_exposed_per_server() {
        let tools = vec![json!({"name": "echo"}), json!({"title": "no name"})];
        let out = expose_items("tools/list", "a", true, tools);
        assert_eq!(out, vec![json!({"name": "a_echo"})]);
        let res = vec![json!({"uri": "file:///r", "name": "r"})];
        let out = expose_items("resources/list", "docs", true, res);
        assert_eq!(out[0]["uri"], json!("docs+file:///r"));
        assert_eq!(out[0]["name"], json!("r"), "a resource's name stays");
        let t = vec![json!({"uriTemplate": "mem://{x}"})];
        assert_eq!(
            expose_items("resources/templates/list", "m", true, t.clone())[0]["uriTemplate"],
            json!("m+mem://{x}")
        );
        // Prefixing off: the server's own URIs, as its own names.
        let res = vec![json!({"uri": "file:///r", "name": "r"})];
        assert_eq!(
            expose_items("resources/list", "docs", false, res)[0]["uri"],
            json!("file:///r")
        );
        assert_eq!(
            expose_items("resources/templates/list", "m", false, t)[0]["uriTemplate"],
            json!("mem://{x}")
        );
        assert_eq!(
            instructions([("a", Some("use a")), ("b", None)].into_iter()),
            Some("## a\nuse a".into())
        );
        assert_eq!(list_key("prompts/list"), Some("prompts"));
    }
}
