// The HTTP side of the API (SPEC §4): every call is a JSON POST to
// /api/sessions/<op>; failures come back as {"success": false, "error", "code"}
// and are turned into Errors carrying `.code` and `.status` (0: no answer at all).

import { networkError } from './socket.js';

export function apiError(message, code, status) {
  return Object.assign(new Error(message), { code, status });
}

async function errorFromResponse(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: a proxy page or an empty body */
  }
  const code = body?.code || (res.status >= 500 ? 'server_error' : 'http_error');
  return apiError(body?.error || `${res.status} ${res.statusText || 'error'}`, code, res.status);
}

/** The filename of a Content-Disposition header (RFC 6266, both spellings). */
export function dispositionFilename(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall through to the plain form */
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(header);
  return plain ? plain[1].trim() : null;
}

export class HttpApi {
  /**
   * @param {() => {baseUrl: string, token: string|null}} config  read at every call,
   *   so a token set after construction is used
   * @param {typeof fetch} [fetchImpl]
   */
  constructor(config, fetchImpl) {
    this.config = config;
    this.fetch = fetchImpl || ((...a) => globalThis.fetch(...a));
  }

  /**
   * The raw Response of a POST to /api/sessions/<op>, or to `op` itself when it is a
   * path (`/api/render`). Network failures become code 'network'.
   */
  async post(op, body) {
    const { baseUrl, token } = this.config();
    const path = op.startsWith('/') ? op : `/api/sessions/${op}`;
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await this.fetch(`${baseUrl}${path}`, {
        method: 'POST', headers, body: JSON.stringify(body ?? {}),
      });
    } catch (err) {
      throw networkError(`cannot reach the server: ${err.message}`);
    }
  }

  /** POST and return the `{success: true, …}` body, or throw the API's error. */
  async request(op, body) {
    const res = await this.post(op, body);
    if (!res.ok) throw await errorFromResponse(res);
    let data;
    try {
      data = await res.json();
    } catch {
      throw apiError(`the server's answer to ${op} is not JSON`, 'bad_response', res.status);
    }
    if (!data || data.success === false) {
      throw apiError(data?.error || `${op} failed`, data?.code || 'error', res.status);
    }
    return data;
  }

  /** POST for a file: `{blob, filename, contentType}` (filename from Content-Disposition). */
  async file(op, body, fallbackName) {
    const res = await this.post(op, body);
    if (!res.ok) throw await errorFromResponse(res);
    const blob = await res.blob();
    return {
      blob,
      filename: dispositionFilename(res.headers.get('Content-Disposition')) || fallbackName,
      contentType: res.headers.get('Content-Type') || blob.type,
    };
  }
}
