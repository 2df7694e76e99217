//! CEL rules (the `cel` crate): expressions compiled when the config loads (a bad expression is
//! a config error with its path), evaluated per request in order; the first rule whose `when` is
//! true decides (`allow` ends the rules, `deny` refuses with its status and message). No rule
//! matching allows. A rule that fails to evaluate denies (fail closed) and is logged.
//!
//! Variables (built only when some rule of the endpoint uses them):
//! - `request`: `method`, `path`, `headers` (lower-case names), `query`, `client_ip`;
//! - `identity`: `authenticated`, `subject`, `method`, `roles`, `scopes`, `claims`;
//! - `mcp`: `method`, `tool`, `resource`, `arguments`, `meta`, `session`, `protocol_version`,
//!   `batch` (strings are `""` and maps `{}` when absent, so rules need no null checks). In a
//!   batch every message is checked, and one denial refuses the whole batch.

use crate::config::Problem;
use crate::error::GatewayError;
use crate::mcp::inspect::{Inspected, Message};
use crate::policy::auth::identity::Identity;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, OnceLock};

/// The standard CEL environment (functions and macros), built once: building it per request
/// would cost more than the rules themselves.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// One entry of `rules:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name (logs, metrics, the error's `data.rule`).
    pub name: String,
    /// The CEL condition, e.g. `mcp.tool.startsWith("delete_") && !("admin" in identity.roles)`.
    pub when: String,
    /// What a true condition does: `deny` (the default) or `allow` (stop checking rules).
    #[serde(default)]
    pub action: RuleAction,
    /// Status of a denial (400 to 499; default 403).
    #[serde(default)]
    pub status: Option<u16>,
    /// Message of a denial (default: "denied by policy <name>").
    #[serde(default)]
    pub message: Option<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Refuse the request.
    #[default]
    Deny,
    /// Allow it (later rules are not checked).
    Allow,
}

struct Rule {
    name: String,
    program: Program,
    action: RuleAction,
    status: u16,
    message: String,
}

/// The compiled rules of an endpoint.
#[derive(Clone, Default)]
pub struct Rules {
    rules: Arc<Vec<Rule>>,
    uses_request: bool,
    uses_identity: bool,
    /// Some rule reads `mcp` (the endpoint must inspect bodies).
    pub uses_mcp: bool,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
        f.debug_struct("Rules").field("rules", &names).finish()
    }
}

/// What the rules see of a request.
pub struct Facts<'a> {
    /// The request header.
    pub req: &'a RequestHeader,
    /// The client address.
    pub client_ip: Option<IpAddr>,
    /// The identity, if authenticated.
    pub identity: Option<&'a Identity>,
    /// The inspected body, if any.
    pub mcp: Option<&'a Inspected>,
}

