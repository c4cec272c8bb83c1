// chatflow web client: plain JavaScript, no build step, no dependencies.
// Talks to the REST API under /api/v1 and to the WebSocket at /ws, as
// described in the API contract. Message text is always rendered with
// textContent, never as HTML.
'use strict';

(() => {
  const API = '/api/v1';
  const LS_ACCESS = 'chatflow.access_token';
  const LS_REFRESH = 'chatflow.refresh_token';
  const TYPING_SEND_EVERY = 2000; // ms between our typing frames per room
  const TYPING_SHOW_FOR = 3000; // ms a "X is typing" stays up
  const HISTORY_PAGE = 50;
  const BACKOFF_MIN = 500;
  const BACKOFF_MAX = 15000;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- state
  const state = {
    me: null, // {user_id, username, display_name}
    users: new Map(), // user_id -> {username, display_name}
    online: new Map(), // user_id -> bool
    rooms: new Map(), // room_id -> room (see upsertRoom)
    invitations: new Map(), // invitation_id -> {invitation_id, room_id, room_name, inviter}
    friends: [], // [{user_id, username, display_name}]
    friendRequests: [], // pending: [{user, direction, created_at}], incoming then outgoing
    current: null, // room_id of the open room
    ws: null,
    wsOpen: false,
    backoff: BACKOFF_MIN,
    reconnectTimer: null,
    renewTimer: null,
    wsToken: null, // the access token the socket's session runs on
    outbox: new Map(), // client_msg_id -> {frame, room_id}: sent, not acked yet
    lastTypingSent: new Map(), // room_id -> ms
    typing: new Map(), // room_id -> Map(user_id -> timer)
    loadingHistory: false,
    stopped: true,
  };

  // ----------------------------------------------------------- utilities
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Fallback for insecure contexts (plain http on a non-local host).
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function el(tag, props = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const sameDay = d.toDateString() === new Date().toDateString();
    const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return sameDay ? t : `${d.toLocaleDateString()} ${t}`;
  }

  function nameOf(userId) {
    if (state.me && userId === state.me.user_id) return 'You';
    const u = state.users.get(userId);
    return u ? u.display_name || u.username : 'someone';
  }

  // rememberUser records a user object's names and avatar (if it has any).
  function rememberUser(u) {
    const prev = state.users.get(u.user_id) || {};
    state.users.set(u.user_id, {
      username: u.username || prev.username,
      display_name: u.display_name || prev.display_name,
      avatar_url: 'avatar_url' in u ? u.avatar_url || '' : u.username ? '' : prev.avatar_url || '',
      status_message: u.status_message !== undefined ? u.status_message : prev.status_message,
    });
  }

  // avatarEl is a user's picture, or their initials on a colour of their own.
  function avatarEl(userId, size = 'sm') {
    const u = state.users.get(userId) || {};
    const name = u.display_name || u.username || '?';
    const box = el('span', { class: `avatar ${size}`, 'data-testid': 'avatar', dataset: { userId: userId || '' }, 'aria-hidden': 'true' });
    if (u.avatar_url) {
      const img = el('img', { alt: '', 'data-testid': 'avatar-img' });
      box.append(img);
      avatarSrc(u.avatar_url).then((src) => { img.src = src; }).catch(() => img.remove());
    } else {
      let h = 0;
      for (const ch of userId || name) h = (h * 31 + ch.charCodeAt(0)) % 360;
      box.style.background = `hsl(${h} 55% 48%)`;
      box.textContent = name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join('');
    }
    return box;
  }

  // avatarSrc turns an avatar_url (an api path that needs the token) into the
  // short-lived pre-signed URL of the picture, shared by every avatar of the
  // same user and version for a few minutes.
  const avatarURLs = new Map(); // avatar_url -> {at, promise}
  function avatarSrc(url) {
    if (!url.startsWith('/api/v1/')) return Promise.resolve(url); // already a picture's URL
    const hit = avatarURLs.get(url);
    if (hit && Date.now() - hit.at < 4 * 60000) return hit.promise;
    const promise = api('GET', `${url.replace(/^\/api\/v1/, '')}${url.includes('?') ? '&' : '?'}redirect=false`).then((r) => r.url);
    promise.catch(() => avatarURLs.delete(url));
    avatarURLs.set(url, { at: Date.now(), promise });
    return promise;
  }

  // Extensions (profile.js, money.js, social.js, react.js) hook in here.
  const hooks = new Map();
  function on(name, fn) {
    if (!hooks.has(name)) hooks.set(name, []);
    hooks.get(name).push(fn);
  }
  function emit(name, ...args) {
    for (const fn of hooks.get(name) || []) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`hook ${name}:`, e);
      }
    }
  }

  function parseUsernames(raw) {
    return [...new Set(raw.split(/[\s,;]+/).map((s) => s.trim().replace(/^@/, '').toLowerCase()).filter(Boolean))];
  }

  // -------------------------------------------------------------- banner
  let bannerTimer = null;
  function showError(detail, code) {
    const text = code ? `${detail} (${code})` : detail;
    $('banner-text').textContent = text;
    $('banner').dataset.code = code || '';
    $('banner').classList.remove('info');
    $('banner').hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(hideError, 12000);
    console.warn('chatflow error:', text);
  }
  // showNotice uses the banner for good news.
  function showNotice(text) {
    showError(text);
    $('banner').classList.add('info');
  }
  function hideError() {
    $('banner').hidden = true;
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code || '';
      this.problem = problem;
    }
  }

  function reportError(err) {
    if (err instanceof ApiError) showError(err.message, err.code);
    else showError(err && err.message ? err.message : String(err), 'network');
  }

  // ---------------------------------------------------------------- auth
  const tokens = {
    get access() { return localStorage.getItem(LS_ACCESS); },
    get refresh() { return localStorage.getItem(LS_REFRESH); },
    set(pair) {
      localStorage.setItem(LS_ACCESS, pair.access_token);
      localStorage.setItem(LS_REFRESH, pair.refresh_token);
    },
    clear() {
      localStorage.removeItem(LS_ACCESS);
      localStorage.removeItem(LS_REFRESH);
    },
  };

  function tokenExpiry(jwt) {
    try {
      const p = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(p)).exp * 1000;
    } catch {
      return 0;
    }
  }

  // A refresh token works once (reuse revokes the family), so every caller
  // shares one refresh in flight, and tabs coordinate through a Web Lock.
  let refreshing = null;
  function refreshTokens() {
    if (!refreshing) {
      const run = async () => {
        const before = tokens.refresh;
        if (!before) throw new ApiError(401, { detail: 'not logged in', code: 'unauthorized' });
        const res = await fetch(`${API}/auth/refresh`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refresh_token: before }),
        });
        const body = await res.json().catch(() => ({}));
        if (!res.ok) {
          // Another tab may have rotated the pair meanwhile.
          if (tokens.refresh && tokens.refresh !== before) return;
          throw new ApiError(res.status, body);
        }
        tokens.set(body);
      };
      const locked = navigator.locks
        ? (stale) => navigator.locks.request('chatflow-refresh', async () => {
          if (tokens.access !== stale) return; // another tab already refreshed
          await run();
        })
        : () => run();
      refreshing = locked(tokens.access).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function ensureFreshToken() {
    const exp = tokenExpiry(tokens.access || '');
    if (exp && exp - Date.now() < 30000) await refreshTokens();
  }

  // api calls the REST API; on 401 it refreshes the tokens once and retries.
  async function api(method, path, body, { auth = true, retry = true } = {}) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && tokens.access) headers.Authorization = `Bearer ${tokens.access}`;
    const res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && auth && retry && tokens.refresh) {
      try {
        await refreshTokens();
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) sessionExpired();
        throw e;
      }
      return api(method, path, body, { auth, retry: false });
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = {};
    try {
      data = text ? JSON.parse(text) : {};
    } catch {
      data = { detail: text.slice(0, 200) };
    }
    if (!res.ok) {
      if (res.status === 401 && auth) sessionExpired();
      throw new ApiError(res.status, data);
    }
    return data;
  }

  function sessionExpired() {
    if (state.stopped) return;
    stopChat();
    tokens.clear();
    showAuth();
    showError('Your session has ended; please log in again.', 'invalid_token');
  }

  // -------------------------------------------------------------- sign-up
  async function onSignup(ev) {
    ev.preventDefault();
    hideError();
    const form = ev.target;
    const req = {
      username: $('signup-username').value.trim().toLowerCase(),
      email: $('signup-email').value.trim(),
      display_name: $('signup-display').value.trim(),
      password: $('signup-password').value,
    };
    $('signup-submit').disabled = true;
    try {
      const started = await api('POST', '/signup', req, { auth: false });
      $('signup-progress').hidden = false;
      $('signup-steps').replaceChildren();
      setSignupStatus('running');
      const final = await pollSignup(started.signup_id);
      if (final.status === 'completed') {
        form.reset();
        $('login-username').value = req.username;
        $('login-password').focus();
      } else {
        showError(`Sign-up failed: ${final.error || 'a step failed'}`, final.error_code || 'signup_failed');
      }
    } catch (e) {
      reportError(e);
    } finally {
      $('signup-submit').disabled = false;
    }
  }

  function setSignupStatus(s) {
    const e = $('signup-status');
    e.textContent = s;
    e.className = `status ${s}`;
    $('signup-progress').dataset.status = s;
  }

  async function pollSignup(id) {
    let failures = 0;
    for (;;) {
      let p;
      try {
        p = await api('GET', `/signup/${encodeURIComponent(id)}?wait=2s`, undefined, { auth: false });
        failures = 0;
      } catch (e) {
        // The saga may not be queryable for a moment; keep trying a while.
        if (++failures > 15 || (e instanceof ApiError && e.status < 500)) throw e;
        await sleep(400);
        continue;
      }
      renderSignupSteps(p.steps || []);
      setSignupStatus(p.status);
      if (p.status === 'completed' || p.status === 'failed') return p;
    }
  }

  function renderSignupSteps(steps) {
    const list = $('signup-steps');
    for (const s of steps) {
      let li = list.querySelector(`li[data-step-name="${CSS.escape(s.name)}"]`);
      if (!li) {
        li = el('li', { 'data-testid': 'signup-step', dataset: { stepName: s.name } },
          el('span', { class: 'step-name', text: s.name }),
          el('span', { class: 'step-status' }));
        list.append(li);
      }
      li.dataset.status = s.status;
      li.className = `step ${s.status}`;
      const st = li.querySelector('.step-status');
      st.textContent = s.error ? `${s.status}: ${s.error}` : s.status;
    }
  }

  // ---------------------------------------------------------- login/out
  async function onLogin(ev) {
    ev.preventDefault();
    hideError();
    $('login-submit').disabled = true;
    try {
      const pair = await api('POST', '/auth/login', {
        username: $('login-username').value.trim().toLowerCase(),
        password: $('login-password').value,
      }, { auth: false });
      tokens.set(pair);
      $('login-password').value = '';
      await startChat();
    } catch (e) {
      reportError(e);
    } finally {
      $('login-submit').disabled = false;
    }
  }

  async function onLogout() {
    stopChat();
    try {
      await api('POST', '/auth/logout', undefined, { retry: false });
    } catch {
      // the tokens are dropped either way
    }
    tokens.clear();
    showAuth();
  }

  function showAuth() {
    $('auth-view').hidden = false;
    $('chat-view').hidden = true;
    $('whoami').hidden = true;
    $('top-actions').hidden = true;
    $('logout-btn').hidden = true;
    setConn('offline');
  }

  // ----------------------------------------------------------- chat start
  async function startChat() {
    state.stopped = false;
    const me = await api('GET', '/me');
    state.me = { user_id: me.user_id, username: me.username, display_name: me.display_name };
    state.me.status_message = me.status_message || '';
    state.me.avatar_url = me.avatar_url || '';
    state.me.balance = me.account ? me.account.balance : undefined;
    rememberUser(me);
    renderWhoami();
    $('whoami').dataset.userId = me.user_id;
    $('whoami').hidden = false;
    $('top-actions').hidden = false;
    $('logout-btn').hidden = false;
    $('auth-view').hidden = true;
    $('chat-view').hidden = false;
    document.body.classList.remove('room-open');
    await Promise.all([loadRooms(), loadInvitations()]);
    emit('started', state.me);
    connect();
  }

  function renderWhoami() {
    const me = state.me;
    if (!me) return;
    $('whoami').replaceChildren(avatarEl(me.user_id, 'xs'),
      el('span', { class: 'label', text: ` ${me.display_name} (@${me.username})` }));
  }

  function stopChat() {
    state.stopped = true;
    clearTimeout(state.reconnectTimer);
    clearTimeout(state.renewTimer);
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close(1000, 'logout');
    }
    state.ws = null;
    state.wsOpen = false;
    state.rooms.clear();
    state.invitations.clear();
    renderInvitations();
    state.outbox.clear();
    state.current = null;
    state.me = null;
    $('room-list').replaceChildren();
    $('room-view').hidden = true;
    $('room-empty').hidden = false;
    document.body.classList.remove('room-open');
    document.title = 'chatflow';
    emit('stopped');
  }

  // closeRoom leaves the open room (the back button on a phone).
  function closeRoom() {
    state.current = null;
    $('room-view').hidden = true;
    $('room-empty').hidden = false;
    document.body.classList.remove('room-open');
    renderRoomList();
  }

  // ---------------------------------------------------------------- rooms
  // A room: {room_id, name, last_seq (highest seq known), unread, last_message,
  //   members: Map(user_id -> {last_read_seq}), loaded (messages fetched),
  //   minSeq (lowest seq rendered), hasMore, readSent}
  function upsertRoom(r) {
    let room = state.rooms.get(r.room_id);
    if (!room) {
      room = {
        room_id: r.room_id, name: r.name, last_seq: 0, unread: 0, last_message: null,
        members: new Map(), loaded: false, minSeq: 0, hasMore: true, readSent: 0, created_at: r.created_at,
      };
      state.rooms.set(r.room_id, room);
    }
    // a DM shows the other member's name
    room.name = r.kind === 'dm' && Array.isArray(r.member_names) && r.member_names.length ? r.member_names[0] : r.name;
    if (typeof r.muted === 'boolean') room.muted = r.muted;
    if (r.kind) room.kind = r.kind;
    if (typeof r.last_seq === 'number') room.last_seq = Math.max(room.last_seq, r.last_seq);
    // the open room is being read: the server's count may predate our read frame
    if (typeof r.unread_count === 'number') room.unread = r.room_id === state.current ? 0 : r.unread_count;
    if (r.last_message) room.last_message = r.last_message;
    if (typeof r.last_read_seq === 'number') room.readSent = Math.max(room.readSent, r.last_read_seq);
    if (Array.isArray(r.members)) {
      room.members = new Map();
      for (const m of r.members) {
        rememberUser(m);
        state.online.set(m.user_id, !!m.online);
        room.members.set(m.user_id, { last_read_seq: m.last_read_seq || 0 });
      }
    }
    return room;
  }

  async function loadRooms() {
    const data = await api('GET', '/rooms');
    const list = Array.isArray(data) ? data : [];
    for (const r of list) {
      const room = upsertRoom(r);
      if (r.room_id === state.current) room.unread = 0;
    }
    renderRoomList();
    return list;
  }

  function activity(room) {
    return Date.parse(room.last_message ? room.last_message.sent_at : room.created_at) || 0;
  }

  function renderRoomList() {
    const list = $('room-list');
    const rooms = [...state.rooms.values()].sort((a, b) => activity(b) - activity(a));
    list.replaceChildren(...rooms.map((room) => {
      const badge = el('span', { class: 'badge', 'data-testid': 'unread-badge', text: String(room.unread) });
      // a muted room raises no badge
      badge.hidden = room.muted || room.unread <= 0 || room.room_id === state.current;
      const preview = room.last_message
        ? (room.last_message.kind === 'system' ? messageText(room.last_message)
          : `${nameOf(room.last_message.sender_id)}: ${messageText(room.last_message)}`)
        : 'No messages yet';
      return el('li', {
        class: `room-item${room.room_id === state.current ? ' active' : ''}`,
        'data-testid': 'room-item',
        dataset: { roomId: room.room_id, roomName: room.name },
        onclick: () => openRoom(room.room_id),
      },
      el('div', { class: 'room-line' }, el('span', { class: 'room-item-name', text: room.name }),
        room.muted ? el('span', { class: 'muted-icon', 'data-testid': 'room-muted', title: 'muted', text: '🔕' }) : null, badge),
      el('div', { class: 'room-preview', 'data-testid': 'room-preview', text: preview.slice(0, 80) }));
    }));
    $('no-rooms').hidden = state.rooms.size > 0;
    // the tab title counts unread messages of rooms that are not muted
    const unread = rooms.reduce((n, r) => n + (r.muted || r.room_id === state.current ? 0 : r.unread), 0);
    document.title = unread > 0 ? `(${unread}) chatflow` : 'chatflow';
  }

  async function openRoom(roomId) {
    hideError();
    state.current = roomId;
    const room = state.rooms.get(roomId);
    room.unread = 0;
    room.loaded = false;
    room.minSeq = 0;
    room.hasMore = true;
    $('room-empty').hidden = true;
    $('room-view').hidden = false;
    $('room-view').dataset.roomId = roomId;
    $('room-name').textContent = room.name;
    document.body.classList.add('room-open');
    emit('room-opened', room);
    $('message-list').replaceChildren();
    $('typing-indicator').textContent = '';
    $('history-status').textContent = '';
    renderRoomList();
    try {
      const [detail, page] = await Promise.all([
        api('GET', `/rooms/${roomId}`),
        api('GET', `/rooms/${roomId}/messages?limit=${HISTORY_PAGE}`),
      ]);
      if (state.current !== roomId) return;
      upsertRoom(detail);
      renderMembers();
      emit('room-detail', room, detail);
      room.hasMore = page.has_more;
      for (const m of page.messages) addMessage(m, { scroll: false });
      room.loaded = true;
      for (const o of state.outbox.values()) {
        if (o.frame.room_id === roomId && !findByCmid(o.frame.client_msg_id)) renderPending(o.frame);
      }
      updateHistoryStatus();
      scrollToBottom();
      renderReceipts();
      markRead();
    } catch (e) {
      reportError(e);
    }
    $('composer-input').focus();
  }

  function renderMembers() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    const items = [...room.members.keys()].map((uid) => {
      const on = uid === state.me.user_id ? state.wsOpen : !!state.online.get(uid);
      return el('li', {
        class: `member ${on ? 'online' : 'offline'}`,
        'data-testid': 'member',
        dataset: { userId: uid, online: String(on) },
        title: on ? 'online' : 'offline',
      }, avatarEl(uid, 'xs'), el('span', { class: 'dot', 'data-testid': 'presence-dot' }), el('span', { text: nameOf(uid) }));
    });
    $('member-list').replaceChildren(...items);
  }

  async function resolveUsernames(names) {
    const ids = [];
    for (const n of names) {
      const res = await api('GET', `/users?q=${encodeURIComponent(n)}&limit=50`);
      const u = (Array.isArray(res) ? res : []).find((x) => x.username === n);
      if (!u) throw new ApiError(404, { detail: `no user named "${n}"`, code: 'not_found' });
      rememberUser(u);
      ids.push(u.user_id);
    }
    return ids;
  }

  async function onCreateRoom(ev) {
    ev.preventDefault();
    hideError();
    const btn = $('new-room-submit');
    btn.disabled = true;
    try {
      const ids = await resolveUsernames(parseUsernames($('new-room-members').value));
      const room = await api('POST', '/rooms', { name: $('new-room-name').value.trim(), member_ids: ids });
      upsertRoom(room);
      ev.target.reset();
      ev.target.hidden = true;
      await openRoom(room.room_id);
    } catch (e) {
      reportError(e);
    } finally {
      btn.disabled = false;
    }
  }

  async function onInvite(ev) {
    ev.preventDefault();
    hideError();
    const roomId = state.current;
    if (!roomId) return;
    try {
      const names = parseUsernames($('invite-usernames').value);
      if (!names.length) return;
      const ids = await resolveUsernames(names);
      const room = await api('POST', `/rooms/${roomId}/members`, { user_ids: ids });
      upsertRoom(room);
      $('invite-usernames').value = '';
      if (state.current === roomId) renderMembers();
    } catch (e) {
      reportError(e);
    }
  }

  // ---------------------------------------------------------- invitations
  // Users who are not our friends can only invite us: the room is ours
  // once we accept.
  async function loadInvitations() {
    const list = await api('GET', '/invitations');
    state.invitations.clear();
    for (const inv of Array.isArray(list) ? list : []) state.invitations.set(inv.invitation_id, inv);
    renderInvitations();
  }

  function renderInvitations() {
    const items = [...state.invitations.values()].map((inv) => {
      const who = inv.inviter ? (inv.inviter.display_name || inv.inviter.username) : 'someone';
      return el('li', { class: 'invitation', 'data-testid': 'invitation', dataset: { invitationId: inv.invitation_id, roomId: inv.room_id } },
        el('div', { text: `${who} invites you to "${inv.room_name}"` }),
        el('div', { class: 'inv-actions' },
          el('button', { class: 'small', 'data-testid': 'invitation-accept', text: 'Accept', onclick: () => answerInvitation(inv, 'accept') }),
          el('button', { class: 'small ghost', 'data-testid': 'invitation-decline', text: 'Decline', onclick: () => answerInvitation(inv, 'decline') })));
    });
    $('invitation-list').replaceChildren(...items);
    $('invitations').hidden = items.length === 0;
  }

  async function answerInvitation(inv, verb) {
    hideError();
    try {
      const room = await api('POST', `/invitations/${inv.invitation_id}/${verb}`);
      state.invitations.delete(inv.invitation_id);
      renderInvitations();
      if (verb === 'accept' && room && room.room_id) {
        upsertRoom(room);
        await openRoom(room.room_id);
      }
    } catch (e) {
      if (e.status === 404 || e.status === 409) { // answered elsewhere
        state.invitations.delete(inv.invitation_id);
        renderInvitations();
      }
      reportError(e);
    }
  }

  function onInvitationEvent(f) {
    if (!state.me || f.invitee_id !== state.me.user_id) return; // our own invitations to others
    if (f.event === 'received') {
      loadInvitations().catch(reportError); // the list carries the inviter's names
    } else {
      state.invitations.delete(f.invitation_id);
      renderInvitations();
    }
  }

  // ------------------------------------------------------------- messages
  const list = () => $('message-list');
  const findBySeq = (seq) => list().querySelector(`li.msg[data-seq="${seq}"]`);
  const findByCmid = (cmid) => list().querySelector(`li.msg[data-client-msg-id="${CSS.escape(cmid)}"]`);

  function nearBottom() {
    const box = $('messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }
  function scrollToBottom() {
    const box = $('messages');
    box.scrollTop = box.scrollHeight;
  }

  function messageElement(m, mine) {
    const li = el('li', {
      class: `msg${mine ? ' mine' : ''}`,
      'data-testid': 'message',
      title: m.sent_at ? new Date(m.sent_at).toLocaleString() : undefined,
      dataset: { clientMsgId: m.client_msg_id || '', senderId: m.sender_id || '', at: String(Date.parse(m.sent_at) || '') },
    },
    el('div', { class: 'meta' },
      el('span', { class: 'sender', 'data-testid': 'message-sender', text: mine ? 'You' : nameOf(m.sender_id) }),
      el('time', { class: 'time', text: m.sent_at ? fmtTime(m.sent_at) : '' })),
    el('div', { class: 'body', 'data-testid': 'message-body', text: messageText(m) }));
    if (m.kind) li.classList.add(`kind-${m.kind}`);
    if (m.kind === 'file') fileView(li.querySelector('.body'), m);
    if (mine) li.append(el('div', { class: 'msg-status', 'data-testid': 'msg-status' }));
    if (!m.kind) {
      li.dataset.body = m.body || '';
      markChanged(li, m);
    }
    if (!mine && m.kind !== 'system' && m.kind !== 'transfer') li.prepend(avatarEl(m.sender_id, 'sm'));
    emit('message', li, m);
    return li;
  }

  // messageMenu offers edit and delete on one's own sent messages.
  function messageMenu(roomId, seq, li) {
    const path = `/rooms/${roomId}/messages/${seq}`;
    const edit = el('button', { class: 'msg-action', 'data-testid': 'msg-edit', type: 'button', text: 'edit' });
    edit.onclick = async () => {
      const body = window.prompt('Edit message', li.dataset.body || '');
      if (body === null || body.trim() === '' || body === li.dataset.body) return;
      try { await api('PATCH', path, { body, client_msg_id: `edit-${crypto.randomUUID()}` }); } catch (err) { reportError(err); }
    };
    const del = el('button', { class: 'msg-action', 'data-testid': 'msg-delete', type: 'button', text: 'delete' });
    del.onclick = async () => {
      if (!window.confirm('Delete this message?')) return;
      try { await api('DELETE', `${path}?client_msg_id=del-${crypto.randomUUID()}`); } catch (err) { reportError(err); }
    };
    return el('div', { class: 'msg-menu' }, edit, del);
  }

  // markChanged shows that a message was edited or deleted.
  function markChanged(li, m) {
    li.classList.toggle('edited', !!m.edited_at && !m.deleted_at);
    li.classList.toggle('deleted', !!m.deleted_at);
    if (m.deleted_at) {
      li.querySelector('.body').textContent = 'message deleted';
      li.querySelector('.msg-menu')?.remove();
    }
  }

  // applyChange renders an edit or delete event by changing its target in
  // place; the event itself is not shown as a line.
  function applyChange(m) {
    let b;
    try { b = JSON.parse(m.body); } catch { return; }
    const room = state.rooms.get(m.room_id);
    const at = m.sent_at;
    if (room && room.last_message && room.last_message.seq === b.target_seq) {
      room.last_message = m.kind === 'delete'
        ? { ...room.last_message, body: '', deleted_at: at }
        : { ...room.last_message, body: b.body, edited_at: at };
    }
    if (m.room_id !== state.current) return;
    const li = findBySeq(b.target_seq);
    if (!li || li.classList.contains('deleted')) return;
    if (m.kind === 'delete') {
      li.dataset.body = '';
      markChanged(li, { deleted_at: at });
    } else {
      li.dataset.body = b.body;
      li.querySelector('.body').textContent = b.body;
      markChanged(li, { edited_at: at });
    }
  }

  // messageText is what a message shows: its body, or for the kinds the
  // server posts (system events, transfers) a sentence built from the JSON
  // body. Unknown kinds show their raw body.
  function messageText(m) {
    if (!['system', 'transfer', 'file', 'reaction', 'edit', 'delete'].includes(m.kind)) return m.body;
    let b;
    try { b = JSON.parse(m.body); } catch { return m.body; }
    // a room's last message may be an event about another message
    if (m.kind === 'reaction') return b.op === 'remove' ? 'removed a reaction' : `reacted ${b.emoji}`;
    if (m.kind === 'edit') return 'edited a message';
    if (m.kind === 'delete') return 'deleted a message';
    if (m.kind === 'file') return `📎 ${b.name} (${fmtSize(b.size)})`;
    if (m.kind === 'transfer') {
      const memo = b.memo ? ` — ${b.memo}` : '';
      return `💸 ${nameOf(b.from_user_id)} sent ${Number(b.amount).toLocaleString()} to ${nameOf(b.to_user_id)}${memo}`;
    }
    if (b.event === 'member_left') {
      return b.reason === 'account_deleted' ? `${nameOf(b.user_id)} deleted their account` : `${nameOf(b.user_id)} left`;
    }
    if (b.event === 'member_joined') {
      return b.by_user_id ? `${nameOf(b.by_user_id)} added ${nameOf(b.user_id)}` : `${nameOf(b.user_id)} joined`;
    }
    if (b.event === 'member_invited') return `${nameOf(b.by_user_id)} invited ${nameOf(b.user_id)}`;
    if (b.event === 'member_removed') return `${nameOf(b.by_user_id)} removed ${nameOf(b.user_id)}`;
    if (b.event === 'room_renamed') return `${nameOf(b.user_id)} renamed the room to “${b.name}”`;
    return b.event || m.body;
  }

  function fmtSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / (1 << 20)).toFixed(1)} MiB`;
  }

  // fileView turns a file message's body into a link (and, for images, a
  // preview). The file URL is a short-lived pre-signed one the api hands
  // out per request (?redirect=false), so it is asked for when shown.
  function fileView(body, m) {
    let b;
    try { b = JSON.parse(m.body); } catch { return; }
    const path = `/rooms/${m.room_id}/files/${b.upload_id}?redirect=false`;
    const open = async () => {
      try { window.open((await api('GET', path)).url, '_blank', 'noopener'); } catch (e) { showError(e.message || 'download failed'); }
    };
    body.textContent = '';
    body.append(el('a', { class: 'file-link', 'data-testid': 'file-link', onclick: open, text: messageText(m) }));
    if (/^image\/(png|jpeg|gif|webp)$/.test(b.content_type)) {
      const img = el('img', { class: 'file-preview', 'data-testid': 'file-preview', alt: b.name, onclick: open });
      body.append(img);
      api('GET', b.thumbnail ? `${path}&variant=thumb` : path).then((r) => { img.src = r.url; }).catch(() => img.remove());
    }
  }

  // onAttach uploads the chosen file straight to the object store with the
  // pre-signed PUT, then posts it into the room as a file message.
  async function onAttach() {
    const input = $('attach-input');
    const file = input.files && input.files[0];
    input.value = '';
    const roomId = state.current;
    if (!file || !roomId) return;
    try {
      const up = await api('POST', `/rooms/${roomId}/uploads`, {
        name: file.name, size: file.size, content_type: file.type || 'application/octet-stream',
      });
      const res = await fetch(up.url, { method: 'PUT', headers: up.headers, body: file });
      if (!res.ok) throw new Error(`upload refused by the store (${res.status})`);
      const dims = await imageSize(file);
      await api('POST', `/rooms/${roomId}/messages/files`, { upload_id: up.upload_id, client_msg_id: uuid(), ...dims });
    } catch (e) {
      showError(e.message || 'upload failed', e.code);
    }
  }

  function imageSize(file) {
    if (!/^image\//.test(file.type)) return Promise.resolve({});
    return new Promise((resolve) => {
      const img = new Image();
      const url = URL.createObjectURL(file);
      img.onload = () => { URL.revokeObjectURL(url); resolve({ width: img.naturalWidth, height: img.naturalHeight }); };
      img.onerror = () => { URL.revokeObjectURL(url); resolve({}); };
      img.src = url;
    });
  }

  function setStatus(li, status) {
    li.dataset.status = status;
    const s = li.querySelector('.msg-status');
    if (s) {
      s.textContent = { pending: 'sending…', sent: 'sent ✓', failed: 'failed — click to retry' }[status] || status;
      s.onclick = status === 'failed' ? () => retry(li.dataset.clientMsgId) : null;
    }
  }

  // placeBySeq puts a sequenced message in order; pending ones stay last.
  function placeBySeq(li, seq) {
    li.dataset.seq = String(seq);
    // one's own text messages get edit/delete once they have a seq
    if (li.classList.contains('mine') && !/\bkind-/.test(li.className) && !li.classList.contains('deleted') && !li.querySelector('.msg-menu')) {
      (li.querySelector('.msg-tools') || li).append(messageMenu(state.current, seq, li));
    }
    const before = [...list().children].find((o) => o !== li && Number(o.dataset.seq || Infinity) > seq);
    if (before) list().insertBefore(li, before);
    else list().append(li);
    group(li);
  }

  // group hides the sender line of a message that follows one from the same
  // sender within five minutes.
  function group(li) {
    for (const m of [li, li.nextElementSibling]) {
      if (!m) continue;
      const prev = m.previousElementSibling;
      const close = prev && prev.dataset.senderId === m.dataset.senderId &&
        Math.abs((Number(m.dataset.at) || Date.now()) - (Number(prev.dataset.at) || Date.now())) < 300000;
      m.classList.toggle('cont', !!close);
    }
  }

  // addMessage records a message of any room and renders it if its room is
  // open. Messages are deduplicated by seq per room.
  function addMessage(m, { scroll = true } = {}) {
    const room = state.rooms.get(m.room_id);
    if (!room) return;
    const mine = state.me && m.sender_id === state.me.user_id;
    const isNew = m.seq > room.last_seq;
    room.last_seq = Math.max(room.last_seq, m.seq);
    if (kinds[m.kind]) { // events applied to another message, never shown as lines
      kinds[m.kind](m, scroll);
      if (m.room_id === state.current) room.minSeq = room.minSeq ? Math.min(room.minSeq, m.seq) : m.seq;
      return;
    }
    if (m.kind === 'edit' || m.kind === 'delete') {
      applyChange(m);
      if (m.room_id === state.current) room.minSeq = room.minSeq ? Math.min(room.minSeq, m.seq) : m.seq;
      return;
    }
    if (!room.last_message || m.seq >= room.last_message.seq) room.last_message = m;
    clearTyping(m.room_id, m.sender_id);
    if (m.room_id !== state.current) {
      if (isNew && !mine && !room.muted) room.unread += 1;
      renderRoomList();
      return;
    }
    if (findBySeq(m.seq)) return; // duplicate
    const stick = scroll && (nearBottom() || mine);
    let li = m.client_msg_id && mine ? findByCmid(m.client_msg_id) : null;
    if (li) {
      // our own pending message: now it has a seq (the ack marks it sent)
      li.querySelector('.time').textContent = fmtTime(m.sent_at);
      li.dataset.at = String(Date.parse(m.sent_at) || '');
      li.title = new Date(m.sent_at).toLocaleString();
      if (!li.dataset.status || li.dataset.status === 'failed') setStatus(li, 'pending');
    } else {
      li = messageElement(m, mine);
      if (mine) setStatus(li, state.outbox.has(m.client_msg_id) ? 'pending' : 'sent');
    }
    placeBySeq(li, m.seq);
    room.minSeq = room.minSeq ? Math.min(room.minSeq, m.seq) : m.seq;
    if (room.loaded) updateHistoryStatus();
    if (stick) scrollToBottom();
    renderRoomList();
    renderReceipts();
    markRead();
  }

  function renderPending(frame) {
    const li = messageElement({ client_msg_id: frame.client_msg_id, sender_id: state.me.user_id, body: frame.body, reply_to: frame.reply_to }, true);
    setStatus(li, 'pending');
    list().append(li);
    group(li);
    scrollToBottom();
    return li;
  }

  function onSend(ev) {
    ev.preventDefault();
    const input = $('composer-input');
    const body = input.value.trim();
    if (!body || !state.current) return;
    const frame = { type: 'send', room_id: state.current, client_msg_id: uuid(), body };
    emit('send', frame);
    state.outbox.set(frame.client_msg_id, { frame });
    renderPending(frame);
    input.value = '';
    autoGrow();
    sendFrame(frame); // queued in the outbox when offline; resent on reconnect
  }

  function retry(cmid) {
    const o = state.outbox.get(cmid);
    const li = findByCmid(cmid);
    if (!o) return;
    if (li) setStatus(li, 'pending');
    sendFrame(o.frame);
  }

  function onAck(f) {
    const o = state.outbox.get(f.client_msg_id);
    state.outbox.delete(f.client_msg_id);
    const roomId = f.room_id || (o && o.frame.room_id);
    const room = state.rooms.get(roomId);
    if (room) room.last_seq = Math.max(room.last_seq, f.seq);
    if (roomId !== state.current) return;
    const dupe = findBySeq(f.seq);
    let li = findByCmid(f.client_msg_id);
    if (dupe && li && dupe !== li) {
      li.remove(); // already shown through the message frame
      li = dupe;
    }
    if (li) {
      if (!li.dataset.seq) placeBySeq(li, f.seq);
      setStatus(li, 'sent');
    }
    renderReceipts();
    markRead();
  }

  // ------------------------------------------------------------ history
  async function loadOlder() {
    const room = state.rooms.get(state.current);
    if (!room || !room.loaded || !room.hasMore || state.loadingHistory || !room.minSeq || room.minSeq <= 1) return;
    state.loadingHistory = true;
    $('history-status').textContent = 'Loading older messages…';
    const roomId = room.room_id;
    try {
      const page = await api('GET', `/rooms/${roomId}/messages?before_seq=${room.minSeq}&limit=${HISTORY_PAGE}`);
      if (state.current !== roomId) return;
      const box = $('messages');
      const fromBottom = box.scrollHeight - box.scrollTop;
      for (const m of page.messages) addMessage(m, { scroll: false });
      room.hasMore = page.has_more;
      box.scrollTop = box.scrollHeight - fromBottom; // keep the view still
    } catch (e) {
      reportError(e);
    } finally {
      state.loadingHistory = false;
      updateHistoryStatus();
    }
  }

  function updateHistoryStatus() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    const empty = !list().children.length;
    $('history-status').textContent = empty
      ? 'No messages yet. Say hello!'
      : room.hasMore && room.minSeq > 1 ? 'Scroll up for older messages' : 'Beginning of the room';
  }

  // ---------------------------------------------------------- read state
  function markRead() {
    const room = state.rooms.get(state.current);
    if (!room || !room.loaded || document.visibilityState !== 'visible' || !nearBottom()) return;
    let newest = 0;
    for (const li of list().querySelectorAll('li.msg[data-seq]')) newest = Math.max(newest, Number(li.dataset.seq));
    if (newest > room.readSent && sendFrame({ type: 'read', room_id: room.room_id, seq: newest }, false)) {
      room.readSent = newest;
      const self = room.members.get(state.me.user_id);
      if (self) self.last_read_seq = Math.max(self.last_read_seq, newest);
    }
  }

  function onRead(f) {
    const room = state.rooms.get(f.room_id);
    if (!room) return;
    const m = room.members.get(f.user_id) || { last_read_seq: 0 };
    m.last_read_seq = Math.max(m.last_read_seq, f.seq);
    room.members.set(f.user_id, m);
    if (state.me && f.user_id === state.me.user_id) {
      room.readSent = Math.max(room.readSent, f.seq);
      if (f.room_id !== state.current) {
        room.unread = Math.max(0, room.last_seq - f.seq);
        renderRoomList();
      }
    }
    if (f.room_id === state.current) renderReceipts();
  }

  // renderReceipts shows, under the newest message each other member has
  // read, "Read by …".
  function renderReceipts() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    for (const r of list().querySelectorAll('.receipt')) r.remove();
    const rendered = [...list().querySelectorAll('li.msg[data-seq]')];
    if (!rendered.length) return;
    const byMsg = new Map();
    for (const [uid, m] of room.members) {
      if (uid === state.me.user_id || !m.last_read_seq) continue;
      let target = null;
      for (const li of rendered) {
        if (Number(li.dataset.seq) <= m.last_read_seq) target = li;
        else break;
      }
      if (!target) continue;
      if (!byMsg.has(target)) byMsg.set(target, []);
      byMsg.get(target).push(nameOf(uid));
    }
    for (const [li, names] of byMsg) {
      li.append(el('div', { class: 'receipt', 'data-testid': 'read-receipt', text: `Read by ${names.join(', ')}` }));
    }
  }

  // --------------------------------------------------------------- typing
  function onComposerInput() {
    autoGrow();
    const roomId = state.current;
    if (!roomId || !$('composer-input').value) return;
    const now = Date.now();
    if (now - (state.lastTypingSent.get(roomId) || 0) < TYPING_SEND_EVERY) return;
    if (sendFrame({ type: 'typing', room_id: roomId }, false)) state.lastTypingSent.set(roomId, now);
  }

  function onTyping(f) {
    if (state.me && f.user_id === state.me.user_id) return;
    if (!state.typing.has(f.room_id)) state.typing.set(f.room_id, new Map());
    const users = state.typing.get(f.room_id);
    clearTimeout(users.get(f.user_id));
    users.set(f.user_id, setTimeout(() => clearTyping(f.room_id, f.user_id), TYPING_SHOW_FOR));
    renderTyping();
  }

  function clearTyping(roomId, userId) {
    const users = state.typing.get(roomId);
    if (!users || !users.has(userId)) return;
    clearTimeout(users.get(userId));
    users.delete(userId);
    renderTyping();
  }

  function renderTyping() {
    const users = state.typing.get(state.current);
    const names = users ? [...users.keys()].map(nameOf) : [];
    const t = $('typing-indicator');
    t.textContent = !names.length ? ''
      : names.length === 1 ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
    t.dataset.active = String(names.length > 0);
  }

  // ------------------------------------------------------------ websocket
  function setConn(s, text) {
    const c = $('conn-status');
    c.className = `conn ${s}`;
    c.dataset.state = s;
    c.textContent = text || s;
  }

  // sendFrame sends now when connected. Frames that are not messages are
  // dropped when offline (returns false); messages wait in the outbox.
  function sendFrame(frame, queue = true) {
    if (state.ws && state.wsOpen) {
      state.ws.send(JSON.stringify(frame));
      return true;
    }
    return queue && frame.type === 'send';
  }

  async function connect() {
    if (state.stopped) return;
    clearTimeout(state.reconnectTimer);
    setConn('connecting', 'connecting…');
    try {
      await ensureFreshToken();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        sessionExpired();
        return;
      }
      scheduleReconnect();
      return;
    }
    if (state.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?access_token=${encodeURIComponent(tokens.access)}`);
    state.ws = ws;
    state.wsToken = tokens.access;
    ws.onopen = () => {
      state.wsOpen = true;
      scheduleRenewal(tokenExpiry(state.wsToken));
      state.backoff = BACKOFF_MIN;
      setConn('online');
      // Catch up on everything after what we have seen, then resend what
      // was never acknowledged (the server deduplicates by client_msg_id).
      const rooms = {};
      for (const r of state.rooms.values()) rooms[r.room_id] = r.last_seq;
      if (Object.keys(rooms).length) sendFrame({ type: 'sync', rooms });
      for (const o of state.outbox.values()) sendFrame(o.frame);
      renderMembers();
      markRead();
    };
    ws.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      handleFrame(f);
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsOpen = false;
      if (ev.reason) console.warn('websocket closed:', ev.code, ev.reason);
      renderMembers();
      scheduleReconnect();
    };
  }

  // The server closes a socket when its access token expires unless the
  // client hands it a fresh one of the same user first (an auth frame):
  // renew a minute before the end (half-way for short-lived tokens).
  function scheduleRenewal(exp) {
    clearTimeout(state.renewTimer);
    if (!exp) return;
    const left = exp - Date.now();
    const wait = left > 120000 ? left - 60000 : Math.max(left / 2, 1000);
    state.renewTimer = setTimeout(renewSocket, wait);
  }

  async function renewSocket() {
    if (state.stopped || !state.ws || !state.wsOpen) return;
    try {
      // another tab may have rotated the pair already; otherwise rotate it
      if (tokens.access === state.wsToken) await refreshTokens();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) sessionExpired();
      return; // the socket ends at expiry and reconnects
    }
    state.wsToken = tokens.access;
    sendFrame({ type: 'auth', access_token: state.wsToken }, false);
  }

  function onSessionFrame(f) {
    if (f.event === 'revoked') {
      sessionExpired(); // logged out, or the session was stolen and revoked
    } else if (f.event === 'renewed') {
      scheduleRenewal(Date.parse(f.expires_at));
    }
    // 'expired': the socket closes next and reconnects with a fresh token
  }

  function scheduleReconnect() {
    if (state.stopped) return;
    const delay = Math.round(state.backoff * (0.75 + Math.random() * 0.5));
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX);
    setConn('offline', `reconnecting in ${Math.ceil(delay / 1000)}s`);
    state.reconnectTimer = setTimeout(async () => {
      // The access token may have expired while we were away: a cheap call
      // refreshes it (and tells us whether the server is back).
      try {
        await api('GET', '/me');
      } catch (e) {
        if (state.stopped) return;
        if (!(e instanceof ApiError) || e.status >= 500) {
          scheduleReconnect();
          return;
        }
      }
      connect();
    }, delay);
  }

  function handleFrame(f) {
    switch (f.type) {
      case 'message':
        addMessage(f);
        break;
      case 'ack':
        onAck(f);
        break;
      case 'typing':
        onTyping(f);
        break;
      case 'read':
        onRead(f);
        break;
      case 'presence':
        state.online.set(f.user_id, !!f.online);
        renderMembers();
        break;
      case 'room':
        onRoomEvent(f);
        break;
      case 'invitation':
        onInvitationEvent(f);
        break;
      case 'friend': // requested, accepted, declined, canceled, removed: friends.js
        break;
      case 'profile':
        rememberUser({ user_id: f.user_id, display_name: f.display_name, status_message: f.status_message, ...('avatar_url' in f ? { avatar_url: f.avatar_url } : {}) });
        // pictures already shown change in place (class "avatar <size>")
        for (const a of document.querySelectorAll(`.avatar[data-user-id="${CSS.escape(f.user_id)}"]`)) a.replaceWith(avatarEl(f.user_id, a.classList[1]));
        renderMembers();
        break;
      case 'error':
        if (f.ref === 'auth') break; // a failed renewal: the socket ends at expiry and reconnects
        onErrorFrame(f);
        break;
      case 'session':
        onSessionFrame(f);
        break;
      default:
    }
    emit('frame', f);
  }

  function onErrorFrame(f) {
    showError(f.detail || 'error', f.code);
    if (f.ref && state.outbox.has(f.ref)) {
      const li = findByCmid(f.ref);
      if (li) setStatus(li, 'failed');
      if (f.code !== 'rate_limited' && f.code !== 'unavailable' && f.code !== 'internal') {
        // a validation or membership error will not heal by resending
        state.outbox.delete(f.ref);
        if (li) li.querySelector('.msg-status').onclick = null;
      }
    }
  }

  async function onRoomEvent(f) {
    const mine = state.me && (!f.user_id || f.user_id === state.me.user_id);
    try {
      if (f.event === 'renamed') {
        const room = state.rooms.get(f.room_id);
        if (room) room.name = f.name;
        renderRoomList();
        return;
      }
      if (f.event === 'left' && mine) {
        state.rooms.delete(f.room_id);
        if (state.current === f.room_id) closeRoom(); // on a phone: back to the list
        renderRoomList();
        return;
      }
      if (mine) {
        // We were added: the server has subscribed this connection to the
        // room; load it if new, then catch up on anything sent meanwhile.
        if (!state.rooms.has(f.room_id)) await loadRooms();
        const room = state.rooms.get(f.room_id);
        if (room) sendFrame({ type: 'sync', rooms: { [f.room_id]: room.last_seq } }, false);
        if (f.room_id !== state.current) return;
      }
      if (f.room_id === state.current) {
        upsertRoom(await api('GET', `/rooms/${f.room_id}`));
        renderMembers();
        renderReceipts();
      }
    } catch (e) {
      reportError(e);
    }
  }

  // ------------------------------------------------------------------ ui
  function autoGrow() {
    const t = $('composer-input');
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
  }

  function bind() {
    $('signup-form').addEventListener('submit', onSignup);
    $('login-form').addEventListener('submit', onLogin);
    $('logout-btn').addEventListener('click', onLogout);
    $('banner-close').addEventListener('click', hideError);
    $('new-room-toggle').addEventListener('click', () => {
      const f = $('new-room-form');
      f.hidden = !f.hidden;
      if (!f.hidden) $('new-room-name').focus();
    });
    $('new-room-form').addEventListener('submit', onCreateRoom);
    $('invite-form').addEventListener('submit', onInvite);
    $('room-back').addEventListener('click', closeRoom);
    $('composer').addEventListener('submit', onSend);
    $('attach-btn').addEventListener('click', () => $('attach-input').click());
    $('attach-input').addEventListener('change', onAttach);
    $('composer-input').addEventListener('input', onComposerInput);
    $('composer-input').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('composer').requestSubmit();
      }
    });
    $('messages').addEventListener('scroll', () => {
      if ($('messages').scrollTop < 40) loadOlder();
      markRead();
    });
    document.addEventListener('visibilitychange', markRead);
    window.addEventListener('focus', markRead);
    window.addEventListener('online', () => {
      if (!state.wsOpen && !state.stopped) {
        state.backoff = BACKOFF_MIN;
        connect();
      }
    });
  }

  async function boot() {
    bind();
    if (!tokens.access) {
      showAuth();
      return;
    }
    try {
      await startChat();
    } catch (e) {
      if (state.stopped) return; // the session had ended: already handled
      stopChat();
      showAuth();
      reportError(e);
    }
  }

  // kinds maps message kinds that change another message (reaction, …) to
  // their handler(m, live); extensions fill it in.
  const kinds = {};

  // CF is what the other scripts of the client build on.
  window.CF = {
    state, api, el, $, on, emit, kinds, uuid, sleep, tokens, ApiError,
    showError, showNotice, hideError, reportError, nameOf, rememberUser, avatarEl, fmtTime, messageText,
    openRoom, closeRoom, loadRooms, upsertRoom, renderRoomList, renderMembers,
    findBySeq, list, renderWhoami, sendFrame, stopChat, showAuth,
  };

  document.addEventListener('DOMContentLoaded', boot);
})();
