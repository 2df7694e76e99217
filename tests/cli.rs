//! `mcpgate -t`, `mcpgate schema` and config errors.

use crate::support::{run_cli, temp_file};

#[test]
fn minimal_config_from_the_issue_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "min.yaml",
        "listen: 127.0.0.1:8080\nadmin: 127.0.0.1:9090\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n",
    );
    let (code, out, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn example_config_is_valid() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/mcpgate.yaml");
    let (code, out, err) = run_cli(&["-c", conf, "-t"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
}

#[test]
fn every_example_config_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (code, out, err) = run_cli(&["-c", path.to_str().unwrap(), "-t"]);
        assert_eq!(code, 0, "{}: {out}{err}", path.display());
        checked += 1;
    }
    assert!(checked >= 1);
}

#[test]
fn hash_key_prints_the_sha256() {
    let (code, out, _) = run_cli(&["hash-key", "abc"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (code, out, err) = run_cli(&["generate-key"]);
    assert_eq!(code, 0);
    assert!(
        out.trim().starts_with("mcpk_") && err.contains("sha256: "),
        "{out} {err}"
    );
}

#[test]
fn json_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "c.json",
        r#"{"listen": "127.0.0.1:8080", "endpoints": [{"path": "/mcp", "backend": {"hosts": ["http://127.0.0.1:3000"]}}]}"#,
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_config_lists_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "bad.yaml",
        r#"
listen: 127.0.0.1:99999
admin: nowhere
unknown_top: 1
endpoints:
  - path: /mcp
    methods: [POST, FETCH]
    backend:
      hosts: [http://127.0.0.1:3000]
      idle_timeout: forever
  - path: /other
    backend:
      hosts: [http://127.0.0.1:3000, "htp:/x"]
      tls: {verify: maybe}
"#,
    );
    let (code, out, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    for expected in ["unknown_top", "endpoints[1].backend.tls.verify"] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The structurally valid endpoint is still checked in depth.
    assert!(
        err.contains("endpoints[0].methods[1]: unknown method \"FETCH\""),
        "{err}"
    );
    assert!(
        err.contains("endpoints[0].backend.idle_timeout: invalid duration \"forever\""),
        "{err}"
    );
}

#[test]
fn semantic_problems_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "bad.yaml",
        r#"
listen: 127.0.0.1:99999
admin: nowhere
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:3000, "htp:/x"]
  - path: mcp
    backend:
      hosts: []
      connect_timeout: 5
"#,
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 2, "{err}");
    for expected in [
        "listen: invalid address \"127.0.0.1:99999\"",
        "admin: invalid address \"nowhere\"",
        "endpoints[0].backend.hosts[1]: invalid URL \"htp:/x\"",
        "endpoints[1].path: \"mcp\" must be an absolute path",
        "endpoints[1].backend.hosts: at least one host is needed",
        "endpoints[1].backend.connect_timeout: expected string, found 5",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("6 problems"), "{err}");
}

#[test]
fn missing_env_var_and_unreadable_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "env.yaml",
        "listen: ${MCPGATE_TEST_SURELY_UNSET}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n",
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("listen: environment variable MCPGATE_TEST_SURELY_UNSET is not set"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["-c", "/nonexistent/mcpgate.yaml", "-t"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the file"), "{err}");
}

#[test]
fn schema_is_printed_and_describes_the_config() {
    let (code, out, err) = run_cli(&["schema"]);
    assert_eq!(code, 0, "{err}");
    let schema: serde_json::Value = serde_json::from_str(&out).expect("schema is JSON");
    assert!(schema["properties"]["endpoints"].is_object(), "{schema}");
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn traffic_settings_problems_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "traffic.yaml",
        r#"listen: 127.0.0.1:8080
sessions: { key: short }
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:3000, http://127.0.0.1:3001]
      circuit_breaker: { failure_ratio: 2, failure_statuses: [700] }
    policies:
      rate_limits:
        - { name: a, requests: 0, period: 100ms, store: redis }
        - { name: a, requests: 1, period: 1s, key: { header: "bad header" } }
      concurrency:
        - { name: c }
"#,
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 2, "{err}");
    for path in [
        "sessions.key:",
        "endpoints[0].policies.rate_limits[0].requests:",
        "endpoints[0].policies.rate_limits[0].period: must be at least 1s",
        "endpoints[0].policies.rate_limits[0].store:",
        "endpoints[0].policies.rate_limits[1].name: \"a\" is used twice",
        "endpoints[0].policies.rate_limits[1].key.header:",
        "endpoints[0].policies.concurrency[0]: set max_requests",
        "endpoints[0].backend.circuit_breaker.failure_ratio:",
        "endpoints[0].backend.circuit_breaker.failure_statuses[0]:",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    assert!(err.contains("9 problems"), "{err}");
}

#[test]
fn backend_path_that_is_not_a_uri_path_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let conf = temp_file(
        &dir,
        "bad.yaml",
        r#"
listen: 127.0.0.1:8080
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:3000]
      path: "/m<x>"
  - path: /ok
    backend:
      hosts: [http://127.0.0.1:3000]
      path: /v1/mcp
"#,
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap(), "-t"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("endpoints[0].backend.path: \"/m<x>\" is not a valid URI path"),
        "{err}"
    );
    assert!(err.contains("1 problem"), "{err}");
}
