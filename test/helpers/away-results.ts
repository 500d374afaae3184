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
  for (let done = 0; done < count; ) {
    const poll = await post(server, [{ taskType: 'getResponse', taskUUID: task.taskUUID }]);
    done = poll.body.data.filter((item: any) => item.status === 'success').length;
  }
  return session;
}
