import type { HeldImage } from '../fixtures/held-image.ts';
import { post, TEST_KEY, type TestServer } from './kiln-server.ts';
import { RawWsClient } from './ws-client.ts';

/**
 * Opens a WebSocket session, sends `task` (whose run waits for `held`), closes the socket, then
 * releases the image and waits until the task's `count` images exist: results made while the
 * session had no socket, for a test of their replay. Answers the session's UUID.
 */
export async function resultsMadeWhileAway(server: TestServer, held: HeldImage, task: { taskUUID: string }, count: number): Promise<string> {
  const first = await RawWsClient.connect(server.wsUrl);
  const session = (await first.authenticate(TEST_KEY)).data[0].connectionSessionUUID as string;
  first.send([task]);
  first.close();
  await first.closed;
  held.release();
  for (let attempt = 0; attempt < 1200; attempt++) {
    const poll = await post(server, [{ taskType: 'getResponse', taskUUID: task.taskUUID }]);
    if (poll.body.errors?.length) throw new Error(`the task failed: ${JSON.stringify(poll.body.errors)}`);
    if (poll.body.data.filter((item: any) => item.status === 'success').length >= count) return session;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the task's ${count} images were not made within 30 s`);
}
