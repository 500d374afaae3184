// Renders /openapi.json as a readable reference. Everything is built with DOM calls and
// textContent, so nothing in the document is interpreted as HTML.
const main = document.getElementById('main');
const toc = document.getElementById('toc');

/** Creates an element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) if (child !== undefined && child !== null) el.append(child);
  return el;
}

/** Inline `code` spans of a line of text. */
function inline(text) {
  return text.split(/(`[^`]+`)/).map((part) => (part.startsWith('`') && part.endsWith('`') && part.length > 1 ? h('code', {}, part.slice(1, -1)) : part));
}

/** The small part of Markdown the document's descriptions use: headings, lists, paragraphs. */
function markdown(text) {
  const out = [];
  let list = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.push(h('p', {}, inline(paragraph.join(' '))));
    paragraph = [];
  };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*]|\d+\.)\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      list = null;
      out.push(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
    } else if (item) {
      flush();
      if (!list) {
        list = h(/^\s*\d/.test(line) ? 'ol' : 'ul');
        out.push(list);
      }
      list.append(h('li', {}, inline(item[1])));
    } else if (line.trim() === '') {
      flush();
      list = null;
    } else if (list && /^\s+/.test(raw)) {
      list.lastChild.append(' ', ...inline(line.trim()));
    } else {
      paragraph.push(line.trim());
    }
  }
  flush();
  return out;
}

const refName = (ref) => ref.split('/').pop();
const anchor = (kind, name) => `${kind}-${name.replace(/[^a-zA-Z0-9]+/g, '-')}`;

/** A one-line summary of a schema's type and constraints. */
function typeOf(schema) {
  if (!schema || typeof schema !== 'object') return ['any'];
  if (schema.$ref) return [h('a', { href: `#${anchor('schema', refName(schema.$ref))}` }, refName(schema.$ref))];
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives) return alternatives.flatMap((s, i) => (i ? [' | ', ...typeOf(s)] : typeOf(s)));
  if (schema.const !== undefined) return [h('code', {}, JSON.stringify(schema.const))];
  if (schema.type === 'array') return ['array of ', ...typeOf(schema.items)];
  return [String(schema.type ?? 'any')];
}

function constraints(schema) {
  const parts = [];
  if (!schema || typeof schema !== 'object') return parts;
  if (schema.enum) parts.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  if (schema.minimum !== undefined || schema.maximum !== undefined) parts.push(`${schema.minimum ?? '…'} – ${schema.maximum ?? '…'}`);
  if (schema.minLength !== undefined || schema.maxLength !== undefined) parts.push(`length ${schema.minLength ?? 0} – ${schema.maxLength ?? '…'}`);
  if (schema.minItems !== undefined || schema.maxItems !== undefined) parts.push(`${schema.minItems ?? 0} – ${schema.maxItems ?? '…'} items`);
  if (schema.format) parts.push(`format ${schema.format}`);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  return parts;
}

/** A schema as a table of its properties (nested objects indented under their parent). */
function schemaView(schema, depth = 0) {
  const props = schema?.properties;
  if (!props) {
    const line = h('p', {}, 'Type: ', ...typeOf(schema));
    const extra = constraints(schema);
    return [line, extra.length ? h('p', { class: 'muted' }, extra.join('; ')) : null, schema?.description ? h('p', {}, inline(schema.description)) : null];
  }
  const required = new Set(schema.required ?? []);
  const rows = [];
  const walk = (properties, requiredSet, prefix, level) => {
    for (const [name, prop] of Object.entries(properties)) {
      const item = prop?.type === 'array' ? prop.items : null;
      rows.push(
        h('tr', {},
          h('th', { scope: 'row', class: `lvl${level}` }, h('code', {}, prefix + name), requiredSet.has(name) ? h('span', { class: 'req', title: 'required' }, ' required') : null),
          h('td', {}, ...typeOf(prop)),
          h('td', {}, constraints(prop).join('; '), prop?.description ? h('div', {}, inline(prop.description)) : null),
        ),
      );
      const nested = prop?.properties ? prop : item?.properties ? item : null;
      if (nested && level < 3) walk(nested.properties, new Set(nested.required ?? []), `${prefix}${name}${item ? '[]' : ''}.`, level + 1);
    }
  };
  walk(props, required, '', depth);
  return [
    schema.description ? h('p', {}, inline(schema.description)) : null,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Rules'))), h('tbody', {}, rows))),
    schema.additionalProperties && typeof schema.additionalProperties === 'object' && schema.additionalProperties.description
      ? h('p', { class: 'muted' }, 'Other fields: ', inline(schema.additionalProperties.description))
      : null,
  ];
}

