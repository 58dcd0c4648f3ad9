/** Plots as plain SVG text: line charts (log or linear axes), horizontal bar charts, timelines. */

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a === 0) return '0';
  return `${+v.toPrecision(3)}`;
}

interface Axis {
  readonly min: number;
  readonly max: number;
  readonly log: boolean;
  readonly ticks: number[];
}

function axis(values: number[], log: boolean, zero = false): Axis {
  const vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let min = vs.length ? Math.min(...vs) : 0;
  let max = vs.length ? Math.max(...vs) : 1;
  if (log) {
    min = 10 ** Math.floor(Math.log10(min));
    max = 10 ** Math.ceil(Math.log10(max));
    if (min === max) max = min * 10;
    const ticks: number[] = [];
    for (let t = min; t <= max * 1.0001; t *= 10) ticks.push(t);
    return { min, max, log, ticks };
  }
  if (zero) min = Math.min(0, min);
  if (min === max) max = min + 1;
  const step = niceStep((max - min) / 5);
  min = Math.floor(min / step) * step;
  max = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = min; t <= max + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { min, max, log, ticks };
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function scale(a: Axis, from: number, to: number): (v: number) => number {
  if (a.log) {
    const l0 = Math.log10(a.min);
    const l1 = Math.log10(a.max);
    return (v) => from + ((Math.log10(v) - l0) / (l1 - l0)) * (to - from);
  }
  return (v) => from + ((v - a.min) / (a.max - a.min)) * (to - from);
}

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly dashed?: boolean;
}

export interface LineChart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly logX?: boolean;
  readonly logY?: boolean;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
}

export function lineChart(c: LineChart): string {
  const W = c.width ?? 720;
  const H = c.height ?? 400;
  const m = { l: 72, r: 190, t: 40, b: 52 };
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1]));
  const ax = axis(xs, c.logX ?? false);
  const ay = axis(ys, c.logY ?? false, true);
  const sx = scale(ax, m.l, W - m.r);
  const sy = scale(ay, H - m.b, m.t);
  const out: string[] = [header(W, H, c.title)];
  for (const t of ay.ticks) {
    const y = sy(t);
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${num(y)}" y2="${num(y)}" stroke="#e5e5e5"/>`);
    out.push(text(m.l - 6, y + 4, label(t), 'end', 11));
  }
  for (const t of ax.ticks) {
    const x = sx(t);
    out.push(`<line x1="${num(x)}" x2="${num(x)}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    out.push(text(x, H - m.b + 16, label(t), 'middle', 11));
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#999"/>`,
  );
  out.push(text((m.l + W - m.r) / 2, H - 12, c.xLabel, 'middle', 12));
  out.push(
    `<text x="16" y="${num((m.t + H - m.b) / 2)}" ${FONT} font-size="12" text-anchor="middle" transform="rotate(-90 16 ${num((m.t + H - m.b) / 2)})">${esc(c.yLabel)}</text>`,
  );
  c.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!ay.log || y > 0));
    if (pts.length > 1) {
      const d = pts.map(([x, y], j) => `${j ? 'L' : 'M'}${num(sx(x))},${num(sy(y))}`).join(' ');
      out.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
    }
    for (const [x, y] of pts)
      out.push(`<circle cx="${num(sx(x))}" cy="${num(sy(y))}" r="3" fill="${color}"/>`);
    const ly = m.t + 10 + i * 20;
    out.push(
      `<line x1="${W - m.r + 12}" x2="${W - m.r + 36}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(text(W - m.r + 42, ly + 4, s.name, 'start', 11));
  });
  out.push('</svg>\n');
  return out.join('\n');
}

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Text drawn after the bar; defaults to the value. */
  readonly note?: string;
  readonly color?: string;
}

export function barChart(c: {
  title: string;
  unit: string;
  bars: readonly Bar[];
  width?: number;
  logX?: boolean;
}): string {
  const W = c.width ?? 720;
  const rowH = 26;
  const m = { l: 260, r: 120, t: 40, b: 40 };
  const H = m.t + m.b + rowH * c.bars.length;
  const ax = axis(
    c.bars.map((b) => b.value),
    c.logX ?? false,
    true,
  );
  const sx = scale(ax, m.l, W - m.r);
  const out: string[] = [header(W, H, c.title)];
  for (const t of ax.ticks) {
    const x = sx(t);
    out.push(`<line x1="${num(x)}" x2="${num(x)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    out.push(text(x, H - m.b + 16, label(t), 'middle', 11));
  }
  out.push(text((m.l + W - m.r) / 2, H - 6, c.unit, 'middle', 12));
  c.bars.forEach((b, i) => {
    const y = m.t + i * rowH + 4;
    const x0 = sx(ax.log ? ax.min : Math.max(ax.min, 0));
    const x1 = Number.isFinite(b.value) && (!ax.log || b.value > 0) ? sx(b.value) : x0;
    out.push(text(m.l - 8, y + 14, b.label, 'end', 12));
    out.push(
      `<rect x="${num(x0)}" y="${y}" width="${num(Math.max(1, x1 - x0))}" height="${rowH - 8}" fill="${b.color ?? PALETTE[0]}"/>`,
    );
    out.push(text(x1 + 6, y + 14, b.note ?? label(b.value), 'start', 11));
  });
  out.push('</svg>\n');
  return out.join('\n');
}

