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

// A size in bytes as people read it.
function readableSize(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[unit]}`;
}

// Sends an import's upload with a progress bar, then goes on to the page
// that says what it holds, or says beside the bar why it was refused.
function uploadWithProgress(form) {
  const box = form.querySelector(".upload");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      const percent = Math.floor((100 * e.loaded) / e.total);
      status.textContent = `${readableSize(e.loaded)} of ${readableSize(e.total)} sent (${percent} %)`;
    });
    xhr.upload.addEventListener("load", () => {
      bar.removeAttribute("value");
      status.textContent = "Sent. Reading what it holds…";
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (_) {
        answer = { error: `The server answered ${xhr.status}. Reload the page and try again.` };
      }
      if (answer.next) {
        window.location.assign(answer.next);
        return;
      }
      button.disabled = false;
      bar.value = 0;
      status.classList.add("err");
      status.textContent = answer.error;
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      status.textContent = "The upload broke off. Check the connection and send it again.";
    });
    button.disabled = true;
    box.hidden = false;
    status.classList.remove("err");
    status.textContent = "Sending…";
    xhr.send(new FormData(form));
  });
}

// A form that takes a while says so, and is not sent twice.
function busyWhileSent(form) {
  form.addEventListener("submit", () => {
    const button = form.querySelector("button[type=submit]");
    button.textContent = form.dataset.busy;
    // After the form has been sent with it.
    setTimeout(() => { button.disabled = true; }, 0);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-live]");
  if (live) followWorlds(live);
  const follow = document.getElementById("follow");
  if (follow) followLog(follow);
  const calendar = document.querySelector(".calendar[data-tz]");
  if (calendar) localCalendar(calendar);
  const upload = document.querySelector("form[data-upload]");
  if (upload) uploadWithProgress(upload);
  for (const form of document.querySelectorAll("form[data-busy]")) busyWhileSent(form);
});
