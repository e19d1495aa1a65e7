//! One broken spec per diagnostic code in `tests/fixtures/check`, each with its rendered
//! diagnostics snapshotted (`cargo insta review`, or `INSTA_UPDATE=always`, to accept changes).

use std::path::Path;

use crate::support::codes;

fn fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/check");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn every_code_has_a_fixture() {
    let names = fixtures();
    for info in gwgen::diag::CATALOGUE {
        if info.code == "GW0001" {
            continue; // An unreadable file: covered by the CLI tests.
        }
        if info.code == "GW0409" {
            continue; // No key of this version is unbuilt: kept for keys to come.
        }
        let prefix = info.code.to_lowercase();
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no fixture for {}",
            info.code
        );
    }
}

#[test]
fn fixture_diagnostics() {
    for name in fixtures() {
        // Cargo runs the tests in tests/, so this relative path keeps snapshots independent of
        // where the repository is.
        let rel = format!("fixtures/check/{name}");
        let checked = gwgen::check_file(&rel);
        let code = name[..6].to_uppercase();
        assert!(
            codes(&checked).contains(&code.as_str()),
            "{name} should report {code}, got {:?}",
            codes(&checked)
        );
        let text = gwgen::render::render(
            &checked.diagnostics,
            &[&checked.sources],
            gwgen::render::Format::Human,
        );
        let stem = name
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or(&name)
            .to_string();
        insta::assert_snapshot!(stem, text);
    }
}
