//! The compiled validator of GitHub's check-run request body (see build.rs), and request bodies
//! of about 1 KB and 10 KB for it.
#![allow(missing_docs)]

use gwgen_runtime::__private_0_1 as rt;

/// The compiled schema functions.
#[allow(clippy::all, unused_mut, unused_variables, dead_code)]
pub mod compiled {
    use super::rt;
    include!(concat!(env!("OUT_DIR"), "/check_runs.rs"));
}

/// The schema as JSON, for the jsonschema crate.
pub const SCHEMA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/check_runs.schema.json"));

/// Parses and validates like the gateway does: straight from the bytes.
pub fn gwgen_validate(body: &[u8]) -> bool {
    match rt::v::Doc::parse(body) {
        Ok(doc) => {
            let mut ctx = rt::v::Ctx::new();
            compiled::check_run(&doc, 0, &mut ctx, None)
        }
        Err(_) => false,
    }
}

/// Checks as the gateway checks a body first: in one pass as it is read, no document built
/// (a body this refuses is then parsed and checked by [`gwgen_validate`]).
pub fn gwgen_stream(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let mut r = rt::v::Stream::new(text, 128, usize::MAX);
    let mut ctx = rt::v::Ctx::new();
    ctx.quietly(|c| compiled::check_run_stream(&mut r, c)) && r.finish()
}

/// A realistic, valid check-run body with `annotations` annotations.
pub fn body(annotations: usize) -> Vec<u8> {
    let list: Vec<serde_json::Value> = (0..annotations)
        .map(|n| {
            let level = ["notice", "warning", "failure"][n % 3];
            serde_json::json!({
                "path": format!("src/module_{n}/handler.rs"),
                "start_line": 10 + n,
                "end_line": 12 + n,
                "start_column": 5,
                "end_column": 40,
                "annotation_level": level,
                "message": format!("clippy: this `if` has identical blocks (lint {n}); consider merging them"),
                "title": "clippy::if_same_then_else",
                "raw_details": "see https://rust-lang.github.io/rust-clippy/master/index.html#if_same_then_else"
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "name": "clippy",
        "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
        "details_url": "https://ci.example.com/runs/4242",
        "external_id": "run-4242",
        "status": "completed",
        "started_at": "2026-11-25T10:00:00Z",
        "conclusion": "neutral",
        "completed_at": "2026-11-25T10:03:12Z",
        "output": {
            "title": "Clippy report",
            "summary": "There are several lints to look at.",
            "text": "Run `cargo clippy --all-targets` locally to see them.",
            "annotations": list,
            "images": [{ "alt": "coverage", "image_url": "https://ci.example.com/coverage.png", "caption": "coverage" }]
        },
        "actions": [{ "label": "Fix", "description": "Apply the suggested fixes", "identifier": "fix_all" }]
    }))
    .unwrap_or_default()
}
