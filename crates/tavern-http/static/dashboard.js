// Tavern's dashboard: small improvements over plain forms. Without this
// script every page still works; with it, world states stay current, logs
// can be followed and the calendar uses the browser's time zone.
"use strict";

// Keeps the states of the worlds on the page current.
function followWorlds(root) {
  const source = root.dataset.live;
  async function refresh() {
    try {
      const answer = await fetch(source, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!answer.ok) return;
      for (const w of await answer.json()) {
        for (const el of document.querySelectorAll(`[data-world="${CSS.escape(w.slug)}"]`)) {
          const state = el.querySelector('[data-field="state"]');
          if (state && state.textContent !== w.state) {
            state.textContent = w.state;
            state.dataset.state = w.state;
          }
          const players = el.querySelector('[data-field="players"]');
          if (players) players.textContent = String(w.players);
          const reason = el.querySelector('[data-field="reason"]');
          if (reason) reason.textContent = w.reason;
          for (const form of el.querySelectorAll("[data-show]")) {
            form.hidden = !w[form.dataset.show];
          }
        }
      }
    } catch (_) {
      // Offline for a moment: the next round tries again.
    }
  }
  setInterval(refresh, 2000);
}

// Follows a world's log while the box is ticked.
function followLog(box) {
  const log = document.getElementById("log");
  let timer = null;
  box.closest("label").hidden = false;
  box.addEventListener("change", () => {
    clearInterval(timer);
    if (!box.checked) return;
    const pull = async () => {
      const answer = await fetch(box.dataset.source, { credentials: "same-origin" });
      if (!answer.ok) return;
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = await answer.text();
      if (atEnd) log.scrollTop = log.scrollHeight;
    };
    pull();
    timer = setInterval(pull, 2000);
  });
}

// The calendar opens in the browser's own time zone.
function localCalendar(calendar) {
  const url = new URL(window.location.href);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!url.searchParams.has("tz") && zone && zone !== calendar.dataset.tz) {
    url.searchParams.set("tz", zone);
    window.location.replace(url.toString());
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-live]");
  if (live) followWorlds(live);
  const follow = document.getElementById("follow");
  if (follow) followLog(follow);
  const calendar = document.querySelector(".calendar[data-tz]");
  if (calendar) localCalendar(calendar);
});
