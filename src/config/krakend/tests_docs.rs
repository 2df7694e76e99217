//! The translation against KrakenD's documented fields and behaviour (its JSON schema v2.12 and
//! the sources of krakend-jose, krakend-ratelimit and krakend-cel): each test names what
//! KrakenD does and checks that mcpgate's config means the same, or that the file is refused.

use super::*;
use serde_json::json;

/// A KrakenD file with one POST endpoint on `/mcp` carrying `extra` (endpoint extra_config),
/// `backend_extra` and service-level `service`.
fn file(service: Value, extra: Value, backend_extra: Value) -> Value {
    json!({
        "version": 3,
        "extra_config": service,
        "endpoints": [{
            "endpoint": "/mcp", "method": "POST", "output_encoding": "no-op",
            "extra_config": extra,
            "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"], "extra_config": backend_extra}]
        }]
    })
}

fn endpoint_only(extra: Value) -> Translation {
    translate(&file(json!({}), extra, json!({})))
}

fn paths(p: &[Problem]) -> Vec<&str> {
    p.iter().map(|p| p.path.as_str()).collect()
}

const EP: &str = "endpoints[0].extra_config";

#[test]
fn rate_limits_are_token_buckets_as_sliding_windows() {
    // (settings, expected endpoint limit): capacity defaults to the rate per second, at least 1;
    // `every` below 1s counts as 1s; a period under 1s is stretched with as many more requests.
    for (rl, want) in [
        (
            json!({"max_rate": 50}),
            json!({"requests": 50, "period": "1s"}),
        ),
        (
            json!({"max_rate": 2, "every": "1m"}),
            json!({"requests": 1, "period": "30s"}),
        ),
        (
            json!({"max_rate": 2, "every": "1m", "capacity": 2}),
            json!({"requests": 2, "period": "60s"}),
        ),
        (
            json!({"max_rate": 1000, "every": "1h", "capacity": 100}),
            json!({"requests": 100, "period": "360s"}),
        ),
        (
            json!({"max_rate": 2.5}),
            json!({"requests": 4, "period": "1600ms"}),
        ),
        (
            json!({"max_rate": 5, "every": "100ms"}),
            json!({"requests": 5, "period": "1s"}),
        ),
    ] {
        let t = endpoint_only(json!({ "qos/ratelimit/router": rl }));
        assert!(t.errors.is_empty(), "{rl}: {:?}", t.errors);
        let l = &t.config["endpoints"][0]["policies"]["rate_limits"][0];
        assert_eq!(l["key"], json!("endpoint"), "{rl}");
        assert_eq!(
            json!({"requests": l["requests"], "period": l["period"]}),
            want,
            "{rl}"
        );
    }
    let t = endpoint_only(json!({"qos/ratelimit/router": {"max_rate": 5, "every": "100ms"}}));
    assert_eq!(
        paths(&t.warnings),
        [format!("{EP}.qos/ratelimit/router.every")]
    );
}

