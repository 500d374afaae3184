import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { modelCatalog } from '../protocol/request-schemas.ts';

/**
 * The playground (`/`) and the API reference (`/docs`): plain static files in
 * `src/api/playground/` (copied beside the compiled code by the build), served from memory,
 * gzipped when the client accepts it. No bundler, no CDN: the pages work offline.
 */
const FOLDER = new URL('./playground/', import.meta.url);
const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
export const PLAYGROUND_FILES = [
  'index.html',
  'style.css',
  'app.js',
  'connection.js',
  'dom.js',
  'field-errors.js',
  'history-store.js',
  'snippets.js',
  'docs.html',
  'docs.js',
] as const;

interface Asset {
  readonly type: string;
  readonly raw: Buffer;
  readonly gzip: Buffer;
}

const assets = new Map<string, Asset>();
function asset(name: string): Asset {
  let found = assets.get(name);
  if (!found) {
    const raw = readFileSync(new URL(name, FOLDER));
    found = { type: TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream', raw, gzip: gzipSync(raw, { level: 9 }) };
    assets.set(name, found);
  }
  return found;
}

function send(request: FastifyRequest, reply: FastifyReply, name: string): FastifyReply {
  const file = asset(name);
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  reply.header('Content-Type', file.type).header('Cache-Control', 'no-cache').header('Vary', 'Accept-Encoding');
  // The pages talk only to this server; nothing else may load into them.
  reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data: blob: http: https:; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'");
  if (gzip) reply.header('Content-Encoding', 'gzip');
  return reply.send(gzip ? file.gzip : file.raw);
}

/** True for a browser navigating to the page (it asks for HTML); API clients get JSON. */
export function wantsPage(request: FastifyRequest): boolean {
  return /\btext\/html\b/.test(String(request.headers.accept ?? ''));
}

/** Answers with the playground's HTML. */
export function sendPlayground(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return send(request, reply, 'index.html');
}

/** `/playground/<asset>`, `/playground/models.json` and `/docs`. */
export function registerPlaygroundRoutes(app: FastifyInstance): void {
  const catalog = modelCatalog();
  for (const name of PLAYGROUND_FILES) {
    if (name === 'index.html') continue;
    app.get(`/playground/${name}`, async (request, reply) => send(request, reply, name));
  }
  app.get('/playground/models.json', async () => ({ models: catalog }));
  app.get('/docs', async (request, reply) => send(request, reply, 'docs.html'));
}
