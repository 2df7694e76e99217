//! `validation/cel` and `security/policies` (Enterprise) as mcpgate CEL `rules`. KrakenD's
//! variables are rewritten to mcpgate's: `req_method` -> `request.method`, `req_path` ->
//! `request.path`, `req_headers["X-A"][0]` -> `request.headers["x-a"]` (mcpgate joins repeated
//! values with `, `), `req_querystring["q"][0]` -> `request.query["q"]`, `JWT` ->
//! `identity.claims`. What has no mcpgate meaning (`req_params`, response variables, KrakenD's
//! own macros) is an error: a rule must never silently change what it lets through.

use super::obj::Obj;
use super::Cx;
use serde_json::{json, Value};

/// Where a CEL check sits.
pub(crate) struct Context {
    /// Names the rules (`cel-<tag>-<n>`).
    pub(crate) tag: String,
    /// At a backend, where KrakenD has no `JWT` variable.
    pub(crate) backend: bool,
    /// The endpoint validates tokens (`auth/validator`), so KrakenD runs its `JWT` checks.
    pub(crate) jwt: bool,
}

/// The variables an expression uses.
#[derive(Default)]
pub(crate) struct Used {
    pub(crate) jwt: bool,
    pub(crate) req: bool,
}

/// The mcpgate path of an endpoint's rules, from a KrakenD path under `endpoints[i]`.
fn rules_path(at: &str) -> String {
    let ep = at.split('.').next().unwrap_or_default();
    format!("{ep}.policies.rules")
}

/// Checks where `JWT` may be used: KrakenD evaluates `JWT` checks apart from `req_` ones, only
/// at an endpoint with `auth/validator`, and refuses them with 401.
fn jwt_status(used: &Used, at: &str, ctx: &Context, cx: &mut Cx) -> Option<u16> {
    if !used.jwt {
        return Some(403);
    }
    if ctx.backend {
        cx.error(
            at,
            "JWT is unset in a backend's CEL (KrakenD skips or fails this check): check it at the endpoint",
        );
        None
    } else if used.req {
        cx.error(
            at,
            "KrakenD evaluates JWT and req_ variables apart, so this check refuses every request: split it in two",
        );
        None
    } else if !ctx.jwt {
        cx.error(
            at,
            "JWT needs auth/validator on this endpoint (without it KrakenD never runs this check)",
        );
        None
    } else {
        Some(401)
    }
}

