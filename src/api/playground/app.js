// Kiln playground: builds an imageInference task from the form, sends it over the WebSocket
// API, shows each image as it arrives, and keeps a history in localStorage. No framework, no
// build step: this file is served as it is.
import { Connection } from './connection.js';
import { $, h, readFile, thumbnail, uuid } from './dom.js';
import { clearErrors, showError } from './field-errors.js';
import { clearHistory, loadHistory, saveHistory } from './history-store.js';
import { aiSdkSnippet, curlSnippet, sdkSnippet } from './snippets.js';

const KEY_STORE = 'kiln.apiKey';
const origin = location.origin;

// --- state ---------------------------------------------------------------------------------

let models = [];
/** Reference images: `{ id, kind: 'file'|'url'|'uuid', value, thumb, uuid? }`. */
let references = [];
/** Elements (Kiln extension): `{ id, frontal: image|null, views: image[] }`, images shaped like references. */
let elements = [];
const MAX_ELEMENTS = 3;
const MAX_VIEWS = 3;
let lastTasks = null;
let snippetKind = 'json';
const model = () => models.find((m) => m.id === $('model').value) ?? models[0];
const maxRefs = () => model()?.maxInputImages ?? 10;
/** Reference and element images count together against the model's limit. */
const elementImages = () => elements.reduce((n, e) => n + (e.frontal ? 1 : 0) + e.views.length, 0);
const roomLeft = () => maxRefs() - references.length - elementImages();

const status = (text) => ($('status').textContent = text);

// --- the WebSocket connection -----------------------------------------------------------------

let connection = null;
async function connect() {
  const key = $('apiKey').value.trim();
  if (!key) throw { code: 'invalidApiKey', parameter: 'apiKey', message: 'Enter your API key.' };
  if (!connection || connection.key !== key) {
    connection?.socket.close();
    connection = new Connection(`${origin.replace(/^http/, 'ws')}/v1`, key, (closed) => {
      if (connection === closed) connection = null;
    });
  }
  try {
    return await connection.ready;
  } catch (error) {
    connection = null;
    throw error.code === 'invalidApiKey' ? { ...error, parameter: 'apiKey', message: 'Kiln does not know this API key.' } : error;
  }
}

// --- the form -----------------------------------------------------------------------------------

function fillModels() {
  $('model').replaceChildren(...models.map((m) => h('option', { value: m.id }, `${m.id} · ${m.name.replace(/\s*\(.*\)$/, '')}`)));
}

function fillSizes() {
  const m = model();
  const fixed = Boolean(m?.sizes);
  $('sizeFixed').hidden = !fixed;
  $('sizeFree').hidden = fixed;
  if (fixed) {
    const current = $('size').value;
    const groups = new Map();
    for (const s of m.sizes) {
      if (!groups.has(s.aspect)) groups.set(s.aspect, []);
      groups.get(s.aspect).push(h('option', { value: `${s.width}x${s.height}` }, `${s.aspect} · ${s.tier} — ${s.width}×${s.height} ($${s.price})`));
    }
    $('size').replaceChildren(
      h('option', { value: '' }, 'Auto — 1:1 · 1K, or the first reference\'s aspect'),
      ...[...groups].map(([aspect, options]) => h('optgroup', { label: aspect }, options)),
    );
    $('size').value = [...$('size').options].some((o) => o.value === current) ? current : '1360x768';
    $('sizeHint').textContent = '24 sizes: 8 aspects × 1K, 2K, 4K.';
  } else {
    $('sizeHint').textContent = m?.sizeRule?.message ?? '';
  }
  renderRefs();
  renderElements();
}

const intOrNull = (id) => {
  const text = $(id).value.trim();
  return text === '' ? undefined : Number(text);
};

