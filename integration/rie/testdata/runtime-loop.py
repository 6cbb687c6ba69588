"""TEST SCAFFOLDING, not part of the examples: a minimal Lambda Runtime API loop
(standard library only) that runs a Python handler under AWS's Runtime
Interface Emulator in the end-to-end tests. In Lambda the managed Python
runtime does this; it is not on PyPI-less machines, hence this stand-in.

Usage: runtime-loop.py CODE_DIR MODULE.FUNCTION
"""

import json
import os
import sys
import time
import traceback
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


def post(path, body, headers=None):
    req = urllib.request.Request(API + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as resp:
        resp.read()


def error_body(e):
    return {"errorType": type(e).__name__, "errorMessage": str(e),
            "stackTrace": traceback.format_exception(e)}


class Context:
    """The attributes of the managed runtime's context object that handlers use."""

    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def main():
    code_dir, handler_name = sys.argv[1], sys.argv[2]
    sys.path.insert(0, code_dir)
    module_name, function_name = handler_name.rsplit(".", 1)
    try:
        handler = getattr(__import__(module_name), function_name)
    except Exception as e:  # the managed runtime reports Runtime.ImportModuleError
        post("/init/error", error_body(e), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        raise
    while True:
        # No timeout: `next` is a long poll that lasts until an invoke comes.
        with urllib.request.urlopen(API + "/invocation/next") as resp:
            request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline_ms = int(resp.headers.get("Lambda-Runtime-Deadline-Ms") or 0)
            arn = resp.headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
            event = json.loads(resp.read() or b"null")
        try:
            result = handler(event, Context(request_id, deadline_ms, arn))
        except Exception as e:
            post(f"/invocation/{request_id}/error", error_body(e),
                 {"Lambda-Runtime-Function-Error-Type": type(e).__name__})
            continue
        post(f"/invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