/// `validation/cel`: every `check_expr` must hold, so each becomes "deny when not". KrakenD
/// answers a failed `req_` check with 500 and a failed `JWT` check with 401; mcpgate with 403
/// and 401.
pub(crate) fn validation(v: &Value, at: &str, ctx: &Context, cx: &mut Cx) -> Vec<Value> {
    let Some(list) = v.as_array() else {
        cx.error(at, format!("expected a list of {{check_expr}}, found {v}"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (j, item) in list.iter().enumerate() {
        let iat = format!("{at}[{j}]");
        let mut o = Obj::new(item, &iat, true, cx);
        let expr = o.str("check_expr", cx);
        o.finish(true, cx);
        let Some(expr) = expr else {
            cx.error(format!("{iat}.check_expr"), "missing");
            continue;
        };
        let eat = format!("{iat}.check_expr");
        let mut used = Used::default();
        if let Some(when) = rewrite(&expr, &eat, &mut used, cx) {
            let Some(status) = jwt_status(&used, &eat, ctx, cx) else {
                continue;
            };
            out.push(json!({
                "name": format!("cel-{}-{j}", ctx.tag),
                "when": format!("!({when})"),
                "status": status,
                "message": "refused by a CEL check",
            }));
        }
    }
    if !out.is_empty() {
        cx.note(
            rules_path(at),
            "from KrakenD CEL checks: a failed req_ check answers 403 here (KrakenD: 500), a failed JWT check 401",
        );
    }
    out
}

/// `security/policies`: the `req` policies (status `error.status`, KrakenD's default 500) and
/// the `jwt` ones (401, only with `auth/validator`) as deny rules. `error.body` goes to KrakenD's
/// log, not to the client, so it is not the rule's message either.
pub(crate) fn security_policies(v: &Value, at: &str, ctx: &Context, cx: &mut Cx) -> Vec<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let mut out = Vec::new();
    for part in ["req", "jwt"] {
        let Some(p) = o.get(part) else { continue };
        let pat = format!("{at}.{part}");
        let mut po = Obj::new(p, &pat, true, cx);
        let policies = po.strs("policies", cx).unwrap_or_default();
        let mut status = if part == "jwt" { 401u64 } else { 500 };
        if part == "req" {
            if let Some(e) = po.get("error") {
                let mut eo = Obj::new(e, &format!("{pat}.error"), true, cx);
                status = eo.uint("status", cx).unwrap_or(500);
                eo.str("body", cx);
                eo.str("content_type", cx);
                eo.finish(true, cx);
            }
        }
        po.finish(true, cx);
        if policies.is_empty() {
            cx.error(format!("{pat}.policies"), "required: at least one policy");
        }
        if part == "jwt" && !ctx.jwt {
            cx.error(
                &pat,
                "jwt policies need auth/validator on this endpoint (without it KrakenD skips them)",
            );
            continue;
        }
        if !(400..=499).contains(&status) {
            cx.note(
                rules_path(at),
                format!(
                    "KrakenD answers a failed req policy with {status}; mcpgate refuses with 403"
                ),
            );
            status = 403;
        }
        for (j, expr) in policies.iter().enumerate() {
            let eat = format!("{pat}.policies[{j}]");
            let mut used = Used::default();
            if let Some(when) = rewrite(expr, &eat, &mut used, cx) {
                if part == "req" && used.jwt {
                    cx.error(&eat, "JWT is for the jwt policies, not req");
                    continue;
                }
                out.push(json!({
                    "name": format!("policy-{part}-{j}"),
                    "when": format!("!({when})"),
                    "status": status,
                    "message": format!("refused by a security policy ({part})"),
                }));
            }
        }
    }
    o.unsupported(
        &["resp"],
        true,
        "mcpgate decides before the upstream answers",
        cx,
    );
    // Evaluation and logging tuning: the same decisions either way.
    o.accept(&["debug", "disable_macros", "auto_join_policies"]);
    o.finish(true, cx);
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A string literal: its source text and its value.
    Str(String, String),
    Space(String),
    Punct(char),
    Other(String),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let start = i;
            let mut value = String::new();
            i += 1;
            loop {
                let ch = *chars.get(i)?;
                i += 1;
                if ch == '\\' {
                    value.push(*chars.get(i)?);
                    i += 1;
                } else if ch == c {
                    break;
                } else {
                    value.push(ch);
                }
            }
            out.push(Tok::Str(chars[start..i].iter().collect(), value));
        } else if c.is_whitespace() {
            let start = i;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            out.push(Tok::Space(chars[start..i].iter().collect()));
        } else if "[]().,".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Other(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Other(c.to_string()));
            i += 1;
        }
    }
    Some(out)
}

/// Standard CEL names a KrakenD expression may use as they are.
const GLOBAL_FUNCTIONS: &[&str] = &[
    "size",
    "has",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "timestamp",
    "duration",
    "type",
    "dyn",
];
/// Comprehension macros, whose first argument names a variable.
const MACROS: &[&str] = &["exists", "all", "exists_one", "map", "filter"];
const KEYWORDS: &[&str] = &["true", "false", "null", "in"];

