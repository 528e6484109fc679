// callpark receptionist console: sign-in, the live board from the event
// stream, and the actions (buttons, drag and drop, keyboard).

const $ = (sel, root = document) => root.querySelector(sel);

// el builds an element: el("div", {class: "x", dataset: {a: 1}}, child, "text").
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

let board = null;     // the last snapshot
let csrf = "";
let skew = 0;         // server clock minus ours, ms
let source = null;    // the EventSource
let lastEventId = ""; // id of the last message it delivered

// --- sign-in ---------------------------------------------------------------

// In a cluster another node's console may serve the customer (421 with its
// URL): go there, the customer filled in.
function elsewhere(r, j) {
  if (r.status !== 421 || !j.error || !j.error.url) return false;
  const u = new URL(j.error.url);
  const c = $("#in-customer").value.trim();
  if (c) u.searchParams.set("customer", c);
  location.assign(u.toString());
  return true;
}

async function signIn(ev) {
  ev.preventDefault();
  const err = $("#signin-error");
  err.textContent = "";
  const body = {
    customer: $("#in-customer").value.trim(),
    user: $("#in-user").value.trim(),
    password: $("#in-password").value,
  };
  const r = await fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const j = await r.json().catch(() => ({}));
  if (elsewhere(r, j)) return;
  if (!r.ok) {
    err.textContent = (j.error && j.error.message) || ("sign-in failed: " + r.status);
    return;
  }
  $("#in-password").value = "";
  csrf = j.csrf;
  start();
}

async function signOut() {
  await post("/logout", {});
  if (source) source.close();
  source = null;
  board = null;
  showSignIn();
}

function showSignIn() {
  $("#signin").hidden = false;
  $("#board").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  lastEventId = "";
  setConn(false, "signed out");
}

// --- the stream -------------------------------------------------------------

function setConn(live, text) {
  const c = $("#conn");
  c.className = "conn " + (live ? "live" : "off");
  c.textContent = text || (live ? "live" : "reconnecting…");
}

function start() {
  $("#signin").hidden = true;
  $("#board").hidden = false;
  $("#logout").hidden = false;
  if (source) source.close();
  // A new stream resumes where the last one stopped (the id of the last
  // message is the event stream's sequence): notices meanwhile are replayed.
  // EventSource's own reconnects send it as Last-Event-ID.
  source = new EventSource("/api/events" + (lastEventId ? "?after=" + encodeURIComponent(lastEventId) : ""));
  source.addEventListener("open", () => setConn(true));
  source.addEventListener("board", (m) => { lastEventId = m.lastEventId || lastEventId; setConn(true); render(JSON.parse(m.data)); });
  source.addEventListener("notice", (m) => { lastEventId = m.lastEventId || lastEventId; notify(JSON.parse(m.data)); });
  source.addEventListener("error", async () => {
    setConn(false);
    // Signed out (session expired, logged out elsewhere): stop retrying.
    if (source && source.readyState === EventSource.CLOSED) {
      const r = await fetch("/api/board").catch(() => null);
      if (r && r.status === 401) showSignIn();
      else if (r && r.status === 421) elsewhere(r, await r.json().catch(() => ({})));
      else setTimeout(start, 1000);
    }
  });
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Callpark-CSRF": csrf},
    body: JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({}));
  if (elsewhere(r, j)) return null;
  if (!r.ok) {
    notify({kind: "error", text: (j.error && j.error.message) || ("failed: " + r.status)});
    return null;
  }
  return j;
}

// --- rendering --------------------------------------------------------------

const clock = (s) => {
  s = Math.max(0, Math.floor(s));
  const m = Math.floor(s / 60), r = s % 60;
  return m + ":" + String(r).padStart(2, "0");
};
const partyText = (p) => p ? (p.display ? `${p.display} (${p.user})` : (p.user || "unknown")) : "";
const spotOf = (p) => p.kind === "slot" ? {slot: p.number} : p.kind === "extension" ? {extension: p.number} : {random: p.number};
const stateText = {idle: "idle", ringing: "ringing", in_call: "in a call", on_hold: "on hold", parked: "waiting in parking", parked_on: "call parked here"};

