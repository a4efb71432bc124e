// Small DOM helpers shared by the pages: elements, form fields with their error slot, tables,
// confirmation dialogs, messages. No framework.
import { t, has } from './i18n.js';

// h('button', {class: 'primary', onclick: f, type: 'button'}, 'text', child, ...)
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'value') e.value = v;
    else if (k === 'checked') e.checked = !!v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(e) { while (e.firstChild) e.firstChild.remove(); return e; }

let uid = 0;
// A labelled form field with an error slot next to it. kind: text (default), password, number,
// email, date, select (options: [[value, label]]), checkbox, textarea.
export function field({ name, label, kind = 'text', value = '', required = false, options = [],
  hint = '', autocomplete = 'off', placeholder = '', attrs = {} }) {
  const id = `f-${name.replace(/[^a-zA-Z0-9_-]/g, '-')}-${++uid}`;
  const errId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const described = [hintId, errId].filter(Boolean).join(' ');
  let input;
  const common = { id, name, 'aria-describedby': described, required, ...attrs };
  if (kind === 'select') {
    input = h('select', common, options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(value) }, l)));
  } else if (kind === 'checkbox') {
    input = h('input', { ...common, type: 'checkbox', checked: !!value });
  } else if (kind === 'textarea') {
    input = h('textarea', { ...common, rows: attrs.rows || 4, placeholder: placeholder || undefined });
    input.value = value ?? '';
  } else {
    input = h('input', { ...common, type: kind, value: value ?? '', autocomplete, placeholder: placeholder || undefined });
  }
  const wrap = h('div', { class: `field field-${kind}`, 'data-field': name },
    kind === 'checkbox'
      ? [h('div', { class: 'check' }, input, h('label', { for: id }, label))]
      : [h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null), input],
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errId, role: 'alert', hidden: true }));
  return wrap;
}

// The plain-words text of an API error: a federation reason if the API names one, else a
// translated status with the API's message.
export function errorText(err) {
  if (err && err.reason && has(`reason.${err.reason}`)) return t(`reason.${err.reason}`);
  if (!err || err.status === undefined) return t('error.unexpected', { message: String(err && err.message || err) });
  if (err.status === 0) return t('error.network');
  const byStatus = { 400: 'error.invalid', 403: 'error.forbidden', 404: 'error.notFound', 409: 'error.conflict', 413: 'error.tooLarge', 429: 'error.tooMany', 503: 'error.unavailable' };
  const key = byStatus[err.status] || (err.status >= 500 ? 'error.server' : 'error.other');
  return t(key, { message: err.detail || err.message, status: err.status });
}

export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  const fe = form.querySelector('.form-error');
  if (fe) { fe.hidden = true; fe.textContent = ''; }
}

// Shows an API error next to its field (error.field, or its first part: "dids.did" -> dids),
// else in the form's message box. Focuses the field. text replaces errorText(err), e.g. a
// translated explanation of a field's rule.
export function showError(form, err, fieldAliases = {}, text = errorText(err)) {
  clearErrors(form);
  let name = err && err.field;
  if (name && fieldAliases[name]) name = fieldAliases[name];
  let slot = null;
  if (name) {
    slot = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`) ||
      form.querySelector(`.field[data-field="${CSS.escape(name.split('.')[0])}"]`);
  }
  if (slot) {
    const p = slot.querySelector('.field-error');
    p.textContent = text;
    p.hidden = false;
    const input = slot.querySelector('input, select, textarea');
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    return;
  }
  let fe = form.querySelector('.form-error');
  if (!fe) { fe = h('p', { class: 'form-error', role: 'alert' }); form.prepend(fe); }
  fe.textContent = text;
  fe.hidden = false;
}

// A message line (role=status or alert) that pages put at their top.
export function notice(kind, text) {
  return h('p', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

export function table(headers, rows, { caption, empty } = {}) {
  if (!rows.length && empty) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
}

// A modal confirmation (<dialog>): resolves true for confirm, false for cancel/Escape.
export function confirmDialog({ title, text, confirm, danger = true }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', value: 'ok' }, confirm);
    const cancel = h('button', { type: 'button', class: 'secondary' }, t('common.cancel'));
    const titleId = `dlg-${++uid}`;
    const form = h('form', { method: 'dialog' },
      h('h2', { id: titleId }, title), h('p', {}, text),
      h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { 'aria-labelledby': titleId, class: 'confirm' }, form);
    let answer = false;
    form.addEventListener('submit', () => { answer = true; });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => { dlg.remove(); resolve(answer); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

export function badge(state, label) {
  return h('span', { class: `badge badge-${state}`, 'data-state': state }, label);
}

// Offers text as a file download (Blob + <a download>); nothing leaves the browser.
export function download(filename, text, type = 'application/x-pem-file') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Busy state of a submit button while a request runs.
export async function busy(button, f) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try { return await f(); } finally { button.disabled = false; button.removeAttribute('aria-busy'); }
}

export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else out[el.name] = el.value;
  }
  return out;
}
