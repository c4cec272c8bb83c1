// Browser end-to-end test of the chatflow web client (run by scripts/e2e.sh).
//
// Two browser contexts (two users, separate localStorage) sign up through the
// UI, log in, and chat: A creates a room inviting B, B sees it appear, A types
// and B sees the typing indicator, messages flow both ways live over the
// WebSocket, A's message is acknowledged, and read receipts show up.
// Every wait is explicit and bounded; any failure exits non-zero.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = process.env.E2E_BASE_URL || 'http://127.0.0.1:18080';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
const STEP_TIMEOUT = 15_000;
const SIGNUP_TIMEOUT = 90_000;

const tid = (id) => `[data-testid="${id}"]`;
const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;

let step = '';
function log(msg) {
  step = msg;
  console.log(`e2e: ${msg}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// watch records the page's console errors and uncaught exceptions.
function watch(page, who, problems) {
  page.on('pageerror', (e) => problems.push(`${who} page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${who} console error: ${m.text()}`);
  });
}

async function signUp(page, user) {
  await page.goto(BASE);
  await page.locator(tid('auth-view')).waitFor({ state: 'visible' });
  await page.fill(tid('signup-username'), user.username);
  await page.fill(tid('signup-email'), user.email);
  await page.fill(tid('signup-display-name'), user.display);
  await page.fill(tid('signup-password'), user.password);
  await page.click(tid('signup-submit'));
  // The saga's steps show up while it runs, then all end completed.
  await page.locator(tid('signup-step')).first().waitFor({ state: 'visible' });
  await page.locator(`${tid('signup-progress')}[data-status="completed"]`).waitFor({ timeout: SIGNUP_TIMEOUT });
  const steps = await page.locator(tid('signup-step')).evaluateAll((els) =>
    els.map((e) => ({ name: e.dataset.stepName, status: e.dataset.status, text: e.textContent })));
  assert(steps.length >= 3, `expected the saga's steps, got ${JSON.stringify(steps)}`);
  for (const s of steps) {
    assert(s.status === 'completed', `step ${s.name} is ${s.status}`);
    assert(s.text.includes(s.name) && s.text.includes('completed'), `step ${s.name} shows its name and status`);
  }
  assert(steps.some((s) => s.name === 'auth.create_credentials'), 'the credentials step is listed');
  console.log(`e2e:   ${user.username}: ${steps.map((s) => `${s.name}=${s.status}`).join(', ')}`);
}

async function signUpAPI(user) {
  const res = await fetch(`${BASE}/api/v1/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: user.username, email: user.email, password: user.password, display_name: user.display }),
  });
  assert(res.status === 202, `API sign-up answered ${res.status}`);
  const { signup_id: id } = await res.json();
  const deadline = Date.now() + SIGNUP_TIMEOUT;
  while (Date.now() < deadline) {
    const r = await fetch(`${BASE}/api/v1/signup/${id}?wait=5s`);
    const p = await r.json();
    if (p.status === 'completed') return;
    assert(p.status !== 'failed', `API sign-up failed: ${JSON.stringify(p)}`);
  }
  throw new Error('API sign-up did not complete in time');
}

// loginAPI logs user in through the API and returns the access token and id.
async function loginAPI(user) {
  const res = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: user.username, password: user.password }),
  });
  assert(res.status === 200, `API login answered ${res.status}`);
  const { access_token: token } = await res.json();
  const me = await (await fetch(`${BASE}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } })).json();
  return { token, id: me.user_id };
}

// askFriendAPI has user send friend a friend request through the API.
async function askFriendAPI(user, friend) {
  const u = await loginAPI(user);
  const r = await fetch(`${BASE}/api/v1/friends/requests`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${u.token}` },
    body: JSON.stringify({ username: friend.username }),
  });
  assert(r.status === 201, `POST /friends/requests answered ${r.status}`);
  return u;
}

// befriendAPI makes user and friend friends through the API (user asks,
// friend accepts): their consent to adding each other to rooms directly.
async function befriendAPI(user, friend) {
  const u = await askFriendAPI(user, friend);
  const f = await loginAPI(friend);
  const r = await fetch(`${BASE}/api/v1/friends/requests/${u.id}/accept`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${f.token}` },
  });
  assert(r.status === 200, `accepting the friend request answered ${r.status}`);
}

