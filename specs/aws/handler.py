"""A Lambda proxy function (payload format 1.0, as REST APIs send it) for specs/aws-export.yaml:
unchanged, it runs on AWS too."""

import json


def handle(event, context):
    name = (event.get("pathParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "greeting": f"hello, {name}",
            "resource": event["resource"],
            "caller": (event["requestContext"].get("authorizer") or {}).get("principalId"),
        }),
    }
