"""Makes the calls given as JSON in argv[2] ([{"op","input"}]) with boto3
against the endpoint in argv[1] (endpoint_url=) and prints each outcome as
JSON: the output without ResponseMetadata, or the error code."""
import base64
import datetime
import json
import re
import sys

import boto3
import botocore.exceptions


def snake(op):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()


def default(o):
    if isinstance(o, datetime.datetime):
        return o.isoformat()
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode()
    raise TypeError(type(o))


endpoint = sys.argv[1]
clients = {
    "sm": boto3.client("secretsmanager", endpoint_url=endpoint),
    "ssm": boto3.client("ssm", endpoint_url=endpoint),
}
results = []
for call in json.loads(sys.argv[2]):
    client = clients["ssm" if "Parameter" in call["op"] else "sm"]
    try:
        out = getattr(client, snake(call["op"]))(**call["input"])
        out.pop("ResponseMetadata", None)
        results.append({"output": out})
    except botocore.exceptions.ClientError as e:
        results.append({"errorCode": e.response["Error"]["Code"]})
print(json.dumps(results, default=default))
