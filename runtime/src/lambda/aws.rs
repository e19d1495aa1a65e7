//! Functions on AWS: the Lambda `Invoke` call (`POST /2015-03-31/functions/{name}/invocations`)
//! over HTTPS, signed with SigV4 (the `aws-sigv4` crate), with credentials found as the AWS
//! SDKs find them:
//!
//! 1. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
//! 2. the profile `AWS_PROFILE` (else `default`) of the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) or of the config file
//!    (`AWS_CONFIG_FILE`, else `~/.aws/config`), read again every 15 minutes;
//! 3. container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `…_FULL_URI`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN` or `…_TOKEN_FILE`);
//! 4. the instance's (IMDSv2; `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it,
//!    `AWS_EC2_METADATA_DISABLED=true` turns it off).
//!
//! Credentials that expire are fetched again five minutes before they do. Requests read them
//! without a lock (`arc-swap`); only a refresh takes one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use super::Failure;

type Client = hyper_util::client::legacy::Client<crate::tls::Connector, Full<Bytes>>;

/// Signing keys and when they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) session_token: Option<String>,
    /// When to fetch them again.
    pub(crate) refresh_at: Option<SystemTime>,
}

/// One function on AWS.
pub(crate) struct AwsFunction {
    function: String,
    region: String,
    endpoint: String,
    client: Client,
    credentials: ArcSwapOption<Credentials>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AwsFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsFunction")
            .field("function", &self.function)
            .field("region", &self.region)
            .finish()
    }
}

/// The region of a function: `region`, else the ARN's, else `AWS_REGION` or
/// `AWS_DEFAULT_REGION`.
pub(crate) fn region_of(
    function: &str,
    region: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    region
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| {
            function
                .strip_prefix("arn:")
                .and_then(|rest| rest.split(':').nth(2))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
        })
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
}

impl AwsFunction {
    /// A function; credentials are looked for at its first invocation.
    pub(crate) fn new(function: String, region: String, endpoint: Option<String>) -> AwsFunction {
        let endpoint = endpoint
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        AwsFunction {
            function,
            region,
            endpoint,
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(crate::tls::connector()),
            credentials: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    async fn credentials(&self) -> Result<Arc<Credentials>, Failure> {
        let fresh = |c: &Option<Arc<Credentials>>| {
            c.as_ref()
                .filter(|c| c.refresh_at.is_none_or(|at| SystemTime::now() < at))
                .cloned()
        };
        if let Some(c) = fresh(&self.credentials.load_full()) {
            return Ok(c);
        }
        let _one = self.refreshing.lock().await;
        if let Some(c) = fresh(&self.credentials.load_full()) {
            return Ok(c);
        }
        match find_credentials(&self.client).await {
            Ok(c) => {
                let c = Arc::new(c);
                self.credentials.store(Some(c.clone()));
                Ok(c)
            }
            Err(e) => {
                // Credentials about to expire still work until they do.
                if let Some(old) = self.credentials.load_full() {
                    tracing::warn!(error = %e, "cannot refresh AWS credentials; using the current ones");
                    return Ok(old);
                }
                Err(Failure::Unavailable(format!("no AWS credentials: {e}")))
            }
        }
    }

    /// One synchronous invocation.
    pub(crate) async fn invoke(&self, payload: Bytes, timeout: Duration) -> Result<Bytes, Failure> {
        let creds = self.credentials().await?;
        // The name is one path segment: all but RFC 3986's unreserved characters encoded, as
        // the SDKs encode it (an ARN's colons too).
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let name = percent_encoding::utf8_percent_encode(&self.function, SEGMENT).to_string();
        let url = format!("{}/2015-03-31/functions/{name}/invocations", self.endpoint);
        let req = sign(&creds, &self.region, &url, payload, SystemTime::now())
            .map_err(Failure::Unavailable)?;
        let resp = tokio::time::timeout(timeout, self.client.request(req))
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| Failure::Unavailable(format!("cannot reach Lambda: {e}")))?;
        let status = resp.status();
        let function_error = resp.headers().contains_key("x-amz-function-error");
        let body = tokio::time::timeout(
            timeout,
            Limited::new(resp.into_body(), super::local::MAX_PAYLOAD + 1024).collect(),
        )
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| Failure::Unavailable(format!("reading Lambda's answer: {e}")))?
        .to_bytes();
        if !status.is_success() {
            return Err(Failure::Unavailable(format!(
                "Lambda answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        if function_error {
            return Err(Failure::Function(body));
        }
        Ok(body)
    }
}

/// A signed `Invoke` request.
pub(crate) fn sign(
    creds: &Credentials,
    region: &str,
    url: &str,
    payload: Bytes,
    time: SystemTime,
) -> Result<http::Request<Full<Bytes>>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key,
        &creds.secret_key,
        creds.session_token.clone(),
        None,
        "gwgen",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-amz-invocation-type", "RequestResponse")
        .body(Full::new(payload.clone()))
        .map_err(|e| e.to_string())?;
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or("the Lambda endpoint has no host")?;
    req.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&host).map_err(|e| e.to_string())?,
    );
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(&payload),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(&mut req);
    Ok(req)
}

