//! Stages and interpolation: `${stageVariables.NAME}` and `${env.NAME}` resolved once at start.
//!
//! A missing variable stops start-up with an error that names it; nothing is ever silently
//! replaced by an empty string.

use std::collections::BTreeMap;
use std::fmt;

/// A stage as the spec declares it.
#[derive(Debug, Clone, Copy)]
pub struct StageDef {
    /// Its name.
    pub name: &'static str,
    /// Its variables, whose values may use `${env.NAME}`.
    pub variables: &'static [(&'static str, &'static str)],
    /// Its `validate.responses` setting, if it sets one.
    pub validate_responses: Option<ResponseMode>,
    /// Its stage-wide bucket (`throttle`), if it sets one.
    pub throttle: Option<crate::throttle::Rate>,
}

/// Why the gateway cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// `--stage` names no stage of the spec.
    UnknownStage {
        /// The name asked for.
        wanted: String,
        /// The names the spec declares.
        known: Vec<&'static str>,
    },
    /// An environment variable that a value needs is not set.
    MissingEnv {
        /// The variable.
        name: String,
        /// Where it is used.
        context: String,
    },
    /// A stage variable that a value needs is not declared by the selected stage.
    MissingStageVariable {
        /// The variable.
        name: String,
        /// The stage.
        stage: String,
        /// Where it is used.
        context: String,
    },
    /// A value is not usable (an unparseable URL, …).
    Invalid(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::UnknownStage { wanted, known } => {
                write!(
                    f,
                    "unknown stage `{wanted}`; the spec declares: {}",
                    known.join(", ")
                )
            }
            StartError::MissingEnv { name, context } => {
                write!(
                    f,
                    "environment variable `{name}` is not set (needed by {context})"
                )
            }
            StartError::MissingStageVariable {
                name,
                stage,
                context,
            } => {
                write!(
                    f,
                    "stage `{stage}` has no variable `{name}` (needed by {context})"
                )
            }
            StartError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for StartError {}

/// What to do with upstream answers that break the spec (`validate.responses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Not checked.
    Off,
    /// Checked; a mismatch is logged and the answer passes.
    Log,
    /// Checked; a mismatch is logged and replaced by a 502.
    Enforce,
}

/// The selected stage with its variables resolved.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Its name.
    pub name: String,
    variables: BTreeMap<String, String>,
    /// Its `validate.responses` setting, if it sets one.
    pub validate_responses: Option<ResponseMode>,
    /// Its stage-wide bucket, if it sets one.
    pub throttle: Option<crate::throttle::Rate>,
}

/// Selects a stage (`wanted`, else the first declared) and resolves its variables.
pub fn resolve_stage(stages: &[StageDef], wanted: Option<&str>) -> Result<Stage, StartError> {
    let def = match wanted {
        Some(w) => stages
            .iter()
            .find(|s| s.name == w)
            .ok_or_else(|| StartError::UnknownStage {
                wanted: w.to_string(),
                known: stages.iter().map(|s| s.name).collect(),
            })?,
        None => stages
            .first()
            .ok_or_else(|| StartError::Invalid("the gateway declares no stage".into()))?,
    };
    let mut stage = Stage {
        name: def.name.to_string(),
        variables: BTreeMap::new(),
        validate_responses: def.validate_responses,
        throttle: def.throttle,
    };
    for (k, v) in def.variables {
        let value = stage.interpolate(v, &format!("stage variable `{k}`"))?;
        stage.variables.insert((*k).to_string(), value);
    }
    Ok(stage)
}

impl Stage {
    /// Its variables, resolved.
    pub(crate) fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// A stage with these variables (for tests and embedding).
    pub fn new(name: &str, variables: &[(&str, &str)]) -> Stage {
        Stage {
            name: name.to_string(),
            variables: variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            validate_responses: None,
            throttle: None,
        }
    }

    /// `template` interpolated, as an `http://` or `https://` URL (an authorizer's, a
    /// WebSocket route's); an error naming `context` otherwise.
    #[cfg_attr(
        not(any(feature = "authorizer", feature = "websocket")),
        allow(dead_code)
    )]
    pub(crate) fn http_url(&self, template: &str, context: &str) -> Result<http::Uri, StartError> {
        let url = self.interpolate(template, context)?;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(StartError::Invalid(format!(
                "{context}: `{url}` is not an http:// or https:// URL"
            )));
        }
        url.parse()
            .map_err(|e| StartError::Invalid(format!("{context}: `{url}`: {e}")))
    }

    /// Replaces every `${stageVariables.NAME}` and `${env.NAME}` in `template`.
    pub fn interpolate(&self, template: &str, context: &str) -> Result<String, StartError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(StartError::Invalid(format!(
                    "unterminated `${{` in {context}"
                )));
            };
            let inner = &after[..end];
            match inner.split_once('.') {
                Some(("stageVariables", name)) => match self.variables.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(StartError::MissingStageVariable {
                            name: name.to_string(),
                            stage: self.name.clone(),
                            context: context.to_string(),
                        })
                    }
                },
                Some(("env", name)) => match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => {
                        return Err(StartError::MissingEnv {
                            name: name.to_string(),
                            context: context.to_string(),
                        })
                    }
                },
                _ => {
                    return Err(StartError::Invalid(format!(
                        "`${{{inner}}}` in {context} is not an interpolation"
                    )))
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGES: &[StageDef] = &[
        StageDef {
            name: "dev",
            variables: &[("orders", "http://127.0.0.1:9001")],
            validate_responses: None,
            throttle: None,
        },
        StageDef {
            name: "prod",
            variables: &[("orders", "${env.GWGEN_TEST_SURELY_UNSET_VAR}")],
            validate_responses: Some(ResponseMode::Log),
            throttle: None,
        },
    ];

    #[test]
    fn first_stage_is_the_default() {
        let s = resolve_stage(STAGES, None).unwrap();
        assert_eq!(s.name, "dev");
        assert_eq!(
            s.interpolate("${stageVariables.orders}/v2", "t").unwrap(),
            "http://127.0.0.1:9001/v2"
        );
    }

    #[test]
    fn missing_values_are_named() {
        let err = resolve_stage(STAGES, Some("prod")).unwrap_err();
        assert!(
            err.to_string().contains("GWGEN_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        let err = resolve_stage(STAGES, Some("qa")).unwrap_err();
        assert!(err.to_string().contains("dev, prod"), "{err}");
        let dev = resolve_stage(STAGES, None).unwrap();
        let err = dev
            .interpolate("${stageVariables.nope}", "the integration of GET /x")
            .unwrap_err();
        assert!(
            err.to_string().contains("`nope`") && err.to_string().contains("GET /x"),
            "{err}"
        );
    }
}