impl Rules {
    /// Compiles `rules:`, every bad expression reported with its path.
    pub fn compile(list: &[RuleConfig], at: &str) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            p.extend(crate::config::name_used_before(
                list[..i].iter().map(|o| o.name.as_str()),
                &r.name,
                &here,
            ));
            let status = r.status.unwrap_or(403);
            if !(400..=499).contains(&status) {
                p.push(Problem::new(
                    format!("{here}.status"),
                    "must be between 400 and 499",
                ));
            }
            match Program::compile(&r.when) {
                Ok(program) => {
                    let refs = program.references();
                    let unknown: Vec<&str> = refs
                        .variables()
                        .into_iter()
                        .filter(|v| !["request", "identity", "mcp"].contains(v))
                        .collect();
                    if !unknown.is_empty() {
                        p.push(Problem::new(
                            format!("{here}.when"),
                            format!("unknown variable(s) {unknown:?}: use request, identity, mcp"),
                        ));
                    }
                    rules.push(Rule {
                        name: r.name.clone(),
                        program,
                        action: r.action,
                        status,
                        message: r
                            .message
                            .clone()
                            .unwrap_or_else(|| format!("denied by policy {}", r.name)),
                    });
                }
                Err(e) => p.push(Problem::new(
                    format!("{here}.when"),
                    format!("invalid CEL: {}", e.to_string().replace('\n', " ")),
                )),
            }
        }
        if !p.is_empty() {
            return Err(p);
        }
        let uses = |name: &str| {
            rules
                .iter()
                .any(|r| r.program.references().has_variable(name))
        };
        Ok(Rules {
            uses_request: uses("request"),
            uses_identity: uses("identity"),
            uses_mcp: uses("mcp"),
            rules: Arc::new(rules),
        })
    }

    /// Whether any rule is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules; the refusal of the first denying rule, if any.
    pub fn check(&self, facts: &Facts<'_>) -> Result<(), GatewayError> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let request = self.uses_request.then(|| request_value(facts));
        let request = request.as_ref().map(|r| Var::Leaf(Leaf::Json(r)));
        let identity = self.uses_identity.then(|| identity_var(facts.identity));
        let messages: &[Message] = match facts.mcp {
            Some(m) => m.messages(),
            None => &[],
        };
        let batch = matches!(facts.mcp, Some(Inspected::Batch(_)));
        let run = |mcp: Option<&Var<'_>>| {
            let vars = Vars::new([
                ("request", request.as_ref()),
                ("identity", identity.as_ref()),
                ("mcp", mcp),
            ]);
            let mut cx = Context::with_env(ENV.clone());
            cx.set_variable_resolver(&vars);
            self.decide(&cx)
        };
        if !self.uses_mcp || messages.is_empty() {
            let mcp = self.uses_mcp.then(|| mcp_var(None, facts.req, batch));
            return run(mcp.as_ref());
        }
        for m in messages {
            run(Some(&mcp_var(Some(m), facts.req, batch)))?;
        }
        Ok(())
    }

    fn decide(&self, cx: &Context<'_, '_>) -> Result<(), GatewayError> {
        for rule in self.rules.iter() {
            match rule.program.execute(cx) {
                Ok(Value::Bool(false)) => continue,
                Ok(Value::Bool(true)) => {
                    return match rule.action {
                        RuleAction::Allow => Ok(()),
                        RuleAction::Deny => Err(denial(rule)),
                    }
                }
                Ok(other) => {
                    tracing::warn!(rule = %rule.name, value = ?other, "CEL rule did not give a boolean; denying");
                    return Err(denial(rule));
                }
                Err(e) => {
                    tracing::warn!(rule = %rule.name, error = %e, "CEL rule failed to evaluate; denying");
                    return Err(denial(rule));
                }
            }
        }
        Ok(())
    }
}

fn denial(rule: &Rule) -> GatewayError {
    GatewayError::PolicyDenied {
        rule: rule.name.clone(),
        status: rule.status,
        message: rule.message.clone(),
    }
}

/// The variables of one evaluation, read in place: `identity` and `mcp` are records of borrowed
/// fields (nothing of the message or the claims is copied), `request` is its JSON. For
/// `mcp.arguments.query` the interpreter asks for the longest name first, so only the leaf it
/// reads is converted (strings borrowed). A bare variable (`size(mcp)`, `has(mcp.x)`) is
/// converted once. Converting whole variables up front cost several times more than the rules.
struct Vars<'a> {
    roots: [Root<'a>; 3],
}

/// One variable: its name, its fields, and its whole conversion once needed.
struct Root<'a> {
    name: &'static str,
    var: Option<&'a Var<'a>>,
    whole: OnceLock<Box<dyn Val + 'a>>,
}

/// A variable: a record of named fields, or one value.
enum Var<'a> {
    Record(Vec<(&'static str, Leaf<'a>)>),
    Leaf(Leaf<'a>),
}