function render(b) {
  board = b;
  csrf = b.me.csrf;
  skew = new Date(b.now).getTime() - Date.now();
  const me = b.me.account ? `${b.customer} · ${b.me.account} ${b.me.name || ""}` : `${b.customer} · API`;
  $("#who").textContent = me + (b.me.control ? "" : " (view only)");

  const mine = $("#mycalls");
  mine.replaceChildren(...(b.my_calls.length ? b.my_calls.map(myCall) : [el("p", {class: "empty"}, b.me.account ? "no calls" : "an API session has no phone")]));
  $("#slots").replaceChildren(...b.slots.map(slotCard));
  const others = $("#parked");
  others.replaceChildren(...(b.parked.length ? b.parked.map((p) => parkedCard(p, `parked-${p.kind}-${p.number}`, p.kind === "random" ? "random " + p.number : "extension " + p.number)) : [el("p", {class: "empty"}, "none")]));
  $("#extensions").replaceChildren(...b.extensions.map(extTile));
  tick();
}

function myCall(c) {
  const free = board.slots.filter((s) => !s.parked);
  const canPark = board.me.control && (c.state === "up" || c.state === "held");
  return el("div", {class: "card mycall", id: "call-" + c.call_id, dataset: {call: c.call_id}, onpointerdown: (e) => canPark && dragStart(e, {call: c.call_id})},
    el("div", {class: "title"}, el("span", {class: "caller"}, partyText(c.party)), el("span", {class: "code"}, c.state)),
    el("div", {class: "meta"}, c.direction, " · ", el("span", {class: "timer", dataset: {since: c.since}})),
    canPark && el("div", {class: "actions"},
      free.map((s) => el("button", {dataset: {parkSlot: s.slot}, onclick: () => park(c.call_id, {slot: s.slot})}, "Park on " + (s.label || "slot " + s.slot))),
      el("button", {dataset: {parkRandom: "1"}, onclick: () => park(c.call_id, {random: "any"})}, "Park random")));
}

function slotCard(s) {
  if (!s.parked) {
    return el("div", {class: "card free", id: "slot-" + s.slot, dataset: {dropSlot: s.slot}},
      el("div", {class: "title"}, el("span", {}, s.label || "Slot " + s.slot), el("span", {class: "code"}, s.code)),
      el("div", {class: "meta state"}, "free"));
  }
  return parkedCard(s.parked, "slot-" + s.slot, s.label || "Slot " + s.slot, s.code);
}

function parkedCard(p, id, title, code) {
  const spot = spotOf(p);
  return el("div", {class: "card busy", id, dataset: {spot: JSON.stringify(spot)}, onpointerdown: (e) => board.me.control && dragStart(e, {spot})},
    el("div", {class: "title"}, el("span", {}, title), el("span", {class: "code"}, code || p.code)),
    el("div", {class: "caller"}, partyText(p.caller)),
    el("div", {class: "meta"}, "parked by ", p.parker || "?", " · ", el("span", {class: "timer", dataset: {since: p.since}})),
    p.due && el("div", {class: "meta"}, "returns to ", p.return_to || p.parker, " in ", el("span", {class: "countdown", dataset: {due: p.due}})),
    board.me.control && el("div", {class: "actions"},
      board.me.account && el("button", {dataset: {pickup: "1"}, onclick: () => retrieve(spot, "")}, "Pick up"),
      el("button", {dataset: {hangup: "1"}, onclick: () => post("/api/hangup", spot)}, "Hang up")));
}

function extTile(x) {
  const me = board.me.account === x.extension;
  return el("div", {class: `tile ${x.state}${me ? " me" : ""}`, id: "ext-" + x.extension, dataset: {dropExt: x.extension}},
    el("div", {class: "num"}, x.extension), el("div", {class: "name"}, x.name || ""),
    el("div", {class: "state"}, stateText[x.state] || x.state, x.party && x.party.user ? " · " + partyText(x.party) : ""));
}

// tick updates the timers and countdowns between snapshots.
function tick() {
  const now = Date.now() + skew;
  for (const t of document.querySelectorAll(".timer")) t.textContent = clock((now - new Date(t.dataset.since)) / 1000);
  for (const c of document.querySelectorAll(".countdown")) {
    const left = (new Date(c.dataset.due) - now) / 1000;
    c.textContent = clock(left);
    const total = board && board.return_after_s || 120;
    c.className = "countdown" + (left < Math.min(15, total / 4) ? " urgent" : left < total / 2 ? " warn" : "");
    const card = c.closest(".card");
    if (card) card.classList.toggle("warn", left < total / 2);
  }
}
setInterval(tick, 500);

