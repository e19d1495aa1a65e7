//! The `gwgen` command line: a thin front end over the `gwgen` library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gwgen::render::{render, Format};
use gwgen::xgw::IntegrationKind;

// Loading builds millions of small nodes for a large spec; mimalloc makes that markedly cheaper
// than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gwgen",
    version,
    about = "Compile OpenAPI specs with x-gateway extensions into API gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load, resolve and validate specs; print every problem found.
    ///
    /// Exit status: 0 clean (warnings allowed), 1 errors (or warnings with --deny-warnings),
    /// 2 unusable arguments or unreadable files.
    Check {
        /// Spec files (YAML or JSON, OpenAPI 3.0 or 3.1).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Print only errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Generate the gateway crate of a spec into a folder.
    Generate {
        /// The spec.
        spec: PathBuf,
        /// The folder to write (created if needed; only changed files are written).
        #[arg(short, long)]
        output: PathBuf,
        /// Depend on gwgen-runtime at this path (relative to the output folder) instead of
        /// vendoring its source into the output.
        #[arg(long)]
        runtime_path: Option<String>,
    },
    /// Generate and compile a gateway; print the binary's path as the last line.
    Build {
        /// The spec.
        spec: PathBuf,
        /// Copy the binary here.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Build (cached) and start a gateway in the foreground.
    Run {
        /// The spec.
        spec: PathBuf,
        /// The stage to run.
        #[arg(long)]
        stage: Option<String>,
        /// Where to listen.
        #[arg(long)]
        listen: Option<String>,
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(long)]
        admin_listen: Option<String>,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Convert an API Gateway export (OpenAPI 3 or Swagger 2.0 with `x-amazon-apigateway-*`
    /// extensions) into a spec that says the same with `x-gateway`.
    ///
    /// Exit status: 0 written, 1 the export uses what cannot be carried over (every problem is
    /// printed), 2 unusable arguments or unreadable files.
    ImportAws {
        /// The export (JSON or YAML).
        export: PathBuf,
        /// Where to write the spec (YAML); standard output without it.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the route table of a spec.
    Routes {
        /// The spec.
        spec: PathBuf,
    },
    /// Explain a diagnostic code (or print the whole catalogue with --all).
    Explain {
        /// A code such as GW0301.
        code: Option<String>,
        /// Print the catalogue as Markdown.
        #[arg(long)]
        all: bool,
    },
    /// Print a shell completion script for gwgen.
    ///
    /// For example `gwgen completions bash > ~/.local/share/bash-completion/completions/gwgen`,
    /// or `gwgen completions zsh > "${fpath[1]}/_gwgen"`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Human,
    Json,
    Sarif,
    Github,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            specs,
            format,
            deny_warnings,
            quiet,
        } => check(&specs, format, deny_warnings, quiet),
        Command::Routes { spec } => routes(&spec),
        Command::ImportAws { export, output } => import_aws(&export, output.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "gwgen", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Generate {
            spec,
            output,
            runtime_path,
        } => generate(&spec, &output, runtime_path),
        Command::Build {
            spec,
            output,
            release,
        } => match build(&spec, release) {
            Ok(bin) => {
                let bin = match output {
                    Some(out) => match std::fs::copy(&bin, &out) {
                        Ok(_) => out,
                        Err(e) => {
                            eprintln!("error: cannot copy the binary to {}: {e}", out.display());
                            return ExitCode::from(2);
                        }
                    },
                    None => bin,
                };
                println!("{}", bin.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            spec,
            stage,
            listen,
            admin_listen,
            release,
        } => {
            let bin = match build(&spec, release) {
                Ok(bin) => bin,
                Err(code) => return code,
            };
            let mut cmd = std::process::Command::new(&bin);
            for (flag, value) in [
                ("--stage", stage),
                ("--listen", listen),
                ("--admin-listen", admin_listen),
            ] {
                if let Some(v) = value {
                    cmd.arg(flag).arg(v);
                }
            }
            run_gateway(cmd)
        }
        Command::Explain { code, all } => explain(code.as_deref(), all),
    }
}

fn check(specs: &[PathBuf], format: OutputFormat, deny_warnings: bool, quiet: bool) -> ExitCode {
    let results: Vec<gwgen::Checked> = specs.iter().map(gwgen::check_file).collect();
    let mut diags: Vec<gwgen::Diagnostic> = results
        .iter()
        .flat_map(|c| c.diagnostics.iter().cloned())
        .collect();
    if quiet {
        diags.retain(|d| d.severity == gwgen::Severity::Error);
    }
    let sources: Vec<&gwgen::load::Sources> = results.iter().map(|c| &c.sources).collect();
    let format = match format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Sarif => Format::Sarif,
        OutputFormat::Github => Format::Github,
    };
    let text = render(&diags, &sources, format);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if format == Format::Human && diags.is_empty() {
        let _ = writeln!(out, "{} checked: no problems", specs.len());
    }
    let _ = out.flush();
    let code = if results.iter().any(gwgen::Checked::has_io_errors) {
        ExitCode::from(2)
    } else if results
        .iter()
        .any(|c| c.has_errors() || (deny_warnings && c.has_warnings()))
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: freeing a large spec's tree node by node would only cost time.
    std::mem::forget(results);
    code
}

fn import_aws(export: &std::path::Path, output: Option<&std::path::Path>) -> ExitCode {
    let (checked, spec) = gwgen::import_aws(export);
    let ok = report_for_generation(&checked);
    let Some(spec) = spec.filter(|_| ok) else {
        return ExitCode::from(if checked.has_io_errors() { 2 } else { 1 });
    };
    match output {
        Some(path) => match std::fs::write(path, spec) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::from(2)
            }
        },
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(spec.as_bytes());
            let _ = out.flush();
            ExitCode::SUCCESS
        }
    }
}

