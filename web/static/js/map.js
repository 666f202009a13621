// Maps of the manager's pages (Leaflet, vendored). Two uses:
//  - #map[data-stream]: the live team map. Markers come from the list beside it (the server's
//    rows: status, label, position), move on each `position` server-sent event, and a click
//    on a marker or a name shows that worker's track of today and next stops.
//  - .sitemap[data-sites]: a still map of a customer's sites.
// Without a tile URL the map is a plain background fitted to the markers.
const L = window.L;

function base(el) {
  const map = L.map(el, { zoomSnap: 0.5, attributionControl: !!el.dataset.tiles });
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, {
      maxZoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>',
    }).addTo(map);
  }
  return map;
}

function fit(map, points) {
  if (points.length) map.fitBounds(L.latLngBounds(points).pad(0.2), { maxZoom: 16 });
  else map.setView([20, 0], 2);
}

function pin(text, cls) {
  const span = document.createElement("span");
  span.textContent = text;
  return L.divIcon({ className: "pin " + cls, html: span.outerHTML, iconSize: null, iconAnchor: [0, 0] });
}

function hhmm(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

function liveMap(el) {
  const map = base(el);
  const markers = new Map();
  const layer = L.layerGroup().addTo(map);
  let selected = null;

  function sync(li) {
    const id = li.dataset.user;
    const first = li.dataset.name.split(" ")[0];
    const label = first + " · " + li.dataset.label;
    let m = markers.get(id);
    if (li.dataset.lat === undefined) return;
    const at = [+li.dataset.lat, +li.dataset.lon];
    if (!m) {
      m = L.marker(at, { title: li.dataset.name, keyboard: true }).addTo(map);
      m.on("click", () => select(id));
      markers.set(id, m);
    }
    m.setLatLng(at);
    m.setIcon(pin(label, li.dataset.status + (id === selected ? " chosen" : "")));
    mark(m, id, at);
  }

  function mark(m, id, at) {
    const node = m.getElement();
    if (!node) return;
    node.dataset.user = id;
    node.dataset.lat = at[0].toFixed(6);
    node.dataset.lon = at[1].toFixed(6);
  }

  function syncAll() {
    document.querySelectorAll("#workers li.worker").forEach(sync);
  }

  function moveTo(id, lat, lon, battery, fresh) {
    const li = document.querySelector(`#workers li.worker[data-user="${id}"]`);
    if (!li) return;
    li.dataset.lat = lat;
    li.dataset.lon = lon;
    const seen = li.querySelector(".seen");
    if (seen && fresh) seen.textContent = "just now";
    const bat = li.querySelector(".battery");
    if (bat && battery != null) bat.textContent = Math.round(battery) + " %";
    sync(li);
  }

  async function select(id) {
    selected = id;
    syncAll();
    const li = document.querySelector(`#workers li.worker[data-user="${id}"]`);
    const box = document.getElementById("detail");
    const r = await fetch(`/map/workers/${id}`, { headers: { accept: "application/json" } });
    if (!r.ok) return;
    const data = await r.json();
    layer.clearLayers();
    const points = [];
    for (const f of data.track.features) {
      if (f.properties.kind === "track") {
        const line = f.geometry.coordinates.map(([x, y]) => [y, x]);
        L.polyline(line, { color: "#667085", weight: 3, opacity: 0.8 }).addTo(layer);
        points.push(...line);
      }
    }
    const list = document.getElementById("detail-stops");
    list.replaceChildren();
    const open = data.route.stops.filter((s) => s.status === "open");
    const line = [];
    if (data.route.start) line.push([data.route.start.lat, data.route.start.lon]);
    open.forEach((s, i) => {
      const at = [s.lat, s.lon];
      line.push(at);
      points.push(at);
      L.marker(at, { icon: pin(String(i + 1), "stop" + (s.lateS > 0 ? " late" : "")), title: s.title }).addTo(layer);
      const item = document.createElement("li");
      item.textContent = `${hhmm(s.eta)} ${s.title}` + (s.address ? ` — ${s.address}` : "") +
        (s.lateS > 0 ? ` (late ${Math.round(s.lateS / 60)} min)` : "");
      list.append(item);
    });
    if (line.length > 1) L.polyline(line, { color: "#1f6feb", weight: 3, dashArray: "6 6" }).addTo(layer);
    document.getElementById("detail-name").textContent = li ? li.dataset.name : "";
    const t = data.route.totals;
    const km = (data.track.properties.distanceM / 1000).toFixed(1);
    document.getElementById("detail-sum").textContent =
      `${t.done} of ${t.visits} visits done, ${t.remaining} to go, ${t.lateVisits} late; ${km} km driven today` +
      (open.length ? "" : ". No visits left today.");
    list.hidden = !open.length;
    box.hidden = false;
    const m = markers.get(id);
    if (m) points.push(m.getLatLng());
    if (points.length) fit(map, points);
  }

  syncAll();
  fit(map, [...markers.values()].map((m) => m.getLatLng()));
  document.getElementById("workers").addEventListener("click", (e) => {
    const b = e.target.closest("button.pick");
    if (b) select(b.closest("li").dataset.user);
  });
  document.body.addEventListener("htmx:afterSwap", (e) => {
    if (e.target.id === "workers") syncAll();
  });
  const source = new EventSource(el.dataset.stream);
  source.addEventListener("snapshot", (e) => {
    for (const f of JSON.parse(e.data).features) {
      if (f.geometry) moveTo(f.id, f.geometry.coordinates[1], f.geometry.coordinates[0], f.properties.battery, false);
    }
    el.dataset.live = "on";
  });
  source.addEventListener("position", (e) => {
    const p = JSON.parse(e.data);
    moveTo(p.userId, p.lat, p.lon, p.battery, true);
  });
  source.onerror = () => { el.dataset.live = "retrying"; };
  if (el.dataset.focus) select(el.dataset.focus);
}

function siteMap(el) {
  const map = base(el);
  const sites = JSON.parse(el.dataset.sites);
  const points = sites.map((s) => {
    const at = [s.lat, s.lon];
    L.marker(at, { icon: pin(s.label, "site"), title: s.label }).addTo(map);
    return at;
  });
  fit(map, points);
}

if (L) {
  const live = document.querySelector("#map[data-stream]");
  if (live) liveMap(live);
  document.querySelectorAll(".sitemap[data-sites]").forEach(siteMap);
}