export interface Span {
  readonly start: number;
  readonly end: number;
  readonly kind: string;
}

export interface Lane {
  readonly label: string;
  readonly spans: readonly Span[];
}

export interface TimelinePanel {
  readonly title: string;
  readonly lanes: readonly Lane[];
  /** Vertical markers (e.g. the lower bound, the critical install's arrival). */
  readonly markers?: ReadonlyArray<{ readonly at: number; readonly label: string }>;
}

/** Stacked panels of lanes with spans; colours by kind, shared x axis in seconds. */
export function timeline(c: {
  title: string;
  panels: readonly TimelinePanel[];
  colors: Readonly<Record<string, string>>;
  width?: number;
}): string {
  const W = c.width ?? 760;
  const laneH = 12;
  const m = { l: 90, r: 20, t: 40, b: 60 };
  const panelGap = 34;
  const maxX = Math.max(1, ...c.panels.flatMap((p) => p.lanes.flatMap((l) => l.spans.map((s) => s.end))));
  const ax = axis([0, maxX], false, true);
  const sx = scale(ax, m.l, W - m.r);
  const heights = c.panels.map((p) => p.lanes.length * laneH);
  const H = m.t + heights.reduce((a, b) => a + b + panelGap, 0) + m.b - panelGap + 20;
  const out: string[] = [header(W, H, c.title)];
  let y = m.t + 18;
  for (const [pi, p] of c.panels.entries()) {
    out.push(text(m.l, y - 5, p.title, 'start', 12, 'bold'));
    const ph = heights[pi] as number;
    for (const t of ax.ticks) {
      const x = sx(t);
      out.push(`<line x1="${num(x)}" x2="${num(x)}" y1="${y}" y2="${y + ph}" stroke="#eee"/>`);
    }
    p.lanes.forEach((l, li) => {
      const ly = y + li * laneH;
      out.push(text(m.l - 6, ly + laneH - 3, l.label, 'end', 9));
      for (const s of l.spans) {
        const x0 = sx(Math.max(0, s.start));
        const x1 = sx(Math.max(s.start, s.end));
        out.push(
          `<rect x="${num(x0)}" y="${ly + 1}" width="${num(Math.max(1, x1 - x0))}" height="${laneH - 2}" fill="${c.colors[s.kind] ?? '#999'}"><title>${esc(`${l.label} ${s.kind} ${s.start.toFixed(2)}–${s.end.toFixed(2)} s`)}</title></rect>`,
        );
      }
    });
    for (const mk of p.markers ?? []) {
      const x = sx(mk.at);
      out.push(
        `<line x1="${num(x)}" x2="${num(x)}" y1="${y - 2}" y2="${y + ph + 2}" stroke="#000" stroke-dasharray="3 3"/>`,
      );
      out.push(text(x + 3, y + ph + 11, mk.label, 'start', 9));
    }
    out.push(`<rect x="${m.l}" y="${y}" width="${W - m.l - m.r}" height="${ph}" fill="none" stroke="#999"/>`);
    y += ph + panelGap;
  }
  const axisY = y - panelGap + 14;
  for (const t of ax.ticks) out.push(text(sx(t), axisY, label(t), 'middle', 11));
  out.push(text((m.l + W - m.r) / 2, axisY + 16, 'seconds since the storm started', 'middle', 12));
  let lx = m.l;
  for (const [kind, color] of Object.entries(c.colors)) {
    out.push(`<rect x="${lx}" y="${axisY + 26}" width="12" height="10" fill="${color}"/>`);
    out.push(text(lx + 16, axisY + 35, kind, 'start', 11));
    lx += 24 + kind.length * 7;
  }
  out.push('</svg>\n');
  return out.join('\n');
}

function header(W: number, H: number, title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    text(W / 2, 22, title, 'middle', 14, 'bold'),
  ].join('\n');
}

function text(x: number, y: number, s: string, anchor: string, size: number, weight = 'normal'): string {
  return `<text x="${num(x)}" y="${num(y)}" ${FONT} font-size="${size}" font-weight="${weight}" text-anchor="${anchor}">${esc(s)}</text>`;
}
