//! Emitting: the IR into the files of a standalone gateway crate.
//!
//! Rust is built with `quote!` and formatted with `prettyplease`; spec text reaches it only as
//! string literals (`Literal::string`), and every identifier comes from `crate::naming` or is
//! positional (`p0`, `p1`). The crate's text files are askama templates from `templates/`.
//! Output is deterministic: a `BTreeMap` of files, no timestamps, no paths of this machine.

use std::collections::BTreeMap;
use std::path::Path;

use askama::Template;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{Gateway, KeyIn, Route, SchemeType, Segment};
use crate::xgw::{
    AuthorizerKind, IntegrationKind, KeySource, OnStateError, QuotaPeriod, ResponseValidation,
    StateBackend, ThrottlePer,
};

/// Where the generated crate takes `gwgen-runtime` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// A copy of the runtime's source written beside the crate (`gwgen-runtime/`), so the crate
    /// builds anywhere crates.io is reachable. The default.
    Vendored,
    /// A path dependency (relative to the generated crate), for builds inside this repository.
    Path(String),
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Where the runtime comes from.
    pub runtime: RuntimeSource,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            runtime: RuntimeSource::Vendored,
        }
    }
}

/// A generated crate: relative path → contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCrate {
    /// The Cargo package name (also the binary's name).
    pub package: String,
    /// The files.
    pub files: BTreeMap<String, String>,
}

impl GeneratedCrate {
    /// Writes the files under `dir`, touching only those whose contents changed (so cargo
    /// rebuilds only what changed). Returns how many were written.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<usize> {
        let mut written = 0;
        for (rel, contents) in &self.files {
            let path = dir.join(rel);
            if std::fs::read(&path).ok().as_deref() == Some(contents.as_bytes()) {
                continue;
            }
            write_atomic(&path, contents.as_bytes())?;
            written += 1;
        }
        Ok(written)
    }
}

/// Writes a file by renaming a finished temporary file over it, so a concurrent reader (cargo,
/// another gwgen) never sees it half written.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

const GWGEN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The runtime's sources, for vendoring.
const RUNTIME_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../runtime/src/lib.rs")),
    (
        "src/websocket/mod.rs",
        include_str!("../../runtime/src/websocket/mod.rs"),
    ),
    (
        "src/websocket/cluster.rs",
        include_str!("../../runtime/src/websocket/cluster.rs"),
    ),
    (
        "src/websocket/connection.rs",
        include_str!("../../runtime/src/websocket/connection.rs"),
    ),
    (
        "src/websocket/event.rs",
        include_str!("../../runtime/src/websocket/event.rs"),
    ),
    (
        "src/websocket/registry.rs",
        include_str!("../../runtime/src/websocket/registry.rs"),
    ),
    ("src/admin.rs", include_str!("../../runtime/src/admin.rs")),
    ("src/binary.rs", include_str!("../../runtime/src/binary.rs")),
    ("src/proxy.rs", include_str!("../../runtime/src/proxy.rs")),
    (
        "src/progress.rs",
        include_str!("../../runtime/src/progress.rs"),
    ),
    (
        "src/fuzzing.rs",
        include_str!("../../runtime/src/fuzzing.rs"),
    ),
    ("src/server.rs", include_str!("../../runtime/src/server.rs")),
    ("src/trace.rs", include_str!("../../runtime/src/trace.rs")),
    (
        "src/pipeline/mod.rs",
        include_str!("../../runtime/src/pipeline/mod.rs"),
    ),
    (
        "src/pipeline/auth.rs",
        include_str!("../../runtime/src/pipeline/auth.rs"),
    ),
    (
        "src/pipeline/cache.rs",
        include_str!("../../runtime/src/pipeline/cache.rs"),
    ),
    (
        "src/pipeline/integration.rs",
        include_str!("../../runtime/src/pipeline/integration.rs"),
    ),
    (
        "src/pipeline/log.rs",
        include_str!("../../runtime/src/pipeline/log.rs"),
    ),
    (
        "src/pipeline/respond.rs",
        include_str!("../../runtime/src/pipeline/respond.rs"),
    ),
    (
        "src/pipeline/route.rs",
        include_str!("../../runtime/src/pipeline/route.rs"),
    ),
    (
        "src/pipeline/throttle.rs",
        include_str!("../../runtime/src/pipeline/throttle.rs"),
    ),
    (
        "src/pipeline/validate.rs",
        include_str!("../../runtime/src/pipeline/validate.rs"),
    ),
    ("src/config.rs", include_str!("../../runtime/src/config.rs")),
    (
        "src/gateway.rs",
        include_str!("../../runtime/src/gateway.rs"),
    ),
    ("src/h1.rs", include_str!("../../runtime/src/h1.rs")),
    (
        "src/integration.rs",
        include_str!("../../runtime/src/integration.rs"),
    ),
    (
        "src/observe.rs",
        include_str!("../../runtime/src/observe.rs"),
    ),
    ("src/path.rs", include_str!("../../runtime/src/path.rs")),
    (
        "src/percore.rs",
        include_str!("../../runtime/src/percore.rs"),
    ),
    ("src/pool.rs", include_str!("../../runtime/src/pool.rs")),
    (
        "src/problem.rs",
        include_str!("../../runtime/src/problem.rs"),
    ),
    ("src/router.rs", include_str!("../../runtime/src/router.rs")),
    ("src/stage.rs", include_str!("../../runtime/src/stage.rs")),
    ("src/json.rs", include_str!("../../runtime/src/json.rs")),
    ("src/cors.rs", include_str!("../../runtime/src/cors.rs")),
    (
        "src/deadline.rs",
        include_str!("../../runtime/src/deadline.rs"),
    ),
    ("src/state.rs", include_str!("../../runtime/src/state.rs")),
    (
        "src/throttle.rs",
        include_str!("../../runtime/src/throttle.rs"),
    ),
    (
        "src/cache/mod.rs",
        include_str!("../../runtime/src/cache/mod.rs"),
    ),
    (
        "src/cache/store.rs",
        include_str!("../../runtime/src/cache/store.rs"),
    ),
    ("src/tls.rs", include_str!("../../runtime/src/tls.rs")),
    (
        "src/transform.rs",
        include_str!("../../runtime/src/transform.rs"),
    ),
    (
        "src/compress.rs",
        include_str!("../../runtime/src/compress.rs"),
    ),
    ("src/shared.rs", include_str!("../../runtime/src/shared.rs")),
    (
        "src/client_cert.rs",
        include_str!("../../runtime/src/client_cert.rs"),
    ),
    ("src/https.rs", include_str!("../../runtime/src/https.rs")),
    (
        "src/balance.rs",
        include_str!("../../runtime/src/balance.rs"),
    ),
    (
        "src/lambda/mod.rs",
        include_str!("../../runtime/src/lambda/mod.rs"),
    ),
    (
        "src/lambda/event.rs",
        include_str!("../../runtime/src/lambda/event.rs"),
    ),
    (
        "src/lambda/local.rs",
        include_str!("../../runtime/src/lambda/local.rs"),
    ),
    (
        "src/lambda/aws.rs",
        include_str!("../../runtime/src/lambda/aws.rs"),
    ),
    (
        "src/auth/mod.rs",
        include_str!("../../runtime/src/auth/mod.rs"),
    ),
    (
        "src/auth/keys.rs",
        include_str!("../../runtime/src/auth/keys.rs"),
    ),
    (
        "src/auth/jwt.rs",
        include_str!("../../runtime/src/auth/jwt.rs"),
    ),
    (
        "src/auth/authorizer.rs",
        include_str!("../../runtime/src/auth/authorizer.rs"),
    ),
    (
        "src/validate/mod.rs",
        include_str!("../../runtime/src/validate/mod.rs"),
    ),
    (
        "src/validate/format.rs",
        include_str!("../../runtime/src/validate/format.rs"),
    ),
    (
        "src/validate/input.rs",
        include_str!("../../runtime/src/validate/input.rs"),
    ),
];
const RUNTIME_MANIFEST: &str = include_str!("../../runtime/Cargo.toml");

/// The runtime's manifest made standalone (workspace inheritance replaced by values).
fn vendored_manifest() -> String {
    let mut out = String::from("# @generated by gwgen: a copy of gwgen-runtime's source, vendored so this crate builds anywhere.\n");
    for line in RUNTIME_MANIFEST.lines() {
        let line = match line.trim() {
            "version.workspace = true" => format!("version = \"{GWGEN_VERSION}\""),
            "edition.workspace = true" => "edition = \"2021\"".to_string(),
            "license.workspace = true" => "license = \"Apache-2.0\"".to_string(),
            "rust-version.workspace = true" => "rust-version = \"1.85\"".to_string(),
            "[lints]" | "workspace = true" => continue,
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The runtime's source as a standalone crate (the copy vendored into generated crates, and the
/// one `gwgen build` keeps in its cache).
pub fn vendored_runtime() -> GeneratedCrate {
    let mut files = BTreeMap::new();
    files.insert("Cargo.toml".to_string(), vendored_manifest());
    for (rel, text) in RUNTIME_FILES {
        files.insert((*rel).to_string(), (*text).to_string());
    }
    GeneratedCrate {
        package: "gwgen-runtime".into(),
        files,
    }
}

#[derive(Template)]
#[template(path = "Cargo.toml.askama", escape = "none")]
struct CargoToml<'a> {
    gwgen_version: &'a str,
    package: &'a str,
    lib_name: &'a str,
    api_version: &'a str,
    description: &'a str,
    runtime_dep: &'a str,
    runtime_features: &'a str,
}

#[derive(Template)]
#[template(path = "README.md.askama", escape = "none")]
struct Readme<'a> {
    gwgen_version: &'a str,
    title: &'a str,
    default_stage: &'a str,
    stages: &'a str,
    route_count: usize,
}

#[derive(Template)]
#[template(path = "Dockerfile.askama", escape = "none")]
struct Dockerfile<'a> {
    gwgen_version: &'a str,
    package: &'a str,
}

#[derive(Template)]
#[template(path = "dockerignore.askama", escape = "none")]
struct DockerIgnore<'a> {
    gwgen_version: &'a str,
}

/// Text from the spec made safe for a Markdown line: no control characters, no HTML.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | '`') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// A TOML basic string (a JSON string literal is one).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A semver-compatible package version from `info.version` (`0.0.0` when it is not one).
fn package_version(v: &str) -> String {
    let core: Vec<&str> = v.trim_start_matches('v').split('.').collect();
    let nums: Vec<u64> = core.iter().take(3).map_while(|p| p.parse().ok()).collect();
    match nums.as_slice() {
        [a, b, c] => format!("{a}.{b}.{c}"),
        [a, b] => format!("{a}.{b}.0"),
        [a] => format!("{a}.0.0"),
        _ => "0.0.0".into(),
    }
}

fn lit(s: &str) -> Literal {
    Literal::string(s)
}

/// Generates the crate for a lowered gateway. `spec_name` is only used to name the package when
/// the spec has no title.
pub fn generate(
    checked: &crate::Checked,
    options: &GenerateOptions,
) -> Result<GeneratedCrate, EmitError> {
    crate::on_big_stack(|| {
        let (gw, code) = compiled(checked)?;
        generate_crate(&gw, code, options)
    })
}

