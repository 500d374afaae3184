/**
 * Headless Chromium for the browser suites, driven by playwright-core. Where no browser is
 * installed the suite skips with a printed reason; with KILN_REQUIRE_SERVICES=1 (set by .ci/run,
 * which installs Debian's `chromium`) a missing browser fails the run instead.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM_PATH = process.env.KILN_TEST_CHROMIUM ?? '/usr/bin/chromium';
const REQUIRED = process.env.KILN_REQUIRE_SERVICES === '1' || process.env.KILN_REQUIRE_SERVICES === 'true';

/** Flags for a quiet, offline, container-friendly headless run. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** `undefined` when Chromium is there; otherwise the reason to skip (printed). Throws under KILN_REQUIRE_SERVICES. */
export function browserProblem(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set KILN_TEST_CHROMIUM)`;
  if (REQUIRED) throw new Error(`${reason}, and KILN_REQUIRE_SERVICES is set`);
  process.stdout.write(`# skipping: ${reason}\n`);
  return reason;
}
