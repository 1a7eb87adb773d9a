// Dark mode: TensorBoard's own setting (class `dark-mode` on the parent page's body, same
// origin) inside TensorBoard, else the browser's prefers-color-scheme. Charts draw on a
// canvas, so they take the theme's colours as a value (Theme) instead of from CSS.

export interface Theme {
  dark: boolean;
  axis: string;
  grid: string;
  ink: string;
  muted: string;
  faint: string;
  accent: string;
}

/** Switch the page to `dark` and read the colours the stylesheet gives it. */
export function applyTheme(dark: boolean): Theme {
  document.documentElement.classList.toggle("dark", dark);
  const css = getComputedStyle(document.documentElement);
  const v = (name: string) => css.getPropertyValue(name).trim() || "#888";
  return { dark, axis: v("--axis"), grid: v("--grid"), ink: v("--ink"), muted: v("--muted"), faint: v("--faint"), accent: v("--accent") };
}

function parentBody(): HTMLElement | null {
  try {
    if (window.parent === window) return null;
    return window.parent.document.body ?? null;
  } catch {
    return null; // cross-origin parent
  }
}

function isDark(): boolean {
  const body = parentBody();
  if (body) return body.classList.contains("dark-mode");
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

/** Whether the theme is dark now; `onChange(dark)` is called whenever that changes. */
export function watchTheme(onChange: (dark: boolean) => void): boolean {
  let current = isDark();
  const check = () => {
    const d = isDark();
    if (d !== current) {
      current = d;
      onChange(d);
    }
  };
  const body = parentBody();
  if (body) new MutationObserver(check).observe(body, { attributes: true, attributeFilter: ["class"] });
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", check);
  return current;
}
