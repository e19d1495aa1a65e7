"""The `send` route of specs/websocket.yaml: a Lambda function (AWS's WebSocket event) whose
answer's `body` goes back to the client. Unchanged, it runs on AWS too."""

import json


def handle(event, context):
    message = json.loads(event.get("body") or "{}")
    return {
        "statusCode": 200,
        "body": json.dumps({
            "you said": message.get("text"),
            "connectionId": event["requestContext"]["connectionId"],
        }),
    }
