//! The `lambda` integration (feature `lambda`): the request becomes API Gateway's proxy event
//! (payload format 1.0 or 2.0, [`event`]), a function answers it, and its answer becomes the
//! response as API Gateway reads it.
//!
//! A function runs on AWS ([`aws`]: the `Invoke` call signed with SigV4) or on this machine
//! ([`local`]: the gateway hosts the Lambda Runtime API and runs the function's processes).
//! Routes that name the same function share it: one set of processes, one credential cache.
//!
//! How failures answer, as API Gateway's do: a function error, an unhandled exception, a
//! process that exits, or an answer API Gateway could not read is 502 ("Internal server
//! error"); no answer within the integration's `timeout` is 504 ("Endpoint request timed out").
//! The function's own statuses (4xx, 5xx) pass through.

#[cfg(feature = "lambda")]
pub(crate) mod aws;
#[cfg(any(feature = "lambda", feature = "websocket"))]
#[cfg_attr(not(feature = "lambda"), allow(dead_code))]
pub(crate) mod event;
#[cfg(feature = "lambda")]
pub(crate) mod local;

#[cfg(feature = "lambda")]
use std::sync::Arc;
#[cfg(feature = "lambda")]
use std::time::Duration;

#[cfg(feature = "lambda")]
use bytes::Bytes;

#[cfg(feature = "lambda")]
use crate::stage::{Stage, StartError};

/// The payload format of the events (`payload_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// REST APIs' format.
    V1,
    /// HTTP APIs' format.
    V2,
}

#[cfg(feature = "lambda")]
/// How an invocation failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The function reported an error (its error document).
    Function(Bytes),
    /// No answer in time.
    Timeout,
    /// The function could not be called.
    Unavailable(String),
}

#[cfg(feature = "lambda")]
/// A function, where it runs.
#[derive(Debug)]
pub(crate) enum Function {
    /// On AWS.
    Aws(Box<aws::AwsFunction>),
    /// On this machine.
    Local(local::LocalFunction),
}

#[cfg(feature = "lambda")]
impl Function {
    /// One invocation: the function's answer, or why there is none.
    pub(crate) async fn invoke(&self, payload: Bytes, timeout: Duration) -> Result<Bytes, Failure> {
        match self {
            Function::Aws(f) => f.invoke(payload, timeout).await,
            Function::Local(f) => f.invoke(payload, timeout).await,
        }
    }
}

/// A function as the spec gives it (`integration: { type: lambda, … }` or a Lambda authorizer);
/// strings may interpolate stage and environment variables.
#[derive(Debug, Clone, Copy)]
pub struct LambdaDef {
    /// `function`: a name or ARN (on AWS), or the local function's name.
    pub function: &'static str,
    /// `payload_format`.
    pub payload_format: PayloadFormat,
    /// `region` ("": from the ARN or the environment).
    pub region: &'static str,
    /// `endpoint` ("": AWS's).
    pub endpoint: &'static str,
    /// `command` (empty: the function is on AWS).
    pub command: &'static [&'static str],
    /// `env`, for local processes.
    pub env: &'static [(&'static str, &'static str)],
    /// `handler` (`_HANDLER`).
    pub handler: &'static str,
    /// `workdir` ("": the gateway's).
    pub workdir: &'static str,
    /// `concurrency`: most local processes.
    pub concurrency: u32,
    /// `memory_mb` (0: no limit).
    pub memory_mb: u32,
}

#[cfg(feature = "lambda")]
/// A route's Lambda integration.
#[derive(Debug, Clone)]
pub struct LambdaIntegration {
    pub(crate) function: Arc<Function>,
    pub(crate) format: PayloadFormat,
    pub(crate) timeout: Duration,
    /// `binary_media_types` (payload 1.0).
    pub(crate) binary: &'static [&'static str],
}

#[cfg(feature = "lambda")]
#[cfg(feature = "lambda")]
/// The function `def` names on `stage`, shared with every route that names the same one.
pub(crate) fn function(
    def: &LambdaDef,
    stage: &Stage,
    what: &str,
) -> Result<Arc<Function>, StartError> {
    static REGISTRY: crate::shared::Registry<Function> = crate::shared::Registry::new();
    let text = |s: &str, part: &str| stage.interpolate(s, &format!("the {part} of {what}"));
    let name = text(def.function, "function")?;
    let command = def
        .command
        .iter()
        .map(|c| text(c, "command"))
        .collect::<Result<Vec<_>, _>>()?;
    let env = def
        .env
        .iter()
        .map(|(k, v)| Ok(((*k).to_string(), text(v, "env")?)))
        .collect::<Result<Vec<_>, StartError>>()?;
    let region = text(def.region, "region")?;
    let endpoint = text(def.endpoint, "endpoint")?;
    let handler = text(def.handler, "handler")?;
    let workdir = text(def.workdir, "workdir")?;
    let key = format!(
        "{name}\0{command:?}\0{env:?}\0{region}\0{endpoint}\0{handler}\0{workdir}\0{}\0{}",
        def.concurrency, def.memory_mb
    );
    REGISTRY.get_or_make(key, || {
    if name.is_empty() && command.is_empty() {
        return Err(StartError::Invalid(format!(
            "{what} names no function: set `function` or `command`"
        )));
    }
    let env_var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let f = if command.is_empty() {
        let region = aws::region_of(&name, Some(&region), env_var).ok_or_else(|| {
            StartError::Invalid(format!(
                "{what}: the function `{name}` has no region: set `region`, use its ARN, or set AWS_REGION"
            ))
        })?;
        Function::Aws(Box::new(aws::AwsFunction::new(
            name,
            region,
            Some(endpoint),
        )))
    } else {
        let region =
            aws::region_of("", Some(&region), env_var).unwrap_or_else(|| "us-east-1".into());
        Function::Local(local::LocalFunction::new(local::LocalConfig {
            name: if name.is_empty() {
                "function".into()
            } else {
                name
            },
            command,
            env,
            handler,
            workdir: Some(workdir).filter(|w| !w.is_empty()),
            concurrency: def.concurrency.max(1) as usize,
            memory_mb: u64::from(def.memory_mb),
            region,
        }))
    };
    Ok(f)
    })
}

#[cfg(feature = "lambda")]
impl LambdaIntegration {
    /// A route's integration with the function `def` names, its events in `def`'s payload format.
    pub fn new(
        stage: &Stage,
        def: &LambdaDef,
        timeout_ms: u64,
        binary: &'static [&'static str],
        what: &str,
    ) -> Result<LambdaIntegration, StartError> {
        Ok(LambdaIntegration {
            function: function(def, stage, what)?,
            format: def.payload_format,
            timeout: Duration::from_millis(timeout_ms),
            binary,
        })
    }
}