/** The task exactly as it is sent (references as image UUIDs or URLs). */
function buildTask() {
  const m = model();
  const task = { taskType: 'imageInference', taskUUID: uuid(), model: m.id, positivePrompt: $('prompt').value };
  if (m.sizes) {
    const [width, height] = $('size').value.split('x').map(Number);
    if (width && height) Object.assign(task, { width, height });
  } else {
    Object.assign(task, { width: intOrNull('width'), height: intOrNull('height') });
  }
  const series = $('series').checked;
  task.numberResults = series ? intOrNull('seriesAmount') : intOrNull('numberResults');
  task.outputType = $('outputType').value;
  task.outputFormat = $('outputFormat').value;
  task.outputQuality = intOrNull('outputQuality');
  const seed = intOrNull('seed');
  if (seed !== undefined) task.seed = seed;
  if ($('safety').checked) task.safety = { checkContent: true };
  if (series) task.providerSettings = { klingai: { resultType: 'series', seriesAmount: intOrNull('seriesAmount') } };
  if (references.length > 0) task.inputs = { referenceImages: references.map((r) => r.uuid ?? r.value) };
  const withFrontal = elements.filter((e) => e.frontal);
  if (withFrontal.length > 0) {
    task.inputs = {
      ...task.inputs,
      elements: withFrontal.map((e) => ({
        frontalImage: e.frontal.uuid ?? e.frontal.value,
        ...(e.views.length > 0 ? { referenceImages: e.views.map((v) => v.uuid ?? v.value) } : {}),
      })),
    };
  }
  task.includeCost = true;
  for (const key of Object.keys(task)) if (task[key] === undefined) delete task[key];
  return task;
}

const storedImage = (value, thumb = '') =>
  /^https?:/i.test(value) ? { id: uuid(), kind: 'url', value, thumb: value } : { id: uuid(), kind: 'uuid', value, uuid: value, thumb };

/** Puts a stored request back into the form. */
function loadTask(task, thumbs = [], elementThumbs = []) {
  if (models.some((m) => m.id === task.model)) $('model').value = task.model;
  fillSizes();
  $('prompt').value = task.positivePrompt ?? '';
  if (model().sizes) $('size').value = task.width ? `${task.width}x${task.height}` : '';
  else if (task.width) [$('width').value, $('height').value] = [task.width, task.height];
  const series = task.providerSettings?.klingai?.resultType === 'series';
  $('series').checked = series;
  $('seriesAmount').disabled = !series;
  if (series) $('seriesAmount').value = task.providerSettings.klingai.seriesAmount ?? 4;
  else $('numberResults').value = task.numberResults ?? 1;
  $('outputType').value = task.outputType ?? 'URL';
  $('outputFormat').value = task.outputFormat ?? 'JPG';
  $('outputQuality').value = task.outputQuality ?? 95;
  $('seed').value = task.seed ?? '';
  $('safety').checked = Boolean(task.safety?.checkContent);
  references = (task.inputs?.referenceImages ?? []).map((value, i) => storedImage(value, thumbs[i]));
  elements = (task.inputs?.elements ?? []).map((e, i) => ({
    id: uuid(),
    frontal: storedImage(e.frontalImage, elementThumbs[i]?.[0]),
    views: (e.referenceImages ?? []).map((value, j) => storedImage(value, elementThumbs[i]?.[j + 1])),
  }));
  renderRefs();
  renderElements();
}

// --- reference images ---------------------------------------------------------------------------

/** True (and the limit shown next to the field) when no further reference fits. */
function referencesFull() {
  if (roomLeft() > 0) return false;
  showError({ parameter: 'inputs.referenceImages', message: `At most ${maxRefs()} reference images${elementImages() ? ' (element images count too)' : ''}.` });
  return true;
}

function addReference(ref) {
  if (referencesFull()) return false;
  $('references-error').textContent = '';
  $('field-references').classList.remove('invalid');
  references.push({ id: uuid(), ...ref });
  renderRefs();
  return true;
}

function renderRefs() {
  $('refs').replaceChildren(
    ...references.map((ref, i) =>
      h('li', {},
        h('img', { src: ref.thumb, alt: `Reference ${i + 1}${ref.name ? `: ${ref.name}` : ''}`, width: 72, height: 72, loading: 'lazy' }),
        h('button', { type: 'button', class: 'remove', 'aria-label': `Remove reference ${i + 1}`, onclick: () => {
          references = references.filter((r) => r.id !== ref.id);
          renderRefs();
          renderElements();
          $('refFile').focus();
        } }, '×'),
      ),
    ),
  );
  $('refCount').textContent = `${references.length}/${maxRefs() - elementImages()}`;
  const full = roomLeft() <= 0;
  $('refFile').disabled = full;
  $('addUrl').disabled = full;
  $('drop').classList.toggle('full', full);
}

async function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith('image/')) {
      showError({ parameter: 'inputs.referenceImages', message: `${file.name} is not an image.` });
      continue;
    }
    // Check for room before reading: a file that cannot be added is never read, and the limit's
    // error appears together with the last reference that fitted.
    if (referencesFull()) break;
    const dataUri = await readFile(file);
    if (!addReference({ kind: 'file', value: dataUri, thumb: dataUri, name: file.name })) break;
  }
}

