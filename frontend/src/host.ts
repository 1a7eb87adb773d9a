// A small client for TensorBoard's plugin host protocol (the parent page side lives in
// TensorBoard's webapp; its own client, plugin_lib, is not published). The iframe posts
// the string "experimental.bootstrap" with a MessagePort to window.parent; afterwards both
// sides exchange JSON strings {type, id, payload, error, isReply} over that port.

export type Listener = (payload: unknown) => unknown;

interface Message {
  type: string;
  id: number;
  payload: unknown;
  error: unknown;
  isReply: boolean;
}

export class HostClient {
  private port: MessagePort | null = null;
  private nextId = 0;
  private waits = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private listeners = new Map<string, Listener>();

  /** Connect to the parent page; false when there is no same-origin parent to talk to. */
  connect(): boolean {
    let parent: Window;
    try {
      parent = window.parent;
      if (!parent || parent === window) return false;
    } catch {
      return false;
    }
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.port.onmessage = (ev: MessageEvent) => void this.onMessage(ev);
    this.port.start();
    try {
      // Same-origin target: TensorBoard's page. A foreign parent never gets the port.
      parent.postMessage("experimental.bootstrap", window.location.origin, [channel.port2]);
    } catch {
      this.port = null;
      return false;
    }
    return true;
  }

  get connected(): boolean {
    return this.port !== null;
  }

  listen(type: string, fn: Listener): void {
    this.listeners.set(type, fn);
  }

  /** Send a request; rejects after timeoutMs (a host that does not speak the protocol). */
  request<T>(type: string, payload: unknown = null, timeoutMs = 3000): Promise<T> {
    const port = this.port;
    if (!port) return Promise.reject(new Error("not connected to a TensorBoard host"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.waits.delete(id);
        reject(new Error(`no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waits.set(id, {
        resolve: (v) => {
          window.clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          window.clearTimeout(timer);
          reject(e);
        },
      });
      this.post({ type, id, payload, error: null, isReply: false });
    });
  }

  private post(m: Message): void {
    this.port?.postMessage(JSON.stringify(m));
  }

  private async onMessage(ev: MessageEvent): Promise<void> {
    let m: Message;
    try {
      m = typeof ev.data === "string" ? JSON.parse(ev.data) : ev.data;
    } catch {
      return;
    }
    if (!m || typeof m !== "object" || typeof m.type !== "string") return;
    if (m.isReply) {
      const w = this.waits.get(m.id);
      if (!w) return;
      this.waits.delete(m.id);
      if (m.error) w.reject(new Error(typeof m.error === "string" ? m.error : JSON.stringify(m.error)));
      else w.resolve(m.payload);
      return;
    }
    // A broadcast or request from the host: always answer, so its promise settles.
    let payload: unknown = null;
    let error: string | null = null;
    const fn = this.listeners.get(m.type);
    if (fn) {
      try {
        payload = (await fn(m.payload)) ?? null;
      } catch (e) {
        error = (e as Error)?.message ?? String(e);
      }
    }
    this.post({ type: m.type, id: m.id, payload, error, isReply: true });
  }
}
