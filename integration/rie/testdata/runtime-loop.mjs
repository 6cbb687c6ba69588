// TEST SCAFFOLDING, not part of the examples: a minimal Lambda Runtime API
// loop (Node.js built-ins only) that runs a Node.js handler under AWS's
// Runtime Interface Emulator in the end-to-end tests. In Lambda the managed
// Node.js runtime does this.
//
// Usage: node runtime-loop.mjs HANDLER_FILE EXPORT_NAME

import http from "node:http";
import { pathToFileURL } from "node:url";

const [, , handlerFile, exportName] = process.argv;
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const base = "/2018-06-01/runtime";

// node:http rather than fetch: fetch gives up on a response after 300 s,
// and `next` is a long poll that lasts until an invoke comes.
function request(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ host, port, method, path: base + path, headers: { "Content-Type": "application/json", ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(data);
  });
}

function errorBody(err) {
  return { errorType: err?.name ?? "Error", errorMessage: err?.message ?? String(err), stackTrace: String(err?.stack ?? "").split("\n") };
}

let handler;
try {
  handler = (await import(pathToFileURL(handlerFile).href))[exportName];
  if (typeof handler !== "function") throw new TypeError(`${handlerFile} exports no function ${exportName}`);
} catch (err) {
  await request("POST", "/init/error", errorBody(err), { "Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError" });
  throw err;
}

for (;;) {
  const next = await request("GET", "/invocation/next");
  const id = next.headers["lambda-runtime-aws-request-id"];
  const deadline = Number(next.headers["lambda-runtime-deadline-ms"] ?? 0);
  const context = {
    awsRequestId: id,
    invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
  let result;
  try {
    result = await handler(next.body ? JSON.parse(next.body) : null, context);
  } catch (err) {
    await request("POST", `/invocation/${id}/error`, errorBody(err), { "Lambda-Runtime-Function-Error-Type": errorBody(err).errorType });
    continue;
  }
  await request("POST", `/invocation/${id}/response`, result ?? null);
}
