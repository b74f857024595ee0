// attrchain explorer: one ES module, no build step. Every figure comes from this node's JSON-RPC
// (POST /) and WebSocket (/websocket); routes live in the URL hash (#/block/12, #/datanet/0x..).
import uPlot from "/explorer/vendor/uPlot.esm.js";

const UNIT = "tokens"; // the chain's one denomination (fees, payments, rewards are whole tokens)
const main = document.getElementById("main");
let rpcId = 0;
let ws = null;
let onBlock = null; // the current page's live-update hook

// ---- JSON-RPC ---------------------------------------------------------------------------------
class RPCError extends Error {
  constructor(err) { super(err.message + (err.data && err.data.message ? ": " + err.data.message : "")); this.code = err.code; }
}
async function rpc(method, params = {}) {
  const res = await fetch("/", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }) });
  const doc = await res.json();
  if (doc.error) throw new RPCError(doc.error);
  return doc.result;
}
async function maybe(method, params) { // null when not found (-32001) or not available
  try { return await rpc(method, params); } catch (e) { if (e.code === -32001 || e.code === -32601) return null; throw e; }
}

// ---- rendering helpers --------------------------------------------------------------------------
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const amount = (n) => `${BigInt(n).toLocaleString("en-US")} ${UNIT}`;
const short = (h) => (h && h.length > 18 ? `${h.slice(0, 8)}…${h.slice(-6)}` : h);
const time = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
const ROUTE_OF = { address: "address", agent: "agent", tx: "tx", block: "block", datanet: "datanet",
  contribution: "contribution", model: "model", adapter: "adapter", inference: "inference" };
function link(kind, id, label) {
  if (id === null || id === undefined || id === "") return '<span class="muted">none</span>';
  const text = label !== undefined ? esc(label) : esc(short(String(id)));
  const full = String(id);
  const copy = full.startsWith("0x") ? `<button class="copy" type="button" data-copy="${esc(full)}" aria-label="copy ${esc(full)}">copy</button>` : "";
  return `<a class="hash" href="#/${ROUTE_OF[kind]}/${esc(full)}" title="${esc(full)}">${text}</a>${copy}`;
}
function hash(h) { return h ? `<span class="hash" title="${esc(h)}">${esc(short(h))}</span><button class="copy" type="button" data-copy="${esc(h)}" aria-label="copy ${esc(h)}">copy</button>` : '<span class="muted">none</span>'; }
function kv(rows) { return `<dl class="kv">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`; }
function table(head, rows, empty) {
  if (!rows.length) return `<p class="empty">${esc(empty)}</p>`;
  return `<div class="table"><table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}
function result(r) { return r.code === 0 ? '<span class="ok">applied</span>' : `<span class="bad">failed: ${esc(r.reason)}</span>${r.message ? " – " + esc(r.message) : ""}`; }
function render(html) { main.innerHTML = html; }
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-copy]");
  if (!b) return;
  const text = b.dataset.copy;
  const done = () => { b.textContent = "copied"; setTimeout(() => { b.textContent = "copy"; }, 1200); };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, done);
  else { const t = document.createElement("textarea"); t.value = text; document.body.appendChild(t); t.select(); document.execCommand("copy"); t.remove(); done(); }
});

function chart(el, series, label) {
  if (!series.length) { el.innerHTML = '<p class="empty">No earnings yet: they appear here once an inference pays this recipient.</p>'; return; }
  const xs = series.map((p) => p.time_ms / 1000);
  const ys = series.map((p) => Number(p.cumulative));
  if (xs.length === 1) { xs.unshift(xs[0] - 1); ys.unshift(0); }
  const width = Math.max(280, Math.min(el.clientWidth || 600, 900));
  new uPlot({ width, height: 220, title: label, series: [{}, { label: `cumulative (${UNIT})`, stroke: "#1f5fbf", fill: "rgba(31,95,191,.08)" }],
    axes: [{}, { size: 70 }] }, [xs, ys], el);
}

// ---- live updates --------------------------------------------------------------------------------
function connect() {
  const live = document.getElementById("live");
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/websocket`);
  ws.onopen = () => { live.textContent = "● live"; live.className = "ok"; ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { event: "new_block" } })); };
  ws.onmessage = (m) => {
    const doc = JSON.parse(m.data);
    if (doc.method === "event" && doc.params.event === "new_block" && onBlock) onBlock(doc.params.data);
  };
  ws.onclose = () => { live.textContent = "○ offline"; live.className = "muted"; setTimeout(connect, 3000); };
}