/** Files become uploads (imageUpload) first, so the request names them by UUID and stays short. */
async function uploadReferences(conn) {
  const pending = [
    ...references.map((ref) => [ref, 'inputs.referenceImages']),
    ...elements.flatMap((e, i) => [
      ...(e.frontal ? [[e.frontal, `inputs.elements[${i}].frontalImage`]] : []),
      ...e.views.map((v, j) => [v, `inputs.elements[${i}].referenceImages[${j}]`]),
    ]),
  ];
  for (const [ref, parameter] of pending) {
    if (ref.kind !== 'file' || ref.uuid) continue;
    const answer = await conn.request({ taskType: 'imageUpload', taskUUID: uuid(), image: ref.value }).catch((error) => {
      throw { ...error, parameter, message: `${ref.name ?? 'An image'}: ${error.message}` };
    });
    ref.uuid = answer.imageUUID;
    // A URL thumbnail for the history (the data URI itself is too large to keep).
    ref.remote = answer.imageURL;
  }
}

// --- elements (face / subject) -------------------------------------------------------------------

function elementError(message, parameter = 'inputs.elements') {
  showError({ parameter, message });
}

function addElement() {
  if (elements.length >= MAX_ELEMENTS) return elementError(`At most ${MAX_ELEMENTS} elements.`);
  elements.push({ id: uuid(), frontal: null, views: [] });
  renderElements();
  $(`el-front-${elements.length - 1}`)?.focus();
}

/** Image files into element `i`: the first fills an empty frontal slot (or `asFrontal`), the rest become views. */
async function addElementFiles(i, files, asFrontal = false) {
  const element = elements[i];
  if (!element) return;
  $('elements-error').textContent = '';
  $('field-elements').classList.remove('invalid');
  for (const file of files) {
    if (!file.type.startsWith('image/')) {
      elementError(`${file.name} is not an image.`, `inputs.elements[${i}]`);
      continue;
    }
    const front = asFrontal || !element.frontal;
    if (!(front && element.frontal) && roomLeft() <= 0) {
      elementError(`At most ${maxRefs()} images in all, reference and element images together.`, `inputs.elements[${i}]`);
      break;
    }
    if (!front && element.views.length >= MAX_VIEWS) {
      elementError(`At most ${MAX_VIEWS} extra reference images per element.`, `inputs.elements[${i}].referenceImages`);
      break;
    }
    const dataUri = await readFile(file);
    const image = { id: uuid(), kind: 'file', value: dataUri, thumb: dataUri, name: file.name };
    if (front) element.frontal = image;
    else element.views.push(image);
    asFrontal = false;
  }
  renderElements();
  renderRefs();
}

function imageThumb(image, alt, removeLabel, onRemove) {
  return h('li', {},
    h('img', { src: image.thumb, alt: `${alt}${image.name ? `: ${image.name}` : ''}`, width: 72, height: 72, loading: 'lazy' }),
    h('button', { type: 'button', class: 'remove', 'aria-label': removeLabel, onclick: onRemove }, '×'),
  );
}

function dropZone(onFiles) {
  return {
    ondragover: (event) => (event.preventDefault(), event.currentTarget.classList.add('over')),
    ondragleave: (event) => event.currentTarget.classList.remove('over'),
    ondrop: (event) => {
      event.preventDefault();
      event.currentTarget.classList.remove('over');
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length > 0) onFiles(files);
    },
  };
}

