// opstate admin page. Plain script, no build step, no dependency. Every
// name and value from the server goes into the page as text (textContent,
// title, dataset, value), never as markup.
'use strict';
(() => {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const hook = (name, root) => $(`[data-test="${name}"]`, root);
  const meta = (name) => { const m = document.querySelector(`meta[name="${name}"]`); return m ? m.content : ''; };

  const csrf = meta('opstate-csrf');
  const flagsNS = meta('opstate-flags');
  const scope = document.body.dataset.scope;
  const canWrite = scope === 'write' || scope === 'open';
  const historyPage = 50;
  const changesRead = 1000;

  const state = {
    ns: null,          // the namespace shown
    keys: new Map(),   // its keys and values, as last read or reported
    expires: new Map(), // key -> its expiry (ISO time, '' for never), from the listing
    expiresOn: null,   // whether the listing gives expiries (false: the backend cannot; then history does)
    latest: new Map(), // key -> its latest change read from history
    historyOn: null,   // whether ns keeps history (null: not known yet)
    stale: false,      // a stale event came, and no reset since
    es: null,          // the EventSource of ns
    retry: 0,          // reconnection attempts since the stream was last open
    retryTimer: 0,
    hist: null,        // the history panel: {key, before, done}
    edit: null,        // the edit form: {key, isNew, value}
  };

  // ---- helpers ----

  // seg encodes a name as one path segment; the server refuses a raw . or ..
  const seg = (s) => (s === '.' ? '%2E' : s === '..' ? '%2E%2E' : encodeURIComponent(s));
  const nsPath = (ns) => `/v1/namespaces/${seg(ns)}`;
  const keyPath = (ns, key) => `${nsPath(ns)}/keys/${seg(key)}`;

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k === 'test') e.dataset.test = v;
      else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'type') e.setAttribute(k, v === true ? '' : String(v));
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  class HTTPError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  async function api(method, path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers);
    if (csrf && method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: opts.body, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new HTTPError(0, `the server cannot be reached (${e.message})`);
    }
    if (resp.status === 401 && scope !== 'open') {
      location.assign('/'); // the session ended: the login form
      throw new HTTPError(401, 'the session ended');
    }
    if (!resp.ok) {
      let msg = `${resp.status} ${resp.statusText}`;
      try { const j = await resp.json(); if (j && typeof j.error === 'string') msg = j.error; } catch (_) { /* not JSON */ }
      throw new HTTPError(resp.status, msg);
    }
    return resp;
  }

  // sha256 is SHA-256 (FIPS 180-4) of bytes, for a page that the browser
  // gives no crypto.subtle (plain HTTP to a host other than localhost).
  function sha256(bytes) {
    const K = new Uint32Array([
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
    const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const n = bytes.length;
    const padded = new Uint8Array(Math.ceil((n + 9) / 64) * 64);
    padded.set(bytes);
    padded[n] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
    view.setUint32(padded.length - 4, (n * 8) >>> 0);
    const W = new Uint32Array(64);
    const rotr = (x, r) => (x >>> r) | (x << (32 - r));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) W[i] = view.getUint32(off + 4 * i);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
        const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
        W[i] = W[i - 16] + s0 + W[i - 7] + s1;
      }
      let [a, b, c, d, e, f, g, h] = H;
      for (let i = 0; i < 64; i++) {
        const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(4 * i, H[i]);
    return out;
  }

  // etag returns the ETag the server gives value: the SHA-256 of its UTF-8
  // bytes, base64url, quoted.
  async function etag(value) {
    const bytes = new TextEncoder().encode(value);
    const sum = window.crypto && crypto.subtle
      ? new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
      : sha256(bytes);
    let bin = '';
    for (const b of sum) bin += String.fromCharCode(b);
    return '"' + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '"';
  }

  // precondition returns the header that makes a write conditional on key
  // being as shown: If-Match its value's ETag, or If-None-Match: * when absent.
  async function precondition(key) {
    if (!state.keys.has(key)) return { 'If-None-Match': '*' };
    return { 'If-Match': await etag(state.keys.get(key)) };
  }

  const pad = (n) => String(n).padStart(2, '0');
  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  // duration writes ms as a Go duration, to the second: 1h2m3s.
  function duration(ms) {
    let t = Math.round(ms / 1000);
    const h = Math.floor(t / 3600); t -= h * 3600;
    const m = Math.floor(t / 60); t -= m * 60;
    return (h ? h + 'h' : '') + (h || m ? m + 'm' : '') + t + 's';
  }
  function clip(s, n) { return s.length > n ? s.slice(0, n) + '…' : s; }

  function showError(msg) {
    const b = hook('error-banner');
    $('.banner-text', b).textContent = msg;
    b.hidden = false;
  }
  function clearError() { hook('error-banner').hidden = true; }
  async function attempt(f) {
    try { await f(); } catch (e) { if (!(e instanceof HTTPError && e.status === 401)) showError(e.message); }
  }

  function setStream(s) {
    document.body.dataset.stream = s;
    const e = hook('stream-state');
    e.dataset.state = s;
    e.textContent = s;
    e.title = {
      idle: 'no namespace open',
      connecting: 'opening the event stream',
      live: 'changes appear as they happen',
      reconnecting: 'the event stream is down: what is shown may be out of date; reconnecting',
      stale: "the store's change stream is down: others' changes are not seen until it recovers",
    }[s] || '';
  }

  // ---- namespaces ----

  let nsTimer = 0;
  async function loadNamespaces() {
    const resp = await api('GET', '/v1/namespaces');
    const m = await resp.json();
    const names = Object.keys(m).sort();
    if (state.ns !== null && !names.includes(state.ns)) names.push(state.ns);
    const list = hook('ns-list');
    list.replaceChildren(...names.map((n) => el('li', { test: 'ns-item', 'data-ns': n, class: n === state.ns ? 'current' : '' },
      el('a', { href: '#ns=' + encodeURIComponent(n), title: n },
        el('span', { class: 'n', text: n }),
        el('span', { class: 'ns-count', test: 'ns-count', text: String(m[n] || 0) })))));
    return names;
  }
  function refreshNamespacesSoon() {
    clearTimeout(nsTimer);
    nsTimer = setTimeout(() => attempt(loadNamespaces), 800);
  }

  // ---- a namespace's keys ----

  function openNamespace(ns) {
    if (ns === state.ns) return;
    closeStream();
    state.ns = ns;
    state.keys = new Map();
    state.expires = new Map();
    state.expiresOn = null;
    state.latest = new Map();
    state.historyOn = null;
    state.stale = false;
    closeEdit();
    closeHistory();
    $('.empty-main').hidden = true;
    $('section.ns').hidden = false;
    hook('ns-title').textContent = ns;
    hook('key-filter').value = '';
    $('table.keys tbody').replaceChildren();
    for (const li of hook('ns-list').children) li.classList.toggle('current', li.dataset.ns === ns);
    $('#side').classList.remove('open');
    openStream();
    attempt(async () => { await loadKeys(); await loadLatest(); });
    attempt(loadNamespaces);
  }

  // readKeys reads the namespace's live keys with their values and, when
  // the server can list them, their expiries ({key: {value, expires}}).
  async function readKeys(ns) {
    if (state.expiresOn !== false) {
      try {
        const resp = await api('GET', nsPath(ns) + '?expiry=1');
        return { items: await resp.json(), withExpiry: true };
      } catch (e) {
        if (!(e instanceof HTTPError && e.status === 501)) throw e;
      }
    }
    const resp = await api('GET', nsPath(ns));
    const m = await resp.json();
    const items = {};
    for (const [k, v] of Object.entries(m)) items[k] = { value: v };
    return { items, withExpiry: false };
  }

  async function loadKeys() {
    const ns = state.ns;
    const { items, withExpiry } = await readKeys(ns);
    if (ns !== state.ns) return;
    state.expiresOn = withExpiry;
    state.keys = new Map();
    state.expires = new Map();
    for (const [k, it] of Object.entries(items)) {
      state.keys.set(k, it.value);
      state.expires.set(k, it.expires || '');
    }
    renderKeys();
  }

  // loadExpiries re-reads the expiries of the keys shown (a change event
  // carries none) and redraws just the expiry cells.
  async function loadExpiries() {
    const ns = state.ns;
    if (state.expiresOn !== true) return;
    const { items, withExpiry } = await readKeys(ns);
    if (ns !== state.ns || !withExpiry) return;
    state.expires = new Map();
    for (const [k, it] of Object.entries(items)) state.expires.set(k, it.expires || '');
    refillLatest();
  }
  let expiresTimer = 0;
  function loadExpiriesSoon() {
    clearTimeout(expiresTimer);
    expiresTimer = setTimeout(() => attempt(loadExpiries), 300);
  }

  function renderKeys() {
    const tbody = $('table.keys tbody');
    const keys = [...state.keys.keys()].sort();
    tbody.replaceChildren(...keys.map(row));
    hook('keys-empty').hidden = keys.length > 0;
    applyFilter();
  }

  function rowOf(key) {
    for (const tr of $('table.keys tbody').children) if (tr.dataset.key === key) return tr;
    return null;
  }

  // row builds the table row of key.
  function row(key) {
    const value = state.keys.get(key);
    const tr = el('tr', { test: 'key-row', 'data-key': key });
    const vcell = el('td', { class: 'v', test: 'key-value', 'data-label': 'value', title: value.length > 200 ? value : null });
    if (value === 'true' || value === 'false') {
      vcell.append(el('button', {
        type: 'button', class: 'switch', role: 'switch', test: 'key-switch', 'aria-checked': value,
        'aria-label': `${key}: ${value}`, disabled: !canWrite, on: { click: () => flip(key) },
      }));
    }
    vcell.append(document.createTextNode(clip(value, 200)));
    const actions = el('td', { class: 'a' });
    if (canWrite) actions.append(el('button', { type: 'button', test: 'key-edit', text: 'Edit', on: { click: () => openEdit(key) } }), ' ');
    actions.append(el('button', { type: 'button', test: 'key-history', text: 'History', on: { click: () => openHistory(key) } }));
    if (canWrite) actions.append(' ', el('button', { type: 'button', class: 'danger', test: 'key-delete', text: 'Delete', on: { click: (e) => armDelete(e.currentTarget, key) } }));
    tr.append(el('td', { class: 'k', test: 'key-name', text: key }), vcell,
      el('td', { class: 't', test: 'key-expiry', 'data-label': 'expires' }),
      el('td', { class: 't', test: 'key-changed', 'data-label': 'changed' }), actions);
    fillLatest(tr, key);
    return tr;
  }

  // expiryOf returns key's expiry: an ISO time, '' for never, or
  // undefined when not known.
  function expiryOf(key) {
    if (state.expiresOn === true) return state.expires.get(key);
    const c = state.latest.get(key);
    if (c && c.op === 'set') return c.expires || '';
    return undefined;
  }

  // fillLatest shows the expiry of key, from the listing (or, when the
  // server cannot list expiries, its latest recorded change), and its
  // last change, from history.
  function fillLatest(tr, key) {
    const c = state.latest.get(key);
    const exp = $('[data-test="key-expiry"]', tr);
    const changed = $('[data-test="key-changed"]', tr);
    const e = expiryOf(key);
    exp.dataset.expires = '';
    if (e) {
      exp.textContent = fmtTime(e);
      exp.title = e;
      exp.dataset.expires = e;
    } else if (e === '') {
      exp.textContent = 'never';
      exp.title = '';
    } else {
      exp.textContent = '—';
      exp.title = state.expiresOn === true ? 'not in the listing read' : state.historyOn === false ? 'the namespace keeps no history, from which the expiry is read' : 'not in the history read';
    }
    if (c) {
      changed.textContent = `${c.actor || 'sql'}, ${fmtTime(c.time)}`;
      changed.title = `change ${c.seq} at ${c.time}`;
    } else {
      changed.textContent = '—';
      changed.title = state.historyOn === false ? 'the namespace keeps no history' : 'older than the history read';
    }
  }

  function setKey(key, value) {
    state.keys.set(key, value);
    const old = rowOf(key);
    const tr = row(key);
    if (old) {
      old.replaceWith(tr);
    } else {
      const tbody = $('table.keys tbody');
      const next = [...tbody.children].find((r) => r.dataset.key > key);
      tbody.insertBefore(tr, next || null);
      hook('keys-empty').hidden = true;
    }
    flash(tr);
    applyFilter();
  }

  function removeKey(key) {
    state.keys.delete(key);
    state.expires.delete(key);
    const tr = rowOf(key);
    if (tr) tr.remove();
    hook('keys-empty').hidden = state.keys.size > 0;
  }

  function flash(tr) {
    tr.classList.add('changed');
    setTimeout(() => tr.classList.remove('changed'), 1500);
  }

  function applyFilter() {
    const f = hook('key-filter').value;
    for (const tr of $('table.keys tbody').children) tr.hidden = f !== '' && !tr.dataset.key.includes(f);
  }

  // loadLatest reads the namespace's recent history: each key's latest
  // change gives its expiry and last change.
  let latestTimer = 0;
  async function loadLatest() {
    const ns = state.ns;
    let resp;
    try {
      resp = await api('GET', `${nsPath(ns)}/history?limit=${changesRead}`);
    } catch (e) {
      if (e instanceof HTTPError && (e.status === 404 || e.status === 501)) {
        if (ns === state.ns) { state.historyOn = false; refillLatest(); }
        return;
      }
      throw e;
    }
    const j = await resp.json();
    if (ns !== state.ns) return;
    state.historyOn = true;
    state.latest = new Map();
    for (const c of j.changes) if (typeof c.key === 'string' && !state.latest.has(c.key)) state.latest.set(c.key, c);
    refillLatest();
  }
  function refillLatest() {
    for (const tr of $('table.keys tbody').children) fillLatest(tr, tr.dataset.key);
  }
  // loadLatestSoon reads, shortly, the latest change of the keys just
  // changed (key; none: every key), one request each while they are few.
  const pendingKeys = new Set();
  let pendingAll = false;
  function loadLatestSoon(key) {
    if (state.historyOn === false) return;
    if (key === undefined) pendingAll = true; else pendingKeys.add(key);
    clearTimeout(latestTimer);
    latestTimer = setTimeout(() => {
      const keys = [...pendingKeys];
      const all = pendingAll || keys.length > 10 || state.historyOn === null;
      pendingKeys.clear();
      pendingAll = false;
      attempt(all ? loadLatest : () => Promise.all(keys.map(loadLatestOf)));
    }, 300);
  }
  async function loadLatestOf(key) {
    const ns = state.ns;
    let resp;
    try {
      resp = await api('GET', `${nsPath(ns)}/history?key=${encodeURIComponent(key)}&limit=1`);
    } catch (e) {
      if (e instanceof HTTPError && (e.status === 404 || e.status === 501)) {
        if (ns === state.ns) { state.historyOn = false; state.latest.clear(); refillLatest(); }
        return;
      }
      throw e;
    }
    const j = await resp.json();
    if (ns !== state.ns) return;
    if (j.changes.length) state.latest.set(key, j.changes[0]); else state.latest.delete(key);
    const tr = rowOf(key);
    if (tr) fillLatest(tr, key);
  }

  // ---- writes ----

  async function flip(key) {
    const cur = state.keys.get(key);
    const next = cur === 'true' ? 'false' : 'true';
    await attempt(async () => {
      await api('PUT', keyPath(state.ns, key), { body: next, headers: await precondition(key) });
      state.expires.set(key, ''); // a write without a TTL never expires
      setKey(key, next);
      clearError();
    });
  }

  function openEdit(key) {
    const f = hook('edit-form');
    const isNew = key === null;
    state.edit = { key, isNew };
    f.hidden = false;
    const k = hook('edit-key');
    k.value = isNew ? '' : key;
    k.readOnly = !isNew;
    hook('edit-value').value = isNew ? '' : state.keys.get(key);
    // A key that expires keeps about what it has left, unless the TTL is
    // cleared: saving with none makes it permanent.
    const e = isNew ? undefined : expiryOf(key);
    const left = e ? Date.parse(e) - Date.now() : 0;
    hook('edit-ttl').value = left > 1000 ? duration(left) : '';
    (isNew ? k : hook('edit-value')).focus();
  }
  function closeEdit() {
    hook('edit-form').hidden = true;
    state.edit = null;
  }

  async function saveEdit(ev) {
    ev.preventDefault();
    const key = hook('edit-key').value;
    const value = hook('edit-value').value;
    const ttl = hook('edit-ttl').value.trim();
    if (key === '') { showError('a key needs a name'); return; }
    await attempt(async () => {
      const headers = state.edit && state.edit.isNew ? { 'If-None-Match': '*' } : await precondition(key);
      const q = ttl ? '?ttl=' + encodeURIComponent(ttl) : '';
      await api('PUT', keyPath(state.ns, key) + q, { body: value, headers });
      if (ttl) loadExpiriesSoon(); else state.expires.set(key, '');
      setKey(key, value);
      closeEdit();
      clearError();
      loadLatestSoon(key);
      refreshNamespacesSoon();
    });
  }

  function armDelete(btn, key) {
    const confirmBtn = el('button', { type: 'button', class: 'armed', test: 'key-delete-confirm', text: 'Delete?', on: { click: () => del(key) } });
    btn.replaceWith(confirmBtn);
    confirmBtn.focus();
    setTimeout(() => { if (confirmBtn.isConnected) confirmBtn.replaceWith(btn); }, 4000);
  }

  async function del(key) {
    await attempt(async () => {
      await api('DELETE', keyPath(state.ns, key), { headers: await precondition(key) });
      removeKey(key);
      clearError();
      loadLatestSoon(key);
      refreshNamespacesSoon();
    });
  }

  // ---- history ----

  function openHistory(key) {
    state.hist = { key, before: 0, done: false, seen: new Set() };
    const h = hook('history');
    h.hidden = false;
    h.dataset.key = key === null ? '' : key;
    h.classList.toggle('one-key', key !== null);
    hook('history-title').textContent = key === null ? `History of ${state.ns}` : `History of ${key}`;
    $('table.changes tbody').replaceChildren();
    attempt(() => loadHistory(true));
    h.scrollIntoView({ block: 'nearest' });
  }
  function closeHistory() {
    hook('history').hidden = true;
    state.hist = null;
  }

  async function loadHistory(fresh) {
    const h = state.hist;
    if (!h) return;
    const ns = state.ns;
    if (fresh) { h.before = 0; h.done = false; h.seen = new Set(); }
    let q = `limit=${historyPage}`;
    if (h.key !== null) q += '&key=' + encodeURIComponent(h.key);
    if (h.before) q += '&before=' + h.before;
    let resp;
    try {
      resp = await api('GET', `${nsPath(ns)}/history?${q}`);
    } catch (e) {
      if (e instanceof HTTPError && (e.status === 404 || e.status === 501)) {
        hook('history-off').hidden = false;
        $('table.changes').hidden = true;
        hook('history-more').hidden = true;
        return;
      }
      throw e;
    }
    const j = await resp.json();
    if (state.hist !== h || ns !== state.ns) return;
    hook('history-off').hidden = true;
    $('table.changes').hidden = false;
    const tbody = $('table.changes tbody');
    const rows = j.changes.map((c) => historyRow(c, h));
    if (fresh) tbody.replaceChildren(...rows); else tbody.append(...rows);
    if (j.changes.length) h.before = j.changes[j.changes.length - 1].seq;
    h.done = j.changes.length < historyPage;
    hook('history-more').hidden = h.done;
  }

  const shown = (c, side) => {
    if (side === 'before') return c.existed ? c.before : null;
    return c.op === 'set' ? c.after : null;
  };

  function historyRow(c, h) {
    // The first change of a key in the list, newest first from the top,
    // is its latest: reverting to it would change nothing.
    const latest = !h.seen.has(c.key);
    h.seen.add(c.key);
    const cell = (test, v, label) => {
      const td = el('td', { class: v === null ? 'v none' : 'v', test, 'data-label': label });
      td.textContent = v === null ? '∅' : clip(v, 200);
      if (v !== null && v.length > 200) td.title = v;
      return td;
    };
    const actions = el('td', { class: 'a' });
    if (canWrite && !latest && typeof c.key === 'string') {
      actions.append(el('button', { type: 'button', test: 'history-revert', text: 'Revert', title: `put ${c.key} back as it was after change ${c.seq}`, on: { click: () => revert(c) } }));
    }
    let beforeText = shown(c, 'before');
    if (beforeText !== null && c.before_expires) beforeText += `  (until ${fmtTime(c.before_expires)})`;
    let afterText = shown(c, 'after');
    if (afterText !== null && c.expires) afterText += `  (until ${fmtTime(c.expires)})`;
    return el('tr', { test: 'history-row', 'data-seq': String(c.seq) },
      el('td', { class: 't', test: 'history-seq', text: String(c.seq), 'data-label': '#' }),
      el('td', { class: 't', test: 'history-time', text: fmtTime(c.time), title: c.time, 'data-label': 'when' }),
      el('td', { test: 'history-actor', text: c.actor || 'sql', 'data-label': 'who' }),
      el('td', { class: 'op-' + c.op, test: 'history-op', text: c.op, 'data-label': 'op' }),
      el('td', { class: 'k hk', test: 'history-key', text: typeof c.key === 'string' ? c.key : '(not UTF-8)', 'data-label': 'key' }),
      cell('history-before', beforeText, 'before'),
      cell('history-after', afterText, 'after'),
      actions);
  }

  async function revert(c) {
    await attempt(async () => {
      await api('POST', `${keyPath(state.ns, c.key)}/revert?seq=${c.seq}`, { headers: await precondition(c.key) });
      clearError();
      await loadKeys();
      loadLatestSoon(c.key);
      refreshNamespacesSoon();
      await loadHistory(true);
    });
  }

  let histTimer = 0;
  function refreshHistorySoon() {
    if (!state.hist) return;
    clearTimeout(histTimer);
    histTimer = setTimeout(() => attempt(() => loadHistory(true)), 400);
  }

  // ---- the event stream ----

  function closeStream() {
    clearTimeout(state.retryTimer);
    if (state.es) state.es.close();
    state.es = null;
    setStream('idle');
  }

  function openStream() {
    const ns = state.ns;
    const es = new EventSource(`${nsPath(ns)}/events`);
    state.es = es;
    setStream(state.retry ? 'reconnecting' : 'connecting');
    es.onopen = () => {
      if (state.es !== es) return;
      const missed = state.retry > 0;
      state.retry = 0;
      setStream(state.stale ? 'stale' : 'live');
      if (missed) attempt(async () => { await loadKeys(); await loadLatest(); refreshHistorySoon(); });
    };
    es.onmessage = (m) => { if (state.es === es) onEvent(JSON.parse(m.data)); };
    es.addEventListener('end', () => {
      // The server shuts down or the store closes: the browser reconnects.
      if (state.es !== es) return;
      state.retry++;
      setStream('reconnecting');
    });
    es.onerror = () => {
      if (state.es !== es) return;
      state.retry++;
      setStream('reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        // Refused (401, 503...): the browser gives up; try again later,
        // and let an ended session show the login form.
        es.close();
        const wait = Math.min(15000, 1000 * 2 ** Math.min(state.retry, 4));
        state.retryTimer = setTimeout(() => {
          if (state.ns !== ns) return;
          attempt(loadNamespaces);
          openStream();
        }, wait);
      }
    };
  }

  function onEvent(ev) {
    if ('key_base64' in ev || 'value_base64' in ev || 'namespace_base64' in ev) {
      attempt(loadKeys); // not UTF-8: the listing says what it can
      return;
    }
    switch (ev.op) {
      case 'set':
        if (state.keys.get(ev.key) !== ev.value || !rowOf(ev.key)) setKey(ev.key, ev.value);
        loadExpiriesSoon(); // the event carries no expiry
        break;
      case 'delete':
      case 'expire':
        removeKey(ev.key);
        break;
      case 'reset':
        state.stale = false;
        setStream('live');
        attempt(loadKeys);
        break;
      case 'stale':
        state.stale = true;
        setStream('stale');
        return;
    }
    loadLatestSoon(ev.op === 'reset' ? undefined : ev.key);
    refreshNamespacesSoon();
    refreshHistorySoon();
  }

  // ---- wiring ----

  function nsFromHash() {
    const m = /^#ns=(.*)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (_) { return null; }
  }

  function start() {
    setStream('idle');
    $('.banner-close').addEventListener('click', clearError);
    hook('key-filter').addEventListener('input', applyFilter);
    hook('key-new').addEventListener('click', () => openEdit(null));
    hook('ns-history').addEventListener('click', () => openHistory(null));
    hook('edit-form').addEventListener('submit', saveEdit);
    hook('edit-cancel').addEventListener('click', closeEdit);
    hook('edit-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeEdit(); });
    hook('history-close').addEventListener('click', closeHistory);
    hook('history-more').addEventListener('click', () => attempt(() => loadHistory(false)));
    $('.ns-new').addEventListener('submit', (e) => {
      e.preventDefault();
      const n = hook('ns-new-name').value;
      if (n !== '') { hook('ns-new-name').value = ''; location.hash = '#ns=' + encodeURIComponent(n); }
    });
    const menu = $('.menu');
    menu.addEventListener('click', () => {
      const open = $('#side').classList.toggle('open');
      menu.setAttribute('aria-expanded', String(open));
    });
    const logout = hook('logout');
    if (logout) {
      logout.addEventListener('click', () => attempt(async () => {
        await api('POST', '/ui/logout');
        location.assign('/');
      }));
    }
    window.addEventListener('hashchange', () => { const n = nsFromHash(); if (n !== null && n !== '') openNamespace(n); });
    setInterval(() => { if (!document.hidden) attempt(loadNamespaces); }, 15000);
    attempt(async () => {
      const names = await loadNamespaces();
      document.body.dataset.ready = '1';
      let n = nsFromHash();
      if (n === null || n === '') n = names.includes(flagsNS) ? flagsNS : names[0];
      if (n !== undefined && n !== null) {
        if (location.hash !== '#ns=' + encodeURIComponent(n)) history.replaceState(null, '', '#ns=' + encodeURIComponent(n));
        openNamespace(n);
      }
    });
  }

  start();
})();
