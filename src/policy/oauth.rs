//! OAuth 2.1 resource-server behaviour (MCP authorization): RFC 9728 protected-resource metadata,
//! served at `/.well-known/oauth-protected-resource` and
//! `/.well-known/oauth-protected-resource/<endpoint path>`, and the `WWW-Authenticate` challenges
//! of 401 and 403 answers that point clients at it.

use super::auth::identity::AuthError;
use crate::config::Problem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The well-known path prefix of RFC 9728 metadata.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Protected-resource metadata of an endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Authorization servers (issuer URLs) clients get tokens from.
    pub authorization_servers: Vec<String>,
    /// The resource identifier (default: the gateway's `public_url` plus the endpoint path). JWTs
    /// must name it in `aud` unless the JWT settings say otherwise.
    #[serde(default)]
    pub resource: Option<String>,
    /// Scopes advertised (default: the scopes the JWT settings require).
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// A human-readable name.
    #[serde(default)]
    pub resource_name: Option<String>,
    /// A URL of documentation for developers.
    #[serde(default)]
    pub resource_documentation: Option<String>,
}

/// The compiled metadata and challenge builder of an endpoint.
#[derive(Debug, Clone)]
pub struct OAuthMetadata {
    /// The resource identifier.
    pub resource: String,
    /// Where the metadata document is served (absolute URL).
    pub metadata_url: String,
    document: String,
}

fn is_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