function renderElements() {
  const full = roomLeft() <= 0;
  $('elements').replaceChildren(
    ...elements.map((element, i) => {
      const n = i + 1;
      const rerender = (focusId) => () => {
        renderElements();
        renderRefs();
        $(focusId)?.focus();
      };
      const frontId = `el-front-${i}`;
      const viewsId = `el-views-${i}`;
      return h('li', { class: 'element', 'data-element': i, 'aria-labelledby': `el-title-${i}` },
        h('div', { class: 'row spread' },
          h('h3', { id: `el-title-${i}` }, `Element ${n}`, h('span', { class: 'muted' }, ` <<<element_${n}>>>`)),
          h('button', { type: 'button', class: 'ghost', 'aria-label': `Remove element ${n}`, onclick: () => {
            elements = elements.filter((e) => e.id !== element.id);
            rerender(elements.length ? `el-front-${Math.min(i, elements.length - 1)}` : 'addElement')();
          } }, 'Remove'),
        ),
        h('div', { class: 'drop', ...dropZone((files) => addElementFiles(i, files)) },
          h('input', { id: frontId, type: 'file', accept: 'image/*', class: 'sr-only', disabled: full && !element.frontal,
            onchange: async (event) => { await addElementFiles(i, [...event.target.files], true); $(frontId)?.focus(); } }),
          h('label', { for: frontId, class: 'button ghost' }, element.frontal ? 'Replace frontal image' : 'Choose frontal image', h('span', { class: 'sr-only' }, ` for element ${n}`)),
          h('span', { class: 'muted' }, 'required; drop or paste here'),
        ),
        h('ul', { class: 'refs', 'aria-label': `Element ${n} frontal image` },
          element.frontal ? imageThumb(element.frontal, `Element ${n} frontal image`, `Remove element ${n} frontal image`, () => {
            element.frontal = null;
            rerender(frontId)();
          }) : null,
        ),
        h('div', { class: `drop${full || element.views.length >= MAX_VIEWS ? ' full' : ''}`, ...dropZone((files) => addElementFiles(i, files)) },
          h('input', { id: viewsId, type: 'file', accept: 'image/*', multiple: true, class: 'sr-only', disabled: full || element.views.length >= MAX_VIEWS,
            onchange: async (event) => { await addElementFiles(i, [...event.target.files]); $(viewsId)?.focus(); } }),
          h('label', { for: viewsId, class: 'button ghost' }, 'Add views', h('span', { class: 'sr-only' }, ` to element ${n}`)),
          h('span', { class: 'muted' }, `${element.views.length}/${MAX_VIEWS} optional`),
        ),
        h('ul', { class: 'refs', 'aria-label': `Element ${n} reference images` },
          element.views.map((view, j) => imageThumb(view, `Element ${n} view ${j + 1}`, `Remove element ${n} view ${j + 1}`, () => {
            element.views = element.views.filter((v) => v.id !== view.id);
            rerender(viewsId)();
          })),
        ),
      );
    }),
  );
  $('elementCount').textContent = `${elements.length}/${MAX_ELEMENTS}`;
  $('addElement').disabled = elements.length >= MAX_ELEMENTS || (full && elements.length > 0);
}

// --- results ---------------------------------------------------------------------------------

const srcOf = (item, format) =>
  item.imageURL ?? item.imageDataURI ?? (item.imageBase64Data ? `data:image/${{ JPG: 'jpeg', PNG: 'png', WEBP: 'webp' }[format] ?? 'jpeg'};base64,${item.imageBase64Data}` : '');

function resultCard(item, task, elapsedMs, onReady) {
  const src = srcOf(item, task.outputFormat);
  const size = h('span', { class: 'size' }, task.width ? `${task.width}×${task.height}` : '…');
  const img = h('img', { src, alt: `Result for “${task.positivePrompt.slice(0, 80)}”, seed ${item.seed}`, decoding: 'async' });
  img.addEventListener('load', () => {
    size.textContent = `${img.naturalWidth}×${img.naturalHeight}`;
    onReady?.(img);
  }, { once: true });
  return h('li', { class: 'card', 'data-image-uuid': item.imageUUID },
    h('a', { href: src.startsWith('data:') ? undefined : src, target: '_blank', rel: 'noopener' }, img),
    h('dl', { class: 'meta' },
      h('div', {}, h('dt', {}, 'seed'), h('dd', { class: 'seed' }, String(item.seed))),
      h('div', {}, h('dt', {}, 'size'), h('dd', {}, size)),
      h('div', {}, h('dt', {}, 'cost'), h('dd', { class: 'cost' }, item.cost === undefined ? '—' : `$${item.cost}`)),
      h('div', {}, h('dt', {}, 'time'), h('dd', { class: 'time' }, `${(elapsedMs / 1000).toFixed(2)} s`)),
      item.NSFWContent ? h('div', {}, h('dt', {}, 'safety'), h('dd', {}, 'flagged')) : null,
    ),
    h('button', { type: 'button', class: 'ghost', onclick: () => useAsReference(item.imageUUID, img.currentSrc || src) }, 'Use as reference'),
  );
}

function useAsReference(imageUUID, thumb) {
  if (addReference({ kind: 'uuid', value: imageUUID, uuid: imageUUID, thumb })) {
    status('Added as a reference image.');
  }
}

// --- request panel ------------------------------------------------------------------------------