/// Rewrites a KrakenD CEL expression to mcpgate's variables, or reports why it cannot.
pub(crate) fn rewrite(expr: &str, at: &str, used: &mut Used, cx: &mut Cx) -> Option<String> {
    let Some(toks) = tokenize(expr) else {
        cx.error(at, "unterminated string literal");
        return None;
    };
    let sig = |from: usize| {
        toks.iter()
            .enumerate()
            .skip(from)
            .find(|(_, t)| !matches!(t, Tok::Space(_)))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut ok = true;
    while i < toks.len() {
        let t = &toks[i];
        let Tok::Ident(name) = t else {
            out.push(match t {
                Tok::Str(src, _) | Tok::Space(src) | Tok::Other(src) => src.clone(),
                Tok::Punct(c) => c.to_string(),
                Tok::Ident(_) => String::new(),
            });
            i += 1;
            continue;
        };
        let member = out
            .iter()
            .rev()
            .find(|s| !s.trim().is_empty())
            .is_some_and(|s| s == ".");
        let next = sig(i + 1);
        let call = matches!(next, Some((_, Tok::Punct('('))));
        if member {
            out.push(name.clone());
            i += 1;
            continue;
        }
        match name.as_str() {
            "req_method" => {
                used.req = true;
                out.push("request.method".into())
            }
            "req_path" => {
                used.req = true;
                out.push("request.path".into())
            }
            "JWT" => {
                used.jwt = true;
                out.push("identity.claims".into())
            }
            "req_headers" | "req_querystring" => {
                used.req = true;
                let headers = name == "req_headers";
                let target = if headers {
                    "request.headers"
                } else {
                    "request.query"
                };
                // `X[key]`, optionally followed by `[0]`.
                if let Some((j, Tok::Punct('['))) = next {
                    if let (Some((k, Tok::Str(_, key))), Some((e, Tok::Punct(']')))) =
                        (sig(j + 1), sig(j + 2).filter(|(e, _)| *e > j + 1))
                    {
                        let _ = k;
                        if headers && *key != canonical(key) {
                            cx.error(
                                at,
                                format!("KrakenD finds headers by their canonical name: write req_headers[{:?}] (as written, it never matches)", canonical(key)),
                            );
                            ok = false;
                        }
                        let key = if headers {
                            key.to_ascii_lowercase()
                        } else {
                            key.clone()
                        };
                        let lit = json!(key).to_string();
                        let after = sig(e + 1);
                        let zero = match (
                            after,
                            after.and_then(|(a, _)| sig(a + 1)),
                            after
                                .and_then(|(a, _)| sig(a + 1))
                                .and_then(|(b, _)| sig(b + 1)),
                        ) {
                            (
                                Some((_, Tok::Punct('['))),
                                Some((_, Tok::Other(z))),
                                Some((c, Tok::Punct(']'))),
                            ) if z == "0" => Some(c),
                            _ => None,
                        };
                        match zero {
                            Some(c) => {
                                out.push(format!("{target}[{lit}]"));
                                i = c + 1;
                            }
                            None => {
                                out.push(format!("[{target}[{lit}]]"));
                                i = e + 1;
                            }
                        }
                        continue;
                    }
                    cx.error(
                        at,
                        format!("{name}[...] needs a string literal key for mcpgate"),
                    );
                    ok = false;
                } else {
                    // `"key" in X`: lower-case the key for headers.
                    let prev: Vec<usize> = out
                        .iter()
                        .enumerate()
                        .rev()
                        .filter(|(_, s)| !s.trim().is_empty())
                        .map(|(n, _)| n)
                        .take(2)
                        .collect();
                    let is_in = prev.first().is_some_and(|&n| out[n] == "in");
                    if !is_in {
                        cx.error(at, format!("{name} is usable in mcpgate as {name}[\"key\"][0] or \"key\" in {name}"));
                        ok = false;
                    } else if headers {
                        if let Some(&n) = prev.get(1) {
                            if let Some(Tok::Str(_, key)) =
                                tokenize(&out[n]).and_then(|t| t.into_iter().next())
                            {
                                if key != canonical(&key) {
                                    cx.error(at, format!("KrakenD finds headers by their canonical name: write {:?} (as written, it never matches)", canonical(&key)));
                                    ok = false;
                                }
                                out[n] = json!(key.to_ascii_lowercase()).to_string();
                            }
                        }
                    }
                    out.push(target.into());
                }
            }
            "req_params" => {
                cx.error(
                    at,
                    "req_params: mcpgate endpoints are exact paths and have no parameters",
                );
                ok = false;
            }
            n if KEYWORDS.contains(&n) => out.push(n.into()),
            n if call && GLOBAL_FUNCTIONS.contains(&n) => out.push(n.into()),
            n if call => {
                cx.error(
                    at,
                    format!("function {n}() is a KrakenD macro, not in mcpgate's CEL"),
                );
                ok = false;
            }
            n if n.starts_with("resp_") => {
                cx.error(
                    at,
                    format!("{n}: mcpgate decides before the upstream answers"),
                );
                ok = false;
            }
            n => {
                // A comprehension variable (`exists(r, ...)`) is fine; anything else is unknown.
                let bound = toks.windows(4).any(|w| {
                    matches!(&w[0], Tok::Ident(m) if MACROS.contains(&m.as_str()))
                        && w[1] == Tok::Punct('(')
                        && matches!(&w[2], Tok::Ident(v) if v == n)
                        && w[3] == Tok::Punct(',')
                });
                if bound {
                    out.push(n.into());
                } else {
                    cx.error(at, format!("unknown variable {n} (KrakenD's req_method, req_path, req_headers, req_querystring and JWT are translated)"));
                    ok = false;
                }
            }
        }
        i += 1;
    }
    ok.then(|| out.concat())
}

/// A header name in Go's canonical form (`x-some-thing` -> `X-Some-Thing`), how KrakenD keys
/// `req_headers`.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}
