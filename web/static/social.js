// chatflow web client: message search, people search (friend requests and
// direct messages), and the open room's mute and leave buttons. Builds on
// app.js (CF) and profile.js (panels).
'use strict';

(() => {
  const { $, el, api, state } = CF;

  // -------------------------------------------------------------- search
  let lastQuery = null; // {q, room_id, cursor}

  function openSearch() {
    const sel = $('search-room');
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'All my rooms' }),
      ...[...state.rooms.values()].map((r) => el('option', { value: r.room_id, text: r.name })));
    sel.value = [...sel.options].some((o) => o.value === keep) ? keep : '';
    CF.openPanel('search');
    $('search-q').focus();
  }

  // snippetNodes rebuilds the server's snippet (escaped text with <mark>)
  // from its text and mark elements only.
  function snippetNodes(html) {
    const doc = new DOMParser().parseFromString(`<p>${html}</p>`, 'text/html');
    return [...doc.body.firstChild.childNodes].map((n) => (n.nodeName === 'MARK'
      ? el('mark', { text: n.textContent }) : document.createTextNode(n.textContent)));
  }

  async function runSearch(more) {
    const q = more ? lastQuery : { q: $('search-q').value.trim(), room_id: $('search-room').value, cursor: '' };
    if (!q.q) return;
    const params = new URLSearchParams({ q: q.q, limit: '20' });
    if (q.room_id) params.set('room_id', q.room_id);
    if (q.cursor) params.set('cursor', q.cursor);
    $('search-status').textContent = 'Searching…';
    try {
      const page = await api('GET', `/search?${params}`);
      const hits = page.results || [];
      const items = hits.map((m) => {
        const room = state.rooms.get(m.room_id);
        const sender = m.sender_name || CF.nameOf(m.sender_id);
        // a DM is named after its other member: say so rather than repeat the name
        const where = !room ? 'a room' : room.kind === 'dm' ? 'Direct message' : room.name;
        return el('li', {
          class: 'hit', 'data-testid': 'search-hit', tabindex: '0',
          dataset: { roomId: m.room_id, seq: String(m.seq) },
          onclick: () => openHit(m),
          onkeydown: (e) => { if (e.key === 'Enter') openHit(m); },
        },
        el('div', { class: 'meta' },
          el('span', { class: 'hit-room', text: where }),
          el('span', { class: 'sender', text: sender }),
          el('time', { text: CF.fmtTime(m.sent_at) })),
        el('div', { class: 'snippet', 'data-testid': 'search-snippet' }, ...snippetNodes(m.snippet || m.body || '')));
      });
      if (more) $('search-results').append(...items);
      else $('search-results').replaceChildren(...items);
      const n = $('search-results').children.length;
      $('search-status').textContent = n ? `${n} message${n === 1 ? '' : 's'}` : 'Nothing found';
      lastQuery = { ...q, cursor: page.next_cursor || '' };
      $('search-more').hidden = !page.next_cursor;
    } catch (e) {
      $('search-status').textContent = CF.problem(e);
      CF.reportError(e);
    }
  }

  async function openHit(m) {
    CF.closePanel();
    if (!state.rooms.has(m.room_id)) await CF.loadRooms();
    await CF.openRoom(m.room_id);
    const li = CF.findBySeq(m.seq);
    if (li) {
      li.scrollIntoView({ block: 'center' });
      li.classList.add('flash');
      setTimeout(() => li.classList.remove('flash'), 3000);
    }
  }

  // -------------------------------------------------------- find people
  let peopleTimer = null;
  function onPeopleInput() {
    clearTimeout(peopleTimer);
    peopleTimer = setTimeout(findPeople, 250);
  }

  async function findPeople() {
    const q = $('user-search').value.trim().toLowerCase();
    const out = $('user-search-results');
    if (!q) {
      out.replaceChildren();
      return;
    }
    try {
      const users = await api('GET', `/users?q=${encodeURIComponent(q)}&limit=10`);
      if ($('user-search').value.trim().toLowerCase() !== q) return; // typed on meanwhile
      const friends = new Set(state.friends.map((f) => f.user_id));
      const asked = new Set(state.friendRequests.map((r) => r.user.user_id));
      out.replaceChildren(...(Array.isArray(users) ? users : []).filter((u) => u.user_id !== state.me.user_id).map((u) => {
        CF.rememberUser(u);
        const li = el('li', { class: 'friend', 'data-testid': 'user-result', dataset: { userId: u.user_id, username: u.username } },
          CF.avatarEl(u.user_id, 'xs'), el('span', { class: 'friend-name', text: `${u.display_name} (@${u.username})` }));
        if (friends.has(u.user_id)) li.append(el('span', { class: 'muted small-text', text: 'friend' }));
        else if (asked.has(u.user_id)) li.append(el('span', { class: 'muted small-text', text: 'requested' }));
        else {
          li.append(el('button', {
            class: 'small ghost', 'data-testid': 'user-add-friend', type: 'button', text: 'Add',
            onclick: async () => {
              try {
                await api('POST', '/friends/requests', { username: u.username });
                await CF.loadFriends();
                findPeople();
              } catch (e) {
                CF.reportError(e);
              }
            },
          }));
        }
        li.append(el('button', { class: 'small ghost', 'data-testid': 'user-dm', type: 'button', text: 'Message', onclick: () => CF.openDM(u.user_id) }));
        return li;
      }));
      if (!out.children.length) out.append(el('li', { class: 'muted friend', text: 'Nobody found' }));
    } catch (e) {
      CF.reportError(e);
    }
  }

  // ----------------------------------------------------------- mute/leave
  function renderMute() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    const b = $('room-mute');
    b.textContent = room.muted ? '🔕 Muted' : '🔔 Mute';
    b.setAttribute('aria-pressed', String(!!room.muted));
    b.dataset.muted = String(!!room.muted);
  }

  // a DM has exactly its pair: no invitations
  function renderKind() {
    const room = state.rooms.get(state.current);
    if (room) $('invite-form').hidden = room.kind === 'dm';
  }

  async function toggleMute() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    try {
      const r = await api('PUT', `/rooms/${room.room_id}/mute`, { muted: !room.muted });
      room.muted = typeof r.muted === 'boolean' ? r.muted : !room.muted;
      renderMute();
      CF.renderRoomList();
    } catch (e) {
      CF.reportError(e);
    }
  }

  async function leaveRoom() {
    const room = state.rooms.get(state.current);
    if (!room || !window.confirm(`Leave “${room.name}”?`)) return;
    try {
      await api('DELETE', `/rooms/${room.room_id}/members/me`);
      state.rooms.delete(room.room_id);
      CF.closeRoom();
    } catch (e) {
      CF.reportError(e);
    }
  }

  // -------------------------------------------------------- notifications
  // A message from someone else in a room that is not muted, and not the
  // one being read, raises a system notification (once allowed).
  function notify(f) {
    if (f.type !== 'message' || !state.me || f.sender_id === state.me.user_id || CF.kinds[f.kind]) return;
    if (f.kind === 'edit' || f.kind === 'delete' || f.kind === 'system') return;
    const room = state.rooms.get(f.room_id);
    if (!room || room.muted || !('Notification' in window) || Notification.permission !== 'granted') return;
    if (f.room_id === state.current && document.visibilityState === 'visible') return;
    if (f.seq && f.seq <= (room.notifiedSeq || 0)) return; // a sync replay
    room.notifiedSeq = f.seq || room.notifiedSeq;
    try {
      const n = new Notification(room.name, { body: `${CF.nameOf(f.sender_id)}: ${CF.messageText(f)}`.slice(0, 200), tag: f.room_id });
      n.onclick = () => {
        window.focus();
        CF.openRoom(f.room_id);
      };
    } catch { /* some browsers only notify from a service worker */ }
  }

  function renderNotifyButton() {
    const b = $('notify-enable');
    const p = 'Notification' in window ? Notification.permission : 'unsupported';
    b.dataset.permission = p;
    b.disabled = p !== 'default';
    b.textContent = { granted: 'Notifications on', denied: 'Notifications blocked', unsupported: 'No notifications here' }[p] || 'Turn on notifications';
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('notify-enable').addEventListener('click', async () => {
      if ('Notification' in window) await Notification.requestPermission();
      renderNotifyButton();
    });
    $('search-open').addEventListener('click', openSearch);
    $('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      runSearch(false);
    });
    $('search-more').addEventListener('click', () => runSearch(true));
    $('user-search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      findPeople();
    });
    $('user-search').addEventListener('input', onPeopleInput);
    $('room-mute').addEventListener('click', toggleMute);
    $('room-leave').addEventListener('click', leaveRoom);
  });
  CF.on('frame', notify);
  CF.on('panel', (name) => { if (name === 'profile') renderNotifyButton(); });
  CF.on('room-opened', renderMute);
  CF.on('room-detail', renderMute);
  CF.on('room-opened', renderKind);
  CF.on('room-detail', renderKind);
  CF.on('stopped', () => {
    $('user-search').value = '';
    $('user-search-results').replaceChildren();
    $('search-results').replaceChildren();
    $('search-status').textContent = '';
  });
})();
