import { t, language } from '../i18n.js';
import { h, field, table, showError, clearErrors, busy, confirmDialog, errorText, formValues, badge, notice, download } from '../ui.js';
import { pageHeader, messageArea, conflictWarnings } from './common.js';

// Forwarding targets of the API's user JSON ("forward": {always, busy, noAnswer,
// noAnswerSeconds, unregistered}); "" is off.
const FORWARD_KINDS = ['always', 'busy', 'noAnswer', 'unregistered'];
const DEFAULT_NO_ANSWER_SECONDS = 20;
// Literal keys (the i18n test checks every literal key of the code).
const kindLabel = (k) => ({ always: t('users.fwd.always'), busy: t('users.fwd.busy'), noAnswer: t('users.fwd.noAnswer'), unregistered: t('users.fwd.unregistered') })[k];
const kindShort = (k, n) => ({
  always: t('users.fwd.short.always'), busy: t('users.fwd.short.busy'), noAnswer: t('users.fwd.short.noAnswer', { n }), unregistered: t('users.fwd.short.unregistered'),
})[k];

// The rule of a refused feature field in the UI's language (the API's message is English).
function featureRule(field) {
  if (field === 'forward.noAnswerSeconds') return t('users.fwd.invalidSeconds');
  if (FORWARD_KINDS.some((k) => field === `forward.${k}`)) return t('users.fwd.invalidTarget');
  return null;
}

function forwardOf(user) {
  const f = (user && user.forward) || {};
  const out = { noAnswerSeconds: Number.isInteger(f.noAnswerSeconds) ? f.noAnswerSeconds : DEFAULT_NO_ANSWER_SECONDS };
  for (const k of FORWARD_KINDS) out[k] = typeof f[k] === 'string' ? f[k] : '';
  return out;
}

// The "call forwarding and do-not-disturb" part of the user form. The field names are the
// API's field names ("dnd", "forward.busy" ...), so that an API error lands next to its field.
function featureFields(user) {
  const f = forwardOf(user);
  const target = (k) => field({
    name: `forward.${k}`, label: kindLabel(k), value: f[k], hint: t('users.fwd.targetHint'),
    attrs: { inputmode: 'tel', 'data-testid': `fwd-${k}` },
  });
  return h('fieldset', { class: 'features', 'data-testid': 'user-features' },
    h('legend', {}, t('users.fwd.title')),
    h('p', { class: 'hint' }, t('users.fwd.intro')),
    field({ name: 'dnd', label: t('users.dnd'), kind: 'checkbox', value: !!(user && user.dnd), hint: t('users.dndHint'), attrs: { role: 'switch' } }),
    h('div', { class: 'grid' },
      target('always'), target('busy'), target('noAnswer'),
      field({ name: 'forward.noAnswerSeconds', label: t('users.fwd.noAnswerSeconds'), kind: 'number', value: f.noAnswerSeconds,
        hint: t('users.fwd.noAnswerSecondsHint'), attrs: { min: 5, max: 120, step: 1, inputmode: 'numeric' } }),
      target('unregistered')));
}

// The request's "dnd" and "forward" from the form values: only what differs from the stored
// user (a PATCH replaces the "forward" keys it names and keeps the others, so a change made
// meanwhile by a feature code on a phone survives an edit of, say, the name). Whatever is
// typed goes to the API, which validates it and names the field of an error.
function featureBody(v, user) {
  const f = forwardOf(user);
  const out = {};
  if (v.dnd !== !!(user && user.dnd)) out.dnd = v.dnd;
  const fwd = {};
  for (const k of FORWARD_KINDS) {
    const x = (v[`forward.${k}`] || '').trim();
    if (x !== f[k]) fwd[k] = x;
  }
  const secs = (v['forward.noAnswerSeconds'] || '').trim();
  const n = /^\d+$/.test(secs) ? Number(secs) : secs;
  if (secs && n !== f.noAnswerSeconds) fwd.noAnswerSeconds = n;
  if (Object.keys(fwd).length) out.forward = fwd;
  return out;
}

