//! Route-level checks: templates that are malformed, routes no request could tell apart,
//! and operationIds used twice.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostics};
use crate::ir::Gateway;
use crate::load::node::{push_segment, Node};
use crate::lower::{parse_template, template_shape};

pub(crate) fn check_routes(
    gw: &Gateway,
    root: &Node,
    diags: &mut Diagnostics,
    root_file: &std::path::Path,
) {
    if let Some(paths) = root.get("paths") {
        for e in paths.entries() {
            if e.key.starts_with('/') {
                if let Err(why) = parse_template(&e.key) {
                    let mut p = "/paths".to_string();
                    push_segment(&mut p, &e.key);
                    diags.report(
                        Code::BadPathTemplate,
                        root_file,
                        e.key_pos,
                        &p,
                        format!("invalid path template `{}`: {why}", e.key),
                        None,
                    );
                }
            }
        }
    }
    // A greedy value is forwarded with `/` between its segments; a `%2F` kept inside a
    // segment would become one more separator upstream.
    if gw.root.escaped_slashes == crate::xgw::EscapedSlashes::Keep {
        if let Some(r) = gw.routes.iter().find(|r| {
            r.segments
                .iter()
                .any(|s| matches!(s, crate::ir::Segment::Greedy(_)))
        }) {
            diags.report(
                Code::BadPathTemplate,
                &r.location.file,
                r.location.pos,
                &r.location.pointer,
                format!(
                    "`escaped_slashes: keep` cannot serve the greedy path `{}`: an encoded slash would reach the upstream as a separator",
                    r.path
                ),
                Some("leave `escaped_slashes` at `reject`".into()),
            );
        }
    }
    let mut seen: HashMap<(crate::ir::Method, String), usize> = HashMap::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, r) in gw.routes.iter().enumerate() {
        let shape = template_shape(&r.segments);
        if let Some(&first) = seen.get(&(r.method, shape.clone())) {
            let f = &gw.routes[first];
            diags.report(
                Code::RouteConflict,
                &r.location.file,
                r.location.pos,
                &r.location.pointer,
                format!(
                    "{} {} conflicts with {} {} at {}:{}: both match the same requests",
                    r.method,
                    r.path,
                    f.method,
                    f.path,
                    f.location.file.display(),
                    f.location.pos
                ),
                Some("merge the two paths, or make their literal segments differ".into()),
            );
        } else {
            seen.insert((r.method, shape), i);
        }
        if let Some(id) = &r.operation_id {
            if let Some(&first) = ids.get(id.as_str()) {
                let f = &gw.routes[first];
                let mut p = r.location.pointer.clone();
                push_segment(&mut p, "operationId");
                diags.report(
                    Code::DuplicateOperationId,
                    &r.location.file,
                    r.location.pos,
                    &p,
                    format!(
                        "operationId `{id}` is also used by {} {} at {}:{}",
                        f.method,
                        f.path,
                        f.location.file.display(),
                        f.location.pos
                    ),
                    None,
                );
            } else {
                ids.insert(id, i);
            }
        }
    }
}