/// A value borrowed from the request, its identity or its message.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Json(&'a serde_json::Value),
    Str(&'a str),
    Bool(bool),
    List(&'a [String]),
    /// `{}`, for an absent map (`arguments`, `meta`, `claims`).
    EmptyMap,
}

impl<'a> Leaf<'a> {
    /// An object's field (`None` for anything else, as for a missing key).
    fn field(self, key: &str) -> Option<Leaf<'a>> {
        match self {
            Leaf::Json(v) => v.as_object()?.get(key).map(Leaf::Json),
            _ => None,
        }
    }

    /// An object (a `{}` for anything else).
    fn map(v: Option<&'a serde_json::Value>) -> Leaf<'a> {
        match v {
            Some(v @ serde_json::Value::Object(_)) => Leaf::Json(v),
            _ => Leaf::EmptyMap,
        }
    }

    fn to_val(self) -> Box<dyn Val + 'a> {
        match self {
            Leaf::Json(v) => json_to_val(v),
            Leaf::Str(s) => Box::new(CelString::from(s)),
            Leaf::Bool(b) => Box::new(CelBool::from(b)),
            Leaf::List(l) => Box::new(CelList::from(
                l.iter()
                    .map(|s| Box::new(CelString::from(s.as_str())) as Box<dyn Val + 'a>)
                    .collect::<Vec<_>>(),
            )),
            Leaf::EmptyMap => Box::new(CelMap::from(HashMap::new())),
        }
    }
}

impl<'a> Var<'a> {
    fn field(&self, key: &str) -> Option<Leaf<'a>> {
        match self {
            Var::Record(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
            Var::Leaf(l) => l.field(key),
        }
    }

    fn to_val(&self) -> Box<dyn Val + 'a> {
        match self {
            Var::Record(fields) => Box::new(CelMap::from(
                fields
                    .iter()
                    .map(|(k, v)| (CelMapKey::from(*k), v.to_val()))
                    .collect::<HashMap<_, _>>(),
            )),
            Var::Leaf(l) => l.to_val(),
        }
    }
}

impl<'a> Vars<'a> {
    fn new(roots: [(&'static str, Option<&'a Var<'a>>); 3]) -> Self {
        Vars {
            roots: roots.map(|(name, var)| Root {
                name,
                var,
                whole: OnceLock::new(),
            }),
        }
    }
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let (head, rest) = match name.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (name, None),
        };
        let root = self.roots.iter().find(|r| r.name == head)?;
        let var = root.var?;
        match rest {
            None => Some(CowVal::Borrowed(
                root.whole.get_or_init(|| var.to_val()).as_ref(),
            )),
            Some(path) => {
                let mut segments = path.split('.');
                let mut at = var.field(segments.next()?)?;
                for segment in segments {
                    at = at.field(segment)?;
                }
                Some(CowVal::Owned(at.to_val()))
            }
        }
    }
}

/// JSON to a CEL value borrowing its strings. Numbers as the crate's own serde conversion does:
/// non-negative integers are `uint`, negative ones `int`, others `double`.
fn json_to_val(v: &serde_json::Value) -> Box<dyn Val + '_> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Box::new(CelUInt::from(u)),
            (None, Some(i)) => Box::new(CelInt::from(i)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(a) => Box::new(CelList::from(a.iter().map(json_to_val).collect::<Vec<_>>())),
        J::Object(o) => {
            let mut m = HashMap::with_capacity(o.len());
            for (k, v) in o {
                m.insert(CelMapKey::from(k.as_str()), json_to_val(v));
            }
            Box::new(CelMap::from(m))
        }
    }
}

fn request_value(f: &Facts<'_>) -> serde_json::Value {
    // Every header a rule could ask about is there: repeated ones joined with ", " (as HTTP
    // combines them), bytes that are not text replaced, so that neither a second copy nor an
    // odd byte hides a value from a rule.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in f.req.headers.iter() {
        let v = String::from_utf8_lossy(v.as_bytes());
        headers
            .entry(k.as_str().to_string())
            .and_modify(|all| {
                all.push_str(", ");
                all.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let query: BTreeMap<String, String> = f
        .req
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "method": f.req.method.as_str(),
        "path": f.req.uri.path(),
        "headers": headers,
        "query": query,
        "client_ip": f.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    })
}

fn identity_var(id: Option<&Identity>) -> Var<'_> {
    Var::Record(match id {
        Some(i) => vec![
            ("authenticated", Leaf::Bool(true)),
            ("subject", Leaf::Str(&i.subject)),
            ("method", Leaf::Str(i.method.as_str())),
            ("roles", Leaf::List(&i.roles)),
            ("scopes", Leaf::List(&i.scopes)),
            ("claims", Leaf::map(Some(&i.claims))),
        ],
        None => vec![
            ("authenticated", Leaf::Bool(false)),
            ("subject", Leaf::Str("")),
            ("method", Leaf::Str("")),
            ("roles", Leaf::List(&[])),
            ("scopes", Leaf::List(&[])),
            ("claims", Leaf::EmptyMap),
        ],
    })
}