// ---- pages ---------------------------------------------------------------------------------------
function blockRow(b) {
  return `<tr class="new" data-height="${b.height}"><td>${link("block", b.height, String(b.height))}</td><td>${hash(b.hash)}</td><td>${b.num_txs}</td><td class="wide">${time(b.time_ms)}</td></tr>`;
}
function txRows(txs) {
  return txs.map((t) => [link("tx", t.hash), t.decoded ? esc(t.decoded.kind) : "?", t.decoded ? link("address", t.decoded.sender) : "", link("block", t.height, String(t.height)), result(t.result)]);
}

async function pageChain() {
  const st = await rpc("status");
  const latest = st.sync_info.latest_block_height;
  const metas = latest > 0 ? (await rpc("blockchain", {})).block_metas : [];
  const txs = latest > 0 ? (await rpc("tx_search", { per_page: 10 })).txs : [];
  const blocks = metas.map((m) => ({ height: m.header.height, hash: m.block_id.hash, num_txs: m.num_txs, time_ms: m.header.time_ms }));
  render(`<h1>Chain ${esc(st.chain_id)}</h1>
  ${kv([["latest height", `<span id="height">${latest}</span>`], ["node", esc(st.node_info.moniker || st.node_info.id)], ["catching up", st.sync_info.catching_up ? "yes" : "no"]])}
  <div class="grid"><section><h2>Latest blocks</h2><div class="table"><table><thead><tr><th>height</th><th>hash</th><th>txs</th><th class="wide">time</th></tr></thead>
  <tbody id="blocks">${blocks.map(blockRow).join("")}</tbody></table></div>${blocks.length ? "" : '<p class="empty">No block yet: the chain starts with its first validator.</p>'}</section>
  <section><h2>Latest transactions</h2><div id="txs">${table(["hash", "kind", "sender", "block", "result"], txRows(txs), "No transaction yet: send one with `attrchain tx transfer`.")}</div></section></div>`);
  onBlock = async (b) => {
    const body = document.getElementById("blocks");
    if (!body) return;
    document.getElementById("height").textContent = b.height;
    body.insertAdjacentHTML("afterbegin", blockRow({ height: b.height, hash: b.hash, num_txs: b.num_txs, time_ms: b.header.time_ms }));
    while (body.rows.length > 20) body.deleteRow(-1);
    if (b.num_txs > 0) {
      const fresh = (await rpc("tx_search", { per_page: 10 })).txs;
      const el = document.getElementById("txs");
      if (el) el.innerHTML = table(["hash", "kind", "sender", "block", "result"], txRows(fresh), "");
    }
  };
}

async function pageValidators() {
  const v = await rpc("validator_stats");
  const rows = v.validators.map((x) => [link("address", x.operator), esc(x.moniker), String(x.voting_power), amount(x.tokens),
    x.uptime_bps === null ? "n/a" : `${(x.uptime_bps / 100).toFixed(2)}% (${x.missed_blocks} missed)`,
    x.tombstoned ? '<span class="bad">tombstoned</span>' : x.jailed ? '<span class="bad">jailed</span>' : '<span class="ok">active</span>',
    x.slashing.length ? x.slashing.map((s) => `height ${s.height}: ${s.tombstoned ? "tombstoned" : "jailed"}, slashed ${amount(s.slashed)}`).join("<br>") : '<span class="muted">none</span>']);
  render(`<h1>Validators</h1><p class="muted">Uptime over the last ${v.window} blocks (the liveness window).</p>
  ${table(["operator", "moniker", "power", "stake", "uptime", "status", "slashing history"], rows, "No validator.")}`);
}