// --- actions ----------------------------------------------------------------

function park(callID, spot) { return post("/api/park", {call_id: callID, ...spot}); }
function retrieve(spot, to) { return post("/api/retrieve", {...spot, to}); }

// Drag and drop with pointer events (mouse, pen and touch alike): a parked
// card onto an extension rings it; my call onto a free slot parks it.
let drag = null;

function dragStart(e, what) {
  if (e.button !== 0 || e.target.closest("button")) return;
  e.preventDefault();
  const src = e.currentTarget;
  const ghost = src.cloneNode(true);
  ghost.classList.add("ghost");
  ghost.style.width = src.offsetWidth + "px";
  ghost.style.left = e.clientX + "px";
  ghost.style.top = e.clientY + "px";
  document.body.append(ghost);
  drag = {what, ghost, over: null};
}

function dropTarget(x, y) {
  const t = document.elementFromPoint(x, y);
  if (!t || !drag) return null;
  if (drag.what.spot) return t.closest("[data-drop-ext], [data-drop-slot]");
  return t.closest("[data-drop-slot]");
}

document.addEventListener("pointermove", (e) => {
  if (!drag) return;
  drag.ghost.style.left = e.clientX + "px";
  drag.ghost.style.top = e.clientY + "px";
  const t = dropTarget(e.clientX, e.clientY);
  if (t !== drag.over) {
    if (drag.over) drag.over.classList.remove("drop-hover");
    if (t) t.classList.add("drop-hover");
    drag.over = t;
  }
});

document.addEventListener("pointerup", (e) => {
  if (!drag) return;
  const t = dropTarget(e.clientX, e.clientY);
  const what = drag.what;
  endDrag();
  if (!t) return;
  if (what.spot && t.dataset.dropExt) retrieve(what.spot, t.dataset.dropExt);
  else if (what.spot) post("/api/move", {...what.spot, to_slot: t.dataset.dropSlot});
  else park(what.call, {slot: t.dataset.dropSlot});
});

function endDrag() {
  if (!drag) return;
  drag.ghost.remove();
  if (drag.over) drag.over.classList.remove("drop-hover");
  drag = null;
}

document.addEventListener("keydown", (e) => {
  if (e.target.closest("input, textarea") || !board) return;
  const call = board.my_calls.find((c) => c.state === "up" || c.state === "held");
  if (e.key === "Escape") { endDrag(); $("#help").hidden = true; return; }
  if (e.key === "?") { $("#help").hidden = !$("#help").hidden; return; }
  if (!board.me.control) return;
  if (/^[1-9]$/.test(e.key) && call) park(call.call_id, {slot: e.key});
  else if (e.key === "r" && call) park(call.call_id, {random: "any"});
  else if (e.key === "p" && board.me.account) {
    const all = board.slots.filter((s) => s.parked).map((s) => s.parked).concat(board.parked);
    all.sort((a, b) => new Date(a.since) - new Date(b.since));
    if (all.length) retrieve(spotOf(all[0]), "");
  }
});

// --- notifications ----------------------------------------------------------

function notify(n) {
  const box = el("div", {class: "notice " + (n.kind || "")}, n.text);
  $("#notices").append(box);
  setTimeout(() => box.remove(), 8000);
  if ($("#sound").checked && n.kind !== "error") beep(n.kind === "abandoned" || n.kind === "return_failed" ? 440 : 880);
}

function beep(hz) {
  try {
    const ctx = new AudioContext();
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = hz;
    g.gain.value = 0.1;
    o.connect(g).connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + 0.15);
  } catch (_) { /* no audio */ }
}

// --- start ------------------------------------------------------------------

$("#signin-form").addEventListener("submit", signIn);
$("#logout").addEventListener("click", signOut);
$("#sound").checked = localStorage.getItem("callpark.sound") === "1";
$("#sound").addEventListener("change", () => localStorage.setItem("callpark.sound", $("#sound").checked ? "1" : "0"));

const asked = new URLSearchParams(location.search).get("customer");
if (asked) $("#in-customer").value = asked;
fetch("/api/board").then((r) => r.ok ? r.json() : null).then((b) => {
  if (b) { render(b); start(); } else showSignIn();
}).catch(showSignIn);