// The compact state of a user's features under the name in the list: DND and each active
// forwarding ("busy → 202"); empty when nothing is on.
function featureSummary(u) {
  const f = forwardOf(u);
  const items = [];
  if (u.dnd) items.push(h('li', { 'data-dnd': 'true' }, badge('dnd', t('users.dndShort'))));
  for (const k of FORWARD_KINDS) {
    if (!f[k]) continue;
    items.push(h('li', { 'data-forward': k }, h('span', { class: 'fwd-kind' }, kindShort(k, f.noAnswerSeconds)), ' → ', h('span', { class: 'mono' }, f[k])));
  }
  return h('div', { class: 'features-summary', 'data-testid': 'user-features-summary', 'data-dnd': String(!!u.dnd) },
    items.length ? h('ul', { class: 'feature-list', 'aria-label': t('users.fwd.title') }, items) : null);
}

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
    featureFields(user),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: onCancel }, t('common.cancel')), submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const v = formValues(form);
    const body = { extension: v.extension.trim(), displayName: v.displayName.trim(), externalNumber: v.externalNumber.trim(), language: v.language, shared: v.shared,
      ...featureBody(v, user) };
    const sipUser = v.sipUser.trim();
    if (sipUser && (!editing || sipUser !== u.sipUser)) body.sipUser = sipUser;
    if (v.sipPassword) body.sipPassword = v.sipPassword;
    try {
      const saved = await busy(submit, () => (editing ? api.patch(`/api/v1/users/${u.id}`, body) : api.post('/api/v1/users', body)));
      onSaved(saved, editing);
    } catch (e) {
      const rule = e.status === 400 ? featureRule(e.field) : null;
      if (e.status !== 401) showError(form, e, {}, rule ? t('error.invalid', { message: rule }) : undefined);
    }
  });
  return form;
}

// CSV import (README "Many users at once"): the node reads the file with the same codec as
// `verbund user import`; the columns and limits below are the documented ones.
const IMPORT_PATH = '/api/v1/users/import';
const MAX_CSV_BYTES = 16 * 1024 * 1024;
// Literal keys (the i18n test checks every literal key of the code).
const importColumns = () => [
  ['extension', t('users.import.col.extension')], ['displayName', t('users.import.col.displayName')],
  ['sipPassword', t('users.import.col.sipPassword')], ['sipUser', t('users.import.col.sipUser')],
  ['externalNumber', t('users.import.col.externalNumber')], ['language', t('users.import.col.language')],
  ['shared', t('users.import.col.shared')],
];
const EXAMPLE_CSV = 'extension,displayName,sipPassword,sipUser,externalNumber,language,shared\r\n' +
  '201,Anna Alt,change-me-201,,+4930123201,de,true\r\n' +
  '202,"Bau, Bernd",change-me-202,bernd,,en,false\r\n';

// The file's bytes, or a translated reason why they cannot be a CSV file for the import.
async function readCsvFile(file) {
  if (!file) return { problem: t('users.import.noFile') };
  if (file.size > MAX_CSV_BYTES) return { problem: t('users.import.tooLarge') };
  const bytes = await file.arrayBuffer();
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { problem: t('users.import.notUtf8') };
  }
  return { bytes };
}

// Every invalid row as the node names it: row of the file (the header is row 1), field, reason.
function rowErrors(rows) {
  const n = new Set(rows.map((r) => r.row)).size;
  return h('div', { class: 'import-errors', 'data-testid': 'import-errors' },
    notice('error', t('users.import.invalid', { n })),
    table([t('users.import.row'), t('users.import.field'), t('users.import.reason')],
      rows.map((r) => h('tr', { 'data-row': r.row }, h('td', {}, String(r.row)), h('td', { class: 'mono' }, r.field || '–'), h('td', {}, r.error))),
      { caption: t('users.import.invalid', { n }) }));
}

