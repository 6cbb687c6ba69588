// A client for the secrets-prefetch Lambda extension, Node.js built-ins only
// (Node 18+: global fetch). The extension serves the function's secrets and
// parameters on 127.0.0.1 with the API of AWS's Parameters and Secrets
// extension, so this client works with either. Copy this file next to your
// handler.

// Longer than the extension's own AWS timeouts (5 s by default), so a slow
// AWS comes back as the extension's 504 rather than as our timeout.
const TIMEOUT_MS = 10_000;

// Any failed read. The subclasses tell the kinds apart; Lambda reports an
// error's `name` as the invocation's errorType. `temporary` says whether
// trying again later may help.
export class ExtensionError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.name = this.constructor.name;
    this.status = status;
    this.code = code;
    this.temporary = status === 429 || status === 503;
  }
}

// 404: the secret or parameter (or that version) does not exist, or the
// extension is told not to serve it (NotConfigured). Fix the name.
export class NotFoundError extends ExtensionError {}

// 401/403: the function's role may not read it (AccessDeniedException, or
// kms:Decrypt on a customer managed key), or the token was refused. Fix IAM.
export class AccessDeniedError extends ExtensionError {}

// 502: AWS failed (throttling, 5xx, connection) and the extension had no
// value to serve in its place.
export class UpstreamError extends ExtensionError {
  temporary = true;
}

// 504: AWS did not answer within the extension's timeout.
export class UpstreamTimeoutError extends ExtensionError {
  temporary = true;
}

// No answer at all: the layer is not attached, or listens on another port.
export class ExtensionUnavailableError extends ExtensionError {
  temporary = true;
}

const byStatus = { 404: NotFoundError, 401: AccessDeniedError, 403: AccessDeniedError, 502: UpstreamError, 504: UpstreamTimeoutError };

export class Client {
  // Reads through the extension on PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
  // (default 2773).
  constructor(port = process.env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT || "2773") {
    this.base = `http://127.0.0.1:${port}`;
  }

  // The GetSecretValue response: ARN, Name, VersionId, SecretString...
  async secret(secretId) {
    return JSON.parse(await this.#get("/secretsmanager/get", { secretId }));
  }

  // One top-level key of a secret whose value is JSON, as text.
  async secretJsonKey(secretId, jsonKey) {
    return this.#get("/secretsmanager/get", { secretId, jsonKey });
  }

  // The GetParameter response's Parameter, SecureStrings decrypted.
  async parameter(name) {
    return JSON.parse(await this.#get("/systemsmanager/parameters/get", { name, withDecryption: "true" })).Parameter;
  }

  async #get(path, query) {
    const what = query.secretId !== undefined ? `secret ${query.secretId}` : `parameter ${query.name}`;
    let resp, body;
    try {
      resp = await fetch(`${this.base}${path}?${new URLSearchParams(query)}`, {
        headers: { "X-Aws-Parameters-Secrets-Token": token() },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      body = await resp.text();
    } catch (err) {
      throw new ExtensionUnavailableError(0, "Unreachable", `${err.cause?.code ?? err.message} (${what})`);
    }
    if (resp.status === 200) {
      return body;
    }
    // secrets-prefetch answers {"error":{"code":...,"message":...}}; AWS's
    // own extension answers every failure with 400 and plain text.
    let code = `HTTP${resp.status}`;
    let message = body.trim();
    try {
      ({ code, message } = JSON.parse(body).error);
    } catch {
      // not ours: keep the status and the text
    }
    const Cls = byStatus[resp.status] ?? ExtensionError;
    throw new Cls(resp.status, code, `${message} (${what})`);
  }
}

// The session token; under SnapStart, the container authorization token.
// Read per request: cheap, and right after a SnapStart restore.
function token() {
  return process.env.AWS_SESSION_TOKEN || process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN || "";
}
