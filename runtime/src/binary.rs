//! The generated binary's `main`: the command line, the async runtime, and the exit status.

use std::process::ExitCode;

use crate::config::{Command, Config};
use crate::gateway::Gateway;
use crate::stage::StartError;

/// The generated binary's `main`: parses the command line, builds the gateway for the stage, and
/// serves until SIGTERM. Exit status: 0 after a clean stop, 1 when the gateway cannot start, 2
/// for unusable arguments.
pub fn main_with(
    title: &str,
    stages: &[&str],
    build: fn(&Config) -> Result<Gateway, StartError>,
) -> ExitCode {
    let command = crate::config::parse(
        std::env::args().skip(1),
        |k| std::env::var(k).ok(),
        title,
        stages,
    );
    let config = match command {
        Ok(Command::Serve(c)) => c,
        Ok(Command::Help(h)) => {
            print!("{h}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Healthcheck(admin)) => {
            return match crate::config::healthcheck(admin) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Command::AddKey {
            plan,
            file,
            redis,
            prefix,
            name,
        }) => {
            let added = match (&file, &redis) {
                (Some(file), _) => crate::auth::keys::add(&plan, file, name.as_deref()).map(|k| {
                    (
                        k,
                        format!(
                            "to {} (send SIGHUP to a running gateway to load it)",
                            file.display()
                        ),
                    )
                }),
                #[cfg(feature = "redis")]
                (None, Some(url)) => {
                    crate::auth::keys::redis_store::add(&plan, url, &prefix, name.as_deref())
                        .map(|k| (k, "to Redis (every instance sees it at once)".to_string()))
                }
                _ => {
                    let _ = (&redis, &prefix);
                    Err("this gateway was built without the Redis key store".to_string())
                }
            };
            return match added {
                Ok((key, place)) => {
                    println!("{key}");
                    eprintln!("added a key of plan `{plan}` {place}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Command::Version) => {
            println!("{title} (gwgen-runtime {})", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::observe::init_logs();
    match crate::trace::endpoint_from(|k| std::env::var(k).ok()) {
        Ok(Some(endpoint)) => {
            let service = std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| title.to_string());
            tracing::info!(endpoint = %endpoint.authority, path = %endpoint.path, service = %service, "exporting traces over OTLP");
            crate::trace::start_exporter(endpoint, service);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(1);
        }
    }
    let gateway = match build(&config) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(1);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mode = match RuntimeMode::from_env(std::env::var("GWGEN_RUNTIME").ok().as_deref(), cores) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    if mode == RuntimeMode::PerCore {
        return match gateway.serve_per_core(&config, cores) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "the gateway failed");
                ExitCode::from(1)
            }
        };
    }
    let single = mode == RuntimeMode::CurrentThread;
    let mut builder = if single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().thread_stack_size(WORKER_STACK).build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    if single {
        // `block_on` runs on the calling thread: make it one with the same stack.
        let served = std::thread::Builder::new()
            .name("gwgen-worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || runtime.block_on(gateway.serve(&config)));
        return match served.map(|h| h.join()) {
            Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "the gateway failed");
                ExitCode::from(1)
            }
            _ => {
                tracing::error!("the gateway's thread failed");
                ExitCode::from(1)
            }
        };
    }
    match runtime.block_on(gateway.serve(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the gateway failed");
            ExitCode::from(1)
        }
    }
}

/// Validators recurse as deep as a body nests (up to `limits.json_depth`), so every thread that
/// runs requests gets 16 MiB of stack (reserved, not committed).
pub(crate) const WORKER_STACK: usize = 16 << 20;

/// How the gateway spreads its work over cores (`GWGEN_RUNTIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuntimeMode {
    /// One thread, tokio's single-threaded runtime: the default on one core (a container's CPU
    /// limit, or `taskset`), with none of a scheduler's cross-thread bookkeeping.
    CurrentThread,
    /// tokio's work-stealing runtime, a worker a core, one listener: a slow request's
    /// neighbours move to an idle core, at the price of cross-thread bookkeeping on every
    /// request.
    MultiThread,
    /// A thread a core, each with a single-threaded runtime and its own `SO_REUSEPORT`
    /// listener (Unix only; the default there on more than one core): a connection and all its
    /// requests stay on the core the kernel gave it to, as with nginx's workers.
    PerCore,
}

impl RuntimeMode {
    /// The mode `GWGEN_RUNTIME` names, or the default for `cores` cores.
    fn from_env(var: Option<&str>, cores: usize) -> Result<RuntimeMode, String> {
        match var.map(str::trim) {
            None | Some("") if cores <= 1 => Ok(RuntimeMode::CurrentThread),
            None | Some("") => Ok(RuntimeMode::DEFAULT),
            Some("current_thread") => Ok(RuntimeMode::CurrentThread),
            Some("multi_thread") => Ok(RuntimeMode::MultiThread),
            Some("per_core") if cfg!(unix) => Ok(RuntimeMode::PerCore),
            Some(other) => Err(format!(
                "GWGEN_RUNTIME=`{other}`: expected current_thread, multi_thread{}",
                if cfg!(unix) { " or per_core" } else { "" }
            )),
        }
    }

    /// The mode on more than one core: a listener and a single-threaded runtime a core, which
    /// costs less CPU a request than work stealing (docs/performance.md, "Many cores").
    #[cfg(unix)]
    const DEFAULT: RuntimeMode = RuntimeMode::PerCore;
    #[cfg(not(unix))]
    const DEFAULT: RuntimeMode = RuntimeMode::MultiThread;
}

#[cfg(test)]
mod tests {
    use super::RuntimeMode;

    #[test]
    fn the_runtime_mode_follows_the_cores_unless_named() {
        assert_eq!(
            RuntimeMode::from_env(None, 1),
            Ok(RuntimeMode::CurrentThread)
        );
        assert_eq!(RuntimeMode::from_env(None, 8), Ok(RuntimeMode::DEFAULT));
        assert_eq!(
            RuntimeMode::from_env(Some("multi_thread"), 1),
            Ok(RuntimeMode::MultiThread)
        );
        assert_eq!(
            RuntimeMode::from_env(Some("current_thread"), 8),
            Ok(RuntimeMode::CurrentThread)
        );
        #[cfg(unix)]
        assert_eq!(
            RuntimeMode::from_env(Some("per_core"), 2),
            Ok(RuntimeMode::PerCore)
        );
        assert!(RuntimeMode::from_env(Some("fast"), 2).is_err());
    }
}
