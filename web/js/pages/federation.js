// "Anlagenverbund" / Federation: create, certificate file, join, members, conflicts, leave,
// remove. The node does all the work (docs/federation-api.md); errors carry a `reason` that
// the UI shows in plain words (reason.* keys).
import { t, formatDateTime } from '../i18n.js';
import { h, field, table, showError, clearErrors, busy, confirmDialog, errorText, download, badge } from '../ui.js';
import { every, pageHeader, messageArea } from './common.js';

const MEMBER_STATES = ['self', 'connecting', 'up', 'down', 'incompatible', 'revoked'];

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsText(file);
  });
}

function filenameOf(res) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  return m ? m[1] : 'verbund-federation.pem';
}

function passphraseFields(prefix) {
  return [
    field({ name: 'passphrase', label: t('federation.passphrase'), kind: 'password', required: true, autocomplete: 'new-password', hint: t('federation.passphraseHint'), attrs: { 'data-testid': `${prefix}-passphrase` } }),
    field({ name: 'passphrase2', label: t('federation.passphraseRepeat'), kind: 'password', required: true, autocomplete: 'new-password', attrs: { 'data-testid': `${prefix}-passphrase2` } }),
  ];
}

function localError(form, name, key) {
  showError(form, { field: name, status: 400, message: t(key), detail: t(key) });
}

