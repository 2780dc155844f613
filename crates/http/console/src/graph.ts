// A run's graph on a canvas, laid out by zone and level: each zone a band (raw on top), each
// level a block of columns within it, each object a square coloured by its state. Ten thousand
// objects draw in a few milliseconds; links are drawn for the selected object only (its
// parents and children), the detail on demand. Pan by dragging, zoom with the wheel.

import { COLORS, GraphNode, State, ZONES } from "./model";

const CELL = 12; // a square and its gap, in world units
const SIZE = 9;
const BAND_GAP = 48;
const LEVEL_GAP = 24;

interface Placed {
  node: GraphNode;
  x: number;
  y: number;
}

export class GraphCanvas {
  private placed: Placed[] = [];
  private byId = new Map<number, Placed>();
  private parents = new Map<number, number[]>();
  private children = new Map<number, number[]>();
  private bands: { zone: string; y: number; height: number }[] = [];
  private scale = 1;
  private dx = 0;
  private dy = 0;
  private selected: number | null = null;
  private highlight: ((n: GraphNode) => boolean) | null = null;
  private pending = false;
  private width = 0;
  private height = 0;

  constructor(
    private canvas: HTMLCanvasElement,
    private onPick: (id: number) => void,
  ) {
    this.bindPointer();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  /** Lays the graph out and fits it in view. */
  load(nodes: GraphNode[], edges: [number, number][]): void {
    this.parents.clear();
    this.children.clear();
    for (const [p, c] of edges) {
      (this.parents.get(c) ?? this.parents.set(c, []).get(c)!).push(p);
      (this.children.get(p) ?? this.children.set(p, []).get(p)!).push(c);
    }
    this.layout(nodes);
    this.resize();
    this.fit();
  }

  private layout(nodes: GraphNode[]): void {
    this.placed = [];
    this.byId.clear();
    this.bands = [];
    let y = 0;
    for (const zone of ZONES) {
      const inZone = nodes.filter((n) => n.zone === zone);
      if (!inZone.length) continue;
      const levels = new Map<number, GraphNode[]>();
      for (const n of inZone) (levels.get(n.level) ?? levels.set(n.level, []).get(n.level)!).push(n);
      let x = 0;
      let bandHeight = 0;
      for (const level of [...levels.keys()].sort((a, b) => a - b)) {
        const group = levels.get(level)!.sort((a, b) => a.id - b.id);
        // Blocks three times as wide as tall: the bands fill a screen-shaped view.
        const rows = Math.max(1, Math.ceil(Math.sqrt(group.length / 3)));
        const cols = Math.ceil(group.length / rows);
        group.forEach((node, i) => {
          const p = { node, x: x + Math.floor(i / rows) * CELL, y: y + (i % rows) * CELL };
          this.placed.push(p);
          this.byId.set(node.id, p);
        });
        x += cols * CELL + LEVEL_GAP;
        bandHeight = Math.max(bandHeight, rows * CELL);
      }
      this.bands.push({ zone, y, height: bandHeight });
      y += bandHeight + BAND_GAP;
    }
  }

  setState(id: number, state: State, attempt: number): void {
    const p = this.byId.get(id);
    if (p) {
      p.node.state = state;
      p.node.attempt = attempt;
    }
  }

  node(id: number): GraphNode | undefined {
    return this.byId.get(id)?.node;
  }

  nodes(): GraphNode[] {
    return this.placed.map((p) => p.node);
  }

  select(id: number | null): void {
    this.selected = id;
    const p = id === null ? undefined : this.byId.get(id);
    if (p && this.scale < 1) {
      this.scale = 1.5;
      this.dx = this.width / 2 - p.x * this.scale;
      this.dy = this.height / 2 - p.y * this.scale;
    }
    this.redraw();
  }

  /** Objects that match are drawn in full, the others faded (`null`: all in full). */
  filter(match: ((n: GraphNode) => boolean) | null): void {
    this.highlight = match;
    this.redraw();
  }

  fit(): void {
    const maxX = Math.max(1, ...this.placed.map((p) => p.x + CELL));
    const maxY = Math.max(1, ...this.placed.map((p) => p.y + CELL));
    this.scale = Math.min((this.width - 100) / maxX, (this.height - 20) / maxY, 3);
    this.dx = 90;
    this.dy = 10;
    this.redraw();
  }

  /** Draws on the next frame (many updates in one frame draw once). */
  redraw(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private resize(): void {
    const ratio = window.devicePixelRatio || 1;
    this.width = this.canvas.clientWidth;
    this.height = this.canvas.clientHeight;
    this.canvas.width = Math.floor(this.width * ratio);
    this.canvas.height = Math.floor(this.height * ratio);
    this.canvas.getContext("2d")!.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.redraw();
  }

  draw(): void {
    const ctx = this.canvas.getContext("2d")!;
    ctx.clearRect(0, 0, this.width, this.height);
    const s = this.scale;
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#555";
    for (const b of this.bands) ctx.fillText(b.zone, 4, this.dy + (b.y + b.height / 2) * s);
    const size = Math.max(1, SIZE * s);
    for (const p of this.placed) {
      const x = this.dx + p.x * s;
      const y = this.dy + p.y * s;
      if (x < -size || y < -size || x > this.width || y > this.height) continue;
      ctx.globalAlpha = this.highlight && !this.highlight(p.node) ? 0.15 : 1;
      ctx.fillStyle = COLORS[p.node.state];
      ctx.fillRect(x, y, size, size);
    }
    ctx.globalAlpha = 1;
    const sel = this.selected === null ? undefined : this.byId.get(this.selected);
    if (sel) {
      const center = (p: Placed): [number, number] => [
        this.dx + (p.x + SIZE / 2) * s,
        this.dy + (p.y + SIZE / 2) * s,
      ];
      const [sx, sy] = center(sel);
      ctx.lineWidth = 1;
      for (const [list, color] of [
        [this.parents.get(sel.node.id) ?? [], "#333"],
        [this.children.get(sel.node.id) ?? [], "#888"],
      ] as [number[], string][]) {
        ctx.strokeStyle = color;
        for (const id of list) {
          const o = this.byId.get(id);
          if (!o) continue;
          const [ox, oy] = center(o);
          ctx.beginPath();
          ctx.moveTo(sx, sy);
          ctx.lineTo(ox, oy);
          ctx.stroke();
        }
      }
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(sx - size, sy - size, size * 2, size * 2);
    }
  }

  private at(clientX: number, clientY: number): number | null {
    const r = this.canvas.getBoundingClientRect();
    const wx = (clientX - r.left - this.dx) / this.scale;
    const wy = (clientY - r.top - this.dy) / this.scale;
    let best: Placed | null = null;
    let bestD = (CELL * 1.5) ** 2;
    for (const p of this.placed) {
      const d = (p.x + SIZE / 2 - wx) ** 2 + (p.y + SIZE / 2 - wy) ** 2;
      if (d < bestD) {
        bestD = d;
        best = p;
      }
    }
    return best ? best.node.id : null;
  }

  private bindPointer(): void {
    let drag: { x: number; y: number; moved: boolean } | null = null;
    this.canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, moved: false };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const mx = e.clientX - drag.x;
      const my = e.clientY - drag.y;
      if (Math.abs(mx) + Math.abs(my) > 3) drag.moved = true;
      this.dx += mx;
      this.dy += my;
      drag.x = e.clientX;
      drag.y = e.clientY;
      this.redraw();
    });
    this.canvas.addEventListener("pointerup", (e) => {
      if (drag && !drag.moved) {
        const id = this.at(e.clientX, e.clientY);
        if (id !== null) this.onPick(id);
      }
      drag = null;
    });
    this.canvas.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const r = this.canvas.getBoundingClientRect();
        const cx = e.clientX - r.left;
        const cy = e.clientY - r.top;
        const k = Math.exp(-e.deltaY * 0.0015);
        const next = Math.min(20, Math.max(0.02, this.scale * k));
        this.dx = cx - ((cx - this.dx) * next) / this.scale;
        this.dy = cy - ((cy - this.dy) * next) / this.scale;
        this.scale = next;
        this.redraw();
      },
      { passive: false },
    );
  }
}