#[test]
fn client_rate_limit_strategies_follow_krakend() {
    let limit = |rl: Value| {
        let t = endpoint_only(json!({ "qos/ratelimit/router": rl }));
        let l = t.config["endpoints"][0]["policies"]["rate_limits"]
            .get(0)
            .cloned();
        (l, t)
    };
    let (l, t) = limit(json!({"client_max_rate": 10, "strategy": "ip"}));
    assert!(t.errors.is_empty() && t.warnings.is_empty());
    let l = l.expect("limit");
    assert_eq!(l["key"], json!("client_ip"));
    assert_eq!(
        l.get("on_missing_key"),
        None,
        "KrakenD refuses a missing key"
    );
    let (l, _) = limit(json!({"client_max_rate": 10, "strategy": "IP", "key": "X-Real-IP"}));
    let l = l.expect("limit");
    assert_eq!(l["key"], json!({"header": "X-Real-IP"}));
    assert_eq!(l["on_missing_key"], json!("shared"));
    let (l, _) = limit(json!({"client_max_rate": 10, "strategy": "header", "key": "X-Tenant"}));
    assert_eq!(l.expect("limit")["key"], json!({"header": "X-Tenant"}));
    // No strategy: KrakenD skips the client limit; mcpgate limits per address and warns.
    let (l, t) = limit(json!({"client_max_rate": 10}));
    assert_eq!(l.expect("limit")["key"], json!("client_ip"));
    assert_eq!(
        paths(&t.warnings),
        [format!("{EP}.qos/ratelimit/router.strategy")]
    );
    for (rl, at) in [
        (json!({"client_max_rate": 1, "strategy": "header"}), "key"),
        (
            json!({"client_max_rate": 1, "strategy": "param", "key": "id"}),
            "strategy",
        ),
        (
            json!({"client_max_rate": 1, "strategy": "jwt", "key": "sub"}),
            "strategy",
        ),
        (json!({"max_rate": 1, "capacity": "2"}), "capacity"),
        (json!({"max_rate": 1, "every": "soon"}), "every"),
    ] {
        let (l, t) = limit(rl.clone());
        assert!(
            paths(&t.errors).contains(&format!("{EP}.qos/ratelimit/router.{at}").as_str()),
            "{rl}: {:?}",
            t.errors
        );
        if at != "capacity" && at != "every" {
            assert!(l.is_none(), "{rl}");
        }
    }
}

#[test]
fn redis_limits_use_the_named_pool_and_refuse_when_redis_fails() {
    let pools = json!({"redis": {"connection_pools": [
        {"name": "main", "address": "127.0.0.1:6379", "user_name": "u", "password": "p", "db": 2, "client_name": "gw"}
    ]}});
    for (rl, on_error) in [
        (json!({"connection_name": "main", "max_rate": 10}), "deny"),
        (
            json!({"connection_pool": "main", "max_rate": 10, "on_failure_allow": true}),
            "allow",
        ),
    ] {
        let t = translate(&file(
            pools.clone(),
            json!({ "qos/ratelimit/router/redis": rl }),
            json!({}),
        ));
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(
            t.config["redis"],
            json!({"url": "redis://u:p@127.0.0.1:6379/2", "on_error": on_error})
        );
        let l = &t.config["endpoints"][0]["policies"]["rate_limits"][0];
        assert_eq!(l["store"], json!("redis"));
        assert_eq!(l["name"], json!("endpoint-redis"));
    }
    let t = translate(&file(
        pools,
        json!({"qos/ratelimit/router/redis": {"connection_name": "other", "max_rate": 1}}),
        json!({}),
    ));
    assert!(paths(&t.errors)
        .contains(&format!("{EP}.qos/ratelimit/router/redis.connection_name").as_str()));
}

#[test]
fn the_ip_filter_is_krakends_ip_filter_plugin() {
    let cfg = json!({"CIDR": ["10.0.0.0/8"], "allow": true, "client_ip_headers": ["X-Real-IP"], "trusted_proxies": ["192.168.0.0/16"]});
    for plugin in [
        json!({"name": ["ip-filter"], "ip-filter": cfg}),
        json!({"plugins": [{"name": "ip-filter", "config": cfg}]}),
    ] {
        let t = translate(&file(
            json!({ "plugin/http-server": plugin }),
            json!({}),
            json!({}),
        ));
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(
            t.config["policies"]["ip_filter"],
            json!({"allow": ["10.0.0.0/8"]})
        );
        assert_eq!(
            t.config["client_address"],
            json!({"trusted_proxies": ["192.168.0.0/16"], "header": "X-Real-IP"})
        );
    }
    // Deny mode is the default; at an endpoint the plugin sits in plugin/req-resp-modifier.
    let t = endpoint_only(
        json!({"plugin/req-resp-modifier": {"name": ["ip-filter"], "ip-filter": {"CIDR": ["1.2.3.4/32"]}}}),
    );
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(
        t.config["endpoints"][0]["policies"]["ip_filter"],
        json!({"deny": ["1.2.3.4/32"]})
    );
    // Other plugins, the invented `security/ipfilter`, an empty CIDR list: refused.
    let t = translate(&file(
        json!({"plugin/http-server": {"name": ["ip-filter", "url-rewrite"], "ip-filter": {"CIDR": [], "allow": true}},
               "security/ipfilter": {"CIDR": ["1.2.3.4/32"]}}),
        json!({}),
        json!({}),
    ));
    let p = paths(&t.errors);
    for want in [
        "extra_config.plugin/http-server.name[1]",
        "extra_config.plugin/http-server.ip-filter.CIDR",
        "extra_config.security/ipfilter",
    ] {
        assert!(p.contains(&want), "{want} not in {p:?}");
    }
}

