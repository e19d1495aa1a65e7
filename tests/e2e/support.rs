//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The vendored third-party corpus (`tests/corpus`, or `GWGEN_CORPUS`); panics with a clear
/// message when it is missing.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("GWGEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("tests").join("corpus"));
    assert!(
        dir.join("SOURCES.md").exists(),
        "the test corpus is missing at {} (set GWGEN_CORPUS)",
        dir.display()
    );
    dir
}

/// The `gwgen` binary, built once per test run.
pub fn gwgen_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "gwgen", "--bin", "gwgen"])
            .current_dir(repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building gwgen failed");
        let exe = std::env::current_exe().expect("test exe path");
        // target/<profile>/deps/e2e-HASH → target/<profile>/gwgen
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = profile_dir.join(format!("gwgen{}", std::env::consts::EXE_SUFFIX));
        if bin.exists() {
            bin
        } else {
            repo().join("target").join("debug").join("gwgen")
        }
    })
}

/// Runs `gwgen` with `args` in `cwd`.
pub fn gwgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(gwgen_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("gwgen runs")
}

/// Every error of a check, as `CODE message` lines, for assertion messages.
pub fn errors(c: &gwgen::Checked) -> Vec<String> {
    c.diagnostics
        .iter()
        .filter(|d| d.severity == gwgen::Severity::Error)
        .map(|d| {
            format!(
                "{}:{} {} {}",
                d.file.display(),
                d.pos,
                d.code.as_str(),
                d.message
            )
        })
        .collect()
}

/// The codes of a check's diagnostics.
pub fn codes(c: &gwgen::Checked) -> Vec<&'static str> {
    c.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

/// A helper process (a stand-in server), killed and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port a helper server writes to `file` once it listens (within 20 s).
pub fn port_from_file(file: &Path, what: &str) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(p) = std::fs::read_to_string(file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An empty scratch folder for one test, named after it and the test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gwgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}
