// Makes the calls given as JSON in argv[2] ([{"op","input"}]) with the AWS SDK
// for JavaScript v3 and prints each outcome as JSON: the output without
// $metadata, or the error's name. Region, credentials and endpoints come
// from the environment (AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM).
import * as sm from "@aws-sdk/client-secrets-manager";
import * as ssm from "@aws-sdk/client-ssm";

const clients = { sm: new sm.SecretsManagerClient({}), ssm: new ssm.SSMClient({}) };
const results = [];
for (const { op, input } of JSON.parse(process.argv[2])) {
  const [pkg, client] = sm[op + "Command"] ? [sm, clients.sm] : [ssm, clients.ssm];
  try {
    const out = await client.send(new pkg[op + "Command"](input));
    delete out.$metadata;
    results.push({ output: out });
  } catch (e) {
    results.push({ errorCode: e.name });
  }
}
console.log(JSON.stringify(results, (k, v) => {
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  return v;
}));
