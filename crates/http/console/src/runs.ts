// The runs list: every run, newest first, with its outcome, counts, start and duration, kept
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
        el("tr", {}, ...["run", "outcome", "loaded", "failed", "objects", "started", "duration", "source"].map((h) => el("th", {}, h))),
      ),
      body,
    ),
  );
  const rows = new Map<string, HTMLTableRowElement>();
  // A run's row is made once and its cells updated in place, so that a link being clicked
  // never goes from under the pointer.
  const render = (h: RunHeader): void => {
    let row = rows.get(h.run_id);
    if (!row) {
      row = el(
        "tr",
        { "data-run": h.run_id },
        el("td", {}, el("a", { href: `/runs/${encodeURIComponent(h.run_id)}` }, h.run_id)),
        ...Array.from({ length: 7 }, () => el("td", {})),
      );
      body.prepend(row);
      rows.set(h.run_id, row);
    }
    const c = countsByState(h);
    const end = h.status === "finished" ? h.updated_ms : Date.now();
    const cells = row.children;
    row.dataset.status = h.status;
    row.dataset.outcome = h.outcome;
    cells[1].className = `status ${h.outcome}`;
    cells[1].textContent = h.outcome;
    const values: [number, string, string][] = [
      [2, String(c.loaded), "num"],
      [3, String(c.failed + c.upstream_failed), "num"],
      [4, String(h.objects), "num"],
      [5, since(h.created_ms), ""],
      [6, duration(Math.max(0, end - h.created_ms)), "num"],
      [7, h.source, "source"],
    ];
    for (const [i, text, cls] of values) {
      cells[i].textContent = text;
      cells[i].className = cls;
    }
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