const SNIPPETS = {
  json: (tasks) => JSON.stringify(tasks, null, 2),
  curl: (tasks) => curlSnippet(origin, tasks),
  sdk: (tasks) => sdkSnippet(origin, tasks[0]),
  ai: (tasks) => aiSdkSnippet(origin, tasks[0]),
};

function showSnippet(kind = snippetKind) {
  snippetKind = kind;
  for (const tab of document.querySelectorAll('[role=tab]')) {
    const selected = tab.dataset.snippet === kind;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected) $('snippet').setAttribute('aria-labelledby', tab.id);
  }
  $('snippetCode').textContent = lastTasks ? SNIPPETS[kind](lastTasks) : 'Generate to see the request.';
}

async function copy(kind) {
  if (!lastTasks) lastTasks = [buildTask()];
  const text = SNIPPETS[kind](lastTasks);
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { class: 'sr-only' }, text);
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  showSnippet(kind);
  $('copied').textContent = `Copied ${kind === 'json' ? 'JSON' : kind === 'curl' ? 'curl command' : kind === 'sdk' ? '@runware/sdk-js code' : 'AI SDK code'}.`;
}

// --- history --------------------------------------------------------------------------------------

function renderHistory() {
  const entries = loadHistory();
  $('noHistory').hidden = entries.length > 0;
  $('history').replaceChildren(
    ...entries.map((entry) =>
      h('li', { class: 'entry' },
        h('div', { class: 'thumbs' }, entry.results.map((r) =>
          h('button', { type: 'button', class: 'thumb', title: 'Use as reference', 'aria-label': `Use image with seed ${r.seed} as reference`, onclick: () => useAsReference(r.imageUUID, r.thumb) },
            h('img', { src: r.thumb, alt: '', width: 64, height: 64, loading: 'lazy' })),
        )),
        h('div', { class: 'entry-text' },
          h('p', { class: 'prompt' }, entry.task.positivePrompt),
          h('p', { class: 'muted' }, `${entry.task.model} · ${entry.task.width ? `${entry.task.width}×${entry.task.height}` : 'auto size'} · ${entry.results.length} image${entry.results.length === 1 ? '' : 's'} · ${new Date(entry.at).toLocaleString()}`),
          h('div', { class: 'row' },
            h('button', { type: 'button', class: 'ghost', onclick: () => { loadTask(entry.task, entry.refThumbs, entry.elementThumbs); generate(); } }, 'Re-run'),
            h('button', { type: 'button', class: 'ghost', onclick: () => { loadTask(entry.task, entry.refThumbs, entry.elementThumbs); $('prompt').focus(); } }, 'Edit'),
          ),
        ),
      ),
    ),
  );
}

// --- generate ---------------------------------------------------------------------------------------

let running = false;
async function generate() {
  if (running) return;
  clearErrors();
  running = true;
  $('generate').disabled = true;
  $('generate').setAttribute('aria-busy', 'true');
  // A request refused before any image arrives leaves the previous results in place.
  const previous = [...$('results').children];
  let received = 0;
  try {
    const missing = elements.findIndex((e) => !e.frontal);
    if (missing >= 0) throw { code: 'invalidElements', parameter: `inputs.elements[${missing}].frontalImage`, message: `Element ${missing + 1} needs a frontal image (or remove it).` };
    status('Connecting…');
    const conn = await connect();
    const unsent = (r) => r.kind === 'file' && !r.uuid;
    if (references.some(unsent) || elements.some((e) => [e.frontal, ...e.views].some(unsent))) status('Uploading images…');
    await uploadReferences(conn);
    const task = buildTask();
    lastTasks = [task];
    showSnippet();
    const expected = task.numberResults ?? 1;
    status(`Generating ${expected} image${expected === 1 ? '' : 's'}…`);
    $('noResults').hidden = true;
    $('results').replaceChildren(...Array.from({ length: expected }, () => h('li', { class: 'card pending', 'aria-label': 'Rendering' }, h('div', { class: 'spinner' }))));
    const started = performance.now();
    const saved = [];
    await new Promise((resolve, reject) => {
      const done = conn.send(task, {
        data: (item) => {
          if (!item.imageUUID) return;
          const slot = $('results').querySelector('.pending');
          const record = { imageUUID: item.imageUUID, seed: item.seed, cost: item.cost, thumb: item.imageURL ?? '' };
          saved.push(record);
          const card = resultCard(item, task, performance.now() - started, (img) => {
            if (!item.imageURL) record.thumb = thumbnail(img);
            record.width = img.naturalWidth;
            record.height = img.naturalHeight;
          });
          slot ? slot.replaceWith(card) : $('results').append(card);
          received++;
          status(`${received} of ${expected} images, ${((performance.now() - started) / 1000).toFixed(1)} s`);
          if (received >= expected) (done(), resolve());
        },
        error: (error) => (done(), reject(error)),
      });
    });
    // Thumbnails of inline images are made once they have decoded.
    await Promise.all([...$('results').querySelectorAll('img')].map((img) => img.decode().catch(() => {})));
    const { taskUUID: _fresh, ...stored } = task;
    const thumbOf = (r) => (r.kind === 'file' ? (r.remote ?? '') : r.thumb);
    const refThumbs = references.map(thumbOf);
    const elementThumbs = elements.filter((e) => e.frontal).map((e) => [e.frontal, ...e.views].map(thumbOf));
    saveHistory([{ at: Date.now(), task: stored, results: saved, refThumbs, elementThumbs }, ...loadHistory()]);
    renderHistory();
  } catch (error) {
    if (received === 0) $('results').replaceChildren(...previous);
    for (const pending of $('results').querySelectorAll('.pending')) pending.remove();
    $('noResults').hidden = $('results').children.length > 0;
    const input = showError(error?.message ? error : { message: String(error) });
    status('');
    input?.focus?.();
  } finally {
    running = false;
    $('generate').disabled = false;
    $('generate').removeAttribute('aria-busy');
  }
}

