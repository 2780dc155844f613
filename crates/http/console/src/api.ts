// The runs API as the console calls it: the bearer token the user gave (kept for the tab's
// session), JSON in and out, a token prompt on 401 and 403, and server-sent events read with
// fetch (so that they carry the token too), reconnecting when the stream ends.

const TOKEN_KEY = "orchestrator.token";

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

/** Asks for a token (a `<dialog>` in the page); resolves once one is given. */
export function askToken(why: string): Promise<void> {
  const dialog = document.getElementById("token-dialog") as HTMLDialogElement;
  const input = document.getElementById("token-input") as HTMLInputElement;
  const reason = document.getElementById("token-reason") as HTMLElement;
  reason.textContent = why;
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        resolve();
      },
      { once: true },
    );
    if (!dialog.open) dialog.showModal();
  });
}

async function request(path: string, init: RequestInit = {}): Promise<Response> {
  for (let tries = 0; ; tries++) {
    const response = await fetch(path, {
      ...init,
      headers: headers(init.headers as Record<string, string>),
    });
    if ((response.status === 401 || response.status === 403) && tries < 3) {
      const body = await response.json().catch(() => ({}));
      await askToken(body.error ?? `HTTP ${response.status}`);
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiError(response.status, body.error ?? `HTTP ${response.status}`);
    }
    return response;
  }
}

export async function getJson<T>(path: string): Promise<T> {
  return (await request(path)).json() as Promise<T>;
}

export async function getText(path: string): Promise<string> {
  return (await request(path)).text();
}

export async function post<T>(path: string): Promise<T> {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
  });
  return response.json() as Promise<T>;
}

/** Follows the server-sent events of `path` until `signal` aborts; reconnects after a drop. */
export async function follow(
  path: string,
  onEvent: (name: string, data: string) => void,
  onState: (connected: boolean) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const response = await request(path, { signal, headers: { Accept: "text/event-stream" } });
      onState(true);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) onEvent(name, data.join("\n"));
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
