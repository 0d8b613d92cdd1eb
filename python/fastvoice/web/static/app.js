// The fastvoice page: microphone -> WebSocket (binary PCM16, 20 ms frames) -> the agent -> playback.
(() => {
  const $ = (role) => document.querySelector(`[data-role="${role}"]`);
  const token = document.querySelector('meta[name="fastvoice-token"]').content;
  const button = $("start");
  let ctx = null, ws = null, mic = null, capture = null, playback = null, stream = null;
  let userFinal = "", userPartial = "", agentText = "", agentItem = null;

  function setState(state) {
    const el = $("state");
    el.textContent = state;
    el.className = `state ${state}`;
  }

  function showUser(text, final) {
    // Partials are deltas (only the new words) until the final transcript replaces them.
    if (final) {
      userFinal += (userFinal ? "\n" : "") + text;
      userPartial = "";
    } else {
      userPartial += text;
    }
    const el = $("user-transcript");
    el.textContent = userFinal;
    if (userPartial) {
      const span = document.createElement("span");
      span.className = "partial";
      span.textContent = (userFinal ? "\n" : "") + userPartial;
      el.appendChild(span);
    }
  }

  function showAgent(msg) {
    if (msg.item_id !== agentItem) {
      agentItem = msg.item_id;
      if (agentText) agentText += "\n";
    }
    if (msg.final) {
      const start = agentText.lastIndexOf("\n") + 1;
      agentText = agentText.slice(0, start) + msg.text;
    } else {
      agentText += msg.text;
    }
    $("agent-transcript").textContent = agentText;
  }

  function log(line) {
    const li = document.createElement("li");
    li.textContent = line;
    $("log").appendChild(li);
  }

  function onServerText(raw) {
    const msg = JSON.parse(raw);
    switch (msg.event) {
      case "mark": playback.port.postMessage({ mark: msg.name }); break;
      case "clear": playback.port.postMessage({ clear: true }); break;
      case "state": setState(msg.state); break;
      case "transcript":
        if (msg.role === "user") showUser(msg.text, msg.final); else showAgent(msg);
        break;
      case "tool": log(msg.output !== undefined ? `${msg.name} -> ${msg.output}` : `tool ${msg.name}(${msg.args || ""})`); break;
      case "handoff": log(`handoff ${msg.from} -> ${msg.to}`); break;
      case "error": log(`error: ${msg.message}`); break;
      case "ended": stop(msg.reason || "ended"); break;
    }
  }

  async function start() {
    $("status").textContent = "starting";
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("static/worklets.js");
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
    });
    mic = ctx.createMediaStreamSource(stream);
    capture = new AudioWorkletNode(ctx, "fastvoice-capture", { numberOfOutputs: 0 });
    playback = new AudioWorkletNode(ctx, "fastvoice-playback", { numberOfInputs: 0, outputChannelCount: [1] });
    playback.connect(ctx.destination);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}${location.pathname.replace(/[^/]*$/, "")}ws?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send(JSON.stringify({ event: "start", sample_rate: ctx.sampleRate }));
      mic.connect(capture);
      $("status").textContent = "live";
      button.textContent = "Stop";
      button.classList.add("live");
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") onServerText(e.data);
      else playback.port.postMessage({ audio: e.data }, [e.data]);
    };
    ws.onclose = () => stop("disconnected");
    // A benchmark or test that sets `window.fastvoiceTrace = []` before starting gets the page's timeline:
    // every mic frame sent (AudioContext time, level) and every reply that starts playing.
    const trace = window.fastvoiceTrace;
    capture.port.onmessage = (e) => {
      if (trace) trace.push({ mic: e.data.t, level: e.data.level });
      $("level").style.width = `${Math.min(100, e.data.level * 400)}%`;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(e.data.pcm);
    };
    playback.port.onmessage = (e) => {
      const m = e.data;
      if (trace && m.started !== undefined) trace.push({ play: m.started, played: m.played });
      if (m.mark && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ event: "played", name: m.mark }));
      if (m.stats) $("played-level").textContent = m.level.toFixed(3);
      if (m.played !== undefined) $("played-samples").textContent = String(m.played);
      if (m.cleared) {
        $("status").textContent = "interrupted";
        $("status").dataset.playedAtClear = String(m.played); // what was heard when the reply was cut
      }
    };
  }

  function stop(why) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ event: "stop" }));
    if (ws) { ws.onclose = null; ws.close(); }
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    ws = ctx = stream = null;
    button.textContent = "Talk";
    button.classList.remove("live");
    $("status").textContent = why || "stopped";
    setState("idle");
  }

  button.addEventListener("click", () => (ws ? stop("stopped") : start().catch((err) => {
    $("status").textContent = `error: ${err.message}`;
  })));
})();