async function logIn(page, user) {
  await page.fill(tid('login-username'), user.username);
  await page.fill(tid('login-password'), user.password);
  await page.click(tid('login-submit'));
  await page.locator(tid('chat-view')).waitFor({ state: 'visible' });
  await page.locator(`${tid('conn-status')}[data-state="online"]`).waitFor();
  const who = await page.locator(tid('whoami')).textContent();
  assert(who.includes(user.username), `header shows ${user.username}, got ${who}`);
}

const messageWith = (page, text) => page.locator(tid('message'), { hasText: text });
// textMessages are the message lines other than system events (joins, leaves).
const textMessages = (page) => page.locator(`${tid('message')}:not(.kind-system)`);

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const users = ['a', 'b'].map((x) => ({
    username: `e2e${x}_${suffix}`,
    email: `e2e${x}_${suffix}@example.test`,
    display: x === 'a' ? `Alice ${suffix}` : `Bob ${suffix}`,
    password: `pw-${suffix}-secret`,
  }));
  const [ua, ub] = users;
  const uc = { username: `e2ec_${suffix}`, email: `e2ec_${suffix}@example.test`, display: `Carol ${suffix}`, password: `pw-${suffix}-secret` };
  const problems = [];

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const ctxA = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const ctxB = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const pa = await ctxA.newPage();
  const pb = await ctxB.newPage();
  for (const p of [pa, pb]) p.setDefaultTimeout(STEP_TIMEOUT);
  watch(pa, 'A', problems);
  watch(pb, 'B', problems);

  // B's WebSocket goes through a proxy the test controls: it records the
  // frames B sends and can drop the connection to exercise reconnects.
  const bSockets = [];
  const framesFromB = [];
  let refuseB = false;
  await pb.routeWebSocket(/\/ws\?/, (ws) => {
    if (refuseB) {
      ws.close({ code: 1011, reason: 'test: refused' });
      return;
    }
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      framesFromB.push(String(m));
      server.send(m);
    });
    bSockets.push({ ws, server });
  });

  try {
    log('sign up A and B through the UI (and C through the API)');
    await Promise.all([signUp(pa, ua), signUp(pb, ub), signUpAPI(uc)]);

    log('a second sign-up with a taken username shows the problem code in the banner');
    await pa.fill(tid('signup-username'), ua.username);
    await pa.fill(tid('signup-email'), `other_${ua.email}`);
    await pa.fill(tid('signup-display-name'), 'Dup');
    await pa.fill(tid('signup-password'), ua.password);
    await pa.click(tid('signup-submit'));
    await pa.locator(tid('error-banner'), { hasText: 'username_taken' }).waitFor({ state: 'visible' });
    await pa.click('#banner-close');

    await pa.screenshot({ path: join(SHOTS, 'desktop-signup.png') });

    log('log both in');
    await logIn(pa, ua);
    await logIn(pb, ub);

    const room = `e2e room ${suffix}`;
    log(`A creates "${room}" inviting B`);
    await pa.click(tid('new-room-toggle'));
    await pa.fill(tid('new-room-name'), room);
    await pa.fill(tid('new-room-members'), ub.username);
    await pa.click(tid('new-room-submit'));
    await pa.locator(tid('room-name'), { hasText: room }).waitFor();
    await pa.locator(`${tid('room-item')}.active`, { hasText: room }).waitFor();

    log('B is not A\'s friend: B gets an invitation (invitation event), accepts it, and the room opens');
    const invB = pb.locator(tid('invitation'), { hasText: room });
    await invB.waitFor();
    assert(await pb.locator(tid('room-item'), { hasText: room }).count() === 0, 'the room is not B\'s before accepting');
    await invB.locator(tid('invitation-accept')).click();
    await pb.locator(tid('room-name'), { hasText: room }).waitFor();
    await pb.locator(tid('room-item'), { hasText: room }).waitFor();
    await invB.waitFor({ state: 'detached' });
    await pb.locator(`${tid('member')}.online`, { hasText: ua.display }).waitFor();
    log('A sees B online (presence)');
    await pa.locator(`${tid('member')}.online`, { hasText: ub.display }).waitFor();

    log('A types; B sees the typing indicator');
    const text1 = `Hello Bob <b>not bold</b> ${suffix}`;
    await pa.locator(tid('composer-input')).pressSequentially(text1.slice(0, 12), { delay: 20 });
    await pb.locator(tid('typing-indicator'), { hasText: `${ua.display} is typing` }).waitFor();
    await pa.locator(tid('composer-input')).fill(text1);

    log('A sends; B sees it live; A sees it acknowledged');
    await pa.locator(tid('composer-input')).press('Enter');
    const mineA = messageWith(pa, text1);
    await mineA.waitFor();
    const atB = messageWith(pb, text1);
    await atB.waitFor();
    await pa.locator(`${tid('message')}[data-status="sent"]`, { hasText: text1 }).waitFor();
    // seq 1 is the system event "B joined" (accepting the invitation, issue 12)
    assert(await mineA.getAttribute('data-seq') === '2', 'first message has seq 2');
    assert((await atB.locator(tid('message-sender')).textContent()) === ua.display, 'B sees A as sender');
    const bodyB = atB.locator(tid('message-body'));
    assert((await bodyB.textContent()) === text1, 'body is shown verbatim');
    assert((await bodyB.locator('b').count()) === 0, 'message text is not parsed as HTML');
    await pb.locator(tid('typing-indicator'), { hasText: 'is typing' }).waitFor({ state: 'hidden' });

    log('B replies; A sees it live');
    const text2 = `Hi Alice, got it ${suffix}`;
    await pb.locator(tid('composer-input')).fill(text2);
    await pb.click(tid('send'));
    await messageWith(pa, text2).waitFor();
    await pb.locator(`${tid('message')}[data-status="sent"]`, { hasText: text2 }).waitFor();
    assert(await messageWith(pa, text2).getAttribute('data-seq') === '3', 'reply has seq 3');
    assert((await textMessages(pa).count()) === 2, 'A shows exactly two messages (no duplicates)');
    assert((await pa.locator(`${tid('message')}.kind-system`).count()) === 1, 'A shows the join event');
    assert((await textMessages(pb).count()) === 2, 'B shows exactly two messages (no duplicates)');

    log('read receipts appear on both sides');
    await pa.locator(tid('read-receipt'), { hasText: `Read by ${ub.display}` }).waitFor();
    await pb.locator(tid('read-receipt'), { hasText: `Read by ${ua.display}` }).waitFor();

    log('C sends B a friend request; B accepts it in the sidebar (consent both ways); B adds C to the room; A sees C join the member list');
    await askFriendAPI(uc, ub);
    const req = pb.locator(tid('friend-request'), { hasText: uc.display });
    await req.waitFor();
    await req.locator(tid('friend-request-accept')).click();
    await pb.locator(tid('friend'), { hasText: uc.username }).waitFor();
    assert(await pb.locator(tid('friend-request')).count() === 0, 'the accepted request left the list');
    await pb.fill(tid('invite-usernames'), uc.username);
    await pb.click(tid('invite-submit'));
    await pb.locator(tid('member'), { hasText: uc.display }).waitFor();
    await pa.locator(tid('member'), { hasText: uc.display }).waitFor();
    assert(await pa.locator(`${tid('member')}.offline`, { hasText: uc.display }).count() === 1, 'C is shown offline');

    log('B loses its connection; A sends meanwhile; B reconnects, syncs and gets it once');
    const roomId = await pa.locator('#room-view').getAttribute('data-room-id');
    refuseB = true;
    const sock = bSockets.at(-1);
    await sock.ws.close({ code: 1012, reason: 'test: drop' });
    await sock.server.close().catch(() => {});
    await pb.locator(`${tid('conn-status')}:not([data-state="online"])`).waitFor();
    const text3 = `While you were away ${suffix}`;
    await pa.locator(tid('composer-input')).fill(text3);
    await pa.locator(tid('composer-input')).press('Enter');
    await pa.locator(`${tid('message')}[data-status="sent"]`, { hasText: text3 }).waitFor();
    refuseB = false;
    await pb.locator(`${tid('conn-status')}[data-state="online"]`).waitFor();
    await messageWith(pb, text3).waitFor();
    const syncs = framesFromB.map((f) => JSON.parse(f)).filter((f) => f.type === 'sync');
    // seq 4 is the system event "B added C" (issue 12)
    assert(syncs.some((f) => f.rooms && f.rooms[roomId] === 4), `B synced room from seq 4: ${JSON.stringify(syncs)}`);
    assert((await textMessages(pb).count()) === 3, 'B shows three messages after the reconnect (no gap, no duplicate)');
    assert((await pb.locator(`${tid('message')}.kind-system`).count()) === 2, 'B shows both join events once');
    assert(await messageWith(pb, text3).getAttribute('data-seq') === '5', 'the missed message has seq 5');

    const room2 = `e2e history ${suffix}`;
    log(`B and A become friends; A creates "${room2}" with B in it and posts 60 messages; B sees an unread badge`);
    await befriendAPI(ub, ua);
    await pa.click(tid('new-room-toggle'));
    await pa.fill(tid('new-room-name'), room2);
    await pa.fill(tid('new-room-members'), ub.username);
    await pa.click(tid('new-room-submit'));
    await pa.locator(tid('room-name'), { hasText: room2 }).waitFor();
    const room2Id = await pa.locator('#room-view').getAttribute('data-room-id');
    await pb.locator(tid('room-item'), { hasText: room2 }).waitFor();
    const posted = await pa.evaluate(async ({ id, n }) => {
      const token = localStorage.getItem('chatflow.access_token');
      for (let i = 1; i <= n; i++) {
        const res = await fetch(`/api/v1/rooms/${id}/messages`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify({ client_msg_id: `hist-${i}`, body: `history line ${i}` }),
        });
        if (res.status === 429) { // the per-user send limit: wait as told, resend the same message
          await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('Retry-After') || 1)));
          i--;
          continue;
        }
        if (res.status !== 201) return `POST ${i}: ${res.status} ${await res.text()}`;
      }
      return 'ok';
    }, { id: room2Id, n: 60 });
    assert(posted === 'ok', posted);
    await pb.locator(`${tid('room-item')}[data-room-id="${room2Id}"] ${tid('unread-badge')}`, { hasText: '60' }).waitFor();

    log('B opens it: the newest 50 show; scrolling to the top loads the rest');
    await pb.locator(tid('room-item'), { hasText: room2 }).click();
    await messageWith(pb, 'history line 60').waitFor();
    assert((await pb.locator(tid('message')).count()) === 50, 'the first page has 50 messages');
    await pb.locator(`${tid('room-item')}[data-room-id="${room2Id}"] ${tid('unread-badge')}`).waitFor({ state: 'hidden' });
    await pb.locator('#messages').evaluate((e) => { e.scrollTop = 0; });
    await pb.locator(`${tid('message')}[data-seq="1"]`).waitFor();
    assert((await pb.locator(tid('message')).count()) === 60, 'all 60 messages after scrolling back');
    await pb.locator(tid('history-status'), { hasText: 'Beginning of the room' }).waitFor();
    await pb.screenshot({ path: join(SHOTS, 'desktop-history.png') });
    await pb.locator(tid('room-item'), { hasText: room }).click();
    await messageWith(pb, text3).waitFor();

    log('with a rejected access token, a reload refreshes the tokens and A stays logged in');
    const refreshBefore = await pa.evaluate(() => {
      localStorage.setItem('chatflow.access_token', 'not-a-valid-token');
      return localStorage.getItem('chatflow.refresh_token');
    });
    await pa.reload();
    await pa.locator(`${tid('conn-status')}[data-state="online"]`).waitFor();
    await pa.locator(tid('room-item'), { hasText: room }).click();
    await messageWith(pa, text2).waitFor();
    await messageWith(pa, text1).waitFor();
    assert((await textMessages(pa).count()) === 3, 'history shows three messages after reload');
    await pa.locator(tid('read-receipt'), { hasText: `Read by ${ub.display}` }).waitFor();
    const refreshAfter = await pa.evaluate(() => localStorage.getItem('chatflow.refresh_token'));
    assert(refreshAfter && refreshAfter !== refreshBefore, 'the refresh token was rotated');

    const unexpected = problems.filter((p) => !/Failed to load resource/.test(p));
    assert(unexpected.length === 0, `no page errors: ${unexpected.join(' | ')}`);

    await pa.screenshot({ path: join(SHOTS, 'desktop-chat-a.png') });
    await pb.screenshot({ path: join(SHOTS, 'desktop-chat-b.png') });
    console.log('PASS: e2e chat (sign-up saga, login, rooms, invitations, invites, typing, presence, live messages, acks, read receipts, reconnect sync, unread, history, token refresh)');
  } catch (e) {
    console.error(`FAIL: e2e chat at step "${step}": ${e.message}`);
    for (const p of problems) console.error(`  ${p}`);
    await pa.screenshot({ path: join(SHOTS, 'failure-a.png') }).catch(() => {});
    await pb.screenshot({ path: join(SHOTS, 'failure-b.png') }).catch(() => {});
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`FAIL: e2e chat: ${e.stack || e}`);
  process.exit(1);
});
