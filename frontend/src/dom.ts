// Building the DOM: h() for elements (strings always become text, never HTML) and Slot, the
// place on the page a view is mounted in.
import { shallowEqual } from "./memo";

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
export type Child = Node | string | number | null | undefined | false;

/** Create an element. Strings become text nodes: user data is never parsed as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "class") el.className = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** What a view owns beyond its elements (charts, observers): released when it is replaced. */
export class Scope {
  private releases: (() => void)[] = [];

  add(release: () => void): void {
    this.releases.push(release);
  }

  dispose(): void {
    for (const release of this.releases.splice(0)) release();
  }
}

export type View<P> = (props: P, scope: Scope) => Node;

/**
 * A place on the page showing one view of some props, or nothing (null props). show()
 * rebuilds the view only when the props differ (shallowEqual) from the shown ones, and
 * keeps the user's place across a rebuild: the focused element (by `data-focus-key`,
 * caret included) and the scroll of every `data-scroll-key` element.
 */
export class Slot<P extends object> {
  readonly el = h("div", { class: "stg-slot" });
  private props: P | null = null;
  private scope = new Scope();

  constructor(private readonly view: View<P>) {}

  show(props: P | null): void {
    if (props === this.props || (props && this.props && shallowEqual(props, this.props))) return;
    this.props = props;
    const place = this.savePlace();
    this.scope.dispose();
    this.scope = new Scope();
    this.el.replaceChildren(...(props ? [this.view(props, this.scope)] : []));
    this.restorePlace(place);
  }

  private savePlace(): Place {
    const active = document.activeElement;
    const focused = active instanceof HTMLElement && this.el.contains(active) ? active : null;
    const scroll = new Map<string, number>();
    for (const el of this.keyed("scrollKey")) scroll.set(el.dataset.scrollKey!, el.scrollTop);
    const input = focused instanceof HTMLInputElement ? focused : null;
    return {
      focusKey: focused?.dataset.focusKey ?? null,
      caret: input && input.selectionStart !== null ? [input.selectionStart, input.selectionEnd ?? input.selectionStart] : null,
      scroll,
    };
  }

  private restorePlace(place: Place): void {
    for (const el of this.keyed("scrollKey")) {
      const top = place.scroll.get(el.dataset.scrollKey!);
      if (top !== undefined) el.scrollTop = top;
    }
    if (place.focusKey === null) return;
    const el = this.keyed("focusKey").find((e) => e.dataset.focusKey === place.focusKey);
    el?.focus({ preventScroll: true });
    if (el instanceof HTMLInputElement && place.caret) el.setSelectionRange(...place.caret);
  }

  private keyed(key: "scrollKey" | "focusKey"): HTMLElement[] {
    const attr = key === "scrollKey" ? "data-scroll-key" : "data-focus-key";
    return Array.from(this.el.querySelectorAll<HTMLElement>(`[${attr}]`));
  }
}

interface Place {
  focusKey: string | null;
  caret: [number, number] | null;
  scroll: Map<string, number>;
}
