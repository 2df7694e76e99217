//! The admin listener's changing requests (`POST /reload`, `POST /tools/accept`): with an
//! `admin_token` they need it as a bearer token; reading endpoints stay open.

use crate::support::{run_cli, temp_file, Gateway};
use crate::upstreams::recording;

#[tokio::test]
async fn changing_requests_need_the_admin_token() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "admin_token: s3cret-admin-token-0123\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let reload = |auth: Option<&'static str>| {
        let mut req = client.post(format!("{}/reload", gw.admin));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some("s3cret-admin-token-0123"),
    ] {
        let resp = reload(auth).await.expect("POST /reload");
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"mcpgate-admin\""
        );
    }
    let resp = client
        .post(format!("{}/tools/accept?endpoint=/mcp&tool=x", gw.admin))
        .send()
        .await
        .expect("POST /tools/accept");
    assert_eq!(resp.status(), 401);
    let resp = reload(Some("Bearer s3cret-admin-token-0123"))
        .await
        .expect("reload");
    assert_eq!(resp.status(), 200);
    let status = reqwest::get(format!("{}/metrics", gw.admin))
        .await
        .expect("metrics")
        .status();
    assert_eq!(status, 200, "reading stays open");

    let dir = tempfile::tempdir().expect("tempdir");
    let conf = temp_file(
        &dir,
        "short.yaml",
        "listen: 127.0.0.1:8080\nadmin_token: short\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n",
    );
    let (code, _, err) = run_cli(&["-c", conf.to_str().unwrap_or_default(), "-t"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("admin_token: must be at least 16 characters"),
        "{err}"
    );
}