#[test]
fn max_payload_is_routers_at_the_service_and_proxys_at_an_endpoint() {
    let t = translate(&file(
        json!({"router": {"max_payload": 4096, "forwarded_by_client_ip": true, "remote_ip_headers": ["X-Forwarded-For"], "trusted_proxies": ["10.0.0.0/8"], "return_error_msg": true}}),
        json!({"proxy": {"max_payload": 1024}}),
        json!({}),
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.config["policies"]["limits"], json!({"max_body": 4096}));
    assert_eq!(
        t.config["endpoints"][0]["policies"]["limits"],
        json!({"max_body": 1024})
    );
    assert_eq!(
        t.config["client_address"],
        json!({"trusted_proxies": ["10.0.0.0/8"], "header": "X-Forwarded-For"})
    );
    assert_eq!(paths(&t.warnings), ["extra_config.router.return_error_msg"]);
    // An endpoint limit above the service's never applies in KrakenD.
    let t = translate(&file(
        json!({"router": {"max_payload": 100}}),
        json!({"proxy": {"max_payload": 1000}}),
        json!({}),
    ));
    assert_eq!(
        t.config["endpoints"][0]["policies"]["limits"],
        json!({"max_body": 100})
    );
    // There is no `router` namespace at an endpoint.
    let t = endpoint_only(json!({"router": {"max_payload": 10}}));
    assert_eq!(paths(&t.errors), [format!("{EP}.router")]);
}

#[test]
fn jwt_fields_as_krakend_reads_them() {
    let jwt = |extra: Value| {
        let mut v = json!({"alg": "RS256", "jwk_url": "https://idp.example.com/jwks"});
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        let t = endpoint_only(json!({ "auth/validator": v }));
        let j = t.config["endpoints"][0]["policies"]["auth"]["jwt"].clone();
        (j, t)
    };
    let (j, t) = jwt(json!({}));
    assert!(
        t.errors.is_empty() && t.warnings.is_empty(),
        "{:?}",
        t.errors
    );
    assert_eq!(j["leeway"], json!("1s"), "KrakenD's default leeway");
    let (j, t) = jwt(
        json!({"leeway": "2s", "cache": true, "cache_duration": 600, "failed_jwk_key_cooldown": "10s", "key_identify_strategy": "kid", "_note": "x", "#c": 1}),
    );
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(j["leeway"], json!("2s"));
    assert_eq!(j["min_refresh_interval"], json!("10s"));
    assert_eq!(
        paths(&t.warnings),
        [format!("{EP}.auth/validator.cache_duration")]
    );
    // Scopes count only with scopes_key; the matcher defaults to any.
    let (j, t) = jwt(json!({"scopes": ["read"]}));
    assert_eq!(j.get("scopes"), None);
    assert_eq!(paths(&t.warnings), [format!("{EP}.auth/validator.scopes")]);
    let (j, _) = jwt(json!({"scopes": ["read", "write"], "scopes_key": "scope"}));
    assert_eq!(j["scopes"], json!(["read", "write"]));
    assert_eq!(j["scopes_mode"], json!("any"));
    for (bad, at) in [
        (json!({"leeway": 5}), "leeway"),
        (json!({"cache_duration": "15m"}), "cache_duration"),
        (json!({"cypher_key": "abc"}), "cypher_key"),
        (
            json!({"key_identify_strategy": "x5t"}),
            "key_identify_strategy",
        ),
        (
            json!({"scopes": ["a"], "scopes_key": "data.scopes"}),
            "scopes_key",
        ),
        (json!({"scopes_matcher": "most"}), "scopes_matcher"),
    ] {
        let (_, t) = jwt(bad.clone());
        assert!(
            paths(&t.errors).contains(&format!("{EP}.auth/validator.{at}").as_str()),
            "{bad}: {:?}",
            t.errors
        );
    }
}

#[test]
fn api_keys_answer_401_without_a_role_and_limit_each_key() {
    let service = json!({"auth/api-keys": {"identifier": "X-Api-Key", "keys": [
        {"key": "k-admin", "roles": ["admin"], "@description": "ops"},
        {"key": "k-user", "roles": ["user"]}
    ]}});
    let t = translate(&file(
        service.clone(),
        json!({"auth/api-keys": {"roles": ["admin"], "client_max_rate": 5}}),
        json!({}),
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let p = &t.config["endpoints"][0]["policies"];
    assert_eq!(p["auth"]["api_keys"]["header"], json!("X-Api-Key"));
    assert_eq!(p["auth"]["api_keys"]["keys"][0]["name"], json!("ops"));
    assert_eq!(p["rules"][0]["status"], json!(401));
    assert_eq!(
        p["rate_limits"][0],
        json!({"name": "api-key", "key": "api_key", "requests": 5, "period": "1s"})
    );
    for (extra, at) in [
        (json!({"auth/api-keys": {}}), "auth/api-keys.roles"),
        (
            json!({"auth/api-keys": {"roles": ["a"], "strategy": "query_string"}}),
            "auth/api-keys.strategy",
        ),
    ] {
        let t = translate(&file(service.clone(), extra, json!({})));
        assert!(
            paths(&t.errors).contains(&format!("{EP}.{at}").as_str()),
            "{at}: {:?}",
            t.errors
        );
    }
}

fn rule_statuses(t: &Translation) -> Vec<Value> {
    t.config["endpoints"][0]["policies"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["status"].clone())
        .collect()
}

#[test]
fn cel_checks_refuse_like_krakend_and_jwt_only_where_it_is_validated() {
    let validator = json!({"alg": "RS256", "jwk_url": "https://idp/jwks"});
    let t = endpoint_only(json!({
        "auth/validator": validator,
        "validation/cel": [
            {"check_expr": "req_headers['X-Tenant'][0] == 'acme'"},
            {"check_expr": "JWT.tier == 'gold'"}
        ]
    }));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(rule_statuses(&t), [json!(403), json!(401)]);
    for (extra, backend, why) in [
        (
            json!({"validation/cel": [{"check_expr": "JWT.tier == 'gold'"}]}),
            json!({}),
            "no validator",
        ),
        (
            json!({"auth/validator": validator, "validation/cel": [{"check_expr": "JWT.sub == req_headers['X-User'][0]"}]}),
            json!({}),
            "mixed",
        ),
        (
            json!({"validation/cel": [{"check_expr": "req_headers['x-tenant'][0] == 'a'"}]}),
            json!({}),
            "not canonical",
        ),
        (
            json!({"validation/cel": [{"check_expr": "'x-tenant' in req_headers"}]}),
            json!({}),
            "not canonical (in)",
        ),
        (
            json!({"auth/validator": validator}),
            json!({"validation/cel": [{"check_expr": "JWT.sub == 'a'"}]}),
            "backend",
        ),
    ] {
        let t = translate(&file(json!({}), extra, backend));
        assert!(
            t.errors.iter().any(|p| p.path.ends_with(".check_expr")),
            "{why}: {:?}",
            t.errors
        );
        assert!(
            rule_statuses(&t).is_empty(),
            "{why}: no rule from a refused check"
        );
    }
}

#[test]
fn security_policies_statuses_and_layout() {
    let validator = json!({"alg": "RS256", "jwk_url": "https://idp/jwks"});
    let t = endpoint_only(json!({
        "auth/validator": validator,
        "security/policies": {
            "req": {"policies": ["req_method == 'POST'"]},
            "jwt": {"policies": ["JWT.tier == 'gold'"]},
            "debug": true, "disable_macros": true, "auto_join_policies": true
        }
    }));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    // KrakenD: 500 by default for req (mcpgate refuses with 4xx: 403), 401 for jwt.
    assert_eq!(rule_statuses(&t), [json!(403), json!(401)]);
    let t = endpoint_only(json!({"security/policies": {
        "req": {"policies": ["req_path == '/mcp'"], "error": {"status": 429, "body": "internal detail", "content_type": "text/plain"}}
    }}));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(rule_statuses(&t), [json!(429)]);
    let rule = &t.config["endpoints"][0]["policies"]["rules"][0];
    assert!(
        !rule["message"].to_string().contains("internal detail"),
        "KrakenD logs error.body, it does not send it: {rule}"
    );
    for (sp, at) in [
        (
            json!({"jwt": {"policies": ["JWT.a == 1"]}}),
            "security/policies.jwt",
        ),
        (
            json!({"jwt": {"policies": ["JWT.a == 1"], "error": {"status": 403}}}),
            "security/policies.jwt.error",
        ),
        (
            json!({"resp": {"policies": ["resp_data.a == 1"]}}),
            "security/policies.resp",
        ),
        (json!({"req": {}}), "security/policies.req.policies"),
    ] {
        let t = endpoint_only(json!({ "security/policies": sp }));
        assert!(
            paths(&t.errors).contains(&format!("{EP}.{at}").as_str()),
            "{at}: {:?}",
            t.errors
        );
    }
}

#[test]
fn martian_scopes_are_required_and_groups_narrow_them() {
    let t = translate(&file(
        json!({}),
        json!({}),
        json!({"modifier/martian": {"fifo.Group": {"scope": ["request"], "aggregateErrors": true, "modifiers": [
            {"header.Modifier": {"scope": ["request", "response"], "name": "X-A", "value": "1"}},
            {"header.Append": {"scope": ["request"], "name": "X-B", "value": "2"}},
            {"header.Copy": {"scope": ["request"], "from": "X-A", "to": "X-C"}},
            {"header.Blacklist": {"scope": ["response"], "names": ["Server"]}}
        ]}}}),
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let p = &t.config["endpoints"][0]["policies"];
    assert_eq!(
        p["request_headers"],
        json!([
            {"set": {"name": "X-A", "value": "1"}},
            {"append": {"name": "X-B", "value": "2"}},
            {"copy": {"from": "X-A", "to": "X-C"}}
        ])
    );
    assert_eq!(
        p.get("response_headers"),
        None,
        "the group runs on requests only"
    );
    let bat = "endpoints[0].backend[0].extra_config.modifier/martian";
    for (m, at) in [
        (
            json!({"header.Modifier": {"name": "X-A", "value": "1"}}),
            "header.Modifier.scope",
        ),
        (
            json!({"header.Modifier": {"scope": ["request"], "value": "1"}}),
            "header.Modifier.name",
        ),
        (
            json!({"header.Modifier": {"scope": ["everywhere"], "name": "X", "value": "1"}}),
            "header.Modifier.scope",
        ),
        (
            json!({"fifo.Group": {"scope": ["request"]}}),
            "fifo.Group.modifiers",
        ),
    ] {
        let t = translate(&file(
            json!({}),
            json!({}),
            json!({ "modifier/martian": m }),
        ));
        assert!(
            paths(&t.errors).contains(&format!("{bat}.{at}").as_str()),
            "{at}: {:?}",
            t.errors
        );
    }
}

#[test]
fn circuit_breaker_counts_connection_errors_only_and_needs_its_fields() {
    let at = "endpoints[0].backend[0].extra_config.qos/circuit-breaker";
    let t = translate(&file(
        json!({}),
        json!({}),
        json!({"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 3, "name": "cb", "log_status_change": true}}),
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(
        t.config["endpoints"][0]["backend"]["circuit_breaker"]["failure_statuses"],
        json!([])
    );
    let t = translate(&file(
        json!({}),
        json!({}),
        json!({"qos/circuit-breaker": {"max_errors": 3}}),
    ));
    let p = paths(&t.errors);
    for k in ["interval", "timeout"] {
        assert!(p.contains(&format!("{at}.{k}").as_str()), "{k}: {p:?}");
    }
}

#[test]
fn telemetry_ports_names_and_disabled_exporters() {
    let mut v = file(
        json!({"telemetry/opentelemetry": {"exporters": {
            "otlp": [{"name": "o", "host": "collector", "use_http": true}],
            "prometheus": [{"name": "p", "port": 9100, "disable_metrics": true}]
        }, "histograms": {}, "layers": {"global": {}}}}),
        json!({}),
        json!({}),
    );
    v["name"] = json!("my-gateway");
    let t = translate(&v);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(
        t.config["tracing"],
        json!({"endpoint": "http://collector:4318/v1/traces", "service_name": "my-gateway"})
    );
    assert_eq!(
        t.config.get("admin"),
        None,
        "a disabled exporter serves nothing"
    );
    assert_eq!(
        paths(&t.warnings),
        ["extra_config.telemetry/opentelemetry.layers"]
    );
}

#[test]
fn basic_users_override_the_htpasswd_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_path = dir.path().join("htpasswd");
    std::fs::write(
        &file_path,
        "# comment\nalice:$2y$05$fromfile\nbob:$2y$05$bobfile\n",
    )
    .expect("write");
    let t = translate(&file(
        json!({"auth/basic": {"htpasswd_path": file_path.to_str(), "users": {"alice": "$2y$05$fromconfig"}}}),
        json!({"auth/basic": {}}),
        json!({}),
    ));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let users = &t.config["endpoints"][0]["policies"]["auth"]["basic"]["users"];
    assert_eq!(
        *users,
        json!([{"name": "bob", "bcrypt": "$2y$05$bobfile"}, {"name": "alice", "bcrypt": "$2y$05$fromconfig"}])
    );
}

#[test]
fn a_backends_input_headers_narrow_its_endpoints() {
    let mut v = file(json!({}), json!({}), json!({}));
    v["endpoints"][0]["input_headers"] = json!(["Authorization", "X-Tenant", "X-Other"]);
    v["endpoints"][0]["backend"][0]["input_headers"] = json!(["X-Tenant", "X-Unlisted"]);
    let t = translate(&v);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let h = t.config["endpoints"][0]["input_headers"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(h[0], json!("X-Tenant"));
    for gone in ["Authorization", "X-Other", "X-Unlisted"] {
        assert!(!h.contains(&json!(gone)), "{gone} in {h:?}");
    }
    assert!(h.contains(&json!("Mcp-Session-Id")), "{h:?}");
}

#[test]
fn every_translation_here_loads_as_an_mcpgate_config() {
    let v = file(
        json!({"router": {"max_payload": 4096}, "plugin/http-server": {"name": ["ip-filter"], "ip-filter": {"CIDR": ["127.0.0.1/32"], "allow": true}}}),
        json!({
            "auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks", "scopes": ["a"], "scopes_key": "scp"},
            "qos/ratelimit/router": {"max_rate": 2.5, "client_max_rate": 1, "strategy": "ip", "key": "X-Real-IP", "every": "10s"},
            "security/policies": {"req": {"policies": ["req_method == 'POST'"]}, "jwt": {"policies": ["JWT.a == 'b'"]}},
            "proxy": {"max_payload": 1024}
        }),
        json!({"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 3}}),
    );
    let t = translate(&v);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let text = serde_json::to_string(&v).expect("json");
    crate::runtime::load::load_str(&text, true, "k.json").expect("valid as mcpgate config");
}
