//! The `gwgen` command line: a thin front end over the `gwgen` library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gwgen::render::{render, Format};

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
            Some(i) if i.kind == "http" => {
                format!("http {}", i.url.as_deref().unwrap_or("(targets)"))
            }
            Some(i) => i.kind.clone(),
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