/// Prints warnings (stderr) and, on errors, every diagnostic; returns whether generation may go on.
fn report_for_generation(checked: &gwgen::Checked) -> bool {
    let sources = [&checked.sources];
    if !checked.diagnostics.is_empty() {
        eprint!("{}", render(&checked.diagnostics, &sources, Format::Human));
    }
    !checked.has_errors() && checked.gateway.is_some()
}

fn generate(spec: &PathBuf, output: &std::path::Path, runtime_path: Option<String>) -> ExitCode {
    let runtime = match runtime_path {
        Some(p) => gwgen::emit::RuntimeSource::Path(p),
        None => gwgen::emit::RuntimeSource::Vendored,
    };
    match gwgen::generate_file(spec, &gwgen::emit::GenerateOptions { runtime }) {
        Ok((krate, checked)) => {
            report_for_generation(&checked);
            match krate.write_to(output) {
                Ok(n) => {
                    eprintln!(
                        "wrote {n} of {} files of `{}` to {}",
                        krate.files.len(),
                        krate.package,
                        output.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write to {}: {e}", output.display());
                    ExitCode::from(2)
                }
            }
        }
        Err(checked) => {
            report_for_generation(&checked);
            ExitCode::from(if checked.has_io_errors() { 2 } else { 1 })
        }
    }
}

/// The shared build cache: `GWGEN_CACHE_DIR`, else the user's cache folder. Always absolute:
/// generated manifests point at the cached runtime by path, from another folder.
fn cache_dir() -> PathBuf {
    let dir = cache_dir_as_given();
    std::path::absolute(&dir).unwrap_or(dir)
}

fn cache_dir_as_given() -> PathBuf {
    if let Some(d) = std::env::var_os("GWGEN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("gwgen");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("gwgen"),
        None => std::env::temp_dir().join("gwgen-cache"),
    }
}

/// FNV-1a, to name a spec's folder in the cache after its absolute path.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Generates into the cache and compiles with cargo; returns the binary's path.
fn build(spec: &PathBuf, release: bool) -> Result<PathBuf, ExitCode> {
    let cache = cache_dir();
    let fail = |what: &str, e: std::io::Error| {
        eprintln!("error: {what}: {e}");
        ExitCode::from(2)
    };
    // One copy of the runtime per gwgen version, shared by every spec's crate, so it and its
    // dependencies compile once into the shared target folder.
    let runtime_dir = cache.join(format!("runtime-{}", env!("CARGO_PKG_VERSION")));
    gwgen::emit::vendored_runtime()
        .write_to(&runtime_dir)
        .map_err(|e| fail("cannot write the cache", e))?;
    let absolute = std::fs::canonicalize(spec).unwrap_or_else(|_| spec.clone());
    let runtime_path = runtime_dir.to_string_lossy().into_owned();
    let (krate, checked) = match gwgen::generate_file(
        spec,
        &gwgen::emit::GenerateOptions {
            runtime: gwgen::emit::RuntimeSource::Path(runtime_path),
        },
    ) {
        Ok(ok) => ok,
        Err(checked) => {
            report_for_generation(&checked);
            return Err(ExitCode::from(if checked.has_io_errors() { 2 } else { 1 }));
        }
    };
    report_for_generation(&checked);
    let dir = cache.join("crates").join(format!(
        "{}-{:016x}",
        krate.package,
        fnv(&absolute.to_string_lossy())
    ));
    krate
        .write_to(&dir)
        .map_err(|e| fail("cannot write the generated crate", e))?;
    let target = cache.join("target");
    let mut cargo =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .stdout(std::process::Stdio::null());
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().map_err(|e| fail("cannot run cargo", e))?;
    if !status.success() {
        eprintln!(
            "error: cargo failed to build the gateway (crate in {})",
            dir.display()
        );
        return Err(ExitCode::from(1));
    }
    // Binaries are named after the spec's title, which two specs may share: each spec gets its
    // own copy, named like its crate folder.
    let built = target
        .join(if release { "release" } else { "debug" })
        .join(format!("{}{}", krate.package, std::env::consts::EXE_SUFFIX));
    let bin_dir = cache.join("bin");
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| krate.package.clone());
    let bin = bin_dir.join(format!(
        "{name}{}{}",
        if release { "" } else { "-debug" },
        std::env::consts::EXE_SUFFIX
    ));
    std::fs::create_dir_all(&bin_dir).map_err(|e| fail("cannot write the cache", e))?;
    // Replace rather than overwrite in place: the old binary may be running.
    let tmp = bin.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::copy(&built, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &bin))
        .map_err(|e| fail("cannot copy the binary", e))?;
    Ok(bin)
}

