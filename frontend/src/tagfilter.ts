// The tag filter's one rule, shared with the route and the CLI (tb_stagnation/tagfilter.py):
// a regular expression searched in tag names, case-insensitive (as TensorBoard's own tag
// filters are), with the same refusals and the same messages. JavaScript and Python read
// most regexes alike; what only one of them reads is refused here, so the tab never
// accepts a pattern the route would refuse, nor reads one the route accepts another way.
// One difference is left: \w, \b and \d are ASCII here and Unicode in Python, which shows
// only on tag names with non-ASCII letters or digits (tests/test_tag_filter.py).

/** Longest pattern accepted, as tagfilter.MAX_LENGTH. */
export const MAX_LENGTH = 256;

// As tagfilter._NESTED_QUANTIFIER and tagfilter._BACKREFERENCE, character for character.
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[*+?}|](?:[^()\\]|\\.)*\)\s*[*+?{]/;
const BACKREFERENCE = /\\[1-9]|\(\?P=|\\k</;

/**
 * Syntax Python's `re` and JavaScript's `u`-mode RegExp read differently, or only one reads:
 * named groups `(?<n>` (Python: `(?P<n>`), look-behind (Python wants a fixed width),
 * escapes Python lacks (`\c`, `\p{}`, `\u{}`), `{,n}` (a repeat in Python) and a
 * class opening on `]` (empty in JavaScript, a literal `]` in Python).
 */
const DIALECT = /\(\?<|\\[cpP]|\\u\{|\{,|\[\^?\]/;

export interface TagFilter {
  /** The compiled filter; null for none (an empty pattern) or a refused one. */
  re: RegExp | null;
  /** Why the pattern is refused, as the route and the CLI say it; null when it is not. */
  error: string | null;
}

export function compileTagFilter(pattern: string): TagFilter {
  if (!pattern) return { re: null, error: null };
  if ([...pattern].length > MAX_LENGTH) return { re: null, error: `tag regex longer than ${MAX_LENGTH} characters` };
  if (NESTED_QUANTIFIER.test(pattern) || BACKREFERENCE.test(pattern)) {
    return {
      re: null,
      error:
        "tag regex with a quantified group holding a quantifier or alternation, " +
        "or a backreference, could take unbounded time; simplify it",
    };
  }
  if (DIALECT.test(pattern)) {
    return { re: null, error: "invalid tag regex: syntax the tab and the server read differently" };
  }
  try {
    return { re: new RegExp(pattern, "iu"), error: null };
  } catch (e) {
    // "Invalid regular expression: /PATTERN/iu: WHY": the pattern is in the box already.
    const why = (e as Error).message.split(": ").pop();
    return { re: null, error: `invalid tag regex: ${why}` };
  }
}