async function pageBlock(h) {
  const b = isNaN(Number(h)) ? await rpc("block_by_hash", { hash: h }) : await rpc("block", { height: Number(h) });
  const head = b.block.header;
  // one tx_search window per page of 100 (hash, decoded body and result in block order), not a call per tx
  const found = [];
  let params = { min_height: head.height, max_height: head.height, order: "asc", per_page: 100 };
  while (params && found.length < b.block.txs.length) {
    const page = await rpc("tx_search", params);
    found.push(...page.txs);
    params = page.next;
  }
  render(`<h1>Block ${head.height}</h1>${kv([["hash", hash(b.block_id.hash)], ["time", time(head.time_ms)], ["proposer", link("address", head.proposer)],
    ["previous", head.height > 1 ? link("block", head.height - 1, String(head.height - 1)) : "genesis"], ["state root", hash(head.state_root)],
    ["transactions", String(b.block.txs.length)], ["evidence", String(b.block.evidence.length)]])}
  <h2>Transactions</h2>${table(["hash", "kind", "sender", "fee", "result"], found.map((t) => [link("tx", t.hash), esc(t.decoded ? t.decoded.kind : "?"), t.decoded ? link("address", t.decoded.sender) : "", t.decoded ? amount(t.decoded.fee) : "", result(t.result)]), "No transaction in this block.")}`);
}

function fields(body) {
  return kv(Object.entries(body || {}).map(([k, v]) => {
    if (typeof v === "string" && /^0x[0-9a-f]{40}$/.test(v)) return [k, link("address", v)];
    if (typeof v === "string" && /^0x[0-9a-f]{64}$/.test(v)) return [k, hash(v)];
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return [k, esc(s.length > 300 ? s.slice(0, 300) + "…" : s)];
  }));
}

async function pageTx(h) {
  const t = await rpc("tx", { hash: h });
  const d = t.decoded || {};
  render(`<h1>Transaction</h1>${kv([["hash", hash(t.hash)], ["status", t.status === "committed" ? `committed in ${link("block", t.height, String(t.height))} at index ${t.index}` : "pending in the mempool"],
    ["result", t.result ? result(t.result) : "not yet"], ["kind", esc(d.kind || "?")], ["sender", link("address", d.sender)], ["nonce", String(d.nonce)], ["fee", d.fee !== undefined ? amount(d.fee) : ""]])}
  <h2>Body</h2>${fields(d.body)}${d.kind === "infer" && t.status === "committed" ? `<p>${link("inference", t.hash, "Inference and its receipt")}</p>` : ""}`);
}

async function pageSearch(q) {
  const r = await rpc("search", { q });
  // an id is also the hash of the transaction that created it: go to the object
  const objects = r.results.filter((x) => x.kind !== "tx");
  const only = r.results.length === 1 ? r.results[0] : (objects.length === 1 && r.results.length === 2 ? objects[0] : null);
  if (only) { location.hash = `#/${ROUTE_OF[only.kind]}/${only.id}`; return; }
  render(`<h1>Search: ${esc(q)}</h1>${r.results.length ? `<ul>${r.results.map((x) => `<li>${esc(x.kind)}: ${link(x.kind, x.id, String(x.id))}</li>`).join("")}</ul>`
    : '<p class="empty">Nothing matches. Enter a block height, a 0x address (40 hex digits), or a 0x transaction hash, datanet, contribution, model, adapter or inference id (64 hex digits).</p>'}`);
}

async function earningsSection(recipient, title) {
  const e = await rpc("earnings", { recipient, points: 200 });
  const roles = Object.entries(e.by_role).map(([k, v]) => [esc(k.replace(/_/g, " ")), amount(v)]);
  return { e, html: `<h2>${esc(title)}</h2><p>Total: <strong>${amount(e.total)}</strong> over ${e.blocks} block(s).</p>${roles.length ? kv(roles) : ""}<div class="chart" id="chart"></div>` };
}

