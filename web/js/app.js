// The admin UI's shell: login, navigation, language switch, hash routing (#/users, ...).
import * as api from './api.js';
import { initI18n, setLanguage, language, onLanguageChange, t, LANGUAGES } from './i18n.js';
import { h, clear, field, showError, clearErrors, busy, notice } from './ui.js';
import dashboard from './pages/dashboard.js';
import users from './pages/users.js';
import groups from './pages/groups.js';
import trunk from './pages/trunk.js';
import calls from './pages/calls.js';
import presence from './pages/presence.js';
import federation from './pages/federation.js';
import settings from './pages/settings.js';

const PAGES = [dashboard, users, groups, trunk, calls, presence, federation, settings];
const root = document.getElementById('app');
const state = { loggedIn: false, loginMessage: null, cleanup: null, status: null };

function currentPage() {
  const id = (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0]) || 'dashboard';
  return PAGES.find((p) => p.id === id) || dashboard;
}

function languageSwitch() {
  return h('div', { class: 'lang-switch', role: 'group', 'aria-label': t('lang.label') },
    LANGUAGES.map((l) => h('button', {
      type: 'button', lang: l, 'aria-pressed': String(l === language()),
      'data-lang': l, title: t(`lang.${l}`),
      onclick: () => setLanguage(l),
    }, l.toUpperCase())));
}

function stopPage() {
  if (state.cleanup) { try { state.cleanup(); } catch { /* ignore */ } }
  state.cleanup = null;
}

function renderLogin() {
  stopPage();
  document.title = `${t('login.title')} – Verbund`;
  const pw = field({ name: 'password', label: t('login.password'), kind: 'password', required: true, autocomplete: 'current-password' });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('login.submit'));
  const form = h('form', { class: 'login-form', novalidate: true }, pw, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const password = form.elements.password.value;
    if (!password) {
      showError(form, { field: 'password', status: 400, detail: t('login.required'), message: t('login.required') });
      return;
    }
    try {
      await busy(submit, () => api.login(password));
      state.loggedIn = true;
      state.loginMessage = null;
      renderShell();
    } catch (e) {
      if (e.status === 401) setFieldText(form, 'password', t('login.wrong'));
      else if (e.status === 429) showError(form, { status: 429, detail: '', message: '' });
      else showError(form, e);
    }
  });
  clear(root).append(
    h('div', { class: 'login-page' },
      h('header', { class: 'login-head' },
        h('span', { class: 'brand' }, h('img', { src: '/favicon.svg', alt: '', width: 28, height: 28 }), 'Verbund'),
        languageSwitch()),
      h('main', { id: 'main', class: 'login-box' },
        h('h1', {}, t('login.title')),
        state.loginMessage ? notice(state.loginMessage.kind, t(state.loginMessage.key)) : null,
        form)));
  form.elements.password.focus();
}

function setFieldText(form, name, text) {
  const p = form.querySelector(`.field[data-field="${name}"] .field-error`);
  if (!p) return;
  p.textContent = text;
  p.hidden = false;
  const input = form.elements[name];
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
}

async function logout() {
  stopPage();
  try { await api.logout(); } catch { /* the session may be gone already */ }
  state.loggedIn = false;
  state.loginMessage = { kind: 'info', key: 'login.loggedOut' };
  location.hash = '';
  renderLogin();
}

function renderShell() {
  stopPage();
  const page = currentPage();
  document.title = `${t(page.titleKey)} – Verbund`;
  const nav = h('nav', { class: 'nav', 'aria-label': t('nav.label') },
    h('ul', {}, PAGES.map((p) => h('li', {},
      h('a', { href: `#/${p.id}`, 'aria-current': p === page ? 'page' : undefined, 'data-page': p.id }, t(p.titleKey))))));
  const main = h('main', { id: 'main', class: 'content', tabindex: '-1' });
  const nodeName = h('span', { class: 'node-name', 'data-testid': 'node-name' }, state.status ? state.status.node : '');
  clear(root).append(
    h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, t('nav.skip')),
    h('header', { class: 'topbar' },
      h('span', { class: 'brand' }, h('img', { src: '/favicon.svg', alt: '', width: 28, height: 28 }), 'Verbund'),
      nodeName,
      h('div', { class: 'topbar-right' },
        languageSwitch(),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'logout', onclick: logout }, t('nav.logout')))),
    h('div', { class: 'layout' }, nav, main));
  const ctx = {
    t, api,
    setStatus: (s) => { state.status = s; nodeName.textContent = s.node || ''; },
  };
  Promise.resolve(page.render(main, ctx)).then((cleanup) => {
    if (typeof cleanup === 'function') {
      if (currentPage() === page && state.loggedIn) state.cleanup = cleanup; else cleanup();
    }
  }).catch((e) => {
    if (e && e.status === 401) return;
    main.append(notice('error', t('error.unexpected', { message: e.message || String(e) })));
  });
  if (!state.status) api.get('/api/v1/status').then(ctx.setStatus).catch(() => {});
}

function render() {
  if (state.loggedIn) renderShell(); else renderLogin();
}

api.onUnauthorized(() => {
  if (!state.loggedIn) return;
  state.loggedIn = false;
  state.loginMessage = { kind: 'error', key: 'login.expired' };
  renderLogin();
});

window.addEventListener('hashchange', () => { if (state.loggedIn) renderShell(); });
onLanguageChange(() => render());

async function boot() {
  await initI18n();
  if (api.hasSession()) {
    try {
      await api.get('/api/v1/session');
      state.loggedIn = true;
    } catch {
      state.loggedIn = false;
      state.loginMessage = null;
    }
  }
  render();
}

boot();
