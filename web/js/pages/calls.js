import { t, formatDateTime, formatDuration } from '../i18n.js';
import { h, field, table, errorText, showError, clearErrors, formValues, badge } from '../ui.js';
import { every, pageHeader, messageArea } from './common.js';

const DISPOSITIONS = ['answered', 'missed', 'busy', 'picked-up', 'completed-elsewhere', 'failed'];

// "201 Anna (hamburg)": where the call was answered; the node shows for other sites.
function answeredBy(rec, nodeNames) {
  const p = (rec.parties || []).find((x) => x.role === 'answered-by');
  if (!p) return rec.answeredBy || '–';
  const who = [p.extension, p.name].filter(Boolean).join(' ');
  return p.node ? h('span', {}, who, ' ', h('span', { class: 'site' }, `(${t('calls.atNode', { node: nodeNames[p.node] || p.node })})`)) : who;
}

// Call forwarding (issue 12): the parties that were rung because someone forwards, as
// "201 → 202 (busy)"; a target left out because of a loop or too many hops says so.
const reasonLabel = (r) => ({
  always: t('calls.fwd.reason.always'), busy: t('calls.fwd.reason.busy'), 'no-answer': t('calls.fwd.reason.noAnswer'),
  unregistered: t('calls.fwd.reason.unregistered'), dnd: t('calls.fwd.reason.dnd'),
})[r] || t('calls.fwd.reason.other');

function forwards(rec, nodeNames) {
  const at = (ext, node) => (node ? `${ext} (${t('calls.atNode', { node: nodeNames[node] || node.slice(0, 8) })})` : ext);
  const hops = (rec.parties || []).filter((p) => p.forwarded && p.forwarded.from);
  if (!hops.length) return null;
  return h('ul', { class: 'feature-list', 'aria-label': t('calls.fwd.title'), 'data-testid': 'call-forwards' }, hops.map((p) => {
    const from = at(p.forwarded.from, p.forwarded.fromNode), to = at(p.extension, p.node);
    return h('li', { 'data-reason': p.forwarded.reason }, p.forwarded.reason === 'loop'
      ? t('calls.fwd.loop', { from, to })
      : t('calls.fwd.hop', { from, to, reason: reasonLabel(p.forwarded.reason) }));
  }));
}

// Call transfer (issue 12): "102 transferred to 201" on both calls of a transfer.
function transfer(rec) {
  const x = rec.transfer;
  if (!x || !x.by) return null;
  return h('ul', { class: 'feature-list', 'aria-label': t('calls.xfer.title'), 'data-testid': 'call-transfer' },
    h('li', { 'data-other-call': x.correlationId || '' }, t('calls.xfer.hop', { by: x.by, target: x.target || '–' })));
}

function dayStart(value) { return value ? new Date(`${value}T00:00:00`).getTime() : null; }

