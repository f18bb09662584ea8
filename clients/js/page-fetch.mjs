// pageFetch(origin, record) returns a fetch that calls another origin as a
// browser page of origin does, by the Fetch standard's CORS protocol, as
// far as the requests of OFREP's providers and of an EventSource meet it
// (without credentials, and with no cache of preflights):
//
//   - a request that is not simple (a method other than GET, HEAD and
//     POST, or a header that is not CORS-safelisted: Authorization,
//     X-API-Key, If-None-Match, Content-Type: application/json) is
//     preceded by a preflight, OPTIONS with Origin,
//     Access-Control-Request-Method and Access-Control-Request-Headers;
//     the request is refused unless the preflight's answer is 2xx,
//     allows the origin, the method and each of those headers;
//   - the request carries Origin, and its answer is refused unless it
//     allows the origin (Access-Control-Allow-Origin);
//   - the page reads only the CORS-safelisted headers of the answer and
//     those listed in Access-Control-Expose-Headers (an ETag unlisted is
//     not seen).
//
// A refusal is a TypeError, as a browser's fetch gives. record receives
// each preflight and each request with the answer the page saw.

const safelistedRequestHeaders = new Set(['accept', 'accept-language', 'content-language', 'content-type']);
const simpleContentTypes = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);
const simpleMethods = new Set(['GET', 'HEAD', 'POST']);
const safelistedResponseHeaders = new Set([
  'cache-control', 'content-language', 'content-length', 'content-type', 'expires', 'last-modified', 'pragma',
]);
const nullBodyStatuses = new Set([101, 103, 204, 205, 304]);

// unsafeHeaderNames returns the names of the request headers that are not
// CORS-safelisted, lowercase and sorted (as Headers iterates them).
function unsafeHeaderNames(headers) {
  const names = [];
  for (const [name, value] of headers) {
    const type = value.split(';')[0].trim().toLowerCase();
    if (!safelistedRequestHeaders.has(name) || (name === 'content-type' && !simpleContentTypes.has(type))) {
      names.push(name);
    }
  }
  return names;
}

// list returns the comma-separated values of header name, trimmed;
// lowercase when lower.
function list(headers, name, lower) {
  const v = headers.get(name);
  if (v === null) {
    return [];
  }
  return v.split(',').map((s) => (lower ? s.trim().toLowerCase() : s.trim())).filter((s) => s !== '');
}

// allowsOrigin reports whether an answer lets a page of origin read it.
function allowsOrigin(res, origin) {
  const allow = res.headers.get('access-control-allow-origin');
  return allow === origin || allow === '*';
}

export function pageFetch(origin, record = () => {}) {
  return async (input, init) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    if (url.origin === origin) {
      throw new TypeError('pageFetch: a request to the page\'s own origin is not what it checks');
    }
    const path = url.pathname;
    const unsafe = unsafeHeaderNames(req.headers);
    if (!simpleMethods.has(req.method) || unsafe.length > 0) {
      const pre = new Headers({ Origin: origin, 'Access-Control-Request-Method': req.method });
      if (unsafe.length > 0) {
        pre.set('Access-Control-Request-Headers', unsafe.join(','));
      }
      const res = await fetch(url, { method: 'OPTIONS', headers: pre, signal: req.signal });
      const methods = list(res.headers, 'access-control-allow-methods', false);
      const allowed = list(res.headers, 'access-control-allow-headers', true);
      const problems = [];
      if (res.status < 200 || res.status > 299) {
        problems.push(`status ${res.status}`);
      }
      if (!allowsOrigin(res, origin)) {
        problems.push('origin not allowed');
      }
      if (!simpleMethods.has(req.method) && !methods.includes(req.method) && !methods.includes('*')) {
        problems.push(`method ${req.method} not allowed`);
      }
      for (const name of unsafe) {
        if (!allowed.includes(name) && !(allowed.includes('*') && name !== 'authorization')) {
          problems.push(`header ${name} not allowed`);
        }
      }
      record({
        kind: 'preflight', path, requestMethod: req.method, requestHeaders: unsafe.join(','), status: res.status,
        allowOrigin: res.headers.get('access-control-allow-origin') ?? '', problems,
      });
      if (problems.length > 0) {
        throw new TypeError(`Failed to fetch: CORS preflight of ${req.method} ${path}: ${problems.join(', ')}`);
      }
    }

    const headers = new Headers(req.headers);
    headers.set('Origin', origin);
    const body = req.body === null ? undefined : await req.arrayBuffer();
    const res = await fetch(url, { method: req.method, headers, body, signal: req.signal });
    const exposed = new Set([...safelistedResponseHeaders, ...list(res.headers, 'access-control-expose-headers', true)]);
    const seen = new Headers();
    for (const [name, value] of res.headers) {
      if (exposed.has(name) || exposed.has('*')) {
        seen.append(name, value);
      }
    }
    const allowed = allowsOrigin(res, origin);
    record({
      kind: 'fetch', method: req.method, path, ifNoneMatch: req.headers.get('if-none-match') ?? '', status: res.status,
      etag: seen.get('etag') ?? '', allowOrigin: res.headers.get('access-control-allow-origin') ?? '', allowed,
    });
    if (!allowed) {
      await res.body?.cancel();
      throw new TypeError(`Failed to fetch: ${req.method} ${path}: origin ${origin} not allowed`);
    }
    const bodyOut = nullBodyStatuses.has(res.status) ? null : res.body;
    return new Response(bodyOut, { status: res.status, statusText: res.statusText, headers: seen });
  };
}
