// A run's page: its graph by zone and level coloured by state and kept live, search by id or
// name, filters by state and zone (with the matching objects listed), an object's panel
// (definition, attempts, reasons and output, the blocking ancestor) and the buttons to retry an
// object, rerun the failures and cancel the run.

import { ApiError, follow, getJson, getText, post } from "./api";
import { clear, el, say } from "./dom";
import { GraphCanvas } from "./graph";
import {
  COLORS,
  GraphNode,
  GraphView,
  LiveObject,
  ObjectDetail,
  RunHeader,
  STATES,
  ZONES,
  countsByState,
  duration,
  since,
} from "./model";

const LISTED = 200;

export async function showRun(root: HTMLElement, runId: string, signal: AbortSignal): Promise<void> {
  const base = `/api/runs/${encodeURIComponent(runId)}`;
  const title = el("h1", {}, "Run ", el("code", {}, runId));
  const status = el("span", { id: "run-status", class: "status" });
  const legend = el("div", { id: "legend", class: "legend" });
  const search = el("input", { id: "search", type: "search", placeholder: "id or name" });
  const stateFilter = el("select", { id: "state-filter" }, el("option", { value: "" }, "every state"), ...STATES.map((s) => el("option", { value: s }, s.replace("_", " "))));
  const zoneFilter = el("select", { id: "zone-filter" }, el("option", { value: "" }, "every zone"), ...ZONES.map((z) => el("option", { value: z }, z)));
  const rerun = el("button", { id: "rerun", type: "button" }, "Rerun failures");
  const cancel = el("button", { id: "cancel", type: "button" }, "Cancel run");
  const canvas = el("canvas", { id: "graph" });
  const matches = el("div", { id: "matches" });
  const panel = el("aside", { id: "panel" }, el("p", { class: "hint" }, "Click an object, or search for one."));
  root.append(
    title,
    el("div", { class: "toolbar" }, status, legend),
    el("div", { class: "toolbar" }, search, stateFilter, zoneFilter, rerun, cancel),
    el("div", { class: "run-body" }, el("div", { class: "graph-wrap" }, canvas, matches), panel),
  );

  let shown: number | null = null;
  const graph = new GraphCanvas(canvas, (id) => void openObject(id));

  // Chips and listed rows are made once and updated in place: what the user is about to click
  // never goes from under the pointer when a live update comes.
  const chips = new Map<string, HTMLButtonElement>();
  const renderHeader = (h: RunHeader): void => {
    status.textContent = h.outcome;
    status.className = `status ${h.outcome}`;
    status.dataset.status = h.status;
    status.dataset.outcome = h.outcome;
    const counts = countsByState(h);
    for (const s of STATES) {
      let chip = chips.get(s);
      if (!chip) {
        const label = el("span", {});
        chip = el(
          "button",
          { type: "button", class: "chip", "data-state": s, onclick: () => { stateFilter.value = s; applyFilter(); } },
          el("span", { class: "swatch", style: `background:${COLORS[s]}` }),
          label,
        );
        chips.set(s, chip);
        legend.append(chip);
      }
      chip.dataset.count = String(counts[s]);
      chip.lastElementChild!.textContent = `${s.replace("_", " ")} ${counts[s]}`;
      chip.hidden = !counts[s] && !["loaded", "failed", "running"].includes(s);
    }
    cancel.disabled = h.status === "finished";
    rerun.disabled = h.status !== "finished" || counts.failed + counts.upstream_failed + counts.cancelled === 0;
  };

  const matcher = (): ((n: GraphNode) => boolean) | null => {
    const q = search.value.trim().toLowerCase();
    const st = stateFilter.value;
    const z = zoneFilter.value;
    if (!q && !st && !z) return null;
    return (n) =>
      (!st || n.state === st) &&
      (!z || n.zone === z) &&
      (!q || String(n.id).startsWith(q) || n.name.toLowerCase().includes(q));
  };

  let listed: number[] = [];
  const listBody = el("tbody", {});
  const listNote = el("p", { class: "hint" });
  const listTable = el("table", { class: "matches" }, el("thead", {}, el("tr", {}, ...["id", "name", "zone", "state", "attempt"].map((h) => el("th", {}, h)))), listBody);
  const applyFilter = (): void => {
    const match = matcher();
    graph.filter(match);
    if (!match) {
      clear(matches);
      listed = [];
      return;
    }
    const found = graph.nodes().filter(match);
    const shownNow = found.slice(0, LISTED);
    const same = shownNow.length === listed.length && shownNow.every((n, i) => n.id === listed[i]);
    if (!same) {
      clear(listBody);
      for (const n of shownNow) {
        listBody.append(
          el(
            "tr",
            { "data-object": String(n.id), onclick: () => void openObject(n.id) },
            el("td", {}, n.id),
            el("td", {}, n.name),
            el("td", {}, n.zone),
            el("td", {}),
            el("td", { class: "num" }),
          ),
        );
      }
      listed = shownNow.map((n) => n.id);
    }
    shownNow.forEach((n, i) => {
      const row = listBody.children[i] as HTMLTableRowElement;
      row.dataset.state = n.state;
      row.children[3].className = `state ${n.state}`;
      row.children[3].textContent = n.state;
      row.children[4].textContent = String(n.attempt);
    });
    listNote.textContent = `${found.length} objects${found.length > LISTED ? `, the first ${LISTED} listed` : ""}`;
    if (!matches.firstChild) matches.append(listNote, listTable);
  };
  for (const input of [search, stateFilter, zoneFilter]) {
    input.addEventListener("input", () => {
      applyFilter();
      // A search that finds one object opens it.
      if (search.value.trim() && listed.length === 1) void openObject(listed[0]);
    });
  }

  const act = async (what: () => Promise<unknown>, done: string): Promise<void> => {
    try {
      await what();
      say(done);
    } catch (e) {
      say(e instanceof Error ? e.message : String(e), true);
    }
  };
  rerun.addEventListener("click", () => void act(() => post(`${base}/rerun`), "failures run again"));
  cancel.addEventListener("click", () => {
    if (confirm(`Cancel run ${runId}? Its attempts in flight are stopped.`)) void act(() => post(`${base}/cancel`), "cancelling");
  });

  async function openObject(id: number): Promise<void> {
    shown = id;
    graph.select(id);
    let detail: ObjectDetail;
    try {
      detail = await getJson<ObjectDetail>(`${base}/objects/${id}`);
    } catch (e) {
      say(e instanceof ApiError ? e.message : String(e), true);
      return;
    }
    if (shown !== id) return;
    clear(panel);
    const link = (oid: number): HTMLElement => el("a", { href: "#", "data-object": String(oid), onclick: (e: Event) => { e.preventDefault(); void openObject(oid); } }, oid);
    // An upstream-failed object is retried through the failed ancestors that block it.
    const retryLabel = detail.state === "upstream_failed" ? "Retry with its failed ancestors" : "Retry";
    const retry = el("button", { id: "retry", type: "button", onclick: () => void act(async () => { await post(`${base}/objects/${id}/retry`); await openObject(id); }, `object ${id} runs again`) }, retryLabel);
    const canRetry = ["failed", "upstream_failed", "cancelled"].includes(detail.state);
    const attempts = el("tbody", {});
    for (const a of detail.attempts) {
      const out = el("pre", { class: "output", "data-attempt": String(a.attempt) });
      const show = el("button", { type: "button", class: "show-output", "data-attempt": String(a.attempt), onclick: async () => { out.textContent = await getText(`${base}/objects/${id}/attempts/${a.attempt}/output`) || "(no output)"; } }, `output (${a.output_bytes} B)`);
      attempts.append(
        el("tr", { "data-attempt": String(a.attempt) }, el("td", {}, a.attempt), el("td", { class: `outcome ${a.outcome}` }, a.outcome), el("td", {}, a.worker ?? ""), el("td", { class: "num" }, duration(a.duration_ms)), el("td", {}, since(a.ended_ms)), el("td", { class: "reason" }, a.reason || a.info || ""), el("td", {}, show)),
        el("tr", {}, el("td", { colspan: "7" }, out)),
      );
    }
    panel.append(
      el("h2", {}, `${detail.id} `, el("span", { class: "name" }, detail.name)),
      el("p", {}, detail.zone, " · ", el("span", { id: "object-state", class: `state ${detail.state}`, "data-state": detail.state }, detail.state), ` · attempt ${detail.attempt}`, " ", canRetry ? retry : null),
      detail.blocked_by ? el("p", { class: "blocked" }, "blocked by failed ancestor ", link(detail.blocked_by)) : "",
      el("p", {}, "parents: ", ...detail.parents.slice(0, 50).flatMap((p) => [link(p), " "])),
      el("p", {}, "children: ", ...detail.children.slice(0, 50).flatMap((c) => [link(c), " "]), detail.children.length > 50 ? `… (${detail.children.length})` : ""),
      el("h3", {}, "Attempts"),
      detail.attempts.length
        ? el("table", { class: "attempts" }, el("thead", {}, el("tr", {}, ...["#", "outcome", "worker", "took", "ended", "reason or info", ""].map((h) => el("th", {}, h)))), attempts)
        : el("p", { class: "hint" }, "No attempt has ended."),
      el("h3", {}, "Definition"),
      el("pre", { class: "definition" }, JSON.stringify(detail.definition, null, 2)),
    );
  }

  const loadGraph = async (): Promise<void> => {
    const [page, view] = await Promise.all([
      getJson<{ run: RunHeader }>(`${base}?limit=1`),
      getJson<GraphView>(`${base}/graph`),
    ]);
    renderHeader(page.run);
    graph.load(view.nodes, view.edges);
    applyFilter();
  };
  await loadGraph();
  requestAnimationFrame(() => {
    document.body.dataset.firstRenderMs = performance.now().toFixed(0);
  });
  let refreshList: number | undefined;
  void follow(
    `/api/events?run=${encodeURIComponent(runId)}`,
    (name, data) => {
      if (name === "resync") return void loadGraph();
      if (name === "run") return;
      if (name !== "objects") return;
      const started = performance.now();
      const update = JSON.parse(data) as { run: RunHeader; objects: LiveObject[] };
      for (const o of update.objects) graph.setState(o.id, o.state, o.attempt);
      renderHeader(update.run);
      graph.redraw();
      if (matcher()) {
        clearTimeout(refreshList);
        refreshList = window.setTimeout(applyFilter, 250);
      }
      if (shown !== null && update.objects.some((o) => o.id === shown)) void openObject(shown);
      requestAnimationFrame(() => {
        document.body.dataset.lastUpdateMs = (performance.now() - started).toFixed(1);
        document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
      });
    },
    (up) => say(up ? "live" : "reconnecting…", !up),
    signal,
  );
}


