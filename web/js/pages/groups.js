import { t } from '../i18n.js';
import { h, field, table, showError, clearErrors, busy, confirmDialog, errorText, formValues, badge } from '../ui.js';
import { pageHeader, messageArea, allUsers, siteName, conflictWarnings } from './common.js';

const key = (node, ext) => `${node || ''}/${ext}`;

function groupForm(group, everyone, onSaved, onCancel, api) {
  const editing = !!group;
  const g = group || { number: '', name: '', shared: true, members: [] };
  const current = new Map(g.members.map((m) => [key(m.owner, m.extension), m]));
  const submit = h('button', { type: 'submit', class: 'primary' }, editing ? t('common.save') : t('groups.create'));
  const boxes = everyone.map((u, i) => {
    const id = `member-${i}`;
    return h('li', {},
      h('input', { type: 'checkbox', id, name: `member:${key(u.node, u.extension)}`, checked: current.has(key(u.node, u.extension)), 'data-node': u.node, 'data-ext': u.extension }),
      h('label', { for: id }, `${u.extension} ${u.displayName}`, h('span', { class: 'muted' }, ` (${siteName(u.node, u.nodeName)})`)));
  });
  const members = h('fieldset', { class: 'field members', 'data-field': 'members', 'aria-describedby': 'members-error' },
    h('legend', {}, t('groups.members')),
    everyone.length ? h('ul', { class: 'checklist' }, boxes) : h('p', { class: 'muted' }, t('groups.noUsers')),
    h('p', { class: 'field-error', id: 'members-error', role: 'alert', hidden: true }));
  const form = h('form', { class: 'editor', 'aria-labelledby': 'group-form-title', novalidate: true, 'data-testid': 'group-form' },
    h('h2', { id: 'group-form-title' }, editing ? t('groups.editTitle', { number: g.number }) : t('groups.createTitle')),
    h('div', { class: 'grid' },
      field({ name: 'number', label: t('groups.number'), value: g.number, required: true, hint: t('users.extensionHint'), attrs: { inputmode: 'numeric' } }),
      field({ name: 'name', label: t('groups.name'), value: g.name, required: true }),
      field({ name: 'shared', label: t('groups.shared'), kind: 'checkbox', value: g.shared })),
    members,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: onCancel }, t('common.cancel')), submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const v = formValues(form);
    const list = [];
    for (const b of form.querySelectorAll('input[name^="member:"]')) {
      if (!b.checked) continue;
      const old = current.get(key(b.dataset.node, b.dataset.ext));
      const m = { extension: b.dataset.ext, loggedIn: old ? old.loggedIn : true };
      if (b.dataset.node) m.owner = b.dataset.node;
      list.push(m);
    }
    const body = { number: v.number.trim(), name: v.name.trim(), shared: v.shared, members: list };
    try {
      const saved = await busy(submit, () => (editing ? api.patch(`/api/v1/groups/${g.id}`, body) : api.post('/api/v1/groups', body)));
      onSaved(saved, editing);
    } catch (e) {
      if (e.status !== 401) showError(form, e);
    }
  });
  return form;
}

function loginBadge(loggedIn) {
  return badge(loggedIn ? 'in' : 'out', loggedIn ? t('groups.loggedIn') : t('groups.loggedOut'));
}

