// The customer's tracking page: a small Leaflet map of the worker's position, polled every
// 15 s from /t/{token}/position. Without tiles (none configured, or offline) the marker is drawn
// on a plain background; the ETA text works without the map at all.
(function () {
  "use strict";
  var box = document.getElementById("status");
  if (!box || box.dataset.status !== "en_route") return;
  var url = box.dataset.positionUrl;
  var zone = box.dataset.zone;
  var mapEl = document.getElementById("map");
  var map = null;
  var marker = null;

  function hhmm(iso) {
    try {
      return new Intl.DateTimeFormat(document.documentElement.lang || "en", {
        hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone,
      }).format(new Date(iso));
    } catch (e) {
      return iso.slice(11, 16);
    }
  }

  var site = mapEl && mapEl.dataset.siteLat
    ? [parseFloat(mapEl.dataset.siteLat), parseFloat(mapEl.dataset.siteLon)] : null;

  function fit(lat, lon) {
    if (site) {
      map.fitBounds(L.latLngBounds([site, [lat, lon]]), {
        paddingTopLeft: [60, 40], paddingBottomRight: [30, 30], maxZoom: 16,
      });
    } else {
      map.panTo([lat, lon]);
    }
  }

  function show(lat, lon) {
    if (!window.L || !mapEl) return;
    if (!map) {
      map = L.map(mapEl, { attributionControl: !!box.dataset.tiles }).setView([lat, lon], 14);
      if (box.dataset.tiles) {
        L.tileLayer(box.dataset.tiles, { maxZoom: 18, referrerPolicy: "no-referrer" }).addTo(map);
      }
      if (site) {
        // The customer's own address: a hollow ring, told apart from the worker's dot even on
        // the plain background.
        L.circleMarker(site, { radius: 7, color: "#1d2330", weight: 3, fillColor: "#fff", fillOpacity: 1 })
          .addTo(map);
      }
    }
    if (!marker) {
      marker = L.circleMarker([lat, lon], { radius: 9, color: "#1f6feb", fillOpacity: 0.9 }).addTo(map);
    } else {
      marker.setLatLng([lat, lon]);
    }
    fit(lat, lon);
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, referrerPolicy: "no-referrer" })
      .then(function (r) {
        if (r.status === 410 || r.status === 404) { window.location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        if (data.status !== "en_route") { window.location.reload(); return; }
        if (data.eta) document.getElementById("eta").textContent = hhmm(data.eta);
        if (data.lat !== null && data.lon !== null) {
          show(data.lat, data.lon);
          var at = document.getElementById("seen-at");
          if (at && data.recordedAt) at.textContent = hhmm(data.recordedAt);
        }
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  window.addEventListener("load", function () {
    if (mapEl && mapEl.dataset.lat) show(parseFloat(mapEl.dataset.lat), parseFloat(mapEl.dataset.lon));
    setInterval(poll, 15000);
  });
})();
