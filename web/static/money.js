// chatflow web client: balance, deposits/withdrawals and transfers to a
// member of the open room (run by the transfer saga; its message appears
// in the room). Builds on app.js (CF) and profile.js (panels).
'use strict';

(() => {
  const { $, el, api, state } = CF;
  const fmt = (n) => Number(n).toLocaleString();

  function showBalance(b) {
    if (!state.me || typeof b !== 'number') return;
    state.me.balance = b;
    $('wallet-balance').textContent = fmt(b);
    $('wallet-balance').dataset.balance = String(b);
    $('top-balance').textContent = ` ${fmt(b)}`;
  }

  async function refreshBalance() {
    const me = await api('GET', '/me');
    if (me.account) showBalance(me.account.balance);
  }

  const kindText = {
    deposit: 'Deposit', withdrawal: 'Withdrawal', transfer_out: 'Sent to', transfer_in: 'Received from', transfer_refund: 'Refund',
  };

  async function loadTransactions() {
    const page = await api('GET', '/me/account/transactions?limit=20');
    const txs = page.transactions || [];
    $('transactions').replaceChildren(...txs.map((t) => el('li', { class: 'tx', 'data-testid': 'transaction', dataset: { kind: t.kind, amount: String(t.amount) } },
      el('span', { class: 'tx-what', text: `${kindText[t.kind] || t.kind}${t.counterparty ? ` @${t.counterparty.username}` : ''}${t.memo ? ` — ${t.memo}` : ''}` }),
      el('span', { class: `tx-amount ${t.amount < 0 ? 'neg' : 'pos'}`, text: `${t.amount > 0 ? '+' : ''}${fmt(t.amount)}` }),
      el('span', { class: 'tx-after muted', text: `= ${fmt(t.balance_after)}` }))));
    if (!txs.length) $('transactions').append(el('li', { class: 'muted', text: 'No transactions yet' }));
  }

  async function openWallet() {
    CF.openPanel('wallet');
    try {
      await Promise.all([refreshBalance(), loadTransactions()]);
    } catch (e) {
      CF.reportError(e);
    }
  }

  async function move(kind) {
    const amount = Number($('deposit-amount').value);
    if (!Number.isInteger(amount) || amount <= 0) {
      CF.showError('Enter a whole amount above 0', 'validation_failed');
      return;
    }
    try {
      const t = await api('POST', `/me/account/${kind}`, { amount, idempotency_key: CF.uuid() });
      showBalance(t.balance_after);
      $('deposit-amount').value = '';
      await loadTransactions();
    } catch (e) {
      CF.reportError(e);
    }
  }

  // ----------------------------------------------------------- transfers
  function fillRecipients() {
    const room = state.rooms.get(state.current);
    if (!room) return;
    const others = [...room.members.keys()].filter((id) => id !== state.me.user_id);
    $('transfer-to').replaceChildren(...others.map((id) => el('option', { value: id, text: CF.nameOf(id) })));
    $('transfer-submit').disabled = !others.length;
  }

  async function onTransfer(ev) {
    ev.preventDefault();
    const roomId = state.current;
    const status = $('transfer-status');
    const btn = $('transfer-submit');
    btn.disabled = true;
    status.dataset.status = 'pending';
    status.textContent = 'Sending…';
    try {
      let t = await api('POST', `/rooms/${roomId}/transfers`, {
        to_user_id: $('transfer-to').value,
        amount: Number($('transfer-amount').value),
        memo: $('transfer-memo').value.trim(),
        idempotency_key: CF.uuid(),
      });
      while (t.status === 'pending') t = await api('GET', `/transfers/${t.transfer_id}?wait=10s`);
      status.dataset.status = t.status;
      if (t.status === 'completed') {
        status.textContent = `Sent ${fmt(t.amount)} to ${CF.nameOf(t.to_user_id)}`;
        ev.target.reset();
        fillRecipients();
      } else {
        status.textContent = `Transfer ${t.status}: ${t.error || ''} (${t.error_code || t.status})`;
      }
      await refreshBalance();
    } catch (e) {
      status.dataset.status = 'error';
      status.textContent = CF.problem(e);
      CF.reportError(e);
    } finally {
      btn.disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('wallet-open').addEventListener('click', openWallet);
    $('deposit-form').addEventListener('submit', (e) => {
      e.preventDefault();
      move('deposits');
    });
    $('withdraw-submit').addEventListener('click', () => move('withdrawals'));
    $('transfer-toggle').addEventListener('click', () => {
      const f = $('transfer-form');
      f.hidden = !f.hidden;
      if (!f.hidden) {
        fillRecipients();
        $('transfer-status').textContent = '';
        $('transfer-amount').focus();
      }
    });
    $('transfer-form').addEventListener('submit', onTransfer);
  });
  CF.on('started', (me) => showBalance(me.balance));
  CF.on('room-opened', () => {
    $('transfer-form').hidden = true;
  });
  CF.on('room-detail', () => {
    if (!$('transfer-form').hidden) fillRecipients();
  });
  // a transfer to or from me moves my balance
  CF.on('frame', (f) => {
    if (f.type !== 'message' || f.kind !== 'transfer' || !state.me) return;
    try {
      const b = JSON.parse(f.body);
      if (b.to_user_id === state.me.user_id || b.from_user_id === state.me.user_id) refreshBalance().catch(() => {});
    } catch { /* not a transfer body */ }
  });
})();