/// Runs the built gateway in the foreground (replacing this process on Unix, so signals reach it).
fn run_gateway(mut cmd: std::process::Command) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        eprintln!("error: cannot start the gateway: {e}");
        ExitCode::from(2)
    }
    #[cfg(not(unix))]
    {
        match cmd.status() {
            Ok(s) => ExitCode::from(s.code().unwrap_or(1) as u8),
            Err(e) => {
                eprintln!("error: cannot start the gateway: {e}");
                ExitCode::from(2)
            }
        }
    }
}

fn routes(spec: &PathBuf) -> ExitCode {
    let checked = gwgen::check_file(spec);
    let Some(gw) = &checked.gateway else {
        let sources = [&checked.sources];
        let errors: Vec<_> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == gwgen::Severity::Error)
            .cloned()
            .collect();
        eprint!("{}", render(&errors, &sources, Format::Human));
        return ExitCode::from(if checked.has_io_errors() { 2 } else { 1 });
    };
    let mut rows = vec![[
        "METHOD".to_string(),
        "PATH".into(),
        "OPERATION".into(),
        "INTEGRATION".into(),
        "AUTH".into(),
        "THROTTLE".into(),
        "CACHE".into(),
    ]];
    for r in &gw.routes {
        let integration = match &r.settings.integration {
            None => "mock".to_string(),
            Some(i) => match i.kind {
                IntegrationKind::Http => {
                    let url = i
                        .url
                        .as_deref()
                        .or_else(|| i.targets.iter().flatten().next().map(|t| t.url.as_str()));
                    format!("http {}", url.unwrap_or_default())
                }
                kind @ (IntegrationKind::Mock | IntegrationKind::Lambda) => kind.as_str().into(),
            },
        };
        let auth = if r.security.is_empty() {
            "-".to_string()
        } else {
            r.security
                .iter()
                .map(|req| {
                    req.schemes
                        .iter()
                        .map(|(n, s)| {
                            if s.is_empty() {
                                n.clone()
                            } else {
                                format!("{n}[{}]", s.join(","))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("+")
                })
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let throttle = r
            .settings
            .throttle
            .as_ref()
            .map(|t| {
                format!(
                    "{}/s burst {}",
                    t.rate,
                    t.burst.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
                )
            })
            .unwrap_or_else(|| "-".into());
        let cache = r
            .settings
            .cache
            .as_ref()
            .map(|c| format!("{}s", c.ttl.0 as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        rows.push([
            r.method.to_string(),
            r.path.clone(),
            r.operation_id.clone().unwrap_or_else(|| "-".into()),
            integration,
            auth,
            throttle,
            cache,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if checked.has_errors() {
        let _ = writeln!(out, "\n(the spec has errors; run `gwgen check` for them)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn explain(code: Option<&str>, all: bool) -> ExitCode {
    if all {
        print!("{}", gwgen::render::catalogue_markdown());
        return ExitCode::SUCCESS;
    }
    let Some(code) = code else {
        eprintln!("give a code such as GW0301, or --all");
        return ExitCode::from(2);
    };
    match gwgen::diag::CATALOGUE
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code))
    {
        Some(c) => {
            println!(
                "{} ({}): {}\n\n{}",
                c.code,
                c.severity.as_str(),
                c.title,
                c.help
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("unknown code `{code}`");
            ExitCode::from(2)
        }
    }
}