/// The credential chain, in the SDKs' order.
async fn find_credentials(client: &Client) -> Result<Credentials, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(access_key), Some(secret_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
            refresh_at: None,
        });
    }
    let home = env("HOME").unwrap_or_default();
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let files = [
        (
            env("AWS_SHARED_CREDENTIALS_FILE")
                .unwrap_or_else(|| format!("{home}/.aws/credentials")),
            profile.clone(),
        ),
        (
            env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config")),
            if profile == "default" {
                profile.clone()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (file, section) in &files {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Some(c) = from_profile(&text, section) {
                return Ok(c);
            }
        }
    }
    if let Some(uri) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .map(|rel| format!("http://169.254.170.2{rel}"))
        .or_else(|| env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
    {
        let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(f) => std::fs::read_to_string(f)
                .ok()
                .map(|t| t.trim().to_string()),
            None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        };
        let mut req = http::Request::get(&uri);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, t);
        }
        let body = fetch(
            client,
            req.body(Full::default()).map_err(|e| e.to_string())?,
        )
        .await?;
        return from_json(&body);
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("none in the environment, the profile files or the container".into());
    }
    let base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| "http://169.254.169.254".into())
        .trim_end_matches('/')
        .to_string();
    let token = fetch(
        client,
        http::Request::put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
            .body(Full::default())
            .map_err(|e| e.to_string())?,
    )
    .await?;
    let token = String::from_utf8_lossy(&token).trim().to_string();
    let get = |path: String| {
        http::Request::get(format!("{base}{path}"))
            .header("x-aws-ec2-metadata-token", token.as_str())
            .body(Full::default())
            .map_err(|e| e.to_string())
    };
    let roles = fetch(
        client,
        get("/latest/meta-data/iam/security-credentials/".into())?,
    )
    .await?;
    let role = String::from_utf8_lossy(&roles)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if role.is_empty() {
        return Err("the instance has no role".into());
    }
    let body = fetch(
        client,
        get(format!("/latest/meta-data/iam/security-credentials/{role}"))?,
    )
    .await?;
    from_json(&body)
}

/// GETs (or PUTs) a small document, within two seconds.
async fn fetch(client: &Client, req: http::Request<Full<Bytes>>) -> Result<Bytes, String> {
    let uri = req.uri().to_string();
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .map_err(|_| format!("{uri}: timed out"))?
        .map_err(|e| format!("{uri}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{uri}: answered {}", resp.status()));
    }
    Ok(Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| format!("{uri}: {e}"))?
        .to_bytes())
}

/// Reads a profile of an INI file.
pub(crate) fn from_profile(text: &str, section: &str) -> Option<Credentials> {
    let mut inside = false;
    let (mut access_key, mut secret_key, mut session_token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => access_key = v,
                "aws_secret_access_key" => secret_key = v,
                "aws_session_token" => session_token = v,
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key: access_key?,
        secret_key: secret_key?,
        session_token,
        // Files change: read them again now and then.
        refresh_at: Some(SystemTime::now() + Duration::from_secs(15 * 60)),
    })
}

/// Reads the container's or the instance's credentials document.
pub(crate) fn from_json(body: &[u8]) -> Result<Credentials, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("credentials are not JSON: {e}"))?;
    let text = |k: &str| v.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let refresh_at = text("Expiration").and_then(|e| parse_time(&e)).map(|at| {
        at.checked_sub(Duration::from_secs(300))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    Ok(Credentials {
        access_key: text("AccessKeyId").ok_or("credentials without `AccessKeyId`")?,
        secret_key: text("SecretAccessKey").ok_or("credentials without `SecretAccessKey`")?,
        session_token: text("Token"),
        refresh_at,
    })
}

/// `2026-11-28T12:00:00Z` (seconds may have a fraction; the zone is UTC).
fn parse_time(s: &str) -> Option<SystemTime> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+', '.']).next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let days =
        crate::throttle::days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(day).ok()?);
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_documents() {
        let ini = "[default]\naws_access_key_id = A\naws_secret_access_key=S\n[other]\naws_access_key_id=B\n";
        let c = from_profile(ini, "default").unwrap();
        assert_eq!((c.access_key.as_str(), c.secret_key.as_str()), ("A", "S"));
        assert!(from_profile(ini, "other").is_none(), "no secret");
        let doc = br#"{"AccessKeyId":"K","SecretAccessKey":"S","Token":"T","Expiration":"2030-01-02T03:04:05Z"}"#;
        let c = from_json(doc).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        let at = c
            .refresh_at
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(at, 1_893_553_445 - 300);
        assert_eq!(
            region_of("arn:aws:lambda:eu-west-1:1:function:f", None, |_| None).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of("f", Some("us-east-2"), |_| None).as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_of("f", None, |_| None), None);
    }
}