async function pageDatanet(id, status) {
  const [d, list, models, earn] = await Promise.all([rpc("datanet", { id }), rpc("contributions", status ? { datanet: id, status, per_page: 50 } : { datanet: id, per_page: 50 }),
    rpc("datanet_models", { id }), earningsSection(id, "Earnings over time")]);
  const tabs = [["all", null], ...Object.keys(list.counts).map((s) => [s, s])].map(([label, s]) =>
    `<a href="#/datanet/${id}${s ? "?status=" + s : ""}" ${s === (status || null) ? 'aria-current="page"' : ""}>${esc(label)} (${s ? list.counts[s] : Object.values(list.counts).reduce((a, b) => a + b, 0)})</a>`).join("");
  render(`<h1>Datanet ${esc(d.name)}</h1>${kv([["id", hash(d.id)], ["owner", link("address", d.owner)], ["metadata", esc(d.metadata_uri)], ["bond required", amount(d.bond_required)],
    ["created at", link("block", d.created_height, String(d.created_height))], ["accepted units", String(d.total_units)], ["rewards in", amount(d.rewards_in)]])}
  <h2>Curators</h2>${d.curators.length ? `<ul>${d.curators.map((c) => `<li>${link("address", c)}</li>`).join("")}</ul>` : '<p class="empty">No curator.</p>'}
  <h2>Contributions by status</h2><p class="tabs">${tabs}</p>
  ${table(["contribution", "owner", "status", "size", "created"], list.contributions.map((c) => [link("contribution", c.id), link("address", c.owner), esc(c.status), String(c.size), String(c.created_height)]),
    "No contribution here yet: submit one with `attrchain tx contribute`.")}
  ${earn.html}
  <h2>Models trained on it</h2>${table(["model", "name", "weight", "owner"], models.models.map((m) => [link("model", m.id), esc(m.name), `${(m.datanets.find((x) => x.datanet === id) || {}).weight_bps / 100}%`, link("address", m.owner)]),
    "No model uses this datanet yet.")}
  ${models.adapters.length ? `<h3>Adapters</h3>${table(["adapter", "name", "base model"], models.adapters.map((a) => [link("adapter", a.id), esc(a.name), link("model", a.base_model)]), "")}` : ""}`);
  chart(document.getElementById("chart"), earn.e.series, "datanet earnings");
}

function highlight(text, spans) {
  // spans: [[start, end], ...] character offsets into text
  const sorted = spans.map((s) => (Array.isArray(s) ? s : [s.start, s.end])).sort((a, b) => a[0] - b[0]);
  let out = ""; let at = 0;
  for (const [s, e] of sorted) { if (s < at) continue; out += esc(text.slice(at, s)) + `<mark>${esc(text.slice(s, e))}</mark>`; at = e; }
  return out + esc(text.slice(at));
}

