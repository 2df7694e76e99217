use super::*;
use serde_json::json;

fn page_example() -> Value {
    let ep = |m: &str| {
        json!({
            "endpoint": "/mcp",
            "method": m,
            "output_encoding": "no-op",
            "input_headers": ["HeaderNeededByYourMCP"],
            "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"]}]
        })
    };
    json!({"version": 3, "port": 8080, "timeout": "2s", "endpoints": [ep("POST"), ep("GET"), ep("DELETE")]})
}

#[test]
fn detects_krakend_files_only() {
    assert!(is_krakend(&page_example()));
    assert!(is_krakend(
        &json!({"endpoints": [{"endpoint": "/a", "backend": []}]})
    ));
    assert!(!is_krakend(
        &json!({"listen": "127.0.0.1:1", "endpoints": [{"path": "/mcp", "backend": {"hosts": []}}]})
    ));
    assert!(!is_krakend(&json!([1, 2])));
}

#[test]
fn the_page_example_becomes_three_endpoints_on_one_path() {
    let t = translate(&page_example());
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let c = &t.config;
    assert_eq!(c["listen"], json!("0.0.0.0:8080"));
    let eps = c["endpoints"].as_array().expect("endpoints");
    assert_eq!(eps.len(), 3);
    for (ep, m) in eps.iter().zip(["POST", "GET", "DELETE"]) {
        assert_eq!(ep["path"], json!("/mcp"));
        assert_eq!(ep["methods"], json!([m]));
        assert_eq!(ep["backend"]["hosts"], json!(["http://127.0.0.1:3000"]));
        assert_eq!(ep["backend"]["path"], json!("/mcp"));
        assert_eq!(ep["backend"]["idle_timeout"], json!("2s"));
        let headers = ep["input_headers"].as_array().expect("input_headers");
        assert_eq!(headers[0], json!("HeaderNeededByYourMCP"));
        assert!(headers.contains(&json!("Mcp-Session-Id")), "{headers:?}");
    }
    let text = serde_json::to_string(&page_example()).expect("json");
    let cfg = crate::runtime::load::load_str(&text, true, "krakend.json").expect("valid");
    assert_eq!(cfg.endpoints.len(), 3);
}

#[test]
fn namespaces_map_to_policies() {
    let v = json!({
        "version": 3,
        "extra_config": {
            "security/cors": {"allow_origins": ["https://app.example.com"], "max_age": "12h"},
            "telemetry/opentelemetry": {"service_name": "gw", "exporters": {
                "otlp": [{"name": "o", "host": "127.0.0.1", "port": 4318, "use_http": true}],
                "prometheus": [{"name": "p", "port": 9091, "listen_ip": "127.0.0.1"}]}},
            "telemetry/logging": {"level": "DEBUG"}
        },
        "endpoints": [{
            "endpoint": "/mcp", "method": "POST",
            "extra_config": {
                "auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks", "roles": ["admin"], "roles_key": "realm_access.roles", "propagate_claims": [["sub", "X-User"]], "issuer": "https://idp/"},
                "qos/ratelimit/router": {"max_rate": 0.5, "client_max_rate": 10, "every": "1m", "strategy": "header", "key": "X-Tenant"},
                "modifier/martian": {"fifo.Group": {"scope": ["request", "response"], "modifiers": [
                    {"header.Modifier": {"scope": ["request"], "name": "X-Api", "value": "v"}},
                    {"header.Blacklist": {"scope": ["response"], "names": ["Server"]}}]}},
                "validation/cel": [{"check_expr": "req_headers['X-Role'][0] == 'admin' && 'X-Tenant' in req_headers"}]
            },
            "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"], "extra_config": {
                "qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 3}}}]
        }]
    });
    let t = translate(&v);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert_eq!(t.warnings[0].path, "extra_config.telemetry/logging");
    let c = &t.config;
    assert_eq!(c["admin"], json!("127.0.0.1:9091"));
    assert_eq!(
        c["tracing"]["endpoint"],
        json!("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(
        c["policies"]["cors"]["allowed_origins"],
        json!(["https://app.example.com"])
    );
    let p = &c["endpoints"][0]["policies"];
    assert_eq!(p["auth"]["jwt"]["roles_claim"], json!("realm_access.roles"));
    assert_eq!(
        p["auth"]["jwt"]["propagate_claims"],
        json!({"sub": "X-User"})
    );
    assert_eq!(p["auth"]["jwt"]["audience_check"], json!(false));
    assert_eq!(
        p["rate_limits"][0],
        json!({"name": "endpoint", "key": "endpoint", "requests": 1, "period": "120s"})
    );
    assert_eq!(p["rate_limits"][1]["key"], json!({"header": "X-Tenant"}));
    assert_eq!(
        p["request_headers"],
        json!([{"set": {"name": "X-Api", "value": "v"}}])
    );
    assert_eq!(p["response_headers"], json!([{"remove": "Server"}]));
    assert_eq!(
        p["rules"][0]["when"],
        json!("!(request.headers[\"x-role\"] == 'admin' && \"x-tenant\" in request.headers)")
    );
    assert_eq!(
        c["endpoints"][0]["backend"]["circuit_breaker"],
        json!({"consecutive_failures": 3, "open_for": "10s", "failure_statuses": []})
    );
    let text = serde_json::to_string(&v).expect("json");
    crate::runtime::load::load_str(&text, true, "k.json").expect("valid as mcpgate config");
}

