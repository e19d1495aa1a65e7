//! TLS on the listener (`tests/fixtures/gateway/tls.yaml`, `tls13.yaml`), with curl as the
//! client: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN, the certificate chosen by SNI, client
//! certificates (accepted, missing, untrusted) and the `mutualTLS` scheme, and certificates
//! replaced on disk while clients keep connecting.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::gateway::{build, Running};
use crate::net::Upstream;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making the RSA key `name.key` in `dir`, for `subject`, then `rest`.
fn request(dir: &Path, name: &str, subject: &str, rest: &[&str]) {
    let key = format!("{name}.key");
    let mut args = vec![
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-subj", subject,
    ];
    args.extend_from_slice(rest);
    openssl(dir, &args);
}

/// A CA `name` (`name.pem`, `name.key`) in `dir`.
pub(crate) fn ca(dir: &Path, name: &str) -> PathBuf {
    let pem = format!("{name}.pem");
    request(
        dir,
        name,
        &format!("/CN={name}"),
        &[
            "-x509",
            "-out",
            &pem,
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// A certificate `name` issued by the CA `issuer` of `dir`, for `san` (`DNS:api.test,IP:…`) and
/// `usage` (`serverAuth` or `clientAuth`): its PEM and key files.
pub(crate) fn leaf(
    dir: &Path,
    issuer: &str,
    name: &str,
    san: &str,
    usage: &str,
) -> (PathBuf, PathBuf) {
    leaf_for(dir, issuer, name, &format!("/CN={name}"), &[san, usage])
}

/// [`leaf`] with a subject of its own (`/C=US/O=…/CN=…`); `san_usage` is `[san, usage]`.
fn leaf_for(
    dir: &Path,
    issuer: &str,
    name: &str,
    subject: &str,
    san_usage: &[&str; 2],
) -> (PathBuf, PathBuf) {
    let [san, usage] = *san_usage;
    let (pem, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.cnf"),
    );
    request(dir, name, subject, &["-out", &csr]);
    let mut text = format!("basicConstraints=critical,CA:FALSE\nextendedKeyUsage={usage}\n");
    if !san.is_empty() {
        text.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(dir.join(&ext), text).expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// Revokes the certificate `pem` of the CA `issuer` of `dir`, and writes the CA's revocation
/// list to `crl.pem`.
fn revoke(dir: &Path, issuer: &str, pem: &Path) -> PathBuf {
    std::fs::write(dir.join("index.txt"), "").expect("index");
    std::fs::write(dir.join("crlnumber"), "01\n").expect("crlnumber");
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n",
    )
    .expect("ca.cnf");
    let (cert, key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
    let pem = pem.display().to_string();
    openssl(
        dir,
        &[
            "ca", "-config", "ca.cnf", "-keyfile", &key, "-cert", &cert, "-revoke", &pem,
        ],
    );
    openssl(
        dir,
        &[
            "ca", "-config", "ca.cnf", "-keyfile", &key, "-cert", &cert, "-gencrl", "-out",
            "crl.pem",
        ],
    );
    dir.join("crl.pem")
}

/// `curl --cacert CA -o /dev/null -w "%{http_version} %{http_code}" EXTRA…`.
fn version_and_status(ca: &str, extra: &[&str]) -> (i32, String) {
    let mut a = vec![
        "--cacert",
        ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
    ];
    a.extend_from_slice(extra);
    curl(&a)
}

/// curl over TLS with `args`; (exit code, stdout).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn tls_on_the_listener_with_sni_alpn_client_certificates_and_reload() {
    let dir = crate::support::scratch("tls");
    let server_ca = ca(&dir, "server-ca");
    let client_ca = ca(&dir, "client-ca");
    let _other_ca = ca(&dir, "other-ca");
    let (api_cert, api_key) = leaf(
        &dir,
        "server-ca",
        "api",
        "DNS:api.test,IP:127.0.0.1",
        "serverAuth",
    );
    let (admin_cert, admin_key) = leaf(&dir, "server-ca", "admin", "DNS:admin.test", "serverAuth");
    let (client_cert, client_key) = leaf(&dir, "client-ca", "client", "", "clientAuth");
    let (stranger_cert, stranger_key) = leaf(&dir, "other-ca", "stranger", "", "clientAuth");
    let (revoked_cert, revoked_key) = leaf(&dir, "client-ca", "revoked", "", "clientAuth");
    let crl = revoke(&dir, "client-ca", &revoked_cert);
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/tls.yaml");
    let path = |p: &Path| p.display().to_string();
    let redirect_port = crate::net::free_port();
    let redirect_listen = format!("127.0.0.1:{redirect_port}");
    let gw = Running::start(
        &bin,
        &["--redirect-listen", &redirect_listen],
        &[
            ("API_CERT", path(&api_cert)),
            ("API_KEY", path(&api_key)),
            ("ADMIN_CERT", path(&admin_cert)),
            ("ADMIN_KEY", path(&admin_key)),
            ("CLIENT_CA", path(&client_ca)),
            ("CLIENT_CRL", path(&crl)),
            ("UPSTREAM_PORT", upstream.port.to_string()),
        ],
    );
    let port = gw.port;
    let url = |host: &str, p: &str| format!("https://{host}:{port}{p}");
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    let cacert = path(&server_ca);

    // HTTP/2 by ALPN, and HTTP/1.1 for clients that offer only that; TLS 1.2 and 1.3.
    let open = url("127.0.0.1", "/open/1");
    let run = |extra: &[&str]| version_and_status(&cacert, extra);
    assert_eq!(run(&[&open]), (0, "2 200".into()));
    // No OCSP response configured: none is stapled.
    assert_eq!(ocsp_stapled(port), "no response sent");
    assert_eq!(run(&["--http1.1", &open]), (0, "1.1 200".into()));
    assert_eq!(
        run(&["--tlsv1.2", "--tls-max", "1.2", &open]),
        (0, "2 200".into())
    );
    assert_eq!(run(&["--tlsv1.3", &open]), (0, "2 200".into()));
    // Only AEAD suites: a client offering nothing but a CBC suite is refused (curl: 35).
    let cbc = [
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-RSA-AES128-SHA",
        &open,
    ];
    assert_eq!(run(&cbc).0, 35);
    // Plain HTTP on the TLS port gets nothing served.
    let (_, plain) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/open/1"),
    ]);
    assert_ne!(plain, "200");

    // SNI picks the certificate: admin.test's verifies for admin.test, api.test's for api.test
    // (a wrong pick fails curl's name check, exit 60).
    let admin_resolve = resolve("admin.test");
    let api_resolve = resolve("api.test");
    assert_eq!(
        run(&["--resolve", &admin_resolve, &url("admin.test", "/open/2")]),
        (0, "2 200".into())
    );
    assert_eq!(
        run(&["--resolve", &api_resolve, &url("api.test", "/open/3")]),
        (0, "2 200".into())
    );
    // A name no certificate has: the first one is served, and curl refuses it.
    let other_resolve = resolve("other.test");
    assert_eq!(
        run(&["--resolve", &other_resolve, &url("other.test", "/open/4")]).0,
        60
    );

    // HSTS on every answer; plain HTTP on the redirect listener goes to HTTPS, method, path
    // and query kept (308).
    let hsts = curl(&[
        "--cacert",
        &cacert,
        "-o",
        "/dev/null",
        "-w",
        "%header{strict-transport-security}",
        &open,
    ]);
    assert_eq!(hsts, (0, "max-age=31536000; includeSubDomains".into()));
    let plain_url = format!("http://127.0.0.1:{redirect_port}/open/9?x=1");
    let redirected = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &plain_url,
    ]);
    assert_eq!(
        redirected,
        (0, format!("308 https://127.0.0.1:{port}/open/9?x=1"))
    );
    assert_eq!(run(&["-L", &plain_url]), (0, "2 200".into()));

    // What the upstream gets: the scheme the client used.
    let (_, body) = curl(&["--cacert", &cacert, &url("127.0.0.1", "/open/5")]);
    let echoed: serde_json::Value = serde_json::from_str(&body).expect("the upstream's JSON");
    let proto = &echoed["headers"]["x-forwarded-proto"];
    assert!(proto == "https" || proto[0] == "https", "{echoed}");

    // `mutualTLS`: no certificate is 401; a certificate from the client CA passes; one from
    // another CA fails the handshake (nothing is served).
    let mtls = url("127.0.0.1", "/mtls");
    assert_eq!(run(&[&mtls]), (0, "2 401".into()));
    let challenge = curl(&[
        "--cacert",
        &cacert,
        "-o",
        "/dev/null",
        "-w",
        "%header{www-authenticate}",
        &mtls,
    ]);
    assert_eq!(challenge, (0, "ClientCertificate".into()));
    let (cc, ck) = (path(&client_cert), path(&client_key));
    assert_eq!(
        run(&["--cert", &cc, "--key", &ck, &mtls]),
        (0, "2 200".into())
    );
    let (sc, sk) = (path(&stranger_cert), path(&stranger_key));
    let (code, out) = run(&["--cert", &sc, "--key", &sk, &mtls]);
    assert_ne!(code, 0, "an untrusted client certificate was taken: {out}");
    // A certificate of the client CA that its revocation list names is refused as well.
    let (rc, rk) = (path(&revoked_cert), path(&revoked_key));
    let (code, out) = run(&["--cert", &rc, "--key", &rk, &mtls]);
    assert_ne!(code, 0, "a revoked client certificate was taken: {out}");
    // An open route takes callers with or without a certificate.
    assert_eq!(
        run(&["--cert", &cc, "--key", &ck, &open]),
        (0, "2 200".into())
    );

    // HTTP/2 over TLS has the h2c listener's defences: a rapid-reset flood ends with GOAWAY
    // while another client is served.
    let probe = |mode: &str| crate::http2::tool("h2_probe.py", &[&port.to_string(), mode, &cacert]);
    let (reset, served) = std::thread::scope(|s| {
        let flood = s.spawn(|| probe("rapid-reset"));
        let served: Vec<(i32, String)> = (0..5).map(|_| run(&[&open])).collect();
        (flood.join().expect("flood"), served)
    });
    assert_eq!(reset["goaway"], "ENHANCE_YOUR_CALM", "{reset}");
    assert!(
        served.iter().all(|r| r == &(0, "2 200".to_string())),
        "{served:?}"
    );

    // Rotation: admin.test's certificate is replaced by one from another CA while a client keeps
    // connecting (trusting both CAs): no request fails, and new connections get the new one.
    let both = dir.join("both-cas.pem");
    let mut bundle = std::fs::read(&server_ca).expect("ca");
    bundle.extend(std::fs::read(dir.join("other-ca.pem")).expect("other ca"));
    std::fs::write(&both, bundle).expect("bundle");
    let both = path(&both);
    // The status of a GET of admin.test's `path`, trusting the CAs of `ca`.
    let admin_status = |ca: &str, path: &str| {
        let u = url("admin.test", path);
        curl(&[
            "--cacert",
            ca,
            "--resolve",
            &admin_resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &u,
        ])
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (rotated, failures) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                n += 1;
                let r = admin_status(&both, "/open/6");
                if r != (0, "200".to_string()) {
                    failures.push(r);
                }
            }
            (n, failures)
        });
        std::thread::sleep(Duration::from_millis(500));
        let (new_cert, new_key) = leaf(
            &dir,
            "other-ca",
            "admin-new",
            "DNS:admin.test",
            "serverAuth",
        );
        // Key first, then the certificate, each replaced whole (as a deployment tool does).
        std::fs::copy(&new_key, dir.join("admin.key.tmp")).expect("copy");
        std::fs::copy(&new_cert, dir.join("admin.pem.tmp")).expect("copy");
        std::fs::rename(dir.join("admin.key.tmp"), &admin_key).expect("rename");
        std::fs::rename(dir.join("admin.pem.tmp"), &admin_cert).expect("rename");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rotated = false;
        while Instant::now() < deadline {
            // Only the new CA: passes once the new certificate is served.
            let other = path(&dir.join("other-ca.pem"));
            if admin_status(&other, "/open/7") == (0, "200".into()) {
                rotated = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (n, failures) = load.join().expect("the load ran");
        assert!(n > 5, "too few requests during the rotation: {n}");
        (rotated, failures)
    });
    assert!(
        rotated,
        "the new certificate was not served: {}",
        gw.log_text()
    );
    assert!(
        failures.is_empty(),
        "requests failed during the rotation: {failures:?}"
    );
    assert!(gw.log_text().contains("TLS certificates reloaded"));

    // A broken file keeps the loaded certificates; SIGHUP reloads too.
    std::fs::write(&admin_cert, "not a certificate").expect("break");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(admin_status(&both, "/open/8"), (0, "200".into()));
    assert!(gw.log_text().contains("TLS certificates not reloaded"));
    let _ = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        gw.log_text().contains("\"reason\":\"SIGHUP\""),
        "{}",
        gw.log_text()
    );
}