export default {
  id: 'calls',
  titleKey: 'nav.calls',
  async render(main, { api }) {
    const msgs = messageArea();
    const [usersData, fed] = await Promise.all([api.get('/api/v1/users'), api.getOptional('/api/v1/federation').catch(() => null)]);
    const nodeNames = {};
    for (const m of (fed && fed.members) || []) nodeNames[m.nodeId] = m.name;
    const users = usersData.users || [];
    const filters = h('form', { class: 'filters', 'aria-label': t('calls.filters'), novalidate: true, 'data-testid': 'call-filters' },
      field({ name: 'extension', label: t('calls.user'), kind: 'select', options: [['', t('calls.allUsers')], ...users.map((u) => [u.extension, `${u.extension} ${u.displayName}`])] }),
      field({ name: 'from', label: t('calls.from'), kind: 'date' }),
      field({ name: 'to', label: t('calls.to'), kind: 'date' }),
      field({ name: 'disposition', label: t('calls.disposition'), kind: 'select', options: [['', t('calls.allDispositions')], ...DISPOSITIONS.map((d) => [d, t(`calls.disp.${d}`)])] }),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('calls.apply')),
        // Exports (issue 15): every record the filters select (no limit), streamed by the node;
        // the browser downloads it with the session cookie.
        h('a', { class: 'button secondary', 'data-testid': 'export-csv', download: '', href: '#' }, t('calls.export.csv')),
        h('a', { class: 'button secondary', 'data-testid': 'export-json', download: '', href: '#' }, t('calls.export.json'))));
    const active = h('section', { 'aria-labelledby': 'active-title' }, h('h2', { id: 'active-title' }, t('calls.active')));
    const activeSlot = h('div', {});
    active.append(activeSlot);
    const list = h('section', { 'aria-labelledby': 'list-title' }, h('h2', { id: 'list-title' }, t('calls.history')));
    const listSlot = h('div', { 'data-testid': 'call-list' });
    list.append(listSlot);
    main.append(pageHeader(t('nav.calls')), msgs, filters, active, list);

    function filterQuery() {
      const v = formValues(filters);
      const q = new URLSearchParams();
      if (v.extension) q.set('extension', v.extension);
      if (v.disposition) q.set('disposition', v.disposition);
      if (v.from) q.set('from', String(dayStart(v.from)));
      if (v.to) q.set('to', String(dayStart(v.to) + 86400000 - 1));
      return q;
    }
    function updateExportLinks() {
      for (const format of ['csv', 'json']) {
        const q = filterQuery();
        q.set('format', format);
        filters.querySelector(`[data-testid=export-${format}]`).href = `/api/v1/calls/export?${q}`;
      }
    }
    filters.addEventListener('input', updateExportLinks);
    filters.addEventListener('change', updateExportLinks);
    updateExportLinks();

    async function load() {
      clearErrors(filters);
      const q = filterQuery();
      q.set('limit', '200');
      try {
        const data = await api.get(`/api/v1/calls?${q}`);
        const rows = (data.calls || []).map((c) => h('tr', { 'data-call': c.correlationId },
          h('td', {}, formatDateTime(c.startMs)),
          h('td', {}, t(`calls.dir.${c.direction}`)),
          h('td', {}, [c.caller, c.callerName].filter(Boolean).join(' ') || '–'),
          h('td', { 'data-col': 'dialled' }, c.dialled || '–', forwards(c, nodeNames), transfer(c)),
          h('td', { 'data-col': 'answered-by' }, answeredBy(c, nodeNames)),
          h('td', {}, badge(c.disposition, DISPOSITIONS.includes(c.disposition) ? t(`calls.disp.${c.disposition}`) : c.disposition)),
          h('td', {}, c.answerMs && c.endMs ? formatDuration((c.endMs - c.answerMs) / 1000) : '–'),
          h('td', {}, c.viaExternalLine ? t('common.yes') : t('common.no'))));
        listSlot.replaceChildren(table([t('calls.start'), t('calls.direction'), t('calls.caller'), t('calls.dialled'), t('calls.answeredBy'), t('calls.disposition'), t('calls.duration'), t('calls.external')],
          rows, { caption: t('calls.history'), empty: t('calls.none') }));
        msgs.clear();
      } catch (e) {
        if (e.status === 401) return;
        if (e.field) showError(filters, e); else msgs.show('error', errorText(e));
      }
    }
    filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });
    await load();
    return every(2000, async () => {
      const a = await api.get('/api/v1/calls/active');
      activeSlot.replaceChildren(table([t('calls.start'), t('calls.caller'), t('calls.dialled'), t('calls.state'), t('calls.answeredBy')],
        (a.calls || []).map((c) => h('tr', {}, h('td', {}, formatDateTime(c.startMs)), h('td', {}, [c.caller, c.callerName].filter(Boolean).join(' ')),
          h('td', {}, c.dialled), h('td', {}, c.state), h('td', {}, c.answeredBy || '–'))),
        { caption: t('calls.active'), empty: t('calls.noActive') }));
    });
  },
};
