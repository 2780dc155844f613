// The runs list: every run, newest first, with its status, counts, start and duration, kept
// live from the server's `run` events (no polling).

import { follow, getJson } from "./api";
import { clear, el, say } from "./dom";
import { RunHeader, countsByState, duration, since } from "./model";

interface RunList {
  total: number;
  runs: (RunHeader & { summary: { loaded: number; failed: number; objects: number } })[];
}

export async function showRuns(root: HTMLElement, signal: AbortSignal): Promise<void> {
  const body = el("tbody", { id: "runs-body" });
  root.append(
    el("h1", {}, "Runs"),
    el(
      "table",
      { class: "runs" },
      el(
        "thead",
        {},
        el("tr", {}, ...["run", "status", "loaded", "failed", "objects", "started", "duration", "source"].map((h) => el("th", {}, h))),
      ),
      body,
    ),
  );
  const rows = new Map<string, HTMLTableRowElement>();
  const render = (h: RunHeader): void => {
    const c = countsByState(h);
    const end = h.status === "finished" ? h.updated_ms : Date.now();
    const row = el(
      "tr",
      { "data-run": h.run_id, "data-status": h.status },
      el("td", {}, el("a", { href: `/runs/${encodeURIComponent(h.run_id)}` }, h.run_id)),
      el("td", { class: `status ${h.status}` }, h.status),
      el("td", { class: "num" }, c.loaded),
      el("td", { class: "num" }, c.failed + c.upstream_failed),
      el("td", { class: "num" }, h.objects),
      el("td", {}, since(h.created_ms)),
      el("td", { class: "num" }, duration(Math.max(0, end - h.created_ms))),
      el("td", { class: "source" }, h.source),
    );
    const old = rows.get(h.run_id);
    if (old) old.replaceWith(row);
    else body.prepend(row);
    rows.set(h.run_id, row);
  };
  const load = async (): Promise<void> => {
    const list = await getJson<RunList>("/api/runs?limit=100");
    clear(body);
    rows.clear();
    for (const r of [...list.runs].reverse()) render(r);
    if (!list.runs.length) body.append(el("tr", {}, el("td", { colspan: "8" }, "No runs yet.")));
  };
  await load();
  void follow(
    "/api/events",
    (name, data) => {
      if (name === "run") render(JSON.parse(data) as RunHeader);
      else if (name === "resync") void load();
    },
    (up) => say(up ? "live" : "reconnecting…", !up),
    signal,
  );
}