export default {
  id: 'groups',
  titleKey: 'nav.groups',
  async render(main, { api }) {
    const msgs = messageArea();
    const editor = h('div', { class: 'editor-slot' });
    const list = h('div', { class: 'list' });
    const remoteList = h('div', { class: 'list' });
    const createBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'group-new', onclick: async () => { await loaded; edit(null); } }, t('groups.new'));
    main.append(pageHeader(t('nav.groups'), createBtn), msgs, editor, list, remoteList);
    let everyone = [];
    let loaded = null; // the first load: the member list of a new group needs the users

    function nameOf(node, ext) {
      const u = everyone.find((x) => (x.node || '') === (node || '') && x.extension === ext);
      return u ? u.displayName : '';
    }

    function edit(group) {
      msgs.clear();
      const form = groupForm(group, everyone, (saved, editing) => {
        editor.replaceChildren();
        msgs.show('success', editing ? t('groups.saved', { number: saved.number }) : t('groups.created', { number: saved.number }), conflictWarnings(saved));
        load();
        createBtn.focus();
      }, () => { editor.replaceChildren(); createBtn.focus(); }, api);
      editor.replaceChildren(form);
      form.querySelector('input').focus();
    }

    async function remove(g) {
      const ok = await confirmDialog({ title: t('groups.deleteTitle'), text: t('groups.deleteText', { number: g.number, name: g.name }), confirm: t('common.delete') });
      if (!ok) return;
      try {
        await api.del(`/api/v1/groups/${g.id}`);
        msgs.show('success', t('groups.deleted', { number: g.number }));
        load();
      } catch (e) { if (e.status !== 401) msgs.show('error', errorText(e)); }
    }

    async function toggle(g, m) {
      try {
        await api.put(`/api/v1/groups/${g.id}/members/${encodeURIComponent(m.owner || 'local')}/${encodeURIComponent(m.extension)}/login`, { loggedIn: !m.loggedIn });
        msgs.show('success', t(m.loggedIn ? 'groups.didLogOut' : 'groups.didLogIn', { ext: m.extension, number: g.number }));
        load();
      } catch (e) { if (e.status !== 401) msgs.show('error', errorText(e)); }
    }

    async function toggleRemote(g, m) {
      try {
        await api.put('/api/v1/federation/group-login', { nodeId: g.nodeId, group: g.number, extension: m.extension, loggedIn: !m.loggedIn });
        msgs.show('success', t(m.loggedIn ? 'groups.didLogOut' : 'groups.didLogIn', { ext: m.extension, number: g.number }));
        load();
      } catch (e) { if (e.status !== 401) msgs.show('error', errorText(e)); }
    }

    function memberList(items) {
      if (!items.length) return h('span', { class: 'muted' }, t('groups.noMembers'));
      return h('ul', { class: 'member-list' }, items);
    }

    async function load() {
      try {
        const [data, all] = await Promise.all([api.get('/api/v1/groups'), allUsers(api)]);
        everyone = all.users;
        const rows = (data.groups || []).map((g) => h('tr', { 'data-number': g.number },
          h('td', {}, g.number), h('td', {}, g.name),
          h('td', {}, memberList(g.members.map((m) => h('li', { 'data-member': key(m.owner, m.extension) },
            h('span', {}, `${m.extension} ${nameOf(m.owner, m.extension)}`), ' ',
            h('span', { class: 'muted' }, `(${siteName(m.owner, (everyone.find((x) => x.node === m.owner) || {}).nodeName)})`), ' ',
            loginBadge(m.loggedIn), ' ',
            h('button', { type: 'button', class: 'link', 'aria-label': t(m.loggedIn ? 'groups.logOutLabel' : 'groups.logInLabel', { ext: m.extension, number: g.number }), onclick: () => toggle(g, m) },
              m.loggedIn ? t('groups.logOut') : t('groups.logIn')))))),
          h('td', { class: 'row-actions' },
            h('button', { type: 'button', class: 'secondary', 'aria-label': t('groups.editLabel', { number: g.number }), onclick: () => edit(g) }, t('common.edit')),
            h('button', { type: 'button', class: 'danger', 'aria-label': t('groups.deleteLabel', { number: g.number }), onclick: () => remove(g) }, t('common.delete')))));
        list.replaceChildren(table([t('groups.number'), t('groups.name'), t('groups.members'), t('common.actions')], rows,
          { caption: t('nav.groups'), empty: t('groups.none') }));
        const remote = (all.remote && all.remote.groups) || [];
        if (!remote.length) { remoteList.replaceChildren(); return; }
        const localExts = new Set(everyone.filter((u) => u.local).map((u) => u.extension));
        remoteList.replaceChildren(h('h2', {}, t('groups.remoteTitle')), table(
          [t('groups.site'), t('groups.number'), t('groups.name'), t('groups.members')],
          remote.map((g) => h('tr', {},
            h('td', {}, g.nodeName || g.nodeId), h('td', {}, g.number), h('td', {}, g.name),
            h('td', {}, memberList((g.members || []).map((m) => {
              const mine = !m.nodeId && localExts.has(m.extension);
              return h('li', {}, `${m.extension} ${nameOf(m.nodeId === g.nodeId ? g.nodeId : m.nodeId, m.extension)} `, loginBadge(m.loggedIn), ' ',
                mine ? h('button', { type: 'button', class: 'link', onclick: () => toggleRemote(g, m) }, m.loggedIn ? t('groups.logOut') : t('groups.logIn')) : null);
            }))))), { caption: t('groups.remoteTitle') }));
      } catch (e) {
        if (e.status !== 401) msgs.show('error', errorText(e));
      }
    }
    loaded = load();
    await loaded;
  },
};