// --- wiring ---------------------------------------------------------------------------------------

function wire() {
  $('apiKey').value = localStorage.getItem(KEY_STORE) ?? '';
  $('apiKey').addEventListener('change', () => localStorage.setItem(KEY_STORE, $('apiKey').value.trim()));
  $('forgetKey').addEventListener('click', () => {
    localStorage.removeItem(KEY_STORE);
    $('apiKey').value = '';
    connection?.socket.close();
    $('apiKey').focus();
  });
  $('model').addEventListener('change', fillSizes);
  $('series').addEventListener('change', () => ($('seriesAmount').disabled = !$('series').checked));
  $('form').addEventListener('submit', (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORE, $('apiKey').value.trim());
    generate();
  });
  $('prompt').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('form').requestSubmit();
  });
  $('refFile').addEventListener('change', async () => {
    await addFiles([...$('refFile').files]);
    $('refFile').value = '';
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length > 0) addFiles(files);
    else {
      const url = event.dataTransfer?.getData('text/uri-list') || event.dataTransfer?.getData('text/plain');
      if (url && /^https?:\/\//i.test(url.trim())) addReference({ kind: 'url', value: url.trim(), thumb: url.trim() });
    }
  });
  document.addEventListener('paste', (event) => {
    const files = [...(event.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
    if (files.length > 0) {
      event.preventDefault();
      const target = document.activeElement?.closest?.('[data-element]');
      if (target) addElementFiles(Number(target.dataset.element), files);
      else addFiles(files);
    }
  });
  const addUrl = () => {
    const url = $('refUrl').value.trim();
    if (!/^https?:\/\/\S+$/i.test(url)) {
      showError({ parameter: 'inputs.referenceImages', message: 'Enter an http:// or https:// image URL.' });
      return;
    }
    if (addReference({ kind: 'url', value: url, thumb: url })) $('refUrl').value = '';
  };
  $('addUrl').addEventListener('click', addUrl);
  $('addElement').addEventListener('click', addElement);
  $('refUrl').addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      addUrl();
    }
  });
  const tabs = [...document.querySelectorAll('[role=tab]')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => showSnippet(tab.dataset.snippet));
    tab.addEventListener('keydown', (event) => {
      const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      showSnippet(next.dataset.snippet);
    });
  }
  $('copySnippet').addEventListener('click', () => copy(snippetKind));
  $('copyCurl').addEventListener('click', () => copy('curl'));
  $('copySdk').addEventListener('click', () => copy('sdk'));
  $('copyAi').addEventListener('click', () => copy('ai'));
  $('clearHistory').addEventListener('click', () => {
    clearHistory();
    renderHistory();
  });
}

async function start() {
  wire();
  const response = await fetch('/playground/models.json');
  models = (await response.json()).models;
  fillModels();
  fillSizes();
  renderHistory();
  document.body.dataset.ready = 'true';
}

start().catch((error) => showError({ message: `The playground could not start: ${error.message}` }));
