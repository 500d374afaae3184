// The request as code: curl (REST), @runware/sdk-js (WebSocket) and the AI SDK (REST).
// Keys are never written into a snippet: they read KILN_KEY from the environment.

/** A fresh UUID v4 in the shell (Linux's kernel source, or uuidgen on macOS). */
const SHELL_UUID = '$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen | tr A-Z a-z)';

/** Single-quotes a string for POSIX shells. */
const shellQuote = (text) => `'${text.replace(/'/g, `'\\''`)}'`;

/** `curl` against POST /v1 with the same task array; the taskUUID is made fresh on every run. */
export function curlSnippet(origin, tasks) {
  const placeholder = '__KILN_TASK_UUID__';
  const body = JSON.stringify(tasks.map((task) => ({ ...task, taskUUID: placeholder })));
  const quoted = shellQuote(body).replaceAll(`"${placeholder}"`, `"'"${SHELL_UUID}"'"`);
  return [
    '# export KILN_KEY=<your key>',
    `curl -sS ${shellQuote(`${origin}/v1`)} \\`,
    `  -H "Authorization: Bearer $KILN_KEY" -H 'Content-Type: application/json' \\`,
    `  -d ${quoted}`,
  ].join('\n');
}

const js = (value, indent = 2) => JSON.stringify(value, null, 2).replace(/\n/g, `\n${' '.repeat(indent)}`);

/** @runware/sdk-js over the WebSocket, as the playground itself sends it. */
export function sdkSnippet(origin, task) {
  const { taskType: _t, taskUUID: _u, inputs, ...fields } = task;
  // sdk-js takes `referenceImages` at the top level; with elements the whole `inputs` object goes as it is.
  const request = { ...fields, ...(inputs?.elements ? { inputs } : inputs?.referenceImages ? { referenceImages: inputs.referenceImages } : {}) };
  return [
    "import { RunwareServer } from '@runware/sdk-js';",
    '',
    `const runware = new RunwareServer({ apiKey: process.env.KILN_KEY, url: '${origin.replace(/^http/, 'ws')}/v1' });`,
    `const images = await runware.requestImages(${js(request, 0)});`,
    'console.log(images.map((image) => image.imageURL ?? image.imageUUID));',
  ].join('\n');
}

/** The AI SDK with @runware/ai-sdk-provider (REST); Runware fields go through providerOptions. */
export function aiSdkSnippet(origin, task) {
  const { taskType: _t, taskUUID: _u, model, positivePrompt, width, height, numberResults, seed, ...rest } = task;
  const options = [
    `  model: runware.image('${model}'),`,
    `  prompt: ${JSON.stringify(positivePrompt)},`,
    width && height ? `  size: '${width}x${height}',` : null,
    numberResults && numberResults > 1 ? `  n: ${numberResults},` : null,
    seed ? `  seed: ${seed},` : null,
    Object.keys(rest).length ? `  providerOptions: { runware: ${js(rest, 2)} },` : null,
  ].filter(Boolean);
  return [
    "import { createRunware } from '@runware/ai-sdk-provider';",
    "import { generateImage } from 'ai';",
    '',
    `const runware = createRunware({ apiKey: process.env.KILN_KEY, baseURL: '${origin}/v1' });`,
    'const { images } = await generateImage({',
    ...options,
    '});',
  ].join('\n');
}
