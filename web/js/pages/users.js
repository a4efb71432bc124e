import { t, language } from '../i18n.js';
import { h, field, table, showError, clearErrors, busy, confirmDialog, errorText, formValues } from '../ui.js';
import { pageHeader, messageArea, conflictWarnings } from './common.js';

function userForm(user, onSaved, onCancel, api) {
  const editing = !!user;
  const u = user || { extension: '', displayName: '', externalNumber: '', sipUser: '', language: language(), shared: true };
  const submit = h('button', { type: 'submit', class: 'primary' }, editing ? t('common.save') : t('users.create'));
  const form = h('form', { class: 'editor', 'aria-labelledby': 'user-form-title', novalidate: true, 'data-testid': 'user-form' },
    h('h2', { id: 'user-form-title' }, editing ? t('users.editTitle', { ext: u.extension }) : t('users.createTitle')),
    h('div', { class: 'grid' },
      field({ name: 'extension', label: t('users.extension'), value: u.extension, required: true, hint: t('users.extensionHint'), attrs: { inputmode: 'numeric' } }),
      field({ name: 'displayName', label: t('users.displayName'), value: u.displayName, required: true }),
      field({ name: 'externalNumber', label: t('users.externalNumber'), value: u.externalNumber, hint: t('users.externalNumberHint') }),
      field({ name: 'sipUser', label: t('users.sipUser'), value: u.sipUser, hint: t('users.sipUserHint') }),
      field({ name: 'sipPassword', label: t('users.sipPassword'), kind: 'password', required: !editing, autocomplete: 'new-password', hint: editing ? t('users.sipPasswordKeep') : t('users.sipPasswordHint') }),
      field({ name: 'language', label: t('users.language'), kind: 'select', value: u.language, options: [['de', t('lang.de')], ['en', t('lang.en')]] }),
      field({ name: 'shared', label: t('users.shared'), kind: 'checkbox', value: u.shared })),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: onCancel }, t('common.cancel')), submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const v = formValues(form);
    const body = { extension: v.extension.trim(), displayName: v.displayName.trim(), externalNumber: v.externalNumber.trim(), language: v.language, shared: v.shared };
    const sipUser = v.sipUser.trim();
    if (sipUser && (!editing || sipUser !== u.sipUser)) body.sipUser = sipUser;
    if (v.sipPassword) body.sipPassword = v.sipPassword;
    try {
      const saved = await busy(submit, () => (editing ? api.patch(`/api/v1/users/${u.id}`, body) : api.post('/api/v1/users', body)));
      onSaved(saved, editing);
    } catch (e) {
      if (e.status !== 401) showError(form, e);
    }
  });
  return form;
}

function devicesOf(user, regs) {
  const mine = regs.filter((r) => r.sipUser === user.sipUser);
  return h('section', { class: 'devices', 'aria-label': t('users.devicesOf', { name: user.displayName }) },
    h('h3', {}, t('users.devicesOf', { name: user.displayName })),
    table([t('users.contact'), t('users.transport'), t('users.source'), t('users.userAgent'), t('users.expires')],
      mine.map((r) => h('tr', {}, h('td', { class: 'mono' }, r.contact), h('td', {}, r.transport.toUpperCase()), h('td', { class: 'mono' }, r.source), h('td', {}, r.userAgent || '–'), h('td', {}, t('users.seconds', { n: r.expiresInSeconds })))),
      { empty: t('users.noDevices') }));
}

export default {
  id: 'users',
  titleKey: 'nav.users',
  async render(main, { api }) {
    const msgs = messageArea();
    const editor = h('div', { class: 'editor-slot' });
    const list = h('div', { class: 'list' });
    const search = h('input', { type: 'search', id: 'user-search', name: 'q', autocomplete: 'off' });
    const searchForm = h('form', { role: 'search', class: 'search', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', { for: 'user-search' }, t('users.search')), search,
      h('button', { type: 'submit', class: 'secondary' }, t('common.search')));
    let timer = null;
    search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 250); });
    const createBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'user-new', onclick: () => edit(null) }, t('users.new'));
    main.append(pageHeader(t('nav.users'), createBtn), msgs, editor, searchForm, list);
    let openDevices = null;

    function edit(user) {
      msgs.clear();
      const form = userForm(user, (saved, editing) => {
        editor.replaceChildren();
        msgs.show('success', editing ? t('users.saved', { ext: saved.extension }) : t('users.created', { ext: saved.extension }), conflictWarnings(saved));
        load();
        createBtn.focus();
      }, () => { editor.replaceChildren(); createBtn.focus(); }, api);
      editor.replaceChildren(form);
      form.querySelector('input').focus();
    }

    async function remove(user) {
      const ok = await confirmDialog({ title: t('users.deleteTitle'), text: t('users.deleteText', { ext: user.extension, name: user.displayName }), confirm: t('common.delete') });
      if (!ok) return;
      try {
        await api.del(`/api/v1/users/${user.id}`);
        msgs.show('success', t('users.deleted', { ext: user.extension }));
        load();
      } catch (e) {
        if (e.status !== 401) msgs.show('error', errorText(e));
      }
    }

    async function load() {
      try {
        const q = search.value.trim();
        const [data, regs] = await Promise.all([
          api.get(`/api/v1/users${q ? `?q=${encodeURIComponent(q)}` : ''}`),
          api.get('/api/v1/registrations'),
        ]);
        const registrations = regs.registrations || [];
        const users = data.users || [];
        const rows = [];
        for (const u of users) {
          const count = registrations.filter((r) => r.sipUser === u.sipUser).length;
          const devBtn = h('button', { type: 'button', class: 'link', 'aria-expanded': String(openDevices === u.id), onclick: () => { openDevices = openDevices === u.id ? null : u.id; load(); } }, t('users.devicesCount', { n: count }));
          rows.push(h('tr', { 'data-ext': u.extension },
            h('td', {}, u.extension), h('td', {}, u.displayName), h('td', {}, u.externalNumber || '–'),
            h('td', { class: 'mono' }, u.sipUser), h('td', {}, devBtn),
            h('td', { class: 'row-actions' },
              h('button', { type: 'button', class: 'secondary', 'aria-label': t('users.editLabel', { ext: u.extension }), onclick: () => edit(u) }, t('common.edit')),
              h('button', { type: 'button', class: 'danger', 'aria-label': t('users.deleteLabel', { ext: u.extension }), onclick: () => remove(u) }, t('common.delete')))));
          if (openDevices === u.id)
            rows.push(h('tr', { class: 'detail-row' }, h('td', { colspan: 6 }, devicesOf(u, registrations))));
        }
        list.replaceChildren(table(
          [t('users.extension'), t('users.displayName'), t('users.externalNumber'), t('users.sipUser'), t('users.devices'), t('common.actions')],
          rows, { caption: t('nav.users'), empty: q ? t('users.noMatch') : t('users.none') }));
      } catch (e) {
        if (e.status !== 401) msgs.show('error', errorText(e));
      }
    }
    await load();
    return () => clearTimeout(timer);
  },
};
