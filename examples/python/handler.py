"""A Lambda function (handler.lambda_handler) that reads a secret, one key of it
and a parameter through the secrets-prefetch extension.

Environment: SECRET_ID (a secret whose value is JSON), SECRET_JSON_KEY
(default "username"), PARAMETER_NAME. An invoke event may override them with
"secretId", "jsonKey" and "parameterName", to try the error paths.
"""

import json
import logging
import os

from secrets_prefetch import Client, ExtensionError

log = logging.getLogger()
log.setLevel(logging.INFO)

# Made once per execution environment, during Init. The extension registered
# before Init started, so reads during Init work too.
client = Client()


def lambda_handler(event, context):
    event = event or {}
    secret_id = event.get("secretId") or os.environ.get("SECRET_ID")
    json_key = event.get("jsonKey") or os.environ.get("SECRET_JSON_KEY") or "username"
    param_name = event.get("parameterName") or os.environ.get("PARAMETER_NAME")

    try:
        secret = client.secret(secret_id)
        value = client.secret_json_key(secret_id, json_key)
        param = client.parameter(param_name)
    except ExtensionError as e:
        # The invocation fails with the error's class as Lambda's errorType
        # (NotFoundError, AccessDeniedError, UpstreamError,
        # UpstreamTimeoutError...). Temporary ones are worth a retry (Lambda
        # retries asynchronous invocations; a synchronous caller may retry);
        # the others need a fix, not a retry.
        if e.temporary:
            log.warning("read failed; temporary, worth retrying: %s", e)
        else:
            log.error("read failed; needs a configuration or IAM fix: %s", e)
        raise

    # The JSON key's value is returned to show the read worked: point
    # SECRET_JSON_KEY at something that is not secret (a user name), and never
    # return secret material from a real function.
    return {
        "secret": {"name": secret["Name"], "versionId": secret["VersionId"],
                   "keys": _count_keys(secret.get("SecretString"))},
        "jsonKey": {"key": json_key, "value": value},
        "parameter": {"name": param["Name"], "value": param["Value"], "version": param["Version"]},
    }


def _count_keys(value):
    try:
        obj = json.loads(value or "")
    except ValueError:
        return 0
    return len(obj) if isinstance(obj, dict) else 0
