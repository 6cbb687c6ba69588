// A Lambda function (index.handler, Node.js 18 or later) that reads a secret,
// one key of it and a parameter through the secrets-prefetch extension.
//
// Environment: SECRET_ID (a secret whose value is JSON), SECRET_JSON_KEY
// (default "username"), PARAMETER_NAME. An invoke event may override them
// with "secretId", "jsonKey" and "parameterName", to try the error paths.

import { Client, ExtensionError } from "./secrets-prefetch.mjs";

// Made once per execution environment, during Init. The extension registered
// before Init started, so reads during Init work too.
const client = new Client();

export const handler = async (event = {}) => {
  const secretId = event?.secretId || process.env.SECRET_ID;
  const jsonKey = event?.jsonKey || process.env.SECRET_JSON_KEY || "username";
  const parameterName = event?.parameterName || process.env.PARAMETER_NAME;

  let secret, value, param;
  try {
    secret = await client.secret(secretId);
    value = await client.secretJsonKey(secretId, jsonKey);
    param = await client.parameter(parameterName);
  } catch (err) {
    // The invocation fails with the error's name as Lambda's errorType
    // (NotFoundError, AccessDeniedError, UpstreamError,
    // UpstreamTimeoutError...). Temporary ones are worth a retry (Lambda
    // retries asynchronous invocations; a synchronous caller may retry); the
    // others need a fix, not a retry.
    if (err instanceof ExtensionError && err.temporary) {
      console.warn(`read failed; temporary, worth retrying: ${err.message}`);
    } else {
      console.error(`read failed; needs a configuration or IAM fix: ${err.message}`);
    }
    throw err;
  }

  // The JSON key's value is returned to show the read worked: point
  // SECRET_JSON_KEY at something that is not secret (a user name), and never
  // return secret material from a real function.
  return {
    secret: { name: secret.Name, versionId: secret.VersionId, keys: countKeys(secret.SecretString) },
    jsonKey: { key: jsonKey, value },
    parameter: { name: param.Name, value: param.Value, version: param.Version },
  };
};

function countKeys(value) {
  try {
    const obj = JSON.parse(value ?? "");
    return obj !== null && typeof obj === "object" && !Array.isArray(obj) ? Object.keys(obj).length : 0;
  } catch {
    return 0;
  }
}