function operationView(path, method, op) {
  const id = anchor('op', `${method}-${path}`);
  const section = h('section', { class: 'op', id, 'aria-labelledby': `${id}-h` },
    h('h3', { id: `${id}-h` }, h('span', { class: `method m-${method}` }, method.toUpperCase()), ' ', h('code', {}, path)),
    h('p', {}, op.summary ?? ''),
    op.description ? markdown(op.description) : null,
  );
  if (op.security?.some((s) => s.bearer)) section.append(h('p', { class: 'muted' }, 'Auth: ', h('code', {}, 'Authorization: Bearer <key>'), op.security.some((s) => Object.keys(s).length === 0) ? ' (or an authentication task)' : ''));
  for (const param of op.parameters ?? []) section.append(h('p', {}, 'Path parameter ', h('code', {}, param.name), ': ', param.description ?? ''));
  if (op.requestBody) {
    for (const [type, media] of Object.entries(op.requestBody.content)) section.append(h('h4', {}, 'Request body ', h('code', {}, type)), h('p', {}, ...typeOf(media.schema)));
  }
  const responses = h('ul', { class: 'responses' });
  for (const [status, response] of Object.entries(op.responses ?? {})) {
    const media = Object.entries(response.content ?? {});
    responses.append(h('li', {}, h('strong', {}, status), ' ', response.description ?? '', ...media.flatMap(([type, m]) => [' — ', h('code', {}, type), ' ', ...typeOf(m.schema)])));
  }
  section.append(h('h4', {}, 'Responses'), responses);
  return section;
}

async function render() {
  const response = await fetch('/openapi.json');
  const doc = await response.json();
  document.title = `${doc.info.title} ${doc.info.version} — API reference`;
  main.replaceChildren(
    h('h1', {}, `${doc.info.title} API `, h('small', {}, doc.info.version)),
    h('p', { class: 'lead' }, doc.info.summary ?? ''),
    ...markdown(doc.info.description ?? ''),
  );
  const opsByTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = op.tags?.[0] ?? 'Other';
      if (!opsByTag.has(tag)) opsByTag.set(tag, []);
      opsByTag.get(tag).push([path, method, op]);
    }
  }
  const tocList = h('ul');
  for (const [tag, ops] of opsByTag) {
    const id = anchor('tag', tag);
    main.append(h('h2', { id }, tag));
    const sub = h('ul');
    tocList.append(h('li', {}, h('a', { href: `#${id}` }, tag), sub));
    for (const [path, method, op] of ops) {
      main.append(operationView(path, method, op));
      sub.append(h('li', {}, h('a', { href: `#${anchor('op', `${method}-${path}`)}` }, `${method.toUpperCase()} ${path}`)));
    }
  }
  main.append(h('h2', { id: 'schemas' }, 'Schemas'));
  const schemaList = h('ul');
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
    const id = anchor('schema', name);
    main.append(h('section', { class: 'schema', id }, h('h3', {}, name), ...schemaView(schema)));
    schemaList.append(h('li', {}, h('a', { href: `#${id}` }, name)));
  }
  tocList.append(h('li', {}, h('a', { href: '#schemas' }, 'Schemas'), schemaList));
  toc.replaceChildren(tocList);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

render().catch((error) => {
  main.replaceChildren(h('p', { role: 'alert' }, `Could not load /openapi.json: ${error.message}`));
});
