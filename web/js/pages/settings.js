// Node settings: settings of this node only (not shared with the federation). Today: the music
// on hold file (issue 13), checked by the API (it must exist and be a WAV the media relay plays).
import { t } from '../i18n.js';
import { h, field, showError, clearErrors, busy, errorText, formValues } from '../ui.js';
import { pageHeader, messageArea } from './common.js';

function fileFacts(m) {
  const f = m.file;
  const rows = [
    [t('settings.mohSource'), t(`settings.mohSources.${m.source}`)],
    [t('settings.mohFile'), m.path],
    [t('settings.mohFormat'), f ? t('settings.mohFormatValue', { format: f.format.toUpperCase(), rate: f.sampleRate, channels: f.channels, bits: f.bitsPerSample }) : t('settings.mohUnusable')],
    [t('settings.mohDuration'), f ? t('settings.mohSeconds', { n: (f.durationMs / 1000).toFixed(1) }) : '–'],
  ];
  return h('dl', { class: 'facts', 'data-testid': 'moh-facts', 'data-source': m.source },
    rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function mohForm(m, api, onSaved) {
  const submit = h('button', { type: 'submit', class: 'primary' }, t('common.save'));
  const reset = h('button', { type: 'button', 'data-testid': 'moh-reset' }, t('settings.mohReset'));
  const form = h('form', { class: 'editor', 'aria-labelledby': 'moh-form-title', novalidate: true, 'data-testid': 'moh-form' },
    h('h2', { id: 'moh-form-title' }, t('settings.moh')),
    h('div', { class: 'grid' },
      field({ name: 'path', label: t('settings.mohPath'), value: m.source === 'admin' ? m.path : '', hint: t('settings.mohHint', { fallback: m.fallback }) })),
    h('div', { class: 'actions' }, submit, reset));
  const save = async (path, button) => {
    clearErrors(form);
    try {
      const saved = await busy(button, () => api.put('/api/v1/media/music-on-hold', { path }));
      onSaved(saved);
    } catch (e) {
      if (e.status !== 401) showError(form, e);
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    if (!v.path.trim()) {
      showError(form, { field: 'path', status: 400, message: t('settings.mohPathRequired'), detail: t('settings.mohPathRequired') });
      return;
    }
    save(v.path.trim(), submit);
  });
  reset.addEventListener('click', () => save('', reset));
  return form;
}

export default {
  id: 'settings',
  titleKey: 'nav.settings',
  async render(main, { api }) {
    const msgs = messageArea();
    const facts = h('section', { class: 'panel', 'aria-labelledby': 'moh-facts-title' }, h('h2', { id: 'moh-facts-title' }, t('settings.mohCurrent')));
    const slot = h('div', {});
    facts.append(slot);
    const formSlot = h('div', {});
    main.append(pageHeader(t('nav.settings')), msgs, facts, formSlot);
    const show = (m) => {
      slot.replaceChildren(fileFacts(m));
      formSlot.replaceChildren(mohForm(m, api, (saved) => {
        msgs.show('success', t('settings.mohSaved'));
        show(saved);
      }));
    };
    try {
      show(await api.get('/api/v1/media/music-on-hold'));
    } catch (e) {
      if (e.status !== 401) msgs.show('error', errorText(e));
    }
    return () => {};
  },
};
