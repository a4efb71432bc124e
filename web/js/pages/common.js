// Helpers of several pages.
import { t } from '../i18n.js';
import { h, notice } from '../ui.js';

// Runs f now and every ms milliseconds (never two at once); returns the stop function.
export function every(ms, f) {
  let stopped = false, timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await f(); } catch (e) { if (e && e.status === 401) { stopped = true; return; } }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), ...extra);
}

// A region for page-level messages (success / error of the last action, and the warnings that
// came with it).
export function messageArea() {
  const area = h('div', { class: 'messages', 'aria-live': 'polite' });
  area.show = (kind, text, warnings = []) => {
    area.replaceChildren(notice(kind, text), ...warnings.map((w) => {
      const n = notice('warning', w);
      n.setAttribute('data-testid', 'conflict-warning');
      return n;
    }));
  };
  area.clear = () => area.replaceChildren();
  return area;
}

// The API's warnings of a saved user or group (docs/federation-api.md "Number conflicts at the
// source") in plain words, naming the other site.
export function conflictWarnings(saved) {
  const list = saved && Array.isArray(saved.warnings) ? saved.warnings : [];
  return list.filter((w) => w && w.code === 'extension-conflict').map((w) =>
    t(w.kind === 'group' ? 'conflict.group' : 'conflict.user', {
      number: w.number, site: w.nodeName || String(w.nodeId || '').slice(0, 8), name: w.name || '',
    }));
}

export const LINE_STATES = ['idle', 'ringing', 'busy', 'unknown'];
export function stateLabel(state) {
  return LINE_STATES.includes(state) ? t(`presence.state.${state}`) : t('presence.state.unknown');
}

// Users of every site: this node's (/users) plus the replicas of the others
// (/federation/directory, when the node is in a federation). [{node, nodeName, extension,
// displayName, local}]
export async function allUsers(api) {
  const [local, remote] = await Promise.all([
    api.get('/api/v1/users'),
    api.getOptional('/api/v1/federation/directory').catch(() => null),
  ]);
  const out = (local.users || []).map((u) => ({
    node: '', nodeName: '', extension: u.extension, displayName: u.displayName, local: true,
  }));
  for (const u of (remote && remote.users) || [])
    out.push({ node: u.nodeId, nodeName: u.nodeName, extension: u.extension, displayName: u.displayName, local: false });
  return { users: out, remote };
}

export function siteName(node, nodeName) {
  return node ? (nodeName || node.slice(0, 8)) : t('common.thisNode');
}
