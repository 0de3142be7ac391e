// Switchback web console: plain DOM code over the admin API and /metrics. No framework, no build step; the proxy
// embeds this file. Everything shown is built with textContent, never innerHTML, so no answer can inject markup.
'use strict';

(() => {
  const REFRESH_MS = 2500;
  // A scorecard may be evaluated on request against both clusters: ask for it less often than for the rest.
  const SCORECARD_REFRESH_MS = 10000;
  const RATE_WINDOW_MS = 5 * 60 * 1000;
  const TOKEN_KEY = 'switchback.adminToken';
  const GATES = ['data-parity', 'offset-parity', 'client-routing', 'source-readiness', 'decision-authority'];
  const MAX_CLIENT_ROWS = 200;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // Each chart kind takes the first metric that the proxy exports; the per-family counters replace the fallback
  // (partitions routed) once present.
  const RATE_KINDS = [
    {
      id: 'produce', title: 'Produce', sources: [
        { metric: 'switchback_family_produce_records_total', unit: 'records/s' },
        { metric: 'switchback_routed_partitions_total', api: 'Produce', unit: 'partitions routed/s' },
      ],
    },
    {
      id: 'produce-bytes', title: 'Produce bytes', sources: [
        { metric: 'switchback_family_produce_bytes_total', unit: 'bytes/s' },
      ],
    },
    {
      id: 'fetch', title: 'Fetch', sources: [
        { metric: 'switchback_family_fetch_bytes_total', unit: 'bytes/s' },
        { metric: 'switchback_routed_partitions_total', api: 'Fetch', unit: 'partitions routed/s' },
      ],
    },
  ];
  const WANTED_METRICS = new Set(RATE_KINDS.flatMap(k => k.sources.map(s => s.metric)));

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    families: [],
    windows: new Map(),
    clusters: new Set(),
    rendered: new Map(), // section -> JSON of what it shows, so unchanged sections keep their DOM (and focus)
    samples: [], // [{t, kinds: {id: {unit, values: Map(family\0cluster -> counter)}}}]
    timer: 0,
    refreshing: false,
    refreshAgain: false,
    scorecards: null, // {names, answers, at}
  };

  const $ = selector => document.querySelector(selector);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    setAttributes(node, attributes);
    node.append(...children.flat().filter(c => c !== null && c !== undefined && c !== false).map(c => (c instanceof Node ? c : String(c))));
    return node;
  }

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttributes(node, attributes);
    node.append(...children.flat().filter(c => c !== null && c !== undefined).map(c => (c instanceof Node ? c : String(c))));
    return node;
  }

  function setAttributes(node, attributes) {
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }

  /** Replaces a container's content only when what it shows changed, keeping open <details> open. */
  function show(container, key, data, build) {
    const json = JSON.stringify(data);
    if (state.rendered.get(key) === json) {
      return;
    }
    state.rendered.set(key, json);
    const open = new Set([...container.querySelectorAll('details[open][data-key]')].map(d => d.dataset.key));
    container.replaceChildren(...[build()].flat());
    for (const details of container.querySelectorAll('details[data-key]')) {
      if (open.has(details.dataset.key)) {
        details.open = true;
      }
    }
  }

  function time(iso) {
    if (!iso) {
      return '';
    }
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) {
      return String(iso);
    }
    return el('time', { datetime: date.toISOString() }, date.toISOString().replace('T', ' ').slice(0, 19) + 'Z');
  }

  function route(r) {
    return r ? `write=${r.write} read=${r.read}` : '';
  }

  // --- admin API -------------------------------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) {
      headers.Authorization = `Bearer ${state.token}`;
    }
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: response.status, statusText: response.statusText, ok: response.ok, json, text };
  }

  const needsToken = answer => answer.status === 401 || answer.status === 403;

  function setToken(token) {
    state.token = token;
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    $('#forget-token').hidden = !token;
  }

  function askForToken(answer) {
    const section = $('#auth');
    const message = answer.json && answer.json.error ? answer.json.error : `HTTP ${answer.status}`;
    section.querySelector('h2').textContent = state.token ? `The admin API refused the token (${message})` : 'Admin token needed';
    if (section.hidden) {
      section.hidden = false;
      $('#token-input').focus();
    }
  }

  // --- refresh ---------------------------------------------------------------------------------------------------

  /** One refresh at a time: a call during one (after an action) runs another as soon as it ends. */
  async function refresh() {
    clearTimeout(state.timer);
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const problems = [];
    await Promise.all([
      refreshAdmin().catch(e => problems.push(`admin API: ${e.message}`)),
      refreshRates().catch(e => problems.push(`metrics: ${e.message}`)),
    ]);
    updateClusterNames();
    const now = new Date().toISOString().slice(11, 19);
    $('#status').textContent = problems.length
      ? `Refresh failed at ${now}Z (${problems.join('; ')}); retrying every ${REFRESH_MS / 1000} s.`
      : `Updated ${now}Z; refreshing every ${REFRESH_MS / 1000} s.`;
    state.refreshing = false;
    state.timer = setTimeout(refresh, state.refreshAgain ? 0 : REFRESH_MS);
    state.refreshAgain = false;
  }

  async function refreshAdmin() {
    const families = await api('GET', 'v1/families');
    if (needsToken(families)) {
      askForToken(families);
      return;
    }
    if (!families.ok || !Array.isArray(families.json)) {
      throw new Error(`GET /v1/families answered ${families.status}`);
    }
    $('#auth').hidden = true;
    state.families = families.json;
    const names = state.families.map(f => f.name);
    const previous = state.scorecards;
    const scorecardsDue = !previous || Date.now() - previous.at >= SCORECARD_REFRESH_MS || previous.names.join('\u0000') !== names.join('\u0000');
    const [windows, scorecards, audit, clients] = await Promise.all([
      Promise.all(names.map(n => api('GET', `v1/families/${encodeURIComponent(n)}/window`))),
      scorecardsDue
        ? Promise.all(names.map(n => api('GET', `v1/families/${encodeURIComponent(n)}/scorecard`).catch(e => ({ status: 0, ok: false, statusText: e.message }))))
        : previous.answers,
      api('GET', 'v1/audit?limit=50'),
      api('GET', 'v1/clients'),
    ]);
    if (scorecardsDue) {
      state.scorecards = { names, answers: scorecards, at: Date.now() };
    }
    state.windows = new Map(names.map((n, i) => [n, windows[i].ok ? windows[i].json : null]));
    renderFamilies();
    renderGates(names, scorecards);
    renderTimeline(audit);
    renderClients(clients);
  }

  // --- families --------------------------------------------------------------------------------------------------

  function windowText(family) {
    const window = state.windows.get(family.name) || family.window;
    if (!window || window.state === 'none') {
      return 'none';
    }
    const parts = [`${window.state}`];
    if (window.from) {
      parts.push(`origin ${route(window.from)}`);
    }
    if (window.openedAt) {
      parts.push(`opened ${new Date(window.openedAt).toISOString().slice(0, 19)}Z`);
    }
    if (window.closedAt) {
      parts.push(`closed ${new Date(window.closedAt).toISOString().slice(0, 19)}Z`);
    }
    if (window.mirror) {
      parts.push(`mirror ${window.mirror}`);
    }
    if (window.mirrorLagRecords !== null && window.mirrorLagRecords !== undefined) {
      parts.push(`mirror lag ${window.mirrorLagRecords} records`);
    }
    if (window.strayWrites !== null && window.strayWrites !== undefined) {
      parts.push(`stray writes ${window.strayWrites}`);
    }
    return parts.join('; ');
  }

  function renderFamilies() {
    const tbody = $('#families tbody');
    const rows = state.families.map(f => ({ f, window: windowText(f) }));
    show(tbody, 'families', rows, () => rows.length === 0
      ? el('tr', {}, el('td', { colspan: 7 }, 'No families configured.'))
      : rows.map(({ f, window }) => el('tr', { 'data-family': f.name },
        el('th', { scope: 'row' }, f.name),
        el('td', { 'data-field': 'write' }, f.write),
        el('td', { 'data-field': 'read' }, f.read),
        el('td', { 'data-field': 'epoch' }, f.epoch),
        el('td', { 'data-field': 'state', class: `state-${f.state}` }, f.state),
        el('td', { 'data-field': 'window' }, window),
        el('td', { class: 'actions' },
          actionButton('switch', f.name, 'Switch…'),
          actionButton('rollback', f.name, 'Roll back…'),
          actionButton('close', f.name, 'Close window…')))));
  }

  function actionButton(action, family, label) {
    return el('button', { type: 'button', 'data-action': action, 'data-family': family, 'aria-label': `${label.replace('…', '')} ${family}` }, label);
  }

  // --- gates -----------------------------------------------------------------------------------------------------

  function renderGates(names, scorecards) {
    const cards = names.map((name, i) => {
      const answer = scorecards[i];
      const gates = answer.ok && answer.json && Array.isArray(answer.json.gates) ? answer.json.gates : null;
      return { name, gates, status: answer.status, error: answer.json && answer.json.error ? answer.json.error : answer.statusText };
    });
    show($('#gates'), 'gates', cards, () => cards.length === 0
      ? el('p', {}, 'No families configured.')
      : cards.map(card => el('article', { class: 'scorecard', 'data-family': card.name },
        el('h3', {}, card.name),
        card.gates
          ? el('ul', { class: 'gates' }, orderGates(card.gates).map(g => gateItem(card.name, g)))
          : el('p', { class: 'unavailable', 'data-scorecard': 'unavailable' },
            `Scorecard unavailable (${card.status ? `HTTP ${card.status}` : 'no answer'}${card.error ? `: ${card.error}` : ''}).`))));
  }

  function orderGates(gates) {
    const rank = g => (GATES.indexOf(g.gate) < 0 ? GATES.length : GATES.indexOf(g.gate));
    return [...gates].sort((a, b) => rank(a) - rank(b));
  }

  function gateItem(family, gate) {
    const status = ['green', 'red', 'unknown'].includes(gate.status) ? gate.status : 'unknown';
    return el('li', { class: `gate gate-${status}`, 'data-gate': gate.gate, 'data-status': status },
      el('span', { class: 'badge' }, status),
      ' ',
      el('strong', {}, gate.gate),
      gate.summary ? `: ${gate.summary}` : '',
      gate.evidence !== undefined && gate.evidence !== null
        ? el('details', { 'data-key': `${family}/${gate.gate}` }, el('summary', {}, 'Evidence'), el('pre', {}, JSON.stringify(gate.evidence, null, 2)))
        : null);
  }

  // --- timeline --------------------------------------------------------------------------------------------------

  function renderTimeline(answer) {
    const tbody = $('#timeline tbody');
    if (!answer.ok || !Array.isArray(answer.json)) {
      show(tbody, 'timeline', { status: answer.status }, () => el('tr', {}, el('td', { colspan: 9 }, `Audit log unavailable (HTTP ${answer.status}).`)));
      return;
    }
    const entries = answer.json;
    show(tbody, 'timeline', entries, () => entries.length === 0
      ? el('tr', {}, el('td', { colspan: 9 }, 'No switches yet.'))
      : entries.map((e, i) => el('tr', { 'data-action': e.action, 'data-outcome': e.outcome, 'data-family': e.family, class: `outcome-${e.outcome}` },
        el('td', {}, time(e.time)),
        el('td', {}, e.action),
        el('td', {}, e.family),
        el('td', { 'data-field': 'from' }, e.from),
        el('td', { 'data-field': 'to' }, e.to),
        el('td', {}, e.outcome, e.detail ? el('details', { 'data-key': `audit/${e.time}/${i}` }, el('summary', {}, 'Detail'), el('pre', {}, e.detail)) : null),
        el('td', { class: 'number' }, `${Number(e.pauseMs || 0).toFixed(1)} ms`),
        el('td', {}, e.reason || ''),
        el('td', {}, e.caller || ''))));
  }

  // --- clients ---------------------------------------------------------------------------------------------------

  function renderClients(answer) {
    const tbody = $('#clients tbody');
    if (!answer.ok || !Array.isArray(answer.json)) {
      show(tbody, 'clients', { status: answer.status }, () => el('tr', {}, el('td', { colspan: 9 }, `Client inventory unavailable (HTTP ${answer.status}).`)));
      return;
    }
    // Open connections first, then the most recently active.
    const closed = c => (c.closedAt ? 1 : 0);
    const clients = [...answer.json].sort((a, b) => closed(a) - closed(b)
      || String(b.lastActiveAt || '').localeCompare(String(a.lastActiveAt || '')));
    const shown = clients.slice(0, MAX_CLIENT_ROWS);
    show(tbody, 'clients', shown.concat([clients.length]), () => {
      if (clients.length === 0) {
        return el('tr', {}, el('td', { colspan: 9 }, 'No client connections yet.'));
      }
      const rows = shown.map(c => el('tr', { 'data-client-id': c.clientId || '', class: c.closedAt ? 'closed' : 'open' },
        el('td', {}, c.clientId || '(none)'),
        el('td', {}, c.principal || ''),
        el('td', {}, [c.softwareName, c.softwareVersion].filter(Boolean).join(' ') || 'not sent'),
        el('td', {}, c.address || ''),
        el('td', {}, c.instance || ''),
        el('td', {}, (c.families || []).map(f => familyUses(f)).join('; ')),
        el('td', {}, time(c.connectedAt)),
        el('td', {}, time(c.lastActiveAt)),
        el('td', {}, c.closedAt ? time(c.closedAt) : 'open')));
      if (clients.length > shown.length) {
        rows.push(el('tr', {}, el('td', { colspan: 9 }, `and ${clients.length - shown.length} more (see GET /v1/clients)`)));
      }
      return rows;
    });
  }

  function familyUses(f) {
    const uses = [
      ...(f.producedTo || []).map(c => `P:${c}`),
      ...(f.fetchedFrom || []).map(c => `F:${c}`),
      ...(f.committedTo || []).map(c => `C:${c}`),
    ];
    return `${f.family} [${uses.join(' ')}]`;
  }

  // --- rates -----------------------------------------------------------------------------------------------------

  function parseMetrics(text) {
    const series = new Map(); // metric -> [{labels, value}]
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const line of text.split('\n')) {
      if (line === '' || line[0] === '#') {
        continue;
      }
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!match || !WANTED_METRICS.has(match[1])) {
        continue;
      }
      const labels = {};
      for (const label of (match[2] || '').matchAll(labelPattern)) {
        labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
      const value = Number(match[3]);
      if (Number.isFinite(value)) {
        if (!series.has(match[1])) {
          series.set(match[1], []);
        }
        series.get(match[1]).push({ labels, value });
      }
    }
    return series;
  }

  async function refreshRates() {
    const response = await fetch('metrics', { cache: 'no-store' });
    if (!response.ok) {
      throw new Error(`GET /metrics answered ${response.status}`);
    }
    const parsed = parseMetrics(await response.text());
    const t = Date.now();
    const kinds = {};
    for (const kind of RATE_KINDS) {
      for (const source of kind.sources) {
        const rows = (parsed.get(source.metric) || []).filter(r => !source.api || r.labels.api === source.api);
        if (rows.length > 0) {
          const values = new Map();
          for (const r of rows) {
            const key = `${r.labels.family}\u0000${r.labels.cluster}`;
            values.set(key, (values.get(key) || 0) + r.value);
            state.clusters.add(r.labels.cluster);
          }
          kinds[kind.id] = { unit: source.unit, metric: source.metric, values };
          break;
        }
      }
    }
    state.samples.push({ t, kinds });
    while (state.samples.length > 2 && state.samples[0].t < t - RATE_WINDOW_MS) {
      state.samples.shift();
    }
    renderRates(t);
  }

  /** Rates between consecutive samples, per kind and (family, cluster); a counter that went down restarted and is skipped. */
  function rates() {
    const result = new Map(); // kind -> {unit, metric, series: Map(key -> [{t, rate}])}
    for (let i = 1; i < state.samples.length; i++) {
      const before = state.samples[i - 1];
      const after = state.samples[i];
      const seconds = (after.t - before.t) / 1000;
      for (const [id, now] of Object.entries(after.kinds)) {
        const then = before.kinds[id];
        if (!then || then.unit !== now.unit || seconds <= 0) {
          continue;
        }
        if (!result.has(id) || result.get(id).unit !== now.unit) {
          result.set(id, { unit: now.unit, metric: now.metric, series: new Map() });
        }
        const kind = result.get(id);
        for (const [key, value] of now.values) {
          // A series seen for the first time has no rate yet: its whole count is not one interval's worth.
          const previous = then.values.get(key);
          if (previous === undefined || value < previous) {
            continue;
          }
          if (!kind.series.has(key)) {
            kind.series.set(key, []);
          }
          kind.series.get(key).push({ t: after.t, rate: (value - previous) / seconds });
        }
      }
    }
    return result;
  }

  function renderRates(now) {
    const byKind = rates();
    // The x axis spans what has been sampled, up to the whole window, so a fresh page shows its first minutes.
    const span = Math.min(RATE_WINDOW_MS, Math.max(30000, now - state.samples[0].t));
    const families = [...new Set([...byKind.values()].flatMap(k => [...k.series.keys()].map(key => key.split('\u0000')[0])))].sort();
    const clusters = [...state.clusters].sort();
    const note = $('#rates-note');
    if (families.length === 0) {
      note.textContent = state.samples.length < 2
        ? 'Collecting samples of /metrics…'
        : 'No produce or fetch traffic routed yet.';
      $('#rates').replaceChildren();
      return;
    }
    const metrics = [...byKind.values()].map(k => k.metric);
    note.textContent = `Per family and cluster over the last ${duration(span)} (up to ${duration(RATE_WINDOW_MS)}), from /metrics (${[...new Set(metrics)].join(', ')}).`;
    const charts = [];
    for (const family of families) {
      const group = el('div', { class: 'rate-family', 'data-family': family }, el('h3', {}, family));
      for (const kind of RATE_KINDS) {
        const data = byKind.get(kind.id);
        if (!data) {
          continue;
        }
        const series = [...data.series.entries()]
          .filter(([key]) => key.split('\u0000')[0] === family)
          .map(([key, points]) => ({ cluster: key.split('\u0000')[1], points }));
        if (series.length > 0) {
          group.append(chart(family, kind, data.unit, series, clusters, now, span));
        }
      }
      charts.push(group);
    }
    $('#rates').replaceChildren(...charts);
  }

  function duration(ms) {
    return ms >= 120000 ? `${Math.round(ms / 60000)} minutes` : `${Math.round(ms / 1000)} s`;
  }

  function chart(family, kind, unit, series, clusters, now, span) {
    const width = 460;
    const height = 150;
    const left = 56;
    const right = 8;
    const top = 10;
    const bottom = 22;
    const peak = Math.max(0, ...series.flatMap(s => s.points.map(p => p.rate)));
    const yMax = niceCeiling(peak);
    const x = t => left + ((t - (now - span)) / span) * (width - left - right);
    const y = v => top + (1 - v / yMax) * (height - top - bottom);
    const label = `${kind.title} rate of ${family} per cluster, last ${duration(span)}, in ${unit}`;
    const figure = el('figure', { class: 'chart', 'data-kind': kind.id });
    const drawing = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label },
      svg('title', {}, label),
      svg('line', { class: 'axis', x1: left, y1: y(0), x2: width - right, y2: y(0) }),
      svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: y(0) }),
      svg('line', { class: 'grid', x1: left, y1: y(yMax / 2), x2: width - right, y2: y(yMax / 2) }),
      svg('text', { class: 'tick', x: left - 4, y: top + 8, 'text-anchor': 'end' }, formatRate(yMax)),
      svg('text', { class: 'tick', x: left - 4, y: y(yMax / 2) + 4, 'text-anchor': 'end' }, formatRate(yMax / 2)),
      svg('text', { class: 'tick', x: left - 4, y: y(0), 'text-anchor': 'end' }, '0'),
      svg('text', { class: 'tick', x: left, y: height - 6 }, `${duration(span)} ago`),
      svg('text', { class: 'tick', x: width - right, y: height - 6, 'text-anchor': 'end' }, 'now'),
      series.map(s => {
        const last = s.points[s.points.length - 1].rate;
        const seriesPeak = Math.max(...s.points.map(p => p.rate));
        return svg('polyline', {
          class: `series series-${clusters.indexOf(s.cluster) % 6}`,
          points: s.points.map(p => `${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(' '),
          'data-series': `${family}/${kind.id}/${s.cluster}`,
          'data-points': s.points.length,
          'data-last': last,
          'data-peak': seriesPeak,
        });
      }));
    const legend = el('ul', { class: 'legend' }, series.map(s => el('li', {},
      el('span', { class: `swatch series-${clusters.indexOf(s.cluster) % 6}`, 'aria-hidden': 'true' }),
      `${s.cluster}: ${formatRate(s.points[s.points.length - 1].rate)} ${unit}`)));
    figure.append(el('figcaption', {}, `${kind.title} (${unit})`), drawing, legend);
    return figure;
  }

  function niceCeiling(value) {
    if (value <= 0) {
      return 1;
    }
    const magnitude = 10 ** Math.floor(Math.log10(value));
    const step = [1, 2, 5, 10].find(s => s * magnitude >= value);
    return step * magnitude;
  }

  function formatRate(value) {
    if (value >= 1e6) {
      return `${(value / 1e6).toFixed(1)}M`;
    }
    if (value >= 1e3) {
      return `${(value / 1e3).toFixed(1)}k`;
    }
    return value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1);
  }

  function updateClusterNames() {
    for (const f of state.families) {
      state.clusters.add(f.write);
      state.clusters.add(f.read);
      const window = state.windows.get(f.name);
      if (window && window.from) {
        state.clusters.add(window.from.write);
        state.clusters.add(window.from.read);
      }
    }
    const names = [...state.clusters].filter(Boolean).sort();
    show($('#cluster-names'), 'cluster-names', names, () => names.map(n => el('option', { value: n })));
  }

  // --- actions ---------------------------------------------------------------------------------------------------

  const ACTIONS = {
    switch: { title: 'Switch', button: 'Switch', help: 'Moves the family\'s writes and/or reads to another cluster. Leave a field empty to keep it.' },
    rollback: { title: 'Roll back', button: 'Roll back', help: 'Returns the family to the routes in force when its rollback window opened.' },
    close: { title: 'Close the rollback window of', button: 'Close window', help: 'Ends the rollback window: routes do not change, and a later rollback needs force.' },
  };

  function openAction(action, family) {
    const form = $('#action-form');
    form.dataset.action = action;
    form.dataset.family = family;
    form.reset();
    $('#action-title').textContent = `${ACTIONS[action].title} ${family}`;
    const current = state.families.find(f => f.name === family);
    $('#action-help').textContent = `${ACTIONS[action].help}${current ? ` Now: write=${current.write} read=${current.read}.` : ''}`;
    for (const field of form.querySelectorAll('.switch-only')) {
      field.hidden = action !== 'switch';
    }
    form.querySelector('.force-field').hidden = action === 'close';
    $('#action-token').value = state.token;
    $('#action-submit').textContent = ACTIONS[action].button;
    $('#action-dialog').showModal();
    (action === 'switch' ? $('#action-write') : $('#action-reason')).focus();
  }

  async function submitAction(event) {
    event.preventDefault();
    const form = $('#action-form');
    const { action, family } = form.dataset;
    const write = $('#action-write').value.trim();
    const read = $('#action-read').value.trim();
    if (action === 'switch' && !write && !read) {
      $('#action-write').setCustomValidity('Give a write cluster, a read cluster, or both.');
      $('#action-write').reportValidity();
      return;
    }
    const body = { reason: $('#action-reason').value.trim() };
    if (action === 'switch') {
      if (write) {
        body.write = write;
      }
      if (read) {
        body.read = read;
      }
    }
    if (action !== 'close' && $('#action-force').checked) {
      body.force = true;
    }
    setToken($('#action-token').value.trim());
    $('#action-dialog').close();
    const path = `v1/families/${encodeURIComponent(family)}/${action}`;
    const answerBox = $('#answer');
    answerBox.dataset.state = 'pending';
    answerBox.replaceChildren(el('p', { class: 'answer-status' }, `POST /${path} (${JSON.stringify(body)}): waiting for the answer…`));
    // The page keeps refreshing meanwhile, so the family shows as switching while the proxy holds it.
    refresh();
    let answer;
    try {
      answer = await api('POST', path, body);
    } catch (e) {
      answer = { status: 0, statusText: e.message, ok: false, json: null, text: '' };
    }
    renderAnswer(path, answer);
    state.scorecards = null;
    if (needsToken(answer)) {
      askForToken(answer);
    }
    refresh();
  }

  function renderAnswer(path, answer) {
    const box = $('#answer');
    box.dataset.state = 'done';
    box.dataset.status = String(answer.status);
    const failed = answer.json && (Array.isArray(answer.json.failed) ? answer.json.failed
      : Array.isArray(answer.json.gates) && answer.status === 409 ? answer.json.gates.filter(g => g.passed === false || g.status === 'red') : []);
    box.replaceChildren(...[
      el('p', { class: `answer-status ${answer.ok ? 'ok' : 'failed'}` },
        `POST /${path} answered ${answer.status || 'nothing'} ${answer.statusText || ''}`,
        answer.json && answer.json.error ? `: ${answer.json.error}` : ''),
      failed && failed.length > 0
        ? el('ul', { class: 'gates' }, failed.map(g => gateItem('answer', { ...g, status: g.status || 'red' })))
        : null,
      el('details', { open: true }, el('summary', {}, 'Answer'),
        el('pre', {}, answer.json ? JSON.stringify(answer.json, null, 2) : answer.text || '(empty)')),
    ].filter(Boolean));
  }

  // --- wiring ----------------------------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('#forget-token').hidden = !state.token;
    $('#forget-token').addEventListener('click', () => {
      setToken('');
      refresh();
    });
    $('#token-form').addEventListener('submit', event => {
      event.preventDefault();
      setToken($('#token-input').value.trim());
      $('#token-input').value = '';
      $('#auth').hidden = true;
      refresh();
    });
    // One listener for every row's buttons: rows are rebuilt when the families change.
    $('#families').addEventListener('click', event => {
      const button = event.target.closest('button[data-action]');
      if (button) {
        openAction(button.dataset.action, button.dataset.family);
      }
    });
    $('#action-form').addEventListener('submit', submitAction);
    $('#action-write').addEventListener('input', () => $('#action-write').setCustomValidity(''));
    $('#action-cancel').addEventListener('click', () => $('#action-dialog').close());
    refresh();
  });
})();
