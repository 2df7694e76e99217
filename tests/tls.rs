//! TLS: a listener's certificate rotates on reload without a restart (a bad pair is refused and
//! the old one kept), and upstream TLS verifies against a configured CA and presents a client
//! certificate (mTLS) to an upstream that requires one.

use crate::support::Gateway;
use crate::upstreams::recording;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A certificate authority that issues certificates for the tests.
struct Ca {
    cert: X509,
    key: PKey<Private>,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key")
}

fn builder(cn: &str, pubkey: &PKey<Private>) -> openssl::x509::X509Builder {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_pubkey(pubkey).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("time"))
        .expect("na");
    b
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = key();
        let mut b = builder(cn, &key);
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", cn).expect("cn");
        b.set_issuer_name(&name.build()).expect("issuer");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("ext");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        Ca {
            cert: b.build(),
            key,
        }
    }

    /// A certificate for `cn` (valid for 127.0.0.1 and localhost), as (cert PEM, key PEM).
    fn issue(&self, cn: &str, client: bool) -> (Vec<u8>, Vec<u8>) {
        let key = key();
        let mut b = builder(cn, &key);
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&b.x509v3_context(Some(&self.cert), None))
            .expect("san");
        b.append_extension(san).expect("ext");
        let mut eku = ExtendedKeyUsage::new();
        if client {
            eku.client_auth();
        } else {
            eku.server_auth();
        }
        b.append_extension(eku.build().expect("eku")).expect("ext");
        b.sign(&self.key, MessageDigest::sha256()).expect("sign");
        (
            b.build().to_pem().expect("pem"),
            key.private_key_to_pem_pkcs8().expect("pem"),
        )
    }
}

fn write(dir: &tempfile::TempDir, name: &str, pem: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, pem).expect("write pem");
    p
}

