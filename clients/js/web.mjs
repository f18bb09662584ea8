// A browser page's flags, in Node: the OpenFeature web SDK with the OFREP
// web provider, evaluating against opstate serve at OPSTATE_URL with the
// token OPSTATE_TOKEN, its requests made as a page of PAGE_ORIGIN makes
// them (page-fetch.mjs: CORS preflights, the answer's headers limited to
// those exposed). The provider evaluates every flag at once (the bulk
// evaluation), then, with CHANGE_DETECTION=polling, polls every
// POLL_INTERVAL_MS milliseconds with the ETag; with CHANGE_DETECTION=sse,
// it follows the event stream the bulk answer announces, through a
// browser's EventSource (the eventsource package: Node has none), which
// sends no header of the page's, and evaluates again at each event.
//
// It writes one JSON line on standard output for each preflight and each
// request ({"kind":"preflight",...}, {"kind":"fetch",...}), then
// {"kind":"ready","ok":true} once the provider is ready, or "ok":false
// with the error, and {"kind":"changed","flags":[...]} at each
// configuration change. It reads evaluation requests on standard input as
// server-sdk.mjs does and answers each with {"kind":"eval","details":{...}}.
// It exits 0 at the end of its input.
import readline from 'node:readline';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { pageFetch } from './page-fetch.mjs';

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const changeDetection = process.env.CHANGE_DETECTION;

if (changeDetection === 'sse') {
  const { EventSource } = await import('eventsource');
  globalThis.EventSource = class extends EventSource {
    constructor(url, init) {
      super(url, { ...init, fetch: pageFetch(process.env.PAGE_ORIGIN, emit) });
    }
  };
}

// As docs/serve.md shows it ("From a browser"), but for the base URL, the
// change detection and poll interval, and two lines a page does without:
// cacheMode (Node has no localStorage) and fetchImplementation (a page's
// fetch is the browser's).
await OpenFeature.setContext({ targetingKey: 'user-1' });
try {
  await OpenFeature.setProviderAndWait(new OFREPWebProvider({
    baseUrl: process.env.OPSTATE_URL,
    headers: [['X-API-Key', process.env.OPSTATE_TOKEN]],
    changeDetection,
    pollInterval: Number(process.env.POLL_INTERVAL_MS),
    cacheMode: 'disabled',
    fetchImplementation: pageFetch(process.env.PAGE_ORIGIN, emit),
  }));
  emit({ kind: 'ready', ok: true });
} catch (err) {
  emit({ kind: 'ready', ok: false, error: err.name, cause: err.cause?.name ?? '', message: String(err.message) });
}
const client = OpenFeature.getClient();
client.addHandler(ProviderEvents.ConfigurationChanged, (d) => emit({ kind: 'changed', flags: d.flagsChanged ?? [] }));

const evaluate = {
  boolean: (key, def) => client.getBooleanDetails(key, def),
  string: (key, def) => client.getStringDetails(key, def),
  number: (key, def) => client.getNumberDetails(key, def),
  object: (key, def) => client.getObjectDetails(key, def),
};
for await (const line of readline.createInterface({ input: process.stdin })) {
  const req = JSON.parse(line);
  emit({ kind: 'eval', details: evaluate[req.type](req.key, req.default) });
}
await OpenFeature.close();
process.exit(0);