async function pageContribution(id) {
  const [c, hist, rewards, paid, content] = await Promise.all([rpc("contribution", { id }), rpc("contribution_history", { id }), rpc("rewards", { contribution: id }),
    rpc("attribution", { recipient: id, per_page: 50 }), maybe("contribution_content", { id })]);
  const SHOWN = 4000; // characters of the contribution's text shown on its page
  const text = content ? `<div class="output" id="content">${esc(content.content.slice(0, SHOWN))}${content.content.length > SHOWN ? `<span class="muted"> … (${content.content.length.toLocaleString("en-US")} characters in all)</span>` : ""}</div>`
    : '<p class="empty">The text is not available from this node (a chain that stores content hashes only).</p>';
  const items = [];
  for (const r of paid.receipts) {
    const m = r.matched.find((x) => x.contribution === id) || {};
    let output = "";
    if (m.spans && m.spans.length) {
      const inf = await maybe("inference", { id: r.inference });
      const spans = ((inf && inf.output_spans) || []).filter((s) => s.contribution === id);
      if (inf && inf.output && spans.length) output = `<div class="output">${highlight(inf.output, spans)}</div>`;
    }
    items.push([link("inference", r.inference), link("block", r.height, String(r.height)), amount(m.amount || 0), amount(r.payment), output || '<span class="muted">spans not recorded</span>']);
  }
  const claim = `attrchain tx claim_rewards --contribution ${c.id} --key <owner key file> --rpc ${location.origin} --wait`;
  render(`<h1>Contribution</h1>${kv([["id", hash(c.id)], ["datanet", link("datanet", c.datanet)], ["owner", link("address", c.owner)], ["review status", `<strong>${esc(c.status)}</strong>`],
    ["size", `${c.size} bytes`], ["bond", amount(c.bond)], ["created at", link("block", c.created_height, String(c.created_height))], ["claimed so far", amount(c.claimed)]])}
  <h2>Text</h2>${text}
  <h2>Claimable rewards</h2><p><strong>${amount(rewards.unclaimed)}</strong> claimable by ${link("address", rewards.owner)}.</p>
  ${rewards.unclaimed > 0 ? `<p>Claim them (signed with the owner's key):</p><code class="cmd" id="claim">${esc(claim)}</code><button class="copy" type="button" data-copy="${esc(claim)}">copy command</button>` : '<p class="empty">Nothing to claim now: rewards accrue when inferences match this contribution.</p>'}
  <h2>Inferences that paid it (${paid.total})</h2>${table(["inference", "block", "paid to it", "payment", "matched output"], items, "No inference has paid this contribution yet.")}
  <h2>Owner and status history</h2>${table(["block", "status", "owner"], hist.events.map((e) => [link("block", e.height, String(e.height)), esc(e.status), link("address", e.owner)]), "No history recorded.")}`);
}

function lineageSvg(l) {
  const nodes = []; const edges = [];
  const anc = l.ancestors.slice().reverse();
  anc.forEach((m, i) => nodes.push({ id: m.id, label: m.name, kind: "model", x: 0, y: i }));
  const me = { id: l.model.id, label: l.model.name, kind: "model", x: 0, y: anc.length, me: true };
  nodes.push(me);
  for (let i = 1; i < nodes.length; i++) edges.push([nodes[i - 1], nodes[i]]);
  const kids = [...l.children.map((m) => ({ id: m.id, label: m.name + " (fine-tune)", kind: "model" })), ...l.adapters.map((a) => ({ id: a.id, label: a.name + " (adapter)", kind: "adapter" }))];
  kids.forEach((k, i) => { k.x = i - (kids.length - 1) / 2; k.y = me.y + 1; nodes.push(k); edges.push([me, k]); });
  const W = 180; const H = 70; const minX = Math.min(0, ...nodes.map((n) => n.x));
  const width = (Math.max(0, ...nodes.map((n) => n.x)) - minX + 1) * W; const height = (me.y + (kids.length ? 2 : 1)) * H;
  const px = (n) => (n.x - minX) * W + W / 2; const py = (n) => n.y * H + H / 2;
  return `<svg class="lineage" role="img" aria-label="lineage graph" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
  ${edges.map(([a, b]) => `<line x1="${px(a)}" y1="${py(a) + 14}" x2="${px(b)}" y2="${py(b) - 14}" stroke="#8a94a3"/>`).join("")}
  ${nodes.map((n) => `<a href="#/${n.kind}/${n.id}"><rect x="${px(n) - 80}" y="${py(n) - 14}" width="160" height="28" rx="6" fill="${n.me ? "#dbeafe" : "#f3f4f6"}" stroke="#1f5fbf"/><text x="${px(n)}" y="${py(n) + 4}" text-anchor="middle">${esc(n.label.slice(0, 24))}</text></a>`).join("")}</svg>`;
}

async function pageModel(id) {
  const [l, infs, params] = await Promise.all([rpc("lineage", { id }), rpc("inferences", { model: id, per_page: 50 }), rpc("params")]);
  const m = l.model; const a = params.params.attribution;
  const names = await Promise.all(m.datanets.map((d) => maybe("datanet", { id: d.datanet })));
  const split = [["validators", a.validators_bps], ["model owner", a.model_bps], ["adapter owner (when used)", a.adapter_bps], ["agent owner (when used)", a.agent_bps]];
  const rest = 10000 - split.reduce((s, [, b]) => s + (b || 0), 0);
  render(`<h1>Model ${esc(m.name)}</h1>${kv([["id", hash(m.id)], ["owner", link("address", m.owner)], ["parent", m.parent ? link("model", m.parent) : "none (base model)"],
    ["lineage share", `${m.lineage_bps / 100}%`], ["created at", link("block", m.created_height, String(m.created_height))]])}
  <h2>Datanet mix</h2>${table(["datanet", "name", "weight"], m.datanets.map((d, i) => [link("datanet", d.datanet), esc(names[i] ? names[i].name : "?"), `${d.weight_bps / 100}%`]), "No datanet.")}
  <h2>Lineage</h2><div class="table">${lineageSvg(l)}</div>
  <h2>How its fees split</h2>${kv([...split.map(([k, b]) => [k, `${(b || 0) / 100}%`]), ["data (matched contributions and datanet pools)", `${rest / 100}% (and the unused adapter/agent shares)`]])}
  <h2>Inferences (${infs.total})</h2>${table(["inference", "payer", "payment", "block"], infs.inferences.map((i) => [link("inference", i.id), link("address", i.payer), amount(i.payment), link("block", i.height, String(i.height))]), "No inference of this model yet.")}`);
}

async function pageAdapter(id) {
  const [ad, infs] = await Promise.all([rpc("adapter", { id }), rpc("inferences", { adapter: id, per_page: 50 })]);
  render(`<h1>Adapter ${esc(ad.name)}</h1>${kv([["id", hash(ad.id)], ["owner", link("address", ad.owner)], ["base model", link("model", ad.base_model)]])}
  <h2>Datanet mix</h2>${table(["datanet", "weight"], ad.datanets.map((d) => [link("datanet", d.datanet), `${d.weight_bps / 100}%`]), "No datanet.")}
  <h2>Inferences (${infs.total})</h2>${table(["inference", "payer", "payment"], infs.inferences.map((i) => [link("inference", i.id), link("address", i.payer), amount(i.payment)]), "No inference through this adapter yet.")}`);
}

async function pageInference(id) {
  const [inf, rc] = await Promise.all([rpc("inference", { id }), rpc("attribution", { inference: id })]);
  const r = rc.receipts[0];
  render(`<h1>Inference</h1>${kv([["id", link("tx", inf.id)], ["payer", link("address", inf.payer)], ["model", link("model", inf.model)], ["adapter", inf.adapter ? link("adapter", inf.adapter) : "none"],
    ["agent", inf.agent ? link("agent", inf.agent) : "none"], ["payment", amount(inf.payment)], ["tokens in / out", `${inf.input_tokens} / ${inf.output_tokens}`], ["block", link("block", inf.height, String(inf.height))]])}
  <h2>Receipt: where the payment went</h2>${table(["recipient", "role", "amount"], r.entries.map((e) => [link(e.recipient.length === 42 ? "address" : (e.role === "matched_contribution" ? "contribution" : "datanet"), e.recipient), esc(e.role.replace(/_/g, " ")), amount(e.amount)]), "No payout.")}
  <h2>Matched contributions</h2>${table(["contribution", "owner", "score", "amount", "spans (output shingle / contribution shingle / length, credited x weight)"], r.matched.map((m) => [link("contribution", m.contribution), link("address", m.owner), esc(m.score), amount(m.amount),
    esc((m.spans || []).map((s) => `${s.output_shingle}/${s.contribution_shingle}/${s.shingles}, ${s.credited}x${s.weight}`).join("; "))]), "No contribution matched this output.")}
  <h2>Output</h2>${inf.output ? `<div class="output">${highlight(inf.output, inf.output_spans || [])}</div>` : '<p class="muted">Unattributed: the payer kept the text private (only its hash is on chain); the data share went to the datanet pools.</p>'}
  ${(inf.pending_matches || []).length ? `<h2>Quoted but not accepted when it ran</h2>${table(["contribution", "datanet", "shingles", "why unpaid"], inf.pending_matches.map((p) => [link("contribution", p.contribution), link("datanet", p.datanet), String(p.shingles), esc(p.note)]), "")}` : ""}`);
}

async function pageAddress(addr) {
  const [acct, owned, paid, txs, agent, earn] = await Promise.all([rpc("account", { address: addr }), rpc("contributions", { owner: addr, per_page: 50 }),
    rpc("attribution", { recipient: addr, per_page: 20 }), rpc("sent_txs", { address: addr, per_page: 20 }), maybe("agent", { address: addr, actions: 0 }),
    earningsSection(addr, "Earnings by role")]);
  render(`<h1>Address</h1>${kv([["address", hash(acct.address)], ["balance", `<strong>${amount(acct.balance)}</strong>`], ["nonce", String(acct.nonce)], ...(agent ? [["agent", link("agent", addr, "this address is an agent")]] : [])])}
  ${earn.html}
  <h2>Contributions (${owned.total})</h2>${table(["contribution", "datanet", "status", "claimable"], owned.contributions.map((c) => [link("contribution", c.id), link("datanet", c.datanet), esc(c.status), amount(c.unclaimed)]),
    "No contribution yet: submit data to a datanet with `attrchain tx contribute`.")}
  <h2>Receipts that paid this address (${paid.total})</h2>${table(["inference", "block", "payment", "paid here"], paid.receipts.map((r) => [link("inference", r.inference), link("block", r.height, String(r.height)), amount(r.payment),
    amount(r.entries.filter((e) => e.recipient === addr).reduce((s, e) => s + e.amount, 0) + r.matched.filter((m) => m.owner === addr).reduce((s, m) => s + m.amount, 0))]), "No receipt has paid this address yet.")}
  <h2>Transactions sent (${txs.total})</h2>${table(["hash", "kind", "block", "result"], txs.txs.map((t) => [link("tx", t.hash), esc(t.decoded ? t.decoded.kind : "?"), link("block", t.height, String(t.height)), result(t.result)]), "No transaction sent from this address yet.")}`);
  chart(document.getElementById("chart"), earn.e.series, "earnings");
}

async function pageAgent(addr) {
  const [ag, infs] = await Promise.all([rpc("agent", { address: addr, actions: 100 }), rpc("inferences", { agent: addr, per_page: 50 })]);
  render(`<h1>Agent ${esc(ag.name)}</h1>${kv([["address", link("address", ag.address)], ["owner", link("address", ag.owner)], ["model", link("model", ag.model)], ["adapter", ag.adapter ? link("adapter", ag.adapter) : "none"],
    ["stake", amount(ag.stake)], ["actions", String(ag.actions)]])}
  <h2>Actions and outcomes</h2>${table(["#", "action", "outcome", "block", "tx"], ag.recent_actions.map((x) => [String(x.seq), hash(x.action_hash), hash(x.outcome_hash), link("block", x.height, String(x.height)), link("tx", x.tx_hash)]), "No action recorded yet.")}
  <h2>Inferences it paid for (${infs.total})</h2>${table(["inference", "model", "payment", "block"], infs.inferences.map((i) => [link("inference", i.id), link("model", i.model), amount(i.payment), link("block", i.height, String(i.height))]), "No inference yet.")}`);
}

function pageAbout() {
  render(`<h1>About this explorer</h1><p>Served by this node on its RPC port; every page is built from the node's JSON-RPC methods (docs/rpc.md) and updates live over its WebSocket. Amounts are in ${UNIT}, the chain's one denomination.</p>`);
}

// ---- router -----------------------------------------------------------------------------------------
const ROUTES = { "": pageChain, validators: pageValidators, block: pageBlock, tx: pageTx, search: pageSearch, datanet: pageDatanet, contribution: pageContribution,
  model: pageModel, adapter: pageAdapter, inference: pageInference, address: pageAddress, agent: pageAgent, about: pageAbout };

async function route() {
  onBlock = null;
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, arg] = path.split("/");
  const params = new URLSearchParams(query || "");
  const page = ROUTES[name];
  const started = performance.now();
  main.setAttribute("aria-busy", "true");
  try {
    if (!page) render(`<h1>Not found</h1><p class="empty">No page “${esc(name)}”. Go to the <a href="#/">chain</a> or search above.</p>`);
    else if (name === "search") await page(params.get("q") || "");
    else if (name === "datanet") await page(arg, params.get("status"));
    else await page(arg);
  } catch (e) {
    render(`<h1>Not available</h1><p class="bad">${esc(e.message)}</p><p>Check the id, or go back to the <a href="#/">chain</a>.</p>`);
  } finally {
    main.dataset.renderMs = (performance.now() - started).toFixed(1); // read by bench/explorer.py
    main.dataset.rendered = String(Number(main.dataset.rendered || 0) + 1);
    main.setAttribute("aria-busy", "false");
    main.dataset.page = name || "chain";
  }
}

document.getElementById("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", route);
connect();
route();
