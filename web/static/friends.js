// chatflow web client: the friends panel of the sidebar (friends, friend
// requests to accept, decline or cancel, direct messages with a friend).
// Builds on app.js (CF).
'use strict';

(() => {
  const {
    $, el, api, state, hideError, reportError, rememberUser, avatarEl, upsertRoom, openRoom,
  } = CF;

  // -------------------------------------------------------------- friends
  // Friendship is mutual: a request becomes a friendship when the other user
  // accepts it. Friends can add each other to rooms directly.
  async function loadFriends() {
    const [friends, incoming, outgoing] = await Promise.all([
      api('GET', '/friends'),
      api('GET', '/friends/requests?direction=incoming'),
      api('GET', '/friends/requests?direction=outgoing'),
    ]);
    state.friends = Array.isArray(friends) ? friends : [];
    for (const f of state.friends) rememberUser(f);
    state.friendRequests = [...(incoming.requests || []), ...(outgoing.requests || [])];
    renderFriends();
  }

  function renderFriends() {
    const who = (u) => u.display_name || u.username;
    const reqs = state.friendRequests.map((r) => {
      const incoming = r.direction === 'incoming';
      return el('li', { class: 'invitation', 'data-testid': 'friend-request', dataset: { userId: r.user.user_id, direction: r.direction } },
        el('div', { text: incoming ? `${who(r.user)} wants to be your friend` : `Request sent to ${who(r.user)}` }),
        el('div', { class: 'inv-actions' }, ...(incoming ? [
          el('button', { class: 'small', 'data-testid': 'friend-request-accept', text: 'Accept', onclick: () => answerFriendRequest(r, 'accept') }),
          el('button', { class: 'small ghost', 'data-testid': 'friend-request-decline', text: 'Decline', onclick: () => answerFriendRequest(r, 'decline') }),
        ] : [
          el('button', { class: 'small ghost', 'data-testid': 'friend-request-cancel', text: 'Cancel', onclick: () => answerFriendRequest(r, 'cancel') }),
        ])));
    });
    $('friend-request-list').replaceChildren(...reqs);
    $('friend-list').replaceChildren(...state.friends.map((f) => el('li', {
      class: 'friend', 'data-testid': 'friend', dataset: { userId: f.user_id },
    }, avatarEl(f.user_id, 'xs'), el('span', { class: 'friend-name', title: f.status_message || '', text: `${who(f)} (@${f.username})` },
      f.status_message ? el('span', { class: 'friend-status', 'data-testid': 'friend-status', text: f.status_message }) : null),
    el('button', { class: 'small ghost', 'data-testid': 'friend-dm', title: 'Direct message', text: 'Message', onclick: () => openDM(f.user_id) }))));
  }

  // openDM opens the one direct-message room with a user (created once).
  async function openDM(userId) {
    hideError();
    try {
      const room = await api('POST', '/dms', { user_id: userId });
      upsertRoom(room);
      await openRoom(room.room_id);
    } catch (e) {
      reportError(e);
    }
  }

  async function onAddFriend(ev) {
    ev.preventDefault();
    hideError();
    try {
      await api('POST', '/friends/requests', { username: $('add-friend-username').value.trim() });
      ev.target.reset();
      ev.target.hidden = true;
    } catch (e) {
      reportError(e);
    }
    await loadFriends().catch(reportError);
  }

  async function answerFriendRequest(r, verb) {
    hideError();
    const id = r.user.user_id;
    try {
      if (verb === 'cancel') await api('DELETE', `/friends/requests/${id}`);
      else await api('POST', `/friends/requests/${id}/${verb}`);
    } catch (e) {
      if (e.status !== 404) reportError(e); // 404: answered elsewhere
    }
    await loadFriends().catch(reportError);
  }

  CF.loadFriends = loadFriends;
  CF.openDM = openDM;
  CF.on('started', () => loadFriends().catch(reportError));
  CF.on('stopped', () => {
    state.friends = [];
    state.friendRequests = [];
    renderFriends();
  });
  CF.on('frame', (f) => {
    if (f.type === 'friend') loadFriends().catch(reportError);
    if (f.type === 'profile') {
      for (const fr of state.friends) {
        if (fr.user_id !== f.user_id) continue;
        if (f.display_name) fr.display_name = f.display_name;
        if (f.status_message !== undefined) fr.status_message = f.status_message;
      }
      renderFriends();
    }
  });
  document.addEventListener('DOMContentLoaded', () => {
    $('add-friend-toggle').addEventListener('click', () => {
      const f = $('add-friend-form');
      f.hidden = !f.hidden;
      if (!f.hidden) $('add-friend-username').focus();
    });
    $('add-friend-form').addEventListener('submit', onAddFriend);
  });
})();