#[test]
fn unsupported_security_settings_are_errors_with_paths() {
    let v = json!({
        "version": 3,
        "extra_config": {"security/bot-detector": {"deny": ["a"]}},
        "endpoints": [{
            "endpoint": "/mcp/{id}", "method": "POST",
            "extra_config": {
                "auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks", "cookie_key": "tok", "audience": ["a", "b"]},
                "validation/cel": [{"check_expr": "req_params.id == '1'"}, {"check_expr": "hasHeader('x')"}],
                "modifier/martian": {"body.Modifier": {"scope": ["request"], "body": "e30="}},
                "auth/whatever": {}
            },
            "backend": [{"url_pattern": "/mcp", "host": ["http://127.0.0.1:3000"]}, {"url_pattern": "/b", "host": ["http://127.0.0.1:3001"]}]
        }]
    });
    let t = translate(&v);
    let paths: Vec<&str> = t.errors.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "extra_config.security/bot-detector",
        "endpoints[0].endpoint",
        "endpoints[0].extra_config.auth/validator.cookie_key",
        "endpoints[0].extra_config.auth/validator.audience",
        "endpoints[0].extra_config.validation/cel[0].check_expr",
        "endpoints[0].extra_config.validation/cel[1].check_expr",
        "endpoints[0].extra_config.modifier/martian.body.Modifier",
        "endpoints[0].extra_config.auth/whatever",
        "endpoints[0].backend",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    let text = serde_json::to_string(&v).expect("json");
    let e = crate::runtime::load::load_str(&text, true, "k.json").expect_err("refused");
    assert!(
        e.to_string()
            .contains("endpoints[0].extra_config.auth/validator.cookie_key"),
        "{e}"
    );
}

#[test]
fn cel_rewrites() {
    let mut cx = Cx::default();
    let r = |e: &str, cx: &mut Cx| cel::rewrite(e, "x", &mut cel::Used::default(), cx);
    assert_eq!(
        r("req_method == 'POST'", &mut cx).as_deref(),
        Some("request.method == 'POST'")
    );
    assert_eq!(
        r(
            "JWT.sub.startsWith(\"u-\") && req_querystring['q'][0] == \"1\"",
            &mut cx
        )
        .as_deref(),
        Some("identity.claims.sub.startsWith(\"u-\") && request.query[\"q\"] == \"1\"")
    );
    assert_eq!(
        r(
            "JWT.roles.exists(r, r == 'a') && req_path.matches('^/mcp')",
            &mut cx
        )
        .as_deref(),
        Some("identity.claims.roles.exists(r, r == 'a') && request.path.matches('^/mcp')")
    );
    assert!(cx.errors.is_empty(), "{:?}", cx.errors);
    for bad in [
        "now > 1",
        "resp_status == 200",
        "geoIP(req_headers) == 1",
        "req_headers.size() > 0",
        "'a",
    ] {
        let mut cx = Cx::default();
        assert!(r(bad, &mut cx).is_none(), "{bad}");
        assert!(!cx.errors.is_empty(), "{bad}");
    }
}

#[test]
fn durations_in_krakend_form() {
    assert_eq!(duration("2s").as_deref(), Some("2s"));
    assert_eq!(duration("1.5s").as_deref(), Some("1500ms"));
    assert_eq!(duration("1h30m").as_deref(), Some("1h30m"));
    assert_eq!(duration("10x"), None);
    assert_eq!(duration(""), None);
}

#[test]
fn convert_output_is_a_valid_mcpgate_config() {
    let t = translate(&page_example());
    let yaml = to_commented_yaml(&t.config, &t.notes);
    assert!(yaml.contains("# from KrakenD's timeout"), "{yaml}");
    let cfg =
        crate::runtime::load::load_str(&yaml, false, "converted.yaml").expect("valid YAML config");
    assert_eq!(cfg.endpoints.len(), 3);
    assert_eq!(cfg.endpoints[1].methods, Some(vec!["GET".to_string()]));
}
