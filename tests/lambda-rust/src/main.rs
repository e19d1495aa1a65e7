//! A Lambda function (payload format 2.0) on AWS's Rust runtime client, unchanged from what would
//! run on AWS: it greets by path parameter, reports its request id, and fails on paths that end in `fail`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (event, context) = event.into_parts();
    let path = event["rawPath"].as_str().unwrap_or_default();
    if path.ends_with("fail") {
        return Err("the Rust function failed on purpose".into());
    }
    let body = json!({
        "runtime": "rust",
        "requestId": context.request_id,
        "name": event["pathParameters"]["name"],
        "deadline": context.deadline,
    });
    Ok(json!({
        "statusCode": 200,
        "headers": { "content-type": "application/json" },
        "body": body.to_string(),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
