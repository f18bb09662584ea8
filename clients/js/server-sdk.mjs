// A Node service's flags: the OpenFeature server SDK with the OFREP
// provider, evaluating against opstate serve at OPSTATE_URL, with the
// token OPSTATE_TOKEN when set.
//
// It reads one request a line on standard input, {"type":"boolean",
// "key":"dark_mode","default":false} (type boolean, string, number or
// object), evaluates it with the same client each time, and writes one
// line a result on standard output: {"kind":"eval","details":{...}}, the
// SDK's evaluation details with errorName, the name of the error the
// provider raised, if any. It prints {"kind":"ready"} once the provider
// is ready, and exits 0 at the end of its input.
import readline from 'node:readline';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// As docs/serve.md shows it ("From Node").
await OpenFeature.setProviderAndWait(new OFREPProvider({
  baseUrl: process.env.OPSTATE_URL,
  headers: [['Authorization', `Bearer ${process.env.OPSTATE_TOKEN}`]],
}));
const client = OpenFeature.getClient();

let raised;
client.addHooks({ error: (_hookContext, err) => { raised = err; } });
const evaluate = {
  boolean: (key, def, ctx) => client.getBooleanDetails(key, def, ctx),
  string: (key, def, ctx) => client.getStringDetails(key, def, ctx),
  number: (key, def, ctx) => client.getNumberDetails(key, def, ctx),
  object: (key, def, ctx) => client.getObjectDetails(key, def, ctx),
};

emit({ kind: 'ready' });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const req = JSON.parse(line);
  raised = undefined;
  const details = await evaluate[req.type](req.key, req.default, { targetingKey: 'user-1' });
  emit({ kind: 'eval', details: { ...details, errorName: raised?.name } });
}
await OpenFeature.close();
process.exit(0);
