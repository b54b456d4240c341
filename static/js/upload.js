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
  function failure(status, body) {
    const error = new Error((body && body.detail) || ("HTTP " + status));
    error.status = status;
    error.code = body && body.error;
    return error;
  }
  async function api(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options, {
      headers: Object.assign({ "X-CSRFToken": csrf, "Accept": "application/json" }, (options || {}).headers || {}),
    }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw failure(response.status, body);
    return body;
  }
  // One piece sent with XMLHttpRequest, whose upload events report bytes as they leave: the bar moves from
  // the first byte, not only when a whole piece (several MiB) is acknowledged. onSent(bytes of this piece).
  function sendPiece(url, headers, body, onSent) {
    return new Promise(function (resolve, reject) {
      const request = new XMLHttpRequest();
      request.open("PUT", url);
      request.withCredentials = true;
      Object.entries(Object.assign({ "X-CSRFToken": csrf, "Accept": "application/json" }, headers)).forEach(
        function (pair) { request.setRequestHeader(pair[0], pair[1]); });
      request.upload.addEventListener("progress", function (event) { onSent(event.loaded); });
      request.addEventListener("load", function () {
        let parsed = {};
        try { parsed = JSON.parse(request.responseText); } catch (ignored) { parsed = {}; }
        if (request.status >= 200 && request.status < 300) resolve(parsed);
        else reject(failure(request.status, parsed));
      });
      request.addEventListener("error", function () { reject(failure(0, { detail: "The connection failed." })); });
      request.addEventListener("abort", function () { reject(failure(0, { detail: "The upload was interrupted." })); });
      request.send(body);
    });
  }
  // What the person reads when the upload stops: a refusal that no retry can mend says what happened and
  // what to do instead; a dropped connection says how to resume.
  function stoppedText(error) {
    if (error.code === "hash_mismatch") {
      return "Refused: " + error.message + " Nothing was sealed. Check the declared hash with whoever acquired " +
        "the evidence, then register the item again with the right value (or without a declared hash).";
    }
    if (error.code === "not_receiving" || error.code === "failed") return "Stopped: " + error.message;
    return "Stopped: " + error.message + " Choose the file again to resume.";
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
    bar.value = 0;
    text.textContent = "Starting…";
    try {
      let status = await api(box.dataset.statusUrl);
      if (status.size !== null && status.size !== file.size) {
        throw new Error("This evidence expects " + status.size + " bytes; the chosen file has " + file.size + ".");
      }
      const pieces = missingPieces(status, file.size);
      let done = status.received_bytes, sentThisSession = 0;
      const started = performance.now();
      function show(inFlight) {
        const seconds = (performance.now() - started) / 1000;
        const speed = (sentThisSession + inFlight) / Math.max(seconds, 0.001);
        const shown = Math.min(done + inFlight, file.size);
        bar.value = shown / Math.max(file.size, 1);
        text.textContent = human(shown) + " of " + human(file.size) + " · " + human(speed) + "/s · " +
          duration((file.size - shown) / speed) + " left";
      }
      for (const [start, end] of pieces) {
        let attempt = 0;
        for (;;) {
          try {
            status = await sendPiece(box.dataset.contentUrl, {
              "Content-Type": "application/octet-stream",
              "Content-Range": "bytes " + start + "-" + (end - 1) + "/" + file.size,
              // The name the file came with: the root trace and link downloads are named by it.
              "X-File-Name": encodeURIComponent(file.name),
            }, file.slice(start, end), show);
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
        show(0);
      }
      if (file.size === 0) {
        await api(box.dataset.contentUrl, {
          method: "PUT", headers: { "Content-Range": "bytes */0", "X-File-Name": encodeURIComponent(file.name) }, body: "",
        });
      }
      text.textContent = "All bytes received; sealing…";
      await api(box.dataset.sealUrl, { method: "POST" });
      localStorage.removeItem(memoryKey);
      text.textContent = "Sealed.";
      window.location.reload();
    } catch (error) {
      text.textContent = stoppedText(error);
      box.dataset.stopped = error.code || "error";
      button.disabled = error.code === "hash_mismatch";
    }
  }
  button.addEventListener("click", run);
})();