/// The checked gateway with its validators compiled, and their code. The code goes straight
/// from the validator compiler into emission, on one thread: the IR holds no code.
fn compiled(checked: &crate::Checked) -> Result<(Gateway, TokenStream), EmitError> {
    let gw = checked
        .gateway
        .as_ref()
        .ok_or_else(|| EmitError("the spec was not lowered".into()))?;
    let mut diags = crate::diag::Diagnostics::default();
    let (validation, code) = crate::validation::compile(&checked.sources, gw, &mut diags, true);
    if let Some(d) = diags.iter().find(|d| d.severity == crate::Severity::Error) {
        return Err(EmitError(format!("{}: {}", d.code.as_str(), d.message)));
    }
    let mut gw = gw.clone();
    gw.validation = validation;
    Ok((gw, code))
}

fn generate_crate(
    gw: &Gateway,
    code: TokenStream,
    options: &GenerateOptions,
) -> Result<GeneratedCrate, EmitError> {
    let slug = crate::naming::snake_case(if gw.title.trim().is_empty() {
        "api"
    } else {
        &gw.title
    });
    let lib_name = format!("{}_gateway", slug.trim_end_matches('_'));
    let package = lib_name.replace('_', "-");
    let uses_proxy = gw.routes.iter().any(|r| {
        r.settings
            .integration
            .as_ref()
            .is_some_and(|i| i.kind == IntegrationKind::Http)
    });
    let runtime_dep = match &options.runtime {
        RuntimeSource::Vendored => "path = \"gwgen-runtime\"".to_string(),
        RuntimeSource::Path(p) => format!("path = {}", toml_string(p)),
    };
    // mimalloc: fewer cycles per request than the system allocator, and steadier latency.
    let mut features = vec!["\"mimalloc\""];
    if gw.validation.patterns {
        features.push("\"patterns\"");
    }
    let redis_keys = gw
        .root
        .api_keys
        .as_ref()
        .is_some_and(|k| k.source == KeySource::Redis);
    let redis_state = gw
        .root
        .state
        .as_ref()
        .is_some_and(|s| s.backend == StateBackend::Redis);
    if (redis_keys && uses_scheme(gw, SchemeKind::ApiKey)) || (redis_state && uses_traffic(gw)) {
        features.push("\"redis\"");
    }
    if uses_cache(gw) {
        features.push("\"cache\"");
    }
    if uses_scheme(gw, SchemeKind::Authorizer) {
        features.push("\"authorizer\"");
    }
    if uses_jwt(gw) {
        features.push("\"jwt\"");
    }
    if uses_proxy {
        features.push("\"proxy\"");
    }
    if gw.routes.iter().any(|r| r.settings.compression.is_some()) {
        features.push("\"compression\"");
    }
    let websockets: Vec<&crate::xgw::WebSocket> = gw
        .routes
        .iter()
        .filter_map(|r| r.websocket.as_ref().map(|w| &w.settings))
        .collect();
    if !websockets.is_empty() {
        features.push("\"websocket\"");
    }
    let websocket_lambda = websockets.iter().any(|w| {
        w.routes
            .values()
            .any(|r| r.integration.kind == IntegrationKind::Lambda)
    });
    let lambda_authorizer = websocket_lambda
        || gw.security_schemes.values().any(|s| {
            s.settings
                .authorizer
                .as_ref()
                .is_some_and(|a| a.kind == AuthorizerKind::Lambda)
        });
    if lambda_authorizer
        || gw.routes.iter().any(|r| {
            r.settings
                .integration
                .as_ref()
                .is_some_and(|i| i.kind == IntegrationKind::Lambda)
        })
    {
        features.push("\"lambda\"");
    }
    let http2_upstream = gw.routes.iter().any(|r| {
        r.settings.integration.as_ref().is_some_and(|i| {
            i.kind == IntegrationKind::Http && i.protocol == Some(crate::xgw::Protocol::Http2)
        })
    });
    if gw.root.speaks_http2() || http2_upstream {
        features.push("\"http2\"");
    }
    if let Some(tls) = &gw.root.tls {
        let client_ca =
            tls.client_ca.is_some() || gw.root.domains.iter().any(|d| d.client_ca.is_some());
        features.push(if client_ca { "\"mtls\"" } else { "\"https\"" });
    }
    let runtime_features = &features.join(", ");
    let mut files = BTreeMap::new();
    let stage_names: Vec<&str> = gw.stages.iter().map(|s| s.name.as_str()).collect();
    files.insert(
        "Cargo.toml".to_string(),
        CargoToml {
            gwgen_version: GWGEN_VERSION,
            package: &package,
            lib_name: &lib_name,
            api_version: &toml_string(&package_version(&gw.api_version)),
            description: &toml_string(&format!("API gateway for {}", plain(&gw.title))),
            runtime_dep: &runtime_dep,
            runtime_features,
        }
        .render()
        .map_err(|e| EmitError(e.to_string()))?,
    );
    files.insert(
        "README.md".to_string(),
        Readme {
            gwgen_version: GWGEN_VERSION,
            title: &plain(&gw.title),
            default_stage: &plain(stage_names.first().copied().unwrap_or("default")),
            stages: &plain(&stage_names.join(", ")),
            route_count: gw.routes.len(),
        }
        .render()
        .map_err(|e| EmitError(e.to_string()))?,
    );
    files.insert(
        "Dockerfile".to_string(),
        Dockerfile {
            gwgen_version: GWGEN_VERSION,
            package: &package,
        }
        .render()
        .map_err(|e| EmitError(e.to_string()))?,
    );
    files.insert(
        ".dockerignore".to_string(),
        DockerIgnore {
            gwgen_version: GWGEN_VERSION,
        }
        .render()
        .map_err(|e| EmitError(e.to_string()))?,
    );
    files.insert("src/lib.rs".to_string(), format_rust(lib_rs(gw, code)?)?);
    files.insert(
        "src/main.rs".to_string(),
        format_rust(main_rs(gw, &lib_name))?,
    );
    files.insert(".gitignore".to_string(), "/target\n".to_string());
    if options.runtime == RuntimeSource::Vendored {
        for (rel, text) in vendored_runtime().files {
            files.insert(format!("gwgen-runtime/{rel}"), text);
        }
    }
    for text in files.values_mut() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(GeneratedCrate { package, files })
}

/// Generated code that is not valid Rust: a bug in gwgen, reported rather than written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitError(pub String);

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gwgen generated code that does not parse ({}); please report it with the spec",
            self.0
        )
    }
}

impl std::error::Error for EmitError {}

fn format_rust(tokens: TokenStream) -> Result<String, EmitError> {
    let header = format!("// @generated by gwgen {GWGEN_VERSION}. Do not edit: regenerate from the spec instead.\n\n");
    let file = syn::parse2::<syn::File>(tokens).map_err(|e| EmitError(e.to_string()))?;
    Ok(header + &prettyplease::unparse(&file))
}

