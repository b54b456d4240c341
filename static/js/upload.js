// Chunked, resumable evidence upload: asks the server what it already holds, sends only what is missing in
// pieces aligned to the evidence's chunk size (Content-Range), shows bytes, speed and time left, and seals.
(function () {
  "use strict";
  const box = document.getElementById("upload");
  if (!box) return;
  const input = document.getElementById("upload-file");
  const button = document.getElementById("upload-start");
  const bar = document.getElementById("upload-progress");
  const text = document.getElementById("upload-text");
  const chunkSize = parseInt(box.dataset.chunkSize, 10);
  const piece = chunkSize * 8; // one request carries several chunks; always a multiple of the chunk size
  const csrf = document.body.getAttribute("hx-headers") ? JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"] : "";
  const memoryKey = "custodia-upload-" + box.dataset.evidence;

  function human(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function duration(seconds) {
    if (!isFinite(seconds)) return "…";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m ? m + " min " + s + " s" : s + " s";
  }
  async function api(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options, {
      headers: Object.assign({ "X-CSRFToken": csrf, "Accept": "application/json" }, (options || {}).headers || {}),
    }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || ("HTTP " + response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }
  function missingPieces(status, size) {
    // The server lists missing [start, end) ranges; cut them into aligned pieces.
    const ranges = status.size === null && status.received.length === 0 ? [[0, size]] : status.missing;
    const pieces = [];
    for (const [start, end] of ranges) {
      for (let offset = start; offset < end; offset += piece) pieces.push([offset, Math.min(offset + piece, end)]);
    }
    return pieces;
  }

  async function run() {
    const file = input.files[0];
    if (!file) { text.textContent = "Choose a file first."; return; }
    const remembered = JSON.parse(localStorage.getItem(memoryKey) || "null");
    if (remembered && (remembered.name !== file.name || remembered.size !== file.size)) {
      if (!confirm("An earlier upload to this evidence used " + remembered.name + " (" + human(remembered.size) + "). Continue with this file?")) return;
    }
    localStorage.setItem(memoryKey, JSON.stringify({ name: file.name, size: file.size }));
    button.disabled = true;
    bar.hidden = false;
    try {
      let status = await api(box.dataset.statusUrl);
      if (status.size !== null && status.size !== file.size) {
        throw new Error("This evidence expects " + status.size + " bytes; the chosen file has " + file.size + ".");
      }
      const pieces = missingPieces(status, file.size);
      let done = status.received_bytes, sentThisSession = 0;
      const started = performance.now();
      for (const [start, end] of pieces) {
        let attempt = 0;
        for (;;) {
          try {
            status = await api(box.dataset.contentUrl, {
              method: "PUT",
              headers: { "Content-Type": "application/octet-stream", "Content-Range": "bytes " + start + "-" + (end - 1) + "/" + file.size },
              body: file.slice(start, end),
            });
            break;
          } catch (error) {
            // Network trouble or a busy server: wait and retry the same piece; refusals (4xx) stop here.
            if (error.status && error.status < 500) throw error;
            if (++attempt > 8) throw error;
            text.textContent = "Connection trouble; retrying in " + (2 ** attempt) + " s…";
            await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
          }
        }
        sentThisSession += end - start;
        done = status.received_bytes;
        const seconds = (performance.now() - started) / 1000;
        const speed = sentThisSession / Math.max(seconds, 0.001);
        bar.value = done / Math.max(file.size, 1);
        text.textContent = human(done) + " of " + human(file.size) + " · " + human(speed) + "/s · " + duration((file.size - done) / speed) + " left";
      }
      if (file.size === 0) {
        await api(box.dataset.contentUrl, { method: "PUT", headers: { "Content-Range": "bytes */0" }, body: "" });
      }
      text.textContent = "All bytes received; sealing…";
      await api(box.dataset.sealUrl, { method: "POST" });
      localStorage.removeItem(memoryKey);
      text.textContent = "Sealed.";
      window.location.reload();
    } catch (error) {
      text.textContent = "Stopped: " + error.message + " Choose the file again to resume.";
      button.disabled = false;
    }
  }
  button.addEventListener("click", run);
})();
