// chatflow web client: the overlay panels, and the profile panel (display
// name, status, picture, password, account deletion). Builds on app.js (CF).
'use strict';

(() => {
  const { $, el, api, state } = CF;

  // ------------------------------------------------------------- panels
  // One panel at a time shows over the chat (full screen on a phone).
  function openPanel(name) {
    for (const p of document.querySelectorAll('#overlay .panel')) p.hidden = p.id !== `${name}-panel`;
    $('overlay').hidden = false;
    CF.emit('panel', name);
  }
  function closePanel() {
    $('overlay').hidden = true;
    for (const p of document.querySelectorAll('#overlay .panel')) p.hidden = true;
  }
  CF.openPanel = openPanel;
  CF.closePanel = closePanel;

  // result shows an outcome next to a form: ok, or the api's problem.
  function result(id, ok, text) {
    const r = $(id);
    r.textContent = text;
    r.className = `result ${ok ? 'ok' : 'err'}`;
    r.dataset.ok = String(ok);
  }
  CF.result = result;
  const problem = (e) => (e.code ? `${e.message} (${e.code})` : e.message || String(e));
  CF.problem = problem;

  // ------------------------------------------------------------ profile
  function fillProfile() {
    const me = state.me;
    if (!me) return;
    $('profile-display-name').value = me.display_name || '';
    $('profile-status').value = me.status_message || '';
    $('profile-avatar').replaceChildren(CF.avatarEl(me.user_id, 'lg'));
    $('avatar-remove').hidden = !me.avatar_url;
    for (const id of ['profile-result', 'password-result', 'delete-result', 'avatar-status']) $(id).textContent = '';
  }

  function applyMe(u) {
    const me = state.me;
    if (!me || !u) return;
    if (u.display_name) me.display_name = u.display_name;
    if (u.status_message !== undefined) me.status_message = u.status_message;
    me.avatar_url = u.avatar_url || '';
    if (u.account) me.balance = u.account.balance;
    CF.rememberUser({ ...u, user_id: me.user_id, username: me.username, avatar_url: me.avatar_url });
    CF.renderWhoami();
    CF.renderMembers();
  }

  async function onSaveProfile(ev) {
    ev.preventDefault();
    const btn = $('profile-save');
    btn.disabled = true;
    try {
      const u = await api('PATCH', '/me', {
        display_name: $('profile-display-name').value.trim(),
        status_message: $('profile-status').value.trim(),
      });
      applyMe({ ...u, avatar_url: 'avatar_url' in u ? u.avatar_url : state.me.avatar_url });
      result('profile-result', true, 'Saved');
    } catch (e) {
      result('profile-result', false, problem(e));
    } finally {
      btn.disabled = false;
    }
  }

  async function onChangePassword(ev) {
    ev.preventDefault();
    const btn = $('password-submit');
    btn.disabled = true;
    try {
      await api('POST', '/me/password', {
        current_password: $('password-current').value,
        new_password: $('password-new').value,
      });
      ev.target.reset();
      result('password-result', true, 'Password changed. Your other sessions were logged out.');
    } catch (e) {
      result('password-result', false, problem(e));
    } finally {
      btn.disabled = false;
    }
  }

  // ------------------------------------------------------------- avatar
  // The picture goes straight to the object store with a pre-signed PUT,
  // then becomes the avatar with PUT /me/avatar.
  async function onAvatarChosen() {
    const input = $('avatar-input');
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    $('avatar-status').textContent = 'Uploading…';
    try {
      const up = await api('POST', '/me/avatar/uploads', { content_type: file.type || 'application/octet-stream', size: file.size });
      const res = await fetch(up.url, { method: up.method || 'PUT', headers: up.headers, body: file });
      if (!res.ok) throw new Error(`upload refused by the store (${res.status})`);
      const u = await api('PUT', '/me/avatar', { upload_id: up.upload_id });
      applyMe(u && u.avatar_url ? { ...state.me, ...u } : await api('GET', '/me'));
      fillProfile();
      result('avatar-status', true, state.me.avatar_url ? 'Picture saved' : 'Saved, but the server shows no picture');
    } catch (e) {
      result('avatar-status', false, problem(e));
    }
  }

  async function onAvatarRemove() {
    try {
      await api('DELETE', '/me/avatar');
      applyMe({ ...(await api('GET', '/me')) });
      fillProfile();
      result('avatar-status', true, 'Picture removed');
    } catch (e) {
      result('avatar-status', false, problem(e));
    }
  }

  // ----------------------------------------------------------- deletion
  // DELETE /me starts the deletion saga; its status needs no token (the
  // saga revokes ours), so it is polled without one until it ends.
  let deleting = false;

  async function onDelete(ev) {
    ev.preventDefault();
    if (!window.confirm('Delete your account for good?')) return;
    const btn = $('delete-submit');
    btn.disabled = true;
    // Set before the request: the saga revokes this session first, and the
    // socket's `revoked` frame (which stops the chat and closes panels unless
    // a deletion is under way) may arrive before the 202 does.
    deleting = true;
    try {
      const started = await api('DELETE', '/me', { password: $('delete-password').value });
      $('delete-progress').hidden = false;
      $('delete-steps').replaceChildren();
      setDeleteStatus({ status: started.status || 'running', step: '' });
      const final = await pollDeletion(started.deletion_id);
      if (final.status === 'completed') {
        CF.tokens.clear();
        if (!state.stopped) CF.stopChat();
        CF.showAuth();
        CF.showNotice('Your account was deleted.');
        // the panel stays up showing the finished saga until closed
        result('delete-result', true, 'Account deleted; you are logged out.');
      } else {
        result('delete-result', false, `Deletion failed: ${final.error || final.error_code || 'a step failed'}${final.error_code ? ` (${final.error_code})` : ''}`);
      }
    } catch (e) {
      result('delete-result', false, problem(e));
      CF.reportError(e);
    } finally {
      deleting = false;
      btn.disabled = false;
    }
  }

  // The deletion saga's steps in order (the Deletion schema's step enum):
  // the status names the step running or the one it ended at.
  const DELETE_STEPS = ['auth.revoke_sessions', 'chat.leave_rooms', 'chat.remove_friendships',
    'customer.close_account', 'chat.anonymize_profile', 'kafka.user_deleted', 'auth.delete_credentials'];

  function setDeleteStatus(d) {
    const s = $('delete-status');
    s.textContent = d.status;
    s.className = `status ${d.status}`;
    $('delete-progress').dataset.status = d.status;
    const steps = $('delete-steps');
    if (!steps.children.length) {
      steps.append(...DELETE_STEPS.map((name) => el('li', { 'data-testid': 'delete-step', dataset: { stepName: name } },
        el('span', { class: 'step-name', text: name }), el('span', { class: 'step-status' }))));
    }
    const at = d.status === 'completed' ? DELETE_STEPS.length : DELETE_STEPS.indexOf(d.step);
    [...steps.children].forEach((li, i) => {
      if (i < at) setStep(li, 'completed');
      else if (i === at) setStep(li, d.status === 'running' ? 'running' : d.status);
      else setStep(li, 'pending');
    });
  }

  function setStep(li, status) {
    li.dataset.status = status;
    li.className = `step ${status}`;
    li.querySelector('.step-status').textContent = status;
  }

  async function pollDeletion(id) {
    let failures = 0;
    for (;;) {
      let d;
      try {
        d = await api('GET', `/deletions/${encodeURIComponent(id)}?wait=10s`, undefined, { auth: false });
        failures = 0;
      } catch (e) {
        if (++failures > 15 || (e instanceof CF.ApiError && e.status < 500)) throw e;
        await CF.sleep(500);
        continue;
      }
      setDeleteStatus(d);
      if (d.status === 'completed' || d.status === 'failed') return d;
    }
  }

  // ---------------------------------------------------------------- wire
  document.addEventListener('DOMContentLoaded', () => {
    $('overlay').addEventListener('click', (e) => {
      if (e.target === $('overlay') || e.target.closest('[data-close]')) closePanel();
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('overlay').hidden) closePanel();
    });
    $('whoami').addEventListener('click', () => {
      fillProfile();
      openPanel('profile');
    });
    $('profile-form').addEventListener('submit', onSaveProfile);
    $('password-form').addEventListener('submit', onChangePassword);
    $('delete-form').addEventListener('submit', onDelete);
    $('avatar-upload').addEventListener('click', () => $('avatar-input').click());
    $('avatar-input').addEventListener('change', onAvatarChosen);
    $('avatar-remove').addEventListener('click', onAvatarRemove);
  });
  CF.on('stopped', () => {
    if (!deleting) closePanel();
  });
})();
