// Helpers of the browser end-to-end tests: API calls made beside the
// browser (sign-ups, logins, checks of what the server holds) and a PNG.
import { deflateSync } from 'node:zlib';

export const BASE = process.env.E2E_BASE_URL || 'http://127.0.0.1:18080';
const SIGNUP_TIMEOUT = 90_000;

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

export async function call(method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: res.status, data };
}

export async function signUpAPI(u) {
  const r = await call('POST', '/signup', null, { username: u.username, email: u.email, password: u.password, display_name: u.display });
  assert(r.status === 202, `sign-up answered ${r.status}`);
  const deadline = Date.now() + SIGNUP_TIMEOUT;
  while (Date.now() < deadline) {
    const p = (await call('GET', `/signup/${r.data.signup_id}?wait=5s`)).data;
    if (p.status === 'completed') return;
    assert(p.status !== 'failed', `sign-up failed: ${JSON.stringify(p)}`);
  }
  throw new Error('sign-up did not complete in time');
}

export async function loginAPI(u) {
  const r = await call('POST', '/auth/login', null, { username: u.username, password: u.password });
  assert(r.status === 200, `API login of ${u.username} answered ${r.status}`);
  const me = await call('GET', '/me', r.data.access_token);
  return { token: r.data.access_token, refresh: r.data.refresh_token, id: me.data.user_id };
}

// png is a w×h image of one colour, to upload as an avatar.
export function png(w, h, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([r, g, b], y * (w * 3 + 1) + 1 + x * 3);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