export default {
  id: 'federation',
  titleKey: 'nav.federation',
  async render(main, { api }) {
    const msgs = messageArea();
    const body = h('div', {});
    main.append(pageHeader(t('nav.federation')), h('p', { class: 'intro' }, t('federation.intro')), msgs, body);
    let view = null; // 'none' | 'member'
    let stopPoll = null;

    const fail = (form) => (e) => {
      if (e.status === 401) return;
      if (form && (e.field || e.reason === 'wrong-passphrase' || e.reason === 'weak-passphrase' || e.reason === 'corrupt' || e.reason === 'other-federation')) {
        const aliases = { bundle: 'file', 'wrong-passphrase': 'passphrase', 'weak-passphrase': 'passphrase', corrupt: 'file', 'other-federation': 'file' };
        const f = e.field && form.querySelector(`.field[data-field="${e.field}"]`) ? e.field : (aliases[e.field] || aliases[e.reason]);
        showError(form, Object.assign(e, { field: f }));
      } else if (form) {
        showError(form, Object.assign(e, { field: '' }));
      } else {
        msgs.show('error', errorText(e));
      }
    };

    function notMember() {
      view = 'none';
      const createBtn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'federation-create' }, t('federation.create'));
      const create = h('form', { class: 'editor', 'aria-labelledby': 'fed-create-title', novalidate: true, 'data-testid': 'federation-create-form' },
        h('h2', { id: 'fed-create-title' }, t('federation.createTitle')),
        h('p', {}, t('federation.createText')),
        field({ name: 'name', label: t('federation.name'), required: true }),
        h('div', { class: 'actions' }, createBtn));
      create.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(create);
        const name = create.elements.name.value.trim();
        if (!name) return localError(create, 'name', 'federation.nameRequired');
        try {
          const doc = await busy(createBtn, () => api.post('/api/v1/federation', { name }));
          msgs.show('success', t('federation.created', { name: doc.name || name }));
          member(doc, true);
        } catch (e) { fail(create)(e); }
      });

      const joinBtn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'federation-join' }, t('federation.join'));
      const join = h('form', { class: 'editor', 'aria-labelledby': 'fed-join-title', novalidate: true, 'data-testid': 'federation-join-form' },
        h('h2', { id: 'fed-join-title' }, t('federation.joinTitle')),
        h('p', {}, t('federation.joinText')),
        field({ name: 'file', label: t('federation.file'), kind: 'file', required: true, attrs: { accept: '.pem,application/x-pem-file,text/plain' } }),
        field({ name: 'passphrase', label: t('federation.passphrase'), kind: 'password', required: true, autocomplete: 'off' }),
        h('div', { class: 'actions' }, joinBtn));
      join.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(join);
        const file = join.elements.file.files[0];
        const passphrase = join.elements.passphrase.value;
        if (!file) return localError(join, 'file', 'federation.fileRequired');
        if (!passphrase) return localError(join, 'passphrase', 'federation.passphraseRequired');
        try {
          const doc = await busy(joinBtn, async () => {
            const bundle = await readFile(file);
            return api.post('/api/v1/federation/join', { bundle, passphrase });
          });
          msgs.show('success', t('federation.joined', { name: doc.name || '' }));
          member(doc, false);
        } catch (e) { fail(join)(e); }
      });
      body.replaceChildren(h('div', { class: 'two-col' }, create, join));
    }

    function membersTable(doc) {
      const rows = (doc.members || []).map((m) => {
        const state = MEMBER_STATES.includes(m.state) ? m.state : 'down';
        const self = m.self || state === 'self';
        const addr = [...(m.controlAddresses || []), m.sipAddress].filter(Boolean).join(', ');
        return h('tr', { 'data-node': m.nodeId, 'data-name': m.name, 'data-state': state },
          h('td', {}, m.name, self ? h('span', { class: 'muted' }, ` (${t('federation.thisNode')})`) : null),
          h('td', { class: 'mono' }, addr || '–'),
          h('td', {}, badge(state, t(`federation.state.${state}`)), m.lastError ? h('div', { class: 'muted small' }, m.lastError) : null),
          h('td', {}, m.productVersion ? `${m.productVersion}${m.protocolVersion ? ` (${t('federation.protocol', { v: m.protocolVersion })})` : ''}` : '–'),
          h('td', {}, typeof m.rttMs === 'number' && !self ? `${Math.round(m.rttMs)} ms` : '–'),
          h('td', {}, formatDateTime(m.sinceMs)),
          h('td', { class: 'row-actions' }, self ? null : h('button', {
            type: 'button', class: 'danger', 'aria-label': t('federation.removeLabel', { name: m.name }),
            onclick: () => removeMember(m),
          }, t('federation.remove'))));
      });
      return table([t('federation.memberName'), t('federation.address'), t('federation.memberState'), t('federation.version'), t('federation.rtt'), t('federation.since'), t('common.actions')],
        rows, { caption: t('federation.members'), empty: t('federation.noMembers') });
    }

    function conflictsTable(doc) {
      const list = doc.conflicts || [];
      return table([t('federation.number'), t('federation.usedBy')],
        list.map((c) => h('tr', {}, h('td', {}, c.number),
          h('td', {}, (c.uses || []).map((u) => `${u.nodeName || u.nodeId}: ${t(`federation.kind.${u.kind === 'group' ? 'group' : 'user'}`)} ${u.name || ''}`).join('; ')))),
        { caption: t('federation.conflicts'), empty: t('federation.noConflicts') });
    }

    async function removeMember(m) {
      const ok = await confirmDialog({ title: t('federation.removeTitle'), text: t('federation.removeText', { name: m.name }), confirm: t('federation.remove') });
      if (!ok) return;
      try {
        await api.del(`/api/v1/federation/members/${encodeURIComponent(m.nodeId)}`);
        msgs.show('success', t('federation.removed', { name: m.name }));
        refresh();
      } catch (e) { fail(null)(e); }
    }

    async function leave(doc) {
      const ok = await confirmDialog({ title: t('federation.leaveTitle'), text: t('federation.leaveText', { name: doc.name }), confirm: t('federation.leave') });
      if (!ok) return;
      try {
        await api.del('/api/v1/federation');
        msgs.show('success', t('federation.left', { name: doc.name }));
        if (stopPoll) stopPoll();
        notMember();
      } catch (e) { fail(null)(e); }
    }

    let membersSlot, conflictsSlot, fallbackSlot;
    function member(doc, justCreated) {
      view = 'member';
      membersSlot = h('div', { 'data-testid': 'federation-members' });
      conflictsSlot = h('div', {});
      fallbackSlot = h('p', { class: 'muted' });
      const certBtn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'federation-certificate' }, t('federation.certificate'));
      const cert = h('form', { class: 'editor', 'aria-labelledby': 'fed-cert-title', novalidate: true, 'data-testid': 'federation-certificate-form' },
        h('h2', { id: 'fed-cert-title' }, t('federation.certificateTitle')),
        h('p', {}, t('federation.certificateText')),
        h('div', { class: 'grid' }, passphraseFields('cert')),
        h('div', { class: 'actions' }, certBtn));
      cert.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(cert);
        const p1 = cert.elements.passphrase.value, p2 = cert.elements.passphrase2.value;
        if (!p1) return localError(cert, 'passphrase', 'federation.passphraseRequired');
        if (p1 !== p2) return localError(cert, 'passphrase2', 'federation.passphraseMismatch');
        try {
          const res = await busy(certBtn, () => api.request('POST', '/api/v1/federation/certificate', { passphrase: p1 }, { raw: true }));
          const text = await res.text();
          download(filenameOf(res), text);
          cert.reset();
          msgs.show('success', t('federation.certificateDone'));
        } catch (e) { fail(cert)(e); }
      });
      const leaveBtn = h('button', { type: 'button', class: 'danger', 'data-testid': 'federation-leave', onclick: () => leave(doc) }, t('federation.leave'));
      body.replaceChildren(
        h('section', { class: 'panel', 'aria-labelledby': 'fed-overview' },
          h('h2', { id: 'fed-overview' }, t('federation.overview')),
          h('dl', { class: 'facts' },
            h('dt', {}, t('federation.name')), h('dd', { 'data-testid': 'federation-name' }, doc.name),
            h('dt', {}, t('federation.id')), h('dd', { class: 'mono' }, doc.federationId || '–'),
            h('dt', {}, t('federation.thisNode')), h('dd', {}, (doc.self && doc.self.name) || '–')),
          fallbackSlot),
        h('section', { 'aria-labelledby': 'fed-members' }, h('h2', { id: 'fed-members' }, t('federation.members')), membersSlot),
        h('section', { 'aria-labelledby': 'fed-conflicts' }, h('h2', { id: 'fed-conflicts' }, t('federation.conflicts')), conflictsSlot),
        cert,
        h('section', { class: 'panel danger-zone', 'aria-labelledby': 'fed-leave' },
          h('h2', { id: 'fed-leave' }, t('federation.leaveTitle')), h('p', {}, t('federation.leaveHint')), leaveBtn));
      fill(doc);
      if (justCreated) cert.elements.passphrase.focus();
      if (stopPoll) stopPoll();
      stopPoll = every(2000, refresh);
    }

    function fill(doc) {
      membersSlot.replaceChildren(membersTable(doc));
      conflictsSlot.replaceChildren(conflictsTable(doc));
      const fb = doc.fallback && doc.fallback.total;
      fallbackSlot.textContent = fb ? t('federation.fallback', { n: fb }) : '';
    }

    async function refresh() {
      const doc = await api.getOptional('/api/v1/federation');
      if (!doc) return;
      if (doc.member && view === 'member') fill(doc);
      else if (doc.member) member(doc, false);
      else if (view !== 'none') { if (stopPoll) stopPoll(); notMember(); }
    }

    const doc = await api.getOptional('/api/v1/federation');
    if (!doc) {
      body.replaceChildren(h('p', { class: 'notice notice-info', role: 'status' }, t('federation.unavailable')));
      return undefined;
    }
    if (doc.member) member(doc, false); else notMember();
    return () => { if (stopPoll) stopPoll(); };
  },
};
