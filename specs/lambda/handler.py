"""A Lambda function (payload format 2.0) for specs/lambda.yaml: unchanged, it runs on AWS too."""

import base64
import json


def handle(event, context):
    name = (event.get("pathParameters") or {}).get("name", "world")
    if event.get("requestContext", {}).get("http", {}).get("method") == "POST":
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"received": body, "requestId": context.aws_request_id}),
        }
    # A bare object: API Gateway answers 200 with it as the JSON body.
    return {"greeting": f"hello, {name}", "stage": event["requestContext"]["stage"]}
