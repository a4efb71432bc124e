import { t, formatDateTime } from '../i18n.js';
import { h, field, showError, clearErrors, busy, errorText, formValues, badge } from '../ui.js';
import { every, pageHeader, messageArea } from './common.js';

const STATES = ['disabled', 'registering', 'registered', 'failing'];

function statusPanel(st) {
  const state = STATES.includes(st.state) ? st.state : 'failing';
  const rows = [
    [t('trunk.registration'), badge(state, t(`trunk.state.${state}`))],
    [t('trunk.reason'), st.reason || '–'],
    [t('trunk.since'), formatDateTime(st.since)],
    [t('trunk.activeTarget'), st.activeTarget || '–'],
    [t('trunk.grantedExpires'), st.grantedExpires ? t('users.seconds', { n: st.grantedExpires }) : '–'],
    [t('trunk.lastError'), st.lastError ? `${st.lastError} (${formatDateTime(st.lastErrorMs)})` : t('trunk.noError')],
  ];
  return h('dl', { class: 'facts', 'data-testid': 'trunk-status', 'data-state': state },
    rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function didsText(dids) { return (dids || []).map((d) => `${d.did} = ${d.target}`).join('\n'); }
function parseDids(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const i = l.indexOf('=');
    return i < 0 ? { did: l, target: '' } : { did: l.slice(0, i).trim(), target: l.slice(i + 1).trim() };
  });
}

function settingsForm(s, api, onSaved) {
  const opt = (list, prefix) => list.map((v) => [v, t(`${prefix}.${v}`)]);
  const submit = h('button', { type: 'submit', class: 'primary' }, t('common.save'));
  const form = h('form', { class: 'editor', 'aria-labelledby': 'trunk-form-title', novalidate: true, 'data-testid': 'trunk-form' },
    h('h2', { id: 'trunk-form-title' }, t('trunk.settings')),
    h('div', { class: 'grid' },
      field({ name: 'enabled', label: t('trunk.enabled'), kind: 'checkbox', value: s.enabled }),
      field({ name: 'mode', label: t('trunk.mode'), kind: 'select', value: s.mode, options: opt(['register', 'ip'], 'trunk.modes') }),
      field({ name: 'registrar', label: t('trunk.registrar'), value: s.registrar, hint: t('trunk.registrarHint') }),
      field({ name: 'domain', label: t('trunk.domain'), value: s.domain }),
      field({ name: 'username', label: t('trunk.username'), value: s.username }),
      field({ name: 'authUser', label: t('trunk.authUser'), value: s.authUser }),
      field({ name: 'password', label: t('trunk.password'), kind: 'password', autocomplete: 'new-password', hint: s.passwordSet ? t('trunk.passwordKeep') : '' }),
      field({ name: 'outboundProxy', label: t('trunk.outboundProxy'), value: s.outboundProxy }),
      field({ name: 'transport', label: t('trunk.transport'), kind: 'select', value: s.transport, options: opt(['auto', 'udp', 'tcp', 'tls'], 'trunk.transports') }),
      field({ name: 'expiry', label: t('trunk.expiry'), kind: 'number', value: s.expiry, attrs: { min: 60, step: 1 } }),
      field({ name: 'defaultTarget', label: t('trunk.defaultTarget'), value: s.defaultTarget }),
      field({ name: 'dialPrefix', label: t('trunk.dialPrefix'), value: s.dialPrefix }),
      field({ name: 'outboundPattern', label: t('trunk.outboundPattern'), value: s.outboundPattern }),
      field({ name: 'callerIdMode', label: t('trunk.callerIdMode'), kind: 'select', value: s.callerIdMode, options: opt(['from-and-pai', 'pai-only', 'trunk-number'], 'trunk.callerIdModes') }),
      field({ name: 'defaultCallerId', label: t('trunk.defaultCallerId'), value: s.defaultCallerId }),
      field({ name: 'dids', label: t('trunk.dids'), kind: 'textarea', value: didsText(s.dids), hint: t('trunk.didsHint') }),
      field({ name: 'trustedAddresses', label: t('trunk.trustedAddresses'), kind: 'textarea', value: (s.trustedAddresses || []).join('\n'), hint: t('trunk.trustedHint') })),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const v = formValues(form);
    const expiry = Number(v.expiry);
    if (!Number.isInteger(expiry)) {
      showError(form, { field: 'expiry', status: 400, message: t('trunk.expiryNumber'), detail: t('trunk.expiryNumber') });
      return;
    }
    const body = {
      enabled: v.enabled, mode: v.mode, registrar: v.registrar.trim(), domain: v.domain.trim(),
      username: v.username.trim(), authUser: v.authUser.trim(), password: v.password ? v.password : null,
      outboundProxy: v.outboundProxy.trim(), transport: v.transport, expiry,
      defaultTarget: v.defaultTarget.trim(), dialPrefix: v.dialPrefix.trim(), outboundPattern: v.outboundPattern.trim(),
      callerIdMode: v.callerIdMode, defaultCallerId: v.defaultCallerId.trim(),
      dids: parseDids(v.dids), trustedAddresses: v.trustedAddresses.split('\n').map((x) => x.trim()).filter(Boolean),
    };
    try {
      const saved = await busy(submit, () => api.put('/api/v1/trunk', body));
      form.elements.password.value = '';
      onSaved(saved);
    } catch (e) {
      if (e.status !== 401) showError(form, e);
    }
  });
  return form;
}

export default {
  id: 'trunk',
  titleKey: 'nav.trunk',
  async render(main, { api }) {
    const msgs = messageArea();
    const status = h('section', { class: 'panel', 'aria-labelledby': 'trunk-status-title' }, h('h2', { id: 'trunk-status-title' }, t('trunk.status')));
    const slot = h('div', {});
    status.append(slot);
    const formSlot = h('div', {});
    main.append(pageHeader(t('nav.trunk')), msgs, status, formSlot);
    const data = await api.get('/api/v1/trunk');
    slot.replaceChildren(statusPanel(data.status));
    formSlot.replaceChildren(settingsForm(data.settings, api, (saved) => {
      msgs.show('success', t('trunk.saved'));
      slot.replaceChildren(statusPanel(saved.status));
    }));
    return every(2000, async () => {
      try {
        const d = await api.get('/api/v1/trunk');
        slot.replaceChildren(statusPanel(d.status));
      } catch (e) { if (e.status !== 401) msgs.show('error', errorText(e)); throw e; }
    });
  },
};