#[test]
fn tls_1_3_only_and_http1_only() {
    let dir = crate::support::scratch("tls13");
    let server_ca = ca(&dir, "server-ca");
    let (cert, key) = leaf(&dir, "server-ca", "api", "IP:127.0.0.1", "serverAuth");
    let bin = build("tests/fixtures/gateway/tls13.yaml");
    let redirect_port = crate::net::free_port();
    let redirect_listen = format!("127.0.0.1:{redirect_port}");
    let gw = Running::start(
        &bin,
        &["--redirect-listen", &redirect_listen],
        &[
            ("API_CERT", cert.display().to_string()),
            ("API_KEY", key.display().to_string()),
        ],
    );
    let cacert = server_ca.display().to_string();
    let hello = format!("https://127.0.0.1:{}/hello", gw.port);
    let run = |extra: &[&str]| version_and_status(&cacert, extra);
    // HTTP/1.1 even for a client that offers h2 (`http2: false`).
    assert_eq!(run(&[&hello]), (0, "1.1 200".into()));
    assert_eq!(run(&["--tlsv1.3", &hello]), (0, "1.1 200".into()));
    // TLS 1.2 is refused at the handshake (curl: 35).
    assert_eq!(run(&["--tlsv1.2", "--tls-max", "1.2", &hello]).0, 35);
    // A WebSocket over TLS (`wss://`), idle longer than the head timeout between its messages.
    let r = crate::websocket::client(serde_json::json!({
        "url": format!("wss://127.0.0.1:{}/ws", gw.port), "ca": cacert,
        "steps": [{ "send": "hi" }, { "recv": 5 }, { "sleep": 2.5 }, { "send": "again" }, { "recv": 5 }],
    }));
    assert_eq!(
        r["received"],
        serde_json::json!(["wss ok", "wss ok"]),
        "{r}"
    );
    assert_eq!(r["close"]["code"], 1000, "{r}");
    // A client that starts a handshake and goes quiet (here: half a ClientHello) is dropped
    // after the head timeout (2 s), as one that sends nothing.
    use std::io::{Read, Write};
    // The redirect listener has the same head timeout, and gives one answer per connection.
    let quiet = [
        (gw.port, &b""[..]),
        (
            gw.port,
            &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc][..],
        ),
        (redirect_port, &b"GET /hello HTTP/1.1\r\nHo"[..]),
    ];
    for (port, sent) in quiet {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(sent).expect("write");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let after = started.elapsed();
        assert!(
            n == 0 || buf.starts_with(b"HTTP/1.1 408"),
            "the quiet client got an answer: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        assert!(
            (Duration::from_millis(1500)..Duration::from_secs(10)).contains(&after),
            "closed after {after:?}"
        );
    }
    let two = b"GET /a HTTP/1.1\r\nHost: api.test\r\n\r\nGET /b HTTP/1.1\r\nHost: api.test\r\n\r\n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redirect_port)).expect("connect");
    s.write_all(two).expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answers = String::new();
    let _ = s.read_to_string(&mut answers);
    assert_eq!(answers.matches("HTTP/1.1 308").count(), 1, "{answers}");
    assert!(answers.contains("location: https://api.test:"), "{answers}");
}

