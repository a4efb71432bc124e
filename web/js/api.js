// The REST API client. A login returns a CSRF token that goes with every change
// (X-CSRF-Token); the session itself is an HttpOnly cookie. A 401 anywhere but the login ends
// the UI's session (back to the login page with a message).
const CSRF_KEY = 'verbund.csrf';
let csrf = null;
try { csrf = sessionStorage.getItem(CSRF_KEY); } catch { /* ignore */ }
let unauthorized = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.field = e.field || '';
    this.reason = e.reason || '';
    // The invalid rows of a refused import: [{row, field, error[, otherRow]}].
    this.rows = body && Array.isArray(body.rows) ? body.rows : [];
  }
  // The message without its "field: " prefix.
  get detail() {
    if (this.field && this.message.startsWith(this.field + ': '))
      return this.message.slice(this.field.length + 2);
    return this.message;
  }
}

export function onUnauthorized(f) { unauthorized = f; }
export function hasSession() { return !!csrf; }

function setCsrf(token) {
  csrf = token;
  try {
    if (token) sessionStorage.setItem(CSRF_KEY, token);
    else sessionStorage.removeItem(CSRF_KEY);
  } catch { /* ignore */ }
}

// request('GET', '/api/v1/users') -> parsed JSON (null for 204). {raw: true} returns the
// Response (for file downloads); {type: 'text/csv'} sends body (a Blob or string) as it is,
// with that Content-Type, instead of as JSON. Throws ApiError.
export async function request(method, path, body, { raw = false, type = null } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = type || 'application/json';
    init.body = type ? body : JSON.stringify(body);
  }
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: String(e.message || e) } });
  }
  const loginCall = path === '/api/v1/session' && method === 'POST';
  if (!res.ok) {
    let parsed = null;
    try { parsed = await res.json(); } catch { /* not JSON */ }
    const err = new ApiError(res.status, parsed);
    const csrfRefused = res.status === 403 && err.field === 'X-CSRF-Token';
    if ((res.status === 401 && !loginCall) || csrfRefused) {
      setCsrf(null);
      unauthorized(err);
    }
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const get = (p) => request('GET', p);
export const post = (p, b) => request('POST', p, b === undefined ? {} : b);
export const put = (p, b) => request('PUT', p, b);
export const patch = (p, b) => request('PATCH', p, b);
export const del = (p) => request('DELETE', p);
// A file as it is (e.g. a CSV import: postFile(path, file, 'text/csv')).
export const postFile = (p, blob, type) => request('POST', p, blob, { type });

export async function login(password) {
  const js = await request('POST', '/api/v1/session', { password });
  setCsrf(js.csrfToken);
  return js;
}

export async function logout() {
  try { await request('DELETE', '/api/v1/session'); } finally { setCsrf(null); }
}

// GET that answers null when the route does not exist on this node (404/405), e.g. the
// federation routes of a node built without them.
export async function getOptional(p) {
  try {
    return await get(p);
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}
