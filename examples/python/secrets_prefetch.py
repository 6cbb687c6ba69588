"""A client for the secrets-prefetch Lambda extension, standard library only.

The extension serves the function's secrets and parameters on 127.0.0.1 with
the API of AWS's Parameters and Secrets extension, so this client works with
either. Copy this file next to your handler.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

# Longer than the extension's own AWS timeouts (5 s by default), so a slow AWS
# comes back as the extension's 504 rather than as our timeout.
TIMEOUT_SECONDS = 10


class ExtensionError(Exception):
    """Any failed read. Subclasses tell the kinds apart; Lambda reports the
    class name as the invocation's errorType. `temporary` says whether trying
    again later may help."""

    temporary = False

    def __init__(self, status, code, message):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class NotFoundError(ExtensionError):
    """404: the secret or parameter (or that version) does not exist, or the
    extension is told not to serve it (NotConfigured). Fix the name."""


class AccessDeniedError(ExtensionError):
    """401/403: the function's role may not read it (AccessDeniedException, or
    kms:Decrypt on a customer managed key), or the token was refused. Fix IAM."""


class UpstreamError(ExtensionError):
    """502: AWS failed (throttling, 5xx, connection) and the extension had no
    value to serve in its place."""

    temporary = True


class UpstreamTimeoutError(ExtensionError):
    """504: AWS did not answer within the extension's timeout."""

    temporary = True


class ExtensionUnavailableError(ExtensionError):
    """No answer at all: the layer is not attached, or listens on another port."""

    temporary = True


_BY_STATUS = {404: NotFoundError, 401: AccessDeniedError, 403: AccessDeniedError,
              502: UpstreamError, 504: UpstreamTimeoutError}


class Client:
    """Reads through the extension on PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
    (default 2773)."""

    def __init__(self, port=None):
        port = port or os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") or "2773"
        self._base = f"http://127.0.0.1:{port}"

    def secret(self, secret_id):
        """The GetSecretValue response: ARN, Name, VersionId, SecretString..."""
        return json.loads(self._get("/secretsmanager/get", {"secretId": secret_id}))

    def secret_json_key(self, secret_id, key):
        """One top-level key of a secret whose value is JSON, as text."""
        return self._get("/secretsmanager/get", {"secretId": secret_id, "jsonKey": key}).decode()

    def parameter(self, name):
        """The GetParameter response's Parameter, SecureStrings decrypted."""
        body = self._get("/systemsmanager/parameters/get", {"name": name, "withDecryption": "true"})
        return json.loads(body)["Parameter"]

    def _get(self, path, query):
        req = urllib.request.Request(f"{self._base}{path}?{urllib.parse.urlencode(query)}",
                                     headers={"X-Aws-Parameters-Secrets-Token": _token()})
        what = f"secret {query['secretId']}" if "secretId" in query else f"parameter {query['name']}"
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            with e:
                raise _status_error(e.code, e.read(), what) from None
        except OSError as e:  # refused, reset, timed out
            raise ExtensionUnavailableError(0, "Unreachable", f"{e} ({what})") from e


def _token():
    # The session token; under SnapStart, the container authorization token.
    # Read per request: cheap, and right after a SnapStart restore.
    return os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")


def _status_error(status, body, what):
    # secrets-prefetch answers {"error":{"code":...,"message":...}}; AWS's own
    # extension answers every failure with 400 and plain text.
    try:
        err = json.loads(body)["error"]
        code, message = err["code"], err["message"]
    except (ValueError, KeyError, TypeError):
        code, message = f"HTTP{status}", body.decode(errors="replace").strip()
    cls = _BY_STATUS.get(status, ExtensionError)
    e = cls(status, code, f"{message} ({what})")
    if cls is ExtensionError:
        e.temporary = status in (429, 503)
    return e