/// The output of `openssl x509 -noout -<what>` of `pem` (`what`: `serial`, `fingerprint sha256`,
/// each word an option), after its `=`.
fn x509_field(pem: &Path, what: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout"])
        .args(what.split(' ').map(|w| format!("-{w}")))
        .arg("-in")
        .arg(pem)
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, value) = text.trim().split_once('=').expect("name=value");
    value.to_string()
}

/// What `openssl s_client -status` says of the OCSP response the listener at `port` staples:
/// `no response sent`, or the response's status (`successful (0x0)`).
fn ocsp_stapled(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-status",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("OCSP Response Status:"))
        .or_else(|| text.lines().find(|l| l.starts_with("OCSP response:")))
        .unwrap_or_else(|| panic!("no OCSP line: {text}"));
    line.split_once(':')
        .map_or("", |(_, v)| v.trim())
        .to_string()
}

/// An OCSP response of the CA `issuer` of `dir` saying the certificate `pem` is good, for a
/// day (`openssl ocsp`, as a responder would answer), written to `out`.
fn ocsp_good(dir: &Path, issuer: &str, pem: &Path, out: &str) -> PathBuf {
    let serial = x509_field(pem, "serial");
    let subject = x509_field(pem, "subject");
    std::fs::write(
        dir.join("ocsp-index.txt"),
        format!("V\t301231235959Z\t\t{serial}\tunknown\t/{subject}\n"),
    )
    .expect("index");
    let (ca, key, pem) = (
        format!("{issuer}.pem"),
        format!("{issuer}.key"),
        pem.display().to_string(),
    );
    openssl(
        dir,
        &[
            "ocsp",
            "-issuer",
            &ca,
            "-cert",
            &pem,
            "-no_nonce",
            "-reqout",
            "ocsp-req.der",
        ],
    );
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "ocsp-index.txt",
            "-rsigner",
            &ca,
            "-rkey",
            &key,
            "-CA",
            &ca,
            "-reqin",
            "ocsp-req.der",
            "-respout",
            out,
            "-ndays",
            "1",
        ],
    );
    dir.join(out)
}