fn main_rs(gw: &Gateway, lib_name: &str) -> TokenStream {
    let lib = format_ident!("{}", lib_name);
    let title = lit(&gw.title);
    quote! {
        //! The gateway binary: `--listen`, `--stage`, `--admin-listen`, `--help`.

        fn main() -> std::process::ExitCode {
            gwgen_runtime::__private_0_1::main_with(#title, #lib::STAGE_NAMES, #lib::gateway)
        }
    }
}

fn lib_rs(gw: &Gateway, code: TokenStream) -> Result<TokenStream, EmitError> {
    let doc = lit(&format!(
        " API gateway for {}, generated by gwgen.",
        gw.title
    ));
    let body = module_body(gw, code)?;
    Ok(quote! {
        #![doc = #doc]

        #body
    })
}

/// The gateway as a module body, for `include!` from a build script's `OUT_DIR`.
pub fn module(checked: &crate::Checked) -> Result<String, EmitError> {
    crate::on_big_stack(|| {
        let (gw, code) = compiled(checked)?;
        format_rust(module_body(&gw, code)?)
    })
}

fn module_body(gw: &Gateway, code: TokenStream) -> Result<TokenStream, EmitError> {
    let stages = gw.stages.iter().map(|s| {
        let name = lit(&s.name);
        let vars = s.settings.variables.iter().map(|(k, v)| {
            let (k, v) = (lit(k), lit(v));
            quote! { (#k, #v) }
        });
        let mode = option_tokens(
            s.settings
                .validate
                .and_then(|v| v.responses)
                .map(response_mode_tokens),
        );
        let throttle = option_tokens(s.settings.throttle.as_ref().map(rate_tokens));
        quote! { rt::StageDef { name: #name, variables: &[#(#vars),*], validate_responses: #mode, throttle: #throttle } }
    });
    let stage_names = gw.stages.iter().map(|s| lit(&s.name));
    // Each stage's `description`, as the documentation of the stage table.
    let stage_docs = gw.stages.iter().map(|s| {
        let text = match &s.settings.description {
            Some(d) => format!(" - `{}`: {}", s.name, d.replace(['\r', '\n'], " ")),
            None => format!(" - `{}`", s.name),
        };
        quote! { #[doc = #text] }
    });
    let (transform_statics, transforms) = transform_tokens(gw);
    let routes = gw.routes.iter().enumerate().map(|(n, r)| {
        route_def(
            gw,
            n,
            r,
            gw.validation
                .routes
                .get(n)
                .and_then(Option::as_ref)
                .map(|_| n),
            transforms[n],
        )
    });
    let security = security_def(gw);
    let secured = gw.routes.iter().any(|r| !r.security.is_empty());
    let with_auth = if secured {
        quote! { let gw = gw.with_auth(rt::Auth::new(SECURITY, &stage)?); }
    } else {
        quote! {}
    };
    let (validation_statics, schema_code) = validation_tokens(gw, code)?;
    let (responses, with_responses) = if gw.root.gateway_responses.is_empty() {
        (quote! {}, quote! {})
    } else {
        (
            gateway_responses(gw),
            quote! { let gw = gw.with_responses(RESPONSES); },
        )
    };
    let (traffic, with_traffic) = if uses_traffic(gw) {
        (
            traffic_def(gw),
            quote! { let gw = gw.with_traffic(&TRAFFIC, &stage)?; },
        )
    } else {
        (quote! {}, quote! {})
    };
    let limits = gw.defaults.limits.as_ref();
    let body_limit =
        Literal::u64_unsuffixed(limits.and_then(|l| l.body).map(|b| b.0).unwrap_or(10 << 20));
    let header_limit = Literal::u64_unsuffixed(
        limits
            .and_then(|l| l.headers)
            .map(|b| b.0)
            .unwrap_or(64 << 10),
    );
    let head_timeout =
        Literal::u64_unsuffixed(limits.and_then(|l| l.head_timeout).map_or(30_000, |t| t.0));
    let drain_timeout =
        Literal::u64_unsuffixed(limits.and_then(|l| l.drain_timeout).map_or(30_000, |t| t.0));
    let max_connections =
        Literal::u64_unsuffixed(limits.and_then(|l| l.max_connections).unwrap_or(10_000));
    let body_timeout =
        Literal::u64_unsuffixed(limits.and_then(|l| l.body_timeout).map_or(60_000, |t| t.0));
    let validation_memory = Literal::u64_unsuffixed(
        limits
            .and_then(|l| l.validation_memory)
            .map_or(256 << 20, |b| b.0),
    );
    let send_timeout =
        Literal::u64_unsuffixed(limits.and_then(|l| l.send_timeout).map_or(60_000, |t| t.0));
    let max_per_client =
        option_tokens(limits.and_then(|l| l.max_connections_per_client).map(|n| {
            let n = Literal::u64_unsuffixed(n);
            quote! { #n }
        }));
    let slashes = match gw.root.escaped_slashes {
        crate::xgw::EscapedSlashes::Reject => quote! {},
        crate::xgw::EscapedSlashes::Keep => quote! { let gw = gw.keep_escaped_slashes(); },
    };
    let http2 = if gw.root.speaks_http2() {
        quote! { let gw = gw.with_http2(); }
    } else {
        quote! {}
    };
    let tls = match &gw.root.tls {
        Some(t) => {
            let certificates = t.certificates.iter().map(|c| {
                let (cert, key) = (lit(&c.cert), lit(&c.key));
                let ocsp = lit(c.ocsp.as_deref().unwrap_or_default());
                quote! { (#cert, #key, #ocsp) }
            });
            let domain_cas = gw
                .root
                .domains
                .iter()
                .filter(|d| d.client_ca.is_some())
                .map(|d| {
                    let name = lit(&d.name);
                    let ca = lit(d.client_ca.as_deref().unwrap_or_default());
                    let crl = lit(d.client_crl.as_deref().unwrap_or_default());
                    quote! { (#name, #ca, #crl) }
                });
            let client_ca = lit(t.client_ca.as_deref().unwrap_or_default());
            let client_crl = lit(t.client_crl.as_deref().unwrap_or_default());
            let min_version = lit(t.min_version.as_deref().unwrap_or("1.2"));
            let hsts = lit(&t.hsts.as_ref().map(|h| h.value()).unwrap_or_default());
            quote! {
                let gw = gw.with_tls_listener(&stage, &rt::TlsListenerDef {
                    certificates: &[#(#certificates),*], client_ca: #client_ca,
                    client_crl: #client_crl, min_version: #min_version, hsts: #hsts,
                    domain_cas: &[#(#domain_cas),*],
                })?;
            }
        }
        None => quote! {},
    };
    let mut entry = quote! {};
    if !gw.root.domains.is_empty() {
        let domains = gw.root.domains.iter().map(|d| {
            let (name, base) = (lit(&d.name), lit(d.base_path.as_deref().unwrap_or("/")));
            quote! { (#name, #base) }
        });
        let reject = gw.root.unknown_hosts != Some(crate::xgw::UnknownHosts::Serve);
        entry.extend(quote! { let gw = gw.with_domains(&[#(#domains),*], #reject); });
    }
    if gw.root.stage_prefix {
        entry.extend(quote! { let gw = gw.with_stage_prefix(); });
    }
    let admin = match gw.root.admin.as_ref().and_then(|a| a.token.as_deref()) {
        Some(token) if gw.routes.iter().any(|r| r.websocket.is_some()) => {
            let token = lit(token);
            quote! { let gw = gw.with_admin_token(&stage, #token)?; }
        }
        _ => quote! {},
    };
    let tree = route_tree(gw);
    Ok(quote! {
        use gwgen_runtime::__private_0_1 as rt;

        /// The stages the spec declares; the first is the default.
        ///
        #(#stage_docs)*
        pub const STAGES: &[rt::StageDef] = &[#(#stages),*];

        /// The stage names, for `--help`.
        pub const STAGE_NAMES: &[&str] = &[#(#stage_names),*];

        /// Builds the gateway for the configured stage: interpolations are resolved here, once,
        /// and a missing stage or environment variable is an error that names it.
        pub fn gateway(config: &rt::Config) -> Result<rt::Gateway, rt::StartError> {
            let stage = rt::resolve_stage(STAGES, config.stage.as_deref())?;
            let routes = Vec::from([#(#routes),*]);
            let gw = rt::Gateway::new(&stage, routes, route, rt::Limits { body: #body_limit, headers: #header_limit })
                .with_connections(rt::ConnectionLimits { head_timeout_ms: #head_timeout, drain_timeout_ms: #drain_timeout, max_connections: #max_connections, max_per_client: #max_per_client, body_timeout_ms: #body_timeout, send_timeout_ms: #send_timeout, validation_memory: #validation_memory });
            #slashes
            #entry
            #http2
            #tls
            #with_auth
            #with_traffic
            #with_responses
            #admin
            Ok(gw)
        }

        /// The gateway's API router, as `main` serves it (serve it with
        /// `into_make_service_with_connect_info::<std::net::SocketAddr>()`).
        pub fn app(config: &rt::Config) -> Result<rt::axum::Router, rt::StartError> {
            Ok(std::sync::Arc::new(gateway(config)?).router())
        }

        #security

        #traffic

        #responses

        #tree

        #validation_statics

        #transform_statics

        #schema_code
    })
}

/// A `limits` key as it applies to a route: its own (set on the operation or its path item),
/// else the gateway's.
fn route_limit<T>(
    gw: &Gateway,
    r: &Route,
    key: impl Fn(&crate::xgw::Limits) -> Option<T>,
) -> Option<T> {
    r.settings
        .limits
        .as_ref()
        .and_then(&key)
        .or_else(|| gw.defaults.limits.as_ref().and_then(&key))
}

fn route_def(
    gw: &Gateway,
    index: usize,
    r: &Route,
    validation: Option<usize>,
    transform: Option<usize>,
) -> TokenStream {
    let key = lit(&format!("{} {}", r.method, r.path));
    let template = lit(&r.path);
    let context = lit(&format!("the integration of {} {}", r.method, r.path));
    let integration = match &r.settings.integration {
        _ if r.websocket.is_some() => websocket_tokens(gw, index, r),
        Some(i) if i.kind == IntegrationKind::Http => {
            let url = lit(i
                .url
                .as_deref()
                .or_else(|| {
                    i.targets
                        .as_ref()
                        .and_then(|t| t.first())
                        .map(|t| t.url.as_str())
                })
                .unwrap_or_default());
            let append = r.integration_inherited;
            let timeout = Literal::u64_unsuffixed(
                i.timeout
                    .or(r.settings.timeout)
                    .map(|t| t.0)
                    .unwrap_or(29_000),
            );
            let base = quote! { rt::Integration::http(&stage, #url, #append, #timeout, #context)? };
            let base = match upstreams_def(i) {
                Some(def) => quote! { #base.with_upstreams(&stage, &#def, #append, #context)? },
                None => base,
            };
            let tls = i.tls.as_ref().map(|t| {
                let text = |v: &Option<String>| lit(v.as_deref().unwrap_or_default());
                let (ca, cert, key) = (text(&t.ca), text(&t.cert), text(&t.key));
                quote! { rt::UpstreamTlsDef { ca: #ca, cert: #cert, key: #key } }
            });
            match (i.protocol, tls) {
                (Some(crate::xgw::Protocol::Http2), tls) => {
                    let tls = option_tokens(tls.map(|t| quote! { &#t }));
                    quote! { #base.over_http2(&stage, #tls, #context)? }
                }
                (_, Some(tls)) => quote! { #base.with_tls(&stage, &#tls, #context)? },
                (_, None) => base,
            }
        }
        Some(i) if i.kind == IntegrationKind::Lambda => {
            let timeout = Literal::u64_unsuffixed(
                i.timeout
                    .or(r.settings.timeout)
                    .map(|t| t.0)
                    .unwrap_or(29_000),
            );
            let def = lambda_def(&i.lambda);
            let binary = gw.root.binary_media_types.iter().map(|t| lit(t));
            quote! { rt::Integration::lambda(&stage, &#def, #timeout, &[#(#binary),*], #context)? }
        }
        other => {
            let (status, content_type, body) = mock_answer(r, other.as_ref());
            let status = Literal::u16_unsuffixed(status);
            let ct = match content_type {
                Some(ct) => {
                    let ct = lit(&ct);
                    quote! { Some(#ct) }
                }
                None => quote! { None },
            };
            let body = lit(&body);
            let mut sources = Vec::new();
            // Values go in as text (a status is read from what it renders).
            let status_from = other
                .as_ref()
                .and_then(|i| i.status_from.as_deref())
                .map(|t| {
                    let nodes = crate::transform::text_template(t).unwrap_or_default();
                    text_nodes_tokens(&crate::transform::Node::as_text(nodes), &mut sources)
                });
            match status_from {
                Some(t) => quote! {
                    rt::Integration::Mock(rt::MockResponse::new(#status, #ct, #body).with_status_from(#t))
                },
                None => {
                    quote! { rt::Integration::Mock(rt::MockResponse::new(#status, #ct, #body)) }
                }
            }
        }
    };
    let names = crate::lower::template_params(&r.segments)
        .into_iter()
        .map(lit);
    // Alternatives (OR) of requirements (AND), by scheme index; `security: [{}]` lets anyone in.
    let index: Vec<&String> = gw.security_schemes.keys().collect();
    let requirements = r.security.iter().map(|req| {
        let schemes = req.schemes.iter().map(|(name, scopes)| {
            let i = Literal::usize_unsuffixed(
                index
                    .iter()
                    .position(|n| *n == name)
                    .unwrap_or(usize::MAX >> 1),
            );
            let scopes = scopes.iter().map(|s| lit(s));
            quote! { (#i, &[#(#scopes),*]) }
        });
        quote! { &[#(#schemes),*] }
    });
    let plans = r.settings.plans.iter().flatten().map(|p| lit(p));
    let cors = match &r.settings.cors {
        Some(c) => {
            let origins = c.allow_origins.iter().map(|o| lit(o));
            // Methods default to every method of the path.
            let methods: Vec<String> = if c.allow_methods.is_empty() {
                gw.routes
                    .iter()
                    .filter(|o| o.path == r.path)
                    .map(|o| o.method.to_string())
                    .collect()
            } else {
                c.allow_methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect()
            };
            let methods = methods.iter().map(|m| lit(m));
            let headers = c.allow_headers.iter().map(|h| lit(&h.to_ascii_lowercase()));
            let expose = c.expose_headers.iter().map(|h| lit(h));
            let credentials = c.allow_credentials;
            let max_age = Literal::u64_unsuffixed(c.max_age.map(|m| m.0 / 1000).unwrap_or(0));
            quote! {
                Some(&rt::CorsDef {
                    origins: &[#(#origins),*], methods: &[#(#methods),*], headers: &[#(#headers),*],
                    expose: &[#(#expose),*], credentials: #credentials, max_age: #max_age,
                })
            }
        }
        None => quote! { None },
    };
    let validation = match validation {
        Some(n) => {
            let v = format_ident!("V{}", n);
            quote! { Some(&#v) }
        }
        None => quote! { None },
    };
    let throttle = option_tokens(r.settings.throttle.as_ref().map(rate_tokens));
    let cache = option_tokens(r.settings.cache.as_ref().map(|c| {
        let template = crate::lower::template_params(&r.segments);
        let parts = c.key.iter().filter_map(|k| {
            let (kind, name) = k.split_once('.')?;
            Some(match kind {
                "path" => {
                    let i = Literal::usize_unsuffixed(template.iter().position(|p| *p == name)?);
                    quote! { rt::KeyPart::Path(#i) }
                }
                "query" => {
                    let n = lit(name);
                    quote! { rt::KeyPart::Query(#n) }
                }
                "header" => {
                    let n = lit(&name.to_ascii_lowercase());
                    quote! { rt::KeyPart::Header(#n) }
                }
                "claims" => {
                    let n = lit(name);
                    quote! { rt::KeyPart::Claim(#n) }
                }
                "context" => {
                    let n = lit(name);
                    quote! { rt::KeyPart::Context(#n) }
                }
                "client_cert" => {
                    let n = lit(name);
                    quote! { rt::KeyPart::ClientCert(#n) }
                }
                _ => return None,
            })
        });
        let ttl = Literal::u64_unsuffixed(c.ttl.0);
        let shared = c.shared;
        let invalidate = c.invalidate.iter().map(|s| lit(s));
        let max_entries = option_tokens(
            c.max_entries
                .map(Literal::u64_unsuffixed)
                .map(|l| quote! { #l }),
        );
        let mut declared: Vec<&str> = r
            .params
            .iter()
            .filter(|p| p.location == crate::ir::ParamIn::Query)
            .map(|p| p.name.as_str())
            .collect();
        declared.sort_unstable();
        declared.dedup();
        let declared = declared.into_iter().map(lit);
        let undeclared = match c.undeclared_query {
            crate::xgw::UndeclaredQuery::Key => quote! { rt::UndeclaredQuery::Key },
            crate::xgw::UndeclaredQuery::Strip => quote! { rt::UndeclaredQuery::Strip },
        };
        quote! {
            &rt::CacheDef {
                ttl_ms: #ttl, key: &[#(#parts),*], query: &[#(#declared),*],
                undeclared_query: #undeclared, shared: #shared,
                invalidate: &[#(#invalidate),*], max_entries: #max_entries,
            }
        }
    }));
    // The operation's or path item's own `limits`, where they differ from the gateway's.
    let own = r
        .settings
        .limits
        .as_ref()
        .filter(|l| Some(*l) != gw.defaults.limits.as_ref());
    let limits = option_tokens(own.map(|l| {
        let global = gw.defaults.limits.as_ref();
        let body = Literal::u64_unsuffixed(
            l.body
                .or(global.and_then(|g| g.body))
                .map_or(10 << 20, |b| b.0),
        );
        let headers = Literal::u64_unsuffixed(
            l.headers
                .or(global.and_then(|g| g.headers))
                .map_or(64 << 10, |b| b.0),
        );
        quote! { rt::Limits { body: #body, headers: #headers } }
    }));
    // A body sent to an operation that declares none: refused unless `limits` says drop.
    let undeclared_body = option_tokens(r.request_body.is_none().then(|| {
        match route_limit(gw, r, |l| l.undeclared_body) {
            Some(crate::xgw::UndeclaredBody::Drop) => quote! { rt::UndeclaredBody::Drop },
            _ => quote! { rt::UndeclaredBody::Reject },
        }
    }));
    let transform = option_tokens(transform.map(|t| {
        let t = format_ident!("T{}", t);
        quote! { &#t }
    }));
    let compression = option_tokens(r.settings.compression.as_ref().map(|c| {
        let encodings = |list: &[crate::xgw::Encoding]| {
            let list = list.iter().map(|e| match e {
                crate::xgw::Encoding::Br => quote! { rt::Encoding::Br },
                crate::xgw::Encoding::Zstd => quote! { rt::Encoding::Zstd },
                crate::xgw::Encoding::Gzip => quote! { rt::Encoding::Gzip },
                crate::xgw::Encoding::Deflate => quote! { rt::Encoding::Deflate },
            });
            quote! { &[#(#list),*] }
        };
        let responses = option_tokens(c.responses.as_ref().map(|rc| {
            let list = encodings(&rc.encodings);
            let min = Literal::u64_unsuffixed(rc.min_size.map_or(0, |b| b.0));
            let types = rc.types.iter().map(|t| lit(&t.to_ascii_lowercase()));
            quote! { rt::ResponseCompression { encodings: #list, min_size: #min, types: &[#(#types),*] } }
        }));
        let requests = option_tokens(c.requests.as_ref().map(|rq| {
            let list = encodings(&rq.encodings);
            let max = Literal::u64_unsuffixed(rq.max_size.map_or_else(
                || route_limit(gw, r, |l| l.body).map_or(10 << 20, |b| b.0),
                |b| b.0,
            ));
            quote! { rt::RequestDecompression { encodings: #list, max_size: #max } }
        }));
        quote! { &rt::CompressionDef { responses: #responses, requests: #requests } }
    }));
    quote! { rt::RouteDef { key: #key, template: #template, params: &[#(#names),*], security: &[#(#requirements),*], plans: &[#(#plans),*], integration: #integration, validation: #validation, cors: #cors, throttle: #throttle, cache: #cache, limits: #limits, undeclared_body: #undeclared_body, transform: #transform, compression: #compression } }
}

/// The routes' transforms as statics (`T0`, `T1`, …; routes with the same transform share one),
/// and each route's index among them.
fn transform_tokens(gw: &Gateway) -> (TokenStream, Vec<Option<usize>>) {
    use crate::transform::{Edits, Source, Transform};
    let mut seen: Vec<&serde_json::Value> = Vec::new();
    let mut statics = Vec::new();
    let mut index = Vec::new();
    for r in &gw.routes {
        let Some(value) = &r.settings.transform else {
            index.push(None);
            continue;
        };
        if let Some(n) = seen.iter().position(|v| *v == value) {
            index.push(Some(n));
            continue;
        }
        // `gwgen check` refused a transform that does not parse; none reaches here.
        let t = Transform::from_value(value).unwrap_or_default();
        let mut sources = Vec::new();
        // Header names were checked to be field names; the gateway reads them lowercase.
        let edits = |e: &Edits, lower: bool, sources: &mut Vec<Source>| {
            let name = |n: &String| {
                lit(&if lower {
                    n.to_ascii_lowercase()
                } else {
                    n.clone()
                })
            };
            let mut pairs = |map: &std::collections::BTreeMap<String, String>| {
                map.iter()
                    .map(|(n, text)| {
                        let (n, t) = (name(n), template_tokens(text, sources));
                        quote! { (#n, #t) }
                    })
                    .collect::<Vec<_>>()
            };
            let (set, add) = (pairs(&e.set), pairs(&e.add));
            let remove = e.remove.iter().map(name);
            quote! { rt::t::Edits { set: &[#(#set),*], add: &[#(#add),*], remove: &[#(#remove),*] } }
        };
        let request_headers = edits(&t.request.headers, true, &mut sources);
        let query = edits(&t.request.query, false, &mut sources);
        let mut response_sources = Vec::new();
        let response_headers = edits(&t.response.headers, true, &mut response_sources);
        let path = option_tokens(
            t.request
                .path
                .as_deref()
                .map(|p| template_tokens(p, &mut sources)),
        );
        let request_body = option_tokens(
            t.request
                .body
                .as_ref()
                .map(|b| body_map_tokens(b, &mut sources)),
        );
        let response_body = option_tokens(
            t.response
                .body
                .as_ref()
                .map(|b| body_map_tokens(b, &mut response_sources)),
        );
        let cases: Vec<TokenStream> = (t.response.by_status.iter())
            .filter_map(|(key, case)| {
                let (from, class) = crate::transform::status_key(key)?;
                let from = Literal::u16_unsuffixed(from);
                let to = option_tokens(case.status.map(|s| {
                    let s = Literal::u16_unsuffixed(s);
                    quote! { #s }
                }));
                let headers = edits(&case.headers, true, &mut response_sources);
                let body = option_tokens(
                    case.body
                        .as_ref()
                        .map(|b| body_map_tokens(b, &mut response_sources)),
                );
                Some(quote! {
                    rt::t::StatusCase { from: #from, class: #class, to: #to, headers: #headers, body: #body }
                })
            })
            .collect();
        let response_reads_headers = response_sources
            .iter()
            .any(|s| matches!(s, Source::Header(_)));
        let reads_answer_headers = response_sources
            .iter()
            .any(|s| matches!(s, Source::ResponseHeader(_)));
        sources.extend(response_sources);
        let reads_request_body = sources.iter().any(|s| matches!(s, Source::RequestBody(_)));
        let identity = t.request.identity;
        let status = t.response.status.iter().filter_map(|(from, to)| {
            let (from, class) = crate::transform::status_key(from)?;
            let from = Literal::u16_unsuffixed(from);
            let to = Literal::u16_unsuffixed(*to);
            Some(quote! { (#from, #class, #to) })
        });
        let name = format_ident!("T{}", seen.len());
        statics.push(quote! {
            static #name: rt::t::TransformDef = rt::t::TransformDef {
                request_headers: #request_headers,
                query: #query,
                path: #path,
                identity: #identity,
                response_headers: #response_headers,
                status: &[#(#status),*],
                request_body: #request_body,
                response_body: #response_body,
                reads_request_body: #reads_request_body,
                response_reads_headers: #response_reads_headers,
                reads_answer_headers: #reads_answer_headers,
                cases: &[#(#cases),*],
            };
        });
        index.push(Some(seen.len()));
        seen.push(value);
    }
    (quote! { #(#statics)* }, index)
}

/// A value's source, as runtime data.
fn source_tokens(source: &crate::transform::Source) -> TokenStream {
    use crate::transform::Source;
    let named = |kind: TokenStream, name: &str| {
        let name = lit(name);
        quote! { rt::t::Source::#kind(#name) }
    };
    match source {
        Source::Path(n) => named(quote! { Path }, n),
        Source::Query(n) => named(quote! { Query }, n),
        Source::Header(n) => named(quote! { Header }, n),
        Source::Claim(n) => named(quote! { Claim }, n),
        Source::AuthorizerContext(n) => named(quote! { AuthorizerContext }, n),
        Source::ClientCert(n) => named(quote! { ClientCert }, n),
        Source::StageVariable(n) => named(quote! { StageVariable }, n),
        Source::RequestBody(p) => named(quote! { RequestBody }, p),
        Source::ResponseBody(p) => named(quote! { ResponseBody }, p),
        Source::ResponseHeader(n) => named(quote! { ResponseHeader }, n),
        Source::RequestId => quote! { rt::t::Source::RequestId },
        Source::Stage => quote! { rt::t::Source::Stage },
        Source::HttpMethod => quote! { rt::t::Source::HttpMethod },
        Source::ResourcePath => quote! { rt::t::Source::ResourcePath },
        Source::RequestPath => quote! { rt::t::Source::RequestPath },
        Source::SourceIp => quote! { rt::t::Source::SourceIp },
        Source::ApiKeyId => quote! { rt::t::Source::ApiKeyId },
        Source::UsagePlan => quote! { rt::t::Source::UsagePlan },
        Source::Scopes => quote! { rt::t::Source::Scopes },
        Source::PrincipalId => quote! { rt::t::Source::PrincipalId },
        Source::Item(depth, p) => {
            let (depth, p) = (Literal::usize_unsuffixed(*depth), lit(p));
            quote! { rt::t::Source::Item(#depth, #p) }
        }
        Source::Loop(depth, field) => {
            use crate::transform::LoopField;
            let depth = Literal::usize_unsuffixed(*depth);
            let field = match field {
                LoopField::Index => quote! { Index },
                LoopField::Index0 => quote! { Index0 },
                LoopField::First => quote! { First },
                LoopField::Last => quote! { Last },
            };
            quote! { rt::t::Source::Loop(#depth, rt::t::LoopField::#field) }
        }
    }
}

/// A text template's nodes, as runtime data; their sources are added to `sources`.
fn text_nodes_tokens(
    nodes: &[crate::transform::Node],
    sources: &mut Vec<crate::transform::Source>,
) -> TokenStream {
    use crate::transform::{Cond, Node, Operand};
    fn operand(o: &Operand) -> TokenStream {
        match o {
            Operand::Value(s) => {
                let s = source_tokens(s);
                quote! { rt::t::Operand::Value(#s) }
            }
            Operand::Text(t) => {
                let t = lit(t);
                quote! { rt::t::Operand::Text(#t) }
            }
            Operand::Bool(b) => quote! { rt::t::Operand::Bool(#b) },
            Operand::Null => quote! { rt::t::Operand::Null },
        }
    }
    fn cond(c: &Cond) -> TokenStream {
        match c {
            Cond::Is(o) => {
                let o = operand(o);
                quote! { rt::t::Cond::Is(#o) }
            }
            Cond::Not(c) => {
                let c = cond(c);
                quote! { rt::t::Cond::Not(&#c) }
            }
            Cond::All(cs) | Cond::Any(cs) => {
                let cs = cs.iter().map(cond);
                if matches!(c, Cond::All(_)) {
                    quote! { rt::t::Cond::All(&[#(#cs),*]) }
                } else {
                    quote! { rt::t::Cond::Any(&[#(#cs),*]) }
                }
            }
            Cond::Eq(a, b, equal) => {
                let (a, b) = (operand(a), operand(b));
                quote! { rt::t::Cond::Eq(#a, #b, #equal) }
            }
        }
    }
    Node::sources(nodes, sources);
    fn walk(nodes: &[Node]) -> TokenStream {
        let nodes = nodes.iter().map(|n| match n {
            Node::Lit(l) => {
                let l = lit(l);
                quote! { rt::t::Node::Lit(#l) }
            }
            Node::Value(source, filters, in_string) => {
                let (source, filters) = value_tokens(source, filters);
                quote! { rt::t::Node::Value(#source, #filters, #in_string) }
            }
            Node::If(branches, otherwise) => {
                let branches = branches.iter().map(|(c, nodes)| {
                    let (c, nodes) = (cond(c), walk(nodes));
                    quote! { (#c, #nodes) }
                });
                let otherwise = walk(otherwise);
                quote! { rt::t::Node::If(&[#(#branches),*], #otherwise) }
            }
            Node::For(source, body) => {
                let (source, body) = (source_tokens(source), walk(body));
                quote! { rt::t::Node::For(#source, #body) }
            }
        });
        quote! { &[#(#nodes),*] }
    }
    walk(nodes)
}

/// A value with its filters, as runtime data.
fn value_tokens(
    source: &crate::transform::Source,
    filters: &[crate::transform::Filter],
) -> (TokenStream, TokenStream) {
    use crate::transform::Filter;
    let filters = filters.iter().map(|f| match f {
        Filter::Default(d) => {
            let d = lit(d);
            quote! { rt::t::Filter::Default(#d) }
        }
        Filter::Json => quote! { rt::t::Filter::Json },
        Filter::Base64 => quote! { rt::t::Filter::Base64 },
        Filter::UrlEncode => quote! { rt::t::Filter::UrlEncode },
        Filter::Lower => quote! { rt::t::Filter::Lower },
        Filter::Upper => quote! { rt::t::Filter::Upper },
        Filter::Text => quote! { rt::t::Filter::Text },
    });
    (source_tokens(source), quote! { &[#(#filters),*] })
}

/// A parsed template, as runtime data; its sources are added to `sources`.
fn parts_tokens(
    parts: &[crate::transform::Part],
    sources: &mut Vec<crate::transform::Source>,
) -> TokenStream {
    use crate::transform::Part;
    let parts = parts.iter().map(|p| match p {
        Part::Lit(l) => {
            let l = lit(l);
            quote! { rt::t::Part::Lit(#l) }
        }
        Part::Value(source, filters) => {
            sources.push(source.clone());
            let (source, filters) = value_tokens(source, filters);
            quote! { rt::t::Part::Value(#source, #filters) }
        }
    });
    let parts: Vec<TokenStream> = parts.collect();
    quote! { &[#(#parts),*] }
}

/// A template's text, parsed (`gwgen check` refused those that do not parse).
fn template_tokens(text: &str, sources: &mut Vec<crate::transform::Source>) -> TokenStream {
    parts_tokens(&crate::transform::parse(text).unwrap_or_default(), sources)
}

/// A JSON template, as runtime data.
fn json_template_tokens(
    t: &crate::transform::JsonTemplate,
    sources: &mut Vec<crate::transform::Source>,
) -> TokenStream {
    use crate::transform::JsonTemplate as J;
    match t {
        J::Null => quote! { rt::t::JsonTemplate::Null },
        J::Bool(b) => quote! { rt::t::JsonTemplate::Bool(#b) },
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                let i = Literal::i64_unsuffixed(i);
                quote! { rt::t::JsonTemplate::Int(#i) }
            } else if let Some(u) = n.as_u64() {
                let u = Literal::u64_unsuffixed(u);
                quote! { rt::t::JsonTemplate::Uint(#u) }
            } else {
                let f = Literal::f64_suffixed(n.as_f64().unwrap_or(0.0));
                quote! { rt::t::JsonTemplate::Float(#f) }
            }
        }
        J::Text(parts) => {
            let parts = parts_tokens(parts, sources);
            quote! { rt::t::JsonTemplate::Text(#parts) }
        }
        J::Value(source, filters) => {
            sources.push(source.clone());
            let (source, filters) = value_tokens(source, filters);
            quote! { rt::t::JsonTemplate::Value(#source, #filters) }
        }
        J::Array(items) => {
            let items: Vec<TokenStream> = items
                .iter()
                .map(|i| json_template_tokens(i, sources))
                .collect();
            quote! { rt::t::JsonTemplate::Array(&[#(#items),*]) }
        }
        J::Object(members) => {
            let members: Vec<TokenStream> = members
                .iter()
                .map(|(k, m)| {
                    let (k, m) = (lit(k), json_template_tokens(m, sources));
                    quote! { (#k, #m) }
                })
                .collect();
            quote! { rt::t::JsonTemplate::Object(&[#(#members),*]) }
        }
    }
}

/// A body mapping, as runtime data (`gwgen check` refused templates that do not compile).
fn body_map_tokens(
    b: &crate::transform::BodyMapping,
    sources: &mut Vec<crate::transform::Source>,
) -> TokenStream {
    let compiled = |v: &serde_json::Value| {
        crate::transform::json_template(v).unwrap_or(crate::transform::JsonTemplate::Null)
    };
    if let Some(text) = &b.text {
        let nodes = crate::transform::text_template(text).unwrap_or_default();
        let nodes = text_nodes_tokens(&nodes, sources);
        return quote! { rt::t::BodyMap::Text(#nodes) };
    }
    match &b.template {
        Some(t) => {
            let t = json_template_tokens(&compiled(t), sources);
            quote! { rt::t::BodyMap::Template(#t) }
        }
        None => {
            let set: Vec<TokenStream> = b
                .set
                .iter()
                .map(|(pointer, v)| {
                    let (p, v) = (lit(pointer), json_template_tokens(&compiled(v), sources));
                    quote! { (#p, #v) }
                })
                .collect();
            let remove = b.remove.iter().map(|p| lit(p));
            quote! { rt::t::BodyMap::Edits { set: &[#(#set),*], remove: &[#(#remove),*] } }
        }
    }
}

/// `Some(tokens)` or `None`.
fn option_tokens(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote! { Some(#t) },
        None => quote! { None },
    }
}

/// A token bucket. The rate was checked to be a positive number; anything else becomes 1/s
/// rather than a panic.
fn rate_tokens(t: &crate::xgw::Throttle) -> TokenStream {
    let rate = if t.rate.is_finite() && t.rate > 0.0 {
        t.rate
    } else {
        1.0
    };
    let rate = Literal::f64_unsuffixed(rate);
    let burst = Literal::u32_unsuffixed(u32::try_from(t.burst_or_default()).unwrap_or(u32::MAX));
    let per = match t.per {
        ThrottlePer::Route => quote! { rt::Per::Route },
        ThrottlePer::Ip => quote! { rt::Per::Ip },
        ThrottlePer::ClientCert => quote! { rt::Per::ClientCert },
    };
    quote! { rt::Rate { per_second: #rate, burst: #burst, per: #per } }
}

/// A response-validation mode as the runtime's `ResponseMode`.
fn response_mode_tokens(m: ResponseValidation) -> TokenStream {
    match m {
        ResponseValidation::Off => quote! { rt::ResponseMode::Off },
        ResponseValidation::Log => quote! { rt::ResponseMode::Log },
        ResponseValidation::Enforce => quote! { rt::ResponseMode::Enforce },
    }
}

/// Whether the gateway needs [`traffic_def`]: throttles, quotas, caches, trusted proxies, or
/// WebSocket connections shared through Redis.
fn uses_traffic(gw: &Gateway) -> bool {
    let redis = gw
        .root
        .state
        .as_ref()
        .is_some_and(|s| s.backend == StateBackend::Redis);
    (redis && gw.routes.iter().any(|r| r.websocket.is_some()))
        || gw.stages.iter().any(|s| s.settings.throttle.is_some())
        || gw
            .routes
            .iter()
            .any(|r| r.settings.throttle.is_some() || r.settings.cache.is_some())
        || gw
            .root
            .usage_plans
            .values()
            .any(|p| p.throttle.is_some() || p.quota.is_some())
        || !gw.root.trusted_proxies.is_empty()
}

/// Whether a route caches answers (the runtime's `cache` feature).
fn uses_cache(gw: &Gateway) -> bool {
    gw.routes.iter().any(|r| r.settings.cache.is_some())
}

/// `gateway_responses`: by AWS gateway-response type, the status, JSON body and headers that
/// replace the gateway's own error answers.
fn gateway_responses(gw: &Gateway) -> TokenStream {
    let entries = gw.root.gateway_responses.iter().map(|(kind, v)| {
        let kind = lit(kind);
        let status = option_tokens(v.status.map(|s| {
            let s = Literal::u16_unsuffixed(s);
            quote! { #s }
        }));
        let body = option_tokens(v.body.as_ref().map(|b| {
            let b = lit(&b.to_string());
            quote! { #b }
        }));
        let headers = v.headers.iter().map(|(k, v)| {
            let (k, v) = (lit(&k.to_ascii_lowercase()), lit(v));
            quote! { (#k, #v) }
        });
        quote! { rt::CustomResponse { kind: #kind, status: #status, body: #body, headers: &[#(#headers),*] } }
    });
    quote! {
        /// The spec's `gateway_responses`, in place of the gateway's own error answers.
        pub static RESPONSES: &[rt::CustomResponse] = &[#(#entries),*];
    }
}

/// Usage plans, the state backend and the trusted proxies.
fn traffic_def(gw: &Gateway) -> TokenStream {
    let plan_docs = gw.root.usage_plans.iter().map(|(name, p)| {
        let text = match &p.description {
            Some(d) => format!(" - `{name}`: {}", d.replace(['\r', '\n'], " ")),
            None => format!(" - `{name}`"),
        };
        quote! { #[doc = #text] }
    });
    let plans = gw.root.usage_plans.iter().map(|(name, p)| {
        let name = lit(name);
        let throttle = option_tokens(p.throttle.as_ref().map(rate_tokens));
        let quota = option_tokens(p.quota.as_ref().map(|q| {
            let limit = Literal::u64_unsuffixed(q.limit);
            let period = match q.period {
                QuotaPeriod::Day => quote! { rt::Period::Day },
                QuotaPeriod::Week => quote! { rt::Period::Week },
                QuotaPeriod::Month => quote! { rt::Period::Month },
            };
            quote! { rt::QuotaDef { limit: #limit, period: #period } }
        }));
        quote! { rt::PlanDef { name: #name, throttle: #throttle, quota: #quota } }
    });
    let state = gw.root.state.as_ref();
    let redis = option_tokens(
        state
            .filter(|s| s.backend == StateBackend::Redis)
            .and_then(|s| s.url.as_ref())
            .map(|u| {
                let u = lit(u);
                quote! { #u }
            }),
    );
    let prefix = lit(state.and_then(|s| s.prefix.as_deref()).unwrap_or("gwgen:"));
    let deny = state.is_some_and(|s| s.on_state_error == OnStateError::Deny);
    let timeout =
        Literal::u64_unsuffixed(state.and_then(|s| s.timeout).map(|t| t.0).unwrap_or(250));
    let cache_size = Literal::u64_unsuffixed(
        state
            .and_then(|s| s.cache_size)
            .map(|b| b.0)
            .unwrap_or(64 << 20),
    );
    let trusted = gw.root.trusted_proxies.iter().map(|t| lit(t));
    quote! {
        /// Usage plans, where throttle, quota and cache state lives, and the trusted proxies.
        ///
        /// Usage plans:
        #(#plan_docs)*
        pub static TRAFFIC: rt::TrafficDef = rt::TrafficDef {
            plans: &[#(#plans),*],
            state: rt::StateDef {
                redis: #redis, prefix: #prefix, deny: #deny, timeout_ms: #timeout,
                cache_size: #cache_size,
            },
            trusted_proxies: &[#(#trusted),*],
        };
    }
}

/// An `http` integration's several targets, balancing, retries, cap and health checks as the
/// runtime's `UpstreamsDef`; `None` for one target and none of these.
fn upstreams_def(i: &crate::xgw::Integration) -> Option<TokenStream> {
    let targets = i.targets.as_deref().unwrap_or_default();
    let several = targets.len() > 1;
    if !several
        && i.retries.is_none()
        && i.health_check.is_none()
        && i.balance.is_none()
        && i.max_requests.is_none()
    {
        return None;
    }
    let list: Vec<(String, u32)> = if targets.is_empty() {
        vec![(i.url.clone().unwrap_or_default(), 1)]
    } else {
        targets
            .iter()
            .map(|t| (t.url.clone(), t.weight.unwrap_or(1)))
            .collect()
    };
    let list = list.iter().map(|(url, weight)| {
        let (url, weight) = (lit(url), Literal::u32_unsuffixed(*weight));
        quote! { (#url, #weight) }
    });
    let balance = match i.balance.as_deref() {
        Some("least_request") => quote! { rt::Balance::LeastRequest },
        _ => quote! { rt::Balance::RoundRobin },
    };
    // With several targets, one retry on another by default, as nginx's `proxy_next_upstream`.
    let retries = Literal::u32_unsuffixed(i.retries.unwrap_or(u32::from(several)));
    let max_requests = Literal::u32_unsuffixed(i.max_requests.unwrap_or(0));
    let health = match &i.health_check {
        Some(h) => {
            let path = lit(&h.path);
            let interval = Literal::u64_unsuffixed(h.interval.map_or(10_000, |m| m.0));
            let timeout = Literal::u64_unsuffixed(h.timeout.map_or(2_000, |m| m.0));
            let unhealthy = Literal::u32_unsuffixed(h.unhealthy_after.unwrap_or(3));
            let healthy = Literal::u32_unsuffixed(h.healthy_after.unwrap_or(2));
            quote! {
                Some(rt::HealthDef {
                    path: #path, interval_ms: #interval, timeout_ms: #timeout,
                    unhealthy_after: #unhealthy, healthy_after: #healthy,
                })
            }
        }
        None => quote! { None },
    };
    Some(quote! {
        rt::UpstreamsDef {
            targets: &[#(#list),*], balance: #balance, retries: #retries,
            max_requests: #max_requests, health: #health,
        }
    })
}

/// A WebSocket API's integration: its `WebSocketDef` as a static inside the expression.
fn websocket_tokens(gw: &Gateway, index: usize, r: &Route) -> TokenStream {
    let Some(ws) = &r.websocket else {
        return quote! {};
    };
    let s = &ws.settings;
    let selection = s.selection().unwrap_or_default();
    let selection = selection.iter().map(|n| lit(n));
    let schemas = gw.validation.messages.get(&index);
    let routes = s.routes.iter().enumerate().map(|(n, (key, route))| {
        let i = &route.integration;
        let timeout = Literal::u64_unsuffixed(i.timeout.map_or(29_000, |t| t.0));
        let target = match i.kind {
            IntegrationKind::Http => {
                let url = lit(i.url.as_deref().unwrap_or_default());
                quote! { rt::ws::WsTargetDef::Http { url: #url, timeout_ms: #timeout } }
            }
            IntegrationKind::Lambda => {
                let def = lambda_def(&i.lambda);
                quote! { rt::ws::WsTargetDef::Lambda { def: #def, timeout_ms: #timeout } }
            }
            IntegrationKind::Mock => {
                let body = match &i.body {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let body = lit(&body);
                quote! { rt::ws::WsTargetDef::Mock { body: #body } }
            }
        };
        let key = lit(key);
        let respond = route.respond;
        let schema = schema_fn(&schemas.and_then(|s| s.get(n).cloned()).flatten());
        let throttle = option_tokens(route.throttle.as_ref().map(rate_tokens));
        quote! {
            rt::ws::WsRouteDef { key: #key, target: #target, respond: #respond, schema: #schema, throttle: #throttle }
        }
    });
    let l = &s.limits;
    let message = Literal::usize_unsuffixed(l.message.map_or(128 << 10, |b| b.0 as usize));
    let frame = Literal::usize_unsuffixed(l.frame.map_or(32 << 10, |b| b.0 as usize));
    let idle = Literal::u64_unsuffixed(l.idle_timeout.map_or(600_000, |t| t.0));
    let max = Literal::u64_unsuffixed(l.max_duration.map_or(7_200_000, |t| t.0));
    let per_client = option_tokens(l.per_client.map(|n| {
        let n = Literal::u32_unsuffixed(n);
        quote! { #n }
    }));
    let per_connection = option_tokens(s.message_throttle.as_ref().map(rate_tokens));
    let path = lit(&r.path);
    quote! {
        rt::Integration::WebSocket(std::sync::Arc::new(rt::ws::Api::new(&stage, {
            static WS: rt::ws::WebSocketDef = rt::ws::WebSocketDef {
                selection: &[#(#selection),*],
                routes: &[#(#routes),*],
                limits: rt::ws::WsLimits {
                    message: #message, frame: #frame, idle_ms: #idle, max_ms: #max,
                    per_client: #per_client,
                },
                per_connection: #per_connection,
            };
            &WS
        }, #path)?))
    }
}

/// A Lambda function's settings as the runtime's `LambdaDef`.
fn lambda_def(i: &crate::xgw::LambdaFunction) -> TokenStream {
    let text = |v: &Option<String>| lit(v.as_deref().unwrap_or_default());
    let function = text(&i.function);
    let format = match i.payload_format.as_deref() {
        Some("1.0") => quote! { rt::PayloadFormat::V1 },
        _ => quote! { rt::PayloadFormat::V2 },
    };
    let (region, endpoint, handler, workdir) = (
        text(&i.region),
        text(&i.endpoint),
        text(&i.handler),
        text(&i.workdir),
    );
    let command = i.command.iter().flatten().map(|c| lit(c));
    let env = i.env.iter().map(|(k, v)| {
        let (k, v) = (lit(k), lit(v));
        quote! { (#k, #v) }
    });
    let concurrency = Literal::u32_unsuffixed(i.concurrency.unwrap_or(4));
    let memory = Literal::u32_unsuffixed(i.memory_mb.unwrap_or(0));
    quote! {
        rt::LambdaDef {
            function: #function, payload_format: #format, region: #region, endpoint: #endpoint,
            command: &[#(#command),*], env: &[#(#env),*], handler: #handler, workdir: #workdir,
            concurrency: #concurrency, memory_mb: #memory,
        }
    }
}

/// Whether a scheme of this kind is used (the runtime's `jwt` and `authorizer` features).
fn uses_scheme(gw: &Gateway, kind: SchemeKind) -> bool {
    gw.routes.iter().any(|r| {
        r.security.iter().any(|req| {
            req.schemes.iter().any(|(n, _)| {
                gw.security_schemes
                    .get(n)
                    .is_some_and(|s| scheme_tokens(s).1 == kind)
            })
        })
    })
}

/// Whether a JWT scheme is used (the runtime's `jwt` feature).
fn uses_jwt(gw: &Gateway) -> bool {
    gw.routes.iter().any(|r| {
        r.security.iter().any(|req| {
            req.schemes.iter().any(|(n, _)| {
                gw.security_schemes
                    .get(n)
                    .is_some_and(|s| matches!(scheme_tokens(s).1, SchemeKind::Jwt))
            })
        })
    })
}

#[derive(PartialEq)]
enum SchemeKind {
    ApiKey,
    Jwt,
    Authorizer,
    MutualTls,
    Unverifiable,
}

/// A scheme as the runtime's `SchemeDef`.
fn scheme_tokens(s: &crate::ir::SecurityScheme) -> (TokenStream, SchemeKind) {
    let x = &s.settings;
    let opt = |v: &Option<String>| match v {
        Some(v) => {
            let v = lit(v);
            quote! { Some(#v) }
        }
        None => quote! { None },
    };
    if let Some(a) = &x.authorizer {
        let (url, lambda) = match (a.kind, &a.url) {
            (AuthorizerKind::Http, Some(url)) => (lit(url), quote! { None }),
            (AuthorizerKind::Lambda, _) => {
                let def = lambda_def(&a.lambda);
                (lit(""), quote! { Some(&#def) })
            }
            // Refused by the schema; fail closed should a caller skip the check.
            (AuthorizerKind::Http, None) => {
                return (
                    quote! { rt::SchemeDef::Unverifiable },
                    SchemeKind::Unverifiable,
                )
            }
        };
        let token_event = a.event.as_deref() == Some("token");
        let default_identity = ["header.authorization".to_string()];
        let identity = if a.identity.is_empty() {
            &default_identity[..]
        } else {
            &a.identity[..]
        };
        let identity = identity.iter().map(|i| lit(i));
        let ttl = Literal::u64_unsuffixed(a.ttl.map_or(0, |m| m.0) / 1000);
        let timeout = Literal::u64_unsuffixed(a.timeout.map_or(10_000, |m| m.0));
        let calls = Literal::f64_unsuffixed(a.calls_per_client.unwrap_or(10.0));
        let plan = opt(&x.plan);
        let caller = opt(&a
            .caller
            .as_deref()
            .and_then(|c| c.strip_prefix("context."))
            .map(str::to_string));
        return (
            quote! {
                rt::SchemeDef::Authorizer(rt::AuthorizerDef {
                    url: #url, identity: &[#(#identity),*], ttl: #ttl, timeout: #timeout,
                    calls_per_client: #calls, plan: #plan, caller: #caller,
                    lambda: #lambda, token_event: #token_event,
                })
            },
            SchemeKind::Authorizer,
        );
    }
    match (s.kind, s.scheme.as_deref()) {
        (Some(SchemeType::MutualTls), _) => {
            (quote! { rt::SchemeDef::MutualTls }, SchemeKind::MutualTls)
        }
        (Some(SchemeType::ApiKey), _) => {
            let location = match s.key_in {
                KeyIn::Query => quote! { rt::KeyIn::Query },
                KeyIn::Cookie => quote! { rt::KeyIn::Cookie },
                KeyIn::Header => quote! { rt::KeyIn::Header },
            };
            // Header names are case-insensitive; query and cookie names are not.
            let name = s.key_name.clone().unwrap_or_default();
            let name = match s.key_in {
                KeyIn::Header => lit(&name.to_ascii_lowercase()),
                KeyIn::Query | KeyIn::Cookie => lit(&name),
            };
            let plans = x.plans.iter().flatten().map(|p| lit(p));
            (
                quote! { rt::SchemeDef::ApiKey { location: #location, name: #name, plans: &[#(#plans),*] } },
                SchemeKind::ApiKey,
            )
        }
        (Some(SchemeType::Http), Some("bearer"))
        | (Some(SchemeType::OAuth2 | SchemeType::OpenIdConnect), _) => {
            let has_keys = x.jwks_uri.is_some()
                || x.keys.is_some()
                || x.secret.is_some()
                || (s.kind == Some(SchemeType::OpenIdConnect) && s.openid_connect_url.is_some());
            if !has_keys {
                return (
                    quote! { rt::SchemeDef::Unverifiable },
                    SchemeKind::Unverifiable,
                );
            }
            let audience: Vec<String> = match &x.audience {
                Some(serde_json::Value::String(a)) => vec![a.clone()],
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let audience = audience.iter().map(|a| lit(a));
            let algorithms: Vec<String> = if x.algorithms.is_empty() {
                vec!["RS256".to_string()]
            } else {
                x.algorithms.clone()
            };
            let algorithms = algorithms.iter().map(|a| lit(a));
            let issuer = opt(&x.issuer);
            let jwks_uri = opt(&x.jwks_uri);
            let discovery = opt(&s.openid_connect_url);
            let keys = opt(&x
                .keys
                .as_ref()
                .map(|k| serde_json::json!({ "keys": k }).to_string()));
            let secret = opt(&x.secret);
            let leeway = Literal::u64_unsuffixed(x.leeway.map(|l| l.0 / 1000).unwrap_or(0));
            let jwks_refresh = Literal::u64_unsuffixed(x.jwks_refresh.map_or(600_000, |d| d.0));
            let plan = opt(&x.plan);
            let token_source = opt(&x.token_source);
            (
                quote! {
                    rt::SchemeDef::Jwt(rt::JwtDef {
                        issuer: #issuer, audience: &[#(#audience),*], jwks_uri: #jwks_uri,
                        discovery: #discovery, keys: #keys, secret: #secret,
                        algorithms: &[#(#algorithms),*], leeway: #leeway,
                        jwks_refresh_ms: #jwks_refresh, plan: #plan, token_source: #token_source,
                    })
                },
                SchemeKind::Jwt,
            )
        }
        _ => (
            quote! { rt::SchemeDef::Unverifiable },
            SchemeKind::Unverifiable,
        ),
    }
}

/// The spec's security schemes, by index, and the API key source.
fn security_def(gw: &Gateway) -> TokenStream {
    let names = gw.security_schemes.keys().map(|n| lit(n));
    let schemes = gw.security_schemes.values().map(|s| scheme_tokens(s).0);
    let api_keys = match gw.root.api_keys.as_ref().map(|k| &k.source) {
        Some(KeySource::File(path)) => {
            let path = lit(path);
            quote! { Some(rt::KeySource::File(#path)) }
        }
        Some(KeySource::Redis) => quote! { Some(rt::KeySource::Redis) },
        None => quote! { None },
    };
    let state = gw
        .root
        .state
        .as_ref()
        .filter(|s| s.backend == StateBackend::Redis);
    let redis = match state.and_then(|s| s.url.as_ref()) {
        Some(u) => {
            let u = lit(u);
            quote! { Some(#u) }
        }
        None => quote! { None },
    };
    let prefix = lit(state.and_then(|s| s.prefix.as_deref()).unwrap_or("gwgen:"));
    // Schemes whose verified credential the upstream does not get.
    let hidden = gw
        .security_schemes
        .values()
        .enumerate()
        .filter(|(_, s)| {
            // Credentials in the query end up in logs: hidden unless the spec says otherwise.
            let in_query = (s.kind == Some(SchemeType::ApiKey) && s.key_in == KeyIn::Query)
                || s.settings
                    .token_source
                    .as_deref()
                    .is_some_and(|t| t.starts_with("query."));
            !s.settings.forward_credentials.unwrap_or(!in_query)
        })
        .map(|(i, _)| Literal::usize_unsuffixed(i));
    quote! {
        /// The spec's security schemes, by index, as the runtime verifies them.
        pub static SECURITY: rt::SecurityDef = rt::SecurityDef {
            names: &[#(#names),*],
            schemes: &[#(#schemes),*],
            hidden: &[#(#hidden),*],
            api_keys: #api_keys,
            redis: #redis,
            prefix: #prefix,
        };
    }
}

fn shape_tokens(shape: &crate::validation::Shape) -> TokenStream {
    use crate::validation::Shape;
    match shape {
        Shape::Scalar(m) => {
            let m = Literal::u8_unsuffixed(*m);
            quote! { rt::v::Shape::Scalar(#m) }
        }
        Shape::Array(m) => {
            let m = Literal::u8_unsuffixed(*m);
            quote! { rt::v::Shape::Array(#m) }
        }
        Shape::Object(props, other) => {
            let props = props.iter().map(|(k, s)| {
                let k = lit(k);
                let s = shape_tokens(s);
                quote! { (#k, #s) }
            });
            let other = Literal::u8_unsuffixed(*other);
            quote! { rt::v::Shape::Object(&[#(#props),*], #other) }
        }
    }
}

fn schema_fn(name: &Option<String>) -> TokenStream {
    match name {
        Some(f) => {
            let f = format_ident!("{}", f);
            quote! { Some(#f as rt::v::SchemaFn) }
        }
        None => quote! { None },
    }
}

/// The per-route validation statics, and the compiled schema functions.
fn validation_tokens(
    gw: &Gateway,
    code: TokenStream,
) -> Result<(TokenStream, TokenStream), EmitError> {
    use crate::ir::ParamIn;
    let mut statics = Vec::new();
    for (n, rc) in gw.validation.routes.iter().enumerate() {
        let Some(rc) = rc else { continue };
        let requests = gw.routes[n].settings.validate.and_then(|v| v.requests)
            != Some(crate::xgw::RequestValidation::Off);
        let params = rc.params.iter().map(|p| {
            let name = lit(&p.name);
            let (location, prefix) = match p.location {
                ParamIn::Path => (quote! { rt::v::In::Path }, "path"),
                ParamIn::Query => (quote! { rt::v::In::Query }, "query"),
                ParamIn::Header => (quote! { rt::v::In::Header }, "header"),
                ParamIn::Cookie => (quote! { rt::v::In::Cookie }, "cookie"),
            };
            let pointer = lit(&format!("{prefix}/{}", p.name));
            let style = match p.style.as_str() {
                "label" => quote! { rt::v::Style::Label },
                "matrix" => quote! { rt::v::Style::Matrix },
                "form" => quote! { rt::v::Style::Form },
                "spaceDelimited" => quote! { rt::v::Style::SpaceDelimited },
                "pipeDelimited" => quote! { rt::v::Style::PipeDelimited },
                "deepObject" => quote! { rt::v::Style::DeepObject },
                "json" => quote! { rt::v::Style::Json },
                _ => quote! { rt::v::Style::Simple },
            };
            let (explode, required, allow_empty) = (p.explode, p.required, p.allow_empty);
            let shape = shape_tokens(&p.shape);
            let schema = schema_fn(&p.schema);
            let index = Literal::usize_unsuffixed(p.index);
            let quick = match &p.quick {
                Some(f) => {
                    let f = format_ident!("{}", f);
                    quote! { Some(#f as rt::v::ScalarFn) }
                }
                None => quote! { None },
            };
            quote! {
                rt::v::ParamSpec {
                    name: #name, location: #location, pointer: #pointer, style: #style,
                    explode: #explode, required: #required, allow_empty: #allow_empty,
                    shape: #shape, schema: #schema, index: #index, quick: #quick,
                }
            }
        });
        let body = match &rc.body {
            Some(b) => {
                let required = b.required;
                let media = b.media.iter().map(|m| {
                    let range = lit(&m.range);
                    let kind = format_ident!("{}", m.kind);
                    let shape = shape_tokens(&m.shape);
                    let schema = schema_fn(&m.schema);
                    let stream = match &m.stream {
                        Some(f) => {
                            let f = format_ident!("{}", f);
                            quote! { Some(#f as rt::v::StreamFn) }
                        }
                        None => quote! { None },
                    };
                    quote! { rt::v::MediaSpec { range: #range, kind: rt::v::BodyKind::#kind, shape: #shape, schema: #schema, stream: #stream } }
                });
                quote! { Some(rt::v::BodySpec { required: #required, media: &[#(#media),*] }) }
            }
            None => quote! { None },
        };
        let responses = rc
            .responses
            .iter()
            .filter(|r| !r.media.is_empty())
            .map(|r| {
                let status = lit(&r.status);
                let media = r.media.iter().map(|(m, f)| {
                    let m = lit(m);
                    let f = format_ident!("{}", f);
                    quote! { (#m, #f as rt::v::SchemaFn) }
                });
                quote! { rt::v::ResponseSpec { status: #status, media: &[#(#media),*] } }
            });
        let mode = option_tokens(rc.response_mode.map(response_mode_tokens));
        let route = &gw.routes[n];
        let json_depth =
            Literal::u32_unsuffixed(route_limit(gw, route, |l| l.json_depth).unwrap_or(128));
        let json_values =
            Literal::u32_unsuffixed(route_limit(gw, route, |l| l.json_values).unwrap_or(1_000_000));
        let v = format_ident!("V{}", n);
        statics.push(quote! {
            static #v: rt::v::RouteValidation = rt::v::RouteValidation {
                requests: #requests,
                params: &[#(#params),*],
                body: #body,
                responses: &[#(#responses),*],
                response_mode: #mode,
                json_depth: #json_depth,
                json_values: #json_values,
            };
        });
    }

    let schema_code = if code.is_empty() {
        quote! {}
    } else {
        quote! {
            /// The spec's schemas, compiled: one function per schema location.
            #[allow(clippy::all, unused_mut, unused_variables)]
            mod schemas {
                use super::rt;
                #code
            }
            use schemas::*;
        }
    };
    Ok((quote! { #(#statics)* }, schema_code))
}

/// The mock answer of a route: the integration's own status and body, else the spec's first
/// success response and its example.
fn mock_answer(
    r: &Route,
    integration: Option<&crate::xgw::Integration>,
) -> (u16, Option<String>, String) {
    let status_of = |s: &str| -> Option<u16> {
        match s {
            "default" => Some(200),
            s if s.ends_with("XX") || s.ends_with("xx") => {
                s[..1].parse::<u16>().ok().map(|d| d * 100)
            }
            s => s.parse().ok(),
        }
    };
    let success = r
        .responses
        .iter()
        .filter_map(|resp| status_of(&resp.status).map(|s| (s, resp)))
        .filter(|(s, _)| (200..300).contains(s))
        .min_by_key(|(s, _)| *s);
    let status = integration
        .and_then(|i| i.status)
        .or(success.map(|(s, _)| s))
        .unwrap_or(200);
    let chosen = r
        .responses
        .iter()
        .find(|resp| status_of(&resp.status) == Some(status))
        .or(success.map(|(_, r)| r));
    let media = chosen.and_then(|resp| resp.content.first());
    let content_type = integration
        .and_then(|i| i.content_type.clone())
        .or_else(|| media.map(|m| m.media_type.clone()));
    // The inline body, else the `examples` entry the integration names, else the response's
    // `example`, else its first `examples` entry.
    let named = integration.and_then(|i| i.example.as_deref());
    let example = integration.and_then(|i| i.body.clone()).or_else(|| {
        media.and_then(|m| {
            named
                .and_then(|n| m.examples.get(n).cloned())
                .or_else(|| m.example.clone())
                .or_else(|| m.examples.values().next().cloned())
        })
    });
    let is_json = content_type.as_deref().is_none_or(|ct| ct.contains("json"));
    let body = match example {
        None => String::new(),
        Some(serde_json::Value::String(s)) if !is_json => s,
        Some(v) => v.to_string(),
    };
    let content_type = if body.is_empty() {
        None
    } else {
        content_type.or_else(|| Some("application/json".into()))
    };
    (status, content_type, body)
}

/// One node of the route trie: what continues from here, and the routes that end here.
#[derive(Default)]
struct TrieNode {
    literals: BTreeMap<String, TrieNode>,
    /// Mixed segments by their parts (parameters as `None`), in first-seen order.
    mixed: Vec<(Vec<Option<String>>, TrieNode)>,
    param: Option<Box<TrieNode>>,
    /// A greedy parameter: the rest of the path, one segment or more.
    greedy: Option<Box<TrieNode>>,
    /// (method, route index) of the routes whose template ends here.
    ends: Vec<(String, usize)>,
}

impl TrieNode {
    fn insert(&mut self, segs: &[&Segment], method: &str, index: usize) {
        let Some((first, rest)) = segs.split_first() else {
            if !self.ends.iter().any(|(m, _)| m == method) {
                self.ends.push((method.to_string(), index));
            }
            return;
        };
        let child = match first {
            Segment::Literal(l) => self.literals.entry(l.clone()).or_default(),
            Segment::Param(_) => self.param.get_or_insert_with(Default::default),
            Segment::Greedy(_) => self.greedy.get_or_insert_with(Default::default),
            Segment::Mixed(parts) => {
                let key: Vec<Option<String>> = parts
                    .iter()
                    .map(|p| match p {
                        Segment::Literal(l) => Some(l.clone()),
                        _ => None,
                    })
                    .collect();
                match self.mixed.iter().position(|(k, _)| *k == key) {
                    Some(i) => &mut self.mixed[i].1,
                    None => {
                        self.mixed.push((key, TrieNode::default()));
                        &mut self.mixed.last_mut().expect("just pushed").1
                    }
                }
            }
        };
        child.insert(rest, method, index);
    }
}

/// The route decision tree: a trie with one function per node (`n0` is the root). At each node
/// literal children come first (dispatched on the segment's length, then its text), then mixed
/// segments, then a parameter; a branch that finds nothing gives way to the next, and the
/// parameters it captured are dropped. Where the path ends, a `match` on the method decides.
fn route_tree(gw: &Gateway) -> TokenStream {
    let mut root = TrieNode::default();
    for (i, r) in gw.routes.iter().enumerate() {
        let segs: Vec<&Segment> = r
            .segments
            .iter()
            .filter(|s| !matches!(s, Segment::Literal(l) if l.is_empty()))
            .collect();
        root.insert(&segs, r.method.as_str(), i);
    }
    let mut fns = Vec::new();
    emit_node(&root, &mut fns);
    quote! {
        /// The route decision tree over the normalised path segments.
        pub fn route<'a>(method: &str, segments: &[&'a str], params: &mut rt::Params<'a>) -> rt::Lookup {
            n0(method, segments, params)
        }

        #(#fns)*
    }
}

/// Emits the function of `node` (and, first, of its children); returns its number.
fn emit_node(node: &TrieNode, fns: &mut Vec<TokenStream>) -> usize {
    let id = fns.len();
    fns.push(TokenStream::new()); // reserve the number; filled in below
    let name = format_ident!("n{}", id);
    // Where the path ends here.
    let end = if node.ends.is_empty() {
        quote! { rt::Lookup::NotFound }
    } else {
        let mut methods: Vec<(String, usize)> = node.ends.clone();
        if let Some((_, get)) = methods.iter().find(|(m, _)| m == "GET").cloned() {
            if !methods.iter().any(|(m, _)| m == "HEAD") {
                methods.push(("HEAD".into(), get));
            }
        }
        let mut allow: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
        if !allow.contains(&"OPTIONS") {
            allow.push("OPTIONS");
        }
        allow.sort_unstable();
        let allow = lit(&allow.join(", "));
        let arms = methods.iter().map(|(m, i)| {
            let m = lit(m);
            let i = Literal::usize_unsuffixed(*i);
            quote! { #m => rt::Lookup::Found(#i), }
        });
        quote! {
            match method {
                #(#arms)*
                _ => rt::Lookup::MethodNotAllowed(#allow),
            }
        }
    };
    let mut steps = Vec::new();
    if !node.literals.is_empty() {
        let mut by_len: BTreeMap<usize, Vec<(&String, usize)>> = BTreeMap::new();
        for (text, child) in &node.literals {
            let child_id = emit_node(child, fns);
            by_len.entry(text.len()).or_default().push((text, child_id));
        }
        let len_arms = by_len.iter().map(|(len, children)| {
            let len = Literal::usize_unsuffixed(*len);
            let arms = children.iter().map(|(text, child_id)| {
                let text = lit(text);
                let child = format_ident!("n{}", child_id);
                quote! { #text => #child(method, rest, params), }
            });
            quote! { #len => match *first { #(#arms)* _ => rt::Lookup::NotFound }, }
        });
        steps.push(quote! {
            let found = match first.len() {
                #(#len_arms)*
                _ => rt::Lookup::NotFound,
            };
            if found != rt::Lookup::NotFound {
                return found;
            }
        });
    }
    for (parts, child) in &node.mixed {
        let child_id = emit_node(child, fns);
        let child = format_ident!("n{}", child_id);
        let parts = parts.iter().map(|p| match p {
            Some(l) => {
                let l = lit(l);
                quote! { rt::Part::Lit(#l) }
            }
            None => quote! { rt::Part::Param },
        });
        steps.push(quote! {
            if rt::match_mixed(first, &[#(#parts),*], params) {
                let found = #child(method, rest, params);
                if found != rt::Lookup::NotFound {
                    return found;
                }
                params.truncate(mark);
            }
        });
    }
    if let Some(child) = &node.param {
        let child_id = emit_node(child, fns);
        let child = format_ident!("n{}", child_id);
        steps.push(quote! {
            params.push(first);
            let found = #child(method, rest, params);
            if found != rt::Lookup::NotFound {
                return found;
            }
            params.truncate(mark);
        });
    }
    if let Some(child) = &node.greedy {
        let child_id = emit_node(child, fns);
        let child = format_ident!("n{}", child_id);
        steps.push(quote! {
            params.push_rest(segments);
            let found = #child(method, &[], params);
            if found != rt::Lookup::NotFound {
                return found;
            }
            params.truncate(mark);
        });
    }
    let body = if steps.is_empty() {
        quote! {
            if segments.is_empty() { #end } else { rt::Lookup::NotFound }
        }
    } else {
        let uses_mark = !node.mixed.is_empty() || node.param.is_some() || node.greedy.is_some();
        let mark = if uses_mark {
            quote! { let mark = params.len(); }
        } else {
            quote! {}
        };
        let split = if node.literals.is_empty() && node.mixed.is_empty() && node.param.is_none() {
            // Only a greedy parameter continues here: it takes the segments whole.
            quote! {
                if segments.is_empty() {
                    return #end;
                }
            }
        } else {
            quote! {
                let Some((first, rest)) = segments.split_first() else {
                    return #end;
                };
            }
        };
        quote! {
            #split
            #mark
            #(#steps)*
            rt::Lookup::NotFound
        }
    };
    let unused = if steps_use_params(node) {
        quote! {}
    } else {
        quote! { let _ = &params; }
    };
    fns[id] = quote! {
        fn #name<'a>(method: &str, segments: &[&'a str], params: &mut rt::Params<'a>) -> rt::Lookup {
            #unused
            #body
        }
    };
    id
}

/// Whether a node's function touches `params` itself (otherwise it only passes it on).
fn steps_use_params(node: &TrieNode) -> bool {
    !node.literals.is_empty()
        || !node.mixed.is_empty()
        || node.param.is_some()
        || node.greedy.is_some()
}

#[cfg(test)]
mod tests {
    use super::RUNTIME_FILES;

    /// Every source file of the runtime is vendored (a missing one breaks generated crates).
    #[test]
    fn every_runtime_file_is_vendored() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
        let mut stack = vec![root.join("src")];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let rel = p
                        .strip_prefix(&root)
                        .map(|r| r.to_string_lossy().replace('\\', "/"));
                    found.push(rel.unwrap_or_default());
                }
            }
        }
        for f in &found {
            assert!(
                RUNTIME_FILES.iter().any(|(rel, _)| rel == f),
                "{f} is not in RUNTIME_FILES"
            );
        }
        assert_eq!(found.len(), RUNTIME_FILES.len());
    }
}
