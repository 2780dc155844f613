// What the API answers, as the console reads it.

export type State =
  | "waiting"
  | "queued"
  | "dispatched"
  | "held"
  | "running"
  | "retry_wait"
  | "loaded"
  | "failed"
  | "upstream_failed"
  | "cancelled";

export const STATES: State[] = [
  "waiting",
  "queued",
  "dispatched",
  "held",
  "running",
  "retry_wait",
  "loaded",
  "failed",
  "upstream_failed",
  "cancelled",
];

export const COLORS: Record<State, string> = {
  waiting: "#c9ced6",
  queued: "#9ecae1",
  dispatched: "#6baed6",
  held: "#9e9ac8",
  running: "#2171b5",
  retry_wait: "#fdae6b",
  loaded: "#31a354",
  failed: "#de2d26",
  upstream_failed: "#fc9272",
  cancelled: "#756bb1",
};

export const ZONES = ["1-Raw", "2-Standardized", "3-Application"];

export interface ZoneCounts extends Record<State, number> {
  objects: number;
}

export interface RunHeader {
  run_id: string;
  source: string;
  status: string;
  /** running, succeeded, failed, cancelled or interrupted: how the run stands or ended. */
  outcome: string;
  cancelled: boolean;
  created_ms: number;
  updated_ms: number;
  objects: number;
  counts: { zones: ZoneCounts[] };
}

export interface GraphNode {
  id: number;
  name: string;
  zone: string;
  state: State;
  attempt: number;
  level: number;
}

export interface GraphView {
  nodes: GraphNode[];
  edges: [number, number][];
}

export interface Attempt {
  attempt: number;
  outcome: string;
  reason?: string;
  info?: string;
  worker?: string;
  dispatched_ms: number;
  started_ms: number;
  ended_ms: number;
  duration_ms: number;
  output_bytes: number;
}

export interface ObjectDetail {
  run_id: string;
  id: number;
  name: string;
  zone: string;
  state: State;
  attempt: number;
  parents: number[];
  children: number[];
  blocked_by?: number | null;
  definition: unknown;
  attempts: Attempt[];
}

export interface LiveObject {
  id: number;
  state: State;
  attempt: number;
}

/** Objects of a run in each state, all zones. */
export function countsByState(header: RunHeader): Record<State, number> {
  const out = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<State, number>;
  for (const z of header.counts.zones) for (const s of STATES) out[s] += z[s] ?? 0;
  return out;
}

export function since(ms: number): string {
  if (!ms) return "";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 120 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
