// Line charts as inline SVG: a few series over time, axes with round ticks, a described figure.

import { useId } from "react";

export interface Series {
  name: string;
  values: (number | null)[];
  className: string; // the stroke colour comes from the stylesheet (CSP: no inline styles)
}

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function format(value: number): string {
  if (value === 0) return "0";
  if (Math.abs(value) >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (Math.abs(value) >= 10) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(1);
  return value.toPrecision(2);
}

export function LineChart({
  title,
  unit,
  times,
  series,
}: {
  title: string;
  unit: string;
  times: number[];
  series: Series[];
}) {
  const id = useId();
  const width = 480;
  const height = 180;
  const pad = { left: 44, right: 12, top: 12, bottom: 26 };
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = niceMax(Math.max(0, ...all));
  const start = times[0] ?? 0;
  const end = times[times.length - 1] ?? start + 1;
  const span = Math.max(end - start, 1);
  const x = (t: number) => pad.left + ((t - start) / span) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const ticks = [0, max / 2, max];
  const latest = series.map((s) => {
    const values = s.values.filter((v): v is number => v !== null);
    return `${s.name} ${values.length ? format(values[values.length - 1]) : "no data"} ${unit}`;
  });
  const summary = times.length
    ? `${title}, last ${Math.round(span / 60)} minutes; latest: ${latest.join(", ")}`
    : `${title}: no samples yet`;

  return (
    <figure className="chart">
      <figcaption id={`${id}-title`}>
        <strong>{title}</strong> <span className="muted small">({unit})</span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-labelledby={`${id}-title ${id}-desc`}>
        <desc id={`${id}-desc`}>{summary}</desc>
        {ticks.map((t) => (
          <g key={t}>
            <line className="chart-grid" x1={pad.left} x2={width - pad.right} y1={y(t)} y2={y(t)} />
            <text className="chart-label" x={pad.left - 6} y={y(t) + 4} textAnchor="end">
              {format(t)}
            </text>
          </g>
        ))}
        {times.length ? (
          <>
            <text className="chart-label" x={pad.left} y={height - 6}>
              {new Date(start * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
            </text>
            <text className="chart-label" x={width - pad.right} y={height - 6} textAnchor="end">
              {new Date(end * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
            </text>
          </>
        ) : (
          <text className="chart-label" x={width / 2} y={height / 2} textAnchor="middle">
            Collecting samples…
          </text>
        )}
        {series.map((s) => {
          let d = "";
          s.values.forEach((v, i) => {
            if (v === null) return;
            d += `${d ? "L" : "M"}${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`;
          });
          const single = s.values.filter((v) => v !== null).length === 1;
          return (
            <g key={s.name} className={s.className}>
              <path className="chart-line" d={d} />
              {single
                ? s.values.map((v, i) =>
                    v === null ? null : <circle key={i} className="chart-dot" cx={x(times[i])} cy={y(v)} r={3} />,
                  )
                : null}
            </g>
          );
        })}
      </svg>
      <ul className="legend">
        {series.map((s, i) => (
          <li key={s.name} className={s.className}>
            <span className="swatch" aria-hidden="true" />
            {latest[i]}
          </li>
        ))}
      </ul>
    </figure>
  );
}
