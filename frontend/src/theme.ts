// Dark mode: TensorBoard's own setting (class `dark-mode` on the parent page's body, same
// origin) when we are inside TensorBoard, else the browser's prefers-color-scheme.

function parentBody(): HTMLElement | null {
  try {
    if (window.parent === window) return null;
    return window.parent.document.body ?? null;
  } catch {
    return null; // cross-origin parent
  }
}

export function isDark(): boolean {
  const body = parentBody();
  if (body) return body.classList.contains("dark-mode");
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

/** Call `onChange(dark)` now and whenever the effective theme changes. */
export function watchTheme(onChange: (dark: boolean) => void): void {
  let current = isDark();
  onChange(current);
  const check = () => {
    const d = isDark();
    if (d !== current) {
      current = d;
      onChange(d);
    }
  };
  const body = parentBody();
  if (body) {
    try {
      new MutationObserver(check).observe(body, { attributes: true, attributeFilter: ["class"] });
    } catch {
      /* ignore */
    }
  }
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", check);
}
