// The query API's client: every call sends the key, parses prices exactly, and turns any failure
// into an ApiError that says what happened in words a user can act on.

import { parseExactJson } from './exact-json.js';

class ApiError extends Error {
  /**
   * @param {number|null} status HTTP status, null when the browser could not read one
   * @param {string} code the API's error code (`invalid_request`, `not_found`, ...), or `forbidden`,
   *   `throttled`, `unreachable`
   * @param {string|null} field the request field at fault, for 422s
   */
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** A wrong or missing key: API Gateway's 403. */
  get isKeyRefusal() {
    return this.status === 403;
  }
}

export function createQueryApi(baseUrl, key) {
  async function request(method, path, { query, body } = {}) {
    const url = new URL(`${baseUrl}${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value != null && value !== '') url.searchParams.set(name, value);
    }
    const headers = { 'x-api-key': key };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch {
      throw unreadableFailure();
    }
    const text = await response.text();
    const payload = parseBody(text);
    if (!response.ok) throw errorFrom(response.status, payload);
    return payload;
  }

  // API Gateway's own answers (403 for a bad key, 429) carry the CORS header (the template's
  // GatewayResponses), so a failed fetch means the API could not be reached at all.
  function unreadableFailure() {
    return new ApiError(null, 'unreachable', `The query API at ${new URL(baseUrl).origin} cannot be reached.`);
  }

  const path = (...segments) => segments.map(encodeURIComponent).join('/');

  return {
    quotes: () => request('GET', '/quotes'),
    bars: (symbol, query) => request('GET', `/bars/${path(symbol)}`, { query }),
    barsPage: (symbol, cursor) => request('GET', `/bars/${path(symbol)}`, { query: { cursor } }),
    alerts: (query) => request('GET', '/alerts', { query }),
    rules: () => request('GET', '/rules'),
    addRule: (rule) => request('POST', '/rules', { body: rule }),
    deleteRule: (ruleId) => request('DELETE', `/rules/${path(ruleId)}`),
  };
}

function parseBody(text) {
  if (!text) return {};
  try {
    return parseExactJson(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}

function errorFrom(status, payload) {
  const detail = payload.error;
  if (detail?.message) return new ApiError(status, detail.code ?? 'error', detail.message, detail.field ?? null);
  if (status === 403) return new ApiError(status, 'forbidden', 'The API key was refused (403).');
  if (status === 429) return new ApiError(status, 'throttled', 'Too many requests (429): the API key\'s usage plan limits them. Try again shortly.');
  return new ApiError(status, 'error', `The query API answered ${status}${payload.message ? `: ${payload.message}` : ''}.`);
}
