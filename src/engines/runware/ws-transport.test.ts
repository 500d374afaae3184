import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { deferred } from '../../shared/deferred.ts';
import { recordingLogger } from './test-support.ts';
import { UpstreamAuthError, UpstreamUnavailableError } from './upstream-transport.ts';
import { WsTransport } from './ws-transport.ts';

type Handler = (socket: WebSocket, task: Record<string, any>) => void;

/** A scripted Runware-protocol WebSocket server on loopback. */
async function fakeUpstream(handler: Handler, options: { answerPings?: () => boolean; key?: string } = {}) {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const auths: Record<string, any>[] = [];
  const sockets: WebSocket[] = [];
  server.on('connection', (socket) => {
    sockets.push(socket);
    socket.on('message', (raw) => {
      for (const task of JSON.parse(raw.toString()) as Record<string, any>[]) {
        if (task.taskType === 'authentication') {
          auths.push(task);
          if (task.apiKey !== (options.key ?? 'good')) {
            socket.send(JSON.stringify({ errors: [{ code: 'invalidApiKey', message: 'Invalid API key.', taskType: 'authentication' }] }));
          } else {
            socket.send(JSON.stringify({ data: [{ taskType: 'authentication', connectionSessionUUID: task.connectionSessionUUID ?? randomUUID() }] }));
          }
        } else if (task.taskType === 'ping') {
          if (options.answerPings?.() ?? true) socket.send(JSON.stringify({ data: [{ taskType: 'ping', pong: true }] }));
        } else handler(socket, task);
      }
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/v1`,
    auths,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.terminate();
        server.close(() => resolve());
      }),
  };
}

const opts = (timeoutMs = 5_000) => ({ timeoutMs, signal: new AbortController().signal });

describe('WsTransport', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  test('authenticates once and multiplexes tasks by taskUUID, answers out of order', async () => {
    const held: { socket: WebSocket; task: Record<string, any> }[] = [];
    const upstream = await fakeUpstream((socket, task) => {
      held.push({ socket, task });
      if (held.length === 2) {
        // Answer the second task first, in one frame with an unrelated item.
        for (const { socket: s, task: t } of [...held].reverse()) {
          s.send(JSON.stringify({ data: [{ taskType: t.taskType, taskUUID: t.taskUUID, n: t.n }, { taskType: 'x', taskUUID: randomUUID() }] }));
        }
      }
    });
    const transport = new WsTransport({ url: upstream.url, apiKey: 'good', logger: recordingLogger() });
    cleanup.push(() => upstream.close(), () => transport.close());
    const a = randomUUID();
    const b = randomUUID();
    const [ra, rb] = await Promise.all([
      transport.send({ taskType: 'getResponse', taskUUID: a, n: 1 }, opts()),
      transport.send({ taskType: 'getResponse', taskUUID: b, n: 2 }, opts()),
    ]);
    assert.deepEqual(ra.data, [{ taskType: 'getResponse', taskUUID: a, n: 1 }]);
    assert.deepEqual(rb.data, [{ taskType: 'getResponse', taskUUID: b, n: 2 }]);
    assert.equal(upstream.auths.length, 1, 'one connection, one authentication');
    assert.equal(upstream.sockets.length, 1);
  });

  test('a missed pong drops the link; the next send reconnects and resumes the session', async () => {
    let pongs = true;
    const upstream = await fakeUpstream(
      (socket, task) => socket.send(JSON.stringify({ data: [{ taskType: task.taskType, taskUUID: task.taskUUID }] })),
      { answerPings: () => pongs },
    );
    const logger = recordingLogger();
    const transport = new WsTransport({ url: upstream.url, apiKey: 'good', logger, heartbeatMs: 40, pongTimeoutMs: 60, reconnectBaseMs: 10 });
    cleanup.push(() => upstream.close(), () => transport.close());
    await transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts());
    const session = transport.connectionSessionUUID;
    assert.ok(session);
    const dropped = deferred();
    upstream.sockets[0]!.once('close', () => dropped.resolve());
    pongs = false;
    await dropped.promise;
    assert.ok(logger.lines.some((l) => l.level === 'warn' && /missed a pong/.test(l.msg)));
    pongs = true;
    const reply = await transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts());
    assert.equal(reply.data.length, 1);
    assert.equal(upstream.auths.length, 2);
    assert.equal(upstream.auths[1]!.connectionSessionUUID, session, 're-authenticated with the previous session');
  });

  test('a request in flight when the link drops fails as unavailable, and the next one reconnects', async () => {
    let calls = 0;
    const upstream = await fakeUpstream((socket, task) => {
      if (++calls === 1) socket.terminate();
      else socket.send(JSON.stringify({ data: [{ taskType: task.taskType, taskUUID: task.taskUUID }] }));
    });
    const transport = new WsTransport({ url: upstream.url, apiKey: 'good', logger: recordingLogger(), reconnectBaseMs: 10 });
    cleanup.push(() => upstream.close(), () => transport.close());
    await assert.rejects(transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts()), UpstreamUnavailableError);
    const reply = await transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts());
    assert.equal(reply.data.length, 1);
  });

  test('an unanswered request times out; an unreachable upstream fails fast as unavailable', async () => {
    const upstream = await fakeUpstream(() => undefined);
    const transport = new WsTransport({ url: upstream.url, apiKey: 'good', logger: recordingLogger() });
    cleanup.push(() => upstream.close(), () => transport.close());
    await assert.rejects(transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts(100)), UpstreamUnavailableError);

    const dead = await fakeUpstream(() => undefined);
    await dead.close();
    const nowhere = new WsTransport({ url: dead.url, apiKey: 'good', logger: recordingLogger() });
    cleanup.push(() => nowhere.close());
    await assert.rejects(nowhere.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts(2_000)), UpstreamUnavailableError);
  });

  test('a refused key is an UpstreamAuthError; an abort ends the wait', async () => {
    const upstream = await fakeUpstream(() => undefined);
    const refused = new WsTransport({ url: upstream.url, apiKey: 'bad', logger: recordingLogger() });
    const transport = new WsTransport({ url: upstream.url, apiKey: 'good', logger: recordingLogger() });
    cleanup.push(() => upstream.close(), () => refused.close(), () => transport.close());
    await assert.rejects(refused.send({ taskType: 'getResponse', taskUUID: randomUUID() }, opts()), UpstreamAuthError);
    const controller = new AbortController();
    const pending = transport.send({ taskType: 'getResponse', taskUUID: randomUUID() }, { timeoutMs: 5_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(pending, { name: 'AbortError' });
  });
});