fn mcp_var<'a>(m: Option<&'a Message>, req: &'a RequestHeader, batch: bool) -> Var<'a> {
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let text = |v: Option<&'a String>| Leaf::Str(v.map(String::as_str).unwrap_or_default());
    Var::Record(vec![
        ("method", text(m.and_then(|m| m.method.as_ref()))),
        (
            "tool",
            Leaf::Str(m.and_then(|m| m.tool()).unwrap_or_default()),
        ),
        ("resource", text(m.and_then(|m| m.uri.as_ref()))),
        ("arguments", Leaf::map(m.and_then(|m| m.arguments.as_ref()))),
        ("meta", Leaf::map(m.and_then(|m| m.meta.as_ref()))),
        ("session", Leaf::Str(header("mcp-session-id"))),
        (
            "protocol_version",
            Leaf::Str(header("mcp-protocol-version")),
        ),
        ("batch", Leaf::Bool(batch)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::inspect::inspect;
    use crate::policy::auth::identity::AuthMethod;

    fn rules(yaml: &str) -> Result<Rules, Vec<Problem>> {
        let list: Vec<RuleConfig> = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Rules::compile(&list, "rules")
    }

    #[test]
    fn rules_on_identity_tool_and_arguments() {
        let r = rules(
            r#"
- name: admins-anything
  when: '"admin" in identity.roles'
  action: allow
- name: no-deletes
  when: 'mcp.tool.startsWith("delete_")'
  message: deleting needs the admin role
- name: small-counts
  when: 'mcp.tool == "slow_count" && mcp.arguments.n > 10'
  status: 422
"#,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert!(r.uses_identity && r.uses_mcp && !r.uses_request);
        let req = RequestHeader::build("POST", b"/mcp", None).unwrap_or_else(|e| panic!("{e}"));
        let user = Identity {
            method: AuthMethod::Jwt,
            subject: "u".into(),
            roles: vec!["user".into()],
            scopes: vec![],
            claims: serde_json::json!({"tenant": "t1"}),
        };
        let admin = Identity {
            roles: vec!["admin".into()],
            ..user.clone()
        };
        let check = |body: &str, id: &Identity| {
            let m = inspect(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            r.check(&Facts {
                req: &req,
                client_ip: None,
                identity: Some(id),
                mcp: Some(&m),
            })
        };
        let del =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_user"}}"#;
        match check(del, &user) {
            Err(GatewayError::PolicyDenied {
                rule,
                status,
                message,
            }) => {
                assert_eq!((rule.as_str(), status), ("no-deletes", 403));
                assert_eq!(message, "deleting needs the admin role");
            }
            other => panic!("{other:?}"),
        }
        assert!(check(del, &admin).is_ok());
        let big = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow_count","arguments":{"n":50}}}"#;
        assert!(matches!(
            check(big, &user),
            Err(GatewayError::PolicyDenied { status: 422, .. })
        ));
        let small = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow_count","arguments":{"n":5}}}"#;
        assert!(check(small, &user).is_ok());
        // A batch with one denied message is denied as a whole.
        let batch = format!("[{small},{del}]");
        assert!(check(&batch, &user).is_err());
        // Not a tool call: `mcp.tool` is "" and nothing matches.
        assert!(check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, &user).is_ok());
    }

    #[test]
    fn bad_rules_are_config_errors() {
        let e = rules(
            r#"
- { name: a, when: 'mcp.tool ==' }
- { name: a, when: 'nope.x == 1', status: 500 }
"#,
        )
        .err()
        .unwrap_or_default();
        let paths: Vec<&str> = e.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "rules[0].when",
                "rules[1].name",
                "rules[1].status",
                "rules[1].when"
            ],
            "{e:?}"
        );
    }

    #[test]
    fn has_size_and_whole_variables_work_through_the_resolver() {
        let r = rules(
            r#"
- name: limit
  when: 'has(mcp.arguments.limit) && mcp.arguments.limit > 5 && size(identity.roles) == 0 && size(mcp) > 3'
"#,
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        let req = RequestHeader::build("POST", b"/mcp", None).unwrap_or_else(|e| panic!("{e}"));
        let check = |body: &str| {
            let m = inspect(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            r.check(&Facts {
                req: &req,
                client_ip: None,
                identity: None,
                mcp: Some(&m),
            })
        };
        assert!(check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"limit":9}}}"#).is_err());
        assert!(check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"limit":2}}}"#).is_ok());
        assert!(check(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{}}}"#
        )
        .is_ok());
    }

    #[test]
    fn every_field_of_identity_and_mcp_is_readable() {
        // Each rule denies when its condition holds, and the request below satisfies each.
        let conditions = [
            r#"identity.authenticated && identity.subject == "u" && identity.method == "jwt""#,
            r#"identity.claims.tenant == "t1" && identity.claims.nested.level == 2u"#,
            r#""read" in identity.scopes && size(identity.roles) == 1 && identity.roles[0] == "user""#,
            r#"mcp.method == "tools/call" && mcp.tool == "search" && mcp.resource == """#,
            r#"mcp.arguments.q == "x" && mcp.meta.progressToken == 7u && !mcp.batch"#,
            r#"mcp.session == "s-1" && mcp.protocol_version == "2025-06-18""#,
            r#""arguments" in mcp && size(identity) == 6 && identity.claims.size() == 2"#,
            r#"request.method == "POST" && request.headers["mcp-session-id"] == "s-1""#,
            // A repeated header holds every value; one that is not text is still present.
            r#"request.headers["x-env"] == "dev, prod" && "x-debug" in request.headers"#,
        ];
        let req = {
            let mut r =
                RequestHeader::build("POST", b"/mcp", None).unwrap_or_else(|e| panic!("{e}"));
            r.insert_header("mcp-session-id", "s-1")
                .unwrap_or_else(|e| panic!("{e}"));
            r.insert_header("mcp-protocol-version", "2025-06-18")
                .unwrap_or_else(|e| panic!("{e}"));
            r.append_header("x-env", "dev")
                .unwrap_or_else(|e| panic!("{e}"));
            r.append_header("x-env", "prod")
                .unwrap_or_else(|e| panic!("{e}"));
            let odd = http::HeaderValue::from_bytes(b"\xff").unwrap_or_else(|e| panic!("{e}"));
            r.insert_header("x-debug", odd)
                .unwrap_or_else(|e| panic!("{e}"));
            r
        };
        let id = Identity {
            method: AuthMethod::Jwt,
            subject: "u".into(),
            roles: vec!["user".into()],
            scopes: vec!["read".into()],
            claims: serde_json::json!({"tenant": "t1", "nested": {"level": 2}}),
        };
        let m = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"},"_meta":{"progressToken":7}}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        // True, not failing (a failing rule denies too): the rule denies, its negation does not.
        let holds = |when: &str, identity: Option<&Identity>, mcp: Option<&Inspected>| {
            let facts = Facts {
                req: &req,
                client_ip: None,
                identity,
                mcp,
            };
            let check = |w: &str| {
                rules(&format!("- {{ name: r, when: '{w}' }}"))
                    .unwrap_or_else(|p| panic!("{p:?}"))
                    .check(&facts)
            };
            let (yes, no) = (check(when), check(&format!("!({when})")));
            assert!(
                matches!(yes, Err(GatewayError::PolicyDenied { .. })) && no.is_ok(),
                "{when}: {yes:?} / {no:?}"
            );
        };
        for when in conditions {
            holds(when, Some(&id), Some(&m));
        }
        // Anonymous, with no body: every string is "", every list [] and every map {}.
        holds(
            r#"!identity.authenticated && identity.subject == "" && size(identity.roles) == 0 && size(identity.claims) == 0 && mcp.tool == "" && size(mcp.arguments) == 0 && size(mcp.meta) == 0"#,
            None,
            None,
        );
    }

    #[test]
    fn evaluation_errors_deny() {
        let r = rules("- { name: typed, when: 'mcp.arguments.n > 1' }")
            .unwrap_or_else(|p| panic!("{p:?}"));
        let req = RequestHeader::build("POST", b"/mcp", None).unwrap_or_else(|e| panic!("{e}"));
        let m = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":"str"}}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = r.check(&Facts {
            req: &req,
            client_ip: None,
            identity: None,
            mcp: Some(&m),
        });
        assert!(out.is_err(), "a type error fails closed");
    }
}
