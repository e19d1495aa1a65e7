//! Importing API Gateway exports: Swagger 2.0 converted to OpenAPI 3.0, and the
//! `x-amazon-apigateway-*` extensions lowered into `x-gateway` settings, on the loaded tree,
//! before anything else reads it. The rest of the pipeline sees a plain gwgen spec whose new
//! nodes point back at the AWS text they came from; `gwgen import-aws` writes that spec out.
//!
//! What has no faithful equivalent (AWS service integrations, IAM authorization, VPC links,
//! Velocity directives, …) is refused where it stands (GW0601), never served differently.

mod extensions;
pub(crate) mod swagger;
pub(crate) mod tree;
pub(crate) mod vtl;

use crate::diag::Diagnostics;
use crate::load::node::{Node, Value};
use crate::load::Sources;

/// The prefix of API Gateway's extensions.
pub(crate) const PREFIX: &str = "x-amazon-apigateway-";

/// Whether any member of the tree is an API Gateway extension.
pub(crate) fn has_extensions(root: &Node) -> bool {
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        match &n.value {
            Value::Object(entries) => {
                if entries.iter().any(|e| e.key.starts_with(PREFIX)) {
                    return true;
                }
                stack.extend(entries.iter().map(|e| &e.value));
            }
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    false
}

/// Rewrites the root file of `sources` in place: Swagger 2.0 to OpenAPI 3.0, then the AWS
/// extensions to `x-gateway`. Returns whether anything changed.
pub(crate) fn import(sources: &mut Sources, diags: &mut Diagnostics) -> bool {
    let Some(file) = sources.files.first_mut() else {
        return false;
    };
    let mut changed = false;
    if swagger::is_swagger2(&file.root) {
        file.root = swagger::convert(&file.root, &file.path, diags);
        changed = true;
    }
    if has_extensions(&file.root) {
        extensions::lower(&mut file.root, &file.path, diags);
        changed = true;
    }
    if changed {
        file.rewritten = true;
    }
    changed
}
