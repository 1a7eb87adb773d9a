// The tab's stylesheet, injected into a <style> element (the plugin page allows inline
// styles, not inline scripts).
export const CSS = `
:root {
  --bg: #f5f5f5; --card: #ffffff; --ink: #212121; --muted: #616161; --faint: #9e9e9e;
  --line: #e0e0e0; --hover: #f0f4f8; --sel: #e3f2fd; --sel-line: #1976d2; --accent: #f57c00;
  --bar: #78909c; --code: #eceff1; --err: #c62828; --ok: #2e7d32; --grid: rgba(0,0,0,0.07); --axis: #616161;
  color-scheme: light;
}
:root.dark {
  --bg: #303030; --card: #3a3a3a; --ink: #eeeeee; --muted: #bdbdbd; --faint: #8a8a8a;
  --line: #555555; --hover: #444a50; --sel: #1e3a55; --sel-line: #64b5f6; --accent: #ffb74d;
  --bar: #90a4ae; --code: #2a2a2a; --err: #ef9a9a; --ok: #81c784; --grid: rgba(255,255,255,0.09); --axis: #bdbdbd;
  color-scheme: dark;
}
html, body { height: 100%; margin: 0; }
body {
  background: var(--bg); color: var(--ink);
  font: 13px/1.4 Roboto, "Helvetica Neue", Arial, sans-serif;
  overflow: auto;
}
#stg-app { min-height: 100%; box-sizing: border-box; padding: 12px 16px 24px; display: flex; flex-direction: column; gap: 12px; }
/* A Slot is only a place in the page: its view is laid out as a child of #stg-app. */
.stg-slot { display: contents; }
.stg-card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; box-sizing: border-box; min-width: 0; }
.stg-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.stg-head h1 { font-size: 16px; font-weight: 500; margin: 0; }
.stg-sub { color: var(--muted); }
.stg-note { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.stg-note b { color: var(--ink); font-weight: 500; }
.stg-toolbar { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; }
.stg-field { display: flex; align-items: center; gap: 6px; color: var(--muted); }
.stg-field input[type=text], .stg-field input[type=number], .stg-field select {
  font: inherit; color: var(--ink); background: var(--card); border: 1px solid var(--line);
  border-radius: 4px; padding: 3px 6px;
}
.stg-field input[type=text] { width: 170px; }
.stg-field input[type=number] { width: 72px; }
.stg-field input.stg-bad { border-color: var(--err); outline-color: var(--err); }
.stg-invalid { color: var(--err); font-size: 12px; }
.stg-chips { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.stg-chip {
  font: inherit; font-size: 12px; display: inline-flex; align-items: center; gap: 5px; cursor: pointer;
  border: 1px solid var(--line); border-radius: 12px; padding: 1px 9px 1px 6px;
  background: transparent; color: var(--ink); max-width: 260px;
}
.stg-chip[aria-pressed=false] { opacity: 0.45; }
.stg-chip:focus-visible, .stg-btn:focus-visible, th button:focus-visible { outline: 2px solid var(--sel-line); outline-offset: 1px; }
.stg-chip .stg-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.stg-swatch { width: 10px; height: 10px; border-radius: 50%; flex: none; }
.stg-btn {
  font: inherit; font-size: 12px; cursor: pointer; color: var(--sel-line); background: none;
  border: 1px solid var(--line); border-radius: 4px; padding: 2px 8px;
}
.stg-btn:hover { background: var(--hover); }
.stg-badge {
  display: inline-block; font-size: 11px; font-weight: 500; line-height: 16px; padding: 0 7px;
  border-radius: 8px; white-space: nowrap; letter-spacing: 0.02em;
}
.stg-table-wrap { overflow: auto; max-height: 42vh; min-height: 120px; border-top: 1px solid var(--line); }
table.stg-table { border-collapse: separate; border-spacing: 0; width: 100%; font-variant-numeric: tabular-nums; }
.stg-table th {
  position: sticky; top: 0; z-index: 1; background: var(--card); text-align: left; font-weight: 500;
  color: var(--muted); border-bottom: 1px solid var(--line); padding: 0; white-space: nowrap;
}
.stg-table th button {
  font: inherit; color: inherit; background: none; border: 0; padding: 6px 8px; cursor: pointer; width: 100%;
  text-align: inherit; white-space: nowrap;
}
.stg-table th span.stg-th { display: block; padding: 6px 8px; }
.stg-table th[aria-sort=ascending] button::after { content: " ▲"; font-size: 9px; }
.stg-table th[aria-sort=descending] button::after { content: " ▼"; font-size: 9px; }
.stg-table th.num, .stg-table td.num { text-align: right; }
.stg-table td { padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; white-space: nowrap; }
.stg-table tbody tr { cursor: pointer; }
.stg-table tbody tr:hover { background: var(--hover); }
.stg-table tbody tr[aria-selected=true] { background: var(--sel); box-shadow: inset 3px 0 0 var(--sel-line); }
.stg-table tbody tr:focus { outline: 2px solid var(--sel-line); outline-offset: -2px; }
.stg-table tr.stg-nonparam td { color: var(--muted); }
.stg-tagcell { max-width: 420px; overflow: hidden; text-overflow: ellipsis; }
.stg-layer { font-weight: 500; }
.stg-rest { color: var(--muted); }
.stg-run { display: inline-flex; align-items: center; gap: 5px; max-width: 180px; }
.stg-run span:last-child { overflow: hidden; text-overflow: ellipsis; }
.stg-score { display: flex; align-items: center; gap: 8px; }
.stg-bar { width: 110px; height: 8px; background: var(--grid); border-radius: 4px; overflow: hidden; flex: none; }
.stg-bar > div { height: 100%; background: var(--bar); border-radius: 4px; }
.stg-score-val { min-width: 58px; text-align: right; }
.stg-spark { width: 120px; height: 26px; }
.stg-src-measured { color: var(--sel-line); font-weight: 500; }
.stg-src { color: var(--muted); }
.stg-count { color: var(--muted); font-size: 12px; }
.stg-strong { font-weight: 500; }
.stg-tablehead { display: flex; gap: 14px; align-items: baseline; margin: 0 0 6px; }
.stg-detail-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 14px; margin-bottom: 6px; }
.stg-detail-head h2 { font-size: 15px; font-weight: 500; margin: 0; word-break: break-all; }
.stg-detail-head a { color: var(--sel-line); }
.stg-charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 14px; }
.stg-chart-title { font-weight: 500; margin: 2px 0 2px; }
.stg-chart-cap { color: var(--muted); font-size: 12px; margin: 0 0 4px; }
.stg-chart { width: 100%; min-height: 230px; position: relative; }
.stg-profiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(400px, 1fr)); gap: 10px 16px; }
.stg-profile-runs { display: flex; flex-wrap: wrap; gap: 2px 12px; font-weight: 500; margin: 4px 0 2px; }
.stg-profile { width: 100%; min-height: 240px; position: relative; }
/* Keeps the page from jumping while the next selection's series loads. */
.stg-detail-body { min-height: 300px; }
.stg-error-text { color: var(--err); padding: 18px 4px; }
.stg-empty { color: var(--muted); padding: 18px 4px; }
.stg-empty h2 { color: var(--ink); font-size: 15px; font-weight: 500; margin: 0 0 6px; }
.stg-empty pre { background: var(--code); color: var(--ink); padding: 8px 10px; border-radius: 4px; overflow: auto; font-size: 12px; }
.stg-error { border-color: var(--err); }
.stg-error h2 { color: var(--err); font-size: 15px; font-weight: 500; margin: 0 0 6px; }
.stg-error pre { white-space: pre-wrap; word-break: break-word; margin: 0 0 8px; }
.stg-loading { display: flex; flex-direction: column; gap: 8px; padding: 18px 4px; color: var(--muted); }
.stg-progress { height: 4px; background: var(--grid); border-radius: 2px; overflow: hidden; position: relative; }
.stg-progress::after {
  content: ""; position: absolute; top: 0; bottom: 0; width: 30%; background: var(--sel-line);
  animation: stg-slide 1.2s ease-in-out infinite;
}
@keyframes stg-slide { from { left: -30%; } to { left: 100%; } }
.stg-updating { color: var(--muted); font-size: 12px; }
.stg-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; color: var(--muted); font-size: 12px; margin-top: 6px; }
.stg-legend span { display: inline-flex; align-items: center; gap: 4px; }
.stg-dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; }
.stg-findings { padding: 8px 12px; }
.stg-findings-head { display: flex; align-items: baseline; gap: 12px; margin-bottom: 4px; }
.stg-findings-head h2 { font-size: 14px; font-weight: 500; margin: 0; }
.stg-findings-list { display: grid; grid-template-columns: minmax(90px, max-content) 1fr; gap: 2px 14px; max-height: 34vh; overflow: auto; align-items: baseline; }
.stg-findings-run { padding: 3px 0; font-weight: 500; }
.stg-findings-list ul { list-style: none; margin: 0; padding: 0; }
.stg-finding {
  font: inherit; color: var(--ink); background: none; border: 0; border-radius: 4px; padding: 3px 6px 3px 0;
  display: flex; align-items: baseline; gap: 7px; text-align: left; width: 100%; box-sizing: border-box;
}
.stg-finding .stg-dot { flex: none; transform: translateY(-1px); }
button.stg-finding { cursor: pointer; }
button.stg-finding:hover { background: var(--hover); }
button.stg-finding[aria-current=true] { background: var(--sel); box-shadow: inset 3px 0 0 var(--sel-line); padding-left: 6px; }
button.stg-finding:focus-visible { outline: 2px solid var(--sel-line); outline-offset: -2px; }
.stg-healthy { color: var(--ok); padding: 3px 0; }
/* Blocks x modules heatmap */
.stg-heatmaps { display: flex; flex-wrap: wrap; gap: 10px 28px; }
.stg-heat-wrap { overflow: auto; max-height: 46vh; }
table.stg-heat { border-collapse: separate; border-spacing: 2px; }
.stg-heat th { font-weight: 400; color: var(--muted); font-size: 11px; white-space: nowrap; }
.stg-heat th.stg-heat-group { text-align: left; border-bottom: 1px solid var(--line); color: var(--ink); }
.stg-heat th.stg-heat-col { height: 76px; vertical-align: bottom; padding: 0; }
.stg-heat th.stg-heat-col span { display: inline-block; writing-mode: vertical-rl; transform: rotate(180deg); }
.stg-heat th.stg-heat-block { text-align: right; padding-right: 6px; }
.stg-heat td { padding: 0; }
.stg-heat-cell {
  display: block; width: 24px; height: 16px; padding: 0; margin: 0; border: 0; border-radius: 2px; cursor: pointer;
  background: var(--grid); position: relative; box-sizing: border-box;
}
.stg-heat-cell[data-status=frozen] {
  background: repeating-linear-gradient(45deg, #1e88e5 0 3px, transparent 3px 6px); box-shadow: inset 0 0 0 1px #1e88e5;
}
.stg-heat-cell[data-status=stagnant] { box-shadow: inset 0 0 0 2px #d32f2f; }
.stg-heat-cell[data-dead]::after {
  content: ""; position: absolute; top: 0; right: 0; border-style: solid; border-width: 0 8px 8px 0;
  border-color: transparent #d32f2f transparent transparent;
}
.stg-heat-cell:hover { outline: 1px solid var(--ink); }
.stg-heat-cell[aria-current=true] { outline: 2px solid var(--sel-line); outline-offset: 1px; }
.stg-heat-cell:focus-visible { outline: 2px solid var(--sel-line); outline-offset: 1px; }
.stg-heat-key { display: inline-block; cursor: default; vertical-align: middle; }
.stg-heat-ramp { display: inline-block; width: 120px; height: 10px; border-radius: 2px; margin: 0 6px; vertical-align: middle; }
/* uPlot's legend and axes, themed */
.uplot { font-family: inherit; }
.u-legend { color: var(--ink); font-size: 12px; }
.u-legend .u-marker { width: 10px; height: 10px; }
.u-legend th { font-weight: 400; }
.stg-spark .u-legend { display: none; }
.u-select { background: rgba(128,128,128,0.15); }
`;
