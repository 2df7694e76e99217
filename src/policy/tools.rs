//! Tool allow and deny lists, per endpoint and per role, by exact name or glob (`*` any run of
//! characters, `?` one character). Deny wins, and matches ASCII letters in any case (allow
//! matches exactly), so a server that looks tool names up case-insensitively cannot be handed a
//! denied tool in another case. A tool is callable when it matches no deny pattern
//! and matches an allow pattern (no `allow` means every tool). A role's lists add to the
//! endpoint's for identities that have the role. A denied `tools/call` never reaches the
//! upstream; `tools/list` answers are filtered so clients do not see tools they may not call.

use crate::config::Problem;
use crate::policy::auth::identity::Identity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `policies.tools:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tools anyone may call (default: all).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Tools nobody may call (wins over every allow).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Per role: more tools allowed (and denied) for identities with that role.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleTools>,
    /// Remove tools the client may not call from `tools/list` answers (default true).
    #[serde(default = "yes")]
    pub filter_list: bool,
}

fn yes() -> bool {
    true
}

/// The lists of one role.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleTools {
    /// Tools this role may call as well.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Tools this role may not call.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob(String);

impl Glob {
    /// A glob from its text.
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.to_string())
    }

    /// Whether `name` matches (`*` any run, `?` one character; everything else literal).
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes(), false)
    }

    /// Like [`Glob::matches`], ASCII letters in any case: how deny patterns match, since a server
    /// that looks tool names up case-insensitively would run `Secret_Dump` as `secret_dump`.
    pub fn matches_any_case(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes(), true)
    }
}

fn glob_match(p: &[u8], s: &[u8], any_case: bool) -> bool {
    // Iterative matcher with backtracking on the last `*`: linear-ish, no recursion.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] || (any_case && c.eq_ignore_ascii_case(&s[si])) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == b'*')
}

#[derive(Debug, Clone, Default)]
struct Lists {
    allow: Option<Vec<Glob>>,
    deny: Vec<Glob>,
}

/// The compiled tool policy of an endpoint.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    base: Lists,
    roles: Vec<(String, Lists)>,
    /// Filter `tools/list` answers.
    pub filter_list: bool,
}

fn globs(list: &[String], at: &str, p: &mut Vec<Problem>) -> Vec<Glob> {
    list.iter()
        .enumerate()
        .filter_map(|(i, g)| {
            if g.is_empty() {
                p.push(Problem::new(format!("{at}[{i}]"), "empty pattern"));
                None
            } else {
                Some(Glob(g.clone()))
            }
        })
        .collect()
}

impl ToolPolicy {
    /// Compiles `tools:`.
    pub fn compile(cfg: &ToolsConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let base = Lists {
            allow: cfg
                .allow
                .as_ref()
                .map(|a| globs(a, &format!("{at}.allow"), &mut p)),
            deny: globs(&cfg.deny, &format!("{at}.deny"), &mut p),
        };
        let roles = cfg
            .roles
            .iter()
            .map(|(role, r)| {
                let here = format!("{at}.roles.{role}");
                let lists = Lists {
                    allow: Some(globs(&r.allow, &format!("{here}.allow"), &mut p)),
                    deny: globs(&r.deny, &format!("{here}.deny"), &mut p),
                };
                (role.clone(), lists)
            })
            .collect();
        if p.is_empty() {
            Ok(ToolPolicy {
                base,
                roles,
                filter_list: cfg.filter_list,
            })
        } else {
            Err(p)
        }
    }

    /// Whether `identity` (if any) may call `tool`.
    pub fn allows(&self, tool: &str, identity: Option<&Identity>) -> bool {
        let roles: Vec<&Lists> = match identity {
            Some(id) => self
                .roles
                .iter()
                .filter(|(r, _)| id.roles.iter().any(|have| have == r))
                .map(|(_, l)| l)
                .collect(),
            None => Vec::new(),
        };
        let denied = self
            .base
            .deny
            .iter()
            .chain(roles.iter().flat_map(|l| &l.deny));
        if denied.into_iter().any(|g| g.matches_any_case(tool)) {
            return false;
        }
        let base_allows = match &self.base.allow {
            None => true,
            Some(list) => list.iter().any(|g| g.matches(tool)),
        };
        base_allows
            || roles
                .iter()
                .any(|l| l.allow.iter().flatten().any(|g| g.matches(tool)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::auth::identity::AuthMethod;

    #[test]
    fn globs_match() {
        for (p, s, m) in [
            ("echo", "echo", true),
            ("echo", "echo2", false),
            ("search_*", "search_web", true),
            ("search_*", "search_", true),
            ("*_admin", "user_admin", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("?cho", "echo", true),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(Glob(p.into()).matches(s), m, "{p} ~ {s}");
        }
        for (p, s, m) in [
            ("secret_*", "SECRET_dump", true),
            ("secret_?ump", "Secret_DUMP", true),
            ("secret_*", "sekret_dump", false),
            ("straße", "STRASSE", false),
        ] {
            assert_eq!(Glob(p.into()).matches_any_case(s), m, "{p} ~ {s}");
            assert!(!Glob(p.into()).matches(s), "{p} ~ {s} exactly");
        }
        // No catastrophic backtracking.
        let long = "a".repeat(5000);
        assert!(!Glob("*a*a*a*a*a*b".into()).matches(&long));
    }

    #[test]
    fn deny_wins_and_roles_add() {
        let cfg: ToolsConfig = serde_json::from_value(serde_json::json!({
            "allow": ["echo", "search_*"],
            "deny": ["search_private"],
            "roles": {"admin": {"allow": ["delete_*"], "deny": ["delete_all"]}}
        }))
        .unwrap_or_default();
        let p = ToolPolicy::compile(&cfg, "tools").unwrap_or_default();
        let admin = Identity {
            method: AuthMethod::ApiKey,
            subject: "ops".into(),
            roles: vec!["admin".into()],
            scopes: vec![],
            claims: serde_json::Value::Null,
        };
        assert!(p.allows("echo", None));
        assert!(p.allows("search_web", None));
        assert!(!p.allows("search_private", Some(&admin)));
        assert!(!p.allows("delete_user", None));
        assert!(p.allows("delete_user", Some(&admin)));
        assert!(!p.allows("delete_all", Some(&admin)));
        assert!(!p.allows("other", Some(&admin)));
        // Deny matches in any letter case; allow only exactly (both fail closed).
        for name in ["SEARCH_PRIVATE", "Search_Private", "search_privatE"] {
            assert!(!p.allows(name, None), "{name}");
        }
        assert!(!p.allows("DELETE_ALL", Some(&admin)));
        assert!(!p.allows("ECHO", None));
        assert!(
            !p.allows("DELETE_user", Some(&admin)),
            "a role's allow is exact too"
        );
    }
}
