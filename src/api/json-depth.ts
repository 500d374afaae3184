/**
 * A cheap look at a JSON text before `JSON.parse` sees it: the deepest nesting of arrays and
 * objects, counted in one pass over the characters (strings skipped, escapes honoured). Parsing
 * megabytes of `[[[[…` costs the event loop seconds and the stack its depth; this costs a loop.
 */

/** True when `text` nests arrays/objects deeper than `maxDepth` (stops at the first level too deep). */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
