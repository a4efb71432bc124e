import { t } from '../i18n.js';
import { h, badge, errorText } from '../ui.js';
import { every, pageHeader, messageArea } from './common.js';

function card(key, value, extra) {
  return h('div', { class: 'card', 'data-card': key },
    h('h2', {}, t(`dashboard.${key}`)), h('p', { class: 'card-value' }, value), extra || null);
}

export default {
  id: 'dashboard',
  titleKey: 'nav.dashboard',
  async render(main, { api, setStatus }) {
    const msgs = messageArea();
    const cards = h('div', { class: 'cards' });
    main.append(pageHeader(t('nav.dashboard')), msgs, cards);
    return every(2000, async () => {
      try {
        const [s, fed] = await Promise.all([
          api.get('/api/v1/status'),
          api.getOptional('/api/v1/federation').catch(() => null),
        ]);
        setStatus(s);
        const trunkState = s.trunk || 'disabled';
        let fedValue, fedBadge = null;
        if (!fed) fedValue = t('dashboard.federationUnavailable');
        else if (!fed.member) fedValue = t('dashboard.federationNone');
        else {
          const others = (fed.members || []).filter((m) => !m.self && m.state !== 'self');
          const up = others.filter((m) => m.state === 'up').length;
          fedValue = fed.name;
          fedBadge = badge(up === others.length ? 'up' : 'down', t('dashboard.membersUp', { up, total: others.length }));
        }
        // The media relay (rtpengine): its state, and restarts of the own instance or how many
        // external instances answer.
        const media = s.media || { state: 'unavailable', mode: 'auto', instances: [] };
        const inst = media.instances || [];
        const mediaNote = media.mode === 'external'
          ? t('dashboard.mediaInstancesUp', { up: inst.filter((i) => i.state === 'up').length, total: inst.length })
          : t('dashboard.mediaRestarts', { n: inst.reduce((n, i) => n + (i.restarts || 0), 0) });
        cards.replaceChildren(
          card('node', s.node, h('p', { class: 'muted' }, t('dashboard.version', { version: s.version || '–' }))),
          card('users', String(s.users ?? '–'), h('p', { class: 'muted' }, t('dashboard.groupsCount', { n: s.groups ?? 0 }))),
          card('devices', String(s.registrations ?? '–')),
          card('activeCalls', String(s.activeCalls ?? '–')),
          card('trunk', '', badge(trunkState, t(`trunk.state.${trunkState}`))),
          card('federation', fedValue, fedBadge),
          card('media', '', h('div', {},
            badge(media.state, t(`media.state.${media.state}`)),
            h('p', { class: 'muted' }, mediaNote))));
        msgs.clear();
      } catch (e) {
        if (e.status !== 401) msgs.show('error', errorText(e));
      }
    });
  },
};