impl OAuthMetadata {
    /// Compiles `cfg`; `public_url` is the gateway's base URL, `path` the endpoint's.
    pub fn compile(
        cfg: &OAuthConfig,
        public_url: &str,
        path: &str,
        required_scopes: &[String],
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        if cfg.authorization_servers.is_empty() {
            problems.push(Problem::new(
                format!("{at}.authorization_servers"),
                "list at least one authorization server",
            ));
        }
        for (i, s) in cfg.authorization_servers.iter().enumerate() {
            if !is_url(s) {
                problems.push(Problem::new(
                    format!("{at}.authorization_servers[{i}]"),
                    format!("{s:?} is not an http(s) URL"),
                ));
            }
        }
        for (key, v) in [
            ("resource", &cfg.resource),
            ("resource_documentation", &cfg.resource_documentation),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !is_url(v)) {
                problems.push(Problem::new(
                    format!("{at}.{key}"),
                    format!("{v:?} is not an http(s) URL"),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let base = public_url.trim_end_matches('/');
        let resource = cfg
            .resource
            .clone()
            .unwrap_or_else(|| format!("{base}{path}"));
        let scopes = cfg
            .scopes_supported
            .clone()
            .unwrap_or_else(|| required_scopes.to_vec());
        let mut doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": cfg.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !scopes.is_empty() {
            doc["scopes_supported"] = scopes.into();
        }
        if let Some(n) = &cfg.resource_name {
            doc["resource_name"] = n.clone().into();
        }
        if let Some(d) = &cfg.resource_documentation {
            doc["resource_documentation"] = d.clone().into();
        }
        Ok(OAuthMetadata {
            resource,
            metadata_url: format!("{base}{WELL_KNOWN}{path}"),
            document: doc.to_string(),
        })
    }

    /// The metadata document (JSON).
    pub fn document(&self) -> &str {
        &self.document
    }
}

/// The `WWW-Authenticate` value for an authentication failure.
///
/// `metadata`: the endpoint's RFC 9728 metadata, if configured; `bearer`: whether bearer tokens
/// are accepted; `basic`: the Basic challenge, if Basic is accepted; `api_key_header`: the API-key
/// header, if API keys are accepted; `required_scopes`: what a token needs.
pub fn challenge(
    err: &AuthError,
    metadata: Option<&OAuthMetadata>,
    bearer: bool,
    basic: Option<&str>,
    api_key_header: Option<&str>,
    required_scopes: &[String],
) -> String {
    let mut challenges = Vec::new();
    if bearer || metadata.is_some() {
        let mut params = Vec::new();
        if let Some(m) = metadata {
            params.push(format!("resource_metadata=\"{}\"", m.metadata_url));
        }
        match err {
            AuthError::Missing => {}
            AuthError::InsufficientScope { .. } => {
                params.push("error=\"insufficient_scope\"".into())
            }
            AuthError::Forbidden => params.push("error=\"insufficient_scope\"".into()),
            _ => params.push("error=\"invalid_token\"".into()),
        }
        let scopes: Vec<String> = match err {
            AuthError::InsufficientScope { required } => required.clone(),
            _ => required_scopes.to_vec(),
        };
        if !scopes.is_empty() {
            params.push(format!("scope=\"{}\"", scopes.join(" ")));
        }
        if params.is_empty() {
            challenges.push("Bearer".to_string());
        } else {
            challenges.push(format!("Bearer {}", params.join(", ")));
        }
    }
    if let Some(b) = basic {
        challenges.push(b.to_string());
    }
    if let Some(h) = api_key_header {
        challenges.push(format!("ApiKey header=\"{h}\""));
    }
    challenges.join(", ")
}

/// Rewrites the `resource_metadata` URL of an upstream's `WWW-Authenticate` to `url` (used when
/// the gateway does not authenticate and the upstream does, so clients see one resource).
pub fn rewrite_challenge(value: &str, url: &str) -> Option<String> {
    let key = "resource_metadata=\"";
    let start = value.find(key)? + key.len();
    let end = start + value[start..].find('"')?;
    Some(format!("{}{url}{}", &value[..start], &value[end..]))
}

/// Rewrites the `resource` of an upstream's RFC 9728 document to `resource`; `None` when the
/// body is not a JSON object.
pub fn rewrite_document(body: &[u8], resource: &str) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.as_object_mut()?
        .insert("resource".into(), resource.into());
    serde_json::to_vec(&doc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> OAuthMetadata {
        OAuthMetadata::compile(
            &OAuthConfig {
                authorization_servers: vec!["https://auth.example.com".into()],
                ..Default::default()
            },
            "https://mcp.example.com/",
            "/mcp",
            &["mcp:tools".into()],
            "p",
        )
        .unwrap()
    }

    #[test]
    fn document_and_urls() {
        let m = meta();
        assert_eq!(m.resource, "https://mcp.example.com/mcp");
        assert_eq!(
            m.metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let doc: serde_json::Value = serde_json::from_str(m.document()).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
        assert_eq!(doc["scopes_supported"][0], "mcp:tools");
    }

    #[test]
    fn challenges() {
        let m = meta();
        let none: &[String] = &[];
        assert_eq!(
            challenge(&AuthError::Missing, Some(&m), true, None, None, none),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            challenge(&AuthError::Invalid("expired"), Some(&m), true, None, None, none),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\""
        );
        let c = challenge(
            &AuthError::InsufficientScope {
                required: vec!["a".into(), "b".into()],
            },
            Some(&m),
            true,
            None,
            None,
            none,
        );
        assert!(
            c.ends_with("error=\"insufficient_scope\", scope=\"a b\""),
            "{c}"
        );
        assert_eq!(
            challenge(
                &AuthError::Missing,
                None,
                false,
                Some("Basic realm=\"mcpgate\""),
                Some("X-API-Key"),
                none
            ),
            "Basic realm=\"mcpgate\", ApiKey header=\"X-API-Key\""
        );
    }

    #[test]
    fn upstream_metadata_is_rewritten() {
        let c = rewrite_challenge(
            "Bearer error=\"invalid_token\", resource_metadata=\"http://10.0.0.5:3000/.well-known/oauth-protected-resource/mcp\"",
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp",
        );
        assert_eq!(
            c.as_deref(),
            Some("Bearer error=\"invalid_token\", resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/mcp\"")
        );
        assert_eq!(rewrite_challenge("Bearer", "x"), None);
        let doc = rewrite_document(
            br#"{"resource":"http://10.0.0.5:3000/mcp","authorization_servers":["https://a"]}"#,
            "https://gw/mcp",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["resource"], "https://gw/mcp");
        assert_eq!(v["authorization_servers"][0], "https://a");
        assert!(rewrite_document(b"not json", "x").is_none());
    }

    #[test]
    fn problems_with_paths() {
        let err = OAuthMetadata::compile(
            &OAuthConfig {
                authorization_servers: vec!["not a url".into()],
                resource: Some("x".into()),
                ..Default::default()
            },
            "http://127.0.0.1:8080",
            "/mcp",
            &[],
            "policies.oauth",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "policies.oauth.authorization_servers[0]",
                "policies.oauth.resource"
            ]
        );
    }
}
