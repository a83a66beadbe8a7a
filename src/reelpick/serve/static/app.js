// reelpick web page: pickers -> GET /v1/homepage -> rows of artwork; play -> POST /v1/events.
"use strict";
const $ = (id) => document.getElementById(id);
let page = null;

function apiKey() {
  const m = location.hash.match(/key=([^&]+)/);
  if (m) { localStorage.setItem("reelpick-key", decodeURIComponent(m[1])); }
  return $("apikey").value || localStorage.getItem("reelpick-key") || "";
}

function uuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "e" + Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function status(text) { $("status").textContent = text; }

function errorText(body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => (d.field ? d.field + ": " : "") + d.msg).join("; ");
  }
  return JSON.stringify(body);
}

async function loadOptions() {
  const r = await fetch("/v1/options");
  const o = await r.json();
  for (const d of o.devices) $("device").add(new Option(d, d, d === "tv", d === "tv"));
  for (const c of o.countries) $("country").add(new Option(c, c));
  for (const m of o.members) $("members").appendChild(new Option(m));
  if (o.members.length) $("member").value = o.members[0];
  $("meta").textContent = `model ${o.model_version} · policy ${o.policy}`;
}

async function loadPage(ev) {
  if (ev) ev.preventDefault();
  const q = new URLSearchParams({ member: $("member").value, device: $("device").value,
                                  hour: $("hour").value, day_of_week: $("day").value });
  if ($("country").value) q.set("country", $("country").value);
  status("loading…");
  const r = await fetch("/v1/homepage?" + q);
  const body = await r.json();
  if (!r.ok) { status(`error ${r.status}: ${errorText(body)}`); return; }
  page = body;
  render(body);
  const n = body.rows.reduce((a, row) => a + row.items.length, 0);
  status(`${body.cold_start ? "new member: cold-start page" : "page for " + body.member}` +
         ` · ${body.rows.length} rows · ${n} titles · ${body.context.device}, ` +
         `${body.context.country}, ${body.context.hour}:00`);
}

function render(p) {
  const main = $("rows");
  main.textContent = "";
  for (const row of p.rows) {
    const sec = document.createElement("section");
    sec.className = "row";
    const h = document.createElement("h2");
    h.textContent = row.label;
    const small = document.createElement("small");
    small.textContent = row.reason;
    h.appendChild(small);
    const strip = document.createElement("div");
    strip.className = "strip";
    for (const it of row.items) strip.appendChild(card(it, row));
    sec.append(h, strip);
    main.appendChild(sec);
  }
}

function card(it, row) {
  const c = document.createElement("div");
  c.className = "card";
  c.dataset.decision = it.decision_id;
  const img = document.createElement("img");
  img.src = it.artwork_url;
  img.alt = it.name;
  img.loading = "lazy";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = it.name;
  const play = document.createElement("button");
  play.className = "play";
  play.textContent = "▶ Play";
  play.onclick = () => sendPlay(it, play);
  const why = document.createElement("button");
  why.className = "why";
  why.textContent = "Explain";
  why.onclick = () => explain(it, row);
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(play, why);
  c.append(img, name, actions);
  if (it.explored) {
    const b = document.createElement("span");
    b.className = "badge";
    b.textContent = "explore";
    c.appendChild(b);
  }
  return c;
}

async function sendPlay(it, button) {
  const body = { events: [{ event_id: uuid(), decision_id: it.decision_id, kind: "play" }] };
  button.disabled = true;
  try {
    const r = await fetch("/v1/events", { method: "POST", body: JSON.stringify(body),
      headers: { "content-type": "application/json", "X-API-Key": apiKey() } });
    const res = await r.json();
    if (r.ok) {
      button.dataset.state = "logged";
      button.textContent = "✓ logged";
      status(`play of ${it.name} logged (${it.decision_id})`);
    } else {
      button.dataset.state = "error";
      status(`play not logged: ${r.status} ${errorText(res)}`);
    }
  } finally { button.disabled = false; }
}

function explain(it, row) {
  $("ex-title").textContent = it.name;
  // score: the ranker's predicted play probability; null where the policy did not rank the
  // title (a title an explored page drew uniformly)
  const ranked = typeof it.score === "number" && isFinite(it.score);
  const facts = [
    ["row", `${row.label} (row ${row.row_index + 1}, position ${it.position + 1})`],
    ["why this row", row.reason],
    ["how it got here", it.explored
      ? "exploration: this visit got a uniformly random page of the available titles"
      : "ranking: the ranker's best remaining titles for this row"],
    ["score", ranked ? `${it.score.toFixed(3)} (predicted play probability)`
                     : "not ranked (drawn by exploration)"],
    ["propensity", it.propensity.toPrecision(4)],
    ["artwork", `${it.artwork_id} (probability ${it.artwork_propensity.toPrecision(3)})`],
    ["policy", page.policy],
    ["model", page.model_version],
    ["decision id", it.decision_id],
  ];
  const dl = $("ex-body");
  dl.textContent = "";
  for (const [k, v] of facts) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
  $("explain").showModal();
}

$("pickers").addEventListener("submit", loadPage);
$("apikey").value = apiKey();
loadOptions().then(() => loadPage());