/// What a verified client certificate says reaches the phases that read it
/// (`tests/fixtures/gateway/mtls.yaml`): transforms, the cache key and the caller's cache
/// entries, a per-certificate throttle, a Lambda authorizer's event and cache, Lambda events in
/// both payload formats; a domain with its own client CA, and no certificate carried from one
/// trust to another on one connection; an OCSP response stapled.
#[test]
fn client_certificates_reach_every_phase() {
    let dir = crate::support::scratch("mtls");
    let server_ca = ca(&dir, "server-ca");
    let _client_ca = ca(&dir, "client-ca");
    let partner_ca = ca(&dir, "partner-ca");
    let (api_cert, api_key) = leaf(
        &dir,
        "server-ca",
        "api",
        "DNS:api.test,DNS:partner.test,IP:127.0.0.1",
        "serverAuth",
    );
    let ocsp = ocsp_good(&dir, "server-ca", &api_cert, "api.ocsp");
    // The chain served holds the issuer, which clients need to check a stapled response by.
    let chain = dir.join("api-chain.pem");
    let mut pems = std::fs::read(&api_cert).expect("pem");
    pems.extend(std::fs::read(&server_ca).expect("ca"));
    std::fs::write(&chain, pems).expect("chain");
    let sans = "DNS:client.example.test,email:client@example.test,URI:spiffe://example.test/client,IP:127.0.0.2";
    let (a_cert, a_key) = leaf_for(
        &dir,
        "client-ca",
        "client",
        "/C=US/O=Example, Inc./CN=client",
        &[sans, "clientAuth"],
    );
    let (b_cert, b_key) = leaf(&dir, "client-ca", "client2", "", "clientAuth");
    let (p_cert, p_key) = leaf(&dir, "partner-ca", "partner", "", "clientAuth");
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/mtls.yaml");
    let path = |p: &Path| p.display().to_string();
    let functions = crate::support::repo().join("tests/fixtures/lambda");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("API_CERT", path(&chain)),
            ("API_KEY", path(&api_key)),
            ("API_OCSP", path(&ocsp)),
            ("CLIENT_CA", path(&dir.join("client-ca.pem"))),
            ("PARTNER_CA", path(&partner_ca)),
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("PYTHON", path(&crate::auth::python())),
            ("FUNCTIONS_DIR", path(&functions)),
        ],
    );
    let port = gw.port;
    let cacert = path(&server_ca);
    let (a, ak, b, bk) = (path(&a_cert), path(&a_key), path(&b_cert), path(&b_key));
    let with_a = ["--cert", a.as_str(), "--key", ak.as_str()];
    let with_b = ["--cert", b.as_str(), "--key", bk.as_str()];
    // (status, x-cache, body) of a GET of `target` at 127.0.0.1 with `extra` curl arguments.
    let get = |extra: &[&str], target: &str| {
        let url = format!("https://127.0.0.1:{port}{target}");
        let mut args = vec![
            "--cacert",
            cacert.as_str(),
            "-w",
            "\n%{http_code} %header{x-cache}",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        let (code, out) = curl(&args);
        assert_eq!(code, 0, "curl {args:?}: {out}");
        let (body, tail) = out.rsplit_once('\n').expect("the status line");
        let (status, cache) = tail.split_once(' ').unwrap_or((tail, ""));
        (status.to_string(), cache.to_string(), body.to_string())
    };
    let json = |body: &str| -> serde_json::Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };

    // Transforms: every field, as API Gateway writes it; OpenSSL reads the same certificate.
    let (status, _, body) = get(&with_a, "/whoami");
    assert_eq!(status, "200", "{body}");
    let seen = json(&body)["headers"].clone();
    let h = |name: &str| seen[name].as_str().unwrap_or_default().to_string();
    assert_eq!(h("x-client-subject"), "C=US,O=Example\\, Inc.,CN=client");
    assert_eq!(h("x-client-issuer"), "CN=client-ca");
    assert_eq!(h("x-client-sans"), sans);
    let fingerprint = x509_field(&a_cert, "fingerprint sha256")
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(h("x-client-fingerprint"), fingerprint);
    assert_eq!(h("x-client-not-after"), x509_field(&a_cert, "enddate"));
    let serial = x509_field(&a_cert, "serial").to_ascii_lowercase();
    assert_eq!(
        h("x-client-serial")
            .replace(':', "")
            .trim_start_matches('0'),
        serial.trim_start_matches('0')
    );
    assert!(h("x-client-serial").contains(':'), "{seen}");
    assert_eq!(get(&[], "/whoami").0, "401");

    // The cache: entries of a `mutualTLS` route are the caller's (certificate B never gets A's);
    // a `client_cert.issuerDN` key part tells callers without a certificate apart.
    let hits = || upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    let cache = |extra: &[&str], target: &str| {
        let before = hits();
        let (status, cache, _) = get(extra, target);
        (status, cache, hits() - before)
    };
    let miss = |n| ("200".to_string(), "Miss".to_string(), n);
    let hit = ("200".to_string(), "Hit".to_string(), 0);
    assert_eq!(cache(&with_a, "/cached"), miss(1));
    assert_eq!(cache(&with_a, "/cached"), hit);
    assert_eq!(cache(&with_b, "/cached"), miss(1));
    assert_eq!(cache(&[], "/by-issuer"), miss(1));
    assert_eq!(cache(&[], "/by-issuer"), hit);
    assert_eq!(cache(&with_a, "/by-issuer"), miss(1));
    assert_eq!(cache(&with_b, "/by-issuer"), hit);

    // `per: client_cert`: a bucket per certificate, and per address without one.
    let status_of = |extra: &[&str], target: &str| get(extra, target).0;
    assert_eq!(status_of(&with_a, "/limited"), "200");
    assert_eq!(status_of(&with_a, "/limited"), "429");
    assert_eq!(status_of(&with_b, "/limited"), "200");
    assert_eq!(status_of(&[], "/limited"), "200");
    assert_eq!(status_of(&[], "/limited"), "429");
    assert_eq!(status_of(&with_b, "/limited"), "429");

    // A Lambda authorizer reads the certificate from its event (payload 2.0), and so does the
    // function: `requestContext.authentication.clientCert`.
    let (code, _, body) = get(&with_a, "/echo-cert/v2");
    assert_eq!(code, "200", "{body}");
    let event = json(&body)["event"].clone();
    let cert = &event["requestContext"]["authentication"]["clientCert"];
    assert_eq!(cert["subjectDN"], "C=US,O=Example\\, Inc.,CN=client");
    assert_eq!(cert["issuerDN"], "CN=client-ca");
    assert_eq!(cert["fingerprint"], fingerprint.as_str());
    assert_eq!(cert["validity"]["notAfter"], x509_field(&a_cert, "enddate"));
    let pem = std::fs::read_to_string(&a_cert).expect("pem");
    assert_eq!(
        cert["clientCertPem"].as_str().map(str::trim),
        Some(pem.trim())
    );
    let seen_by_authorizer = &event["requestContext"]["authorizer"]["lambda"];
    assert_eq!(seen_by_authorizer["subject"], cert["subjectDN"], "{event}");
    // The authorizer refuses certificate B; its answer for A is not reused for B.
    assert_eq!(status_of(&with_b, "/echo-cert/v2"), "403");
    assert_eq!(status_of(&with_a, "/echo-cert/v2"), "200");
    // Without a certificate, the identity source is missing: 401, and no call.
    assert_eq!(status_of(&[], "/echo-cert/v2"), "401");
    let calls = || {
        gw.log_text()
            .matches("certificate authorizer called")
            .count()
    };
    assert_eq!(calls(), 2, "{}", gw.log_text());
    // An authorizer keyed by a header: the same header with another certificate is decided
    // again (the event carries the certificate), not served the first certificate's answer.
    let same_token = |cert: &[&str]| {
        let mut args = cert.to_vec();
        args.extend_from_slice(&["-H", "Authorization: Bearer same"]);
        status_of(&args, "/echo-cert/header")
    };
    assert_eq!(same_token(&with_a), "200");
    assert_eq!(same_token(&with_b), "403");
    assert_eq!(same_token(&with_a), "200");
    assert_eq!(calls(), 4, "{}", gw.log_text());
    // Payload 1.0: `requestContext.identity.clientCert`.
    let (code, _, body) = get(&with_a, "/echo-cert/v1");
    assert_eq!(code, "200", "{body}");
    let event = json(&body)["event"].clone();
    let cert = &event["requestContext"]["identity"]["clientCert"];
    assert_eq!(
        cert["subjectDN"], "C=US,O=Example\\, Inc.,CN=client",
        "{event}"
    );
    assert_eq!(cert["serialNumber"], h("x-client-serial").as_str());
    assert_eq!(
        cert["validity"]["notBefore"],
        x509_field(&a_cert, "startdate")
    );

    // A domain with its own client CA: its clients pass there, and not at the API's other hosts;
    // the API's clients do not pass there.
    let (pc, pk) = (path(&p_cert), path(&p_key));
    let with_p = ["--cert", pc.as_str(), "--key", pk.as_str()];
    let at = |host: &str, extra: &[&str], host_header: Option<&str>| {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/whoami");
        let header = host_header.map(|h| format!("Host: {h}:{port}"));
        let mut args = vec![
            "--cacert",
            cacert.as_str(),
            "--http1.1",
            "--resolve",
            resolve.as_str(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        args.extend_from_slice(extra);
        if let Some(h) = &header {
            args.extend_from_slice(&["-H", h.as_str()]);
        }
        args.push(&url);
        curl(&args)
    };
    assert_eq!(at("partner.test", &with_p, None), (0, "200".into()));
    assert_eq!(at("api.test", &with_a, None), (0, "200".into()));
    let (code, out) = at("partner.test", &with_a, None);
    assert_ne!(
        code, 0,
        "partner.test took the API's client certificate: {out}"
    );
    let (code, out) = at("api.test", &with_p, None);
    assert_ne!(
        code, 0,
        "api.test took partner.test's client certificate: {out}"
    );
    // One trust's certificate is not carried to a host of another on the same connection.
    assert_eq!(
        at("partner.test", &with_p, Some("api.test")),
        (0, "421".into())
    );
    assert_eq!(
        at("api.test", &with_a, Some("partner.test")),
        (0, "421".into())
    );

    // OCSP stapling: the response is stapled, and curl, asking for the certificate's status,
    // checks it against the CA (exit 0), over TLS 1.2 and 1.3.
    assert_eq!(ocsp_stapled(port), "successful (0x0)");
    let url = format!("https://127.0.0.1:{port}/by-issuer");
    let stapled = |extra: &[&str]| {
        let mut args = vec!["--cert-status"];
        args.extend_from_slice(extra);
        args.push(&url);
        version_and_status(&cacert, &args)
    };
    assert_eq!(stapled(&["--tlsv1.2", "--tls-max", "1.2"]).0, 0);
    assert_eq!(stapled(&["--tlsv1.3"]).0, 0);
}

/// `gwgen check` on the listener's settings: each problem at its place, with its code.
#[test]
fn listener_settings_are_checked() {
    let dir = crate::support::scratch("tls-check");
    // (file name, the root's `x-gateway` lines, more path items, more security schemes)
    let check = |name: &str,
                 x_gateway: &str,
                 extra_paths: &str,
                 schemes: &str|
     -> Vec<(String, String)> {
        let spec = dir.join(name);
        std::fs::write(
            &spec,
            format!(
                "openapi: 3.1.0\ninfo: {{ title: T, version: \"1\" }}\nx-gateway:\n  defaults: {{ integration: {{ type: mock }}, throttle: {{ rate: 1, burst: 1 }} }}\n{x_gateway}\npaths:\n  /a:\n    get:\n      security: [{{ mtls: [] }}]\n      responses: {{ \"200\": {{ description: ok }} }}\n{extra_paths}components:\n  securitySchemes:\n    mtls: {{ type: mutualTLS }}\n{schemes}"
            ),
        )
        .expect("spec");
        let out = crate::support::gwgen(
            &["check", "--format", "json", &spec.display().to_string()],
            &dir,
        );
        let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
        diags
            .iter()
            .map(|d| {
                (
                    d["code"].as_str().unwrap_or_default().to_string(),
                    d["pointer"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let pair = |code: &str, ptr: &str| (code.to_string(), ptr.to_string());
    let tls = "  tls: { certificates: [{ cert: \"${env.CERT}\", key: \"${env.KEY}\" }] }";

    // No client CA anywhere: `mutualTLS` cannot be enforced (a warning), and what reads a client
    // certificate would never see one.
    let readers = "  /b:\n    get:\n      security: []\n      x-gateway:\n        throttle: { rate: 1, per: client_cert }\n        cache: { ttl: 1s, key: [client_cert.subjectDN] }\n        transform: { request: { headers: { set: { x-s: \"{{ context.identity.clientCert.subjectDN }}\" } } } }\n      responses: { \"200\": { description: ok } }\n";
    // An authorizer whose identity is the certificate's fingerprint, on a route of its own.
    let authorizer = "    certs:\n      type: apiKey\n      in: header\n      name: x-unused\n      x-gateway: { authorizer: { type: http, url: \"http://127.0.0.1:9\", identity: [context.identity.clientCert.fingerprint] } }\n";
    let readers = format!("{readers}  /c:\n    get:\n      security: [{{ certs: [] }}]\n      responses: {{ \"200\": {{ description: ok }} }}\n");
    let readers = readers.as_str();
    let found = check("no-ca.yaml", tls, readers, authorizer);
    assert!(
        found.contains(&pair("GW0408", "/components/securitySchemes/mtls")),
        "{found:?}"
    );
    for ptr in [
        "/paths/~1b/get/x-gateway/throttle/per",
        "/paths/~1b/get/x-gateway/cache/key/0",
        "/paths/~1b/get/x-gateway/transform/request/headers/set/x-s",
        "/components/securitySchemes/certs/x-gateway/authorizer/identity/0",
    ] {
        assert!(found.contains(&pair("GW0402", ptr)), "{ptr}: {found:?}");
    }

    // Paths named by variables: each interpolation is checked where it stands.
    let found = check(
        "variables.yaml",
        "  stages: { prod: { variables: { dir: /etc/gw } }, dev: {} }\n  tls: { certificates: [{ cert: \"${stageVariables.dir}/api.pem\", key: \"${env.KEY\" }], client_ca: \"${secret.CA}\" }",
        "",
        "",
    );
    for (code, ptr) in [
        ("GW0403", "/x-gateway/tls/certificates/0/cert"),
        ("GW0407", "/x-gateway/tls/certificates/0/key"),
        ("GW0407", "/x-gateway/tls/client_ca"),
    ] {
        assert!(found.contains(&pair(code, ptr)), "{ptr}: {found:?}");
    }

    // A client CA on a domain is enough for both.
    let domain_ca = format!("{tls}\n  domains: [{{ name: api.test, client_ca: \"${{env.CA}}\" }}]");
    assert_eq!(
        check("domain-ca.yaml", &domain_ca, readers, authorizer),
        vec![]
    );

    // Revocation lists without the CA they belong to; a domain's CA without `tls`; one name with
    // two CAs; an unknown TLS version; `unknown_hosts` without `domains`.
    let found = check(
        "wrong.yaml",
        "  tls: { certificates: [{ cert: a.pem, key: a.key }], client_crl: r.pem, min_version: \"1.1\" }\n  unknown_hosts: serve",
        "",
        "",
    );
    for ptr in [
        "/x-gateway/tls/client_crl",
        "/x-gateway/tls/min_version",
        "/x-gateway/unknown_hosts",
    ] {
        assert!(found.contains(&pair("GW0402", ptr)), "{ptr}: {found:?}");
    }
    let found = check(
        "domains.yaml",
        "  domains:\n    - { name: api.test, client_ca: a.pem }\n    - { name: API.test, base_path: /v2, client_ca: b.pem }\n    - { name: b.test, client_crl: r.pem }",
        "",
        "",
    );
    for ptr in [
        "/x-gateway/domains/0/client_ca",
        "/x-gateway/domains/1",
        "/x-gateway/domains/2/client_crl",
    ] {
        assert!(found.contains(&pair("GW0402", ptr)), "{ptr}: {found:?}");
    }
}
