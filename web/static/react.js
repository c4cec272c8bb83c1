// chatflow web client: replies (a quote of the replied message) and
// reactions (chips under a message; a click toggles mine). Live reaction
// changes arrive as message frames of kind "reaction" and change their
// target in place. Builds on app.js (CF).
'use strict';

(() => {
  const { $, el, api, state } = CF;
  const EMOJIS = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
  let replyTo = null; // seq of the message the composer replies to

  const shown = (m) => m.kind !== 'system' && m.kind !== 'transfer';

  // ------------------------------------------------------------- replies
  function quoteText(seq) {
    const li = CF.findBySeq(seq);
    if (!li) return { who: '', text: `message #${seq}` };
    const who = li.querySelector('.sender')?.textContent || '';
    if (li.classList.contains('deleted')) return { who, text: 'deleted message', deleted: true };
    const body = li.dataset.body !== undefined && li.dataset.body !== '' ? li.dataset.body : li.querySelector('.body')?.textContent || '';
    return { who, text: body.slice(0, 140) };
  }

  function quoteEl(seq) {
    const q = quoteText(seq);
    return el('div', {
      class: `quote${q.deleted ? ' deleted' : ''}`, 'data-testid': 'reply-quote', dataset: { replyTo: String(seq) },
      onclick: (e) => {
        e.stopPropagation();
        const t = CF.findBySeq(seq);
        if (t) t.scrollIntoView({ block: 'center' });
      },
    }, q.who ? el('span', { class: 'quote-who', text: q.who }) : null, el('span', { class: 'quote-text', text: q.text }));
  }

  function startReply(li) {
    const seq = Number(li.dataset.seq);
    if (!seq) return;
    replyTo = seq;
    const q = quoteText(seq);
    $('reply-text').textContent = `Replying to ${q.who ? `${q.who}: ` : ''}${q.text}`;
    $('reply-bar').dataset.replyTo = String(seq);
    $('reply-bar').hidden = false;
    $('composer-input').focus();
  }

  function cancelReply() {
    replyTo = null;
    $('reply-bar').hidden = true;
  }

  // refreshQuotes updates the quotes of replies to seq (edited or deleted).
  function refreshQuotes(seq) {
    for (const q of CF.list().querySelectorAll(`.quote[data-reply-to="${seq}"]`)) q.replaceWith(quoteEl(seq));
  }

  // ----------------------------------------------------------- reactions
  // li.reactions: Map(emoji -> Set(user_id)), the message's current reactions.
  function setReactions(li, list) {
    li.reactions = new Map();
    for (const r of list || []) li.reactions.set(r.emoji, { count: r.count, users: new Set(r.user_ids || []) });
    renderReactions(li);
  }

  function renderReactions(li) {
    let box = li.querySelector('.reactions');
    if (!box) {
      box = el('div', { class: 'reactions', 'data-testid': 'reactions' });
      li.querySelector('.body').after(box);
    }
    const me = state.me && state.me.user_id;
    box.replaceChildren(...[...li.reactions].filter(([, r]) => r.count > 0).map(([emoji, r]) => el('button', {
      type: 'button',
      class: `chip${r.users.has(me) ? ' mine' : ''}`,
      'data-testid': 'reaction-chip',
      dataset: { emoji, count: String(r.count), mine: String(r.users.has(me)) },
      title: [...r.users].map(CF.nameOf).join(', '),
      text: `${emoji} ${r.count}`,
      onclick: (e) => {
        e.stopPropagation();
        react(li, emoji, !r.users.has(me));
      },
    })));
  }

  async function react(li, emoji, add) {
    const seq = Number(li.dataset.seq);
    const roomId = state.current;
    if (!seq || !roomId) return;
    try {
      const res = await api(add ? 'PUT' : 'DELETE', `/rooms/${roomId}/messages/${seq}/reactions/${encodeURIComponent(emoji)}`);
      if (res && Array.isArray(res.reactions) && state.current === roomId) {
        const target = CF.findBySeq(res.target_seq || seq);
        if (target) setReactions(target, res.reactions);
      }
    } catch (e) {
      CF.reportError(e);
    }
  }

  // a live reaction event: {target_seq, emoji, op} by m.sender_id
  CF.kinds.reaction = (m, live) => {
    if (!live || m.room_id !== state.current) return; // history already carries the totals
    let b;
    try { b = JSON.parse(m.body); } catch { return; }
    const li = CF.findBySeq(b.target_seq);
    if (!li) return;
    if (!li.reactions) li.reactions = new Map();
    const r = li.reactions.get(b.emoji) || { count: 0, users: new Set() };
    if (b.op === 'add' && !r.users.has(m.sender_id)) {
      r.users.add(m.sender_id);
      r.count += 1;
    } else if (b.op === 'remove' && r.users.has(m.sender_id)) {
      r.users.delete(m.sender_id);
      r.count = Math.max(0, r.count - 1);
    }
    li.reactions.set(b.emoji, r);
    renderReactions(li);
  };

  function picker(li) {
    const old = li.querySelector('.picker');
    if (old) {
      old.remove();
      return;
    }
    li.append(el('div', { class: 'picker', 'data-testid': 'reaction-picker' }, ...EMOJIS.map((e) => el('button', {
      type: 'button', class: 'ghost', 'data-testid': 'react-pick', dataset: { emoji: e }, text: e,
      onclick: (ev) => {
        ev.stopPropagation();
        li.querySelector('.picker')?.remove();
        const r = li.reactions && li.reactions.get(e);
        react(li, e, !(r && r.users.has(state.me.user_id)));
      },
    }))));
  }

  // ------------------------------------------------------------- wiring
  CF.on('message', (li, m) => {
    if (!shown(m)) return;
    if (m.reply_to) li.querySelector('.body').before(quoteEl(m.reply_to));
    if (Array.isArray(m.reactions) && m.reactions.length) setReactions(li, m.reactions);
    li.append(el('div', { class: 'msg-tools' },
      el('button', { type: 'button', class: 'msg-action', 'data-testid': 'msg-reply', text: 'reply', onclick: (e) => { e.stopPropagation(); startReply(li); } }),
      el('button', { type: 'button', class: 'msg-action', 'data-testid': 'msg-react', text: 'react', onclick: (e) => { e.stopPropagation(); picker(li); } })));
  });
  CF.on('send', (frame) => {
    if (replyTo) frame.reply_to = replyTo;
    cancelReply();
  });
  CF.on('room-opened', cancelReply);
  // edits and deletes change what quotes of their target show
  CF.on('frame', (f) => {
    if (f.type !== 'message' || (f.kind !== 'edit' && f.kind !== 'delete') || f.room_id !== state.current) return;
    try { refreshQuotes(JSON.parse(f.body).target_seq); } catch { /* not an edit body */ }
  });
  document.addEventListener('DOMContentLoaded', () => {
    $('reply-cancel').addEventListener('click', cancelReply);
    // a tap on a message shows its tools (there is no hover on a phone)
    $('message-list').addEventListener('click', (e) => {
      const li = e.target.closest('li.msg');
      if (!li || e.target.closest('button, a, img')) return;
      for (const o of CF.list().querySelectorAll('li.msg.open')) if (o !== li) o.classList.remove('open');
      li.classList.toggle('open');
    });
  });
})();
