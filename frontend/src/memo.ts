// Identity memoisation: what lets one render() call every view without rebuilding the
// ones whose inputs did not change.

/**
 * Equal for memoisation: identical, or plain objects whose own fields are identical (so a
 * props object built afresh on every render still matches while its fields do).
 */
export function shallowEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!isPlain(a) || !isPlain(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** `fn`, answering from its last result while every argument is shallowEqual to last time's. */
export function lastCall<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  let last: { args: A; result: R } | null = null;
  return (...args: A): R => {
    if (last && last.args.length === args.length && args.every((a, i) => shallowEqual(a, last!.args[i]))) {
      return last.result;
    }
    last = { args, result: fn(...args) };
    return last.result;
  };
}