/// The common name of the certificate a TLS server at `addr` presents.
fn served_cn(addr: &str, ca: &X509) -> String {
    let mut c = SslConnector::builder(SslMethod::tls()).expect("connector");
    c.cert_store_mut().add_cert(ca.clone()).expect("ca");
    let c = c.build();
    let tcp = TcpStream::connect(addr).expect("connect");
    let tls = c.connect("localhost", tcp).expect("handshake");
    let cert = tls.ssl().peer_certificate().expect("peer cert");
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .expect("cn")
        .data()
        .as_slice()
        .to_vec();
    String::from_utf8(cn).expect("utf8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_certificate_rotates_on_reload() {
    let ca = Ca::new("test ca");
    let dir = tempfile::tempdir().expect("dir");
    let (c1, k1) = ca.issue("first", false);
    let cert = write(&dir, "tls.crt", &c1);
    let keyf = write(&dir, "tls.key", &k1);
    let up = recording("a", 200, "{}").await;
    let tls_port = crate::support::free_port();
    let gw = Gateway::start_with_listen(
        &format!(
            "  - address: 127.0.0.1:{tls_port}\n    tls: {{cert: {}, key: {}}}\n",
            cert.display(),
            keyf.display()
        ),
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    let addr = format!("127.0.0.1:{tls_port}");
    let cn = tokio::task::block_in_place(|| served_cn(&addr, &ca.cert));
    assert_eq!(cn, "first");

    // New files in place, then a reload: new handshakes get the new certificate.
    let (c2, k2) = ca.issue("second", false);
    write(&dir, "tls.crt", &c2);
    write(&dir, "tls.key", &k2);
    let r = gw.reload().await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "reloaded", "{body}");
    assert_eq!(body["restart_required"], serde_json::json!([]), "{body}");
    let cn = tokio::task::block_in_place(|| served_cn(&addr, &ca.cert));
    assert_eq!(cn, "second");

    // A key that does not belong to the certificate is refused; the running pair stays.
    let (c3, _) = ca.issue("third", false);
    let (_, other_key) = ca.issue("other", false);
    write(&dir, "tls.crt", &c3);
    write(&dir, "tls.key", &other_key);
    let r = gw.reload().await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["problems"][0]["path"], "listen[1].tls.key", "{body}");
    let cn = tokio::task::block_in_place(|| served_cn(&addr, &ca.cert));
    assert_eq!(cn, "second");

    // Requests still flow over TLS.
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&ca.cert.to_pem().expect("pem")).expect("ca"),
        )
        .build()
        .expect("client");
    let r = https
        .post(format!("https://localhost:{tls_port}/mcp"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST over TLS");
    assert_eq!(r.status(), 200);
}

/// A TLS upstream that requires a client certificate issued by `client_ca`; it answers each
/// request with the client's common name and records it.
struct MtlsUpstream {
    addr: SocketAddr,
    clients: Arc<Mutex<Vec<String>>>,
}

fn mtls_upstream(server: (&[u8], &[u8]), client_ca: &X509) -> MtlsUpstream {
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    acc.set_certificate(&X509::from_pem(server.0).expect("cert"))
        .expect("cert");
    acc.set_private_key(&PKey::private_key_from_pem(server.1).expect("key"))
        .expect("key");
    acc.cert_store_mut()
        .add_cert(client_ca.clone())
        .expect("client ca");
    acc.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    let acc = acc.build();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clients: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = clients.clone();
    std::thread::spawn(move || {
        // Bounded: the test makes a handful of connections.
        for stream in listener.incoming().take(50).flatten() {
            let Ok(mut tls) = acc.accept(stream) else {
                continue;
            };
            let cn = tls
                .ssl()
                .peer_certificate()
                .and_then(|c| {
                    c.subject_name()
                        .entries_by_nid(Nid::COMMONNAME)
                        .next()
                        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
                })
                .unwrap_or_default();
            // Read the whole request (head and Content-Length body): closing with unread bytes
            // would reset the connection under the answer.
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            let mut complete = false;
            while !complete {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    complete = got.len() >= end + 4 + len;
                }
            }
            seen.lock().expect("lock").push(cn.clone());
            let body = format!(r#"{{"client":"{cn}"}}"#);
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.shutdown();
        }
    });
    MtlsUpstream { addr, clients }
}

#[tokio::test]
async fn upstream_mtls_with_a_custom_ca() {
    let server_ca = Ca::new("upstream ca");
    let client_ca = Ca::new("client ca");
    let dir = tempfile::tempdir().expect("dir");
    let server = server_ca.issue("upstream", false);
    let up = mtls_upstream((&server.0, &server.1), &client_ca.cert);
    let ca_file = write(&dir, "ca.pem", &server_ca.cert.to_pem().expect("pem"));
    let (cc, ck) = client_ca.issue("mcpgate-client", true);
    let cc = write(&dir, "client.crt", &cc);
    let ck = write(&dir, "client.key", &ck);
    let endpoint = |path: &str, tls: &str| {
        format!(
            "  - path: {path}\n    backend:\n      hosts: [https://127.0.0.1:{}]\n      health_check: {{enabled: false}}\n      tls: {tls}\n",
            up.addr.port()
        )
    };
    let gw = Gateway::start(&format!(
        "endpoints:\n{}{}{}",
        endpoint(
            "/mtls",
            &format!(
                "{{sni: localhost, ca: {}, client_cert: {}, client_key: {}}}",
                ca_file.display(),
                cc.display(),
                ck.display()
            )
        ),
        // Trusts the CA but has no client certificate: the upstream refuses the handshake.
        endpoint(
            "/no-client-cert",
            &format!("{{sni: localhost, ca: {}}}", ca_file.display())
        ),
        // Presents the certificate but trusts only the system store: verification fails.
        endpoint(
            "/system-ca",
            &format!(
                "{{sni: localhost, client_cert: {}, client_key: {}}}",
                cc.display(),
                ck.display()
            )
        ),
    ));
    let client = reqwest::Client::new();
    let post = |path: &str| {
        client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
    };
    let r = post("/mtls").await.expect("POST");
    assert_eq!(r.status(), 200, "{}", gw.stderr());
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"client":"mcpgate-client"}"#
    );
    assert_eq!(*up.clients.lock().expect("lock"), vec!["mcpgate-client"]);

    for path in ["/no-client-cert", "/system-ca"] {
        let r = post(path).await.expect("POST");
        assert_eq!(r.status(), 502, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        // A refused client certificate surfaces after the TLS 1.3 handshake, on the first read.
        let reason = body["error"]["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            ["upstream_unreachable", "upstream_failed"].contains(&reason),
            "{path}: {body}"
        );
    }
    assert_eq!(up.clients.lock().expect("lock").len(), 1);

    // A client key that does not match its certificate is a config error with its path.
    let (other_cert, _) = client_ca.issue("other", true);
    let other = write(&dir, "other.crt", &other_cert);
    let (code, _, stderr) = crate::support::run_cli(&[
        "-t",
        "-c",
        crate::support::temp_file(
            &dir,
            "bad.yaml",
            &format!(
                "listen: 127.0.0.1:1\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [https://localhost:1]\n      tls: {{client_cert: {}, client_key: {}, ca: {}}}\n",
                other.display(),
                ck.display(),
                dir.path().join("missing.pem").display()
            ),
        )
        .to_str()
        .expect("utf8"),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("endpoints[0].backend.tls.client_key"),
        "{stderr}"
    );
    assert!(stderr.contains("endpoints[0].backend.tls.ca"), "{stderr}");
}
