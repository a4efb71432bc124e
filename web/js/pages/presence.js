import { t } from '../i18n.js';
import { h, errorText } from '../ui.js';
import { every, pageHeader, messageArea, stateLabel, LINE_STATES, siteName } from './common.js';

// Every user of every site with the line state, polled twice a second and updated in place
// (no reload, no re-render of unchanged tiles). A user with do-not-disturb on ("dnd": true in
// the presence answer, for the users of other sites from their replicated record) shows as
// busy with a "do not disturb" mark.
export default {
  id: 'presence',
  titleKey: 'nav.presence',
  async render(main, { api }) {
    const msgs = messageArea();
    const legend = h('ul', { class: 'legend', 'aria-label': t('presence.legend') },
      LINE_STATES.map((s) => h('li', {}, h('span', { class: `dot dot-${s}`, 'aria-hidden': 'true' }), stateLabel(s))),
      h('li', {}, h('span', { class: 'dot dot-busy dot-dnd', 'aria-hidden': 'true' }), t('presence.dnd')));
    const board = h('div', { class: 'board', 'data-testid': 'presence-board' });
    const updated = h('p', { class: 'muted', 'aria-live': 'off' });
    main.append(pageHeader(t('nav.presence')), msgs, legend, board, updated);
    const tiles = new Map();
    const sections = new Map();

    function section(node, nodeName) {
      let s = sections.get(node);
      if (!s) {
        const grid = h('ul', { class: 'tiles' });
        s = { el: h('section', { class: 'site' }, h('h2', {}, siteName(node, nodeName)), grid), grid };
        sections.set(node, s);
        board.append(s.el);
      }
      return s;
    }

    return every(500, async () => {
      try {
        const data = await api.get('/api/v1/presence');
        const seen = new Set();
        for (const u of data.users || []) {
          const node = u.node || '';
          const k = `${node}/${u.extension}`;
          seen.add(k);
          const dnd = u.dnd === true;
          const line = LINE_STATES.includes(u.state) ? u.state : 'unknown';
          const state = dnd && line === 'idle' ? 'busy' : line;
          let tile = tiles.get(k);
          if (!tile) {
            const label = h('span', { class: 'state-label' });
            const el = h('li', { class: 'tile', 'data-node': node, 'data-ext': u.extension },
              h('span', { class: 'dot', 'aria-hidden': 'true' }),
              h('span', { class: 'who' }, h('strong', {}, u.extension), ' ', h('span', { class: 'name' }, u.displayName || '')),
              label);
            tile = { el, label, state: null, dnd: null, line: null };
            tiles.set(k, tile);
            section(node, u.nodeName).grid.append(el);
          }
          if (tile.state !== state || tile.dnd !== dnd || tile.line !== line) {
            tile.state = state;
            tile.dnd = dnd;
            tile.line = line;
            tile.el.dataset.state = state;
            tile.el.dataset.dnd = String(dnd);
            tile.el.querySelector('.dot').className = `dot dot-${state}${dnd ? ' dot-dnd' : ''}`;
            // DND on an idle line says just "do not disturb"; in a call also the line state.
            tile.label.textContent = !dnd ? stateLabel(line) : line === 'idle' ? t('presence.dnd') : t('presence.dndState', { state: stateLabel(line) });
          }
        }
        for (const [k, tile] of tiles) if (!seen.has(k)) { tile.el.remove(); tiles.delete(k); }
        if (!tiles.size) board.replaceChildren(h('p', { class: 'empty' }, t('presence.none'))), sections.clear();
        else if (board.querySelector('.empty')) board.querySelector('.empty').remove();
        updated.textContent = t('presence.updated', { time: new Date().toLocaleTimeString() });
        msgs.clear();
      } catch (e) {
        if (e.status !== 401) msgs.show('error', errorText(e));
        throw e;
      }
    });
  },
};