function importForm(onImported, onCancel, api) {
  const check = h('button', { type: 'button', class: 'secondary', 'data-testid': 'import-check' }, t('users.import.check'));
  const submit = h('button', { type: 'submit', class: 'primary', disabled: true, 'aria-describedby': 'user-import-gate', 'data-testid': 'import-submit' }, t('users.import.submit'));
  const result = h('div', { class: 'import-result', 'data-testid': 'import-result', 'aria-live': 'polite' });
  const fileField = field({ name: 'file', label: t('users.import.file'), kind: 'file', required: true, hint: t('users.import.format'),
    attrs: { accept: '.csv,text/csv', 'data-testid': 'import-file' } });
  const input = fileField.querySelector('input');
  const form = h('form', { class: 'editor', 'aria-labelledby': 'user-import-title', novalidate: true, 'data-testid': 'user-import' },
    h('h2', { id: 'user-import-title' }, t('users.import.title')),
    h('p', { class: 'hint' }, t('users.import.intro')),
    h('dl', { class: 'csv-columns', 'data-testid': 'import-columns' },
      importColumns().flatMap(([name, text]) => [h('dt', {}, h('code', {}, name)), h('dd', {}, text)])),
    h('p', {}, h('button', { type: 'button', class: 'link', 'data-testid': 'import-example',
      onclick: () => download('users-example.csv', EXAMPLE_CSV, 'text/csv') }, t('users.import.example'))),
    fileField,
    result,
    h('p', { class: 'hint', id: 'user-import-gate' }, t('users.import.checkFirst')),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: onCancel }, t('common.cancel')), check, submit));

  // The file of the last clean check; Import sends exactly these bytes.
  let checked = null;
  const reset = () => { checked = null; submit.disabled = true; result.replaceChildren(); };
  input.addEventListener('change', reset);

  // The node's answer to a refused check or import, in the result area.
  function refused(e) {
    if (e.status === 401) return;
    if (e.status === 400 && e.rows.length) result.replaceChildren(rowErrors(e.rows));
    else if (e.status === 413) result.replaceChildren(notice('error', t('users.import.tooLarge')));
    else result.replaceChildren(notice('error', errorText(e)));
  }

  check.addEventListener('click', async () => {
    clearErrors(form);
    reset();
    await busy(check, async () => {
      const file = await readCsvFile(input.files[0]);
      if (file.problem) { showError(form, { field: 'file' }, {}, file.problem); return; }
      try {
        const r = await api.postFile(`${IMPORT_PATH}?dryRun=true`, file.bytes, 'text/csv');
        if (!r.valid) { result.replaceChildren(notice('warning', t('users.import.empty'))); return; }
        result.replaceChildren(notice('success', t('users.import.valid', { n: r.valid })));
        checked = file.bytes;
        submit.disabled = false;
      } catch (e) {
        refused(e);
      }
    });
    submit.disabled = !checked;
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!checked) return;
    const bytes = checked;
    try {
      const r = await busy(submit, () => api.postFile(IMPORT_PATH, bytes, 'text/csv'));
      onImported(r.created);
    } catch (e) {
      reset();
      refused(e);
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
    const importBtn = h('button', { type: 'button', class: 'secondary', 'data-testid': 'user-import-open', onclick: () => openImport() }, t('users.import.open'));
    main.append(pageHeader(t('nav.users'), h('div', { class: 'head-actions' }, importBtn, createBtn)), msgs, editor, searchForm, list);
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

    function openImport() {
      msgs.clear();
      const form = importForm((created) => {
        editor.replaceChildren();
        msgs.show('success', t('users.import.done', { n: created }));
        load();
        importBtn.focus();
      }, () => { editor.replaceChildren(); importBtn.focus(); }, api);
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
            h('td', {}, u.extension), h('td', {}, u.displayName, featureSummary(u)), h('td', {}, u.externalNumber || '–'),
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
